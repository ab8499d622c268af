"""Failures of one kind, logged a few lines an outage rather than a line (or a traceback) each.

While the store refuses (Redis away, its ``maxmemory`` reached, a replica's READONLY, SQLite locked),
every message may fail the same way: logging each buried the log (attack38 F3: 13,051 lines in 5 s
from 6 senders).  An :class:`Outage` logs the first failure with its traceback, then how many failed
since: once the work succeeds again, and every :data:`EVERY` seconds while failures go on.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

#: seconds between the counts logged while an outage goes on
EVERY = 60.0


class Outage:
    """The failures of one kind of work (``what``, as in 'could not *route a message*'), and what each
    gave up (``lost``: said with each line), logged on ``log`` by ``clock``'s time."""

    def __init__(self, log: Logger, clock: IReactorTime, what: str, lost: str) -> None:
        self._log = log
        self._clock = clock
        self._what = what
        self._lost = lost
        self._began: float | None = None  # when the first failure came; None: no outage
        self._said = 0.0  # when the last line was logged
        self._count = 0  # failures since that line

    def failed(self, failure: Failure) -> None:
        """One more failure: the first of an outage is logged whole; the others counted, said each minute."""
        now = self._clock.seconds()
        if self._began is None:
            self._began = self._said = now
            self._log.failure(
                "could not {what}: {why} ({lost}; until it works again, the failures are counted)",
                failure,
                level=LogLevel.warn,
                what=self._what,
                why=failure.getErrorMessage(),
                lost=self._lost,
            )
            return
        self._count += 1
        if now - self._said >= EVERY:
            self._log.warn(
                "could not {what} {count} more times in {seconds:.0f} s: {why} ({lost})",
                what=self._what,
                count=self._count,
                seconds=now - self._said,
                why=failure.getErrorMessage(),
                lost=self._lost,
            )
            self._said, self._count = now, 0

    def over(self) -> None:
        """The work succeeded: an outage under way ends, with how many failed since its last line."""
        if self._began is None:
            return
        self._log.info(
            "{what}: works again after {seconds:.1f} s; {count} more failed since the last line ({lost})",
            what=self._what,
            seconds=self._clock.seconds() - self._began,
            count=self._count,
            lost=self._lost,
        )
        self._began, self._count = None, 0
