"""Fakes and helpers shared by the tests."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from msgsvc.client.protocol import ClientListener, ClientProtocol
from msgsvc.hub import Hub, Message, UserRecord
from msgsvc.server import ServerFactory, ServerProtocol
from msgsvc.wire import Limits


class MemoryStore:
    """A :class:`msgsvc.hub.Store` in memory.

    Writes succeed at once, unless ``hold`` is set: then each write waits in
    ``pending`` until the test fires it.
    """

    def __init__(self) -> None:
        self.written: list[tuple[str, float]] = []
        self.hold = False
        self.pending: list[Deferred[None]] = []

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        self.written.append((name, when))
        if not self.hold:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        return d


class RecordingParticipant:
    """A :class:`msgsvc.hub.Participant` that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def receive(self, message: Message) -> None:
        self.events.append(("message", message))

    def notice(self, text: str) -> None:
        self.events.append(("notice", text))

    def kick(self, reason: str) -> None:
        self.events.append(("kicked", reason))

    def messages(self) -> list[Message]:
        return [m for kind, m in self.events if kind == "message"]  # type: ignore[misc]


class ServerHarness:
    """A server factory over a hub and memory store, with StringTransport clients."""

    def __init__(
        self,
        limits: Limits = Limits(),  # noqa: B008 - frozen, so shared safely
        max_clients: int = 100,
        records: tuple[UserRecord, ...] = (),
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.store = MemoryStore()
        self.hub = Hub(self.clock, self.store, records, max_clients)
        self.factory = ServerFactory(self.hub, self.clock, limits)
        self._port = 40000

    def connect(self) -> tuple[ServerProtocol, StringTransport]:
        self._port += 1
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", self._port))
        protocol = self.factory.buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        return protocol, transport

    def register(self, name: str) -> tuple[ServerProtocol, StringTransport]:
        """A client registered as ``name``, once the others have been told (the reactor pass is over)."""
        protocol, transport = self.connect()
        protocol.dataReceived(f"HELLO {name}\r\n".encode())
        assert transport.value().startswith(b"WELCOME "), transport.value()
        transport.clear()
        self.end_of_pass()
        return protocol, transport

    def end_of_pass(self) -> None:
        """Run what waits for the end of the reactor pass: presence news goes out."""
        self.clock.advance(0)


def lines(transport: StringTransport) -> list[str]:
    """What the server wrote, as text lines; clears the transport."""
    data = transport.value()
    transport.clear()
    assert data == b"" or data.endswith(b"\r\n"), data
    return data.decode("utf-8").split("\r\n")[:-1]


class FakeConnection:
    """A Connector whose connections are ClientProtocols on StringTransports."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.refuse = False
        self.protocol: ClientProtocol | None = None
        self.transport = StringTransport()

    def __call__(self, server: str, username: str, listener: ClientListener) -> Deferred[ClientProtocol]:
        self.attempts.append((server, username))
        if self.refuse:
            return fail(ConnectionRefusedError("connection refused"))
        self.protocol = ClientProtocol(username, listener)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        d: Deferred[ClientProtocol] = Deferred()
        d.callback(self.protocol)
        return d

    def server_says(self, *lines: str) -> None:
        assert self.protocol is not None
        self.protocol.dataReceived("".join(line + "\r\n" for line in lines).encode())

    def close(self) -> None:
        assert self.protocol is not None
        self.protocol.connectionLost(Failure(ConnectionDone("Connection was closed cleanly.")))

    def sent(self) -> list[str]:
        data = self.transport.value().decode()
        self.transport.clear()
        return data.split("\r\n")[:-1]
