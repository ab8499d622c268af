"""The line front against hostile input (issue 27): anything a client can send, and an attacker over loopback.

For any input the client gets an ``ERROR`` or is closed with a ``BYE``
saying why, never a traceback; the work one read can cause is bounded by
design (the lines run, the bytes written, counted here); and a bystander
is served throughout.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.fronts.userlog import PIECE
from msgsvc.hub.contracts import UserRecord
from msgsvc.hub.conversations import ALL
from msgsvc.options import NEW_ROOMS_PER_HOUR
from msgsvc.wire import Limits

from .support.harness import ServerHarness, lines, one_pass
from .support.hostile import (
    DIGITS,
    LIMITS,
    OPENINGS,
    ACCOUNT,
    MADE_UP,
    SECRET,
    Attacker,
    answered_throughout,
    any_line,
    assert_reads_bounded,
    assert_still_served,
    assert_vault_untouched,
    big_room,
    assert_well_formed,
    attack,
    failures_logged,
    per_line_bound,
    with_history,
    with_vault,
)
from .support.logs import big_log
from .support.loopback import LoopbackServer

_RAW = st.one_of(
    any_line(),
    st.binary(max_size=60),  # bad UTF-8, NUL, lone CR
    st.integers(150, 3000).map(lambda n: b"SEND bob :" + b"x" * n),  # over --max-line
)
_END = st.sampled_from([b"\n", b"\r\n", b"\r", b""])
#: What one read brings: some lines, each with its end (or none: it goes on in the next read).
_READ = st.lists(st.tuples(_RAW, _END), min_size=1, max_size=15).map(lambda ls: b"".join(a + b for a, b in ls))


class HostileLineTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(OPENINGS, st.lists(_READ, min_size=1, max_size=6))
    def test_any_input_is_answered_or_closed_with_a_reason_and_its_work_is_bounded(
        self, opening: str, reads: list[bytes]
    ) -> None:
        harness = ServerHarness(LIMITS, max_clients=10)
        with_history(harness)
        bob, bob_transport = harness.register("bob", version=9)
        with_vault(harness, bob)
        attacker, transport = harness.connect()
        run: list[bytes] = []
        command = attacker.command
        attacker.command = lambda line: (run.append(line), command(line))[1]  # type: ignore[method-assign]
        if opening:
            attacker.dataReceived(opening.replace("\n", "\r\n").encode() + b"\r\n")
        phone = harness.register("mallory", ACCOUNT, version=10) if ACCOUNT in opening else None
        bound = per_line_bound(harness)
        with failures_logged() as failures:
            for data in reads + [b"\n"] * 3:
                if transport.disconnecting:
                    break
                run.clear()
                before = len(transport.value()) + len(bob_transport.value())
                attacker.dataReceived(data)
                harness.end_of_pass()
                # The lines one read runs: at most the burst (and the one that goes into debt).
                self.assertLessEqual(len(run), LIMITS.line_burst + 1)
                step = len(transport.value()) + len(bob_transport.value()) - before
                self.assertLessEqual(step, max(1, len(run)) * bound + 200)
            for _ in range(20):  # the lines held back run, a rate's worth a second
                harness.clock.advance(1)
            out = lines(transport)
            assert_well_formed(self, out)
            self.assertFalse([line for line in out if SECRET in line])  # never in alice and bob's conversation
            if phone is not None:  # the attacker's other session: its own account's lines, well formed
                mine = lines(phone[1])
                assert_well_formed(self, mine)
                self.assertFalse([line for line in mine if SECRET in line])
            # Nothing of the attacker's account reaches another's: no READ, no read position.
            self.assertFalse([line for line in lines(bob_transport) if line.startswith("READ ")])
            self.assertNotIn("bob", harness.store.reads)
            assert_reads_bounded(self, harness.store)
            # No input reaches a room one is not in; the rooms one address makes are bounded.
            assert_vault_untouched(self, harness)
            self.assertLessEqual(len(harness.hub.rooms.everything()), 1 + NEW_ROOMS_PER_HOUR)
            if transport.disconnecting:
                self.assertTrue(out and out[-1].startswith("BYE "), out[-3:])
            attacker.connectionLost(Failure(ConnectionDone()))
            harness.end_of_pass()
        self.assertEqual(failures, [])
        assert_still_served(self, bob, bob_transport)

    def test_a_read_storm_keeps_positions_only_where_messages_are(self) -> None:
        """Issue 31's attack: READ of made-up conversations (it kept a row each) keeps nothing; READ where
        a message is keeps one, no further than the newest."""
        harness = ServerHarness(LIMITS, max_clients=10)
        with_history(harness)
        attacker, transport = harness.register("mallory", ACCOUNT, version=10)
        lines(transport)
        far = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        storm = [f"READ {c} {far}" for c in [*MADE_UP, "bob", "#all"]]
        attacker.dataReceived("".join(line + "\r\n" for line in storm).encode())
        said: list[str] = []
        while len(said) < len(storm):  # the lines held back run at the line rate
            harness.clock.advance(1)
            said += [line for line in lines(transport) if not line.startswith("PING ")]
        refused = "ERROR HISTORY_FORBIDDEN :no message of that conversation is kept for you to read"
        newest = max(e.id for e in harness.store.history[ALL])
        self.assertEqual(said, [refused] * (len(MADE_UP) + 1) + [f"READ #all {newest}"])
        self.assertEqual(harness.store.reads, {"mallory": {ALL: newest}})
        self.assertFalse(transport.disconnecting)

    def test_a_ban_storm_keeps_at_most_100_bans_a_room(self) -> None:
        """Attack 32's flood on the line protocol: MODE +bbbbbbbbbbbb lines past the room's 100 bans are
        refused BAN_LIST_FULL, each answered; nothing more is kept."""
        harness = ServerHarness(LIMITS, max_clients=10)
        attacker, transport = harness.register("mallory", version=12)
        attacker.dataReceived(b"JOIN #dev\r\n")
        harness.end_of_pass()
        lines(transport)
        storm = [f"MODE #dev +{'b' * 12} " + " ".join(f"m{n}x{i}" for i in range(12)) for n in range(20)]
        attacker.dataReceived("".join(line + "\r\n" for line in storm).encode())
        said: list[str] = []
        while len(said) < len(storm):  # the lines held back run at the line rate
            harness.clock.advance(1)
            said += [line for line in lines(transport) if not line.startswith("PING ")]
        full = [line for line in said if line.startswith("ERROR ")]
        self.assertEqual(full, ["ERROR BAN_LIST_FULL :#dev holds 100 bans at most"] * 12)
        self.assertEqual(len(harness.store.rooms_kept["#dev"].bans), 96)  # 8 lines of 12
        self.assertFalse(transport.disconnecting)

    @given(DIGITS)
    def test_ack_reads_ascii_digits_only(self, digits: str) -> None:
        harness = ServerHarness(LIMITS)
        alice, transport = harness.register("alice")
        with failures_logged() as failures:
            alice.dataReceived(f"ACK {digits}\r\n".encode())
        got = lines(transport)
        if digits.isascii() and len(digits) <= 18:
            self.assertEqual(got, [])
        else:
            self.assertEqual(got, ["ERROR BAD_SYNTAX :usage: ACK <id> (the id of a DELAYED line)"])
        self.assertEqual(failures, [])
        self.assertFalse(transport.disconnecting)


class BigLogTests(SynchronousTestCase):
    """USERS over a log of 50,000 names, from a client that does not read it (F2's concern here)."""

    def setUp(self) -> None:
        records = tuple(UserRecord(f"user{i:05d}", 1.0, 1.0) for i in range(50_000))
        self.harness = ServerHarness(Limits(max_send_queue=1024 * 1024), records=records)
        self.alice, self.transport = self.harness.register("alice")
        self.transport.clear()

    def test_a_users_storm_unread_makes_the_server_write_nothing_more_and_hold_nothing(self) -> None:
        self.transport.producer.pauseProducing()  # its buffer is full: it reads nothing
        self.alice.dataReceived(b"USERS\r\n" * 1000)
        self.harness.end_of_pass()
        self.assertEqual(self.transport.value(), b"")  # the log waits for the buffer to drain
        self.transport.producer.resumeProducing()
        self.assertEqual(self.transport.value().count(b"\r\n"), PIECE)  # then goes on, a piece a pass
        self.transport.producer.pauseProducing()
        self.harness.end_of_pass()
        self.assertEqual(self.transport.value().count(b"\r\n"), PIECE)
        self.assertFalse(self.transport.disconnecting)  # the other lines wait in its socket, unread
        self.transport.clear()
        self.alice.connectionLost(Failure(ConnectionDone()))
        self.transport.producer.resumeProducing()
        self.harness.end_of_pass()
        self.assertEqual(self.transport.value(), b"")


class LineAttackEndToEndTests(TestCase):
    """A real server over loopback: an attacker runs the worst inputs while a bystander's PING is answered."""

    async def test_a_bystander_is_answered_while_the_attack_goes_on(self) -> None:
        db = self.mktemp()
        big_log(db, 20_000)
        server = await LoopbackServer(db, Limits(max_send_queue=256 * 1024)).start(self)
        bystander = await server.client()
        bystander.send("HELLO bystander")
        await bystander.until("ENDUSERS")
        port = server.port_number

        def endless(data: bytes) -> Attacker:
            return Attacker(lambda: data)

        attackers = [
            # Floods of cheap lines, of USERS over the big log (never read), of over-long lines,
            # of garbage before registering; and connections that never say HELLO.
            *[Attacker(lambda: b"PING :x\n" * 8192, b"HELLO flood%d\n" % i) for i in range(4)],
            *[Attacker(lambda: b"USERS\n" * 1000, b"HELLO users%d\n" % i) for i in range(4)],
            *[endless(b"x" * 65536) for _ in range(3)],
            *[endless(b"\xff\xfe\x00ACK \xc2\xb2\r\nSEND a,b,c,d,e :" + b"y" * 500 + b"\n") for _ in range(3)],
            *[Attacker(lambda: b"") for _ in range(10)],  # half-open; past --max-per-ip, refused
        ]
        with failures_logged() as failures:
            await attack(port, attackers)
            longest = await answered_throughout(bystander, seconds=3)
            for attacker in attackers:
                attacker.stop()
        self.assertLess(longest, 2.0)  # a freeze, not a speed: a bystander waits no more than this
        self.assertEqual(failures, [])
        self.assertGreater(sum(a.sent for a in attackers), 10 * 1024 * 1024)  # the attack was real


class BigRoomTests(SynchronousTestCase):
    """MEMBERS and the 96 bans (MODE b) of a room of 300 members, MEMBERS #all, and ROOMS of 60 rooms, each asked 100 times in one read
    by a client that does not read its answers: what one read makes the server hold stays within the send
    queue (attack35: over loopback, 10 such clients of a 1,000-member room held 48 MB more and a
    bystander's PING waited 1.7 s; MEMBERS #all 3.3 s)."""

    def setUp(self) -> None:
        self.harness = big_room()
        self.attacker, self.transport = self.harness.register("mallory", version=12)

    def asked_100_times(self, line: bytes) -> int:
        """Bytes the server wrote to the attacker in the pass of a read of ``line`` 100 times."""
        self.transport.clear()
        self.attacker.dataReceived(line * 100)
        one_pass(self.harness.clock)
        return len(self.transport.value())

    def test_members_of_a_big_room_asked_in_a_burst_are_held_within_the_send_queue(self) -> None:
        self.assertLessEqual(self.asked_100_times(b"MEMBERS #big\r\n"), 64 * 1024)

    def test_members_of_all_asked_in_a_burst_are_held_within_the_send_queue(self) -> None:
        self.assertLessEqual(self.asked_100_times(b"MEMBERS #all\r\n"), 64 * 1024)

    def test_rooms_asked_in_a_burst_are_held_within_the_send_queue(self) -> None:
        self.assertLessEqual(self.asked_100_times(b"ROOMS\r\n"), 64 * 1024)

    def test_a_burst_of_listings_comes_whole_in_order_and_the_next_lines_wait(self) -> None:
        """Five MEMBERS #big, more than two passes may write, then PING: each listing whole, PONG after
        them, and a message that came for the client meanwhile after the listing then written, not inside."""
        bob, _ = self.harness.register("bob", version=12)
        self.transport.clear()  # JOINED bob
        self.attacker.dataReceived(b"MEMBERS #big\r\n")
        self.harness.end_of_pass()
        listing = lines(self.transport)
        self.assertEqual((len(listing), listing[-1]), (301, "ENDMEMBERS #big 300"))
        self.attacker.dataReceived(b"MEMBERS #big\r\n" * 5 + b"PING :after\r\n")
        one_pass(self.harness.clock)
        bob.dataReceived(b"SEND mallory :meanwhile\r\n")
        self.harness.end_of_pass()
        got = lines(self.transport)
        [message] = [i for i, line in enumerate(got) if line.startswith("MSG bob ")]
        self.assertEqual(message % len(listing), 0)  # after a listing's end
        self.assertLess(message, 5 * len(listing))  # before the last: it did not wait for the burst
        self.assertEqual(got[:message] + got[message + 1 :], listing * 5 + ["PONG :after"])

    def test_bans_of_a_room_asked_in_a_burst_are_held_within_the_send_queue(self) -> None:
        self.attacker.dataReceived(b"JOIN #big\r\n")  # a member: it may read the bans
        self.harness.end_of_pass()
        self.assertLessEqual(self.asked_100_times(b"MODE #big b\r\n"), 64 * 1024)
