"""A room's event (:data:`msgsvc.hub.contracts.RoomEvent`) as the nodes pass it to each other: JSON, with
its kind and its fields (a member's as a list), read back exactly (times are JSON numbers as Python writes
them, never through Lua's).  A change of it (or of Redis's ``SET_MODES``, which writes ModeSet so) is a
change of :data:`msgsvc.state.cluster.FORMAT`."""

from __future__ import annotations

from dataclasses import astuple, fields
from typing import Any

from msgsvc.hub.contracts import (
    Ban,
    Entered,
    Invited,
    Kicked,
    Member,
    ModeSet,
    ModesKept,
    Parted,
    RoomEvent,
    RoomGone,
    TopicSet,
)

_KINDS: dict[str, type[RoomEvent]] = {
    kind.__name__: kind for kind in (Entered, Parted, Kicked, TopicSet, ModeSet, Invited, RoomGone)
}


def encode(event: RoomEvent) -> dict[str, Any]:
    """``event`` as a JSON object."""
    data: dict[str, Any] = {field.name: getattr(event, field.name) for field in fields(event)}
    if isinstance(event, Entered):
        data["member"] = astuple(event.member)
    elif isinstance(event, ModeSet) and event.kept is not None:
        kept = event.kept
        members, bans = [astuple(m) for m in kept.members], [astuple(b) for b in kept.bans]
        data["kept"] = [kept.modes, kept.key, kept.limit, kept.version, members, bans]
    return {"kind": type(event).__name__, **data}


def decode(data: dict[str, Any]) -> RoomEvent:
    """The event :func:`encode` made ``data`` of; KeyError or TypeError if it is none."""
    data = dict(data)
    kind = _KINDS[data.pop("kind")]
    if kind is Entered:
        data["member"] = Member(*data["member"])
    elif kind is ModeSet:
        data["changes"] = tuple((change, arg) for change, arg in data["changes"])
        if data["kept"] is not None:
            modes, key, limit, version, members, bans = data["kept"]
            named, every = tuple(Member(*m) for m in members), tuple(Ban(*b) for b in bans)
            data["kept"] = ModesKept(modes, key, limit, version, named, every)
    return kind(**data)
