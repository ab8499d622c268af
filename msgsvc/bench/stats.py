"""Latency figures that several load processes can merge: a log-linear histogram."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

_EXACT_BELOW = 1024  # microseconds kept exactly; above, 10 significant bits (< 0.1 % error)


def bucket(micros: int) -> int:
    """The lower bound of the histogram bucket that holds ``micros``."""
    if micros < _EXACT_BELOW:
        return max(micros, 0)
    shift = micros.bit_length() - 10
    return (micros >> shift) << shift


class LatencyHistogram:
    """Counts latencies in microseconds, in buckets at most 0.1 % wide."""

    def __init__(self, counts: Mapping[int, int] | None = None) -> None:
        self.counts: Counter[int] = Counter(counts or {})
        self.maximum = max(self.counts, default=0)

    def record(self, micros: int) -> None:
        self.counts[bucket(micros)] += 1
        if micros > self.maximum:
            self.maximum = micros

    def merge(self, other: LatencyHistogram) -> None:
        self.counts.update(other.counts)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def percentile(self, p: float) -> int:
        """The latency (µs) that ``p`` percent of the samples do not exceed; 0 if none."""
        total = self.count
        if not total:
            return 0
        rank = max(1, -(-total * p // 100))  # ceil, at least the first sample
        seen = 0
        for micros in sorted(self.counts):
            seen += self.counts[micros]
            if seen >= rank:
                return min(micros, self.maximum)
        return self.maximum  # pragma: no cover - rank <= total

    def to_json(self) -> dict[str, object]:
        return {"counts": {str(k): v for k, v in self.counts.items()}, "max": self.maximum}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> LatencyHistogram:
        counts = data["counts"]
        assert isinstance(counts, dict)
        histogram = cls({int(k): int(v) for k, v in counts.items()})
        histogram.maximum = int(data["max"])  # type: ignore[call-overload]
        return histogram
