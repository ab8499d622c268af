"""The file descriptor limit, and a listener that pauses while descriptors are short (fakes, task.Clock)."""

from __future__ import annotations

import errno
import resource

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.descriptors import PAUSE, QUIET, AcceptGuard, Limit, check_limit, raise_limit


class FakeSocket:
    def __init__(self) -> None:
        self.error = 0  # accept() fails with this errno, if set

    def accept(self) -> tuple[object, object]:
        if self.error:
            raise OSError(self.error, "no")
        return object(), ("127.0.0.1", 4000)

    def fileno(self) -> int:
        return 7


class FakePort:
    def __init__(self) -> None:
        self.socket: object = FakeSocket()
        self.connected = True
        self.reading = True

    def stopReading(self) -> None:
        self.reading = False

    def startReading(self) -> None:
        self.reading = True

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 8123)


class AcceptGuardTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.port = FakePort()
        self.raw = self.port.socket
        assert isinstance(self.raw, FakeSocket)
        self.guard = AcceptGuard(self.port, self.clock)

    def accept(self) -> object:
        return self.port.socket.accept()  # type: ignore[attr-defined]

    def test_accepts_pass_through(self) -> None:
        self.assertEqual(self.accept()[1], ("127.0.0.1", 4000))  # type: ignore[index]
        self.assertEqual(self.port.socket.fileno(), 7)  # type: ignore[attr-defined]

    def test_emfile_pauses_the_listener_and_logs_once_per_episode(self) -> None:
        self.raw.error = errno.EMFILE  # type: ignore[attr-defined]
        with capturedLogs() as events:
            self.assertRaises(BlockingIOError, self.accept)  # what Twisted reads as "no more clients"
            self.assertFalse(self.port.reading)
            self.clock.advance(PAUSE)
            self.assertTrue(self.port.reading)
            for _ in range(20):  # still short: paused again each time, no new warning
                self.assertRaises(BlockingIOError, self.accept)
                self.clock.advance(PAUSE)
            self.raw.error = 0  # type: ignore[attr-defined]
            self.accept()
            self.clock.advance(QUIET)
            self.accept()
        texts = [e["log_format"] for e in events]
        self.assertEqual(sum("cannot accept connections" in t for t in texts), 1, texts)
        self.assertEqual(sum("accepting connections again" in t for t in texts), 1, texts)
        self.assertEqual(events[-1]["tries"], 21)

    def test_enfile_too(self) -> None:
        self.raw.error = errno.ENFILE  # type: ignore[attr-defined]
        self.assertRaises(BlockingIOError, self.accept)
        self.assertTrue(self.guard.paused)

    def test_other_errors_are_raised(self) -> None:
        self.raw.error = errno.EINVAL  # type: ignore[attr-defined]
        self.assertRaises(OSError, self.accept)
        self.assertTrue(self.port.reading)

    def test_a_stopped_port_is_not_resumed(self) -> None:
        self.raw.error = errno.EMFILE  # type: ignore[attr-defined]
        self.assertRaises(BlockingIOError, self.accept)
        self.port.connected = False
        self.clock.advance(PAUSE)
        self.assertFalse(self.port.reading)


class LimitTests(SynchronousTestCase):
    def test_raise_limit_reaches_the_hard_limit(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        limit = raise_limit()
        self.assertEqual(resource.getrlimit(resource.RLIMIT_NOFILE)[0], limit.soft)
        if hard != resource.RLIM_INFINITY:
            self.assertEqual((limit.before, limit.soft), (min(256, hard), hard))

    def test_warns_when_max_clients_cannot_fit(self) -> None:
        with capturedLogs() as events:
            check_limit(Limit(1024, 1024, 4096), 1000)
            check_limit(Limit(1024, 65536, 65536), 1000)
        warnings = [e for e in events if "needs about" in e["log_format"]]
        self.assertEqual([(w["need"], w["soft"]) for w in warnings], [(1064, 1024)])
