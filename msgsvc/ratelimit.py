"""Token buckets: how many lines a client may send, and how fast; and rates kept per address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from twisted.internet.interfaces import IReactorTime


class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate`` per second; a line takes one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take_one(self, now: float) -> float:
        """Take a token if there is one (then 0); else take nothing: seconds until there is one."""
        self._refill(now)
        if self._tokens < 1:
            return (1 - self._tokens) / self.rate
        self._tokens -= 1
        return 0.0

    def holds_one(self, now: float) -> bool:
        """Whether a token is there to take."""
        self._refill(now)
        return self._tokens >= 1

    def give_back(self) -> None:
        """Return the token :meth:`take_one` took, for what it was taken for did not happen."""
        self._tokens = min(self.burst, self._tokens + 1)

    def full(self, now: float) -> bool:
        """Whether it holds ``burst`` tokens: as if it had never been used."""
        self._refill(now)
        return self._tokens >= self.burst

    def take(self, now: float, cost: float = 1) -> float:
        """Take ``cost`` tokens (the bucket may go into debt); seconds until it is out of debt, or 0."""
        self._refill(now)
        self._tokens -= cost
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


@dataclass(frozen=True)
class Rate:
    """How many one address may make: ``burst`` at once, then ``per_minute``."""

    per_minute: float
    burst: int


class AddressRate:
    """A :class:`Rate` for each address (a token bucket), in this process's memory.

    Each node of a service of several counts on its own.  An address whose
    bucket is full again is as if never seen: those are swept out whenever
    the table grows past twice its size at the last sweep (and past
    :attr:`SWEEP_AT`), so the table holds only the addresses that made
    something within the last ``burst / per_minute`` minutes.
    """

    SWEEP_AT: ClassVar[int] = 1024  # ClassVar: a class attribute in the compiled build too (msgsvc/build.py)

    def __init__(self, rate: Rate, clock: IReactorTime) -> None:
        self._rate = rate
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = self.SWEEP_AT

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, host: str) -> float:
        """Count one more from ``host``: 0, or (past its rate, and not counted) the seconds it must wait."""
        now = self._clock.seconds()
        return self._bucket(host, now).take_one(now)

    def spend(self, host: str, cost: float) -> float:
        """Count ``cost`` more from ``host``, into debt if need be: 0, or the seconds until it is out of debt."""
        now = self._clock.seconds()
        return self._bucket(host, now).take(now, cost)

    def _bucket(self, host: str, now: float) -> TokenBucket:
        """``host``'s bucket; a full one for an address not seen lately (sweeping out the idle ones,
        now and then)."""
        bucket = self._buckets.get(host)
        if bucket is not None:
            return bucket
        bucket = self._buckets[host] = TokenBucket(self._rate.per_minute / 60, self._rate.burst, now)
        if len(self._buckets) > self._sweep_at:
            for idle in [h for h, b in self._buckets.items() if b is not bucket and b.full(now)]:
                del self._buckets[idle]
            self._sweep_at = max(self.SWEEP_AT, 2 * len(self._buckets))
        return bucket

    def allows(self, host: str) -> bool:
        """Whether ``host`` may make one more now (it is not past its rate); nothing is counted."""
        bucket = self._buckets.get(host)
        return bucket is None or bucket.holds_one(self._clock.seconds())

    def give_back(self, host: str) -> None:
        """Return what :meth:`take` counted for ``host``: what it counted did not happen."""
        bucket = self._buckets.get(host)
        if bucket is not None:
            bucket.give_back()
