"""The IRC front: irssi, WeeChat and HexChat users as ordinary msgsvc users.

IRC is adapted to the hub here the way :mod:`msgsvc.fronts.lines` adapts
the line protocol: an :class:`IrcSession` is a
:class:`~msgsvc.fronts.session.Session` (the same per-address count,
deadlines, PING, flood and slow-reader limits, and login through the same
portal) that speaks RFC 1459/2812 as modern clients use it
(modern.ircdocs.horse).

* A nick is a msgsvc username without ``.`` (IRC nicks cannot hold one):
  1 to 32 of ``A-Z a-z 0-9 _ -``, a letter first.  Names with a ``.`` that
  other fronts registered appear in IRC prefixes as they are.
* ``PRIVMSG``/``NOTICE`` to a nick is a unicast, to ``a,b`` a multicast;
  ``#all``, the one channel, holds everyone online: ``PRIVMSG #all`` is a
  broadcast, and msgsvc's broadcasts appear there.
* Protected names log in with SASL PLAIN or ``PASS``.  Messages that
  waited come after the MOTD (with ``server-time``, stamped when they were
  sent), and are acknowledged when the client answers the ``PING`` sent
  after them: its ``PONG`` shows it read them.
"""

from __future__ import annotations

import base64
import binascii
import re
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.words.protocols import irc as rfc

import msgsvc
from msgsvc import wire
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.ircwire import (
    ERR_ALREADYREGISTERED,
    ERR_INPUTTOOLONG,
    ERR_INVALIDUSERNAME,
    ERR_MONLISTFULL,
    ERR_SASLABORTED,
    ERR_SASLALREADY,
    ERR_SASLFAIL,
    ERR_SASLTOOLONG,
    NICK,
    RPL_ENDOFMONLIST,
    RPL_LOGGEDIN,
    RPL_MONLIST,
    RPL_MONOFFLINE,
    RPL_MONONLINE,
    RPL_SASLMECHS,
    RPL_SASLSUCCESS,
    USERLEN,
    addressed,
    clean_text,
    glob_match,
    is_ident,
    line,
    parse,
    printable,
    sent_when,
    server_time,
    text_lines,
)
from msgsvc.fronts.ircnames import Directory
from msgsvc.fronts.session import Session
from msgsvc.hub import Event, Message, Queued, Report, UserJoined, UserLeft
from msgsvc.wire import USERNAME_MAX, Code, Kind, ProtocolError, ascii_int, username_key

CHANNEL = "#all"  # the default name of the one channel
CHANNEL_NAME = re.compile(r"#[^\x00-\x20,:\x7f]{1,31}")  # what --irc-channel may be
TOPIC = "Everyone online. A message here is a msgsvc broadcast: it goes to all of them."
VERSION = f"msgsvc-{msgsvc.__version__}"
CAPABILITIES = {"message-tags": "message-tags", "sasl": "sasl=PLAIN", "server-time": "server-time"}
MONITOR_LIMIT = 100
SASL_CHUNK = 400
#: The longest SASL payload read: a PLAIN one (two names and a password of at most 256 bytes) is
#: at most 432 characters of base64.  Past it the attempt fails (904), as Ergo's does.
SASL_MAX = 2 * SASL_CHUNK
#: Channels one JOIN, PART or NAMES may name: there is one (CHANLIMIT=#:1).
CHANNEL_TARGETS = 1
#: Bytes of names one ISON may ask about: its answer fits in one line.
ISON_MAX = 400
#: Entries of the username log (or of who is online) a listing goes through in one reactor pass.
LISTING_STEP = 100


