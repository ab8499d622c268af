"""The web front: the browser page, and the line protocol over WebSocket.

``/`` serves the page (static files beside this module: no build step, no
CDN).  ``/ws`` is a WebSocket (Twisted's :mod:`twisted.web.websocket`)
that carries exactly the line protocol, one line a text message each way.
Each WebSocket drives an ordinary :class:`~msgsvc.fronts.lines.ServerProtocol`
of the line front's factory, through :class:`FrameTransport`: web users
share the hub, the limits, the accounts and the per-address count with
TCP users, and nothing of the protocol is written twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import cast
from urllib.parse import urlsplit

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, pages
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from zope.interface import implementer

from msgsvc.fronts.lines import ServerFactory, ServerProtocol
from msgsvc.lines import IConnection
from msgsvc.wire import Code, FrameFramer

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port; ValueError if it is not an origin."""
    parts = urlsplit(origin.strip().lower())
    extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or extra:
        raise ValueError(f"{origin!r} is not an origin like https://chat.example.org:8443")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = parts.port
    if port is None or str(port) == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def own_origin(request: Request) -> str | None:
    """The origin the page was served from: the request's scheme and ``Host``; None if it has no usable Host."""
    host = request.getHeader("host")
    if not host:
        return None
    try:
        return normalize_origin(f"{'https' if request.isSecure() else 'http'}://{host}")
    except ValueError:
        return None


class FrameGuard:
    """Drops WebSocket messages over ``limit`` bytes before they are read, and reports each.

    It sits before the WebSocket parser (which would buffer a message
    whole, however large) and reads only frame headers.  A message whose
    first frame is over the limit is dropped with all its frames, and the
    connection reads on: ``too_long`` is called in its turn.  A fragmented
    message that grows past the limit after some of it was passed on cannot
    be taken back: ``overflow`` is called and no more is passed on.
    Control frames always pass (the parser allows them 125 bytes).  No
    extension is negotiated, so a frame's length is its message's length.
    """

    def __init__(
        self,
        limit: int,
        deliver: Callable[[bytes], None],
        too_long: Callable[[], None],
        overflow: Callable[[], None],
    ) -> None:
        self._limit = limit
        self._deliver = deliver
        self._too_long = too_long
        self._overflow = overflow
        self._header = bytearray()  # a frame header not yet whole
        self._left = 0  # payload bytes of the current frame still to come
        self._dropping_frame = False
        self._dropping_message = False  # its continuation frames are dropped too
        self._size = 0  # payload bytes of the data message so far
        self._broken = False

    def feed(self, data: bytes) -> None:
        if self._broken:
            return
        out = bytearray()
        i, n = 0, len(data)
        while i < n:
            if self._left:
                take = min(self._left, n - i)
                if not self._dropping_frame:
                    out += data[i : i + take]
                self._left -= take
                i += take
                continue
            need = self._header_size() - len(self._header)
            while need and i < n:  # the first two bytes tell how long the header is
                self._header += data[i : i + need]
                i += need
                need = self._header_size() - len(self._header)
            if need:
                break  # the rest of the header comes with the next read
            verdict = self._judge()
            if verdict == "pass":
                out += self._header
            elif verdict == "report":
                self._flush(out)
                self._too_long()
            elif verdict == "overflow":
                self._flush(out)
                self._broken = True
                self._overflow()
                return
            self._header.clear()
        self._flush(out)

    def _flush(self, out: bytearray) -> None:
        if out:
            self._deliver(bytes(out))
            out.clear()

    def _header_size(self) -> int:
        if len(self._header) < 2:
            return 2
        length = self._header[1] & 0x7F
        extended = 2 if length == 126 else 8 if length == 127 else 0
        mask = 4 if self._header[1] & 0x80 else 0
        return 2 + extended + mask

    def _judge(self) -> str:
        """Decide on the frame whose header is whole: "pass", "drop", "report" (drop and say so) or "overflow"."""
        header = self._header
        fin, opcode = header[0] & 0x80, header[0] & 0x0F
        length = header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        self._left = length
        self._dropping_frame = False
        if opcode & 0x08:  # a control frame, maybe between two fragments
            return "pass"
        if opcode:  # the first frame of a message
            self._size = length
            if length <= self._limit:
                return "pass"
            self._dropping_frame = True
            self._dropping_message = not fin
            return "report"
        if self._dropping_message:  # a continuation of a message already reported
            self._dropping_frame = True
            self._dropping_message = not fin
            return "drop"
        self._size += length
        return "overflow" if self._size > self._limit else "pass"


