"""The server window's Rooms view, decided with no toolkit in it: each room with its members (online
marks, operators, voice), its bans (who, by whom, when), modes and topic; the operator deletes a room or
removes a member.  The hub offers the operator no way to lift a ban: a room operator lifts it (``MODE
<room> -b <mask>``), as :data:`BANS_LIFTED_BY` says in the window.

It follows the hub's :class:`~msgsvc.hub.events.RoomChanged` and a user's coming and going (the online
marks of its rooms' rows): a room changed is redrawn :data:`REDRAW` seconds later, once however often it
changed meanwhile, so a burst of changes to a room of m members (m joining) costs m rows drawn, not m².
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from msgsvc.hub.contracts import Ban, MemberView, RoomView
from msgsvc.hub.rooms import Rooms
from msgsvc.hub.rules import mask_key, room_key, username_key
from msgsvc.servergui.times import stamp

#: a room's row: its name, members, modes, topic, founder, created; a member's row under it: its name,
#: its online mark, operator or voice; a ban's row under it: the name, "banned", by whom, when
ROOM_COLUMNS = ("room", "members", "modes", "topic", "founder", "created")

#: one row of the table: its id and cells
Row = tuple[str, tuple[str, ...]]
#: one room's rows: the room's, and under it each member's, then each ban's (oldest first)
RoomRows = tuple[Row, list[Row], list[Row]]

#: seconds a changed room waits to be redrawn (with every other change meanwhile)
REDRAW = 0.25

#: what the window says of lifting a ban
BANS_LIFTED_BY = "A ban is lifted by a room operator (MODE <room> -b <mask>), not here."


class RoomsView(Protocol):
    def show_rooms(self, rooms: list[RoomRows]) -> None:
        """Replace the rooms' table with these rooms, in order."""

    def put_room(self, rows: RoomRows, index: int) -> None:
        """Insert one room (or redraw it in place, its members too) and put it at ``index``."""

    def delete_room(self, row_id: str) -> None:
        """Take a room's row (and its members') out of the table."""


def modes_text(room: RoomView) -> str:
    """``+iklnt key=s3cret limit=20``: the flags, with the key's and the limit's values."""
    letters = set(room.modes) | ({"k"} if room.key is not None else set()) | ({"l"} if room.limit is not None else set())
    values = ([f"key={room.key}"] if room.key is not None else []) + (
        [f"limit={room.limit}"] if room.limit is not None else []
    )
    return " ".join(["+" + "".join(sorted(letters)) if letters else "", *values]).strip()


def deletion_question(room: str, members: int) -> str:
    """What the window asks before deleting ``room``."""
    return (
        f"Delete {room}? Its {members} members are told why and leave it; its topic, modes and bans are"
        " forgotten. This cannot be undone."
    )


class RoomsPresenter:
    """Drives a :class:`RoomsView` from the hub's rooms; carries out the operator's room actions.

    ``event`` adds a line to the window's event pane.
    """

    def __init__(self, view: RoomsView, rooms: Rooms, event: Callable[[str], None], clock: IReactorTime) -> None:
        self._view = view
        self._rooms = rooms
        self._event = event
        self._clock = clock
        self._order: list[str] = []  # the shown rooms' keys, sorted
        self._changed: set[str] = set()  # the keys of the rooms to redraw
        self._redraw: IDelayedCall | None = None

    def show_all(self) -> None:
        self.stop()
        views = self._rooms.everything()
        self._order = [room_key(v.name) for v in views]
        self._view.show_rooms([self.rows(v) for v in views])

    def stop(self) -> None:
        """Forget the changes not redrawn yet."""
        self._changed.clear()
        if self._redraw is not None and self._redraw.active():
            self._redraw.cancel()
        self._redraw = None

    def changed(self, room: str) -> None:
        """``room`` changed (or is gone): its rows redrawn (or taken out) :data:`REDRAW` seconds later."""
        self._changed.add(room_key(room))
        if self._redraw is None:
            self._redraw = self._clock.callLater(REDRAW, self._draw_changed)

    def user_changed(self, name: str) -> None:
        """``name`` came or went: the rooms it is in show its online mark anew."""
        for key in self._rooms.rooms_of(name):
            self.changed(key)

    def _draw_changed(self) -> None:
        self._redraw = None
        changed, self._changed = sorted(self._changed), set()
        for key in changed:
            index = bisect_left(self._order, key)
            shown = index < len(self._order) and self._order[index] == key
            view = self._rooms.find(key)
            if view is None:
                if shown:
                    del self._order[index]
                    self._view.delete_room(key)
                continue
            if not shown:
                insort(self._order, key)
            self._view.put_room(self.rows(view), bisect_left(self._order, key))

    def rows(self, room: RoomView) -> RoomRows:
        key = room_key(room.name)
        online = sum(m.online for m in room.members)
        cells = (
            room.name,
            f"{len(room.members)} ({online} online)",
            modes_text(room),
            room.topic + (f"  (set by {room.topic_by})" if room.topic and room.topic_by else ""),
            room.founder or "",
            stamp(room.created),
        )
        members = [(f"{key}/{username_key(m.name)}", self.member_cells(m)) for m in room.members]
        bans = [(f"{key}/ban/{mask_key(b.mask)}", self.ban_cells(b)) for b in room.bans]
        return (key, cells), members, bans

    @staticmethod
    def member_cells(member: MemberView) -> tuple[str, ...]:
        roles = ", ".join(role for role, has in (("operator", member.op), ("voice", member.voice)) if has)
        return (member.name, "● online" if member.online else "○ offline", roles, "", "", "")

    @staticmethod
    def ban_cells(ban: Ban) -> tuple[str, ...]:
        return (ban.mask, "⊘ banned", f"by {ban.by}", "", "", stamp(ban.at))

    # -- the operator's actions -------------------------------------------

    def delete(self, room: str, reason: str) -> bool:
        """Delete ``room``, its members told ``reason``; whether it was asked of the hub."""
        reason = reason.strip()
        if not room:
            self._event("pick a room to delete")
            return False
        if not reason:
            self._event(f"give a reason to delete {room}")
            return False

        def done(deleted: bool) -> None:
            self._event(f"operator deleted {room}: {reason}" if deleted else f"{room} is no longer there")

        self._rooms.delete(room, reason).addCallbacks(done, self._failed(f"could not delete {room}"))
        return True

    def remove_member(self, room: str, name: str, reason: str) -> bool:
        """End ``name``'s membership of ``room`` (a protected account's too), telling ``reason``."""
        reason = reason.strip()
        if not room or not name:
            self._event("pick a member of a room to remove")
            return False
        if not reason:
            self._event(f"give a reason to remove {name} from {room}")
            return False

        def done(removed: bool) -> None:
            self._event(f"operator removed {name} from {room}: {reason}" if removed else f"{name} is not in {room}")

        self._rooms.remove_member(room, name, reason).addCallbacks(
            done, self._failed(f"could not remove {name} from {room}")
        )
        return True

    def _failed(self, what: str) -> Callable[[Failure], None]:
        return lambda failure: self._event(f"{what}: {failure.getErrorMessage()}")
