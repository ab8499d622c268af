"""The client side of the wire protocol: lines in, events out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc import wire
from msgsvc.fronts.receiver import LineProtocol
from msgsvc.hub.contracts import Kind
from msgsvc.hub.ids import message_id
from msgsvc.hub.rules import ban_mask, is_valid_room, is_valid_username
from msgsvc.wire import ProtocolError


#: The protocol version this client speaks.
VERSION = 13
#: The most ``CONVERSATION`` lines one answer holds (the protocol's limit): more are skipped.
MAX_CONVERSATIONS = 100
#: The most unread messages a ``CONVERSATION`` line counts (the server's cap): a larger count is this.
MAX_UNREAD = 100
#: The most ``MEMBER`` lines kept of one answer, and ``ROOMINFO`` lines of one list: more are skipped.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Stamp:
    """A message's id and server time (version 9): the same message has the same id live, delayed
    and in the history."""

    id: str
    at: float


@dataclass(frozen=True)
class Listed:
    """One ``CONVERSATION`` line: the conversation as the server names it, its newest message's id
    and time, and (version 10) how many messages of others after the read position it holds, and
    the read position (None: none kept, or a version 9 server)."""

    conversation: str
    newest: Stamp
    unread: int = 0
    read: str | None = None


@dataclass(frozen=True)
class Member:
    """One ``MEMBER`` line (version 11): a member of a room, whether it is online, its marks."""

    name: str
    online: bool
    op: bool = False
    voice: bool = False


@dataclass(frozen=True)
class RoomInfo:
    """One ``ROOMINFO`` line (version 11): a room of the list, its members' count and topic."""

    room: str
    members: int
    topic: str


def _room(name: str) -> str:
    """``name`` if it is a room's; ValueError (the line is skipped) if not."""
    if not is_valid_room(name):
        raise ValueError(f"not a room: {name!r}")
    return name


def _user(name: str) -> str:
    """``name`` if it is a username; ValueError (the line is skipped) if not."""
    if not is_valid_username(name):
        raise ValueError(f"not a username: {name!r}")
    return name


def _mask(text: str) -> str:
    """``text`` if it is a ban mask (version 12; a version 11 server's name is one too); ValueError (the
    line is skipped) if not."""
    if ban_mask(text) is None:
        raise ValueError(f"not a ban mask: {text!r}")
    return text


def _by(field: str) -> str:
    """Who did it: a username, or '' for ``-``."""
    return "" if field == "-" else _user(field)


def _position(text: str) -> str:
    """A message id the server gave as a position; ValueError if it is none."""
    position = message_id(text)
    if position is None:
        raise ValueError(f"not a message id: {text!r}")
    return position


