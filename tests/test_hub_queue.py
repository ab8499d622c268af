"""Offline delivery over StringTransport: queueing for protected names, paging, acknowledgement, limits."""

from __future__ import annotations

from twisted.internet.defer import fail
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import QueuePolicy, UserRecord
from msgsvc.hub.events import QueueChanged
from msgsvc.wire import Limits, format_time

from .support.harness import PASSWORD, ServerHarness, lines


class OfflineTestCase(SynchronousTestCase):
    queue = QueuePolicy()

    def setUp(self) -> None:
        records = (
            UserRecord("bob", 1.0, 2.0, protected=True),
            UserRecord("dave", 1.0, 2.0),
        )  # the hub changes them
        self.server = ServerHarness(records=records, queue=self.queue)
        self.events: list[object] = []
        self.server.hub.subscribe(self.events.append)
        self.alice, self.a = self.server.register("alice")

    def send(self, line: str) -> list[str]:
        self.alice.dataReceived(f"{line}\r\n".encode())
        return lines(self.a)

    def bob_logs_in(self):  # type: ignore[no-untyped-def]
        protocol, transport = self.server.connect()
        protocol.dataReceived(f"HELLO bob :{PASSWORD}\r\n".encode())
        answer = lines(transport)
        end = answer.index("ENDUSERS 3") if "ENDUSERS 3" in answer else answer.index("ENDUSERS 2")
        return protocol, transport, answer[end + 1 :]

    def lose(self, protocol) -> None:  # type: ignore[no-untyped-def]
        protocol.connectionLost(Failure(ConnectionDone()))
        self.server.end_of_pass()


class QueueingTests(OfflineTestCase):
    def test_a_message_to_an_away_protected_name_waits(self) -> None:
        self.assertEqual(self.send("SEND bob :are you there?"), ["SENT 0 bob bob"])
        [(key, queued)] = self.server.store.queue
        self.assertEqual(
            (key, queued.sender, queued.kind, queued.recipients), ("bob", "alice", "unicast", ("bob",))
        )
        self.assertEqual(self.server.hub.user("bob").queued, 1)  # type: ignore[union-attr]
        self.assertIn(QueueChanged("bob", 1), self.events)

    def test_unprotected_unknown_and_broadcasts_are_not_queued(self) -> None:
        self.assertEqual(self.send("SEND dave,ghost :hi"), ["SENT 0 dave,ghost -"])
        self.assertEqual(self.send("BROADCAST :all"), ["SENT 0 - -"])
        self.assertEqual(self.server.store.queue, [])

    def test_a_multicast_reaches_who_is_on_and_waits_for_who_is_not(self) -> None:
        carol, c = self.server.register("carol")
        lines(self.a)
        self.assertEqual(self.send("SEND bob,carol,dave :standup at 10"), ["SENT 1 bob,dave bob"])
        self.assertEqual(lines(c), ["MSG alice multicast bob,carol,dave :standup at 10"])
        self.assertEqual(self.server.store.queue[0][1].recipients, ("bob", "carol", "dave"))

    def test_sent_waits_for_the_disk_and_so_do_the_next_lines(self) -> None:
        self.server.store.hold_queue = True
        self.assertEqual(self.send("SEND bob :one\r\nPING :x"), [])
        self.server.store.pending_queue.pop().callback(None)
        self.assertEqual(lines(self.a), ["SENT 0 bob bob", "PONG :x"])

    def test_a_failed_write_is_never_reported_as_queued(self) -> None:
        self.server.store.enqueue = lambda message: fail(OSError("disk full"))  # type: ignore[method-assign]
        self.assertEqual(self.send("SEND bob :one"), ["SENT 0 bob -"])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_reset_drops_what_waited(self) -> None:
        self.send("SEND bob :for bob only")
        self.successResultOf(self.server.accounts.reset("bob", "forgot"))
        self.assertEqual(self.server.store.queue, [])
        self.assertEqual(self.server.hub.user("bob").queued, 0)  # type: ignore[union-attr]


