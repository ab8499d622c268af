"""The outbox: one send per connection per reactor pass, in order, over real sockets."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.fronts.outbox import Outbox


class Collector(Protocol):
    """Reads everything until ``expected`` bytes have come."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = bytearray()
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if len(self.received) >= self.expected and not self.done.called:
            self.done.callback(bytes(self.received))


class Idle(Protocol):
    def __init__(self, made: Deferred[Protocol]) -> None:
        self.made = made

    def connectionMade(self) -> None:
        self.made.callback(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        pass


class OutboxOverTCPTests(TestCase):
    async def pair(self, expected: int) -> tuple[Protocol, Collector]:
        """A server-side protocol, and a client that reads ``expected`` bytes."""
        made: Deferred[Protocol] = Deferred()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(lambda: Idle(made))
        )
        self.addCleanup(port.stopListening)
        collector = Collector(expected)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), collector)
        self.addCleanup(collector.transport.loseConnection)
        server = await made
        self.addCleanup(server.transport.loseConnection)
        return server, collector

    async def test_writes_of_one_pass_are_sent_together_without_watching_for_writability(self) -> None:
        lines = [b"line %d\r\n" % i for i in range(100)]
        server, collector = await self.pair(sum(map(len, lines)))
        watched = []
        start_writing = server.transport.startWriting
        self.patch(server.transport, "startWriting", lambda: watched.append(1) or start_writing())
        outbox = Outbox(reactor)
        for line in lines:
            outbox.write(server.transport, line)
        self.assertEqual(collector.received, b"")  # held until the pass is over
        self.assertEqual(await collector.done, b"".join(lines))
        self.assertEqual(watched, [])  # sent straight to the socket: no epoll_ctl

    async def test_what_the_socket_does_not_take_goes_through_the_transport_in_order(self) -> None:
        big = bytes(range(256)) * 40_000  # 10 MB, more than a socket buffer holds
        tail = [b"after %d\r\n" % i for i in range(50)]
        server, collector = await self.pair(len(big) + sum(map(len, tail)))
        outbox = Outbox(reactor)
        outbox.write(server.transport, big)
        outbox.flush(server.transport)
        self.assertTrue(server.transport._tempDataLen or server.transport.dataBuffer)  # a partial send
        for line in tail:  # the transport is busy now: these must queue behind it
            outbox.write(server.transport, line)
        self.assertEqual(await collector.done, big + b"".join(tail))


class OutboxUnitTests(SynchronousTestCase):
    def test_other_transports_are_written_at_once(self) -> None:
        transport = StringTransport()
        clock = Clock()
        outbox = Outbox(clock)
        outbox.write(transport, b"a")
        outbox.write(transport, b"b")
        self.assertEqual(transport.value(), b"ab")
        self.assertEqual(clock.getDelayedCalls(), [])
