"""The heap handed back once a burst of logins is over."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.heap import QuietTrim, malloc_trim
from msgsvc.hub.events import UserJoined, UserLeft


class QuietTrimTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.trims: list[float] = []
        self.trim = QuietTrim(self.clock, lambda: self.trims.append(self.clock.seconds()), quiet=1.0)

    def test_once_registrations_stop(self) -> None:
        for _ in range(3):
            self.trim(UserJoined("alice", "127.0.0.1:1", False))
            self.clock.advance(0.5)
        self.assertEqual(self.trims, [])
        self.clock.advance(0.5)
        self.assertEqual(self.trims, [2.0])  # a second after the last
        self.clock.advance(10)
        self.assertEqual(self.trims, [2.0])

    def test_not_without_registrations(self) -> None:
        self.trim(UserLeft("alice", "127.0.0.1:1"))
        self.clock.advance(10)
        self.assertEqual(self.trims, [])

    def test_glibc_has_it(self) -> None:
        """This machine's C library is glibc: the server trims (elsewhere it would not)."""
        trim = malloc_trim()
        assert trim is not None
        self.assertIn(trim(), (0, 1))
