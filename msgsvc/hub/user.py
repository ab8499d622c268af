"""A user's handle on the hub: the avatar a login gives its front, which acts through it afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from twisted.internet.defer import Deferred
from zope.interface import implementer

from msgsvc.hub.contracts import (
    Invited,
    IUser,
    Kicked,
    ModeChange,
    ModeSet,
    Page,
    Parted,
    Refusal,
    Refused,
    Report,
    RoomInfo,
    RoomView,
    Summary,
    TopicSet,
)
from msgsvc.hub.conversations import ALL
from msgsvc.hub.rooms import Rooms
from msgsvc.hub.rules import room_key
from msgsvc.hub.session import Session

if TYPE_CHECKING:
    from msgsvc.hub.core import Hub


@implementer(IUser)
class User:
    """The :class:`IUser` of one login: it holds the hub's session for it, so no call looks it up.

    :meth:`msgsvc.hub.core.Hub.register` makes it, holding the name; the accounts' realm brings it
    online (:meth:`~msgsvc.hub.core.Hub.admit`) and hands it to the front.  After :meth:`log_out`
    the front falls back to :data:`UNREGISTERED`; this user, if still used, is refused as it is
    (NOT_REGISTERED), at the cost of one check of its session.
    """

    __slots__ = ("_hub", "session")

    def __init__(self, hub: Hub, session: Session) -> None:
        self._hub = hub
        self.session = session

    @property
    def name(self) -> str:
        return self.session.record.name

    def send(self, names: Sequence[str], text: str, queue: bool = True) -> Report | Deferred[Report]:
        if self.session.gone:
            not_registered()
        return self._hub.send(self.session, names, text, queue)

    def broadcast(self, text: str) -> Report | Deferred[Report]:
        if self.session.gone:
            not_registered()
        return self._hub.broadcast(self.session, text)

    def acknowledge(self, up_to: int) -> None:
        if self.session.gone:
            not_registered()
        self._hub.acknowledge(self.session, up_to)

    def deliver_backlog(self) -> None:
        if not self.session.gone:  # nothing waits for nobody
            self._hub.deliver_backlog(self.session)

    def log_out(self) -> None:
        self._hub.unregister(self.session)

    def history(self, conversation: str, before: str | None, limit: int) -> Deferred[Page]:
        if self.session.gone:
            not_registered()
        return self._hub.history.page_before(self.name, conversation, before, limit, self._rooms_in())

    def history_after(self, conversation: str, after: str, limit: int) -> Deferred[Page]:
        if self.session.gone:
            not_registered()
        return self._hub.history.page_after(self.name, conversation, after, limit, self._rooms_in())

    def conversations(self, limit: int, counts: bool) -> Deferred[list[Summary]]:
        if self.session.gone:
            not_registered()
        return self._hub.history.conversations(self.name, limit, self._rooms_in(), counts)

    def catch_up(self, from_reads: bool) -> Deferred[list[Page]]:
        if self.session.gone:
            not_registered()
        seen_before = self.session.account.seen_before
        return self._hub.history.catch_up(self.name, seen_before, from_reads, self._rooms_in())

    def mark_read(self, conversation: str, position: str) -> Deferred[str]:
        if self.session.gone:
            not_registered()
        return self._hub.mark_read(self.session, conversation, position)

    def read_position(self, conversation: str) -> Deferred[str | None]:
        if self.session.gone:
            not_registered()
        return self._hub.history.read_position(self.name, conversation, self._rooms_in())

    def join(self, room: str, key: str | None) -> Deferred[RoomView]:
        return self._rooms().join(self.session, room, key)

    def part(self, room: str, reason: str) -> Deferred[Parted]:
        return self._rooms().part(self.session, room, reason)

    def send_room(self, room: str, text: str) -> Report | Deferred[Report]:
        if room_key(room) == ALL:
            return self.broadcast(text)
        return self._rooms().send(self.session, room, text)

    def topic(self, room: str, text: str | None) -> Deferred[TopicSet]:
        return self._rooms().topic(self.session, room, text)

    def invite(self, room: str, name: str) -> Deferred[Invited]:
        return self._rooms().invite(self.session, room, name)

    def kick(self, room: str, name: str, reason: str) -> Deferred[Kicked]:
        return self._rooms().kick(self.session, room, name, reason)

    def mode(self, room: str, changes: Sequence[ModeChange]) -> Deferred[ModeSet]:
        return self._rooms().mode(self.session, room, changes)

    def members(self, room: str) -> Deferred[RoomView]:
        return self._rooms().members(self.session, room)

    def rooms(self, mine: bool) -> Deferred[list[RoomInfo]]:
        return self._rooms().rooms(self.session, mine)

    def _rooms(self) -> Rooms:
        """The hub's rooms, for this user while logged in; else Refused."""
        if self.session.gone:
            not_registered()
        return self._hub.rooms

    def _rooms_in(self) -> frozenset[str]:
        """The keys of the rooms this user is in: their histories it may read."""
        return self._hub.rooms.rooms_of(self.name)


@implementer(IUser)
class Unregistered:
    """The :class:`IUser` of a client not logged in: everything it asks is refused (NOT_REGISTERED)."""

    @property
    def name(self) -> NoReturn:
        not_registered()

    def send(self, names: Sequence[str], text: str, queue: bool = True) -> NoReturn:
        not_registered()

    def broadcast(self, text: str) -> NoReturn:
        not_registered()

    def acknowledge(self, up_to: int) -> NoReturn:
        not_registered()

    def deliver_backlog(self) -> None:
        """Nothing waits for nobody."""

    def log_out(self) -> None:
        """Nobody to log out."""

    def history(self, conversation: str, before: str | None, limit: int) -> NoReturn:
        not_registered()

    def history_after(self, conversation: str, after: str, limit: int) -> NoReturn:
        not_registered()

    def conversations(self, limit: int, counts: bool) -> NoReturn:
        not_registered()

    def catch_up(self, from_reads: bool) -> NoReturn:
        not_registered()

    def mark_read(self, conversation: str, position: str) -> NoReturn:
        not_registered()

    def read_position(self, conversation: str) -> NoReturn:
        not_registered()

    def join(self, room: str, key: str | None) -> NoReturn:
        not_registered()

    def part(self, room: str, reason: str) -> NoReturn:
        not_registered()

    def send_room(self, room: str, text: str) -> NoReturn:
        not_registered()

    def topic(self, room: str, text: str | None) -> NoReturn:
        not_registered()

    def invite(self, room: str, name: str) -> NoReturn:
        not_registered()

    def kick(self, room: str, name: str, reason: str) -> NoReturn:
        not_registered()

    def mode(self, room: str, changes: Sequence[ModeChange]) -> NoReturn:
        not_registered()

    def members(self, room: str) -> NoReturn:
        not_registered()

    def rooms(self, mine: bool) -> NoReturn:
        not_registered()


def not_registered() -> NoReturn:
    """Refuse what a client asks before it logs in, as every call of :data:`UNREGISTERED` does."""
    raise Refused(Refusal.NOT_REGISTERED, "log in first")


#: The user of every client until it logs in, and after it logs out.
UNREGISTERED = Unregistered()