class IrcFactory(Factory["IrcSession"]):
    """Builds :class:`IrcSession` instances over the server's shared :class:`Clients`; keeps #all and MONITOR."""

    noisy = False

    def __init__(
        self,
        clients: Clients,
        server_name: str | None = None,
        network: str = "msgsvc",
        channel: str = CHANNEL,
    ) -> None:
        self.clients = clients
        self.channel = channel
        self.server_name = server_name or socket.gethostname()
        self.network = network
        self.created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(clients.clock.seconds()))
        self.idents: dict[str, tuple[str, str]] = {}  # by name key: an IRC user's USER name and real name
        self.members: set[IrcSession] = set()  # sessions that joined #all
        self.monitors: dict[str, set[IrcSession]] = {}  # by name key: who watches it
        self.directory = Directory(clients.hub)
        clients.hub.subscribe(self._event)

    def buildProtocol(self, addr: IAddress | None) -> IrcSession:
        session = IrcSession()
        session.factory = self
        session.clients = self.clients
        session.MAX_LENGTH = self.clients.limits.max_line
        return session

    def _event(self, event: Event) -> None:
        """Tell #all of who came and went, and each watcher of a name it MONITORs."""
        match event:
            case UserJoined(name):
                self._announce(
                    name, line("JOIN", self.channel, prefix=self.mask(name)), RPL_MONONLINE, self.mask(name)
                )
            case UserLeft(name):
                self._announce(name, line("QUIT", "left", prefix=self.mask(name)), RPL_MONOFFLINE, name)

    def _announce(self, name: str, data: bytes, numeric: str, watched: str) -> None:
        """``data`` to every member of #all but ``name`` itself; ``numeric`` to whoever MONITORs it."""
        key = username_key(name)
        for member in list(self.members):
            if member.nick_key != key:
                member.tell(data)
        for watcher in list(self.monitors.get(key, ())):
            watcher.numeric(numeric, watched)

    def mask(self, name: str) -> str:
        """The ``nick!user@host`` of a msgsvc user."""
        return f"{name}!{self.user(name)}@msgsvc"

    def user(self, name: str) -> str:
        """The user part of a mask: an IRC user's own USER name, else the name again."""
        ident = self.idents.get(username_key(name))
        return ident[0] if ident else name

    def realname(self, name: str) -> str:
        """An IRC user's real name (from USER); for users of other fronts, their name."""
        ident = self.idents.get(username_key(name))
        return ident[1] if ident else name

    def forget(self, session: IrcSession) -> None:
        if session.nick_key:
            self.idents.pop(session.nick_key, None)
        self.members.discard(session)
        self.unwatch(session, session.monitoring)

    def unwatch(self, session: IrcSession, keys: Iterable[str]) -> None:
        """``session`` no longer MONITORs the names ``keys``; a name nobody watches is forgotten."""
        for key in keys:
            watchers = self.monitors.get(key)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self.monitors[key]


