"""A token bucket: how many lines a client may send, and how fast."""

from __future__ import annotations


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
