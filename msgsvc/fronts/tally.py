"""What one front's connections did, in plain integers: :class:`Tally`.

The fronts add to them as things happen (a connection accepted, a read, a
write, a message sent and its report); nothing else is done on that path.
:mod:`msgsvc.ops.metrics` reads them when Prometheus scrapes.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from msgsvc.hub.contracts import Kind, Report

#: The kinds of message, in the order of :attr:`Tally.sent` and the lists beside it.
KINDS = (Kind.UNICAST, Kind.MULTICAST, Kind.BROADCAST, Kind.ROOM)
UNICAST, MULTICAST, BROADCAST, ROOM = range(len(KINDS))


class Tally:
    """One front's counts since the server started; a message's by its kind (an index of :data:`KINDS`)."""

    __slots__ = ("accepted", "bytes_in", "bytes_out", "slowed", "sent", "delivered", "offline", "queued")

    def __init__(self) -> None:
        self.accepted = 0  # connections
        self.bytes_in = 0  # read from clients (a WebSocket's: its messages' payloads)
        self.bytes_out = 0  # written to them, before TLS or WebSocket framing
        self.slowed = 0  # lines held back for their sender's rate (flood slow-downs)
        self.sent = [0] * len(KINDS)  # messages sent
        self.delivered = [0] * len(KINDS)  # users reached, as each SENT reports
        self.offline = [0] * len(KINDS)  # named recipients reported offline
        self.queued = [0] * len(KINDS)  # of those, the ones it waits for

    def count(self, kind: int, report: Report | Deferred[Report]) -> Report | Deferred[Report]:
        """Count a message of ``kind`` sent, and its report once it comes; ``report``, unchanged."""
        self.sent[kind] += 1
        if type(report) is Report:  # not isinstance(report, Deferred), which costs ~2,900 instructions
            self._reported(report, kind)
        else:
            report.addCallback(self._reported, kind)  # type: ignore[union-attr]
        return report

    def _reported(self, report: Report, kind: int) -> Report:
        self.delivered[kind] += report.delivered
        if report.offline:
            self.offline[kind] += len(report.offline)
            self.queued[kind] += len(report.queued)
        return report
