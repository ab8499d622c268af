"""The token bucket."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from msgsvc.ratelimit import TokenBucket


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        bucket = TokenBucket(rate=10, burst=3, now=0)
        self.assertEqual([bucket.take(0) for _ in range(3)], [0, 0, 0])
        self.assertAlmostEqual(bucket.take(0), 0.1)
        self.assertAlmostEqual(bucket.take(0), 0.2)  # deeper in debt, longer to wait
        self.assertEqual(bucket.take(0.35), 0)

    def test_refill_is_capped_at_the_burst(self) -> None:
        bucket = TokenBucket(rate=10, burst=2, now=0)
        self.assertEqual([bucket.take(1000) for _ in range(2)], [0, 0])
        self.assertGreater(bucket.take(1000), 0)
