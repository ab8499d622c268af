"""Property-based tests: the codec and the server protocol on arbitrary input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc import wire
from msgsvc.hub.contracts import Refused
from msgsvc.wire import TOO_LONG, Line, LineFramer, ProtocolError

from .support.harness import ServerHarness, lines

_PRINTABLE = st.characters(blacklist_categories=["Cc", "Cs"])
_VERB = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10)
_MIDDLE = st.text(alphabet=_PRINTABLE, min_size=1, max_size=20).filter(
    lambda p: " " not in p and not p.startswith(":")
)
_TRAILING = st.text(alphabet=st.one_of(_PRINTABLE, st.just("\t")), max_size=50)


_COMMANDS = st.sampled_from(
    [
        b"HELLO fuzz\r\n",
        b"HELLO bob\r\n",
        b"SEND bob :hi\r\n",
        b"SEND bob,BOB,zed,fuzz :hey\n",
        b"BROADCAST :all\r\n",
        b"USERS\r\n",
        b"PING :x\r\n",
        b"PONG\r\n",
        b"QUIT :done\r\n",
    ]
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


class WireProperties(SynchronousTestCase):
    @given(st.binary(max_size=300))
    def test_parse_line_answers_or_refuses_with_a_code(self, raw: bytes) -> None:
        try:
            line = wire.parse_line(raw)
        except ProtocolError as e:
            self.assertIn(e.code, (wire.Code.BAD_ENCODING, wire.Code.BAD_SYNTAX))
            return
        if line is not None:
            self.assertTrue(line.verb)
            self.assertEqual(line.verb, line.verb.upper())
            try:
                wire.parse_command(line, wire.Limits())
            except (ProtocolError, Refused):
                pass

    @given(_VERB, st.lists(_MIDDLE, max_size=4), st.one_of(st.none(), _TRAILING))
    def test_format_then_parse_gives_the_same_line(
        self, verb: str, params: list[str], trailing: str | None
    ) -> None:
        raw = wire.format_line(verb, *params, trailing=trailing)
        self.assertTrue(raw.endswith(b"\r\n"))
        expected = tuple(params) + (() if trailing is None else (trailing,))
        self.assertEqual(wire.parse_line(raw[:-2]), Line(verb, expected))

    @given(
        st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
        st.lists(st.integers(0, 10_000)),
    )
    def test_framing_does_not_depend_on_how_the_stream_is_cut(
        self, raw_lines: list[bytes], cuts: list[int]
    ) -> None:
        stream = b"".join(line + b"\n" for line in raw_lines)
        framer = LineFramer(30)
        got: list[object] = []
        for chunk in chunked(stream, cuts):
            framer.feed(chunk)
            while (item := framer.next_line()) is not None:
                got.append(item)
        expected = [
            TOO_LONG if len(line.removesuffix(b"\r")) > 30 else line.removesuffix(b"\r") for line in raw_lines
        ]
        self.assertEqual(got, expected)


class ServerProperties(SynchronousTestCase):
    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.one_of(st.binary(max_size=200), _COMMANDS), max_size=12), st.lists(st.integers(0, 2000))
    )
    def test_arbitrary_bytes_never_break_the_server(self, pieces: list[bytes], cuts: list[int]) -> None:
        server = ServerHarness(wire.Limits(max_line=100, max_text=50, max_recipients=3), max_clients=10)
        bob, b = server.register("bob")
        fuzzer, f = server.connect()
        stream = b"".join(pieces)
        for chunk in chunked(stream, cuts):
            if f.disconnecting:
                break
            fuzzer.dataReceived(chunk)
        for line in lines(f):  # only well-formed replies
            self.assertIsNotNone(wire.parse_line(line.encode()))
        # Bob is untouched and still served.
        self.assertFalse(b.disconnecting)
        bob.dataReceived(b"USERS\r\n")
        self.assertTrue(lines(b)[-1].startswith("ENDUSERS"))
        fuzzer.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([u.name for u in server.hub.users() if u.online], ["bob"])
