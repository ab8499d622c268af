"""Listings written to one client a piece a reactor pass.

A room's members, the rooms, a page of history: each is a line or two to
ask and many to answer.  Asked a hundred times in one read and written
whole, they were megabytes held for a client that need not read them.
A :class:`Pacer` gives each client :data:`PIECE` bytes of listings a
reactor pass: a listing that does not fit goes on at the next pass (or,
while the client's buffer is full, once it has drained), and meanwhile
the client's next lines wait, so a burst of listings costs one listing
and a piece, however long the burst.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall, IReactorTime

if TYPE_CHECKING:
    from msgsvc.fronts.session import SendQueue

#: Bytes of listings written to one client in a reactor pass.
PIECE = 16 * 1024


class Pacer:
    """What one client's listings may still write this reactor pass, and where they go on."""

    __slots__ = ("_clock", "_queue", "_spent", "_call", "_then")

    def __init__(self, clock: IReactorTime, queue: SendQueue) -> None:
        self._clock = clock
        self._queue = queue
        self._spent = 0
        self._call: IDelayedCall | None = None  # the next pass, which gives :data:`PIECE` again
        self._then: Callable[[], None] | None = None  # a listing going on then

    @property
    def room(self) -> int:
        """Bytes of listings this pass may still write."""
        return max(PIECE - self._spent, 0)

    def spend(self, size: int) -> None:
        """Note ``size`` bytes of a listing written this pass."""
        self._spent += size
        if self._call is None:
            self._call = self._clock.callLater(0, self._next_pass)

    def go_on(self, then: Callable[[], None]) -> None:
        """Call ``then`` at the next pass, or once the client's buffer has drained if it is full then."""
        self._then = then
        if self._call is None:
            self._call = self._clock.callLater(0, self._next_pass)

    def stop(self) -> None:
        """The client is gone: go on with nothing."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = self._then = None
        self._queue.when_drained(None)

    def _next_pass(self) -> None:
        self._call = None
        self._spent = 0
        then, self._then = self._then, None
        if then is None:
            return
        if self._queue.full:
            self._queue.when_drained(then)
        else:
            then()
