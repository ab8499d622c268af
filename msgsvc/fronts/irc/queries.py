"""Who is who and who is online: WHO, WHOIS, ISON and MONITOR."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.wire import (
    ERR_MONLISTFULL,
    RPL_ENDOFMONLIST,
    RPL_MONLIST,
    RPL_MONOFFLINE,
    RPL_MONONLINE,
    RPL_USERHOST,
)
from msgsvc.hub.globs import glob_match
from msgsvc.hub.rules import USERNAME_MAX, is_valid_username, username_key

MONITOR_LIMIT = 100
#: Bytes of names one ISON may ask about: its answer fits in one line.
ISON_MAX = 400


class Queries(IrcBase):
    """Answers about users: WHO, WHOIS and ISON, and MONITOR's watch list."""

    monitoring: dict[str, str]  # MONITORed names, by key, as the client spelled them

    def irc_WHO(self, params: list[str]) -> None:
        """``WHO #all``, ``WHO #room``, ``WHO nick``, or a mask (``*``, ``bo*``) over the online users; 315
        echoes the mask."""
        mask = params[0] if params else "*"
        if mask.startswith("#") and not self._is_channel(mask):
            self.who_room(mask)
        else:
            self._list(self._who(mask))

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
        if user is None or not user.online and not user.protected:  # a protected name offline: away
            where = "offline (in the username log)" if user is not None else "No such nick/channel"
            self.numeric(rfc.ERR_NOSUCHNICK, nick, where)
        else:
            ident, realname = self.factory.user(user.name), self.factory.realname(user.name)
            self.numeric(rfc.RPL_WHOISUSER, user.name, ident, "msgsvc", "*", realname)
            self.numeric(rfc.RPL_WHOISSERVER, user.name, self.factory.server_name, "msgsvc")
            away = self.factory.away_message(user.name)
            if away is not None:
                self.numeric(rfc.RPL_AWAY, user.name, away)
        self.numeric(rfc.RPL_ENDOFWHOIS, nick, "End of /WHOIS list")

    def irc_USERHOST(self, params: list[str]) -> None:
        """302: ``nick=+user@host`` (``-``: away) for each of up to 5 nicks online."""
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "USERHOST", "Not enough parameters")
            return
        replies = []
        for nick in params[:5]:
            user = self.clients.hub.user(nick)
            if user is not None and user.online:
                here = "-" if self.clients.hub.away(user.name) is not None else "+"
                replies.append(f"{user.name}={here}{self.factory.user(user.name)}@msgsvc")
        self.numeric(RPL_USERHOST, " ".join(replies))

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
        targets = [t for t in targets if is_valid_username(t)]
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
