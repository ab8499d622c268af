"""The wire codec: framing, line grammar, commands."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from msgsvc import wire
from msgsvc.hub.contracts import Refusal, Refused
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.rules import USERNAME_PATTERN, is_valid_username, username_key
from msgsvc.wire import REFUSAL_CODES, TOO_LONG, Code, Limits, Line, LineFramer, ProtocolError


def drain(framer: LineFramer) -> list[object]:
    out = []
    while (item := framer.next_line()) is not None:
        out.append(item)
    return out


class LineFramerTests(SynchronousTestCase):
    def test_lines_end_with_lf_and_an_optional_cr(self) -> None:
        framer = LineFramer(100)
        framer.feed(b"one\r\ntwo\nthree\r\n")
        self.assertEqual(drain(framer), [b"one", b"two", b"three"])

    def test_partial_line_waits_for_its_end(self) -> None:
        framer = LineFramer(100)
        framer.feed(b"hel")
        self.assertEqual(drain(framer), [])
        framer.feed(b"lo\r")
        self.assertEqual(drain(framer), [])
        framer.feed(b"\nnext")
        self.assertEqual(drain(framer), [b"hello"])

    def test_byte_at_a_time(self) -> None:
        framer = LineFramer(100)
        out: list[object] = []
        for byte in b"a b\r\n\r\nc\n":
            framer.feed(bytes([byte]))
            out += drain(framer)
        self.assertEqual(out, [b"a b", b"", b"c"])

    def test_cr_alone_is_not_an_end(self) -> None:
        framer = LineFramer(100)
        framer.feed(b"a\rb\n")
        self.assertEqual(drain(framer), [b"a\rb"])

    def test_line_at_the_limit_passes(self) -> None:
        framer = LineFramer(5)
        framer.feed(b"12345\r\n12345\n")
        self.assertEqual(drain(framer), [b"12345", b"12345"])

    def test_complete_over_long_line_is_reported_and_skipped(self) -> None:
        framer = LineFramer(5)
        framer.feed(b"123456\nok\n")
        self.assertEqual(drain(framer), [TOO_LONG, b"ok"])

    def test_unterminated_over_long_line_is_reported_once_and_dropped(self) -> None:
        framer = LineFramer(5)
        framer.feed(b"1234567")
        self.assertEqual(drain(framer), [TOO_LONG])
        framer.feed(b"89" * 1000)
        self.assertEqual(drain(framer), [])
        framer.feed(b"end of it\nafter\n")
        self.assertEqual(drain(framer), [b"after"])

    def test_memory_stays_bounded_while_discarding(self) -> None:
        framer = LineFramer(10)
        for _ in range(1000):
            framer.feed(b"x" * 1000)
            drain(framer)
        self.assertLessEqual(framer._partial_size, 1000)

    def test_many_lines_in_one_chunk(self) -> None:
        framer = LineFramer(100)
        framer.feed(b"PING\r\n" * 100_000)
        self.assertEqual(len(drain(framer)), 100_000)


class ParseLineTests(SynchronousTestCase):
    def test_verb_is_upper_cased(self) -> None:
        self.assertEqual(wire.parse_line(b"hello alice"), Line("HELLO", ("alice",)))

    def test_trailing_keeps_spaces_and_colons(self) -> None:
        self.assertEqual(
            wire.parse_line(b"SEND bob :hi there : friend "),
            Line("SEND", ("bob", "hi there : friend ")),
        )

    def test_trailing_may_be_empty(self) -> None:
        self.assertEqual(wire.parse_line(b"PING :"), Line("PING", ("",)))

    def test_runs_of_spaces_separate(self) -> None:
        self.assertEqual(wire.parse_line(b"  SEND   bob   :x"), Line("SEND", ("bob", "x")))

    def test_colon_inside_a_middle_parameter(self) -> None:
        self.assertEqual(wire.parse_line(b"SEND a:b :x"), Line("SEND", ("a:b", "x")))

    def test_blank_line_is_none(self) -> None:
        self.assertIsNone(wire.parse_line(b""))
        self.assertIsNone(wire.parse_line(b"   "))

    def test_utf8_text(self) -> None:
        line = wire.parse_line("BROADCAST :héllo wörld ✓".encode())
        self.assertEqual(line, Line("BROADCAST", ("héllo wörld ✓",)))

    def assertError(self, raw: bytes, code: Code) -> ProtocolError:
        with self.assertRaises(ProtocolError) as caught:
            wire.parse_line(raw)
        self.assertEqual(caught.exception.code, code)
        return caught.exception

    def test_bad_utf8(self) -> None:
        error = self.assertError(b"SEND bob :caf\xe9", Code.BAD_ENCODING)
        self.assertIn("byte 13", error.text)

    def test_control_characters_are_refused(self) -> None:
        self.assertError(b"SEND bob :a\x00b", Code.BAD_SYNTAX)
        self.assertError(b"SEND bob :a\x1b[2Jb", Code.BAD_SYNTAX)
        self.assertError(b"SEND b\tob :x", Code.BAD_SYNTAX)

    def test_tab_is_allowed_in_text(self) -> None:
        self.assertEqual(wire.parse_line(b"SEND bob :a\tb"), Line("SEND", ("bob", "a\tb")))

    def test_leading_colon(self) -> None:
        self.assertError(b":SEND bob", Code.BAD_SYNTAX)

    def test_trailing_without_verb(self) -> None:
        self.assertError(b" :text", Code.BAD_SYNTAX)


class FormatLineTests(SynchronousTestCase):
    def test_format(self) -> None:
        self.assertEqual(
            wire.format_line("MSG", "bob", "unicast", "alice", trailing="hi there"),
            b"MSG bob unicast alice :hi there\r\n",
        )

    def test_no_trailing(self) -> None:
        self.assertEqual(wire.format_line("ENDUSERS", "3"), b"ENDUSERS 3\r\n")

    def test_empty_trailing(self) -> None:
        self.assertEqual(wire.format_line("PONG", trailing=""), b"PONG :\r\n")

    def test_round_trip(self) -> None:
        raw = wire.format_line("SEND", "a,b", trailing="x :y ✓")
        self.assertEqual(wire.parse_line(raw.rstrip(b"\r\n")), Line("SEND", ("a,b", "x :y ✓")))

    def test_bad_parameters_are_refused(self) -> None:
        for bad in ["", "a b", ":a", "a\nb", "a\tb"]:
            self.assertRaises(ValueError, wire.format_line, "X", bad)
        self.assertRaises(ValueError, wire.format_line, "X", trailing="a\r\nQUIT")


class UsernameTests(SynchronousTestCase):
    def test_valid(self) -> None:
        for name in ["a", "Alice", "bob_2", "c.d-e", "x" * 32]:
            self.assertTrue(is_valid_username(name), name)

    def test_invalid(self) -> None:
        for name in ["", "2bob", "_x", "a b", "a,b", "*", "-", "x" * 33, "é", "a:b", "ａ"]:
            self.assertFalse(is_valid_username(name), name)

    def test_key_ignores_case(self) -> None:
        self.assertEqual(username_key("Alice"), username_key("aLICE"))


class TimeTests(SynchronousTestCase):
    def test_a_message_time_to_the_millisecond_and_back(self) -> None:
        for when, text in (
            (1_764_608_525.123, "2025-12-01T17:02:05.123Z"),
            (1_764_608_525.0, "2025-12-01T17:02:05.000Z"),
            (1_764_608_525.999, "2025-12-01T17:02:05.999Z"),
            (0.116, "1970-01-01T00:00:00.116Z"),
        ):
            self.assertEqual(wire.format_millis(when), text)
            self.assertEqual(wire.parse_millis(text), when)
        self.assertEqual(wire.parse_millis("2025-12-01T17:02:05Z"), 1_764_608_525.0)
        for bad in ("2025-12-01T17:02:05", "2025-12-01T17:02:05.1234Z", "2025-13-01T17:02:05Z", "x"):
            self.assertRaises(ValueError, wire.parse_millis, bad)


class ParseCommandTests(SynchronousTestCase):
    limits = Limits(max_line=200, max_text=10, max_recipients=3)

    def command(self, raw: bytes) -> wire.Command:
        line = wire.parse_line(raw)
        assert line is not None
        return wire.parse_command(line, self.limits)

    def assertError(self, raw: bytes, code: Code) -> None:
        """``raw`` is refused with ``code``: by the parser, or by the hub's rules (said with that code)."""
        with self.assertRaises((ProtocolError, Refused)) as caught:
            self.command(raw)
        error = caught.exception
        said = error.code if isinstance(error, ProtocolError) else REFUSAL_CODES[error.refusal]
        self.assertEqual(said, code)

    def test_hello(self) -> None:
        self.assertEqual(self.command(b"HELLO alice"), wire.Hello("alice"))
        self.assertEqual(self.command(b"hello :alice"), wire.Hello("alice"))
        self.assertError(b"HELLO", Code.BAD_SYNTAX)
        self.assertError(b"HELLO a b c", Code.BAD_SYNTAX)

    def test_hello_with_a_password(self) -> None:
        self.assertEqual(self.command(b"HELLO alice :my secret"), wire.Hello("alice", "my secret"))
        self.assertEqual(self.command(b"HELLO alice s3cret!!"), wire.Hello("alice", "s3cret!!"))
        self.assertEqual(self.command(b"HELLO alice :"), wire.Hello("alice"))  # empty: none given
        self.assertEqual(self.command(b"HELLO alice :ice"), wire.Hello("alice", "ice"))  # refused later

    def test_version(self) -> None:
        self.assertEqual(self.command(b"VERSION 9"), wire.Version(9))
        self.assertEqual(self.command(b"version :12"), wire.Version(12))
        for bad in (b"VERSION", b"VERSION 0", b"VERSION 9 9", b"VERSION x", b"VERSION 1234567890"):
            self.assertError(bad, Code.BAD_SYNTAX)

    def test_history_and_conversations(self) -> None:
        at = 1_764_608_525.123  # 2025-12-01T17:02:05.123Z
        floor = message_id_floor(at)
        self.assertEqual(self.command(b"HISTORY alice"), wire.History("alice", None, None))
        self.assertEqual(self.command(b"HISTORY #all * 7"), wire.History("#all", None, 7))
        by_id = self.command(f"HISTORY a,b {floor.lower()} 100".encode())
        self.assertEqual(by_id, wire.History("a,b", floor, 100))
        self.assertEqual(self.command(b"HISTORY a 2025-12-01T17:02:05.123Z"), wire.History("a", floor, None))
        by_second = self.command(b"HISTORY a 2025-12-01T17:02:05Z 1")
        self.assertEqual(by_second, wire.History("a", message_id_floor(at - 0.123), 1))
        self.assertEqual(self.command(b"CONVERSATIONS"), wire.Conversations())
        for bad in (
            b"HISTORY",
            b"HISTORY a * 1 1",
            b"HISTORY a 01M8TX2QBCCN5W12B51QFEAZBI",  # I is not in Crockford's base 32
            b"HISTORY a 2025-12-01 17:02:05Z",
            b"HISTORY a 2025-12-01T17:02:05.12Z",
            b"HISTORY a \xd9\xa1\xd9\xa1\xd9\xa1\xd9\xa1-12-01T17:02:05Z",
            b"HISTORY a * 0",
            b"HISTORY a * 101",
            b"HISTORY a * 0050",
            b"CONVERSATIONS 1",
        ):
            self.assertError(bad, Code.BAD_SYNTAX)

    def test_a_second_word_that_cannot_be_a_password_is_part_of_the_name(self) -> None:
        self.assertEqual(self.command(b"HELLO al ice"), wire.Hello("al ice"))

    def test_password_is_never_in_a_repr(self) -> None:
        self.assertNotIn("hunter22", repr(self.command(b"HELLO alice :hunter22")))
        self.assertNotIn("hunter22", repr(self.command(b"PASSWORD :hunter22")))

    def test_password(self) -> None:
        self.assertEqual(self.command(b"PASSWORD : spaces count "), wire.Password(" spaces count "))
        self.assertError(b"PASSWORD", Code.BAD_SYNTAX)
        self.assertError(b"PASSWORD a b", Code.BAD_SYNTAX)

    def test_send(self) -> None:
        self.assertEqual(self.command(b"SEND bob :hi you"), wire.Send(("bob",), "hi you"))
        self.assertEqual(self.command(b"SEND bob hi"), wire.Send(("bob",), "hi"))
        self.assertEqual(self.command(b"send a,b,c :x"), wire.Send(("a", "b", "c"), "x"))

    def test_send_drops_repeated_names(self) -> None:
        self.assertEqual(self.command(b"SEND a,B,A,b,c :x"), wire.Send(("a", "B", "c"), "x"))

    def test_send_errors(self) -> None:
        self.assertError(b"SEND bob", Code.BAD_SYNTAX)
        self.assertError(b"SEND bob hi there", Code.BAD_SYNTAX)
        self.assertError(b"SEND bob :", Code.BAD_SYNTAX)
        self.assertError(b"SEND a,,b :x", Code.BAD_SYNTAX)
        self.assertError(b"SEND 9lives :x", Code.BAD_SYNTAX)
        self.assertError(b"SEND a,b,c,d :x", Code.TOO_MANY_RECIPIENTS)
        self.assertError(b"SEND a :12345678901", Code.TEXT_TOO_LONG)

    def test_text_limit_counts_utf8_bytes(self) -> None:
        self.assertEqual(self.command("SEND a :ééééé".encode()), wire.Send(("a",), "ééééé"))
        self.assertError("SEND a :éééééé".encode(), Code.TEXT_TOO_LONG)

    def test_broadcast(self) -> None:
        self.assertEqual(self.command(b"BROADCAST :all of you"), wire.Broadcast("all of you"))
        self.assertError(b"BROADCAST", Code.BAD_SYNTAX)
        self.assertError(b"BROADCAST :", Code.BAD_SYNTAX)
        self.assertError(b"BROADCAST :   ", Code.BAD_SYNTAX)
        self.assertError("BROADCAST :\t\u3000".encode(), Code.BAD_SYNTAX)
        self.assertEqual(self.command(b"BROADCAST : x "), wire.Broadcast(" x "))

    def test_users_ping_quit(self) -> None:
        self.assertEqual(self.command(b"USERS"), wire.Users())
        self.assertError(b"USERS x", Code.BAD_SYNTAX)
        self.assertEqual(self.command(b"PING"), wire.Ping(None))
        self.assertEqual(self.command(b"PING :123 abc"), wire.Ping("123 abc"))
        self.assertEqual(self.command(b"PONG :7"), wire.Pong("7"))
        self.assertEqual(self.command(b"QUIT"), wire.Quit(None))
        self.assertEqual(self.command(b"QUIT :gone home"), wire.Quit("gone home"))

    def test_unknown(self) -> None:
        self.assertError(b"WHOIS alice", Code.UNKNOWN_COMMAND)

    def test_room_commands(self) -> None:
        self.assertEqual(self.command(b"JOIN #Dev"), wire.Join("#Dev", None))
        self.assertEqual(self.command(b"JOIN #dev :s3 cret"), wire.Join("#dev", "s3 cret"))
        self.assertEqual(self.command(b"JOIN #dev :"), wire.Join("#dev", None))
        self.assertEqual(self.command(b"PART #dev"), wire.Part("#dev", ""))
        self.assertEqual(self.command(b"PART #dev :gone home"), wire.Part("#dev", "gone home"))
        self.assertEqual(self.command(b"SEND #dev :hi all"), wire.SendRoom("#dev", "hi all"))
        self.assertEqual(self.command(b"SEND #9 :x"), wire.SendRoom("#9", "x"))  # the hub checks the name
        self.assertEqual(self.command(b"TOPIC #dev"), wire.Topic("#dev", None))
        self.assertEqual(self.command(b"TOPIC #dev :"), wire.Topic("#dev", ""))
        self.assertEqual(self.command(b"TOPIC #dev :ship it"), wire.Topic("#dev", "ship it"))
        self.assertEqual(self.command(b"INVITE #dev bob"), wire.Invite("#dev", "bob"))
        self.assertEqual(self.command(b"KICK #dev bob"), wire.Kick("#dev", "bob", ""))
        self.assertEqual(self.command(b"KICK #dev bob :spam"), wire.Kick("#dev", "bob", "spam"))
        self.assertEqual(self.command(b"MEMBERS #dev"), wire.Members("#dev"))
        self.assertEqual(self.command(b"ROOMS"), wire.Rooms(False))
        self.assertEqual(self.command(b"ROOMS mine"), wire.Rooms(True))
        self.assertEqual(self.command(b"MODE #dev"), wire.Mode("#dev", None))
        self.assertEqual(self.command(b"MODE #dev b"), wire.Mode("#dev", None, bans=True))
        self.assertEqual(self.command(b"MODE #dev +b"), wire.Mode("#dev", None, bans=True))
        self.assertEqual(
            self.command(b"MODE #dev +im-t+kl s3 020"),
            wire.Mode("#dev", (("+i", None), ("+m", None), ("-t", None), ("+k", "s3"), ("+l", "20"))),
        )
        self.assertEqual(
            self.command(b"MODE #dev -o+vb-k-l bob carol dave"),
            wire.Mode("#dev", (("-o", "bob"), ("+v", "carol"), ("+b", "dave"), ("-k", None), ("-l", None))),
        )
        self.assertEqual(  # a ban is a mask (the hub completes it), a name among them
            self.command(b"MODE #dev +b-b *!*@192.0.2.* b?b!x"),
            wire.Mode("#dev", (("+b", "*!*@192.0.2.*"), ("-b", "b?b!x"))),
        )

    def test_room_command_errors(self) -> None:
        for raw, code in [
            (b"JOIN dev", Code.ROOM_INVALID),
            (b"JOIN #9", Code.ROOM_INVALID),
            (b"JOIN", Code.BAD_SYNTAX),
            (b"JOIN #a #b #c", Code.BAD_SYNTAX),
            (b"SEND #d-v :", Code.BAD_SYNTAX),
            (b"INVITE #dev 9bob", Code.BAD_SYNTAX),
            (b"KICK #dev", Code.BAD_SYNTAX),
            (b"MEMBERS", Code.BAD_SYNTAX),
            (b"ROOMS yours", Code.BAD_SYNTAX),
            (b"MODE #dev +x", Code.BAD_SYNTAX),
            (b"MODE #dev i", Code.BAD_SYNTAX),  # no sign
            (b"MODE #dev +o", Code.BAD_SYNTAX),  # no argument
            (b"MODE #dev +k", Code.BAD_SYNTAX),
            (b"MODE #dev +l 0", Code.BAD_SYNTAX),
            (b"MODE #dev +l 1000001", Code.BAD_SYNTAX),
            (b"MODE #dev +i extra", Code.BAD_SYNTAX),
            (b"MODE #dev +o 9x", Code.BAD_SYNTAX),
            (b"MODE #dev +o b*", Code.BAD_SYNTAX),  # o and v: names, not masks
            (b"MODE #dev +b a!b!c", Code.BAD_SYNTAX),  # no mask
            (b"MODE #dev +iiiiiiiiiiiii", Code.BAD_SYNTAX),  # 13 changes
            (b"MODE #dev +", Code.BAD_SYNTAX),
        ]:
            self.assertError(raw, code)