class ClientListener(Protocol):
    """What a :class:`ClientProtocol` reports, one method per event."""

    def version(self, version: int, history_days: int) -> None:
        """The version the server speaks with this client, and for how many days it keeps
        history (0: none; a version 8 server keeps none)."""

    def welcomed(self, name: str) -> None: ...
    def user_log(self, users: list[tuple[str, bool, bool]]) -> None:
        """The username log: (name, online, protected) for each name."""

    def protected(self, name: str) -> None:
        """The server stored the password given with ``PASSWORD``."""

    def account(self, name: str, protected: bool) -> None:
        """``name`` gained a password, or lost it (the operator removed it)."""

    def joined(self, name: str) -> None: ...
    def left(self, name: str) -> None: ...

    def removed(self, name: str) -> None:
        """The operator removed ``name`` from the username log."""

    def message(
        self, sender: str, kind: Kind, recipients: tuple[str, ...], text: str, stamp: Stamp | None
    ) -> None:
        """A live message (``stamp`` from a version 9 server)."""

    def delayed(
        self,
        message_id: int,
        sent_at: float,
        sender: str,
        kind: Kind,
        recipients: tuple[str, ...],
        text: str,
        stamp_id: str,
    ) -> None:
        """A message that waited for this user while it was away (the same id may come again);
        ``stamp_id`` is its message id ('' if the server gave none)."""

    def sent(
        self, delivered: int, offline: tuple[str, ...], queued: tuple[str, ...], stamp: Stamp | None
    ) -> None:
        """The answer to a send: how many got it, who is offline, which of those get it later."""

    def history_message(
        self, conversation: str, sender: str, kind: Kind, recipients: tuple[str, ...], stamp: Stamp, text: str
    ) -> None:
        """A message of the history, in a page of ``conversation`` (as the server names it: the answer
        to a :meth:`ClientProtocol.history`, or a page of the catch-up at login), oldest first."""

    def history_end(self, conversation: str, more: bool) -> None:
        """The end of a page of ``conversation``; ``more``: older messages of it may be read."""

    def conversations(self, found: list[Listed]) -> None:
        """The answer to :meth:`ClientProtocol.conversations`, newest first."""

    def read(self, conversation: str, position: str) -> None:
        """(Version 10) this account has read ``conversation`` (as the server names it) up to the
        message id ``position``: the answer to :meth:`ClientProtocol.read`, or another session's."""

    def room(self, room: str, modes: str, topic: str) -> None:
        """(Version 11) the answer to a join begins: ``room``'s modes and topic; its members follow."""

    def room_members(self, room: str, members: list[Member]) -> None:
        """(Version 11) ``room``'s members: the answer to a join or to :meth:`ClientProtocol.members`."""

    def entered(self, room: str, member: Member) -> None:
        """``member`` entered ``room`` (online), with its marks (a founder rejoining is an operator)."""

    def parted(self, room: str, name: str, reason: str) -> None: ...
    def kicked(self, room: str, name: str, by: str, reason: str) -> None: ...

    def room_topic(self, room: str, by: str, topic: str) -> None:
        """``room``'s topic (``by``: '' when nobody set it): the answer to a query, or set by ``by``."""

    def room_mode(self, room: str, by: str, changes: str, args: tuple[str, ...]) -> None:
        """``room``'s modes: the answer to a query (``by`` '', ``changes`` the modes it has, ``args`` the
        limit and key), or ``by`` changed them (``+o bob``)."""

    def invited(self, room: str, name: str) -> None:
        """The answer to :meth:`ClientProtocol.invite`."""

    def invitation(self, room: str, by: str) -> None:
        """``by`` invites this user to ``room``."""

    def bans(self, room: str, bans: list[tuple[str, str]]) -> None:
        """The answer to ``MODE <room> b``: the bans' masks (a version 11 server's: names), and by whom,
        oldest first."""

    def room_gone(self, room: str, reason: str) -> None:
        """``room`` is no longer this user's: deleted, or the membership ended by the operator."""

    def rooms_listed(self, found: list[RoomInfo]) -> None:
        """The answer to :meth:`ClientProtocol.rooms`."""

    def error(self, code: str, text: str) -> None: ...
    def notice(self, text: str) -> None: ...
    def bye(self, reason: str) -> None: ...
    def disconnected(self, reason: str) -> None: ...


def _names(field: str) -> tuple[str, ...]:
    return () if field in ("-", "*") else tuple(field.split(","))


def _stamp(message_id: str, when: str) -> Stamp:
    return Stamp(message_id, wire.parse_millis(when))