@implementer(IConnection)
class FrameTransport:
    """A line front protocol's transport over one WebSocket: each line it writes goes out as a text message.

    Sending back-pressure is the TCP connection's: its HTTP channel is
    that connection's producer, and passes pauses on to the producer
    registered here (the protocol's send queue), as for a response body.
    Reading is paused on the TCP connection itself.
    """

    def __init__(self, socket: WebSocketTransport, request: Request) -> None:
        self._socket = socket
        self._request = request
        self._tcp = cast(IConnection, request.channel.transport)  # TCP, or TLS over TCP
        self._partial = b""

    @property
    def disconnecting(self) -> bool:
        return bool(self._tcp.disconnecting)

    def write(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\r\n")
        self._partial = lines.pop()
        for line in lines:
            self._socket.sendTextMessage(line.decode("utf-8"))

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Close once what is written is sent (TLS waits for the channel's producer to go: unregister it)."""
        self._tcp.unregisterProducer()
        self._socket.loseConnection()

    def abortConnection(self) -> None:
        self._tcp.abortConnection()

    def loseWriteConnection(self) -> None:
        self.loseConnection()  # a WebSocket has no half-close

    def getPeer(self) -> IPv4Address | IPv6Address:
        return self._tcp.getPeer()

    def getHost(self) -> IPv4Address | IPv6Address:
        return self._tcp.getHost()

    def getTcpNoDelay(self) -> bool:
        return bool(self._tcp.getTcpNoDelay())

    def setTcpNoDelay(self, enabled: bool) -> None:
        self._tcp.setTcpNoDelay(enabled)

    def getTcpKeepAlive(self) -> bool:
        return bool(self._tcp.getTcpKeepAlive())

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self._tcp.setTcpKeepAlive(enabled)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._request.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self._request.unregisterProducer()

    def pauseProducing(self) -> None:
        self._tcp.pauseProducing()

    def resumeProducing(self) -> None:
        self._tcp.resumeProducing()

    def stopProducing(self) -> None:
        self._tcp.stopProducing()


class LineSocket:
    """One WebSocket: text messages in are lines for a :class:`ServerProtocol`, and its lines go out as messages."""

    def __init__(self, protocol: ServerProtocol, request: Request) -> None:
        self._protocol = protocol
        self._request = request
        self._socket: WebSocketTransport | None = None

    def negotiationStarted(self, transport: WebSocketTransport) -> None:
        self._socket = transport

    def negotiationFinished(self) -> None:
        assert self._socket is not None
        protocol = self._protocol
        channel = self._request.channel
        # The upgrade pointed the channel's dataReceived at the WebSocket parser, which keeps a
        # message whole however large: read the frame headers first, and drop what is too long.
        guard = FrameGuard(protocol.MAX_LENGTH, channel.dataReceived, protocol.lineDropped, self._overflow)
        channel.dataReceived = guard.feed  # type: ignore[method-assign]
        protocol.framing = FrameFramer
        protocol.front = "web"
        protocol.makeConnection(FrameTransport(self._socket, self._request))

    def textMessageReceived(self, message: str) -> None:
        self._protocol.dataReceived(message.encode("utf-8"))

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._refuse(Code.BAD_ENCODING, "binary WebSocket messages are not accepted: send each line as text")

    def _overflow(self) -> None:
        limit = self._protocol.MAX_LENGTH
        self._refuse(
            Code.LINE_TOO_LONG, f"a line may hold at most {limit} bytes; a fragmented one went past it"
        )

    def _refuse(self, code: Code, text: str) -> None:
        """Input that leaves the WebSocket unreadable from here on: say why, then close."""
        self._protocol.send_error(code, text)
        self._protocol.bye(text)

    def pongReceived(self, payload: bytes) -> None:
        pass  # liveness is the line protocol's PING, which the page answers

    def connectionLost(self, reason: Failure) -> None:
        self._protocol.connectionLost(reason)


class LineSocketFactory:
    """Builds a :class:`LineSocket` over a new protocol of the line front's factory for each WebSocket."""

    def __init__(self, factory: ServerFactory) -> None:
        self._factory = factory

    def buildProtocol(self, request: Request) -> LineSocket:
        return LineSocket(self._factory.buildProtocol(request.getClientAddress()), request)


class LineSocketResource(WebSocketResource):
    """``/ws``: a WebSocket handshake is accepted only from the page's own origin or a configured one.

    A browser always sends ``Origin``; refusing a handshake without one,
    or from another site, keeps other pages from talking to the server in
    their visitors' names.
    """

    log = Logger()

    def __init__(self, factory: LineSocketFactory, origins: Sequence[str]) -> None:
        super().__init__(factory)
        self._origins = frozenset(origins)

    def render_GET(self, request: Request) -> bytes | int:
        origin = request.getHeader("origin")
        allowed = self._origins | {own_origin(request)}
        try:
            ok = origin is not None and normalize_origin(origin) in allowed
        except ValueError:
            ok = False
        if not ok:
            self.log.info(
                "refused a WebSocket from {peer}: origin {origin!r}",
                peer=request.getClientAddress(),
                origin=origin,
            )
            request.setResponseCode(403)
            request.setHeader("content-type", "text/plain; charset=utf-8")
            return b"403 Forbidden: this WebSocket takes connections from its own page only\n"
        return super().render_GET(request)


class WebSite(Site):
    """The page and the WebSocket, with security headers on every response.

    The page's scripts and styles come from this server only (no inline
    script, no other host), it may connect only to this host's WebSocket,
    and no other site may frame it.  Requests are not logged: a connection
    is logged by the line front, as a TCP one is.
    """

    noisy = False

    def getResourceFor(self, request: Request) -> Resource:
        host = request.getHeader("host") or ""
        request.setHeader(
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self' ws://{host} wss://{host}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        request.setHeader("x-content-type-options", "nosniff")
        request.setHeader("referrer-policy", "no-referrer")
        request.setHeader("x-frame-options", "DENY")
        request.setHeader("cache-control", "no-cache")  # a new msgsvc's page is used at once
        return cast(Resource, Site.getResourceFor(self, request))

    def log(self, request: http.Request) -> None:
        pass


class StaticFiles(File):
    """The page's files, with their types named here rather than guessed from the machine's MIME table."""

    contentTypes = {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }
    indexNames = ["index.html"]
    # twisted.web.pages' error pages, which File's annotations predate.
    childNotFound = pages.notFound()  # type: ignore[assignment]
    forbidden = pages.forbidden()  # type: ignore[assignment]


def web_site(factory: ServerFactory, origins: Sequence[str] = ()) -> WebSite:
    """The web front over the line front's ``factory``; ``origins``: other pages' origins allowed to connect."""
    root = StaticFiles(STATIC, defaultType="application/octet-stream")
    root.putChild(
        b"ws", LineSocketResource(LineSocketFactory(factory), [normalize_origin(o) for o in origins])
    )
    # timeout: for an idle page connection; a WebSocket has the line protocol's own PING.
    return WebSite(root, timeout=60, reactor=factory.clock)
