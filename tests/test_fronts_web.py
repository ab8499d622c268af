"""The web front without a browser: HTTP and WebSocket bytes on a StringTransport, a wsproto client."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent
from twisted.web.iweb import IResponse
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol, Opcode

from msgsvc.fronts import pacing
from msgsvc.fronts.lines import ServerProtocol
from msgsvc.fronts.web.origins import normalize_origin
from msgsvc.fronts.web.site import WebChannel, web_site
from msgsvc.fronts.web.websocket import FrameGuard
from msgsvc.hub.contracts import HistoryPolicy, UserRecord
from msgsvc.wire import Limits

from .support.harness import PASSWORD, ServerHarness, lines, one_pass
from .support.hostile import failures_logged
from .support.wsclient import ORIGIN, Browser, TCPStringTransport, web_session


def bob_and_alice() -> tuple[ServerHarness, ServerProtocol, StringTransport, Browser]:
    """A server with bob on TCP and alice on the web, both registered and bob's news read."""
    harness = ServerHarness()
    bob, bob_transport = harness.register("bob")
    browser = Browser(harness)
    browser.register("alice")
    lines(bob_transport)
    return harness, bob, bob_transport, browser


def client_frames(*messages: str | bytes, fragment: int = 0) -> bytes:
    """What a client sends for ``messages``: masked frames, each message in pieces of ``fragment`` bytes if given."""
    frames = FrameProtocol(client=True, extensions=[])
    out = bytearray()
    for message in messages:
        data = message.encode() if isinstance(message, str) else message
        opcode = Opcode.TEXT if isinstance(message, str) else Opcode.BINARY
        if not fragment:
            out += frames.send_data(data if isinstance(message, bytes) else message, True)
            continue
        pieces = [data[i : i + fragment] for i in range(0, len(data), fragment)] or [b""]
        for i, piece in enumerate(pieces):
            out += frames._serialize_frame(
                opcode if i == 0 else Opcode.CONTINUATION, piece, fin=i == len(pieces) - 1
            )
    return bytes(out)


def server_side(data: bytes) -> list[str]:
    """The messages a server-side wsproto connection reads from ``data`` (after a handshake)."""
    connection = Connection(ConnectionType.SERVER)
    connection.receive_data(data)
    got, buffer = [], ""
    for event in connection.events():
        if isinstance(event, TextMessage):
            buffer += event.data
            if event.message_finished:
                got.append(buffer)
                buffer = ""
        elif isinstance(event, CloseConnection):
            raise AssertionError(f"the stream broke: {event}")
    return got


class Reader:
    """A :class:`msgsvc.fronts.web.websocket.FrameReader` that writes down what it is told, and reads
    while ``open``."""

    def __init__(self) -> None:
        self.said: list[str] = []
        self.open = True
        self.not_lines = 0
        self.pongs: list[int] = []

    def reading(self) -> bool:
        return self.open

    def not_a_line(self) -> None:
        self.not_lines += 1

    def pinged(self, size: int) -> None:
        self.pongs.append(size)

    def too_long(self) -> None:
        self.said.append("too long")

    def overflow(self) -> None:
        self.said.append("overflow")

    def closing(self) -> None:
        self.said.append("closing")


