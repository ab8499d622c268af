"""The line protocol's room lines (docs/protocol.rst "Rooms", version 11; bans as masks from 12): what
the hub's rooms and their events become on the wire."""

from __future__ import annotations

from collections.abc import Sequence

from msgsvc import wire
from msgsvc.hub.rules import is_valid_username, username_key
from msgsvc.hub.contracts import (
    Ban,
    Entered,
    Invited,
    Kicked,
    ModeChange,
    ModeSet,
    Parted,
    RoomEvent,
    RoomGone,
    RoomInfo,
    RoomView,
    TopicSet,
)


def _flags(op: bool, voice: bool) -> tuple[str, ...]:
    return ("op",) * op + ("voice",) * voice


def modes_word(view: RoomView) -> str:
    """A room's modes as one word: ``+`` and its letters, ``k`` and ``l`` among them when set (``+klnt``)."""
    letters = view.modes + "k" * (view.key is not None) + "l" * (view.limit is not None)
    return "+" + "".join(sorted(letters))


def encode_members(view: RoomView) -> bytes:
    """``MEMBER`` lines, then ``ENDMEMBERS``."""
    lines = [
        wire.format_line(
            "MEMBER", view.name, m.name, "online" if m.online else "offline", *_flags(m.op, m.voice)
        )
        for m in view.members
    ]
    return b"".join(lines) + wire.format_line("ENDMEMBERS", view.name, str(len(view.members)))


def encode_joined(view: RoomView) -> bytes:
    """JOIN's answer: ``ROOM``, then the members."""
    room = wire.format_line("ROOM", view.name, wire.format_millis(view.created), modes_word(view), trailing=view.topic)
    return room + encode_members(view)


def encode_mode_query(view: RoomView) -> bytes:
    """``MODE <room> - <modes> [<limit>] [<key>]`` (the key only to members: the view has it then)."""
    args = [str(view.limit)] if view.limit is not None else []
    if view.key is not None:
        args.append(view.key)
    return wire.format_line("MODE", view.name, "-", modes_word(view), *args)


def shown_ban(mask: str, masks: bool) -> str:
    """A ban as a client sees it: its whole mask (version 12, ``masks``); else as version 11 showed bans,
    by name: a name's mask ``name!*@*`` as the name, any other mask whole."""
    nick = mask[:-4]
    return nick if not masks and mask.endswith("!*@*") and is_valid_username(nick) else mask


def encode_bans(room: str, bans: Sequence[Ban], masks: bool) -> bytes:
    """``BAN`` lines (each ban as :func:`shown_ban` shows it), then ``ENDBANS``."""
    lines = [wire.format_line("BAN", room, shown_ban(b.mask, masks), b.by, wire.format_millis(b.at)) for b in bans]
    return b"".join(lines) + wire.format_line("ENDBANS", room, str(len(bans)))


def encode_rooms(rooms: Sequence[RoomInfo]) -> bytes:
    """``ROOMINFO`` lines, then ``ENDROOMS``."""
    lines = [wire.format_line("ROOMINFO", r.name, str(r.members), trailing=r.topic) for r in rooms]
    return b"".join(lines) + wire.format_line("ENDROOMS", str(len(rooms)))


def mode_words(changes: Sequence[ModeChange], masks: bool) -> list[str]:
    """Changes as MODE writes them: ``+o-v`` then their arguments (``bob carol``; a ban as
    :func:`shown_ban` shows it); none: ``+``."""
    if not changes:
        return ["+"]
    letters = []
    sign = ""
    for change, _ in changes:
        if change[0] != sign:
            sign = change[0]
            letters.append(sign)
        letters.append(change[1])
    args = (shown_ban(arg, masks) if change[1] == "b" else arg for change, arg in changes if arg is not None)
    return ["".join(letters), *args]


def encode_event(event: RoomEvent, own: str, masks: bool) -> bytes:
    """A room event as the session of ``own`` (a name as the log spells it) is told it (``masks``: bans
    as version 12 shows them)."""
    match event:
        case Entered(room, member):
            return wire.format_line("ENTERED", room, member.name, *_flags(member.op, member.voice))
        case Parted(room, name, reason):
            return wire.format_line("PARTED", room, name, trailing=reason)
        case Kicked(room, name, by, reason):
            return wire.format_line("KICKED", room, name, by, trailing=reason)
        case TopicSet(room, topic, by, at):
            when = "-" if at is None else wire.format_millis(at)
            return wire.format_line("TOPIC", room, by or "-", when, trailing=topic)
        case ModeSet(room, by, changes):
            return wire.format_line("MODE", room, by, *mode_words(changes, masks))
        case Invited(room, name, by):
            if username_key(name) == username_key(own):
                return wire.format_line("INVITATION", room, by)
            return wire.format_line("INVITED", room, name)
        case RoomGone(room, reason, name):
            if name is None or username_key(name) == username_key(own):
                return wire.format_line("ROOMGONE", room, trailing=reason)
            return wire.format_line("PARTED", room, name, trailing=reason)
    raise AssertionError(event)