_FAST = Limits(max_text=40)
_NAMES = st.one_of(
    st.from_regex(USERNAME_PATTERN.encode(), fullmatch=True),
    st.binary(max_size=40),
    st.sampled_from([b"", b"#room", b"bob,carol", b"bob,BOB", b"a" * 33, b"b\xc3\xa9", b":bob", b"bob\t"]),
)
_TEXTS = st.one_of(
    st.binary(max_size=50),
    st.text(max_size=50).map(str.encode),
    st.sampled_from(
        [b"", b" ", b"\t", b" \t ", "\u3000".encode(), "\x85".encode(), b"x" * 40, b"x" * 41, "\u00e9".encode() * 20]
    ),
)
_SEPARATORS = st.sampled_from([b" :", b" ", b"  :", b" : ", b":", b" ::", b"\t:"])
_VERBS = st.sampled_from([b"SEND", b"send", b"Send", b"SEND ", b" SEND", b"SENDX", b"BROADCAST", b":SEND"])
_SEND_LINES = st.one_of(
    st.builds(lambda verb, name, sep, text: verb + b" " + name + sep + text, _VERBS, _NAMES, _SEPARATORS, _TEXTS),
    st.binary(max_size=80),
)


def _general(raw: bytes) -> object:
    """What the general parser makes of ``raw``: a command, None (a blank line), or its refusal."""
    try:
        line = wire.parse_line(raw)
        return None if line is None else wire.parse_command(line, _FAST)
    except ProtocolError as e:
        return ("error", e.code, e.text)
    except Refused as e:
        return ("refused", e.refusal, e.text)


