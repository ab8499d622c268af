"""The operator's view, its parts alone: the reactor's lag, systemd's watchdog, the readiness of an SQLite
file, the hub's events counted, ``--log-format``'s options (end to end: tests/test_ops_end_to_end.py)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Generator
from typing import Any, cast

from prometheus_client import CollectorRegistry
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.http import HTTPChannel

from msgsvc.hub.contracts import Refusal
from msgsvc.hub.events import ClientDropped, ClientError, RegistrationRefused, SessionOpened
from msgsvc.ops.counts import EventCounts
from msgsvc.ops.lag import ReactorLag
from msgsvc.ops.logs import JSON_LOGGER
from msgsvc.ops.metrics import Metrics
from msgsvc.ops.site import ops_site
from msgsvc.ops.watchdog import Watchdog
from msgsvc.state import StoreError
from msgsvc.state.sqlite import Database, SqliteStore
from msgsvc.wire import Limits
from tests.support.harness import ServerHarness

THREADS = cast(IReactorFromThreads, reactor)


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
        """systemd's notify socket, in a short folder of its own: a socket's path holds at most 107
        bytes, which a test's own temporary path (deep in a checkout, under pytest) can pass."""
        folder = tempfile.mkdtemp(prefix="msgsvc-notify-")
        self.addCleanup(shutil.rmtree, folder)
        path = os.path.join(folder, "notify")
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
    def test_ready_once_a_write_transaction_goes_through(self) -> Deferred[None]:
        store = SqliteStore(THREADS, os.path.abspath(self.mktemp()), reactor)
        failure = self.failureResultOf(store.check(), StoreError)  # not started: no worker to write
        self.assertEqual(failure.getErrorMessage(), "the store is not running")
        store.startService()
        self.addCleanup(store.stopService)
        return store.check()

    @inlineCallbacks
    def test_not_ready_when_the_file_cannot_grow(self) -> Generator[Deferred[Any], Any, None]:
        """A full disk, as SQLite meets it (the file may grow by no page: max_page_count): every write that
        needs a page fails, so the store is not ready, and says why (attack34: /readyz said 200 on a full tmpfs
        while every registration failed 'database or disk is full': the check wrote nothing)."""
        store = SqliteStore(THREADS, os.path.abspath(self.mktemp()), reactor)
        store.startService()
        self.addCleanup(store.stopService)
        yield store.check()  # ready while it may grow

        def cap(database: Database) -> None:
            # The worker's own connection (max_page_count is per connection): no public seam reaches it.
            connection = database._db
            (pages,) = connection.execute("PRAGMA page_count").fetchone()
            connection.execute(f"PRAGMA max_page_count={pages}")

        yield store._batched(cap)
        for i in range(500):  # names, one a transaction, till one needs a page the file cannot give
            try:
                yield store.record_seen(f"n{i:04d}{'x' * 26}", 1.0)
            except StoreError:
                break
        else:
            self.fail("the file took 500 names more")
        failure = yield self.assertFailure(store.check(), StoreError)
        self.assertIn("database or disk is full", str(failure))
        # The probe has its own savepoint: a write in the same transaction that fits is kept.
        store.record_seen("n0000" + "x" * 26, 2.0)  # writing: what follows waits for the next transaction
        probe, seen = store.check(), store.record_seen("n0000" + "x" * 26, 3.0)
        yield self.assertFailure(probe, StoreError)
        yield seen



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


class OpsSiteTests(SynchronousTestCase):
    """The ``--metrics`` site as an HTTP front, guarded as the web front is (attack34), on a StringTransport."""

    def setUp(self) -> None:
        self.harness = ServerHarness(limits=Limits(max_per_ip=2))
        no_metrics = cast(Metrics, None)  # no page here collects
        self.site = ops_site(no_metrics, CollectorRegistry(), lambda: succeed(None), self.harness.clients, 10)

    def connect(self) -> tuple[HTTPChannel, StringTransport]:
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        channel = cast(HTTPChannel, self.site.buildProtocol(transport.getPeer()))  # type: ignore[no-untyped-call]
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, Failure(ConnectionDone()))
        return channel, transport

    def test_every_method_but_get_and_head_is_405(self) -> None:
        """README: "Any other path is 404, any method but GET and HEAD 405" (PUT, DELETE, OPTIONS, PATCH and
        unknown methods were answered 501 Not Implemented; only POST 405)."""
        for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"FOO"):
            channel, transport = self.connect()
            channel.dataReceived(method + b" /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
            self.assertEqual(transport.value().split(b"\r\n", 1)[0], b"HTTP/1.1 405 Method Not Allowed", method)
            self.assertIn(b"\r\nAllow: GET, HEAD\r\n", transport.value())
            channel.connectionLost(Failure(ConnectionDone()))
        for method in (b"GET", b"HEAD"):
            channel, transport = self.connect()
            channel.dataReceived(method + b" /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            self.assertEqual(transport.value().split(b"\r\n", 1)[0], b"HTTP/1.1 200 OK", method)

    def test_one_answer_a_read(self) -> None:
        """A read of pipelined requests is one answer a reactor pass, as on the web front (WebChannel): 100,000
        pipelined /healthz on one connection answered a read (~1,800 requests) at a time held every client's
        PING answer up to 336 ms (p99 284 ms; 35-47 ms without), the reactor 100-250 ms late 4 times a minute."""
        channel, transport = self.connect()
        channel.dataReceived(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" * 3)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 1)
        self.harness.clock.advance(0)  # the passes after it
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)

    def test_a_trickled_request_is_cut_off(self) -> None:
        """A request must come whole within a deadline (``--web-request-timeout``), on the clock the site is
        given: Twisted's idle timeout (60 s) starts again with each byte, so a header byte every 15 s held a
        connection for good, and 19,980 of them took every descriptor: the line front hit EMFILE."""
        channel, transport = self.connect()
        channel.dataReceived(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        for _ in range(3):  # 9 s, a byte every 3 s
            self.harness.clock.advance(3)
            channel.dataReceived(b"x")
        self.assertFalse(transport.disconnecting)
        self.harness.clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_connections_count_against_the_address_share(self) -> None:
        """With every front's, as the web front's do (``--max-per-ip``): past the share, 503 and closed."""
        self.harness.connect()  # a line client from 127.0.0.1
        self.connect()
        _, transport = self.connect()
        self.assertEqual(transport.value().split(b"\r\n", 1)[0], b"HTTP/1.1 503 Service Unavailable")
        self.assertTrue(transport.disconnecting)

    def test_a_request_body_is_refused_unread(self) -> None:
        """No page here takes a body: one is refused (413) before it is read, as on the web front. Twisted keeps
        a body past 100 kB in a temporary file: 150 MiB POSTed to /healthz took 0.1 s and 150 MiB of /tmp, and
        nothing bounds Content-Length (a full disk: every write of the state fails)."""
        channel, transport = self.connect()
        channel.dataReceived(b"POST /healthz HTTP/1.1\r\nhost: x\r\ncontent-length: 100000000\r\n\r\n")
        self.assertEqual(transport.value().split(b"\r\n", 1)[0], b"HTTP/1.1 413 Content Too Large")
        self.assertTrue(transport.disconnecting)
