"""The username log sent to one client a piece a reactor pass.

Sent in one write, a log of 10,000 names (about 200 KB) was a string that
size for each registrant, joined once more by the outbox and freed soon
after: the holes in the heap that glibc keeps, and the cost of a
registration growing with the log.  A :class:`LogSending` writes
:data:`PIECE` names a pass instead, read from the
:class:`~msgsvc.fronts.presence.Presence`'s lines as they are when each
piece goes (it goes on after the key of the last name sent, so names added
or removed meanwhile shift nothing), and waits while the client's socket
buffer is full: a client that does not read holds its own log up, never a
copy of it in the server.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from msgsvc.fronts.presence import Presence, user_line
from msgsvc.fronts.session import SendQueue

#: Names of the log written to a client in one reactor pass (about 20 bytes each: 40 KB), chosen by the
#: figures in docs/performance.rst (500 cost a registration of a 10,000-name log 2.7 times as much more).
PIECE = 2000


class LogSending:
    """The username log going to one client: ``USER`` lines, :data:`PIECE` a pass, then ``ENDUSERS``."""

    def __init__(
        self,
        presence: Presence,
        clock: IReactorTime,
        queue: SendQueue,
        write: Callable[[bytes], bool],
        done: Callable[[], None],
    ) -> None:
        """``write`` writes a piece, and says whether the client is still there to send the next to;
        ``done`` is called once ``ENDUSERS`` is written, unless :meth:`start` wrote it."""
        self._presence = presence
        self._clock = clock
        self._queue = queue
        self._write = write
        self._done = done
        self._after: str | None = None  # the key of the last name sent
        self._sent = 0
        self._next: IDelayedCall | None = None

    def start(self) -> bool:
        """Write the first piece now (unless the client's buffer is full); whether it was the whole log.
        If it was not, the rest follows, and then ``done`` is called."""
        written = False if self._queue.full else self._piece()
        if written is False:
            self._wait()
        return written is True

    def stop(self) -> None:
        """The client is gone: send nothing more."""
        if self._next is not None:
            self._next.cancel()
            self._next = None
        self._queue.when_drained(None)

    def _go_on(self) -> None:
        self._next = None
        written = False if self._queue.full else self._piece()
        if written is True:
            self._done()
        elif written is False:
            self._wait()

    def _wait(self) -> None:
        """Go on at the next reactor pass, or once the client's buffer has drained."""
        if self._queue.full:
            self._queue.when_drained(self._go_on)
        else:
            self._next = self._clock.callLater(0, self._go_on)

    def _piece(self) -> bool | None:
        """Write the next piece: True if it ended the log, False if more follow, None if the client is
        gone."""
        data, count, after = self._presence.log_piece(self._after, PIECE)
        self._sent += count
        if after is None:
            data += user_line("ENDUSERS", str(self._sent))
        else:
            self._after = after
        if not self._write(data):
            return None
        return after is None
