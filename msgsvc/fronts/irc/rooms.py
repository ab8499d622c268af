"""Channels: the hub's rooms (JOIN, PART, KICK, INVITE, TOPIC, NAMES, LIST, MODE) beside #all, and the
room events the hub tells a member's sessions, in IRC's words.

The hub decides everything (who may join, speak, kick, set what); this module asks it through
:class:`~msgsvc.hub.contracts.IUser`'s room operations, says its refusals with the numerics of
:mod:`msgsvc.fronts.irc.numerics`, and keeps only which channels each session shows as joined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.python.failure import Failure
from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.channel import CHANNEL_TARGETS, Channel
from msgsvc.fronts.irc.wire import ERR_INVALIDMODEPARAM, RPL_CREATIONTIME, RPL_TOPICWHOTIME, line, printable
from msgsvc.hub.contracts import (
    Entered,
    Invited,
    Kicked,
    ModeChange,
    ModeSet,
    Parted,
    Refusal,
    Refused,
    RoomEvent,
    RoomGone,
    RoomInfo,
    RoomView,
    TopicSet,
)
from msgsvc.hub.rooms import TOPIC_MAX
from msgsvc.hub.rules import ban_mask, room_key, username_key
from msgsvc.wire import MODE_CHANGES, ascii_int

#: Rooms as a client sees them, in turn: None for one it does not see.
Views = list[RoomView | None]
#: The channel modes: b takes a mask, o and v a name; k (set) a key; l (set) a limit; i m n s t nothing.
CHANNEL_MODES = "biklmnostv"


class Rooms(Channel):
    """The channel commands, #all's answered as :class:`Channel` answers them, the rooms' by the hub (which
    tells the asking session nothing of what it did: the answer says it, as IRC echoes it)."""

    # -- JOIN and PART -----------------------------------------------------

    def irc_JOIN(self, params: list[str]) -> None:
        if not params or not params[0].strip(","):
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "JOIN", "Not enough parameters")
            return
        if params[0] == "0":  # every room but #all, which stays as JOIN 0 leaves Ergo's default channels
            for name in list(self.rooms.values()):
                self._part(name, "")
            return
        keys = params[1].split(",") if len(params) > 1 else []
        for i, target in enumerate(self._targets(params[0], CHANNEL_TARGETS) or ()):
            key = keys[i] if i < len(keys) and keys[i] else None
            if self._is_channel(target):
                self.join_all()
            elif not target.startswith("#"):
                self.numeric(rfc.ERR_NOSUCHCHANNEL, target, "No such channel")
            elif room_key(target) not in self.rooms:
                self._join(target, key)

    def _join(self, target: str, key: str | None) -> None:
        self._ask(
            lambda: self.user.join(target, key),
            self._joined,
            self._refused(target),
        )

    def _joined(self, view: RoomView) -> None:
        self._show_joined(view, asked=True)

    def _show_joined(self, view: RoomView, asked: bool) -> None:
        """This session is in ``view``'s room: JOIN, its topic, its names (``asked``: its JOIN's answer)."""
        self.factory.show_room(self, room_key(view.name), view.name)
        burst = self.join_line(self.nick, view.name)
        if view.topic:
            burst += self._topic_lines(view.name, view.topic, view.topic_by, view.topic_at)
        self.room_burst(view.name, burst, b"".join(self._room_names(view)), asked)

    def _topic_lines(self, room: str, topic: str, by: str | None, at: float | None) -> bytes:
        """332 and 333."""
        return self._numeric(rfc.RPL_TOPIC, room, topic) + self._numeric(
            RPL_TOPICWHOTIME, room, by or self.factory.server_name, str(int(at or 0))
        )

    def irc_PART(self, params: list[str]) -> None:
        if not params or not params[0].strip(","):
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "PART", "Not enough parameters")
            return
        reason = printable(params[1]) if len(params) > 1 else ""
        for target in self._targets(params[0], CHANNEL_TARGETS) or ():
            if self._is_channel(target):
                self.part_all(reason)
            elif not target.startswith("#"):
                self.numeric(rfc.ERR_NOSUCHCHANNEL, target, "No such channel")
            else:
                self._part(target, reason)

    def _part(self, target: str, reason: str) -> None:
        self._ask(lambda: self.user.part(target, reason), self._parted, self._refused(target))

    def _parted(self, parted: Parted) -> None:
        self.factory.hide_room(self, room_key(parted.room))
        self._write(self._part_line(parted))

    def _part_line(self, parted: Parted) -> bytes:
        reason = [parted.reason] if parted.reason else []
        return line("PART", parted.room, *reason, prefix=self.factory.mask(parted.name))

    # -- TOPIC, INVITE, KICK ------------------------------------------------

    def irc_TOPIC(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "TOPIC", "Not enough parameters")
        elif self._is_channel(params[0]):
            self.topic_all(len(params) > 1)
        elif len(params) > 1:  # set (or clear, with an empty one)
            target, text = params[0], printable(params[1], TOPIC_MAX)
            self._ask(lambda: self.user.topic(target, text), self._topic_set, self._refused(target))
        else:
            target = params[0]
            self._ask(lambda: self.user.topic(target, None), self._say_topic, self._refused(target))

    def _topic_set(self, topic: TopicSet) -> None:
        self._write(self._topic_line(topic))

    def _topic_line(self, topic: TopicSet) -> bytes:
        prefix = self.factory.mask(topic.by) if topic.by else self.factory.server_name
        return line("TOPIC", topic.room, topic.topic, prefix=prefix)

    def _say_topic(self, topic: TopicSet) -> None:
        if topic.topic:
            self._write(self._topic_lines(topic.room, topic.topic, topic.by, topic.at))
        else:
            self.numeric(rfc.RPL_NOTOPIC, topic.room, "No topic is set")

    def irc_INVITE(self, params: list[str]) -> None:
        if len(params) < 2:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "INVITE", "Not enough parameters")
            return
        nick, target = params[0], params[1]
        user = self.clients.hub.user(nick)
        if user is None or not user.online:
            self.numeric(rfc.ERR_NOSUCHNICK, nick, "No such nick/channel")
        elif self._is_channel(target):
            self.numeric(rfc.ERR_USERONCHANNEL, user.name, self.channel, "is already on channel: everyone is")
        else:
            name = user.name
            self._ask(
                lambda: self.user.invite(target, name),
                self._inviting,
                self._refused(target, name),
            )

    def _inviting(self, invited: Invited) -> None:
        self.numeric(rfc.RPL_INVITING, invited.name, invited.room)

    def irc_KICK(self, params: list[str]) -> None:
        if len(params) < 2:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "KICK", "Not enough parameters")
            return
        channels = self._targets(params[0], CHANNEL_TARGETS)
        nicks = self._targets(params[1], self.clients.limits.max_recipients)
        if not channels or not nicks:
            return
        if len(channels) == 1:
            pairs = [(channels[0], nick) for nick in nicks]
        elif len(channels) == len(nicks):
            pairs = list(zip(channels, nicks, strict=True))
        else:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "KICK", "One channel, or as many channels as nicks")
            return
        # Without a comment, the kicker's nick, as RFC 2812 has it.
        reason = printable(params[2]) if len(params) > 2 and params[2] else self.nick
        for target, nick in pairs:
            if self._is_channel(target):
                self.numeric(rfc.ERR_CHANOPRIVSNEEDED, self.channel, "You're not channel operator: nobody is")
            else:
                self._kick(target, nick, reason)

    def _kick(self, target: str, nick: str, reason: str) -> None:
        self._ask(
            lambda: self.user.kick(target, nick, reason),
            self._kicked,
            self._refused(target, nick),
        )

    def _kicked(self, kicked: Kicked) -> None:
        self._write(self._kick_line(kicked))

    def _kick_line(self, kicked: Kicked) -> bytes:
        return line(
            "KICK", kicked.room, kicked.name, kicked.reason or kicked.by, prefix=self.factory.mask(kicked.by)
        )

    # -- NAMES, LIST, WHO ---------------------------------------------------

    def irc_NAMES(self, params: list[str]) -> None:
        """NAMES #a,#b: the 353 rows of each room this client may see (a secret one: its members only;
        #all's last), then one 366 of the query, as RFC 2812 has it.  NAMES alone: every room LIST
        shows it, and #all if it is in it, then 366 ``*``."""
        if not params or not params[0].strip(","):
            self._names_of(self._visible_rooms, self in self.factory.members, "*")
            return
        targets = self._targets(params[0], CHANNEL_TARGETS)
        if targets is not None:
            rooms = [t for t in targets if not self._is_channel(t)]
            self._names_of(lambda: self._views(rooms), len(rooms) < len(targets), ",".join(targets))

    def _names_of(self, views: Callable[[], Deferred[Views]], with_all: bool, end: str) -> None:
        """The 353 rows of ``views`` (#all's too if ``with_all``), then one 366 of ``end``."""

        def say(seen: list[RoomView | None]) -> None:
            rows = (row for view in seen if view is not None for row in self._room_rows(view))
            ended = [self._numeric(rfc.RPL_ENDOFNAMES, end, "End of /NAMES list")]
            closing = self._names(end) if with_all else iter(ended)
            self._list(chain(rows, closing))

        def unread(_: Refused) -> None:  # logged out meanwhile
            self.numeric(rfc.RPL_ENDOFNAMES, end, "End of /NAMES list")

        self._ask(views, say, unread)

    def _visible_rooms(self) -> Deferred[Views]:
        """Every room this client may see (as LIST lists them), with its members."""
        return self.user.rooms(False).addCallback(lambda infos: self._views([info.name for info in infos]))

    def _views(self, rooms: list[str]) -> Deferred[Views]:
        """``rooms`` as this client sees them, in turn; None for one it does not see (none, a secret one)."""

        def unseen(failure: Failure) -> RoomView | None:
            failure.trap(Refused)
            return None

        def seen(room: str) -> Deferred[RoomView | None]:
            try:
                asked = self.user.members(room)
            except Refused:
                return succeed(None)
            return asked.addErrback(unseen)

        return gatherResults([seen(room) for room in rooms], consumeErrors=True)

    def _room_names(self, view: RoomView) -> Iterator[bytes]:
        """A room's 353 rows, then its 366."""
        yield from self._room_rows(view)
        yield self._numeric(rfc.RPL_ENDOFNAMES, view.name, "End of /NAMES list")

    def _room_rows(self, view: RoomView) -> Iterator[bytes]:
        """353 rows of a room's members (operators ``@``, voiced ``+``; both with ``multi-prefix``)."""
        kind = "@" if "s" in view.modes else "="
        row: list[str] = []
        size = 0
        for member in view.members:
            entry = self._prefixes(member.op, member.voice) + member.name
            row.append(entry)
            size += len(entry) + 1
            if size > 400:
                yield self._numeric(rfc.RPL_NAMREPLY, kind, view.name, " ".join(row))
                row, size = [], 0
        if row:
            yield self._numeric(rfc.RPL_NAMREPLY, kind, view.name, " ".join(row))

    def _prefixes(self, op: bool, voice: bool) -> str:
        both = ("@" if op else "") + ("+" if voice else "")
        return both if "multi-prefix" in self.caps else both[:1]

    def irc_LIST(self, params: list[str]) -> None:
        """The rooms this client may see (a secret one only by its members) and #all if it is in it (the
        MOTD tells everyone of it), or those named."""
        names = [t for t in params[0].split(",") if t] if params and params[0] else None
        wanted = None if names is None else {room_key(t) for t in names}
        with_all = self in self.factory.members if names is None else any(map(self._is_channel, names))

        def rows(infos: list[RoomInfo]) -> Iterator[bytes]:
            yield self._numeric(rfc.RPL_LISTSTART, "Channel", "Users  Name")
            if with_all:
                yield self.listed_all()
            for info in infos:
                if wanted is None or room_key(info.name) in wanted:
                    yield self._numeric(rfc.RPL_LIST, info.name, str(info.members), info.topic)
            yield self._numeric(rfc.RPL_LISTEND, "End of /LIST")

        def listed(infos: list[RoomInfo]) -> None:
            self._list(rows(infos))

        self._ask(lambda: self.user.rooms(False), listed, lambda _: listed([]))  # logged out meanwhile

    def who_room(self, target: str) -> None:
        """WHO #room: 352 for each member (G: away or offline; its prefixes), then 315."""

        def rows(view: RoomView) -> Iterator[bytes]:
            server = self.factory.server_name
            for member in view.members:
                here = "H" if member.online and self.clients.hub.away(member.name) is None else "G"
                yield self._numeric(
                    rfc.RPL_WHOREPLY,
                    view.name,
                    self.factory.user(member.name),
                    "msgsvc",
                    server,
                    member.name,
                    here + self._prefixes(member.op, member.voice),
                    f"0 {self.factory.realname(member.name)}",
                )
            yield self._numeric(rfc.RPL_ENDOFWHO, target, "End of WHO list")

        def who(view: RoomView) -> None:
            self._list(rows(view))

        self._ask(
            lambda: self.user.members(target),
            who,
            lambda _: self.numeric(rfc.RPL_ENDOFWHO, target, "End of WHO list"),
        )

    # -- MODE ----------------------------------------------------------------

    def irc_MODE(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "MODE", "Not enough parameters")
        elif self._is_channel(params[0]):
            self.mode_all(params)
        elif params[0].startswith("#"):
            self._room_mode(params[0], params[1:])
        else:
            self.user_mode(params)

    def _room_mode(self, target: str, params: list[str]) -> None:
        """MODE #room: 324 and 329; MODE #room b (+b, -b): the bans; else the changes, asked of the hub."""
        if not params:
            self._ask(lambda: self.user.members(target), self._say_modes, self._refused(target))
            return
        if len(params) == 1 and "b" in params[0] and not params[0].strip("+-b"):  # b, +b, -b: the bans
            self._ask(lambda: self.user.members(target), self._say_bans, self._refused(target))
            return
        changes = self._mode_changes(target, params[0], params[1:])
        if not changes:
            return
        nick = next((arg for mode, arg in changes if mode[1] in "ov" and arg is not None), None)
        self._ask(lambda: self.user.mode(target, changes), self._mode_set, self._mode_refused(target, nick))

    def _mode_refused(self, target: str, nick: str | None) -> Callable[[Refused], None]:
        """A refused change says its numeric; one of a nick not in the log (not in the room, the hub
        says) is 401."""
        said = self._refused(target, nick)

        def say(refused: Refused) -> None:
            if refused.refusal is Refusal.USER_NOT_IN_ROOM and nick and self.clients.hub.user(nick) is None:
                self.numeric(rfc.ERR_NOSUCHNICK, nick, "No such nick/channel")
            elif refused.refusal is Refusal.BAN_LIST_FULL:
                self.numeric(rfc.ERR_BANLISTFULL, target, "b", f"Channel list is full: {refused.text}")
            else:
                said(refused)

        return say

    def _mode_changes(self, target: str, text: str, args: list[str]) -> list[ModeChange]:
        """``+i-m+k key`` as changes (``+i``, None) (``-m``, None) (``+k``, ``key``); a ban mask whole
        (``bob``: ``bob!*@*``).  A mode this server has not is 472 and left out, the others kept.  A
        change lacking its argument, or with one that is none (a key empty or with a space or a comma, a
        limit that is not a number over 0, a ban mask that is none: 696), is left out.  Only the first
        :data:`MODE_CHANGES` mode letters are read (``MODES=12``); the rest are ignored."""
        sign, given = "+", iter(args)
        changes: list[ModeChange] = []
        read = 0
        for mode in text:
            if mode in "+-":
                sign = mode
                continue
            read += 1
            if read > MODE_CHANGES:
                break
            if mode not in CHANNEL_MODES:  # said, and the others applied (``+sp``: s), as servers do
                self.numeric(rfc.ERR_UNKNOWNMODE, mode, "is unknown mode char to me")
            elif mode in "bov" or mode in "kl" and sign == "+":
                arg = next(given, None)
                if arg is not None:
                    arg = self._mode_argument(target, mode, arg)
                if arg is not None:
                    changes.append((sign + mode, arg))
            else:
                if mode == "k":  # -k takes the key by RFC 2812, which is not needed
                    next(given, None)
                changes.append((sign + mode, None))
        return changes

    def _mode_argument(self, target: str, mode: str, arg: str) -> str | None:
        """What the hub takes for ``mode``'s ``arg``; None (said) if it is none."""
        if mode == "b":  # as IRC servers complete it (bob: bob!*@*)
            mask = ban_mask(arg)
            if mask is None:
                self.numeric(ERR_INVALIDMODEPARAM, target, "b", arg, "Not a ban mask: nick!user@host")
            return mask
        if mode in "ov":  # as the log spells it (a nick not in it: 401 if the room is there)
            user = self.clients.hub.user(arg)
            return arg if user is None else user.name
        if mode == "l":
            limit = ascii_int(arg, 9)
            if limit is None or limit < 1:
                self.numeric(ERR_INVALIDMODEPARAM, target, "l", arg, "The limit must be a number over 0")
                return None
            return str(limit)
        if not arg.strip() or " " in arg or "," in arg:  # k: a JOIN could not give it
            self.numeric(ERR_INVALIDMODEPARAM, target, "k", arg, "A key cannot be empty or hold a space or a comma")
            return None
        return arg

    def _mode_set(self, mode: ModeSet) -> None:
        """The asker's ``MODE`` line of what changed; none if nothing did (as IRC servers do)."""
        if mode.changes:
            self._write(self._mode_line(mode))

    def _mode_line(self, mode: ModeSet) -> bytes:
        """MODE #room +o-v+b bob carol eve!*@*: the changes."""
        text, sign = "", ""
        args: list[str] = []
        for change, arg in mode.changes:
            if change[0] != sign:
                sign = change[0]
                text += sign
            text += change[1]
            if arg is not None:
                args.append(arg)
        return line("MODE", mode.room, text, *args, prefix=self.factory.mask(mode.by))

    def _say_modes(self, view: RoomView) -> None:
        modes, args = "+" + view.modes, list[str]()
        if view.limit is not None:
            modes, args = modes + "l", [*args, str(view.limit)]
        if view.key is not None:  # the hub shows it to members only
            modes, args = modes + "k", [*args, view.key]
        self.numeric(rfc.RPL_CHANNELMODEIS, view.name, modes, *args)
        self.numeric(RPL_CREATIONTIME, view.name, str(int(view.created)))

    def _say_bans(self, view: RoomView) -> None:
        """The ban list as a listing (paced: up to ROOM_BANS_MAX long masks, asked again and again)."""
        rows = (self._numeric(rfc.RPL_BANLIST, view.name, b.mask, b.by, str(int(b.at))) for b in view.bans)
        ended = self._numeric(rfc.RPL_ENDOFBANLIST, view.name, "End of channel ban list")
        self._list(chain(rows, (ended,)))

    # -- what the hub tells -----------------------------------------------------

    def room_event(self, event: RoomEvent) -> None:
        """hub.Participant: something happened in a room this user is in (or is invited to)."""
        room = room_key(event.room)
        me = username_key(self._me())
        shown = room in self.rooms
        match event:
            case Entered(_, member) if username_key(member.name) == me:
                if not shown:  # another session of this nick joined
                    self._fetch_joined(event.room)
            case Invited(_, name, by) if username_key(name) == me:
                invite = line(
                    "INVITE", self.nick, event.room, prefix=self.factory.mask(by), tags=self.account_tags(by)
                )
                self._send(invite)
            case _ if not shown:
                pass
            case Entered(_, member):
                self._send(
                    self.join_line(member.name, event.room) + self.factory.away_line(member.name, self)
                )
            case Parted(_, name, _, quit_) if quit_:  # its last session left: QUIT says it, in #all or here
                if self not in self.factory.members:
                    self._send(line("QUIT", "left", prefix=self.factory.mask(name)))
            case Parted(_, name):
                if username_key(name) == me:
                    self.factory.hide_room(self, room)
                self._send(self._part_line(event))
            case Kicked(_, name):
                if username_key(name) == me:
                    self.factory.hide_room(self, room)
                self._send(self._kick_line(event))
            case TopicSet():
                self._send(self._topic_line(event))
            case ModeSet():
                self._send(self._mode_line(event))
            case RoomGone(_, reason, name):
                gone = name or self.nick
                if username_key(gone) == me:
                    self.factory.hide_room(self, room)
                self._send(
                    line("KICK", event.room, gone, reason or "removed", prefix=self.factory.server_name)
                )

    def rejoin(self) -> None:
        def shown(infos: list[RoomInfo]) -> None:
            for info in infos:
                if room_key(info.name) not in self.rooms:
                    self._fetch_joined(info.name)

        maybeDeferred(self.user.rooms, True).addCallbacks(shown, self._not_read)

    def _fetch_joined(self, room: str) -> None:
        """This session is in ``room`` (another of its nick joined it, or it was before): show it, once
        the hub says the room's state."""

        def show(view: RoomView) -> None:
            if room_key(view.name) not in self.rooms:
                self._show_joined(view, asked=False)

        maybeDeferred(self.user.members, room).addCallbacks(show, self._not_read)

    def _not_read(self, failure: Failure) -> None:
        """A room (or the list of them) not read: left again meanwhile, or a server without rooms (the
        hub refuses); any other failure is logged."""
        if not failure.check(Refused):
            self.log.failure("could not read the rooms for {peer}", failure, peer=self.peer)
