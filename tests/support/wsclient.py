"""A WebSocket client (wsproto) of the web front's site, on a StringTransport."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, RejectConnection, Request, TextMessage

from msgsvc.fronts.lines import ServerProtocol
from msgsvc.fronts.web.site import web_site

from .harness import ServerHarness

HOST = "127.0.0.1:8080"
ORIGIN = "http://127.0.0.1:8080"


class TCPStringTransport(StringTransport):
    """A StringTransport with the TCP options a web front's connection has."""

    noDelay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay = enabled

    def getTcpNoDelay(self) -> bool:
        return self.noDelay


class Browser:
    """One WebSocket client (wsproto) on a StringTransport, talking to the web front's site."""

    def __init__(
        self, harness: ServerHarness, site_origins: tuple[str, ...] = (), host: str = "127.0.0.1"
    ) -> None:
        self.harness = harness
        site = web_site(harness.clients, harness.presence, site_origins)
        harness._port += 1
        self.transport = TCPStringTransport(peerAddress=IPv4Address("TCP", host, harness._port))
        self.channel = site.buildProtocol(self.transport.getPeer())
        assert self.channel is not None
        self.channel.makeConnection(self.transport)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.closed: CloseConnection | None = None
        self.status = 0
        self.texts: list[str] = []  # text messages received and not yet read by lines()

    def handshake(self, origin: str | None = ORIGIN) -> list[object]:
        headers = [] if origin is None else [(b"origin", origin.encode())]
        self.channel.dataReceived(self.ws.send(Request(host=HOST, target="/ws", extra_headers=headers)))
        return self.events()

    def events(self) -> list[object]:
        data = self.transport.value()
        self.transport.clear()
        self.ws.receive_data(data)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, TextMessage):
                self.texts.append(event.data)
            if isinstance(event, CloseConnection):
                self.closed = event
            if isinstance(event, RejectConnection):
                self.status = event.status_code
        return events

    def send(self, text: str) -> None:
        self.channel.dataReceived(self.ws.send(TextMessage(text)))

    def raw(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def lines(self) -> list[str]:
        """The text messages received: each must be one whole line."""
        self.harness.end_of_pass()
        self.events()
        texts, self.texts = self.texts, []
        for text in texts:
            assert "\r" not in text and "\n" not in text, text
        return texts

    def register(self, name: str) -> None:
        assert any(isinstance(e, AcceptConnection) for e in self.handshake())
        self.send(f"HELLO {name}")
        got = self.lines()
        assert got[0].startswith(f"WELCOME {name} "), got


def web_session(harness: ServerHarness) -> ServerProtocol:
    """The one web user's session."""
    (session,) = [p for p in harness.clients.connections if p.front == "web"]
    return session
