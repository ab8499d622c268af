"""The username log a piece a reactor pass (msgsvc.fronts.userlog): the same lines as one write, nothing
between them, news after them, a slow reader holding up its own log only."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.fronts.lines import ServerProtocol
from msgsvc.fronts.userlog import PIECE, LogSending
from msgsvc.hub.contracts import HistoryPolicy, UserRecord
from msgsvc.wire import Limits

from .support.harness import ServerHarness, lines, one_pass

#: Offline names enough for the log to take three pieces with the registrant and one more.
NAMES = 2 * PIECE + 100
LATER = f"user{PIECE + 400:05d}"  # a name of the log listed after the first piece


class LogInPiecesTests(SynchronousTestCase):
    def setUp(self) -> None:
        records = tuple(UserRecord(f"user{i:05d}", 1.0, 1.0) for i in range(NAMES))
        self.server = ServerHarness(Limits(max_send_queue=1024 * 1024), records=records)
        self.expected = [f"USER user{i:05d} offline" for i in range(NAMES)]

    def hello(self, data: bytes = b"HELLO alice\r\n") -> tuple[ServerProtocol, StringTransport]:
        protocol, transport = self.server.connect()
        protocol.dataReceived(data)
        return protocol, transport

    def sending(self) -> list[IDelayedCall]:
        """The calls that send a piece of a log at the next pass."""
        calls = self.server.clock.getDelayedCalls()
        return [call for call in calls if isinstance(getattr(call.func, "__self__", None), LogSending)]

    def assert_state_as_hub(self, got: list[str]) -> None:
        """The log, then the news after ENDUSERS applied in order, says what the hub says now."""
        end = next(i for i, line in enumerate(got) if line.startswith("ENDUSERS "))
        log = [line.split(" ") for line in got[:end] if line.startswith("USER ")]
        self.assertEqual(got[end], f"ENDUSERS {len(log)}")
        online = {words[1]: words[2] == "online" for words in log}
        for line in got[end + 1 :]:
            verb, name = line.split(" ")[:2]
            if verb in ("JOINED", "LEFT"):
                online[name] = verb == "JOINED"
            elif verb == "REMOVED":
                del online[name]
        self.assertEqual(online, {user.name: user.online for user in self.server.hub.users()})

    def test_a_long_log_goes_a_piece_a_pass_with_the_same_lines(self) -> None:
        _, transport = self.hello()
        first = lines(transport)
        self.assertEqual(first[0], "WELCOME alice :welcome to msgsvc")
        self.assertEqual(first[1:], ["USER alice online", *self.expected[: PIECE - 1]])
        one_pass(self.server.clock)
        self.assertEqual(lines(transport), self.expected[PIECE - 1 : 2 * PIECE - 1])
        one_pass(self.server.clock)
        self.assertEqual(lines(transport), [*self.expected[2 * PIECE - 1 :], f"ENDUSERS {NAMES + 1}"])
        self.server.end_of_pass()
        self.assertEqual(lines(transport), [])

    def test_what_comes_during_the_log_comes_after_it_and_agrees_with_it(self) -> None:
        bob, _ = self.server.register(LATER)
        zed, _ = self.server.register("zed")  # new to the log: listed last
        alice, transport = self.hello(f"HELLO alice\r\nSEND {LATER} :after the log\r\n".encode())
        self.assertNotIn("ENDUSERS", transport.value().decode())
        zed.dataReceived(b"SEND alice :during the log\r\n")
        zed.connectionLost(Failure(ConnectionDone()))  # before its line of the log is sent
        self.hello(b"HELLO user00000\r\n")  # after its line was sent
        self.hello(b"HELLO aaron\r\n")  # new, and before the part sent: only its JOINED tells of it
        bob.dataReceived(b"QUIT\r\n")
        bob.connectionLost(Failure(ConnectionDone()))
        self.server.end_of_pass()
        got = lines(transport)
        end = got.index(f"ENDUSERS {NAMES + 2}")  # alice, the records and zed
        self.assertEqual(got[:2], ["WELCOME alice :welcome to msgsvc", "USER alice online"])
        self.assertTrue(all(line.startswith("USER ") for line in got[1:end]))
        for shown in ("USER user00000 offline", f"USER {LATER} offline", "USER zed offline"):
            self.assertIn(shown, got[:end])  # each as it was when its piece went
        message = got[end + 1].split(" ")
        self.assertEqual(message[:4], ["MSG", "zed", "unicast", "alice"])
        self.assertEqual(message[-3:], [":during", "the", "log"])
        news = ["LEFT zed", "JOINED user00000", "JOINED aaron", f"LEFT {LATER}"]
        self.assertEqual(got[end + 2 : -1], news)
        self.assertEqual(got[-1].split(" ")[:3], ["SENT", "0", LATER])  # its line waited for the log
        self.assert_state_as_hub(got)

    def test_a_client_whose_buffer_is_full_holds_up_its_own_log(self) -> None:
        """Not a copy of it in the server: nothing more is made until its buffer drains."""
        _, transport = self.hello()
        self.assertEqual(len(lines(transport)), PIECE + 1)
        transport.producer.pauseProducing()  # as the transport does past its high-water mark
        self.server.end_of_pass()
        self.assertEqual(lines(transport), [])
        self.assertEqual(self.sending(), [])
        self.assertFalse(transport.disconnecting)
        transport.producer.resumeProducing()
        self.assertEqual(lines(transport), self.expected[PIECE - 1 : 2 * PIECE - 1])
        self.server.end_of_pass()
        self.assertEqual(lines(transport), [*self.expected[2 * PIECE - 1 :], f"ENDUSERS {NAMES + 1}"])

    def test_a_disconnect_during_the_log_frees_it(self) -> None:
        alice, transport = self.hello()
        self.server.register("bob")  # news for alice, held behind the log
        alice.connectionLost(Failure(ConnectionDone()))
        transport.clear()
        self.server.end_of_pass()
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.sending(), [])
        self.assertIsNone(alice._sending)
        self.assertEqual(alice._held, [])

    def test_a_disconnect_while_the_buffer_is_full_frees_it(self) -> None:
        alice, transport = self.hello()
        transport.producer.pauseProducing()
        self.server.end_of_pass()
        alice.connectionLost(Failure(ConnectionDone()))
        transport.clear()
        transport.producer.resumeProducing()  # the drained buffer of a gone client calls nothing
        self.server.end_of_pass()
        self.assertEqual(transport.value(), b"")

    def test_users_goes_in_pieces_and_its_lines_wait(self) -> None:
        alice, transport = self.server.register("alice")
        self.server.end_of_pass()
        transport.clear()
        alice.dataReceived(b"USERS\r\nPING :after\r\n")
        self.assertEqual(len(lines(transport)), PIECE)
        self.server.end_of_pass()
        got = lines(transport)
        self.assertEqual(got[-2:], [f"ENDUSERS {NAMES + 1}", "PONG :after"])

    def test_the_catch_up_comes_after_the_whole_log(self) -> None:
        records = tuple(UserRecord(f"u{i:04d}", 1.0, 1.0) for i in range(NAMES))
        server = ServerHarness(records=records, history=HistoryPolicy())
        bob, _ = server.register("bob")
        bob.dataReceived(b"BROADCAST :one\r\n")
        server.end_of_pass()
        alice, transport = server.connect()
        alice.dataReceived(b"VERSION 9\r\nHELLO alice\r\n")  # the catch-up is read at once (in memory)
        server.end_of_pass()
        got = lines(transport)
        self.assertEqual([line.split(" ")[0] for line in got[-3:]], ["ENDUSERS", "HISTMSG", "ENDHISTORY"])
