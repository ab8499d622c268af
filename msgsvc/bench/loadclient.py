"""One load connection: registers, sends what its worker tells it, times what it receives."""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from msgsvc.bench.dialects import Dialect, Signal, sent_at
from msgsvc.bench.stats import LatencyHistogram
from msgsvc.fronts.receiver import IConnection


class Tally:
    """What every load connection of one process received."""

    def __init__(self) -> None:
        self.delivered = 0
        self.latency = LatencyHistogram()
        self.last_delivery_ns = 0
        self.refusals: list[str] = []
        self.lost_connections = 0


class LoadClient(Protocol):
    """Registers as ``name`` on connecting; ``registered`` and ``in_group`` fire on the server's word.

    Every received message line is counted in the shared :class:`Tally`
    and its latency recorded, timed once per read: the load side's own
    parsing does not count against the server.
    """

    transport: IConnection

    def __init__(
        self, name: str, dialect: Dialect, tally: Tally, clock: Callable[[], int] = time.monotonic_ns
    ) -> None:
        self.name = name
        self._dialect = dialect
        self._tally = tally
        self._clock = clock
        self._buffer = b""
        self.registered: Deferred[LoadClient] = Deferred()
        self.in_group: Deferred[LoadClient] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.quitting = False
        self._joining = False

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.transport.write(self._dialect.register(self.name))

    def join(self, lines: bytes) -> Deferred[LoadClient]:
        """Write ``lines`` (the dialect's to join the broadcast group or the room); ``in_group`` fires
        once in (at once, for no lines: in already)."""
        self._joining = True
        if lines:
            self.transport.write(lines)
        else:
            self.in_group.callback(self)
        return self.in_group

    def quit(self) -> None:
        self.quitting = True
        self.transport.write(self._dialect.quit())

    def dataReceived(self, data: bytes) -> None:
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        tally = self._tally
        now = self._clock()
        for line in lines:
            sent = sent_at(line)
            if sent is None:
                self._control(line)
            else:
                tally.delivered += 1
                tally.latency.record((now - sent) // 1000)
                tally.last_delivery_ns = now

    def _control(self, line: bytes) -> None:
        signal, answer = self._dialect.control(line)
        if answer:
            self.transport.write(answer)
        if signal is Signal.REGISTERED and not self.registered.called:
            self.registered.callback(self)
        elif signal is Signal.IN_GROUP and not self.in_group.called:
            self.in_group.callback(self)
        elif signal is Signal.REFUSED and not self.quitting:
            self._tally.refusals.append(f"{self.name}: {line.decode('utf-8', 'replace').strip()}")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.quitting:
            self._tally.lost_connections += 1
        why = Failure(ConnectionError(f"{self.name}: connection closed: {reason.getErrorMessage()}"))
        if not self.registered.called:
            self.registered.errback(why)
        if self._joining and not self.in_group.called:
            self.in_group.errback(why)
        self.closed.callback(None)
