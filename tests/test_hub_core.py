"""The hub: registration, presence, the username log, routing, events."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import Enqueue, Kind, Refusal, Refused, UserRecord
from msgsvc.hub.core import Hub
from msgsvc.hub.events import (
    Event,
    NoticeSent,
    RegistrationRefused,
    SessionClosed,
    SessionOpened,
    UserJoined,
    UserKicked,
    UserLeft,
)
from msgsvc.hub.ids import message_id, message_id_time
from msgsvc.hub.user import UNREGISTERED

from .support.fakes import MemoryStore, RecordingParticipant
from .support.harness import admitted, outcome


class HubTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        self.store = MemoryStore()
        self.hub = Hub(self.clock, self.store, [UserRecord("Old", 1.0, 2.0)], max_clients=4)
        self.events: list[Event] = []
        self.hub.subscribe(self.events.append)

    def join(self, name: str) -> RecordingParticipant:
        participant = RecordingParticipant()
        self.assertEqual(self.successResultOf(admitted(self.hub, participant, name, "peer-" + name)), name)
        return participant

    def online_as(self, participant: RecordingParticipant) -> str | None:
        """The name ``participant`` is online under; None if it is not (yet, or any more)."""
        view = self.hub.user(participant.user.name)
        return view.name if view is not None and view.online else None

    def refusal(self, participant: RecordingParticipant, name: str) -> Refusal:
        with self.assertRaises(Refused) as caught:
            self.hub.register(participant, name, "peer")
        return caught.exception.refusal


class RegistrationTests(HubTestCase):
    def test_register_adds_to_log_and_goes_online(self) -> None:
        self.join("alice")
        users = {u.name: u for u in self.hub.users()}
        self.assertEqual(list(users), ["alice", "Old"])
        self.assertTrue(users["alice"].online)
        self.assertEqual(users["alice"].peer, "peer-alice")
        self.assertEqual(users["alice"].first_seen, 100)
        self.assertFalse(users["Old"].online)
        self.assertIsNone(users["Old"].peer)
        self.assertEqual(self.store.written, [("alice", 100)])
        self.assertEqual(
            self.events, [UserJoined("alice", "peer-alice", True), SessionOpened("alice", "peer-alice", "tcp", 1)]
        )

    def test_users_are_the_log_with_who_is_online_and_see_new_names(self) -> None:
        bob = self.join("bob")
        self.assertEqual([(u.name, u.online) for u in self.hub.users()], [("bob", True), ("Old", False)])
        self.join("alice")
        bob.user.log_out()
        self.assertEqual(
            [(u.name, u.online) for u in self.hub.users()], [("alice", True), ("bob", False), ("Old", False)]
        )

    def test_log_is_in_case_insensitive_order(self) -> None:
        for name in ["bob", "Carol", "alice"]:
            self.join(name)
        self.assertEqual([u.name for u in self.hub.users()], ["alice", "bob", "Carol", "Old"])

    def test_name_in_use_is_refused_whatever_its_case(self) -> None:
        self.join("Alice")
        self.assertEqual(self.refusal(RecordingParticipant(), "aLiCe"), Refusal.USERNAME_TAKEN)
        self.assertEqual(
            self.events[-1], RegistrationRefused("aLiCe", "peer", Refusal.USERNAME_TAKEN, "Alice is in use")
        )

    def test_invalid_name(self) -> None:
        self.assertEqual(self.refusal(RecordingParticipant(), "no way"), Refusal.USERNAME_INVALID)
        self.assertEqual(self.store.written, [])

    def test_a_user_used_after_it_logged_out_is_refused_and_does_nothing(self) -> None:
        alice, bob = self.join("alice"), self.join("bob")
        user = alice.user
        user.log_out()
        calls = (lambda: user.send(["bob"], "hi"), lambda: user.broadcast("hi"), lambda: user.acknowledge(1))
        for call in calls:
            with self.assertRaises(Refused) as refused:
                call()
            self.assertIs(refused.exception.refusal, Refusal.NOT_REGISTERED)
        user.deliver_backlog()
        self.assertEqual((alice.events, bob.events), ([], []))
        self.assertEqual([u.name for u in self.hub.users() if u.online], ["bob"])

    def test_the_hub_refuses_in_no_front_s_words(self) -> None:
        """The hub's texts name no command or syntax of a client protocol: each front words those its
        own way (the line protocol's "say HELLO <username> first", its "password goes after ' :'")."""
        self.refusal(RecordingParticipant(), "no way")
        spaces = self.events[-1]
        assert isinstance(spaces, RegistrationRefused)
        with self.assertRaises(Refused) as unregistered:
            UNREGISTERED.send(["bob"], "hi")
        self.assertEqual(
            [spaces.reason, unregistered.exception.text], ["a username cannot hold spaces", "log in first"]
        )

    def test_second_registration(self) -> None:
        alice = self.join("alice")
        self.assertEqual(self.refusal(alice, "bob"), Refusal.ALREADY_REGISTERED)

    def test_offline_name_is_taken_again_and_keeps_its_first_spelling(self) -> None:
        self.clock.advance(5)
        old = RecordingParticipant()
        self.assertEqual(self.successResultOf(admitted(self.hub, old, "OLD", "p")), "Old")
        [view] = [u for u in self.hub.users() if u.name == "Old"]
        self.assertEqual((view.online, view.first_seen, view.last_seen), (True, 1.0, 105))
        self.assertEqual(self.events, [UserJoined("Old", "p", False), SessionOpened("Old", "p", "tcp", 1)])

    def test_full(self) -> None:
        for name in "abcd":
            self.join(name)
        self.assertEqual(self.refusal(RecordingParticipant(), "e"), Refusal.SERVER_FULL)

    def test_a_new_name_waits_for_the_disk_and_a_known_one_does_not(self) -> None:
        self.store.hold = True
        new = admitted(self.hub, RecordingParticipant(), "fresh", "p1")
        self.assertNoResult(new)
        self.assertEqual(self.successResultOf(admitted(self.hub, RecordingParticipant(), "OLD", "p2")), "Old")
        self.assertEqual(len(self.store.pending), 2)  # Old's last-seen time is still written
        self.store.pending[0].callback(None)
        self.assertEqual(self.successResultOf(new), "fresh")

    def test_joins_and_leaves_are_events(self) -> None:
        self.join("alice")
        bob = self.join("bob")
        bob.user.log_out()
        self.assertEqual(
            self.events[-4:],
            [
                UserJoined("bob", "peer-bob", True),
                SessionOpened("bob", "peer-bob", "tcp", 1),
                SessionClosed("bob", "peer-bob", "tcp", 0),
                UserLeft("bob", "peer-bob"),
            ],
        )
        self.assertEqual(bob.events, [])

    def test_leaving_records_last_seen_and_frees_the_name(self) -> None:
        bob = self.join("bob")
        self.clock.advance(30)
        bob.user.log_out()
        self.assertEqual(self.store.written[-1], ("bob", 130))
        [view] = [u for u in self.hub.users() if u.name == "bob"]
        self.assertEqual((view.online, view.last_seen), (False, 130))
        self.assertIsNone(self.online_as(bob))
        again = RecordingParticipant()
        self.assertEqual(self.successResultOf(admitted(self.hub, again, "BOB", "p")), "bob")

    def test_unregister_unknown_is_harmless(self) -> None:
        RecordingParticipant().user.log_out()
        self.assertEqual(self.events, [])


class PendingRegistrationTests(HubTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store.hold = True

    def test_name_is_held_while_being_written(self) -> None:
        alice = RecordingParticipant()
        registered = admitted(self.hub, alice, "alice", "p")
        self.assertNoResult(registered)
        self.assertEqual(self.refusal(RecordingParticipant(), "ALICE"), Refusal.USERNAME_TAKEN)
        self.assertIsNone(self.online_as(alice))
        self.assertEqual([u.name for u in self.hub.users()], ["Old"])
        self.store.pending[0].callback(None)
        self.assertEqual(self.successResultOf(registered), "alice")
        self.assertEqual(self.online_as(alice), "alice")

    def test_pending_user_gets_no_presence_or_messages(self) -> None:
        self.store.hold = False
        bob = self.join("bob")
        self.store.hold = True
        alice = RecordingParticipant()
        admitted(self.hub, alice, "alice", "p")
        self.assertEqual(outcome(bob.user.broadcast("hi")), (0, (), ()))
        self.assertEqual(outcome(bob.user.send(["alice"], "hi")), (0, ("alice",), ()))
        self.assertEqual(alice.events, [])
        self.assertEqual(bob.events, [])

    def test_leaving_before_the_write_completes(self) -> None:
        alice = RecordingParticipant()
        registered = admitted(self.hub, alice, "alice", "p")
        alice.user.log_out()
        self.join_later = RecordingParticipant()
        second = admitted(self.hub, self.join_later, "alice", "q")
        self.store.pending[0].callback(None)
        self.assertIsNone(self.successResultOf(registered))
        self.assertEqual(self.events, [])
        self.store.pending[1].callback(None)
        self.assertEqual(self.successResultOf(second), "alice")

    def test_failed_write_frees_the_name(self) -> None:
        alice = RecordingParticipant()
        registered = admitted(self.hub, alice, "alice", "p")
        self.store.pending[0].errback(OSError("disk full"))
        self.failureResultOf(registered, OSError)
        self.assertIsNone(self.online_as(alice))
        self.store.hold = False
        self.join("alice")


class RoutingTests(HubTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.alice = self.join("Alice")
        self.bob = self.join("bob")
        self.carol = self.join("carol")
        for p in (self.alice, self.bob, self.carol):
            p.events.clear()

    def test_unicast(self) -> None:
        report = self.alice.user.send(["BOB"], "hi")
        self.assertEqual(outcome(report), (1, (), ()))
        [message] = self.bob.messages()
        self.assertEqual(
            (message.sender, message.kind, message.recipients, message.text),
            ("Alice", Kind.UNICAST, ("bob",), "hi"),
        )
        self.assertEqual(self.carol.events, [])
        self.assertEqual(self.alice.events, [])

    def test_multicast_reports_offline_and_unknown_names(self) -> None:
        report = self.alice.user.send(["bob", "old", "carol", "nobody"], "team")
        self.assertEqual(outcome(report), (2, ("Old", "nobody"), ()))
        [to_bob] = self.bob.messages()
        [to_carol] = self.carol.messages()
        self.assertIs(to_bob, to_carol)
        # The whole group as the log spells it, offline names too; a name never registered is not in it.
        self.assertEqual((to_bob.kind, to_bob.recipients), (Kind.MULTICAST, ("bob", "Old", "carol")))

    def test_unicast_to_an_offline_name(self) -> None:
        self.assertEqual(outcome(self.alice.user.send(["Old"], "x")), (0, ("Old",), ()))

    def test_sending_to_oneself(self) -> None:
        self.assertEqual(outcome(self.alice.user.send(["alice"], "note")), (1, (), ()))
        self.assertEqual(self.alice.messages()[0].text, "note")

    def test_broadcast_reaches_everyone_else(self) -> None:
        report = self.bob.user.broadcast("all")
        self.assertEqual(outcome(report), (2, (), ()))
        self.assertEqual(self.bob.events, [])
        [a] = self.alice.messages()
        [c] = self.carol.messages()
        self.assertIs(a, c)
        self.assertEqual((a.sender, a.kind, a.recipients), ("bob", Kind.BROADCAST, ()))

    def test_every_message_gets_a_new_id_and_the_time_it_was_taken(self) -> None:
        """Ids grow in the order the hub took the messages (here three in one millisecond); the time
        is the id's millisecond; every recipient gets the one object."""
        self.clock.advance(0.1234)
        reports = [
            self.alice.user.send(["bob"], "one"),
            self.alice.user.send(["bob", "carol"], "two"),
            self.bob.user.broadcast("three"),
        ]
        messages = self.bob.messages() + self.alice.messages()
        self.assertEqual([m.text for m in messages], ["one", "two", "three"])
        self.assertEqual([(r.id, r.at) for r in reports], [(m.id, m.at) for m in messages])  # type: ignore[union-attr]
        self.assertEqual([message_id(m.id) for m in messages], [m.id for m in messages])
        self.assertEqual(sorted(m.id for m in messages), [m.id for m in messages])
        self.assertEqual(len({m.id for m in messages}), 3)
        self.assertEqual({m.at for m in messages}, {100.123})
        self.assertEqual({message_id_time(m.id) for m in messages}, {100.123})
        self.assertIs(self.carol.messages()[0], messages[1])

    def test_the_queue_is_given_the_message_id(self) -> None:
        """What waits for an away name names its message, so a client can tell it from history."""
        asked: list[Enqueue] = []
        enqueue = self.store.enqueue

        def enqueue_noted(request: Enqueue) -> Deferred[tuple[str, ...]]:
            asked.append(request)
            return enqueue(request)

        self.store.enqueue = enqueue_noted  # type: ignore[method-assign]
        self.hub.set_protected("Old", True)
        self.alice.user.send(["Old", "bob"], "later")
        [message] = self.bob.messages()
        self.assertEqual([r.message_id for r in asked], [message.id])

    def test_unregistered_cannot_send(self) -> None:
        stranger = RecordingParticipant()
        for attempt in (
            lambda: stranger.user.send(["bob"], "x"),
            lambda: stranger.user.broadcast("x"),
        ):
            with self.assertRaises(Refused) as caught:
                attempt()
            self.assertEqual(caught.exception.refusal, Refusal.NOT_REGISTERED)

    def test_operator_kick(self) -> None:
        self.assertTrue(self.hub.kick("BOB", "spamming"))
        self.assertEqual(self.bob.events, [("kicked", "spamming")])
        self.assertEqual(self.events[-1], UserKicked("bob", "spamming"))
        self.assertFalse(self.hub.kick("Old", "offline"))
        self.assertFalse(self.hub.kick("nobody", "x"))

    def test_operator_notice_reaches_everyone_online(self) -> None:
        self.assertEqual(self.hub.notice("restart at noon"), 3)
        for p in (self.alice, self.bob, self.carol):
            self.assertEqual(p.events, [("notice", "restart at noon")])
        self.assertEqual(self.events[-1], NoticeSent("restart at noon", 3))

    def test_a_failing_observer_does_not_stop_the_hub(self) -> None:
        def broken(event: Event) -> None:
            raise RuntimeError("observer bug")

        self.hub.subscribe(broken)
        self.carol.user.log_out()
        self.assertEqual(self.events[-1], UserLeft("carol", "peer-carol"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)  # SessionClosed, UserLeft
        self.hub.unsubscribe(broken)


class SeveralSessionsTests(SynchronousTestCase):
    """A protected name (an account) has up to max_sessions sessions at once; each gets every message."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100)
        self.store = MemoryStore()
        records = [UserRecord("alice", 1.0, 2.0, protected=True), UserRecord("dave", 1.0, 2.0)]
        self.hub = Hub(self.clock, self.store, records, max_clients=10, max_sessions=3)
        self.events: list[Event] = []
        self.hub.subscribe(self.events.append)

    def attach(self, name: str, peer: str) -> RecordingParticipant:
        """A session logged in with its password (the realm's ``attach``)."""
        participant = RecordingParticipant()
        participant.user = self.hub.register(participant, name, peer, attach=True)
        self.assertIsNotNone(self.successResultOf(self.hub.admit(participant.user)))
        return participant

    def test_a_protected_name_attaches_sessions_and_is_online_from_the_first_to_the_last(self) -> None:
        laptop = self.attach("alice", "laptop")
        phone = self.attach("ALICE", "phone")
        view = self.hub.user("alice")
        assert view is not None
        self.assertEqual([(s.peer, s.front) for s in view.sessions], [("laptop", "tcp"), ("phone", "tcp")])
        self.assertEqual(self.hub.online_count(), 1)
        laptop.user.log_out()
        phone.user.log_out()
        self.assertEqual(
            self.events,
            [
                UserJoined("alice", "laptop", False),
                SessionOpened("alice", "laptop", "tcp", 1),
                SessionOpened("alice", "phone", "tcp", 2),
                SessionClosed("alice", "laptop", "tcp", 1),
                SessionClosed("alice", "phone", "tcp", 0),
                UserLeft("alice", "phone"),
            ],
        )

    def test_unprotected_names_without_the_password_and_past_the_limit_are_refused(self) -> None:
        self.attach("dave", "p")
        self.attach("alice", "p")
        for name, attach, refusal in [
            ("dave", True, Refusal.USERNAME_TAKEN),  # unprotected: one session, password or not
            ("alice", False, Refusal.USERNAME_TAKEN),  # not checked by the accounts
        ]:
            with self.assertRaises(Refused) as caught:
                self.hub.register(RecordingParticipant(), name, "p", attach=attach)
            self.assertIs(caught.exception.refusal, refusal)
        self.attach("alice", "p")
        self.attach("alice", "p")
        with self.assertRaises(Refused) as full:
            self.hub.register(RecordingParticipant(), "alice", "p", attach=True)
        self.assertEqual(
            (full.exception.refusal, full.exception.text), (Refusal.SESSIONS_FULL, "alice has its limit of 3 sessions")
        )

    def test_sessions_count_against_the_servers_limit(self) -> None:
        hub = Hub(self.clock, self.store, [UserRecord("alice", 1.0, 2.0, protected=True)], max_clients=2)
        for _ in range(2):
            hub.register(RecordingParticipant(), "alice", "p", attach=True)
        with self.assertRaises(Refused) as caught:
            hub.register(RecordingParticipant(), "bob", "p")
        self.assertIs(caught.exception.refusal, Refusal.SERVER_FULL)

    def test_sessions_pending_together_come_online_each_claimed_and_joined_once(self) -> None:
        first, second = RecordingParticipant(), RecordingParticipant()
        first.user = self.hub.register(first, "alice", "one", attach=True)
        second.user = self.hub.register(second, "alice", "two", attach=True)
        self.assertIs(self.successResultOf(self.hub.admit(first.user)), first.user)
        self.assertIs(self.successResultOf(self.hub.admit(second.user)), second.user)
        self.assertEqual(len([e for e in self.events if isinstance(e, UserJoined)]), 1)
        self.assertEqual(self.store.written, [("alice", 100)] * 2)  # each session's claim: its last seen

    def test_a_first_session_gone_during_the_claim_leaves_it_to_the_next_waiting(self) -> None:
        self.store.hold = True  # a name new to the log is claimed once on disk
        first, second = RecordingParticipant(), RecordingParticipant()
        first.user = self.hub.register(first, "erin", "one")
        self.hub.set_protected("erin", True)  # its password set meanwhile
        second.user = self.hub.register(second, "erin", "two", attach=True)
        firsts, seconds = self.hub.admit(first.user), self.hub.admit(second.user)
        first.user.log_out()
        self.store.pending[0].callback(None)  # the first's claim: released, the second claims
        self.assertIsNone(self.successResultOf(firsts))
        self.assertNoResult(seconds)
        self.assertEqual([name for name, _ in self.store.written], ["erin", "erin", "erin"])  # left, claimed
        self.store.pending[-1].callback(None)
        self.assertIs(self.successResultOf(seconds), second.user)
        self.assertEqual([e.peer for e in self.events if isinstance(e, UserJoined)], ["two"])

    def test_every_session_gets_messages_to_the_account_and_the_senders_others_its_own(self) -> None:
        laptop, phone = self.attach("alice", "laptop"), self.attach("alice", "phone")
        dave = self.attach("dave", "d")
        self.assertEqual(outcome(dave.user.send(["alice"], "hi")), (1, (), ()))  # users, not sessions
        [to_laptop], [to_phone] = laptop.messages(), phone.messages()
        self.assertIs(to_laptop, to_phone)
        self.assertEqual(outcome(phone.user.send(["dave"], "on my way")), (1, (), ()))
        [mine] = dave.messages()[-1:]
        self.assertEqual(laptop.messages()[-1], mine)  # its own, from the phone
        self.assertEqual(phone.messages(), [to_phone])  # not back to the phone: it has SENT
        self.assertEqual(outcome(phone.user.send(["alice", "dave"], "us")), (2, (), ()))
        self.assertEqual([m.text for m in laptop.messages()], ["hi", "on my way", "us"])  # once each
        self.assertEqual([m.text for m in phone.messages()], ["hi", "us"])
        self.assertEqual(outcome(phone.user.broadcast("all")), (1, (), ()))
        self.assertEqual([m.text for m in laptop.messages()][-1], "all")
        self.assertEqual([m.text for m in phone.messages()][-1], "us")

    def test_the_operator_disconnects_one_session_or_all(self) -> None:
        laptop, phone = self.attach("alice", "laptop"), self.attach("alice", "phone")
        view = self.hub.user("alice")
        assert view is not None
        self.assertTrue(self.hub.kick_session("alice", view.sessions[1].id, "lost phone"))
        self.assertEqual((laptop.events, phone.events), ([], [("kicked", "lost phone")]))
        self.assertFalse(self.hub.kick_session("alice", 999, "none such"))
        self.assertTrue(self.hub.kick("alice", "bye"))
        self.assertEqual(laptop.events, [("kicked", "bye")])
        self.assertEqual(phone.events[-1], ("kicked", "bye"))

    def test_a_password_removed_disconnects_every_session_saying_why(self) -> None:
        laptop, phone = self.attach("alice", "laptop"), self.attach("alice", "phone")
        self.hub.set_protected("alice", False, "she forgot it")
        why = ("dropped", "the operator removed your name's password: she forgot it")
        self.assertEqual((laptop.events, phone.events), ([why], [why]))

    def test_the_backlog_goes_to_one_session_then_to_another_if_it_leaves_unacknowledged(self) -> None:
        dave = self.attach("dave", "d")
        sent = dave.user.send(["alice"], "while away")
        assert isinstance(sent, Deferred)
        self.assertEqual(outcome(self.successResultOf(sent)), (0, ("alice",), ("alice",)))
        laptop, phone = self.attach("alice", "laptop"), self.attach("alice", "phone")
        laptop.user.deliver_backlog()
        phone.user.deliver_backlog()
        [(kind, (backlog, waiting))] = laptop.events
        self.assertEqual((kind, [q.text for q in backlog], waiting), ("delivered", ["while away"], 0))  # type: ignore[index]
        self.assertEqual(phone.events, [])  # one session at a time: never twice on a device
        laptop.user.log_out()
        [(kind, (backlog, _))] = phone.events
        self.assertEqual([q.text for q in backlog], ["while away"])  # type: ignore[attr-defined]
        phone.user.acknowledge(backlog[0].id)  # type: ignore[index]
        self.assertEqual(self.store.queue, [])
