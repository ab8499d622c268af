"""Message ids (docs/protocol.rst "History"): ULID-like, time-ordered, unique across nodes; what a
client may give as an id, and how a time becomes a position among them."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MESSAGE_ID = re.compile("[0-7][0-9A-HJKMNP-TV-Z]{25}")
_RANDOM_BITS = 80
# Crockford's digits as int()'s base-32 digits, a table of bytes: bytes.translate runs through it in C,
# where str.translate looks each character up in a dict (7,000 instructions an id against 1,000).
_TO_INT_DIGITS = bytes.maketrans(_CROCKFORD.encode(), b"0123456789abcdefghijklmnopqrstuv")


#: Every two digits, by the 10 bits they stand for.
_PAIRS = [high + low for high in _CROCKFORD for low in _CROCKFORD]
_LOW_40 = (1 << 40) - 1


def _digits(value: int, count: int) -> str:
    """The last ``count`` digits of ``value`` in Crockford's base 32, the most significant first:
    ``count`` even, and at most 12, so that the compiled build shifts machine integers."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(5 * count - 10, -1, -10)])


def message_id_value(position: str) -> int:
    """A message id (or :func:`message_id_floor`) as its 128 bits: ids and their values are in the same
    order."""
    return int(position.encode().translate(_TO_INT_DIGITS), 32)


def message_id_text(value: int) -> str:
    """The message id whose value (:func:`message_id_value`) is ``value``: its 128 bits as 26
    characters of Crockford's base 32, the most significant first."""
    return _digits(value >> 80, 10) + _digits(value >> 40 & _LOW_40, 8) + _digits(value & _LOW_40, 8)


def message_id(text: str) -> str | None:
    """``text`` as a message id (upper case), or None if it is not one."""
    text = text.upper()
    return text if _MESSAGE_ID.fullmatch(text) else None


def message_id_time(message_id: str) -> float:
    """The time (seconds since the epoch, to the millisecond) in a valid message id."""
    millis = 0
    for char in message_id[:10]:  # 50 bits: 2 zero bits, then the 48 of the time
        millis = millis * 32 + _CROCKFORD.index(char)
    return millis / 1000


def _millis(when: float) -> int:
    """The millisecond ``when`` falls in (a microsecond's grace: 0.116 s times 1000 may be 115.99...)."""
    return max(int(when * 1000 + 0.001), 0)


def message_id_floor(when: float) -> str:
    """The least id of the millisecond ``when`` falls in: every message of an earlier millisecond has
    a smaller id, every one of it or later one at least this (how a time becomes a position)."""
    return message_id_text(_millis(when) << _RANDOM_BITS)


def message_id_below(position: str) -> str:
    """The greatest id below ``position`` (an id, or :func:`message_id_floor`): what is above it is
    ``position`` and what is above that ("" below the least)."""
    digits = [_CROCKFORD.index(char) for char in position]
    for at in range(len(digits) - 1, -1, -1):
        if digits[at]:
            digits[at] -= 1
            return "".join(_CROCKFORD[d] for d in digits)
        digits[at] = 31
    return ""


class MessageIds:
    """Makes this node's message ids: ULID-like, time-ordered, unique across nodes with no round trip.

    An id is 48 bits of milliseconds since the epoch, then 80 bits: random for the node's first id of a
    millisecond, one more for each further one, so this node's ids always grow in the order made.  A
    clock that goes back leaves the ids at the latest millisecond (counting on) until it catches up.
    """

    def __init__(self, clock: IReactorTime, random: Callable[[int], bytes] = os.urandom) -> None:
        self._clock = clock
        self._random = random
        self._millis = -1
        self._low = 0
        self._stem = ""  # the id but its last two digits: its millisecond, then _low but its last 10 bits

    def make(self) -> tuple[str, float]:
        """A new id, and its time (seconds since the epoch, to the millisecond): the message's."""
        millis = _millis(self._clock.seconds())
        if millis > self._millis:
            self._start(millis)
        else:
            self._low += 1
            if not self._low & 1023:  # the last two digits wrap round: the ones before them change
                if self._low >> _RANDOM_BITS:  # 2**79 ids in one millisecond: never, but stay unique
                    self._start(self._millis + 1)
                else:
                    self._restem(self._stem[:10])
        return self._stem + _PAIRS[self._low & 1023], self._millis / 1000

    def _start(self, millis: int) -> None:
        """Make the ids of millisecond ``millis`` from now on, counting from 79 random bits."""
        self._millis = millis
        self._low = int.from_bytes(self._random(_RANDOM_BITS // 8), "big") >> 1
        self._restem(_digits(millis, 10))

    def _restem(self, prefix: str) -> None:
        """The id but its last two digits: ``prefix`` (its millisecond's 10), then those of ``_low``
        but its last 10 bits."""
        low = self._low
        self._stem = prefix + _digits(low >> 40, 8) + _digits(low >> 10 & 0x3FFFFFFF, 6)
