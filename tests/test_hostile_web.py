"""The web front against hostile input (issue 27): any frames a WebSocket client can send, and an attacker over
loopback (HTTP and WebSocket).

For any input the client gets an ``ERROR``, or is closed with a ``BYE`` or
a close frame saying why, never a traceback; the work one read can cause
is bounded by design (the lines run, the pongs and bytes written, counted
here); and a bystander is served throughout.
"""

from __future__ import annotations

import os
import struct

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Pong, Request, TextMessage

from msgsvc.fronts.web.site import web_site
from msgsvc.hub.conversations import ALL
from msgsvc.wire import Limits

from .support.harness import ServerHarness, lines
from .support.hostile import (
    LIMITS,
    ACCOUNT,
    MADE_UP,
    OPENINGS,
    SECRET,
    Attacker,
    answered_throughout,
    any_line,
    assert_reads_bounded,
    assert_still_served,
    assert_well_formed,
    attack,
    failures_logged,
    per_line_bound,
    with_history,
)
from .support.logs import big_log
from .support.loopback import LoopbackServer
from .support.wsclient import Browser, web_session


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True) -> bytes:
    """One frame as a client sends it (masked), or as a broken one might."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def first_close(stream: bytes) -> tuple[int, str] | None:
    """The first close frame in ``stream``, as a client reads the server's echo of it: its status (1005 if it
    has none) and reason; None if there is none. A close the parser refuses is answered with a reason."""
    i = 0
    while i + 2 <= len(stream):
        opcode, length, masked = stream[i] & 0x0F, stream[i + 1] & 0x7F, stream[i + 1] & 0x80
        i += 2
        if length in (126, 127):
            size = 2 if length == 126 else 8
            length, i = int.from_bytes(stream[i : i + size], "big"), i + size
        mask, i = (stream[i : i + 4], i + 4) if masked else (bytes(4), i)
        if opcode == CLOSE:
            payload = bytes(b ^ mask[k % 4] for k, b in enumerate(stream[i : i + length]))
            if not payload:
                return 1005, ""
            return int.from_bytes(payload[:2], "big"), payload[2:].decode(errors="replace")
        i += length
    return None


def fragmented(payload: bytes, cuts: int) -> bytes:
    size = max(1, len(payload) // (cuts + 1))
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    return b"".join(
        frame(TEXT if i == 0 else CONTINUATION, piece, fin=i == len(pieces) - 1) for i, piece in enumerate(pieces)
    )


_FRAME = st.one_of(
    any_line().map(lambda line: frame(TEXT, line)),
    st.binary(max_size=40).map(lambda data: frame(TEXT, data)),  # not UTF-8, most often
    st.binary(max_size=20).map(lambda data: frame(BINARY, data)),
    st.integers(0, 130).map(lambda n: frame(PING, b"p" * n)),  # over 125 is a protocol error
    st.binary(max_size=20).map(lambda data: frame(PONG, data)),
    st.tuples(st.integers(0, 5000), st.text(max_size=20)).map(
        lambda c: frame(CLOSE, struct.pack(">H", c[0]) + c[1].encode())
    ),
    st.tuples(any_line(), st.integers(0, 6)).map(lambda t: fragmented(t[0], t[1])),
    st.just(frame(TEXT, b"", fin=False) + frame(CONTINUATION, b"", fin=False) * 30),  # never ends
    st.binary(max_size=10).map(lambda data: frame(CONTINUATION, data)),  # no message to continue
    st.integers(201, 3000).map(lambda n: frame(TEXT, b"SEND bob :" + b"x" * n)),  # over --max-line
    st.integers(40, 90).map(lambda n: fragmented(b"SEND bob :" + b"z" * 250, n)),  # grows past it
    st.tuples(st.integers(1, 7), any_line()).map(lambda t: frame(TEXT, t[1], rsv=t[0])),
    any_line().map(lambda line: frame(TEXT, line, masked=False)),
    st.sampled_from([3, 4, 7, 0xB, 0xF]).map(lambda op: frame(op, b"?")),
    st.binary(min_size=1, max_size=30),  # not frames at all
)
#: What one read brings: some frames, the last maybe cut short (its rest comes with the next read).
_READ = st.lists(_FRAME, min_size=1, max_size=12).map(b"".join)


class HostileWebSocketTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(OPENINGS, st.lists(_READ, min_size=1, max_size=5), st.lists(st.integers(0, 200), max_size=5))
    # A client's own close frame, which the server echoes: without a status (read as 1005); with status 4096 and
    # no reason, once registered; with status 3000 and no reason (as 2000 examples from seed 1 found it).
    @example("", [b"\x88\x80\x00\x00\x00\x00"], [])
    @example("HELLO mallory", [b"\x88\x82\x00\x00\x00\x00\x10\x00"], [])
    @example("", [b"\x88\x829\x00\x00\x002\xb8"], [])
    def test_any_frames_are_answered_or_closed_with_a_reason_and_their_work_is_bounded(
        self, opening: str, reads: list[bytes], cuts: list[int]
    ) -> None:
        harness = ServerHarness(LIMITS, max_clients=10)
        with_history(harness)
        bob, bob_transport = harness.register("bob", version=9)
        browser = Browser(harness)
        browser.handshake()
        for line in filter(None, opening.split("\n")):
            browser.send(line)
        if opening:
            browser.lines()
        # The attacker's account's other session (a TCP client here): the web session's input never reaches
        # another account's, and its own only as its account's.
        phone = harness.register("mallory", ACCOUNT, version=10) if ACCOUNT in opening else None
        session = web_session(harness)
        run: list[bytes] = []
        command = session.command
        session.command = lambda line: (run.append(line), command(line))[1]  # type: ignore[method-assign]
        bound = per_line_bound(harness)
        stream = b"".join(reads)
        points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        with failures_logged() as failures:
            for a, b in zip(points, points[1:], strict=False):
                if browser.transport.disconnecting:
                    break
                run.clear()
                before = len(browser.transport.value()) + len(bob_transport.value())
                browser.raw(stream[a:b])
                harness.end_of_pass()
                self.assertLessEqual(len(run), LIMITS.line_burst + 1)  # lines run by one read
                step = len(browser.transport.value()) + len(bob_transport.value()) - before
                # Each frame passed on is a line (or a pong of at most 127 bytes) within the rate.
                self.assertLessEqual(step, (LIMITS.line_burst + 2) * bound + 200)
            for _ in range(20):
                harness.clock.advance(1)
            out = browser.lines()
            assert_well_formed(self, out)
            self.assertFalse([line for line in out if SECRET in line])  # never in alice and bob's conversation
            if phone is not None:
                mine = lines(phone[1])
                assert_well_formed(self, mine)
                self.assertFalse([line for line in mine if SECRET in line])
            self.assertFalse([line for line in lines(bob_transport) if line.startswith("READ ")])
            self.assertNotIn("bob", harness.store.reads)
            assert_reads_bounded(self, harness.store)
            if browser.transport.disconnecting:
                said_why = bool(out) and out[-1].startswith("BYE ")
                # A close without a reason is only ever the echo of the client's own close (RFC 6455 5.5.1).
                closed_why = browser.closed is not None and (
                    browser.closed.reason or (browser.closed.code, browser.closed.reason) == first_close(stream)
                )
                self.assertTrue(said_why or closed_why, (out[-3:], browser.closed))
            browser.channel.connectionLost(Failure(ConnectionDone()))
            harness.end_of_pass()
        self.assertEqual(failures, [])
        assert_still_served(self, bob, bob_transport)
        if phone is not None:
            phone[0].connectionLost(Failure(ConnectionDone()))
        self.assertEqual({p.front for p in harness.clients.connections}, {"tcp"})

    def test_a_read_storm_keeps_positions_only_where_messages_are(self) -> None:
        """Issue 31's attack from a page: READ of made-up conversations keeps nothing; READ where a
        message is keeps one, no further than the newest."""
        harness = ServerHarness(LIMITS, max_clients=10)
        with_history(harness)
        browser = Browser(harness)
        browser.handshake()
        browser.send("VERSION 10")
        browser.send(f"HELLO mallory :{ACCOUNT}")
        browser.lines()
        far = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        storm = [f"READ {c} {far}" for c in [*MADE_UP, "bob", "#all"]]
        said: list[str] = []
        for line in storm:
            browser.send(line)
            harness.clock.advance(1)  # within the line rate
            said += [line for line in browser.lines() if not line.startswith("PING ")]
        refused = "ERROR HISTORY_FORBIDDEN :no message of that conversation is kept for you to read"
        newest = max(e.id for e in harness.store.history[ALL])
        self.assertEqual(said, [refused] * (len(MADE_UP) + 1) + [f"READ #all {newest}"])
        self.assertEqual(harness.store.reads, {"mallory": {ALL: newest}})

    def test_a_read_full_of_pings_is_answered_as_far_as_the_rate_allows(self) -> None:
        harness = ServerHarness(LIMITS)
        browser = Browser(harness)
        browser.register("alice")
        browser.raw(frame(PING, b"") * 10_000)  # 60 kB: one read
        pongs = [e for e in browser.events() if isinstance(e, Pong)]
        self.assertLessEqual(len(pongs), LIMITS.line_burst + 1)
        self.assertEqual(browser.transport.producerState, "paused")


class WebSocketClient(Protocol):
    """A WebSocket client of the line protocol (wsproto): ``send`` a line, ``until`` a reply."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._lines: DeferredQueue[str] = DeferredQueue()
        self.open: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        origin = [(b"origin", f"http://{self._host}".encode())]
        self.transport.write(self._ws.send(Request(host=self._host, target="/ws", extra_headers=origin)))  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, AcceptConnection):
                self.open.callback(None)
            elif isinstance(event, TextMessage):
                self._lines.put(event.data)
            elif isinstance(event, Ping):
                self.transport.write(self._ws.send(event.response()))  # type: ignore[union-attr]

    def send(self, line: str) -> None:
        self.transport.write(self._ws.send(TextMessage(line)))  # type: ignore[union-attr]

    async def until(self, prefix: str) -> list[str]:
        got = [await self._lines.get()]
        while not got[-1].startswith(prefix):
            got.append(await self._lines.get())
        return got


