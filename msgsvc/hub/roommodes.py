"""A room's mode changes asked on this node that its store has not answered yet (docs/scaling.rst "Rooms
across nodes"), with the room's modes as the store last answered or told them.

A node shows a change at once, and its store's answer to it (or another node's change, heard) is the
room as the store wrote it then: without this node's changes asked after it.  :meth:`Pending.shown` is
what the node shows meanwhile: what the store told last (by version, :meth:`Pending.take`) with the
changes not answered yet made on it, in the order they were asked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from msgsvc.hub.contracts import Ban, ModeSet, ModesKept, RoomRecord, changed_modes
from msgsvc.hub.rules import mask_key, oldest_first, username_key


@dataclass(eq=False)
class Asked:
    """A change of a room's modes asked on this node (its bans set at ``at``), not answered yet; the
    memberships (:attr:`~msgsvc.hub.contracts.Member.joined`, by name key) its o and v changes are of."""

    event: ModeSet
    at: float
    memberships: dict[str, int]


@dataclass
class Pending:
    """The changes of a room's modes asked here and not answered (oldest first), and ``kept``: the room's
    modes as the store answered or told them last (each member's op and voice by its own version)."""

    kept: ModesKept
    asked: list[Asked] = field(default_factory=list)

    def take(self, kept: ModesKept, forced: bool = False) -> None:
        """Take of ``kept`` (the store's) what is newer than held, by version (``forced``: all of it): the
        flags, key, limit and bans as one; each member's op and voice (of a later membership: all of it)."""
        room = kept if forced or kept.version > self.kept.version else self.kept
        members = {username_key(member.name): member for member in self.kept.members}
        for member in kept.members:
            held = members.get(username_key(member.name))
            if forced or held is None or (member.joined, member.version) > (held.joined, held.version):
                members[username_key(member.name)] = member
        self.kept = replace(room, members=tuple(members.values()))

    def answered(self, asked: Asked, kept: ModesKept) -> None:
        """The store kept ``asked`` as ``kept`` (:meth:`take`)."""
        self.asked.remove(asked)
        self.take(kept)

    def failed(self, asked: Asked) -> None:
        """The store failed to answer ``asked``: it stays as asked (as this node showed it)."""
        self.asked.remove(asked)
        self.kept = made(self.kept, [asked])

    def refused(self, asked: Asked) -> None:
        """The store refused ``asked``: nothing of it was kept."""
        self.asked.remove(asked)

    def shown(self) -> ModesKept:
        """The room's modes as this node shows them: :attr:`kept` with the changes not answered made on it."""
        return made(self.kept, self.asked)


def modes_of(record: RoomRecord) -> ModesKept:
    """``record``'s modes as a store answers them: its flags, key, limit, version, members (copies: a
    record's members change in place) and bans (oldest first)."""
    members = tuple(replace(member) for member in record.members.values())
    bans = oldest_first(record.bans.values())
    return ModesKept(record.modes, record.key, record.limit, record.version, members, bans)


def made(kept: ModesKept, asked: Iterable[Asked]) -> ModesKept:
    """``kept`` with the changes ``asked`` made on it, in turn (an op or voice of a member not held, or of
    another membership than asked, or a ban held already, passed over); its version as ``kept``'s: what
    a node shows (:meth:`Pending.shown`), and a record takes of a change asked on it
    (:meth:`~msgsvc.hub.rooms.Rooms.mode`)."""
    modes, key, limit = kept.modes, kept.key, kept.limit
    members = {username_key(member.name): member for member in kept.members}
    bans = {mask_key(ban.mask): ban for ban in kept.bans}
    for each in asked:
        event = each.event
        modes, key, limit = changed_modes(modes, key, limit, event.changes)
        for change, arg in event.changes:
            on, letter = change[0] == "+", change[1]
            member = members.get(username_key(arg)) if letter in "ov" and arg is not None else None
            if member is not None and member.joined == each.memberships.get(username_key(member.name)):
                opped = replace(member, op=on) if letter == "o" else replace(member, voice=on)
                members[username_key(member.name)] = opped
            elif letter == "b" and arg is not None:
                if not on:
                    bans.pop(mask_key(arg), None)
                elif mask_key(arg) not in bans:
                    bans[mask_key(arg)] = Ban(arg, event.by, each.at)
    return ModesKept(modes, key, limit, kept.version, tuple(members.values()), tuple(bans.values()))
