"""Registering an IRC client: CAP, SASL PLAIN, PASS, NICK and USER within one deadline, then
the welcome (001 to 005) and the MOTD."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator

from twisted.internet.interfaces import IDelayedCall
from twisted.words.protocols import irc as rfc

import msgsvc
from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.channel import CHANNEL_TARGETS
from msgsvc.fronts.irc.queries import MONITOR_LIMIT
from msgsvc.fronts.irc.rooms import CHANNEL_MODES
from msgsvc.fronts.irc.wire import (
    ERR_ALREADYREGISTERED,
    ERR_INVALIDUSERNAME,
    ERR_SASLABORTED,
    ERR_SASLALREADY,
    ERR_SASLFAIL,
    ERR_SASLTOOLONG,
    NICK,
    RPL_LOGGEDIN,
    RPL_SASLMECHS,
    RPL_SASLSUCCESS,
    USERLEN,
    is_ident,
    line,
    printable,
)
from msgsvc.hub.contracts import ROOM_BANS_MAX, Refused
from msgsvc.hub.rooms import TOPIC_MAX
from msgsvc.hub.rules import USERNAME_MAX, username_key
from msgsvc.wire import MODE_CHANGES, ascii_int

VERSION = f"msgsvc-{msgsvc.__version__}"
#: What the front offers; with history kept, ``draft/chathistory`` too.
CAPABILITIES = {
    "account-tag": "account-tag",
    "away-notify": "away-notify",
    "batch": "batch",
    "echo-message": "echo-message",
    "extended-join": "extended-join",
    "labeled-response": "labeled-response",
    "message-tags": "message-tags",
    "multi-prefix": "multi-prefix",
    "sasl": "sasl=PLAIN",
    "server-time": "server-time",
}
SASL_CHUNK = 400
#: The longest SASL payload read: a PLAIN one (two names and a password of at most 256 bytes) is
#: at most 432 characters of base64.  Past it the attempt fails (904), as Ergo's does.
SASL_MAX = 2 * SASL_CHUNK


class Registration(IrcBase):
    """From connect to 001: the capabilities, the login (SASL, or NICK with PASS), the welcome."""

    registration = "NICK and USER"
    _pass: str | None = None
    _negotiating = False  # CAP LS or REQ came, CAP END not yet
    _sasl_payload = ""
    #: The one deadline from connect to 001 (None once passed, or met).  The session's own timer
    #: is handed on by each step (a login checked, a nick refused); this one is not.
    _deadline: IDelayedCall | None = None

    def _registration_expired(self) -> None:
        self._deadline = None
        if self._login is None:  # else the login being checked decides: refused, the client goes
            self._too_late()

    def _too_late(self) -> None:
        limit = self.clients.limits.hello_timeout
        self._drop(f"no {self.registration} within {limit:g} s", "registration timed out")

    def welcome(self, name: str) -> None:
        if self._sasl:  # logged in by SASL, before registration completes
            self._sasl = False
            self._account = name
            if self._deadline is None:  # it took past the deadline: NICK and USER cannot come in time
                self._too_late()
                return
            self.numeric(
                RPL_LOGGEDIN,
                f"{self.nick}!{self.username or self.nick}@msgsvc",
                name,
                f"You are now logged in as {name}",
            )
            self.numeric(RPL_SASLSUCCESS, "SASL authentication successful")
            return
        self._greet(name)

    def login_refused(self, refused: Refused) -> None:
        """Say why; the client may try again (a new nick, SASL again) until the registration's deadline."""
        self.say_refused(refused.refusal, refused.text)
        if self._deadline is None and not self.transport.disconnecting:  # the deadline passed meanwhile
            self._too_late()

    def irc_CAP(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "CAP", "Not enough parameters")
            return
        sub = params[0].upper()
        if sub == "LS":
            if not self._registered:
                self._negotiating = True
            version = ascii_int(params[1]) if len(params) > 1 else None
            modern = version is not None and version >= 302
            offered = self.factory.capabilities
            caps = " ".join(offered[c] if modern else c for c in sorted(offered))
            self._write(line("CAP", self.nick, "LS", caps, prefix=self.factory.server_name))
        elif sub == "LIST":
            self._write(
                line("CAP", self.nick, "LIST", " ".join(sorted(self.caps)), prefix=self.factory.server_name)
            )
        elif sub == "REQ":
            if not self._registered:
                self._negotiating = True
            wanted = params[1].split() if len(params) > 1 else []
            names = [w.lstrip("-") for w in wanted]
            verdict = "ACK" if wanted and all(n in self.factory.capabilities for n in names) else "NAK"
            if verdict == "ACK":
                for want, name in zip(wanted, names, strict=True):
                    (self.caps.discard if want.startswith("-") else self.caps.add)(name)
            self._write(line("CAP", self.nick, verdict, " ".join(wanted), prefix=self.factory.server_name))
        elif sub == "END":
            if self._sasl:
                self._abort_sasl()
            if not self._registered:
                self._negotiating = False
                self._try_register()
        else:
            self.numeric("410", sub, "Invalid CAP command")

    def irc_AUTHENTICATE(self, params: list[str]) -> None:
        if "sasl" not in self.caps:
            self.numeric(ERR_SASLFAIL, "SASL authentication failed: request the sasl capability first")
            return
        if self._account is not None or self._registered:
            self.numeric(ERR_SASLALREADY, "You have already authenticated using SASL")
            return
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "AUTHENTICATE", "Not enough parameters")
            return
        data = params[0]
        if data == "*":
            self._abort_sasl()
            return
        if not self._sasl:
            if data.upper() != "PLAIN":
                self.numeric(RPL_SASLMECHS, "PLAIN", "are available SASL mechanisms")
                self.numeric(ERR_SASLFAIL, "SASL authentication failed")
                return
            self._sasl = True
            self._sasl_payload = ""
            self._write(b"AUTHENTICATE +\r\n")
            return
        if len(data) > SASL_CHUNK:  # one line over the chunk: 905, as the IRCv3 SASL spec says
            self._sasl = False
            self.numeric(ERR_SASLTOOLONG, f"SASL message too long: at most {SASL_CHUNK} characters a line")
            return
        if len(self._sasl_payload) + len(data) > SASL_MAX:  # chunks without end: 904, as Ergo (irctest)
            self._sasl = False
            self.numeric(
                ERR_SASLFAIL, f"SASL authentication failed: a payload holds at most {SASL_MAX} characters"
            )
            return
        if data != "+":
            self._sasl_payload += data
        if len(data) == SASL_CHUNK:
            return  # more follows
        self._check_plain(self._sasl_payload)

    def _check_plain(self, payload: str) -> None:
        try:
            _, account, password = base64.b64decode(payload, validate=True).decode("utf-8").split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._sasl = False
            self.numeric(ERR_SASLFAIL, "SASL authentication failed: not a PLAIN message")
            return
        if NICK.fullmatch(account) is None:
            self._sasl = False
            self.numeric(ERR_SASLFAIL, f"SASL authentication failed: {account!r} is not a name here")
            return
        self.log_in(account, password or None)

    def _abort_sasl(self) -> None:
        if self._sasl:
            self._sasl = False
            self.numeric(ERR_SASLABORTED, "SASL authentication aborted")

    def irc_PASS(self, params: list[str]) -> None:
        if self._registered:
            self.numeric(ERR_ALREADYREGISTERED, "You may not reregister")
        elif not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "PASS", "Not enough parameters")
        else:
            self._pass = params[0]

    def irc_NICK(self, params: list[str]) -> None:
        if self._sasl:
            self._abort_sasl()
        if not params or not params[0]:
            self.numeric(rfc.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        wanted = params[0]
        if NICK.fullmatch(wanted) is None:
            self.numeric(
                rfc.ERR_ERRONEUSNICKNAME,
                wanted,
                "Erroneous nickname: 1 to 32 of A-Z a-z 0-9 _ -, a letter first",
            )
            return
        if self._registered:
            if username_key(wanted) != self.nick_key:
                self.numeric(
                    rfc.ERR_ERRONEUSNICKNAME, wanted, "A msgsvc name cannot change: reconnect as the new one"
                )
            return
        self.nick = wanted
        self._try_register()

    def irc_USER(self, params: list[str]) -> None:
        if self._sasl:
            self._abort_sasl()
        if self._registered:
            self.numeric(ERR_ALREADYREGISTERED, "You may not reregister")
            return
        realname = printable(params[3]) if len(params) >= 4 else ""
        if len(params) < 4 or not params[0] or not realname:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "USER", "Not enough parameters")
            return
        if not is_ident(params[0]):
            self.numeric(
                ERR_INVALIDUSERNAME,
                "Invalid user name: A-Z a-z 0-9 and _ . ~ - [ ] \\ ^ ` { | } only",
            )
            return
        self.username, self.realname = params[0][:USERLEN], realname
        self._try_register()

    def _try_register(self) -> None:
        if self._negotiating or self.nick == "*" or not self.username or self._login is not None:
            return
        if self._account is not None:
            self._greet(self._account)  # SASL already logged the name in
        else:
            self.log_in(self.nick, self._pass)

    def _greet(self, name: str) -> None:
        """Registration is complete as ``name``: 001 to 005, the MOTD, and what waited."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.nick = name
        self.nick_key = username_key(name)
        self.factory.idents.setdefault(self.nick_key, (self.username, self.realname))  # the nick's first
        self.ident = self.factory.user(name)  # what its mask shows, and a ban's user part matches
        server = self.factory.server_name
        self.numeric(rfc.RPL_WELCOME, f"Welcome to the {self.factory.network} network, {name}")
        self.numeric(rfc.RPL_YOURHOST, f"Your host is {server}, running version {VERSION}")
        self.numeric(rfc.RPL_CREATED, f"This server was created {self.factory.created}")
        self.numeric(rfc.RPL_MYINFO, server, VERSION, "ir", CHANNEL_MODES, "bklov")
        self._isupport()
        self._list(self._motd(), then=self._registered_now)

    def _registered_now(self) -> None:
        """After the MOTD: what came for the client meanwhile, then what waited for it."""
        self._registered = True
        in_all = any(s in self.factory.members for s in self.factory.sessions_of(self.nick_key))
        self.factory.sessions.setdefault(self.nick_key, []).append(self)
        if in_all:  # attached to a nick in #all: joined to it, as its other sessions are
            self.enter(asked=False)
        self.rejoin()
        if self._early:
            self._write(b"".join(self._early))
            self._early = []
        self.user.deliver_backlog()

    def _isupport(self) -> None:
        limits = self.clients.limits
        channels = 1 + self.clients.hub.rooms.policy.max_per_user  # #all, and the rooms
        tokens = [
            "CASEMAPPING=ascii",
            f"CHANLIMIT=#:{channels}",
            "CHANMODES=b,k,l,imnst",
            f"CHANNELLEN={USERNAME_MAX + 1}",
            "CHANTYPES=#",
            f"MAXLIST=b:{ROOM_BANS_MAX}",
            f"MODES={MODE_CHANGES}",
            f"MONITOR={MONITOR_LIMIT}",
            f"NETWORK={self.factory.network}",
            "NICKLEN=32",
            "PREFIX=(ov)@+",
            f"TARGMAX=PRIVMSG:{limits.max_recipients},NOTICE:{limits.max_recipients},JOIN:{CHANNEL_TARGETS},"
            f"PART:{CHANNEL_TARGETS},NAMES:{CHANNEL_TARGETS},KICK:{CHANNEL_TARGETS},WHOIS:1,"
            f"MONITOR:{MONITOR_LIMIT}",
            f"TOPICLEN={TOPIC_MAX}",
            f"USERLEN={USERLEN}",
            "UTF8ONLY",
        ]
        if self.factory.history.kept:
            tokens += [f"CHATHISTORY={self.factory.history.page}", "MSGREFTYPES=msgid,timestamp"]
        for start in range(0, len(tokens), 13):
            self.numeric(rfc.RPL_ISUPPORT, *tokens[start : start + 13], "are supported by this server")

    def _motd(self) -> Iterator[bytes]:
        """The MOTD, with the username log: a line, or nothing, a step (one a name of the log)."""
        server, channel, directory = self.factory.server_name, self.channel, self.factory.directory
        size = len(directory.log)
        yield self._numeric(rfc.RPL_MOTDSTART, f"- {server} Message of the day -")
        for text in (
            f"- Welcome to msgsvc. Everyone online is in {channel}: JOIN {channel} to see them come and go;",
            f"- a message to {channel} goes to all of them. MOTD shows this again.",
            f"- The username log ({size} {'name' if size == 1 else 'names'}):",
        ):
            yield self._numeric(rfc.RPL_MOTD, text)
        row = "-  "
        for key in directory.walk(directory.log):
            user = self.clients.hub.user(key)
            if user is None:  # no longer in the log
                yield b""
                continue
            protected = ", protected" if user.protected else ""
            entry = f"{user.name} ({'online' if user.online else 'offline'}{protected})"
            if len(row) + len(entry) > 300:
                yield self._numeric(rfc.RPL_MOTD, row.rstrip(","))
                row = "-  "
            else:
                yield b""
            row += f" {entry},"
        yield self._numeric(rfc.RPL_MOTD, row.rstrip(","))
        yield self._numeric(rfc.RPL_ENDOFMOTD, "End of /MOTD command.")

    def irc_MOTD(self, params: list[str]) -> None:
        self._list(self._motd())
