"""How late the reactor turns: :class:`ReactorLag`, the number an operator needs when one client (or
one slow call) hogs the server."""

from __future__ import annotations

import math

from prometheus_client import Histogram
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

#: The lag's buckets, in seconds: a healthy reactor is in the first.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReactorLag(Service):
    """Asks ``clock`` to call it every ``interval`` seconds and notes how much later than asked it was."""

    INTERVAL = 0.5

    def __init__(self, clock: IReactorTime, interval: float = INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        self._due = 0.0  # when the next call is due: LoopingCall's next point on its grid
        self.latest = 0.0  # the last call's lag, in seconds
        self.histogram = Histogram(
            "msgsvc_reactor_lag_seconds",
            f"How late a call asked of the reactor every {interval:g} s ran.",
            buckets=BUCKETS,
            registry=None,
        )
        self._call = LoopingCall(self._tick)
        self._call.clock = clock

    def startService(self) -> None:
        Service.startService(self)
        self._due = self._clock.seconds()
        self._call.start(self._interval)

    def stopService(self) -> None:
        Service.stopService(self)
        self._call.stop()

    def _tick(self) -> None:
        now = self._clock.seconds()
        self.latest = max(0.0, now - self._due)
        self.histogram.observe(self.latest)
        start = self._call.starttime
        assert start is not None  # running
        self._due = start + self._interval * (math.floor((now - start) / self._interval) + 1)
