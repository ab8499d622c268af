"""Failures of one kind logged a few lines an outage (msgsvc.hub.contracts.Outage)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import OUTAGE_EVERY as EVERY, Outage


class OutageTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.outage = Outage(Logger(), self.clock, "route a message", "its sender is refused")

    def fail_times(self, times: int, every: float = 1.0) -> None:
        for _ in range(times):
            self.outage.failed(Failure(OSError("OOM command not allowed")))
            self.clock.advance(every)

    def test_the_first_failure_is_logged_with_its_traceback_the_others_counted(self) -> None:
        with capturedLogs() as logged:
            self.fail_times(50)
        self.assertEqual(len(logged), 1)
        self.assertEqual(logged[0]["log_level"], LogLevel.warn)
        self.assertIsInstance(logged[0]["log_failure"].value, OSError)
        said = formatEvent(logged[0])
        self.assertIn("could not route a message: OOM command not allowed (its sender is refused", said)
        self.flushLoggedErrors(OSError)

    def test_the_end_of_an_outage_says_how_many_failed_and_the_next_is_logged_whole_again(self) -> None:
        self.fail_times(10)
        with capturedLogs() as logged:
            self.outage.over()
            self.outage.over()  # no outage: nothing
            self.fail_times(1)
        self.assertEqual(
            [formatEvent(e) for e in logged[:1]],
            [
                "route a message: works again after 10.0 s; 9 more failed since the last line"
                " (its sender is refused)"
            ],
        )
        self.assertEqual(len(logged), 2)
        self.assertIn("could not route a message: ", formatEvent(logged[1]))
        self.flushLoggedErrors(OSError)

    def test_a_long_outage_says_its_count_every_minute(self) -> None:
        with capturedLogs() as logged:
            self.fail_times(int(EVERY * 3), every=1.0)
        self.assertEqual(
            [formatEvent(e) for e in logged[1:]],
            [f"could not route a message {int(EVERY)} more times in {EVERY:.0f} s: OOM command not allowed"
             " (its sender is refused)"] * 2,
        )
        self.flushLoggedErrors(OSError)
