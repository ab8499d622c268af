"""The operator's view, its parts alone: the reactor's lag, systemd's watchdog, the readiness of an SQLite
file, the hub's events counted, ``--log-format``'s options (end to end: tests/test_ops_end_to_end.py)."""

from __future__ import annotations

import os
import socket

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.hub.contracts import Refusal
from msgsvc.hub.events import ClientDropped, ClientError, RegistrationRefused, SessionOpened
from msgsvc.ops.counts import EventCounts
from msgsvc.ops.lag import ReactorLag
from msgsvc.ops.logs import JSON_LOGGER
from msgsvc.ops.watchdog import Watchdog
from msgsvc.state import StoreError
from msgsvc.state.sqlite import SqliteStore


class ReactorLagTests(SynchronousTestCase):
    def test_how_late_each_call_ran(self) -> None:
        clock = Clock()
        lag = ReactorLag(clock, interval=1.0)
        lag.startService()
        self.assertEqual(lag.latest, 0.0)  # the first, at once
        clock.advance(1.0)
        self.assertEqual(lag.latest, 0.0)
        clock.advance(1.25)  # a reactor stuck: the call due at 2.0 ran at 2.25
        self.assertEqual(lag.latest, 0.25)
        clock.advance(0.75)  # back on its grid: due at 3.0
        self.assertEqual(lag.latest, 0.0)
        clock.advance(3.5)  # stuck past several: the call due at 4.0 ran at 6.5, once
        self.assertEqual(lag.latest, 2.5)
        (count,) = [s.value for s in next(iter(lag.histogram.collect())).samples if s.name.endswith("_count")]
        self.assertEqual(count, 5)
        lag.stopService()


class WatchdogTests(SynchronousTestCase):
    def listen(self) -> tuple[socket.socket, str]:
        path = os.path.abspath(self.mktemp())
        systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        systemd.bind(path)
        systemd.settimeout(5)
        self.addCleanup(systemd.close)
        return systemd, path

    def test_tells_systemd_every_half_watchdog(self) -> None:
        systemd, path = self.listen()
        clock = Clock()
        watchdog = Watchdog(clock, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000"})
        self.assertEqual(watchdog.interval, 15.0)
        watchdog.startService()
        self.assertEqual(systemd.recv(100), b"WATCHDOG=1")
        clock.advance(15)
        self.assertEqual(systemd.recv(100), b"WATCHDOG=1")
        watchdog.stopService()
        clock.advance(15)
        systemd.setblocking(False)
        self.assertRaises(BlockingIOError, systemd.recv, 100)

    def test_nothing_unless_systemd_asks_this_process(self) -> None:
        _, path = self.listen()
        self.assertIsNone(Watchdog(Clock(), {}).interval)
        self.assertIsNone(Watchdog(Clock(), {"NOTIFY_SOCKET": path}).interval)  # no WatchdogSec
        other = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}
        self.assertIsNone(Watchdog(Clock(), other).interval)


class SqliteReadinessTests(TestCase):
    def test_ready_once_a_write_transaction_goes_through(self) -> None:
        store = SqliteStore(reactor, os.path.abspath(self.mktemp()), reactor)
        failure = self.failureResultOf(store.check(), StoreError)  # not started: no worker to write
        self.assertEqual(failure.getErrorMessage(), "the store is not running")
        store.startService()
        self.addCleanup(store.stopService)
        return store.check()


class EventCountsTests(SynchronousTestCase):
    def test_refusals_logins_and_drops(self) -> None:
        counts = EventCounts()
        for event in (
            ClientError("1.2.3.4:5", "BAD_SYNTAX", "x"),
            ClientError("1.2.3.4:5", "BAD_SYNTAX", "y"),
            SessionOpened("alice", "1.2.3.4:5", "tcp", 1),
            RegistrationRefused("bob", "1.2.3.4:6", Refusal.AUTH_FAILED, "wrong password"),
            ClientDropped("1.2.3.4:7", "flooding for over 60 s", "flooding"),
        ):
            counts(event)
        self.assertEqual(counts.refusals, {"BAD_SYNTAX": 2})
        self.assertEqual(counts.logins, {"ok": 1, "auth_failed": 1})
        self.assertEqual(counts.dropped, {"flooding": 1})


class LogFormatTests(SynchronousTestCase):
    def parse(self, *args: str) -> ServerOptions:
        twistd = ServerOptions()
        twistd.parseOptions([*args])
        return twistd

    def test_json_is_twistds_logger(self) -> None:
        twistd = self.parse("-n", "msgsvc", "--log-format", "json")
        self.assertEqual(twistd["logger"].__module__ + "." + twistd["logger"].__name__, JSON_LOGGER)

    def test_text_by_default(self) -> None:
        self.assertIsNone(self.parse("-n", "msgsvc")["logger"])

    def test_json_only_to_standard_output(self) -> None:
        for args in (["msgsvc"], ["-n", "--logfile", "x.log", "msgsvc"], ["-n", "--syslog", "msgsvc"]):
            with self.assertRaises(usage.UsageError, msg=args):
                self.parse(*args, "--log-format", "json")
        with self.assertRaises(usage.UsageError):
            self.parse("-n", "msgsvc", "--log-format", "xml")