class SendFastPathTests(SynchronousTestCase):
    """``parse_send`` reads what it takes as the general parser does, and leaves every other line to it."""

    @settings(max_examples=2000, deadline=None)
    @given(_SEND_LINES)
    @example(b"SEND bob :hi")
    @example(b"SEND bob : ")
    @example(b"SEND bob :" + "\u3000".encode())
    @example(b"SEND bob :\xff")
    @example(b"SEND bob :a\rb")
    @example(b"SEND bob :tab\there")
    @example(b"SEND bob :" + b"x" * 41)
    @example(b"SEND bob :a :b")
    def test_same_as_the_general_parser(self, raw: bytes) -> None:
        fast = wire.parse_send(raw, _FAST.max_text)
        general = _general(raw)
        if fast is not None:
            self.assertEqual(general, wire.Send(fast[:1], fast[1]))
        elif isinstance(general, wire.Send) and len(general.recipients) == 1:  # the commonest form is taken
            name, text = general.recipients[0], general.text
            self.assertNotEqual(raw, f"SEND {name} :{text}".encode())

    def test_takes_a_unicast(self) -> None:
        self.assertEqual(wire.parse_send("SEND Bob.x :h\u00e9 :)\t".encode(), 40), ("Bob.x", "h\u00e9 :)\t"))

    def test_leaves_the_rest(self) -> None:
        for raw in [b"SEND bob,carol :hi", b"SEND #room :hi", b"send bob :hi", b"SEND bob :", b"SEND bob :  ",
                    b"SEND bob :" + b"x" * 41, b"SEND bob :\xc3", b"SEND bob :a\x7f", b"SEND  bob :hi"]:
            self.assertIsNone(wire.parse_send(raw, 40), raw)


class RefusalCodesTests(SynchronousTestCase):
    def test_every_refusal_of_the_hub_has_a_code(self) -> None:
        """The line protocol can say each of the hub's refusals (a new one must be given its code)."""
        self.assertEqual(set(REFUSAL_CODES), set(Refusal))
