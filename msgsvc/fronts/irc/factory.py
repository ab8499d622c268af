"""The IRC front's factory: what its sessions share (#all's members, MONITOR's watchers, USER idents)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory

from msgsvc.fronts.clients import Clients
from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.channel import CHANNEL
from msgsvc.fronts.irc.markers import READ_MARKER
from msgsvc.fronts.irc.names import Directory
from msgsvc.fronts.irc.registration import CAPABILITIES
from msgsvc.fronts.irc.session import IrcSession
from msgsvc.fronts.irc.wire import RPL_MONOFFLINE, RPL_MONONLINE, line
from msgsvc.hub.contracts import HistoryPolicy, Message
from msgsvc.hub.events import AwayChanged, Event, UserJoined, UserLeft
from msgsvc.hub.ids import MessageIds
from msgsvc.hub.rules import SHOWN_HOST, username_key


#: Why a protected member that went offline left #all, and its away message in its rooms.
OFFLINE = "offline"


class IrcFactory(Factory["IrcSession"]):
    """Builds :class:`IrcSession` instances over the server's shared :class:`Clients`; keeps #all and MONITOR."""

    noisy = False

    def __init__(
        self,
        clients: Clients,
        server_name: str | None = None,
        network: str = "msgsvc",
        channel: str = CHANNEL,
        history: HistoryPolicy = HistoryPolicy(),  # noqa: B008 - frozen
    ) -> None:
        """``history``: what the hub's history keeps and serves (none kept: no CHATHISTORY)."""
        self.clients = clients
        self.history = history
        self.capabilities = dict(CAPABILITIES)
        if history.kept:  # read positions are kept beside the history
            self.capabilities["draft/chathistory"] = "draft/chathistory"
            self.capabilities[READ_MARKER] = READ_MARKER
        self.channel = channel
        self.server_name = server_name or socket.gethostname()
        self.network = network
        started = clients.clock.seconds()
        self.created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started))
        self.started = str(int(started))  # when #all's topic was set, as 333 says it
        #: By name key: an IRC user's USER name and real name (its first session's, while any remains).
        self.idents: dict[str, tuple[str, str]] = {}
        #: By name key: the registered IRC sessions of a nick (an account may have several), oldest first
        #: (from the end of their welcome).
        self.sessions: dict[str, list[IrcBase]] = {}
        #: The name key of an IRC user whose message is being sent, and its client-only tags: what its
        #: recipients here get with it as the hub delivers it (:meth:`relayed`).
        self.relaying: tuple[str, str] | None = None
        self.ids = MessageIds(clients.clock)  # for TAGMSG, which the hub does not carry
        self.members: set[IrcBase] = set()  # sessions that joined #all
        #: By room key: the registered sessions that show it joined (each one's ``rooms``), so that what
        #: a nick's channels hear of it costs their members, not every IRC session.
        self.in_room: dict[str, set[IrcBase]] = {}
        self.monitors: dict[str, set[IrcBase]] = {}  # by name key: who watches it
        self.directory = Directory(clients.hub)
        clients.hub.subscribe(self._event)

    def buildProtocol(self, addr: IAddress | None) -> IrcSession:
        session = IrcSession(self.clients)
        session.factory = self
        return session

    def _event(self, event: Event) -> None:
        """Tell #all of who came and went, and each watcher of a name it MONITORs.  A protected name
        going offline stays in its rooms (it is still their member, as Ergo's always-on clients are):
        it parts #all, and is away (``away-notify``) in its rooms until it comes back; any other name
        quits.  A name's AWAY (here or on another node) reaches those who share a channel with it."""
        match event:
            case UserJoined(name):
                key = username_key(name)
                for member in list(self.members):
                    if member.nick_key != key:
                        member.tell(member.join_line(name, self.channel) + self.away_line(name, member))
                self._away_in(self._kept_rooms(name), name, None)
                self._watched(key, RPL_MONONLINE, self.mask(name))
            case UserLeft(name):
                key = username_key(name)
                rooms = self._kept_rooms(name)
                if rooms:
                    gone = line("PART", self.channel, OFFLINE, prefix=self.mask(name))
                else:
                    gone = line("QUIT", "left", prefix=self.mask(name))
                for member in list(self.members):
                    if member.nick_key != key:
                        member.tell(gone)
                self._away_in(rooms, name, OFFLINE)
                self._watched(key, RPL_MONOFFLINE, name)
            case AwayChanged(name, message):
                key = username_key(name)
                if self.sessions_of(key):
                    shared = self.neighbours(key)
                else:  # a nick of another node (or front): in #all, and in its rooms
                    shared = list(self._in_rooms(self.clients.hub.rooms.rooms_of(name)) | self.members)
                notice = self.away_notice(name, message or "")
                for session in shared:
                    if session.nick_key != key and "away-notify" in session.caps:
                        session.tell(notice)

    def _kept_rooms(self, name: str) -> frozenset[str]:
        """The rooms (keys) ``name`` stays in while offline: a protected name's; none for another."""
        hub = self.clients.hub
        return hub.rooms.rooms_of(name) if hub.account(name) is not None else frozenset()

    def _away_in(self, rooms: frozenset[str], name: str, message: str | None) -> None:
        """``away-notify``: tell the sessions here of others in ``rooms`` that ``name`` is away with
        ``message`` (None: back)."""
        away = self.away_notice(name, message or "")
        key = username_key(name)
        for session in self._in_rooms(rooms):
            if session.nick_key != key and "away-notify" in session.caps:
                session.tell(away)

    def _watched(self, key: str, numeric: str, watched: str) -> None:
        """``numeric`` to whoever MONITORs the name ``key``."""
        for watcher in list(self.monitors.get(key, ())):
            watcher.numeric(numeric, watched)

    def account(self, name: str) -> str | None:
        """``name``'s account, as IRC's account-tag and extended-join say it: its name if protected."""
        return self.clients.hub.account(name)

    def neighbours(self, key: str) -> list[IrcBase]:
        """The IRC sessions of others that share a channel with the nick ``key`` (#all or a room)."""
        mine = self.sessions_of(key)
        shared = self._in_rooms({room for s in mine for room in s.rooms})
        if any(s in self.members for s in mine):
            shared |= self.members
        return [s for s in shared if s.nick_key != key]

    def _in_rooms(self, rooms: Iterable[str]) -> set[IrcBase]:
        """The sessions that show one of ``rooms`` (keys) joined."""
        shown: set[IrcBase] = set()
        for room in rooms:
            shown.update(self.in_room.get(room, ()))
        return shown

    def show_room(self, session: IrcBase, key: str, name: str) -> None:
        """``session`` shows the room ``key`` (spelled ``name``) joined; a session gone meanwhile (a
        JOIN answered late) is left out of the index."""
        session.rooms[key] = name
        if session in self.sessions_of(session.nick_key):
            self.in_room.setdefault(key, set()).add(session)

    def hide_room(self, session: IrcBase, key: str) -> None:
        """``session`` no longer shows the room ``key`` joined."""
        session.rooms.pop(key, None)
        shown = self.in_room.get(key)
        if shown is not None:
            shown.discard(session)
            if not shown:
                del self.in_room[key]

    def away_message(self, name: str) -> str | None:
        """``name``'s away message (``301``): its IRC nick's own (AWAY), or :data:`OFFLINE` for a protected
        name online nowhere, which stays in its rooms (as Ergo's always-on clients are auto-away); None:
        not away."""
        message = self.clients.hub.away(name)
        if message is not None:
            return message
        user = self.clients.hub.user(name)
        return OFFLINE if user is not None and user.protected and not user.online else None

    def away_line(self, name: str, receiver: IrcBase) -> bytes:
        """``away-notify``: the AWAY that tells ``receiver`` (if it asked for it) that ``name`` is away."""
        message = self.clients.hub.away(name)
        if message is None or "away-notify" not in receiver.caps:
            return b""
        return self.away_notice(name, message)

    def away_notice(self, name: str, message: str) -> bytes:
        """``away-notify``'s AWAY from ``name``: away with ``message``, or back (empty)."""
        mask = self.mask(name)
        return line("AWAY", message, prefix=mask) if message else f":{mask} AWAY\r\n".encode()

    def mask(self, name: str) -> str:
        """The ``nick!user@host`` of a msgsvc user."""
        return f"{name}!{self.user(name)}@{SHOWN_HOST}"

    def user(self, name: str) -> str:
        """The user part of a mask: an IRC user's own USER name, else the name again."""
        ident = self.idents.get(username_key(name))
        return ident[0] if ident else name

    def realname(self, name: str) -> str:
        """An IRC user's real name (from USER); for users of other fronts, their name."""
        ident = self.idents.get(username_key(name))
        return ident[1] if ident else name

    @contextmanager
    def relay(self, sender: str, tags: str) -> Iterator[None]:
        """While in it, the messages the hub delivers from ``sender`` (a name key) carry ``tags`` (the
        client-only tags its line came with) to the IRC clients that take them."""
        self.relaying = (sender, tags) if tags else None
        try:
            yield
        finally:
            self.relaying = None

    def relayed(self, message: Message) -> str:
        """The client-only tags ``message`` came with: its sender's, while the hub delivers it as it
        is sent (later, or from another node, it comes without them)."""
        relaying = self.relaying
        if relaying is None or username_key(message.sender) != relaying[0]:
            return ""
        return relaying[1]

    def sessions_of(self, key: str) -> list[IrcBase]:
        """The registered IRC sessions of the nick ``key`` (none: an empty list)."""
        return self.sessions.get(key, [])

    def forget(self, session: IrcSession) -> None:
        siblings = self.sessions.get(session.nick_key, [])
        if session in siblings:
            siblings.remove(session)
        if session.nick_key and not siblings:  # the nick's last session: its ident goes with it
            self.sessions.pop(session.nick_key, None)
            self.idents.pop(session.nick_key, None)
        self.members.discard(session)
        for key in list(session.rooms):
            self.hide_room(session, key)
        self.unwatch(session, session.monitoring)

    def unwatch(self, session: IrcBase, keys: Iterable[str]) -> None:
        """``session`` no longer MONITORs the names ``keys``; a name nobody watches is forgotten."""
        for key in keys:
            watchers = self.monitors.get(key)
            if watchers is not None:
                watchers.discard(session)
                if not watchers:
                    del self.monitors[key]
