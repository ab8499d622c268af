"""A token bucket: how many lines a client may send, and how fast."""

from __future__ import annotations


class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate`` per second; a line takes one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def take(self, now: float) -> float:
        """Take a token (the bucket may go into debt); seconds until it is out of debt, or 0."""
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