class DeliveryTests(OfflineTestCase):
    def test_delivered_after_the_log_with_time_and_group_then_acknowledged(self) -> None:
        sent_at = self.server.clock.seconds()
        self.send("SEND bob :first")
        self.server.clock.advance(60)
        self.send("SEND bob,dave :second")
        bob, b, after_log = self.bob_logs_in()
        self.assertEqual(
            after_log,
            [
                f"DELAYED 1 {format_time(sent_at)} alice unicast bob :first",
                f"DELAYED 2 {format_time(sent_at + 60)} alice multicast bob,dave :second",
                "ENDDELAYED 0",
            ],
        )
        bob.dataReceived(b"ACK 2\r\n")
        self.assertEqual(lines(b), [])
        self.assertEqual(self.server.store.queue, [])
        self.assertEqual(self.server.hub.user("bob").queued, 0)  # type: ignore[union-attr]
        self.lose(bob)
        self.assertEqual(self.bob_logs_in()[2], [])  # nothing twice

    def test_what_waited_comes_once_the_store_answers_again_after_it_failed_at_login(self) -> None:
        """attack37 F2: a protected name that logs in while the store fails to read its queue (SQLite's
        file locked by another program) never gets what waited for it in that session, however long it
        stays: real sockets, a 70 s lock, a login 23 s into it: no DELAYED in the 38 s after the lock
        ended; its 10 queued messages came only at the next login."""
        sent_at = self.server.clock.seconds()
        self.send("SEND bob :first")
        backlog = self.server.store.backlog
        locked = OSError("database is locked")
        self.server.store.backlog = lambda *a: fail(locked)  # type: ignore[method-assign]
        bob, b, after_log = self.bob_logs_in()
        self.assertEqual(after_log, [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.server.store.backlog = backlog  # type: ignore[method-assign]
        for _ in range(60):
            self.server.clock.advance(1)
            self.server.end_of_pass()
        delayed = f"DELAYED 1 {format_time(sent_at)} alice unicast bob :first"
        got = lines(b)
        self.assertIn(delayed, got)
        self.assertEqual(got[got.index(delayed) + 1], "ENDDELAYED 0")

    def test_unacknowledged_messages_come_again(self) -> None:
        self.send("SEND bob :first")
        bob, _, after_log = self.bob_logs_in()
        self.assertEqual(len(after_log), 2)
        self.lose(bob)
        self.assertEqual(self.bob_logs_in()[2], after_log)

    def test_an_ack_cannot_drop_what_was_not_delivered(self) -> None:
        self.send("SEND bob :first")
        bob, b, _ = self.bob_logs_in()
        self.send("SEND bob :live, not queued")
        self.assertEqual(lines(b), ["MSG alice unicast bob :live, not queued"])
        bob.dataReceived(b"ACK 999\r\n")
        self.assertEqual(self.server.store.queue, [])

    def test_ack_needs_hello_and_a_number(self) -> None:
        protocol, transport = self.server.connect()
        protocol.dataReceived(b"ACK 1\r\nACK x\r\n")
        [first, second] = lines(transport)
        self.assertTrue(first.startswith("ERROR NOT_REGISTERED"), first)
        self.assertTrue(second.startswith("ERROR BAD_SYNTAX"), second)


class PagingTests(OfflineTestCase):
    queue = QueuePolicy(page=3)

    def test_pages_follow_acknowledgements_and_a_drop_resumes_from_the_first_unacknowledged(self) -> None:
        for n in range(7):
            self.send(f"SEND bob :message {n}")
        bob, b, page = self.bob_logs_in()
        self.assertEqual(
            [p.split(" :")[-1] for p in page], ["message 0", "message 1", "message 2", "ENDDELAYED 4"]
        )
        bob.dataReceived(b"ACK 3\r\n")
        page = lines(b)
        self.assertEqual(
            [p.split(" :")[-1] for p in page], ["message 3", "message 4", "message 5", "ENDDELAYED 1"]
        )
        self.lose(bob)  # in the middle: 4, 5 and 6 are still queued
        _, _, page = self.bob_logs_in()
        self.assertEqual(page[0].split()[1], "4")
        self.assertEqual(page[-1], "ENDDELAYED 1")

    def test_early_or_repeated_acks_bring_no_page_twice(self) -> None:
        for n in range(5):
            self.send(f"SEND bob :message {n}")
        bob, b, page = self.bob_logs_in()
        self.assertEqual(page[-1], "ENDDELAYED 2")
        bob.dataReceived(b"ACK 3\r\nACK 3\r\nACK 3\r\n")
        self.assertEqual(
            [line.split()[1] for line in lines(b)], ["4", "5", "0"]
        )  # one next page, then its end


    def test_an_ack_the_store_fails_to_drop_is_asked_again_and_the_next_page_follows(self) -> None:
        for n in range(5):
            self.send(f"SEND bob :message {n}")
        bob, b, page = self.bob_logs_in()
        acknowledge = self.server.store.acknowledge
        failures = [OSError("database is locked")] * 2
        self.server.store.acknowledge = (  # type: ignore[method-assign]
            lambda name, up_to: fail(failures.pop()) if failures else acknowledge(name, up_to)
        )
        bob.dataReceived(b"ACK 3\r\n")
        self.assertEqual(lines(b), [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.server.clock.advance(0.2)  # fails again: 0.4 s more, counted, not logged again
        self.assertEqual(self.flushLoggedErrors(OSError), [])
        self.server.clock.advance(0.4)
        self.assertEqual([line.split()[1] for line in lines(b)], ["4", "5", "0"])
        self.assertEqual(self.server.hub.user("bob").queued, 2)  # type: ignore[union-attr]


class LimitTests(OfflineTestCase):
    queue = QueuePolicy(limit=2, age=3600)

    def test_a_full_queue_says_so(self) -> None:
        self.assertEqual(self.send("SEND bob :1"), ["SENT 0 bob bob"])
        self.assertEqual(self.send("SEND bob :2"), ["SENT 0 bob bob"])
        self.assertEqual(self.send("SEND bob :3"), ["SENT 0 bob -"])

    def test_old_messages_expire(self) -> None:
        self.send("SEND bob :stale")
        self.server.clock.advance(3601)
        bob, _, after_log = self.bob_logs_in()
        self.assertEqual(after_log, [])
        self.lose(bob)
        self.successResultOf(self.server.hub.expire_queued())
        self.assertEqual(self.server.store.queue, [])
        self.assertEqual(self.server.hub.user("bob").queued, 0)  # type: ignore[union-attr]
        lines(self.a)
        self.send("SEND bob :1")
        self.assertEqual(self.send("SEND bob :2"), ["SENT 0 bob bob"])  # the expired one left room


class QuotaTests(OfflineTestCase):
    queue = QueuePolicy(per_sender=2, total=3)

    def test_past_its_quota_a_senders_messages_do_not_wait_and_sent_says_so(self) -> None:
        self.assertEqual(self.send("SEND bob :1"), ["SENT 0 bob bob"])
        self.assertEqual(self.send("SEND bob :2"), ["SENT 0 bob bob"])
        self.assertEqual(self.send("SEND bob :3"), ["SENT 0 bob -"])  # as for a full queue
        carol, c = self.server.register("carol")
        carol.dataReceived(b"SEND bob :from carol\r\n")
        self.assertEqual(lines(c), ["SENT 0 bob bob"])  # her own quota
        carol.dataReceived(b"SEND bob :again\r\n")
        self.assertEqual(lines(c), ["SENT 0 bob -"])  # but all the queues hold their total
        self.assertEqual(self.server.hub.user("bob").queued, 3)  # type: ignore[union-attr]


class AddressRateTests(SynchronousTestCase):
    """What the users of one address leave waiting is rated (here 3 at once, then 1 a minute): one address
    with many names filled --queue-total in 115 s, and then nobody's message could wait."""

    def setUp(self) -> None:
        records = tuple(UserRecord(n, 1.0, 2.0, protected=True) for n in ("bob", "carol", "erin"))
        limits = Limits(queue_burst=3, queue_per_minute=1.0)
        self.server = ServerHarness(limits, records=records)

    def sends(self, protocol, transport, *texts: str) -> list[str]:  # type: ignore[no-untyped-def]
        for text in texts:
            protocol.dataReceived(f"{text}\r\n".encode())
        return [x for x in lines(transport) if x.startswith("SENT")]

    def test_past_its_rate_an_address_leaves_nothing_waiting_and_is_told(self) -> None:
        alice, a = self.server.register("alice", host="10.0.0.1")
        mallory, m = self.server.register("mallory", host="10.0.0.1")
        self.assertEqual(
            self.sends(alice, a, "SEND bob,carol :1", "SEND erin :2"),
            ["SENT 0 bob,carol bob,carol", "SENT 0 erin erin"],
        )
        self.assertEqual(self.sends(mallory, m, "SEND bob :3"), ["SENT 0 bob -"])  # the same address
        self.assertEqual(len(self.server.store.queue), 3)
        dave, d = self.server.register("dave", host="10.0.0.2")
        self.assertEqual(self.sends(dave, d, "SEND bob :4"), ["SENT 0 bob bob"])  # another address
        self.server.clock.advance(60)
        self.assertEqual(self.sends(mallory, m, "SEND bob :5"), ["SENT 0 bob bob"])
