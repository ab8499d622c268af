"""#all, the channel of everyone online: joining and leaving it, its names, topic and modes (the rooms'
commands, :mod:`msgsvc.fronts.irc.rooms`, come here for it); and the user's own modes."""

from __future__ import annotations

import re
from collections.abc import Iterator

from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.wire import RPL_CREATIONTIME, RPL_TOPICWHOTIME, line
from msgsvc.hub.rules import username_key

CHANNEL = "#all"  # the default name of the one channel
CHANNEL_NAME = re.compile(r"#[^\x00-\x20,:\x7f]{1,31}")  # what --irc-channel may be
#: Channels one JOIN, PART, NAMES or KICK may name (TARGMAX).
CHANNEL_TARGETS = 20
TOPIC = "Everyone online. A message here is a msgsvc broadcast: it goes to all of them."


class Channel(IrcBase):
    """#all as a channel: joining and leaving it, its names, topic and modes."""

    _invisible = False  # user mode +i

    def join_all(self) -> None:
        """JOIN #all: the nick joins it, each of its sessions (joined already: nothing)."""
        if self not in self.factory.members:
            for session in self.factory.sessions_of(self.nick_key):
                session.enter(asked=session is self)

    def part_all(self, reason: str) -> None:
        """PART #all: the nick leaves it, each of its sessions."""
        if self not in self.factory.members:
            self.numeric(rfc.ERR_NOTONCHANNEL, self.channel, "You're not on that channel")
            return
        parted = line(
            "PART", self.channel, *([reason] if reason else []), prefix=self.factory.mask(self.nick)
        )
        for session in self.factory.sessions_of(self.nick_key):
            if session in self.factory.members:
                self.factory.members.discard(session)
                (session._write if session is self else session._send)(parted)

    def enter(self, asked: bool) -> None:
        """Join #all: JOIN, its topic, its names.  ``asked``: in answer to this session's JOIN (else
        another session of its nick joined, or it attached to a nick in #all)."""
        self._join_burst(asked)
        self._list(self._names())

    def _join_burst(self, asked: bool) -> None:
        """Join #all: JOIN and its topic."""
        self.factory.members.add(self)
        server = self.factory.server_name
        burst = (
            self.join_line(self.nick, self.channel)
            + self._numeric(rfc.RPL_TOPIC, self.channel, TOPIC)
            + self._numeric(RPL_TOPICWHOTIME, self.channel, server, self.factory.started)
        )
        (self._write if asked else self._send)(burst)

    def _names(self, end: str | None = None) -> Iterator[bytes]:
        """353 rows of who is online, then 366 (of ``end``, the query a NAMES named: #all by default):
        a row, or nothing, a step (one a user online)."""
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
        yield self._numeric(rfc.RPL_ENDOFNAMES, end or self.channel, "End of /NAMES list")

    def listed_all(self) -> bytes:
        """322 for #all: how many are online, and its topic."""
        return self._numeric(rfc.RPL_LIST, self.channel, str(len(self.factory.directory.online)), TOPIC)

    def topic_all(self, change: bool) -> None:
        if change:
            self.numeric(
                rfc.ERR_CHANOPRIVSNEEDED, self.channel, "You're not channel operator: the topic is fixed"
            )
        else:
            self.numeric(rfc.RPL_TOPIC, self.channel, TOPIC)
            self.numeric(RPL_TOPICWHOTIME, self.channel, self.factory.server_name, self.factory.started)

    def mode_all(self, params: list[str]) -> None:
        """MODE #all: +nt, no bans, and nobody is its operator."""
        if len(params) > 1 and params[1] not in ("+", "b", "+b"):
            self.numeric(rfc.ERR_CHANOPRIVSNEEDED, self.channel, "You're not channel operator")
        elif len(params) > 1:
            self.numeric(rfc.RPL_ENDOFBANLIST, self.channel, "End of channel ban list")
        else:
            self.numeric(rfc.RPL_CHANNELMODEIS, self.channel, "+nt")
            self.numeric(RPL_CREATIONTIME, self.channel, self.factory.started)

    def user_mode(self, params: list[str]) -> None:
        """MODE nick: this client's own modes."""
        if username_key(params[0]) != self.nick_key:
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