class ClientProtocol(LineProtocol):
    """Registers as ``username`` (with ``password``, if any) on connect, then reports server lines to ``listener``.

    Lines it cannot read are logged and skipped: a newer server may send
    verbs or parameters this client does not know.
    """

    log = Logger()
    MAX_LENGTH = 65536  # the server's lines can be longer than the ones it accepts

    def __init__(self, username: str, listener: ClientListener, password: str | None = None) -> None:
        self.username = username
        self.listener = listener
        self._password = password
        self._users: list[tuple[str, bool, bool]] = []
        self._conversations: list[Listed] = []  # the CONVERSATION lines of the answer coming
        self._last_delayed = 0  # the id of the last DELAYED line of the page
        self._version = 8  # until the server answers VERSION
        self._version_asked = False  # VERSION sent and not yet answered
        self._members: list[Member] = []  # the MEMBER lines of the answer coming
        self._rooms: list[RoomInfo] = []  # the ROOMINFO lines of the answer coming
        self._bans: list[tuple[str, str]] = []  # the BAN lines of the answer coming

    def connectionMade(self) -> None:
        self._write("VERSION", str(VERSION))
        self._version_asked = True
        self._write("HELLO", self.username, trailing=self._password or None)
        self._password = None  # not kept longer than needed

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.listener.disconnected(reason.getErrorMessage())

    def lineTooLong(self) -> None:
        self.log.warn("skipped a line over {max} bytes from the server", max=self.MAX_LENGTH)

    def lineReceived(self, raw: bytes) -> None:
        try:
            line = wire.parse_line(raw)
            if line is not None:
                self._dispatch(line.verb, line.params)
        except (ProtocolError, ValueError, IndexError) as e:
            self.log.warn("skipped a line from the server ({error}): {line!r}", error=e, line=raw)

    def _dispatch(self, verb: str, params: tuple[str, ...]) -> None:
        listener = self.listener
        v9 = self._version >= 9  # the text is the last parameter, after the id and time
        v11 = self._version >= 11  # rooms
        match verb:
            case "VERSION" if self._version_asked:
                self._version_asked = False
                self._version = min(int(params[0]), VERSION)
                listener.version(self._version, int(params[1]) if len(params) > 1 else 0)
            case "ERROR" if self._version_asked and params[0] == "UNKNOWN_COMMAND":
                self._version_asked = False  # a version 8 server
                listener.version(8, 0)
            case "WELCOME":
                self._version_asked = False
                self._users = []
                listener.welcomed(params[0])
            case "USER":
                self._users.append((params[0], params[1] == "online", "protected" in params[2:]))
            case "ENDUSERS":
                users, self._users = self._users, []
                listener.user_log(users)
            case "JOINED":
                listener.joined(params[0])
            case "LEFT":
                listener.left(params[0])
            case "REMOVED":
                listener.removed(params[0])
            case "MSG":
                sender, kind, recipients = params[:3]
                stamp = _stamp(*params[3:5]) if v9 and len(params) > 5 else None
                listener.message(sender, Kind(kind), _names(recipients), params[-1] if v9 else params[3], stamp)
            case "PROTECTED":
                listener.protected(params[0])
            case "ACCOUNT":
                listener.account(params[0], params[1] == "protected")
            case "SENT":
                listener.sent(
                    int(params[0]),
                    _names(params[1]),
                    _names(params[2]) if len(params) > 2 else (),
                    _stamp(*params[3:5]) if v9 and len(params) > 4 else None,
                )
            case "DELAYED":
                message_id, when, sender, kind, recipients = params[:5]
                stamp_id = params[5] if v9 and len(params) > 6 and params[5] != "-" else ""
                self._last_delayed = int(message_id)
                listener.delayed(
                    int(message_id),
                    wire.parse_time(when),
                    sender,
                    Kind(kind),
                    _names(recipients),
                    params[-1] if v9 else params[5],
                    stamp_id,
                )
            case "HISTMSG":
                conversation, sender, kind, recipients, message_id, when = params[:6]
                stamp = _stamp(message_id, when)
                listener.history_message(conversation, sender, Kind(kind), _names(recipients), stamp, params[-1])
            case "ENDHISTORY":
                listener.history_end(params[0], params[2] == "more")
            case "CONVERSATION" if len(self._conversations) < MAX_CONVERSATIONS:
                unread, read = (min(int(params[3]), MAX_UNREAD), params[4]) if len(params) > 4 else (0, "-")
                if unread < 0:
                    raise ValueError(f"a negative count: {unread}")
                position = None if read == "-" else _position(read)
                self._conversations.append(Listed(params[0], _stamp(params[1], params[2]), unread, position))
            case "ENDCONVERSATIONS":
                found, self._conversations = self._conversations, []
                listener.conversations(found)
            case "READ" if self._version >= 10:
                listener.read(params[0], _position(params[1]))
            case "ROOM" if v11:
                listener.room(_room(params[0]), params[2], params[-1] if len(params) > 3 else "")
            case "MEMBER" if v11 and len(self._members) < MAX_LISTED:
                marks = params[2:]
                member = Member(params[1], marks[0] == "online", "op" in marks[1:], "voice" in marks[1:])
                if is_valid_username(member.name):
                    self._members.append(member)
            case "ENDMEMBERS" if v11:
                found_members, self._members = self._members, []
                listener.room_members(_room(params[0]), found_members)
            case "ENTERED" if v11:
                marks = params[2:]
                member = Member(_user(params[1]), True, "op" in marks, "voice" in marks)
                listener.entered(_room(params[0]), member)
            case "PARTED" if v11:
                listener.parted(_room(params[0]), _user(params[1]), params[2] if len(params) > 2 else "")
            case "KICKED" if v11:
                reason = params[3] if len(params) > 3 else ""
                listener.kicked(_room(params[0]), _user(params[1]), _user(params[2]), reason)
            case "TOPIC" if v11:
                listener.room_topic(_room(params[0]), _by(params[1]), params[3] if len(params) > 3 else "")
            case "MODE" if v11:
                listener.room_mode(_room(params[0]), _by(params[1]), params[2], tuple(params[3:]))
            case "INVITED" if v11:
                listener.invited(_room(params[0]), _user(params[1]))
            case "INVITATION" if v11:
                listener.invitation(_room(params[0]), _user(params[1]))
            case "ROOMGONE" if v11:
                listener.room_gone(_room(params[0]), params[1] if len(params) > 1 else "")
            case "ROOMINFO" if v11 and len(self._rooms) < MAX_LISTED:
                info = RoomInfo(params[0], int(params[1]), params[2] if len(params) > 2 else "")
                if is_valid_room(info.room) and info.members >= 0:
                    self._rooms.append(info)
            case "BAN" if v11 and len(self._bans) < MAX_LISTED:
                self._bans.append((_mask(params[1]), _user(params[2])))
            case "ENDBANS" if v11:
                found_bans, self._bans = self._bans, []
                listener.bans(_room(params[0]), found_bans)
            case "ENDROOMS" if v11:
                found_rooms, self._rooms = self._rooms, []
                listener.rooms_listed(found_rooms)
            case "ENDDELAYED":
                # Shown (listeners show at once): the server may drop them, and send the next page.
                if self._last_delayed:
                    self._write("ACK", str(self._last_delayed))
            case "ERROR":
                listener.error(params[0], params[-1] if len(params) > 1 else "")
            case "NOTICE":
                listener.notice(params[0])
            case "BYE":
                listener.bye(params[0] if params else "")
            case "PING":
                self._write("PONG", trailing=params[0] if params else None)

    def _write(self, verb: str, *params: str, trailing: str | None = None) -> None:
        self.transport.write(wire.format_line(verb, *params, trailing=trailing))

    # -- commands --------------------------------------------------------

    def send(self, recipients: tuple[str, ...], text: str) -> None:
        """Unicast (one name) or multicast (several)."""
        self._write("SEND", ",".join(recipients), trailing=text)

    def broadcast(self, text: str) -> None:
        self._write("BROADCAST", trailing=text)

    def set_password(self, password: str) -> None:
        """Protect this connection's name with ``password``, or change its password."""
        self._write("PASSWORD", trailing=password)

    def history(self, conversation: str, before: str, count: int | None) -> None:
        """Ask for the ``count`` messages (the server's default if None) of ``conversation``
        (``#all`` or comma-separated names) before the message id ``before`` (``*``: the latest)."""
        self._write("HISTORY", conversation, before, *([str(count)] if count is not None else []))

    def conversations(self) -> None:
        """Ask for this user's conversations, newest first (version 9)."""
        self._write("CONVERSATIONS")

    def read(self, conversation: str, position: str) -> None:
        """Say this user has read ``conversation`` up to the message id ``position`` (version 10)."""
        self._write("READ", conversation, position)

    def join(self, room: str, key: str = "") -> None:
        """Join ``room`` (creating it if there is none), with its ``key`` if it has one (version 11)."""
        self._write("JOIN", room, trailing=key or None)

    def part(self, room: str, reason: str = "") -> None:
        self._write("PART", room, trailing=reason or None)

    def topic(self, room: str, text: str | None) -> None:
        """Ask for ``room``'s topic (``text`` None), or set it."""
        self._write("TOPIC", room, trailing=text)

    def invite(self, room: str, name: str) -> None:
        self._write("INVITE", room, name)

    def kick(self, room: str, name: str, reason: str = "") -> None:
        self._write("KICK", room, name, trailing=reason or None)

    def mode(self, room: str, *changes: str) -> None:
        """Ask for ``room``'s modes (no ``changes``), or change them: ``+i``, ``+o bob``, ``+k secret``."""
        self._write("MODE", room, *changes)

    def members(self, room: str) -> None:
        self._write("MEMBERS", room)

    def rooms(self, mine: bool = False) -> None:
        """Ask for the rooms listed to this user (``mine``: only its own)."""
        self._write("ROOMS", *(["mine"] if mine else []))

    def quit(self, reason: str = "") -> None:
        self._write("QUIT", trailing=reason or None)


class ClientFactory(Factory):
    """Builds the one :class:`ClientProtocol` of a connection attempt."""

    noisy = False

    def __init__(self, username: str, password: str | None, listener: ClientListener) -> None:
        self.username = username
        self.password = password
        self.listener = listener

    def buildProtocol(self, addr: object) -> ClientProtocol:
        protocol = ClientProtocol(self.username, self.listener, self.password)
        protocol.factory = self
        return protocol
