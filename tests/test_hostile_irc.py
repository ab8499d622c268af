"""Hostile input on the IRC front: whatever a client sends, in whatever order, it is answered or
closed with a reason, never with a traceback, and the work of one line is bounded.

Hypothesis makes the lines: the front's commands and others, random parameters, long ones, lists
of many commas, non-ASCII digits, control characters, bad UTF-8, before and after registration,
with time passing between them.  Bystanders (line-protocol clients) share the hub, and an IRC session of
a protected name the attacker may log in as too (a second session of that account).  After each
line the reactor passes it caused are run one at a time, and each is measured: the log entries
walked, the bytes written to the client, the messages each bystander got.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.fronts.irc import base
from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.irc.session import IrcSession
from msgsvc.hub.contracts import HistoryPolicy, Kind, Stored, UserRecord
from msgsvc.hub.conversations import ALL
from msgsvc.hub.history import History
from msgsvc.hub.ids import MessageIds
from msgsvc.wire import Limits

from .support.fakes import to_keep
from .support.harness import PASSWORD, ServerHarness, lines, one_pass
from .support.hostile import assert_reads_bounded, big_room
from .support.irc import Irc, Work, numerics

SERVER = "irc.test"
STEP = 7  # LISTING_STEP here, so that a listing of the log below takes many passes
LOG = 300  # names in the log
BYSTANDERS = 20  # of them online, on the line front
LIMITS = Limits(max_per_ip=1000)
#: What one reactor pass may write to the attacker: a step of a listing (a history entry is up to 15
#: lines: docs/irc.rst), or the answers to one line (at most one numeric a target, and targets are
#: capped), each line within 512 bytes.
MOST_LINES_A_PASS = STEP * 15 + LIMITS.max_recipients + 16

VERBS = sorted(name[4:] for name in dir(IrcSession) if name.startswith("irc_"))
ODD = [
    "²", "①", "١٢", "\x00", "\r", "\x1b[2J", "\x01ACTION x\x01", "\x01VERSION\x01", "\x02", "\x0304,12",
    "é", "\u202e", "\u2028", "\ufeff", ",", ":", "*", "?", "!", "@", "#all", "#ALL", "#other", "0", "+",
    "-", "ack-1", "ack-²", "ack-99999999999999999999", "PLAIN", "*", "user0001", "user0002", "alice",
    "bob", "mallory", "302", "sasl", "server-time", "-sasl", "A" * 400, "+i", "-i", "+o", "b", "C", "L", "S",
    "message-tags", "batch", "labeled-response", "echo-message", "draft/chathistory", "LATEST", "BEFORE", "AFTER",
    "AROUND", "BETWEEN", "TARGETS", "timestamp=1970-01-12T13:46:40.1Z", "timestamp=x", "msgid=01M8TYR19J1HB1YED1Z05M91H8",
    "msgid=ZZZZZZZZZZZZZZZZZZZZZZZZZZ", "100", "-1", "#dev", "#DEV", "#dev,#ops", "#" + "d" * 40, "+b", "-b",
    "+k", "+l", "+imnst", "-imnst", "+ov", "mallory!*@*", "*!*@*", "multi-prefix", "extended-join", "away-notify",
    "account-tag",
]  # fmt: skip
#: The costliest commands, as the attack on the server ran them.
WORST = [
    "NAMES", "NAMES #all", "NAMES " + ",".join(["#all"] * 1600), "WHO *", "WHO #all", "WHO 0", "WHO user00?1",
    "WHO " + "*a" * 30 + "*b", "MOTD", "LIST", "JOIN #all", "JOIN " + ",".join(["#all"] * 1600), "PART #all",
    "PRIVMSG #all," + ",".join(["#ALL"] * 1600) + " :x", "PRIVMSG #all :" + "é" * 2048,
    "PRIVMSG user0001," + ",".join(f"user{i:04}" for i in range(300)) + " :x", "NOTICE #all :x",
    "ISON " + " ".join(f"user{i:04}" for i in range(40)),
    "MONITOR + " + ",".join(f"user{i:04}" for i in range(300)),
    "MONITOR S", "MONITOR L", "WHOIS user0001", "CAP LS 302", "CAP REQ :sasl", "AUTHENTICATE PLAIN",
    "AUTHENTICATE " + "A" * 400, "PONG :ack-1", "QUIT :bye\r\x1b[2J",
    "CAP REQ :batch labeled-response message-tags server-time echo-message",
    "@label=w NAMES", "@label=x JOIN #all", "@label=y WHO *", "@label=z MOTD", "@label=p PING x",
    "@+a=" + "b" * 4000 + " TAGMSG #all," + ",".join(f"user{i:04}" for i in range(300)),
    "@+a=" + "b" * 4000 + " PRIVMSG #all :x", "@+a=" + "b" * 4095 + " PRIVMSG user0001 :x",
    "@" + ";".join(["+a=\\"] * 800) + " TAGMSG alice",
    "CHATHISTORY LATEST #all * 100", "@label=h CHATHISTORY LATEST #all * 100", "CHATHISTORY LATEST user0001 * 100",
    "CHATHISTORY BEFORE #all timestamp=2262-01-01T00:00:00Z 100", "CHATHISTORY AFTER #all timestamp=1970-01-01T00:00:00Z 99",
    "CHATHISTORY AROUND #all timestamp=1970-01-12T13:46:40.100Z 100",
    "CHATHISTORY BETWEEN #all timestamp=1970-01-01T00:00:00Z timestamp=2262-01-01T00:00:00Z 100",
    "CHATHISTORY TARGETS timestamp=1970-01-01T00:00:00Z timestamp=2262-01-01T00:00:00Z 100",
    "CHATHISTORY LATEST " + ",".join(f"user{i:04}" for i in range(40)) + " * 100",
    "MARKREAD #all", "@label=m MARKREAD #all timestamp=2262-01-01T00:00:00Z", "MARKREAD user0001 timestamp=x",
    "MARKREAD user0021 timestamp=1970-01-12T13:46:40.1Z", "MARKREAD #other *", "CAP REQ :draft/read-marker",
    "MARKREAD " + ",".join(f"user{i:04}" for i in range(40)) + " timestamp=1970-01-12T13:46:40.1Z",
    "JOIN #dev", "JOIN #dev,#ops,#all key1,key2", "JOIN " + ",".join(f"#r{i}" for i in range(1600)), "JOIN 0",
    "PART #dev,#ops :" + "bye " * 200, "NAMES #dev,#ops", "LIST #dev,#ops", "WHO #dev", "TOPIC #dev",
    "TOPIC #dev :" + "t" * 600, "MODE #dev", "MODE #dev b", "MODE #dev +imnst-imnst+k-k+l-l key 5",
    "MODE #dev " + "+o" * 40 + " " + " ".join(f"user{i:04}" for i in range(40)), "MODE #dev +b mallory!*@*",
    "KICK #dev " + ",".join(f"user{i:04}" for i in range(300)), "KICK #dev,#ops,#all user0001,user0002,alice",
    "INVITE user0001 #dev", "INVITE alice #dev", "PRIVMSG #dev :x", "NOTICE #dev,#ops :x", "AWAY :gone",
    "AWAY", "CAP REQ :multi-prefix extended-join away-notify account-tag", "@label=r JOIN #dev,#ops",
    "MODE #dev +" + "b" * 150 + " " + " ".join(f"m{i}" for i in range(150)), "MODE #dev +" + "x" * 400,
    "MODE #dev +k a,b", "MODE #dev +l abc", "MODE #dev +l -1", "MODE #dev +k :", "MODE #dev +o nobody", "USERHOST alice bob user0001",
    "CHATHISTORY LATEST #dev * 100", "MARKREAD #dev timestamp=2262-01-01T00:00:00Z",
]  # fmt: skip
NAMES = ["#all", "#ALL", "alice", "mallory", "user0001", "USER0001", "user0299", "nobody", "é", "", "0"]

param = st.one_of(
    st.sampled_from(ODD),
    st.text(max_size=12),
    st.lists(st.sampled_from(ODD), min_size=1, max_size=30).map("".join),
    st.lists(st.sampled_from(NAMES), min_size=1, max_size=2000).map(",".join),
    st.integers(1, 2000).map(lambda n: "a" * n),
    st.integers(1, 40).map(lambda n: "*a" * n + "*b"),
)


@st.composite
def irc_line(draw: st.DrawFn) -> bytes:
    """One line, without its LF (a CR may be in it): a command and parameters, or any bytes."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=60)).replace(b"\n", b"")
    verb = draw(st.one_of(st.sampled_from(VERBS), st.sampled_from(VERBS).map(str.lower), st.text(max_size=8)))
    words = [verb, *draw(st.lists(param, max_size=5))]
    if draw(st.booleans()):
        words.append(":" + draw(param))
    heads = ["", "@a=b;c ", ":me!u@h ", "@x :y ", "@label=l ", "@+r=\\:x;label= ", "@;=; "]
    head = draw(st.sampled_from(heads))
    return (head + " ".join(words)).replace("\n", "").encode("utf-8")[:9000]