class IrcSession(Session):
    """One IRC client."""

    factory: IrcFactory
    front = "irc"
    registration = "NICK and USER"
    nick = "*"
    nick_key = ""
    username = ""  # from USER
    realname = ""
    _pass: str | None = None
    _negotiating = False  # CAP LS or REQ came, CAP END not yet
    _sasl = False  # AUTHENTICATE PLAIN came: its payload is being read, or checked
    _sasl_payload = ""
    _account: str | None = None  # the name SASL logged in as
    _registered = False  # 001 was sent
    _invisible = False  # user mode +i
    _early: list[bytes]  # what came for a logged-in user before registration completed
    _early_size = 0  # its bytes
    #: The one deadline from connect to 001 (None once passed, or met).  The session's own timer
    #: is handed on by each step (a login checked, a nick refused); this one is not.
    _deadline: IDelayedCall | None = None
    #: Long replies being sent, a few entries a reactor pass, each with what to do after it.
    _listings: deque[tuple[Iterator[bytes], Callable[[], None] | None]]
    _listing_call: IDelayedCall | None = None

    @property
    def channel(self) -> str:
        """The one channel, everyone online: #all unless the operator named it otherwise."""
        return self.factory.channel

    def _is_channel(self, target: str) -> bool:
        return target.casefold() == self.factory.channel.casefold()

    def connectionMade(self) -> None:
        self.caps: set[str] = set()
        self.monitoring: dict[str, str] = {}  # MONITORed names, by key, as the client spelled them
        self._early = []
        self._listings = deque()
        super().connectionMade()
        if not self.transport.disconnecting:
            limit = self.clients.limits.hello_timeout
            self._deadline = self.clients.clock.callLater(limit, self._registration_expired)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        for call in (self._deadline, self._listing_call):
            if call is not None and call.active():
                call.cancel()
        super().connectionLost(reason)  # #all hears it quit, under the mask it joined with
        self.factory.forget(self)

    def _registration_expired(self) -> None:
        self._deadline = None
        if self._login is None:  # else the login being checked decides: refused, the client goes
            self._too_late()

    def _too_late(self) -> None:
        limit = self.clients.limits.hello_timeout
        self._drop(f"no {self.registration} within {limit:g} s", "registration timed out")

    # -- Session: IRC's way of saying things ------------------------------

    def command(self, raw: bytes) -> None:
        parsed = parse(raw)
        if parsed is None:
            return
        handler = getattr(self, f"irc_{parsed.command}", None)
        if handler is None and self._registered:
            self.numeric(rfc.ERR_UNKNOWNCOMMAND, parsed.command, "Unknown command")
            return
        if handler is None or not self._registered and parsed.command not in _BEFORE_REGISTRATION:
            self.numeric(rfc.ERR_NOTREGISTERED, "You have not registered")
            return
        handler(parsed.params)

    def send_error(self, code: Code, text: str) -> None:
        if code is Code.LINE_TOO_LONG:
            self.numeric(ERR_INPUTTOOLONG, "Input line was too long")
        elif code is Code.BAD_ENCODING:
            self._write(line("FAIL", "*", "INVALID_UTF8", text, prefix=self.factory.server_name))
        else:
            self.server_notice(text)

    def farewell(self, reason: str) -> bytes:
        return line("ERROR", f"Closing Link: {self.peer} ({reason})")

    def ping(self, token: str) -> bytes:
        return line("PING", token)

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

    def login_refused(self, error: ProtocolError) -> None:
        """Say why; the client may try again (a new nick, SASL again) until the registration's deadline."""
        self.clients.hub.unregister(self)  # the client stays, and may try another name
        self._refused(error)
        if self._deadline is None and not self.transport.disconnecting:  # the deadline passed meanwhile
            self._too_late()

    def _refused(self, error: ProtocolError) -> None:
        if self._sasl:
            self._sasl = False
            self.numeric(ERR_SASLFAIL, f"SASL authentication failed: {error.text}")
            return
        if error.code in (Code.USERNAME_TAKEN, Code.AUTH_REQUIRED):
            self.numeric(rfc.ERR_NICKNAMEINUSE, self.nick, error.text)
        elif error.code is Code.USERNAME_INVALID:
            self.numeric(rfc.ERR_ERRONEUSNICKNAME, self.nick, error.text)
        elif error.code is Code.AUTH_FAILED:
            self.numeric(rfc.ERR_PASSWDMISMATCH, "Password incorrect")
            self.bye(error.text)
        elif error.code in (Code.SERVER_ERROR, Code.RATE_LIMITED):
            # The state is unreachable, or too many new names or passwords came from this address:
            # the same nick may work later, and (rate limited) a name already in the log now.
            self.numeric(rfc.ERR_UNAVAILRESOURCE, self.nick, error.text)
        else:
            self.bye(error.text)

    # -- hub.Participant -----------------------------------------------------

    def tell(self, data: bytes) -> None:
        """Presence news, unless this client is on its way out."""
        if not self.transport.disconnecting:
            self._send(data)

    def receive(self, message: Message) -> None:
        tags = f"time={server_time(self.clients.clock.seconds())}" if "server-time" in self.caps else ""
        sender, me = self.factory.mask(message.sender), self._me()
        # An IRC user's line (of this server: others' fronts are not known here) comes as one line.
        whole = username_key(message.sender) in self.factory.idents
        if message.kind is Kind.UNICAST:
            self._send(text_lines("PRIVMSG", me, message.text, sender, tags, whole))
        elif message.kind is not Kind.BROADCAST:  # the group before the text: split, never cut
            self._send(text_lines("PRIVMSG", me, addressed(message, me), sender, tags))
        elif self in self.factory.members:
            self._send(text_lines("PRIVMSG", self.channel, message.text, sender, tags, whole))
        else:  # not in #all: a broadcast still reaches it, as it reaches every msgsvc user
            self._send(text_lines("NOTICE", me, f"(to everyone) {message.text}", sender, tags))

    def notice(self, text: str) -> None:
        self._send(line("NOTICE", self._me(), f"Server notice: {text}", prefix=self.factory.server_name))

    def _me(self) -> str:
        """Whom a message to this client is to: its name, once logged in (by SASL, before 001 too)."""
        return self._account or self.nick

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        stamped, now = "server-time" in self.caps, self.clients.clock.seconds()
        out = []
        for message in backlog:
            text = addressed(message, self.nick)
            tags = ""
            if stamped:
                tags = f"time={server_time(message.sent_at)}"
            else:
                text = f"{sent_when(message.sent_at, now)} {text}"
            out.append(text_lines("PRIVMSG", self.nick, text, self.factory.mask(message.sender), tags))
        out.append(line("PING", f"ack-{backlog[-1].id}"))  # its PONG acknowledges the page
        self._send(b"".join(out))

    # -- output ----------------------------------------------------------

    def _send(self, data: bytes) -> None:
        """Write, or keep until 001 what comes for a SASL-logged-in client before it (within the send queue's limit)."""
        if self._registered:
            self._write(data)
            return
        self._early.append(data)
        self._early_size += len(data)
        limit = self.clients.limits.max_send_queue
        if self._early_size > limit:
            self._drop(
                f"over {limit} bytes waiting for it to finish registering", "registration not finished"
            )

    def numeric(self, code: str, *params: str) -> None:
        self._write(self._numeric(code, *params))

    def _numeric(self, code: str, *params: str) -> bytes:
        return line(code, self.nick, *params, prefix=self.factory.server_name)

    def _list(self, entries: Iterator[bytes], then: Callable[[], None] | None = None) -> None:
        """Send a reply that goes through the username log or the users online (``entries`` gives
        one step of it at a time: a line, or nothing), :data:`LISTING_STEP` steps a reactor pass,
        whatever the log's size; then call ``then``.  The client's next lines wait until it is sent."""
        self._listings.append((entries, then))
        if len(self._listings) == 1:
            self._list_some()

    def _list_some(self) -> None:
        self._listing_call = None
        out: list[bytes] = []
        steps = LISTING_STEP
        while self._listings and steps:
            entries, then = self._listings[0]
            data = next(entries, None)
            if data is not None:
                out.append(data)
                steps -= 1
                continue
            self._listings.popleft()
            if then is not None:
                self._write(b"".join(out))
                out = []
                then()
        if out:
            self._write(b"".join(out))
        if not self._listings:
            if "listing" in self._holds:
                self._release("listing")
        elif not (self._gone or self._dropped or self.transport.disconnecting):
            self._hold("listing")
            self._listing_call = self.clients.clock.callLater(0, self._list_some)

    def server_notice(self, text: str) -> None:
        self._write(line("NOTICE", self.nick, text, prefix=self.factory.server_name))

    # -- registration ------------------------------------------------------

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
            caps = " ".join(CAPABILITIES[c] if modern else c for c in sorted(CAPABILITIES))
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
            verdict = "ACK" if wanted and all(n in CAPABILITIES for n in names) else "NAK"
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
        self.factory.idents[self.nick_key] = (self.username, self.realname)
        server = self.factory.server_name
        self.numeric(rfc.RPL_WELCOME, f"Welcome to the {self.factory.network} network, {name}")
        self.numeric(rfc.RPL_YOURHOST, f"Your host is {server}, running version {VERSION}")
        self.numeric(rfc.RPL_CREATED, f"This server was created {self.factory.created}")
        self.numeric(rfc.RPL_MYINFO, server, VERSION, "ir", "nt")
        self._isupport()
        self._list(self._motd(), then=self._registered_now)

    def _registered_now(self) -> None:
        """After the MOTD: what came for the client meanwhile, then what waited for it."""
        self._registered = True
        if self._early:
            self._write(b"".join(self._early))
            self._early = []
        self.clients.hub.deliver_backlog(self)

    def _isupport(self) -> None:
        limits = self.clients.limits
        tokens = [
            "CASEMAPPING=ascii",
            "CHANLIMIT=#:1",
            "CHANMODES=,,,nt",
            f"CHANNELLEN={len(self.channel)}",
            "CHANTYPES=#",
            f"MONITOR={MONITOR_LIMIT}",
            f"NETWORK={self.factory.network}",
            "NICKLEN=32",
            "PREFIX=",
            f"TARGMAX=PRIVMSG:{limits.max_recipients},NOTICE:{limits.max_recipients},JOIN:{CHANNEL_TARGETS},"
            f"PART:{CHANNEL_TARGETS},NAMES:{CHANNEL_TARGETS},WHOIS:1,MONITOR:{MONITOR_LIMIT}",
            f"USERLEN={USERLEN}",
            "UTF8ONLY",
        ]
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

    # -- after registration -------------------------------------------------

    def irc_MOTD(self, params: list[str]) -> None:
        self._list(self._motd())

    def irc_PING(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "PING", "Not enough parameters")
            return
        server = self.factory.server_name
        self._write(line("PONG", server, params[-1], prefix=server))

    def irc_PONG(self, params: list[str]) -> None:
        token = params[-1] if params else ""
        up_to = ascii_int(token[4:]) if token.startswith("ack-") else None
        if up_to is not None and self._registered:
            self.clients.hub.acknowledge(self, up_to)

    def irc_QUIT(self, params: list[str]) -> None:
        reason = printable(params[0]) if params else ""
        self._quit = f"quit: {reason}" if reason else "quit"
        self.bye(f"Quit: {reason}" if reason else "Quit")

    def irc_PRIVMSG(self, params: list[str]) -> None:
        self._message("PRIVMSG", params)

    def irc_NOTICE(self, params: list[str]) -> None:
        self._message("NOTICE", params)

    def _message(self, verb: str, params: list[str]) -> None:
        """PRIVMSG or NOTICE: to nicks (a unicast or a multicast), or to #all (a broadcast).

        A NOTICE is never answered with an error, as RFC 2812 asks.
        """
        quiet = verb == "NOTICE"
        if not params or not params[0]:
            if not quiet:
                self.numeric(rfc.ERR_NORECIPIENT, f"No recipient given ({verb})")
            return
        try:
            text = clean_text(self._ctcp(params[1])) if len(params) > 1 else ""
            if len(text.encode("utf-8")) > self.clients.limits.max_text:
                raise ProtocolError(
                    Code.TEXT_TOO_LONG, f"a message may hold at most {self.clients.limits.max_text} bytes"
                )
        except ProtocolError as e:
            if not quiet:
                self.server_notice(f"not sent: {e.text}")
            return
        if wire.is_blank(text):  # spaces alone (or formatting alone) are no text, as on the other fronts
            if not quiet:
                self.numeric(rfc.ERR_NOTEXTTOSEND, "No text to send")
            return
        targets = self._targets(params[0], self.clients.limits.max_recipients, quiet)
        if targets is None:
            return
        if not targets:  # commas only
            if not quiet:
                self.numeric(rfc.ERR_NORECIPIENT, f"No recipient given ({verb})")
            return
        names: list[str] = []
        for target in targets:
            if self._is_channel(target):
                if self not in self.factory.members:
                    if not quiet:
                        self.numeric(
                            rfc.ERR_CANNOTSENDTOCHAN,
                            self.channel,
                            f"Cannot send to channel: JOIN {self.channel} first",
                        )
                    continue
                self.clients.hub.broadcast(self, text)
            elif target.startswith("#"):
                if not quiet:
                    self.numeric(
                        rfc.ERR_NOSUCHCHANNEL, target, f"No such channel: {self.channel} is the only one"
                    )
            elif not wire.is_valid_username(target):
                if not quiet:
                    self.numeric(rfc.ERR_NOSUCHNICK, target, "No such nick/channel")
            else:
                names.append(target)
        if not names:
            return
        report = self.send_to(names, text)
        if self._answers is None and type(report) is Report:  # the common case, inline
            self._sent(report, quiet)
        else:
            self._report_later(report, lambda done: self._sent(done, quiet))

    def _targets(self, field: str, limit: int, quiet: bool = False) -> list[str] | None:
        """The targets of ``field`` (``a,b,#all``), each once however it is spelled; None (answered
        407 unless ``quiet``) if there are more than ``limit``: nothing is done for any of them."""
        targets: dict[str, str] = {}
        for target in field.split(","):
            if target:
                targets.setdefault(target.casefold(), target)
                if len(targets) > limit:
                    if not quiet:
                        self.numeric(rfc.ERR_TOOMANYTARGETS, target, f"Too many targets: at most {limit}")
                    return None
        return list(targets.values())

    def _ctcp(self, text: str) -> str:
        """A CTCP ACTION (``/me waves``) as the text "* nick waves"; other CTCP is not carried."""
        if not text.startswith("\x01"):
            return text
        command, _, argument = text.strip("\x01").partition(" ")
        if command.upper() != "ACTION":
            raise ProtocolError(Code.BAD_SYNTAX, f"msgsvc does not carry CTCP {command.upper()}")
        return f"* {self.nick} {argument}"

    def _sent(self, report: Report, quiet: bool) -> None:
        if quiet:
            return
        for name in report.offline:
            if name in report.queued:
                self.server_notice(f"{name} is away: the message waits for them")
            else:
                self.numeric(rfc.ERR_NOSUCHNICK, name, "No such nick/channel (not online)")

    def irc_JOIN(self, params: list[str]) -> None:
        if not params or not params[0].strip(","):
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")
            return
        for target in self._targets(params[0], CHANNEL_TARGETS) or ():
            if target == "0":
                self.irc_PART([self.channel])
            elif not self._is_channel(target):
                self.numeric(
                    rfc.ERR_NOSUCHCHANNEL, target, f"No such channel: {self.channel} is the only one"
                )
            elif self not in self.factory.members:
                self.factory.members.add(self)
                self._write(line("JOIN", self.channel, prefix=self.factory.mask(self.nick)))
                self.numeric(rfc.RPL_TOPIC, self.channel, TOPIC)
                self._list(self._names())

    def irc_PART(self, params: list[str]) -> None:
        if not params or not params[0].strip(","):
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")
            return
        for target in self._targets(params[0], CHANNEL_TARGETS) or ():
            if not self._is_channel(target):
                self.numeric(rfc.ERR_NOSUCHCHANNEL, target, "No such channel")
            elif self not in self.factory.members:
                self.numeric(rfc.ERR_NOTONCHANNEL, self.channel, "You're not on that channel")
            else:
                self.factory.members.discard(self)
                reason = [printable(params[1])] if len(params) > 1 and params[1] else []
                self._write(line("PART", self.channel, *reason, prefix=self.factory.mask(self.nick)))

    def irc_NAMES(self, params: list[str]) -> None:
        given = params and params[0].strip(",")
        targets = self._targets(params[0], CHANNEL_TARGETS) if given else [self.channel]
        for target in targets or ():
            if self._is_channel(target):
                self._list(self._names())
            else:
                self.numeric(rfc.RPL_ENDOFNAMES, target, "End of /NAMES list")

    def _names(self) -> Iterator[bytes]:
        """353 rows of who is online, then 366: a row, or nothing, a step (one a user online)."""
        directory = self.factory.directory
        row: list[str] = []
        size = 0
        for key in directory.walk(directory.online):
            name = directory.names[key]
            row.append(name)
            size += len(name) + 1
            if size > 400:
                yield self._numeric(rfc.RPL_NAMREPLY, "=", self.channel, " ".join(row))
                row, size = [], 0
            else:
                yield b""
        if row:
            yield self._numeric(rfc.RPL_NAMREPLY, "=", self.channel, " ".join(row))
        yield self._numeric(rfc.RPL_ENDOFNAMES, self.channel, "End of /NAMES list")

    def irc_LIST(self, params: list[str]) -> None:
        """The one channel, with how many are online, and its topic."""
        self.numeric(rfc.RPL_LIST, self.channel, str(len(self.factory.directory.online)), TOPIC)
        self.numeric(rfc.RPL_LISTEND, "End of /LIST")

    def irc_TOPIC(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "TOPIC", "Not enough parameters")
        elif not self._is_channel(params[0]):
            self.numeric(rfc.ERR_NOSUCHCHANNEL, params[0], "No such channel")
        elif len(params) > 1:
            self.numeric(
                rfc.ERR_CHANOPRIVSNEEDED, self.channel, "You're not channel operator: the topic is fixed"
            )
        else:
            self.numeric(rfc.RPL_TOPIC, self.channel, TOPIC)

    def irc_MODE(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
        elif self._is_channel(params[0]):
            if len(params) > 1 and params[1] not in ("+", "b", "+b"):
                self.numeric(rfc.ERR_CHANOPRIVSNEEDED, self.channel, "You're not channel operator")
            elif len(params) > 1:
                self.numeric("368", self.channel, "End of channel ban list")
            else:
                self.numeric(rfc.RPL_CHANNELMODEIS, self.channel, "+nt")
        elif params[0].startswith("#"):
            self.numeric(rfc.ERR_NOSUCHCHANNEL, params[0], "No such channel")
        elif username_key(params[0]) != self.nick_key:
            self.numeric(rfc.ERR_USERSDONTMATCH, "Cant change mode for other users")
        elif len(params) > 1:
            self._user_mode(params[1])
        else:
            self.numeric(rfc.RPL_UMODEIS, self._modes())

    def _modes(self) -> str:
        me = self.clients.hub.user(self.nick)
        return "+" + ("i" if self._invisible else "") + ("r" if me is not None and me.protected else "")

    def _user_mode(self, change: str) -> None:
        """+i and -i (clients set it by habit; everyone online is in #all all the same); r is the server's."""
        adding, changed = True, ""
        for flag in change:
            if flag in "+-":
                adding = flag == "+"
            elif flag == "i":
                if self._invisible != adding:
                    self._invisible = adding
                    changed += ("+" if adding else "-") + "i"
            else:
                self.numeric(rfc.ERR_UMODEUNKNOWNFLAG, "Unknown MODE flag: i is yours to set, r the server's")
                return
        if changed:
            self._write(line("MODE", self.nick, changed, prefix=self.factory.mask(self.nick)))

    def irc_WHO(self, params: list[str]) -> None:
        """``WHO #all``, ``WHO nick``, or a mask (``*``, ``bo*``) over the online users; 315 echoes the mask."""
        self._list(self._who(params[0] if params else "*"))

    def _who(self, mask: str) -> Iterator[bytes]:
        """352 for each user online that ``mask`` names, then 315: a line, or nothing, a step.

        A mask without wildcards is looked up; one that cannot match any name (longer than
        a name can be, its runs of ``*`` counted as one) goes through nobody.
        """
        directory = self.factory.directory
        if self._is_channel(mask):
            channel, pattern = self.channel, "*"
        else:
            channel, pattern = "*", "*" if mask == "0" else re.sub(r"\*+", "*", mask.casefold())
        keys: Iterable[str] = directory.walk(directory.online)
        if "*" not in pattern and "?" not in pattern:
            keys = [pattern] if directory.is_online(pattern) else []
        elif len(pattern) > 2 * USERNAME_MAX + 1:
            keys = []
        server = self.factory.server_name
        for key in keys:
            if pattern != "*" and not glob_match(pattern, key):
                yield b""
                continue
            name = directory.names[key]
            yield self._numeric(
                rfc.RPL_WHOREPLY,
                channel,
                self.factory.user(name),
                "msgsvc",
                server,
                name,
                "H",
                f"0 {self.factory.realname(name)}",
            )
        yield self._numeric(rfc.RPL_ENDOFWHO, mask, "End of WHO list")

    def irc_WHOIS(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        if len(params) > 1:
            server, nick = params[0], params[1]
            if server.lower() != self.factory.server_name.lower() and username_key(server) != username_key(
                nick
            ):
                self.numeric(rfc.ERR_NOSUCHSERVER, server, "No such server")
                return
        else:
            nick = params[0]
        targets = self._targets(nick, 1)
        if targets is None:
            return
        if not targets:
            self.numeric(rfc.ERR_NONICKNAMEGIVEN, "No nickname given")
            return
        nick = targets[0]
        user = self.clients.hub.user(nick)
        if user is None or not user.online:
            where = "offline (in the username log)" if user is not None else "No such nick/channel"
            self.numeric(rfc.ERR_NOSUCHNICK, nick, where)
        else:
            ident, realname = self.factory.user(user.name), self.factory.realname(user.name)
            self.numeric(rfc.RPL_WHOISUSER, user.name, ident, "msgsvc", "*", realname)
            self.numeric(rfc.RPL_WHOISSERVER, user.name, self.factory.server_name, "msgsvc")
        self.numeric(rfc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def irc_ISON(self, params: list[str]) -> None:
        """Which of the names are online; at most :data:`ISON_MAX` bytes of them, so that the answer fits
        in one line, as RFC 2812 has it (with 512-byte lines)."""
        names = " ".join(n for n in " ".join(params).split(" ") if n)
        if len(names.encode()) > ISON_MAX:
            self.numeric(
                rfc.ERR_TOOMANYTARGETS, "ISON", f"Too many names: at most {ISON_MAX} bytes of them"
            )
            return
        directory = self.factory.directory
        keys = dict.fromkeys(username_key(n) for n in names.split(" ") if n)
        self.numeric(rfc.RPL_ISON, " ".join(directory.names[k] for k in keys if directory.is_online(k)))

    def irc_MONITOR(self, params: list[str]) -> None:
        """IRCv3 MONITOR: 730/731 now and whenever a watched name comes or goes, for any name."""
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "MONITOR", "Not enough parameters")
            return
        sub = params[0].upper()
        targets = self._targets(params[1], MONITOR_LIMIT) if len(params) > 1 else []
        if targets is None:
            return
        targets = [t for t in targets if wire.is_valid_username(t)]
        watchers = self.factory.monitors
        if sub == "+":
            added = []
            for target in targets:
                if len(self.monitoring) >= MONITOR_LIMIT:
                    self.numeric(
                        ERR_MONLISTFULL, str(MONITOR_LIMIT), ",".join(targets), "Monitor list is full"
                    )
                    break
                key = username_key(target)
                self.monitoring[key] = target
                watchers.setdefault(key, set()).add(self)
                added.append(target)
            self._monitor_status(added)
        elif sub == "-":
            keys = [username_key(target) for target in targets]
            for key in keys:
                self.monitoring.pop(key, None)
            self.factory.unwatch(self, keys)
        elif sub == "C":
            self.factory.unwatch(self, self.monitoring)
            self.monitoring.clear()
        elif sub == "L":
            if self.monitoring:
                self.numeric(RPL_MONLIST, ",".join(self.monitoring.values()))
            self.numeric(RPL_ENDOFMONLIST, "End of MONITOR list")
        elif sub == "S":
            self._monitor_status(list(self.monitoring.values()))

    def _monitor_status(self, targets: Iterable[str]) -> None:
        online, offline = [], []
        for target in targets:
            user = self.clients.hub.user(target)
            if user is not None and user.online:
                online.append(self.factory.mask(user.name))
            else:
                offline.append(user.name if user is not None else target)
        if online:
            self.numeric(RPL_MONONLINE, ",".join(online))
        if offline:
            self.numeric(RPL_MONOFFLINE, ",".join(offline))


#: What a client may send before it is registered.
_BEFORE_REGISTRATION = {"CAP", "AUTHENTICATE", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"}