def handshake(port: int) -> bytes:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
    ).encode()


class WebAttackEndToEndTests(TestCase):
    """A real server's web port over loopback: an attacker runs the worst inputs while a bystander's PING,
    over a WebSocket, is answered."""

    async def test_a_bystander_is_answered_while_the_attack_goes_on(self) -> None:
        db = self.mktemp()
        big_log(db, 20_000)
        server = await LoopbackServer(db, Limits(max_send_queue=256 * 1024)).start(self)
        listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(web_site(server.clients, server.factory.presence))
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        bystander = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port), WebSocketClient(f"127.0.0.1:{port}")
        )
        await bystander.open
        bystander.send("HELLO bystander")
        await Deferred.fromCoroutine(bystander.until("ENDUSERS")).addTimeout(10, reactor)

        def socket(data: bytes, first: bytes = b"") -> Attacker:
            return Attacker(lambda: data, handshake(port), first or frame(TEXT, b""))

        attackers = [
            socket(frame(PING, b"p" * 125) * 500, frame(TEXT, b"HELLO pinger")),  # pongs never read
            *[socket(frame(PING, b"") * 10_000) for _ in range(10)],  # reads of tiny frames
            *[socket(frame(TEXT, b"PING :x") * 5000) for _ in range(10)],
            *[socket(frame(TEXT, b"", fin=False) + frame(CONTINUATION, b"", fin=False) * 10_000) for _ in range(5)],
            *[socket(frame(TEXT, b"") * 10_000) for _ in range(10)],  # empty messages
            socket(frame(TEXT, b"y" * 60_000)),  # over --max-line, dropped unread
            socket(frame(TEXT, b"USERS") * 100, frame(TEXT, b"HELLO usersreader")),  # the big log, unread
            Attacker(lambda: b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 1000),  # pipelined
            Attacker(lambda: b"GET /app.js%00.html HTTP/1.1\r\nHost: evil.example\r\n\r\n" * 1000),
            *[Attacker(lambda: b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(25)],  # slowloris
        ]
        with failures_logged() as failures:
            await attack(port, attackers)
            longest = await answered_throughout(bystander, seconds=3)
            for attacker in attackers:
                attacker.stop()
        self.assertLess(longest, 2.0)  # a freeze, not a speed: a bystander waits no more than this
        self.assertEqual(failures, [])
        self.assertLessEqual(len(server.clients.connections), 1 + 20 * 3)  # --max-per-ip for each address