#: A protected name whose IRC session (the watcher) is online all along: the attacker may log in as it
#: too, a second session of the account.
ACCOUNT = "user0021"
#: Its IRC sessions at most (the watcher's and the attacker's): a JOIN or PART is the nick's, and a
#: JOIN lists #all's names to each of them, a step a reactor pass each.
SESSIONS = 2


def register(nick: str) -> list[bytes]:
    """Register as ``nick`` (as :data:`ACCOUNT`: with its password)."""
    password = [f"PASS :{PASSWORD}".encode()] if nick == ACCOUNT else []
    return [*password, f"NICK {nick}".encode(), f"USER {nick} 0 * :{nick}".encode()]


action = st.one_of(
    irc_line().map(lambda line: ("lines", [line])),
    st.sampled_from(WORST).map(lambda line: ("lines", [line.encode()])),
    st.lists(irc_line(), min_size=2, max_size=4).map(lambda lines: ("lines", lines)),  # in one read
    st.sampled_from(["mallory", "user0001", "bob", ACCOUNT]).map(lambda nick: ("lines", register(nick))),
    st.sampled_from([0.5, 3.0, 31.0, 61.0]).map(lambda seconds: ("wait", seconds)),
)


class HostileIrcTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(base, "LISTING_STEP", STEP)
        records = tuple(
            UserRecord(f"user{i:04}", 1.0, 1.0, protected=i > BYSTANDERS and i % 7 == 0) for i in range(LOG)
        )
        self.harness = ServerHarness(LIMITS, max_clients=1000, records=records)
        clock, store = self.harness.clock, self.harness.store
        self.harness.hub.history = History(clock, store, HistoryPolicy())
        store.since["mallory"] = store.since["user0007"] = 0.0  # the names hypothesis may register as
        ids = MessageIds(clock)
        entries: list[Stored] = []
        for n in range(300):  # #all, and the protected user0007's conversation with user0001
            message_id, at = ids.make()
            if n % 3:
                entry = Stored(message_id, at, ALL, "user0007", Kind.BROADCAST, (), f"old {n}")
            else:
                conversation = "user0001,user0007"
                entry = Stored(message_id, at, conversation, "user0007", Kind.UNICAST, ("user0001",), "hi")
            entries.append(entry)
        store.append(to_keep(entries), 10_000)
        self.factory = IrcFactory(self.harness.clients, SERVER)
        self.bystanders = [self.harness.register(f"user{i:04}") for i in range(1, BYSTANDERS + 1)]
        self.watcher = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.2", 1))
        watcher = self.watching = self.factory.buildProtocol(self.watcher.getPeer())
        watcher.makeConnection(self.watcher)
        caps = b"CAP REQ :draft/read-marker echo-message message-tags\r\nCAP END\r\n"
        watcher.dataReceived(caps + b"".join(line + b"\r\n" for line in register(ACCOUNT)))
        self.harness.clock.advance(0)
        self.assertIn(f" 001 {ACCOUNT} ".encode(), self.watcher.value())
        self.watcher.clear()
        self.work = Work(self.factory)
        self.failures: list[LogEvent] = []

        def observe(event: LogEvent) -> None:
            if "log_failure" in event:
                self.failures.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def check_written(self, data: bytes) -> list[bytes]:
        """Each line the server wrote is whole, UTF-8, within 512 bytes (tags aside), with no CR, LF or NUL
        inside; the lines."""
        self.assertTrue(data == b"" or data.endswith(b"\r\n"), data[-80:])
        rows = data.split(b"\r\n")[:-1]
        for row in rows:
            row.decode("utf-8")
            self.assertNotIn(b"\r", row)
            self.assertNotIn(b"\n", row)
            self.assertNotIn(b"\0", row)
            bare = row.partition(b" ")[2] if row.startswith(b"@") else row
            self.assertLessEqual(len(bare) + 2, 512, row[:100])
        return rows

    def storm(
        self, lines: list[str], keep: Callable[[bytes], bool], done: Callable[[list[bytes]], bool] = lambda _: False
    ) -> list[bytes]:
        """Send ``lines`` at once, then let the lines held back run at the line rate (a second a turn,
        answering the server's PINGs); the rows written that ``keep`` picks, until ``done`` says so."""
        self.watching.dataReceived("".join(line + "\r\n" for line in lines).encode())
        said: list[bytes] = []
        for _ in range(len(lines) + 10):
            self.harness.clock.advance(1)
            said += [row for row in self.check_written(self.watcher.value()) if keep(row)]
            self.watcher.clear()
            self.watching.dataReceived(b"PONG :x\r\n")
            if said and done(said):
                break
        return said

    def run_passes(self, transport: StringTransport) -> list[bytes]:
        """Run the reactor passes due now one at a time, each measured; what the client got.  What the
        account's other session (the watcher) got is whole lines too."""
        clock = self.harness.clock
        got = []
        while True:
            self.assertLessEqual(self.work.take(), SESSIONS * STEP)
            rows = self.check_written(transport.value())
            transport.clear()
            self.check_written(self.watcher.value())
            self.watcher.clear()
            self.assertLessEqual(len(rows), MOST_LINES_A_PASS)
            got += rows
            if not any(call.getTime() <= clock.seconds() for call in clock.getDelayedCalls()):
                return got
            one_pass(clock)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(first=st.sampled_from([None, "mallory", "alice", ACCOUNT]), actions=st.lists(action, max_size=12))
    def test_any_input_is_answered_or_closed_with_a_reason(
        self, first: str | None, actions: list[tuple[str, object]]
    ) -> None:
        """Before registration, or (two times in three) after it."""
        if first is not None:
            actions = [("lines", register(first)), *actions]
        self.harness._port += 1
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", self.harness._port))
        session = self.factory.buildProtocol(transport.getPeer())
        session.makeConnection(transport)
        got: list[bytes] = self.run_passes(transport)
        try:
            for kind, what in actions:
                for _, bystander_transport in self.bystanders:
                    bystander_transport.clear()
                if kind == "wait":
                    assert isinstance(what, float)
                    self.harness.clock.advance(what)
                    for bystander, _ in self.bystanders:  # they are there: they answer a PING
                        bystander.dataReceived(b"PONG :x\r\n")
                    self.watching.dataReceived(b"PONG :x\r\n")
                else:
                    assert isinstance(what, list)
                    session.dataReceived(b"".join(line + b"\r\n" for line in what))
                got += self.run_passes(transport)
                for _, bystander_transport in self.bystanders:  # one line: one broadcast, one message at most
                    rows = bystander_transport.value().split(b"\r\n")
                    messages = [row for row in rows if row.startswith(b"MSG ")]
                    self.assertLessEqual(len(messages), 2 * (len(what) if isinstance(what, list) else 1))
                if transport.disconnecting:
                    self.assertTrue(got[-1].startswith(b"ERROR :Closing Link: "), got[-3:])
                    break
        finally:
            session.connectionLost(Failure(ConnectionDone()))
            self.harness.end_of_pass()
        self.assertEqual(self.work.sorted_logs, 0)
        self.assertEqual(self.failures, [])
        self.assertEqual(self.flushLoggedErrors(), [])
        for protocol, _ in self.bystanders:  # nobody else was hurt
            self.assertFalse(protocol.transport.disconnecting)
        self.assertFalse(self.watcher.disconnecting)  # nor the account's other session
        assert_reads_bounded(self, self.harness.store)

    def test_a_markread_storm_keeps_markers_only_where_messages_are(self) -> None:
        """Issue 31's attack over IRC: MARKREAD of made-up nicks (it kept a row each) keeps nothing; of
        #all, one marker no later than its newest message."""
        nicks = [f"x{n:04}" for n in range(150)]
        storm = [f"MARKREAD {nick} timestamp=2262-01-01T00:00:00.000Z" for nick in nicks]
        storm.append("MARKREAD #all timestamp=2262-01-01T00:00:00.000Z")
        said = self.storm(
            storm, lambda row: b" FAIL " in row or b" MARKREAD " in row, lambda said: b" MARKREAD #all " in said[-1]
        )
        fails = [row.split(b" ")[3:5] for row in said[:-1]]
        self.assertEqual(fails, [[b"INVALID_PARAMS", nick.encode()] for nick in nicks])
        newest = max(e.id for e in self.harness.store.history[ALL])
        self.assertEqual(self.harness.store.reads, {ACCOUNT: {ALL: newest}})
        assert_reads_bounded(self, self.harness.store)

    def test_a_ban_storm_keeps_at_most_100_bans_a_room(self) -> None:
        """Attack 32: MODE lines of 150 bans each put 106,840 in a room; a line makes 12 changes at most
        (MODES=12), past 100 bans (MAXLIST=b:100) it is 478 and nothing."""
        storm = ["JOIN #dev"] + [f"MODE #dev +{'b' * 150} " + " ".join(f"m{n}x{i}" for i in range(150)) for n in range(20)]
        said = self.storm(storm, lambda row: b" MODE #dev " in row or b" 478 " in row)
        self.assertEqual([row.count(b"!*@*") for row in said[:8]], [12] * 8)
        self.assertEqual(len(said), 20)
        self.assertTrue(all(b" 478 " in row for row in said[8:]), said[8:])
        room = self.harness.hub.rooms.find("#dev")
        assert room is not None
        self.assertEqual(len(room.bans), 96)