class FrameGuardTests(SynchronousTestCase):
    def guard(self, limit: int = 10) -> tuple[FrameGuard, bytearray, list[str]]:
        passed = bytearray()
        self.reader = Reader()
        guard = FrameGuard(limit, passed.extend, self.reader)
        return guard, passed, self.reader.said

    def test_small_messages_pass_unchanged(self) -> None:
        guard, passed, said = self.guard()
        data = client_frames("SEND a :hi", "PING", "")
        guard.feed(data)
        self.assertEqual(bytes(passed), data)
        self.assertEqual(said, [])

    def test_a_message_over_the_limit_is_dropped_and_reported_and_the_next_one_passes(self) -> None:
        guard, passed, said = self.guard()
        guard.feed(client_frames("x" * 11, "PING :1"))
        self.assertEqual(said, ["too long"])
        self.assertEqual(server_side(bytes(passed)), ["PING :1"])

    def test_a_huge_header_is_refused_before_its_payload_comes(self) -> None:
        guard, passed, said = self.guard(limit=8192)
        frame = client_frames("y" * 70000)
        guard.feed(frame[:14])  # the header of a 70 000-byte frame (8-byte length, mask) alone
        self.assertEqual(said, ["too long"])
        guard.feed(frame[14:] + client_frames("PING"))
        self.assertEqual(server_side(bytes(passed)), ["PING"])

    def test_a_fragmented_message_within_the_limit_passes(self) -> None:
        guard, passed, said = self.guard()
        guard.feed(client_frames("0123456789", fragment=3))
        self.assertEqual(server_side(bytes(passed)), ["0123456789"])
        self.assertEqual(said, [])

    def test_a_fragmented_message_whose_first_frame_is_over_is_dropped_whole(self) -> None:
        guard, passed, said = self.guard()
        guard.feed(client_frames("a" * 30, fragment=12) + client_frames("ok"))
        self.assertEqual(said, ["too long"])
        self.assertEqual(server_side(bytes(passed)), ["ok"])

    def test_a_fragmented_message_that_grows_past_the_limit_stops_the_stream(self) -> None:
        guard, passed, said = self.guard()
        guard.feed(client_frames("a" * 30, fragment=6) + client_frames("never read"))
        self.assertEqual(said, ["overflow"])
        guard.feed(client_frames("nor this"))
        self.assertNotIn(b"never", passed)
        self.assertEqual(said, ["overflow"])

    def test_control_frames_between_fragments_pass(self) -> None:
        guard, passed, said = self.guard()
        frames = FrameProtocol(client=True, extensions=[])
        data = (
            frames._serialize_frame(Opcode.TEXT, b"abc", fin=False)
            + frames.ping(b"p")
            + frames._serialize_frame(Opcode.CONTINUATION, b"def", fin=True)
        )
        guard.feed(data)
        self.assertEqual(bytes(passed), data)
        self.assertEqual(said, [])

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.text(max_size=30), max_size=8),
        st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=20),
        st.integers(min_value=0, max_value=7),
    )
    def test_any_split_of_the_stream_reads_the_same(
        self, messages: list[str], cuts: list[int], fragment: int
    ) -> None:
        data = client_frames(*messages, fragment=fragment)
        whole, whole_passed, whole_said = self.guard(limit=20)
        whole.feed(data)
        pieces, passed, said = self.guard(limit=20)
        at = 0
        for cut in cuts * (len(data) // max(1, sum(cuts)) + 1):
            pieces.feed(data[at : at + cut])
            at += cut
            if at >= len(data):
                break
        self.assertEqual(bytes(passed), bytes(whole_passed))
        self.assertEqual(said, whole_said)
        if "overflow" not in said:
            fits = [m for m in messages if len(m.encode()) <= 20]
            self.assertEqual(server_side(bytes(passed)), fits)
            self.assertEqual(said, ["too long"] * (len(messages) - len(fits)))


class OriginTests(SynchronousTestCase):
    def test_normal_form(self) -> None:
        self.assertEqual(normalize_origin("HTTPS://Chat.Example.org:443"), "https://chat.example.org")
        self.assertEqual(normalize_origin("http://chat.example.org:80/"), "http://chat.example.org")
        self.assertEqual(normalize_origin("http://[::1]:8080"), "http://[::1]:8080")

    def test_what_is_not_an_origin(self) -> None:
        for bad in ["chat.example.org", "ftp://x", "https://x/path", "https://", "https://u@x", "null"]:
            self.assertRaises(ValueError, normalize_origin, bad)

    def test_the_pages_own_origin_is_accepted(self) -> None:
        browser = Browser(ServerHarness())
        self.assertTrue(any(isinstance(e, AcceptConnection) for e in browser.handshake(ORIGIN)))

    def test_another_origin_is_refused_with_403(self) -> None:
        browser = Browser(ServerHarness())
        browser.handshake("http://evil.example")
        self.assertEqual(browser.status, 403)
        self.assertEqual(browser.harness.clients.connections, set())

    def test_a_handshake_without_origin_is_refused(self) -> None:
        browser = Browser(ServerHarness())
        browser.handshake(None)
        self.assertEqual(browser.status, 403)

    def test_the_same_host_on_another_port_is_another_origin(self) -> None:
        browser = Browser(ServerHarness())
        browser.handshake("http://127.0.0.1:9999")
        self.assertEqual(browser.status, 403)

    def test_a_configured_origin_is_accepted(self) -> None:
        browser = Browser(ServerHarness(), site_origins=("https://chat.example.org",))
        events = browser.handshake("https://chat.example.org:443")
        self.assertTrue(any(isinstance(e, AcceptConnection) for e in events))


class Body(Protocol):
    """Collects a response's body (readBody warns of the 404 page's transport)."""

    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(self.data)


class PageTests(TestCase):
    """The page's files over a real socket (a file is sent by a producer the reactor drives)."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        harness = ServerHarness()
        self.port = reactor.listenTCP(0, web_site(harness.clients, harness.presence), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)

    async def get(self, path: str) -> tuple[IResponse, bytes]:
        url = f"http://127.0.0.1:{self.port.getHost().port}{path}"
        response = await Agent(self.reactor).request(b"GET", url.encode())
        body = Body()
        response.deliverBody(body)
        return response, await body.done

    async def test_the_page_with_its_security_headers(self) -> None:
        response, body = await self.get("/")
        self.assertEqual(response.code, 200)
        self.assertIn(b'<script src="app.js" defer></script>', body)
        self.assertNotIn(b"<script>", body)  # no inline script
        headers = response.headers
        policy = headers.getRawHeaders("content-security-policy")[0]
        host = f"127.0.0.1:{self.port.getHost().port}"
        self.assertIn("script-src 'self'", policy)
        self.assertIn(f"connect-src 'self' ws://{host} wss://{host}", policy)
        self.assertIn("frame-ancestors 'none'", policy)
        self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"])
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"])

    async def test_scripts_are_served_as_text_javascript(self) -> None:
        response, body = await self.get("/app.js")
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/javascript; charset=utf-8"])
        self.assertNotIn(b"innerHTML", body)  # text is only ever set as text

    async def test_a_missing_file_is_404(self) -> None:
        response, _ = await self.get("/nothing.js")
        self.assertEqual(response.code, 404)


class LineSocketTests(SynchronousTestCase):
    def test_one_line_a_message_each_way(self) -> None:
        harness = ServerHarness()
        browser = Browser(harness)
        browser.handshake()
        browser.send("HELLO alice")
        self.assertEqual(
            browser.lines(), ["WELCOME alice :welcome to msgsvc", "USER alice online", "ENDUSERS 1"]
        )

    def test_web_and_tcp_users_talk(self) -> None:
        harness = ServerHarness()
        bob, bob_transport = harness.register("bob")
        browser = Browser(harness)
        browser.register("alice")
        self.assertEqual(lines(bob_transport), ["JOINED alice"])
        self.assertEqual([harness.hub.user(n).front for n in ("alice", "bob")], ["web", "tcp"])  # type: ignore[union-attr]
        browser.send("SEND bob :hi bob")
        self.assertEqual(browser.lines(), ["SENT 1 - -"])
        self.assertEqual(lines(bob_transport), ["MSG alice unicast bob :hi bob"])
        bob.dataReceived(b"SEND alice,carol :lunch?\r\nBROADCAST :all here\r\n")
        self.assertEqual(
            browser.lines(), ["MSG bob multicast alice :lunch?", "MSG bob broadcast * :all here"]
        )

    def test_two_web_sessions_of_an_account_and_a_tcp_user(self) -> None:
        """The page on a phone and on a laptop, logged in to alice (version 10), and bob over TCP."""
        harness = ServerHarness(records=(UserRecord("alice", 1.0, 2.0, protected=True),), history=HistoryPolicy())
        bob, bob_transport = harness.register("bob", version=10)
        phone, laptop = Browser(harness), Browser(harness)
        for browser in (phone, laptop):
            browser.handshake()
            browser.send("VERSION 10")
            browser.send(f"HELLO alice :{PASSWORD}")
            self.assertIn("WELCOME alice :welcome to msgsvc", browser.lines())
        self.assertEqual(lines(bob_transport), ["JOINED alice"])  # once
        view = harness.hub.user("alice")
        assert view is not None
        self.assertEqual([s.front for s in view.sessions], ["web", "web"])
        phone.send("SEND bob :on my way")
        [sent] = phone.lines()
        [mine] = laptop.lines()
        [got] = lines(bob_transport)
        self.assertEqual((sent.split()[:4], mine, got), (["SENT", "1", "-", "-"], got, mine))
        self.assertTrue(got.startswith("MSG alice unicast bob "), got)
        bob.dataReceived(b"SEND alice :see you\r\n")
        lines(bob_transport)
        [to_phone], [to_laptop] = phone.lines(), laptop.lines()
        self.assertEqual(to_phone, to_laptop)
        position = to_phone.split()[4]
        phone.send(f"READ bob {position}")
        self.assertEqual((phone.lines(), laptop.lines()), ([f"READ alice,bob {position}"],) * 2)
        self.assertEqual(lines(bob_transport), [])
        laptop.channel.connectionLost(Failure(ConnectionDone()))
        harness.end_of_pass()
        self.assertEqual(lines(bob_transport), [])  # the phone is still there
        phone.channel.connectionLost(Failure(ConnectionDone()))
        harness.end_of_pass()
        self.assertEqual(lines(bob_transport), ["LEFT alice"])

    def test_a_member_whose_page_closes_leaves_with_its_close_and_the_others_are_answered(self) -> None:
        """A member parts while another member's page is closing (its Close frame answered, the TCP
        connection not yet lost): the closing page has left (unprotected: its rooms too), nothing is sent
        to it after its Close, and the parting member is answered."""
        harness = ServerHarness()
        bob, bob_transport = harness.register("bob", version=12)
        browser = Browser(harness)
        browser.handshake()
        for line in ("VERSION 12", "HELLO alice", "JOIN #r"):
            browser.send(line)
        bob.dataReceived(b"JOIN #r\r\n")
        browser.lines()
        lines(bob_transport)
        browser.raw(browser.ws.send(CloseConnection(1000)))
        self.assertTrue(browser.transport.disconnecting)
        bob.dataReceived(b"PART #r :bye\r\n")
        harness.end_of_pass()
        self.assertEqual(
            lines(bob_transport), ["LEFT alice", "PARTED #r alice :disconnected", "PARTED #r bob :bye"]
        )
        self.assertEqual(self.flushLoggedErrors(), [])
        self.assertFalse(bob_transport.disconnecting)

    def test_a_message_to_a_page_that_has_quit_is_not_answered_delivered(self) -> None:
        """attack38 F2: alice leaves with her ``BYE``, not at the close: bob is told she is not connected."""
        harness, bob, bob_transport, browser = bob_and_alice()
        browser.send("QUIT :done")
        self.assertEqual(browser.lines(), ["BYE :goodbye"])
        bob.dataReceived(b"SEND alice :still there?\r\n")
        harness.end_of_pass()
        self.assertEqual(lines(bob_transport), ["LEFT alice", "SENT 0 alice -"])

    def test_a_message_to_a_page_that_closes_its_socket_is_not_answered_delivered(self) -> None:
        """attack38 F2: the page closed (its Close frame read, the TCP connection not yet lost): alice
        has left, and a message to her is not counted delivered (nothing is sent after a Close)."""
        harness, bob, bob_transport, browser = bob_and_alice()
        browser.raw(browser.ws.send(CloseConnection(1001)))
        self.assertTrue(browser.transport.disconnecting)
        bob.dataReceived(b"SEND alice :still there?\r\n")
        harness.end_of_pass()
        self.assertEqual(lines(bob_transport), ["LEFT alice", "SENT 0 alice -"])

    def test_a_message_holding_a_line_break_is_refused_whole(self) -> None:
        _, _, bob_transport, browser = bob_and_alice()
        browser.send("SEND bob :hi\nBROADCAST :sneaky")
        browser.send("SEND bob :one\r\nSEND bob :two")
        self.assertEqual(
            browser.lines(),
            [
                "ERROR BAD_SYNTAX :line holds control characters",
                "ERROR BAD_SYNTAX :line holds control characters",
            ],
        )
        self.assertEqual(lines(bob_transport), [])

    def test_an_over_long_message_is_refused_and_the_socket_reads_on(self) -> None:
        harness = ServerHarness(limits=Limits(max_line=100, max_text=50))
        browser = Browser(harness)
        browser.register("alice")
        browser.raw(client_frames("SEND alice :" + "x" * 5000))
        browser.send("PING :still here")
        self.assertEqual(
            browser.lines(), ["ERROR LINE_TOO_LONG :a line may hold at most 100 bytes", "PONG :still here"]
        )

    def test_a_fragmented_message_past_the_limit_closes_with_the_reason(self) -> None:
        harness = ServerHarness(limits=Limits(max_line=100, max_text=50))
        browser = Browser(harness)
        browser.register("alice")
        browser.raw(client_frames("SEND alice :" + "x" * 500, fragment=60))
        got = browser.lines()
        self.assertEqual(got[0].split(" :")[0], "ERROR LINE_TOO_LONG")
        self.assertTrue(got[1].startswith("BYE :a line may hold at most 100 bytes"), got)
        self.assertTrue(browser.transport.disconnecting)

    def test_a_binary_message_is_refused_and_closes(self) -> None:
        harness = ServerHarness()
        browser = Browser(harness)
        browser.register("alice")
        browser.channel.dataReceived(browser.ws.send(BytesMessage(b"HELLO")))
        got = browser.lines()
        self.assertEqual(
            got,
            [
                "ERROR BAD_ENCODING :binary WebSocket messages are not accepted: send each line as text",
                "BYE :binary WebSocket messages are not accepted: send each line as text",
            ],
        )
        self.assertEqual(browser.closed.code if browser.closed else None, 1000)
        self.assertTrue(browser.transport.disconnecting)

    def test_a_text_message_that_is_not_utf8_closes_with_1007(self) -> None:
        browser = Browser(ServerHarness())
        browser.register("alice")
        frames = FrameProtocol(client=True, extensions=[])
        browser.raw(frames._serialize_frame(Opcode.TEXT, b"SEND alice :\xff\xfe", fin=True))
        browser.events()
        self.assertEqual(browser.closed.code if browser.closed else None, 1007)
        self.assertTrue(browser.transport.disconnecting)

    def test_an_empty_message_is_ignored_as_a_blank_line_is(self) -> None:
        browser = Browser(ServerHarness())
        browser.register("alice")
        browser.send("")
        browser.send("PING :1")
        self.assertEqual(browser.lines(), ["PONG :1"])

    def test_websocket_pings_are_answered(self) -> None:
        browser = Browser(ServerHarness())
        browser.register("alice")
        browser.channel.dataReceived(browser.ws.send(Ping(b"x")))
        self.assertEqual([type(e).__name__ for e in browser.events()], ["Pong"])

    def test_lines_wait_while_a_hello_is_checked(self) -> None:
        harness = ServerHarness()
        harness.hashing.hold = True
        browser = Browser(harness)
        browser.handshake()
        browser.send("HELLO alice :a password to claim it")
        browser.send("USERS")
        self.assertEqual(browser.transport.producerState, "paused")  # the socket is not read
        self.assertEqual(browser.lines(), [])
        harness.hashing.hold = False
        while harness.hashing.pending:
            harness.hashing.pending.pop(0).callback(None)
        got = browser.lines()
        self.assertEqual(got[0], "WELCOME alice :welcome to msgsvc")
        self.assertEqual(got[-2:], ["USER alice online protected", "ENDUSERS 1"])
        self.assertEqual(browser.transport.producerState, "producing")

    def test_a_web_user_that_stops_reading_is_dropped(self) -> None:
        harness = ServerHarness(limits=Limits(max_send_queue=1000))
        bob, bob_transport = harness.register("bob")
        browser = Browser(harness)
        browser.register("alice")
        lines(bob_transport)
        browser.transport.producer.pauseProducing()  # what TCP does to its producer when its buffer is full
        for _ in range(40):
            bob.dataReceived(b"SEND alice :" + b"z" * 40 + b"\r\n")
        harness.end_of_pass()
        self.assertTrue(browser.transport.disconnecting)
        self.assertIn("LEFT alice", lines(bob_transport))

    def test_a_username_log_longer_than_the_send_queue_is_sent_whole(self) -> None:
        # The log is one write, split in a message a line: TCP's buffer filled during it, and the
        # whole log was counted as written past it: a web user could not log in to a big log.
        records = tuple(UserRecord(f"user{i:04d}", 1.0, 1.0) for i in range(200))
        harness = ServerHarness(limits=Limits(max_send_queue=1000), records=records)
        browser = Browser(harness)
        browser.handshake()
        write = browser.transport.write
        full: list[bool] = []

        def write_as_tcp(data: bytes) -> None:  # TCP pauses its producer once 64 kB wait; here 1 kB
            write(data)
            if len(browser.transport.value()) > 1000 and not full:
                full.append(True)
                browser.transport.producer.pauseProducing()

        browser.transport.write = write_as_tcp  # type: ignore[method-assign]
        browser.send("HELLO alice")
        self.assertFalse(browser.transport.disconnecting)
        self.assertEqual(browser.lines()[-1], "ENDUSERS 201")

    def test_a_listing_written_in_pieces_comes_a_whole_line_a_message(self) -> None:
        # Pieces of 100 bytes end inside lines: the page is still sent each line whole, in order.
        self.patch(pacing, "PIECE", 100)
        harness = ServerHarness(limits=Limits(max_per_ip=50))
        for i in range(30):
            user, _ = harness.register(f"user{i:02d}", host=f"10.0.{i}.1", version=12)
            user.dataReceived(b"JOIN #big\r\n")
        browser = Browser(harness)
        browser.handshake()
        browser.send("VERSION 12")
        browser.send("HELLO alice")
        browser.lines()
        browser.send("MEMBERS #big")
        browser.send("PING :after")
        got = browser.lines()
        self.assertEqual([g.split(" ")[2] for g in got[:30]], [f"user{i:02d}" for i in range(30)])
        self.assertEqual(got[30:], ["ENDMEMBERS #big 30", "PONG :after"])

    def test_the_per_address_limit_counts_tcp_and_web_together(self) -> None:
        harness = ServerHarness(limits=Limits(max_per_ip=1))
        harness.connect()  # a TCP connection from 127.0.0.1
        browser = Browser(harness)  # refused at its accept, before any request
        self.assertEqual(
            browser.transport.value().split(b"\r\n")[0], b"HTTP/1.1 503 Service Unavailable"
        )
        self.assertTrue(browser.transport.value().endswith(b"at most 1 connections from one address\n"))
        self.assertTrue(browser.transport.disconnecting)

    def test_a_websocket_keeps_the_count_of_its_http_connection(self) -> None:
        harness = ServerHarness(limits=Limits(max_per_ip=1))
        browser = Browser(harness)
        browser.register("alice")  # counted once, from its accept
        refused, tcp = harness.connect()
        self.assertEqual(lines(tcp)[0], "ERROR SERVER_FULL :at most 1 connections from one address")
        browser.channel.connectionLost(Failure(ConnectionDone()))
        refused.connectionLost(Failure(ConnectionDone()))
        _, tcp = harness.connect()  # both given back
        self.assertEqual(lines(tcp), [])
        self.assertFalse(tcp.disconnecting)

    def test_the_connection_ends_as_a_tcp_one_does(self) -> None:
        harness, bob, bob_transport, browser = bob_and_alice()
        browser.send("QUIT :done")
        self.assertEqual(browser.lines(), ["BYE :goodbye"])
        self.assertTrue(browser.transport.disconnecting)
        self.assertIsNotNone(browser.closed)
        browser.channel.connectionLost(Failure(ConnectionDone("Connection was closed cleanly.")))
        harness.end_of_pass()
        self.assertEqual(lines(bob_transport), ["LEFT alice"])
        self.assertEqual(harness.clients.connections, {bob})


class FrameFloodTests(SynchronousTestCase):
    """Frames cost what lines do: read as far as the line rate allows, and their answers count as writes."""

    def setUp(self) -> None:
        self.harness = ServerHarness(limits=Limits(line_rate=1, line_burst=5, max_send_queue=1000))
        self.browser = Browser(self.harness)
        self.browser.register("alice")
        self.frames = FrameProtocol(client=True, extensions=[])

    def pongs(self) -> int:
        return sum(isinstance(e, Pong) for e in self.browser.events())

    def test_pongs_count_against_the_send_queue(self) -> None:
        # F5: a client that pings and never reads was never dropped (the pongs went beside the session).
        self.browser.transport.producer.pauseProducing()  # TCP's buffer is full: the client reads nothing
        self.browser.raw(self.frames.ping(b"p" * 125) * 5)
        self.assertFalse(self.browser.transport.disconnecting)
        self.harness.clock.advance(10)  # within the rate
        self.browser.raw(self.frames.ping(b"p" * 125) * 5)
        self.harness.clock.advance(10)
        self.assertTrue(self.browser.transport.disconnecting)  # 10 pongs of 127 bytes: over 1000 unread
        self.assertEqual([u.name for u in self.harness.hub.users() if u.online], [])

    def test_pings_are_answered_only_as_fast_as_the_line_rate(self) -> None:
        self.browser.raw(self.frames.ping(b"x") * 30)  # one read
        self.assertEqual(self.pongs(), 5)  # the burst less the HELLO, and one that goes into debt
        self.assertEqual(self.browser.transport.producerState, "paused")
        self.harness.clock.advance(1)
        self.assertEqual(self.pongs(), 1)
        for _ in range(30):
            self.harness.clock.advance(1)
        self.assertEqual(self.pongs(), 24)

    def test_empty_messages_and_fragments_count_as_lines(self) -> None:
        fragments = b"".join(
            self.frames._serialize_frame(Opcode.TEXT if i == 0 else Opcode.CONTINUATION, b"", fin=i == 20)
            for i in range(21)
        )  # one empty message in 21 frames
        self.browser.raw(client_frames(*[""] * 20) + fragments + client_frames("PING :after"))
        self.assertEqual(self.browser.lines(), [])  # 41 frames that end no line: the PING waits
        self.assertEqual(self.browser.transport.producerState, "paused")
        for _ in range(36):
            self.harness.clock.advance(1)
        self.assertEqual(self.browser.lines(), [])
        self.harness.clock.advance(1)
        self.assertEqual(self.browser.lines(), ["PONG :after"])

    def test_one_read_of_many_lines_is_parsed_only_as_far_as_the_rate_allows(self) -> None:
        session = web_session(self.harness)
        parsed: list[bytes] = []
        receive = session.dataReceived
        session.dataReceived = lambda data: (parsed.append(data), receive(data))[1]  # type: ignore[method-assign]
        self.browser.raw(client_frames(*[f"PING :{n}" for n in range(50)]))
        self.assertEqual(len(parsed), 5)  # not 50 lines parsed and queued
        for _ in range(50):
            self.harness.clock.advance(1)
        self.assertEqual(self.browser.lines(), [f"PONG :{n}" for n in range(50)])


class HTTPConnectionTests(SynchronousTestCase):
    """The web port before any WebSocket: counted from the accept, a deadline per request, odd requests."""

    def setUp(self) -> None:
        self.harness = ServerHarness(limits=Limits(max_per_ip=3))
        self.site = web_site(
            self.harness.clients, self.harness.presence, ("https://proxy.example.org",), ("chat.example.org",), request_timeout=10
        )

    def open(self, host: str = "127.0.0.1") -> tuple[WebChannel, TCPStringTransport]:
        self.harness._port += 1
        transport = TCPStringTransport(peerAddress=IPv4Address("TCP", host, self.harness._port))
        channel = self.site.buildProtocol(transport.getPeer())
        assert isinstance(channel, WebChannel)
        channel.makeConnection(transport)
        return channel, transport

    def get(self, path: bytes, host: bytes = b"127.0.0.1:8080") -> bytes:
        """The status line of the answer to ``GET path`` on a new connection."""
        connection = self.open()
        status = self.ask(connection, b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        connection[0].connectionLost(Failure(ConnectionDone()))
        return status

    def ask(self, connection: tuple[WebChannel, TCPStringTransport], request: bytes) -> bytes:
        """The status line of the answer to ``request``."""
        channel, transport = connection
        transport.clear()
        channel.dataReceived(request)
        return transport.value().split(b"\r\n")[0]

    def test_half_open_connections_count_from_their_accept(self) -> None:
        # F6: 200 half-open connections from one address stayed open, uncounted until upgraded.
        for _ in range(3):
            channel, transport = self.open()
            channel.dataReceived(b"GET / HTTP/1.1\r\nHost: 127.0.0.1")
            self.assertEqual(transport.value(), b"")
        _, fourth = self.open()
        self.assertEqual(fourth.value().split(b"\r\n")[0], b"HTTP/1.1 503 Service Unavailable")
        self.assertTrue(fourth.disconnecting)
        _, tcp = self.harness.connect()  # every front's connections together
        self.assertEqual(lines(tcp)[0], "ERROR SERVER_FULL :at most 3 connections from one address")
        _, other = self.open(host="10.0.0.2")  # another address has its own share
        self.assertFalse(other.disconnecting)

    def test_a_request_must_be_whole_within_the_timeout_however_it_trickles(self) -> None:
        channel, transport = self.open()
        for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "[:9]:
            channel.dataReceived(bytes([byte]))  # a byte a second: Twisted's idle timeout stood still
            self.harness.clock.advance(1)
        self.assertFalse(transport.disconnecting)
        self.harness.clock.advance(1)
        self.assertTrue(transport.disconnecting)
        channel.connectionLost(Failure(ConnectionDone()))
        for _ in range(3):  # its count given back
            self.assertFalse(self.open()[1].disconnecting)

    def test_the_deadline_starts_again_after_each_response(self) -> None:
        connection = self.open()
        transport = connection[1]
        request = b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.harness.clock.advance(9)
        self.assertEqual(self.ask(connection, request), b"HTTP/1.1 404 Not Found")
        self.harness.clock.advance(9)
        self.assertEqual(self.ask(connection, request), b"HTTP/1.1 404 Not Found")
        self.harness.clock.advance(9.5)
        self.assertFalse(transport.disconnecting)
        self.harness.clock.advance(0.5)  # idle for 10 s after the last response
        self.assertTrue(transport.disconnecting)

    def test_pipelined_requests_are_answered_one_a_reactor_pass(self) -> None:
        channel, transport = self.open()
        channel.dataReceived(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 1000)
        self.assertEqual(transport.value().count(b"HTTP/1.1 404"), 1)
        self.assertEqual(transport.producerState, "paused")  # nothing more is read meanwhile
        one_pass(self.harness.clock)
        self.assertEqual(transport.value().count(b"HTTP/1.1 404"), 2)
        for _ in range(998):
            one_pass(self.harness.clock)
        self.assertEqual(transport.value().count(b"HTTP/1.1 404"), 1000)
        one_pass(self.harness.clock)
        self.assertEqual(transport.producerState, "producing")

    def test_a_request_with_a_body_is_refused(self) -> None:
        for headers in [b"Content-Length: 5", b"Transfer-Encoding: chunked"]:
            channel, transport = self.open()
            request = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n\r\nhello"
            self.assertEqual(self.ask((channel, transport), request), b"HTTP/1.1 413 Content Too Large")
            self.assertTrue(transport.disconnecting)
            channel.connectionLost(Failure(ConnectionDone()))

    def test_odd_paths_are_404_and_log_nothing(self) -> None:
        # GET /app.js%00.html answered 500 with a traceback; %ff logged one with its 404.
        paths = [
            b"/app.js%00.html",
            b"/index.html%00",
            b"/%ff",
            b"/%c3%28",
            b"/%2e%2e/%2e%2e/etc/passwd",
            b"/..%2f..%2fetc%2fpasswd",
            b"/a%2fb",
            b"/app.js/",
            b"/app.js/x",
            b"/ws%00",
            b"/" + b"a" * 8000,
            b"/a" * 2000,
        ]
        with failures_logged() as failures:
            for path in paths:
                self.assertEqual(self.get(path), b"HTTP/1.1 404 Not Found", path[:40])
        self.assertEqual(failures, [])

    def test_a_request_for_a_host_it_does_not_serve_is_refused_421(self) -> None:
        served = [
            b"127.0.0.1:8080",
            b"localhost",
            b"LocalHost:8080",
            b"localhost.",
            b"[::1]:8080",
            b"10.1.2.3",
            b"chat.example.org",  # --web-host
            b"proxy.example.org:443",  # the host of a --web-origin
            socket.gethostname().encode(),
        ]
        for host in served:
            self.assertEqual(self.get(b"/nothing", host), b"HTTP/1.1 404 Not Found", host)
        refused = [b"evil.example", b"localhost.evil.example", b"localhost;x", b"::1", b"[localhost]", b"a b", b""]
        for host in refused:
            self.assertEqual(self.get(b"/", host), b"HTTP/1.1 421 Misdirected Request", host)

    def test_dns_rebinding_cannot_open_the_websocket(self) -> None:
        # A page of attacker.example, its name pointed at this server: its origin matched its Host.
        connection = self.open()
        ws = WSConnection(ConnectionType.CLIENT)
        handshake = ws.send(
            Request(host="attacker.example:8080", target="/ws", extra_headers=[(b"origin", b"http://attacker.example:8080")])
        )
        self.assertEqual(self.ask(connection, handshake), b"HTTP/1.1 421 Misdirected Request")
        self.assertEqual(self.harness.clients.connections, set())
