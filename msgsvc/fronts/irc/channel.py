"""The one channel, #all (everyone online): JOIN, PART, NAMES, LIST, TOPIC and MODE (the
channel's, and the user's own)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.wire import RPL_TOPICWHOTIME, line, printable
from msgsvc.hub.rules import username_key

CHANNEL = "#all"  # the default name of the one channel
CHANNEL_NAME = re.compile(r"#[^\x00-\x20,:\x7f]{1,31}")  # what --irc-channel may be
TOPIC = "Everyone online. A message here is a msgsvc broadcast: it goes to all of them."
#: Channels one JOIN, PART or NAMES may name: there is one (CHANLIMIT=#:1).
CHANNEL_TARGETS = 1


class Channel(IrcBase):
    """#all as a channel: joining and leaving it, its names, topic and modes."""

    _invisible = False  # user mode +i

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
            elif self not in self.factory.members:  # the nick joins: each of its sessions
                for session in self.factory.sessions_of(self.nick_key):
                    session.enter(asked=session is self)

    def irc_PART(self, params: list[str]) -> None:
        if not params or not params[0].strip(","):
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")
            return
        for target in self._targets(params[0], CHANNEL_TARGETS) or ():
            if not self._is_channel(target):
                self.numeric(rfc.ERR_NOSUCHCHANNEL, target, "No such channel")
            elif self not in self.factory.members:
                self.numeric(rfc.ERR_NOTONCHANNEL, self.channel, "You're not on that channel")
            else:  # the nick leaves: each of its sessions
                reason = [printable(params[1])] if len(params) > 1 and params[1] else []
                parted = line("PART", self.channel, *reason, prefix=self.factory.mask(self.nick))
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
            line("JOIN", self.channel, prefix=self.factory.mask(self.nick))
            + self._numeric(rfc.RPL_TOPIC, self.channel, TOPIC)
            + self._numeric(RPL_TOPICWHOTIME, self.channel, server, self.factory.started)
        )
        (self._write if asked else self._send)(burst)

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