class BigRoomTests(SynchronousTestCase):
    """WHO, NAMES and the 96 bans (MODE b) of a room of 300 members, and LIST of 60 rooms, each asked 100 times in one read by a
    client that does not read its answers: what one read makes the server hold stays within the send queue
    (attack35: over loopback, 10 such clients of a 1,000-member room's WHO held 160 MB more and a
    bystander's PING waited 4.8 s; its NAMES 0.9 s)."""

    def setUp(self) -> None:
        self.harness = big_room()
        self.attacker = Irc(self.harness, IrcFactory(self.harness.clients, SERVER))
        self.attacker.register("mallory")

    def asked_100_times(self, line: bytes) -> int:
        """Bytes the server wrote to the attacker in the pass of a read of ``line`` 100 times."""
        self.attacker.transport.clear()
        self.attacker.session.dataReceived(line * 100)
        one_pass(self.harness.clock)
        return len(self.attacker.transport.value())

    def test_who_of_a_big_room_asked_in_a_burst_is_held_within_the_send_queue(self) -> None:
        self.assertLessEqual(self.asked_100_times(b"WHO #big\r\n"), 64 * 1024)

    def test_names_of_a_big_room_asked_in_a_burst_is_held_within_the_send_queue(self) -> None:
        self.assertLessEqual(self.asked_100_times(b"NAMES #big\r\n"), 64 * 1024)

    def test_list_of_many_rooms_asked_in_a_burst_is_held_within_the_send_queue(self) -> None:
        self.assertLessEqual(self.asked_100_times(b"LIST\r\n"), 64 * 1024)

    def test_a_burst_of_listings_comes_whole_in_order_and_the_next_line_waits(self) -> None:
        self.attacker.session.dataReceived(b"WHO #big\r\nLIST\r\nWHO #big\r\nPING :after\r\n")
        one_pass(self.harness.clock)
        first = numerics(lines(self.attacker.transport))
        self.assertNotIn("PONG", first)  # it waits for the listings, which take more passes
        who = ["352"] * 300 + ["315"]
        got = first + numerics(self.attacker.read())
        self.assertEqual(got, [*who, "321", "322", *(["322"] * 60), "323", *who, "PONG"])

    def test_bans_of_a_room_asked_in_a_burst_are_held_within_the_send_queue(self) -> None:
        self.attacker.send("JOIN #big")  # a member: it may read the bans
        self.assertLessEqual(self.asked_100_times(b"MODE #big b\r\n"), 64 * 1024)
