"""A load connection over WebSocket, as a browser holds one: the same lines, one text message each.

:class:`WebSocketLines` is the TCP protocol: it does the handshake (with
the page's ``Origin``), then runs an ordinary line protocol (a
:class:`~msgsvc.bench.loadclient.LoadClient`) over the WebSocket, writing
each line it writes as one masked text message, and handing it each
message received as a line.  wsproto does the framing, as in the server.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, ITransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, RejectConnection, Request, TextMessage


class WebSocketLines(Protocol):
    """Runs ``lines`` (a protocol of CR LF lines) over a WebSocket to ``host``'s ``/ws``."""

    transport: ITransport

    def __init__(self, lines: Protocol, host: str) -> None:
        self._lines = lines
        self._host = host
        self._socket = WSConnection(ConnectionType.CLIENT)
        self._partial = b""  # a line written in part
        self._message = ""  # a message received in part

    def connectionMade(self) -> None:
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        origin = f"http://{self._host}".encode()
        request = Request(host=self._host, target="/ws", extra_headers=[(b"origin", origin)])
        self.transport.write(self._socket.send(request))

    def dataReceived(self, data: bytes) -> None:
        self._socket.receive_data(data)
        received = []
        for event in self._socket.events():
            if isinstance(event, TextMessage):
                self._message += event.data
                if event.message_finished:
                    received.append(self._message.encode() + b"\n")
                    self._message = ""
            elif isinstance(event, AcceptConnection):
                self._lines.makeConnection(_Lines(self))
            elif isinstance(event, Ping):
                self.transport.write(self._socket.send(event.response()))
            elif isinstance(event, CloseConnection | RejectConnection):
                self.transport.loseConnection()
        if received:
            self._lines.dataReceived(b"".join(received))  # one read, one call: timed once

    def write_lines(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\r\n")
        self._partial = lines.pop()
        self.transport.write(b"".join(self._socket.send(TextMessage(line.decode())) for line in lines))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._lines.transport is not None:
            self._lines.connectionLost(reason)


class _Lines:
    """The line protocol's transport: what it writes goes out as text messages."""

    def __init__(self, socket: WebSocketLines) -> None:
        self._socket = socket

    def write(self, data: bytes) -> None:
        self._socket.write_lines(data)

    def loseConnection(self) -> None:
        self._socket.transport.loseConnection()

    def abortConnection(self) -> None:
        self._socket.transport.abortConnection()  # type: ignore[attr-defined]

    def getPeer(self) -> IAddress:
        return self._socket.transport.getPeer()
