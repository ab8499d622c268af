"""Conversations (docs/protocol.rst "History"): the key a message is kept under (``#all`` for the
broadcasts, a room's key for a room's messages, else its participants' name keys), a conversation a
client names, and its participants."""

from __future__ import annotations

from collections.abc import Sequence

from msgsvc.hub.contracts import Kind, Refusal, Refused
from msgsvc.hub.rules import recipient_names, room_key, room_name, username_key

#: The conversation of broadcasts.
ALL = "#all"
# Two kinds by name here: an enum's member looked up on its class costs as much as the rest of a
# unicast's key (docs/performance.rst, "Where a kept message's instructions go").
_BROADCAST, _ROOM = Kind.BROADCAST, Kind.ROOM


def conversation_key(sender: str, kind: Kind, recipients: Sequence[str]) -> str | None:
    """The conversation a message is kept in: :data:`ALL` for a broadcast, the room's key for a message
    to a room, else the name keys of its
    ``recipients`` (as :attr:`~msgsvc.hub.contracts.Message.recipients`: names in the log) and its
    ``sender``, each once, sorted and joined by commas; None for a unicast or multicast that named
    nobody in the log."""
    if kind is _BROADCAST:
        return ALL
    if kind is _ROOM:
        return room_key(recipients[0])
    if len(recipients) == 1:  # the commonest: two keys (one for a message to oneself), no set, no sort
        one, other = username_key(sender), username_key(recipients[0])
        return one if one == other else f"{one},{other}" if one < other else f"{other},{one}"
    if not recipients:
        return None
    return ",".join(sorted({username_key(name) for name in (sender, *recipients)}))


def conversation_named(text: str, reader: str, limit: int, rooms: bool = False) -> str:
    """The conversation a client names (``#all``, with ``rooms`` a room, or names joined by commas in any
    case and order, its own included or not), as :func:`conversation_key` makes it, ``reader`` a
    participant; or Refused: ROOM_INVALID for a # that is no room name (with ``rooms``),
    RECIPIENT_INVALID for a name that is no username, TOO_MANY_RECIPIENTS past ``limit`` names besides
    the reader's."""
    if text.casefold() == ALL:
        return ALL
    if rooms and text.startswith("#"):
        return room_key(room_name(text))
    others = {username_key(n) for n in recipient_names(text.split(","), limit + 1)} - {username_key(reader)}
    if len(others) > limit:
        raise Refused(Refusal.TOO_MANY_RECIPIENTS, f"{len(others)} names besides yours; the limit is {limit}")
    return ",".join(sorted({*others, username_key(reader)}))


def participants(conversation: str) -> tuple[str, ...]:
    """The name keys of a direct conversation's participants; none for :data:`ALL` or a room."""
    return () if conversation.startswith("#") else tuple(conversation.split(","))
