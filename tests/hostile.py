"""What the hostile-input suites share: attackers over loopback, a bystander's clock, and the log's failures."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol as Connection
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, capturedLogs
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase as TestCase
from zope.interface import implementer

from msgsvc import wire
from msgsvc.fronts.lines import ServerProtocol
from msgsvc.state.sqlite import Database

#: The attackers' addresses; the bystanders connect from 127.0.0.1, so --max-per-ip keeps them apart.
ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@contextmanager
def failures_logged() -> Iterator[list[LogEvent]]:
    """The log events that carry a failure (a traceback), logged within the block."""
    failures: list[LogEvent] = []
    with capturedLogs() as events:
        yield failures
    failures.extend(e for e in events if "log_failure" in e)


def assert_well_formed(case: TestCase, out: list[str]) -> None:
    """Every line the server wrote parses."""
    for line in out:
        case.assertIsNotNone(wire.parse_line(line.encode()), line)


def assert_still_served(case: TestCase, bystander: ServerProtocol, transport: StringTransport) -> None:
    """A bystander on a StringTransport was not disconnected, and its PING is still answered."""
    case.assertFalse(transport.disconnecting)
    transport.clear()
    bystander.dataReceived(b"PING :still\r\n")
    case.assertEqual(transport.value(), b"PONG :still\r\n")


@implementer(IPushProducer)
class Attacker(Connection):
    """Sends ``first``, then what ``next_data`` gives as fast as its connection takes it, and never reads.

    With ``upgrade``, ``first`` is a WebSocket handshake, and it reads the
    server's answer before it goes on (a client that sends frames before it
    is not yet speaking WebSocket); after that it stops reading, so that
    what the server writes to it piles up on the server's side.  It stops
    writing while its own buffer is full (the test's memory stays bounded).
    """

    def __init__(self, next_data: Callable[[], bytes], first: bytes = b"", upgrade: bytes = b"") -> None:
        self._next_data = next_data
        self._first = first
        self._upgrade = upgrade  # sent once the handshake is answered
        self._answer = b""
        self._paused = False
        self._stopped = False
        self.sent = 0
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        if self._first:
            self.transport.write(self._first)  # type: ignore[union-attr]
        if not self._upgrade:
            self._start()

    def dataReceived(self, data: bytes) -> None:
        self._answer += data
        if b"\r\n\r\n" in self._answer and self._upgrade:
            assert self._answer.startswith(b"HTTP/1.1 101 "), self._answer[:100]
            self.transport.write(self._upgrade)  # type: ignore[union-attr]
            self._upgrade = b""
            self._start()

    def _start(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]  # reads no more
        self._write_more()

    def _write_more(self) -> None:
        if self._paused or self._stopped:
            return
        data = self._next_data()
        if data:
            self.sent += len(data)
            self.transport.write(data)  # type: ignore[union-attr]
            reactor.callLater(0.001, self._write_more)  # type: ignore[attr-defined]

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._write_more()

    def stopProducing(self) -> None:
        self._stopped = True

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._stopped = True
        self.closed.callback(None)

    def stop(self) -> None:
        self._stopped = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


async def attack(port: int, attackers: list[Attacker]) -> None:
    """Connect ``attackers`` to ``port``, from the attackers' addresses in turn."""
    for n, attacker in enumerate(attackers):
        address = ATTACKERS[n % len(ATTACKERS)]
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(address, 0)), attacker)


class Bystander(Protocol):
    """A client whose PING is timed: a line or a WebSocket one."""

    def send(self, line: str) -> None: ...

    async def until(self, prefix: str) -> list[str]: ...


async def answered_throughout(bystander: Bystander, seconds: float, every: float = 0.1) -> float:
    """Ping for ``seconds`` (the line protocol's PING, awaiting each PONG): the longest wait for an answer."""
    longest = 0.0
    started = reactor.seconds()  # type: ignore[attr-defined]
    n = 0
    while reactor.seconds() - started < seconds:  # type: ignore[attr-defined]
        n += 1
        asked = reactor.seconds()  # type: ignore[attr-defined]
        bystander.send(f"PING :{n}")
        answer = await Deferred.fromCoroutine(bystander.until("PONG")).addTimeout(10, reactor)
        longest = max(longest, reactor.seconds() - asked)  # type: ignore[attr-defined]
        assert answer[-1] == f"PONG :{n}", answer
        await deferLater(reactor, every)
    return longest


def big_log(path: str, names: int) -> None:
    """Make the SQLite username log at ``path`` with ``names`` offline names in it."""
    Database(path).close()
    db = sqlite3.connect(path)
    with db:
        db.executemany(
            "INSERT INTO users VALUES (?, ?, 1.0, 1.0)", ((f"user{i:06d}", f"user{i:06d}") for i in range(names))
        )
    db.close()
