"""The line protocol over WebSocket, on ``/ws``: each socket drives a
:class:`~msgsvc.fronts.lines.ServerProtocol` (:class:`LineSocket`), its frames read a line at a time
(:class:`FrameGuard`), for pages of the allowed origins only (:class:`LineSocketResource`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from twisted.web.websocket import WebSocketResource, WebSocketTransport
from zope.interface import implementer

from msgsvc.fronts.clients import Clients
from msgsvc.fronts.lines import ServerProtocol
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.receiver import IConnection
from msgsvc.fronts.web.origins import normalize_origin, own_origin
from msgsvc.wire import Code, FrameFramer


class FrameReader(Protocol):
    """What a :class:`FrameGuard` tells about the frames it reads, and asks before each."""

    def reading(self) -> bool:
        """Whether the next frame may be read now; if not, it waits with the rest until :meth:`FrameGuard.resume`."""

    def not_a_line(self) -> None:
        """A frame that ends no line: a control frame, a fragment, an empty message, one dropped."""

    def pinged(self, size: int) -> None:
        """A ping is passed on, which the parser answers with a pong of ``size`` bytes."""

    def too_long(self) -> None:
        """A message over the limit was dropped before it was read."""

    def overflow(self) -> None:
        """A fragmented message grew past the limit after some of it was passed on: nothing more is."""

    def closing(self) -> None:
        """A Close frame comes, before the parser reads it (and answers it): the client reads nothing more."""


class FrameGuard:
    """Reads a WebSocket's frame headers before its parser, a frame at a time while its reader reads.

    The parser (wsproto) keeps a message whole however large, answers
    every ping it reads, and reads all it is given at once: a 64 kB read of
    tiny frames is some 10,000 frames of Python.  So a frame is passed on
    only once the one before it has been (and the reader may have stopped
    reading: its line rate, say), and the rest waits; every frame that ends
    no line is counted against the line rate; every ping is told, with the
    size of its pong, and a Close before the parser answers it.  A message whose first frame is over ``limit`` is
    dropped with all its frames, and the connection reads on: ``too_long``
    is called in its turn.  A fragmented message that grows past the limit
    after some of it was passed on cannot be taken back: ``overflow`` is
    called and no more is passed on.  Control frames always pass (the
    parser allows them 125 bytes).  No extension is negotiated, so a
    frame's length is its message's length.
    """

    def __init__(self, limit: int, deliver: Callable[[bytes], None], reader: FrameReader) -> None:
        self._limit = limit
        self._deliver = deliver
        self._reader = reader
        self._held = b""  # what was received and not yet read
        self._busy = False
        self._header = bytearray()  # a frame header not yet whole
        self._left = 0  # payload bytes of the current frame still to come
        self._dropping_frame = False
        self._dropping_message = False  # its continuation frames are dropped too
        self._size = 0  # payload bytes of the data message so far
        self._broken = False

    def feed(self, data: bytes) -> None:
        """Received ``data``: read what may be read now."""
        if not self._broken:
            self._held += data
            self.resume()

    def resume(self) -> None:
        """The reader may be reading again: read on (what is passed on may call this again: it waits)."""
        if self._busy:
            return
        self._busy = True
        try:
            while self._held and not self._broken:
                data, self._held = self._held, b""
                read = self._read(data)
                self._held = data[read:] + self._held  # what came meanwhile goes after it
                if read < len(data):
                    return
        finally:
            self._busy = False

    def _read(self, data: bytes) -> int:
        """Pass on the frames of ``data`` while the reader reads; how many bytes were read."""
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
            if not self._header:  # between two frames: the one before goes first, then this one waits
                self._flush(out)
                if self._broken or not self._reader.reading():
                    return i
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
                self._reader.too_long()
            elif verdict == "overflow":
                self._flush(out)
                self._broken = True
                self._reader.overflow()
                return n
            self._header.clear()
        self._flush(out)
        return i

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
        """Decide on the frame whose header is whole: "pass", "drop", "report" (drop and say so) or "overflow";
        tell the reader of a frame that ends no line, and of a ping."""
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
            self._reader.not_a_line()
            if opcode == 0x9 and length <= 125:  # the parser refuses a longer one, unanswered
                self._reader.pinged(2 + length)
            elif opcode == 0x8:
                self._reader.closing()
            return "pass"
        if opcode:  # the first frame of a message
            self._size = length
        elif self._dropping_message:  # a continuation of a message already reported
            self._dropping_frame = True
            self._dropping_message = not fin
            self._reader.not_a_line()
            return "drop"
        else:
            self._size += length
        if self._size > self._limit:
            if opcode:
                self._dropping_frame = True
                self._dropping_message = not fin
                self._reader.not_a_line()
                return "report"
            return "overflow"
        if not fin or not self._size:  # a fragment, or an empty message: no line
            self._reader.not_a_line()
        return "pass"


@implementer(IConnection)
class FrameTransport:
    """A line front protocol's transport over one WebSocket: each line it writes goes out as a text message.

    Sending back-pressure is the TCP connection's: its HTTP channel is
    that connection's producer, and passes pauses on to the producer
    registered here (the protocol's send queue), as for a response body.
    Reading is paused on the TCP connection itself.
    """

    def __init__(self, socket: WebSocketTransport, request: Request, guard: FrameGuard) -> None:
        self._socket = socket
        self._guard = guard
        self._request = request
        self._tcp = cast(IConnection, request.channel.transport)  # TCP, or TLS over TCP
        self._partial = b""

    @property
    def disconnecting(self) -> bool:
        return bool(self._tcp.disconnecting)

    def write(self, data: bytes) -> None:
        """Send each whole line as a text message; nothing once the connection closes (a WebSocket
        sends nothing after its Close frame: a line for a closing client, such as another's
        room event, is dropped, as the others' presence news is)."""
        if self.disconnecting:
            return
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
        self._guard.resume()  # the frames that came before it paused

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
        # The upgrade pointed the channel's dataReceived at the WebSocket parser: put the guard before it.
        self._parse: Callable[[bytes], None] = channel.dataReceived
        guard = FrameGuard(protocol.MAX_LENGTH, self._parse_open, self)
        channel.dataReceived = guard.feed  # type: ignore[method-assign]
        protocol.framing = FrameFramer
        protocol.front = "web"
        protocol.counted = True  # its HTTP connection was, from its accept on (WebChannel)
        protocol.makeConnection(FrameTransport(self._socket, self._request, guard))

    def _parse_open(self, data: bytes) -> None:
        """Parse ``data`` unless the connection is closing (the parser raises once it has closed)."""
        if not self._protocol.transport.disconnecting:
            self._parse(data)

    # -- FrameReader -------------------------------------------------------

    def reading(self) -> bool:
        return not (self._protocol.paused or self._protocol.transport.disconnecting)

    def not_a_line(self) -> None:
        self._protocol.not_a_line()

    def pinged(self, size: int) -> None:
        self._protocol.written(size)  # the pong is written by the parser, beside the session's writes

    def too_long(self) -> None:
        self._protocol.lineDropped()

    def closing(self) -> None:
        self._protocol.closing()

    def overflow(self) -> None:
        limit = self._protocol.MAX_LENGTH
        self._refuse(
            Code.LINE_TOO_LONG, f"a line may hold at most {limit} bytes; a fragmented one went past it"
        )

    # -- WebSocketProtocol ---------------------------------------------------

    def textMessageReceived(self, message: str) -> None:
        self._protocol.dataReceived(message.encode("utf-8"))

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._refuse(Code.BAD_ENCODING, "binary WebSocket messages are not accepted: send each line as text")

    def _refuse(self, code: Code, text: str) -> None:
        """Input that leaves the WebSocket unreadable from here on: say why, then close."""
        self._protocol.send_error(code, text)
        self._protocol.bye(text)

    def pongReceived(self, payload: bytes) -> None:
        pass  # liveness is the line protocol's PING, which the page answers

    def connectionLost(self, reason: Failure) -> None:
        self._protocol.connectionLost(reason)


class LineSocketFactory:
    """Builds a :class:`LineSocket` over a new :class:`ServerProtocol` for each WebSocket."""

    def __init__(self, clients: Clients, presence: Presence) -> None:
        self._clients = clients
        self._presence = presence

    def buildProtocol(self, request: Request) -> LineSocket:
        return LineSocket(ServerProtocol(self._clients, self._presence), request)


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
