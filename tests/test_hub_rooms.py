"""The hub's rooms (docs/protocol.rst "Rooms"): membership, control, limits, messages and their history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import (
    ROOM_BANS_MAX,
    Ban,
    Entered,
    HistoryPolicy,
    Invited,
    Joining,
    Kicked,
    Kind,
    Member,
    ModeSet,
    ModesKept,
    Parted,
    Refusal,
    Refused,
    RemoteUser,
    RoomGone,
    RoomRecord,
    RoomView,
    TopicSet,
    UserRecord,
)
from msgsvc.hub import rooms as rooms_module
from msgsvc.hub.core import Hub
from msgsvc.hub.events import Event, RoomChanged
from msgsvc.hub.history import History
from msgsvc.hub.rooms import RoomPolicy
from msgsvc.hub.rules import mask_matches, oldest_first, username_key
from msgsvc.ratelimit import AddressRate, Rate

from .support.fakes import FakeNetwork, MemoryStore, RecordingParticipant
from .support.harness import admitted, held_modes, outcome

START = 1_764_000_000.0


class RoomsTestCase(SynchronousTestCase):
    policy = RoomPolicy()

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = MemoryStore()
        self.history = History(self.clock, self.store, HistoryPolicy())
        self.hub = self.make_hub([UserRecord("Carol", 1.0, 2.0, protected=True)])
        self.events: list[Event] = []
        self.hub.subscribe(self.events.append)

    def make_hub(self, records: list[UserRecord] | None) -> Hub:
        creations = AddressRate(Rate(per_minute=3 / 60, burst=3), self.clock).take  # 3 an hour
        return Hub(
            self.clock,
            self.store,
            records,
            100,
            history=self.history,
            room_policy=self.policy,
            room_creations=creations,
        )

    def join(self, name: str, host: str = "127.0.0.1") -> RecordingParticipant:
        participant = RecordingParticipant()
        participant.host = host
        self.successResultOf(admitted(self.hub, participant, name, "peer-" + name))
        return participant

    def protect(self, name: str) -> None:
        self.successResultOf(self.store.set_password_hash(name, "fake$x", self.clock.seconds()))
        self.hub.set_protected(name, True)

    def refusal(self, call: Any, *args: Any) -> Refusal:
        try:
            result = call(*args)
        except Refused as e:
            return e.refusal
        failure = self.failureResultOf(result, Refused)
        assert isinstance(failure.value, Refused)
        return failure.value.refusal

    def view(self, participant: RecordingParticipant, room: str) -> RoomView:
        return self.successResultOf(participant.user.members(room))

    def names(self, view: RoomView) -> list[tuple[str, bool, bool, bool]]:
        return [(m.name, m.online, m.op, m.voice) for m in view.members]

    def globs(self) -> list[int]:
        """From now on, the masks matched (one count, in a list)."""
        matched = [0]

        def counted(key: str, identity: str) -> bool:
            matched[0] += 1
            return mask_matches(key, identity)

        self.patch(rooms_module, "mask_matches", counted)
        return matched

    def made_elsewhere(self, room: str, founder: Member) -> None:
        """Another node's user ``founder`` created ``room``: that node kept it, then told this one."""
        made = RoomRecord(room, founder.since, founder.name, members={username_key(founder.name): founder})
        self.successResultOf(self.store.create_room(made, 50))
        self.hub.nodes.remote_room(Entered(room, founder, created=True))

    def room_events(self, *participants: RecordingParticipant) -> list[list[object]]:
        got = [list(p.room_events()) for p in participants]
        for p in participants:
            p.events.clear()
        return got


class MembershipTests(RoomsTestCase):
    def test_the_first_join_creates_the_room_with_its_creator_as_operator(self) -> None:
        alice = self.join("alice")
        view = self.successResultOf(alice.user.join("#Dev", None))
        self.assertEqual((view.name, view.founder, view.modes, view.created), ("#Dev", "alice", "nt", START))
        self.assertEqual(self.names(view), [("alice", True, True, False)])
        kept = self.store.rooms_kept["#dev"]
        self.assertEqual((kept.name, kept.founder, list(kept.members)), ("#Dev", "alice", ["alice"]))
        self.assertEqual(self.room_events(alice), [[]])  # the asker gets the answer, not the event
        self.assertIn(RoomChanged("#Dev"), self.events)

    def test_joins_of_a_room_while_its_creation_is_kept_wait_and_are_no_creations(self) -> None:
        """The bench's room row: 100 clients JOIN #bench at once from one address; the first creates it, the
        others wait for the store's answer and join it (each took the creation path, was counted against
        the address's new rooms an hour, and past them was refused RATE_LIMITED)."""
        joiners = [self.join(name) for name in ("alice", "bob", "carol", "dave", "erin")]
        create = self.store.create_room
        answers: list[Deferred[None]] = []

        def held(*args: Any) -> Deferred[Refusal | bool]:
            """Kept now, answered once the test says."""
            kept = self.successResultOf(create(*args))
            answers.append(Deferred())
            return answers[-1].addCallback(lambda _: kept)

        self.patch(self.store, "create_room", held)
        joining = [maybeDeferred(p.user.join, "#bench", None) for p in joiners]
        for waiting in joining:
            self.assertNoResult(waiting)
        self.assertEqual(len(answers), 1)
        answers[0].callback(None)
        views = [self.successResultOf(joined) for joined in joining]
        self.assertEqual(self.names(views[-1])[:2], [("alice", True, True, False), ("bob", True, False, False)])
        self.assertEqual(len(views[-1].members), 5)
        self.patch(self.store, "create_room", create)
        self.successResultOf(joiners[0].user.join("#b", None))  # two of three an hour left
        self.successResultOf(joiners[0].user.join("#c", None))

    def test_a_join_is_told_to_the_members_and_the_joiners_other_sessions(self) -> None:
        self.protect("Carol")
        alice, bob = self.join("alice"), self.join("bob")
        carol, phone = self.join("Carol"), RecordingParticipant()
        phone.user = self.hub.register(phone, "carol", "peer-phone", attach=True)
        self.successResultOf(self.hub.admit(phone.user))
        self.successResultOf(alice.user.join("#dev", None))
        view = self.successResultOf(carol.user.join("#DEV", None))
        self.assertEqual(view.name, "#dev")  # spelled as created
        self.assertEqual(self.names(view), [("alice", True, True, False), ("Carol", True, False, False)])
        entered = Entered("#dev", Member("Carol", since=START, joined=1))
        self.assertEqual(self.room_events(alice, bob, carol, phone), [[entered], [], [], [entered]])
        self.assertEqual(self.successResultOf(carol.user.join("#dev", None)), view)  # again: nobody told
        self.assertEqual(self.room_events(alice, phone), [[], []])

    def test_an_unprotected_names_memberships_end_with_its_last_session(self) -> None:
        self.protect("Carol")
        carol, bob = self.join("Carol"), self.join("bob")
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(carol.user.join("#dev", None))
        self.successResultOf(bob.user.join("#solo", None))
        bob.user.log_out()
        self.assertEqual(self.room_events(carol), [[Parted("#dev", "bob", "disconnected", quit=True)]])
        self.assertEqual(self.names(self.view(carol, "#dev")), [("Carol", True, False, False)])
        self.assertEqual(sorted(self.store.rooms_kept), ["#dev"])  # #solo, empty and bob's, is gone
        self.assertEqual(list(self.store.rooms_kept["#dev"].members), ["carol"])
        self.assertEqual(self.refusal(carol.user.members, "#solo"), Refusal.NO_SUCH_ROOM)

    def test_a_protected_member_stays_and_a_protected_founders_empty_room_is_kept(self) -> None:
        self.protect("Carol")
        carol, bob = self.join("Carol"), self.join("bob")
        self.successResultOf(carol.user.join("#dev", None))
        self.successResultOf(carol.user.mode("#dev", [("+t", None)]))
        self.successResultOf(bob.user.join("#dev", None))
        carol.user.log_out()
        self.assertEqual(self.names(self.view(bob, "#dev")), [("bob", True, False, False), ("Carol", False, True, False)])
        carol = self.join("Carol")
        self.successResultOf(carol.user.part("#dev", "later"))
        self.successResultOf(bob.user.part("#dev", ""))
        self.assertEqual(list(self.store.rooms_kept), ["#dev"])  # kept, empty: its founder is protected
        self.assertEqual(self.successResultOf(bob.user.rooms(False))[0].members, 0)
        view = self.successResultOf(carol.user.join("#dev", None))
        self.assertEqual(self.names(view), [("Carol", True, True, False)])  # its operator again

    def test_rooms_and_memberships_are_read_again_at_start(self) -> None:
        self.protect("Carol")
        carol, bob = self.join("Carol"), self.join("bob")
        self.successResultOf(carol.user.join("#dev", None))
        self.successResultOf(carol.user.topic("#dev", "ship it"))
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(bob.user.join("#bobs", None))
        restarted = self.make_hub(None)  # the server stopped with bob still in (unprotected)
        records = [UserRecord("Carol", 1.0, 2.0, protected=True), UserRecord("bob", 1.0, 2.0)]
        restarted.load(records, self.successResultOf(self.store.rooms()))
        self.hub = restarted
        carol = self.join("Carol")
        view = self.view(carol, "#dev")
        self.assertEqual((view.topic, self.names(view)), ("ship it", [("Carol", True, True, False)]))
        self.assertEqual(sorted(self.store.rooms_kept), ["#dev"])
        self.assertEqual(list(self.store.rooms_kept["#dev"].members), ["carol"])

    def test_part_tells_everyone_but_the_asker_and_all_cannot_be_left(self) -> None:
        alice, bob = self.join("alice"), self.join("bob")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.room_events(alice, bob)
        self.assertEqual(self.successResultOf(bob.user.part("#dev", "bye")), Parted("#dev", "bob", "bye"))
        self.assertEqual(self.room_events(alice, bob), [[Parted("#dev", "bob", "bye")], []])
        self.assertEqual(self.refusal(bob.user.part, "#dev", ""), Refusal.NOT_IN_ROOM)
        self.assertEqual(self.refusal(bob.user.part, "#all", ""), Refusal.CANNOT_LEAVE)
        self.assertEqual(self.refusal(bob.user.part, "#nope", ""), Refusal.NO_SUCH_ROOM)
        self.assertEqual(self.refusal(bob.user.part, "dev", ""), Refusal.ROOM_INVALID)

    def test_all_is_everyone_online_and_cannot_be_changed(self) -> None:
        alice, _ = self.join("alice"), self.join("bob")
        view = self.successResultOf(alice.user.join("#all", None))
        self.assertEqual(self.names(view), [("alice", True, False, False), ("bob", True, False, False)])
        self.assertEqual(self.refusal(alice.user.topic, "#all", "x"), Refusal.NOT_ROOM_OPERATOR)
        self.assertEqual(self.refusal(alice.user.mode, "#all", [("+i", None)]), Refusal.NOT_ROOM_OPERATOR)
        self.assertEqual(self.successResultOf(alice.user.topic("#all", None)), TopicSet("#all", "", None, None))

    def test_the_operator_deletes_a_room_and_ends_a_membership(self) -> None:
        alice, bob = self.join("alice"), self.join("bob")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(bob.user.join("#ops", None))
        self.room_events(alice, bob)
        rooms = self.hub.rooms
        self.assertTrue(self.successResultOf(rooms.remove_member("#DEV", "Bob", "enough")))
        self.assertEqual(
            self.room_events(alice, bob), [[RoomGone("#dev", "enough", "bob")], [RoomGone("#dev", "enough", "bob")]]
        )
        self.assertTrue(self.successResultOf(rooms.delete("#ops", "closed")))
        self.assertEqual(self.room_events(bob), [[RoomGone("#ops", "closed")]])
        self.assertEqual([v.name for v in rooms.everything()], ["#dev"])
        self.assertEqual(sorted(self.store.rooms_kept), ["#dev"])
        self.assertFalse(self.successResultOf(rooms.delete("#ops", "again")))

    def test_a_password_removed_ends_the_names_memberships(self) -> None:
        self.protect("Carol")
        carol, bob = self.join("Carol"), self.join("bob")
        self.successResultOf(carol.user.join("#dev", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.room_events(bob)
        self.successResultOf(self.store.reset("Carol", "asked", START))
        self.hub.set_protected("Carol", False, "asked")
        self.assertEqual(self.room_events(bob), [[Parted("#dev", "Carol", "the operator removed the name's password", quit=True)]])
        self.assertEqual(self.names(self.view(bob, "#dev")), [("bob", True, False, False)])

    def test_a_new_holder_of_an_unprotected_founders_name_is_not_its_operator(self) -> None:
        """Attack 32: whoever took a founder's free name was its operator, past +i, +k and +l."""
        alice, bob = self.join("alice"), self.join("bob")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(alice.user.mode("#dev", [("+i", None), ("+k", "s3"), ("+l", "2")]))
        alice.user.log_out()
        self.assertEqual((self.store.rooms_kept["#dev"].founder, self.view(bob, "#dev").founder), (None, None))
        mallory = self.join("ALICE")  # someone else takes the name, free again
        self.protect("ALICE")  # and protects it: still not the founder
        self.assertEqual(self.refusal(mallory.user.join, "#dev", None), Refusal.INVITE_ONLY)
        self.assertEqual([m.name for m in self.view(bob, "#dev").members], ["bob"])

    def test_an_unprotected_founder_online_has_no_founders_rights_till_it_protects_its_name(self) -> None:
        alice, bob = self.join("alice"), self.join("bob")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(alice.user.mode("#dev", [("+i", None)]))
        self.successResultOf(alice.user.part("#dev", ""))
        self.assertEqual(self.refusal(alice.user.join, "#dev", None), Refusal.INVITE_ONLY)
        self.protect("alice")
        self.assertEqual(self.names(self.successResultOf(alice.user.join("#dev", None)))[0], ("alice", True, True, False))

    def test_an_invitation_to_an_unprotected_name_ends_when_it_leaves(self) -> None:
        """Attack 32: bobx's invitation let the next BOBX into the +i room, past a ban too."""
        alice, erin = self.join("alice"), self.join("erin")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(alice.user.mode("#dev", [("+i", None), ("+b", "erin")]))
        self.successResultOf(alice.user.invite("#dev", "erin"))
        erin.user.log_out()
        mallory = self.join("ERIN")
        self.assertEqual(self.refusal(mallory.user.join, "#dev", None), Refusal.BANNED)
        self.successResultOf(alice.user.mode("#dev", [("-b", "erin")]))
        self.assertEqual(self.refusal(mallory.user.join, "#dev", None), Refusal.INVITE_ONLY)

    def test_an_invitation_to_an_unprotected_name_nobody_holds_lets_no_next_holder_in(self) -> None:
        """attack37 F10: an operator's INVITE of an unprotected name that is offline (free: anyone may take
        it) was kept, and whoever took the name next used it, past +i and a ban on the name (real
        sockets: 3/3 SQLite, 3/3 two Redis nodes, with and without +b): the next holder inherits the
        invitation, which docs/security.rst says it never does (attack 32)."""
        alice, erin = self.join("alice"), self.join("erin")
        erin.user.log_out()  # in the log, free
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(alice.user.mode("#dev", [("+i", None), ("+b", "erin")]))
        with self.assertRaises(Refused) as refused:  # the next holder may be anyone
            alice.user.invite("#dev", "erin")
        self.assertEqual(refused.exception.refusal, Refusal.RECIPIENT_INVALID)
        mallory = self.join("ERIN")
        self.assertEqual(self.refusal(mallory.user.join, "#dev", None), Refusal.BANNED)

    def test_a_founder_whose_password_is_removed_is_founder_no_more(self) -> None:
        self.protect("Carol")
        carol, bob = self.join("Carol"), self.join("bob")
        self.successResultOf(carol.user.join("#dev", None))
        self.successResultOf(carol.user.join("#empty", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(carol.user.part("#empty", ""))  # kept, empty: its founder is protected
        self.successResultOf(self.store.reset("Carol", "asked", START))
        self.hub.set_protected("Carol", False, "asked")
        self.assertEqual(self.store.rooms_kept["#dev"].founder, None)
        self.assertEqual(sorted(self.store.rooms_kept), ["#dev", "#empty"])  # no member left it now: kept

    def test_a_founder_not_protected_at_start_is_founder_no_more(self) -> None:
        alice, bob = self.join("alice"), self.join("bob")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(bob.user.join("#dev", None))
        self.successResultOf(alice.user.part("#dev", ""))
        restarted = self.make_hub(None)  # the server stopped with bob still in, alice elsewhere
        restarted.load([UserRecord("alice", 1.0, 2.0), UserRecord("bob", 1.0, 2.0)], self.successResultOf(self.store.rooms()))
        self.assertEqual(self.store.rooms_kept, {})  # bob's membership ended: nobody is left
        self.successResultOf(self.store.create_room(RoomRecord("#old", START, "alice", members={"carol": Member("Carol")}), 50))
        self.hub = self.make_hub(None)
        self.hub.load([UserRecord("alice", 1.0, 2.0), UserRecord("Carol", 1.0, 2.0, True)], self.successResultOf(self.store.rooms()))
        self.assertEqual(self.store.rooms_kept["#old"].founder, None)

    def test_a_store_that_fails_is_unavailable(self) -> None:
        alice = self.join("alice")
        self.store.fail_rooms = True
        self.assertEqual(self.refusal(alice.user.join, "#dev", None), Refusal.UNAVAILABLE)
        self.flushLoggedErrors(OSError)


class ControlTests(RoomsTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.alice, self.bob, self.dave = self.join("alice"), self.join("bob"), self.join("dave")
        self.successResultOf(self.alice.user.join("#dev", None))
        self.successResultOf(self.bob.user.join("#dev", None))
        self.room_events(self.alice, self.bob)

    def test_topic_is_locked_to_operators_by_default(self) -> None:
        self.assertEqual(self.refusal(self.bob.user.topic, "#dev", "mine"), Refusal.NOT_ROOM_OPERATOR)
        set_ = self.successResultOf(self.alice.user.topic("#dev", "release"))
        self.assertEqual(set_, TopicSet("#dev", "release", "alice", START))
        self.assertEqual(self.room_events(self.alice, self.bob, self.dave), [[], [set_], []])
        self.assertEqual(self.successResultOf(self.dave.user.topic("#dev", None)), set_)  # not secret: anyone asks
        self.assertEqual(self.store.rooms_kept["#dev"].topic, "release")
        self.assertEqual(self.refusal(self.dave.user.topic, "#dev", "x"), Refusal.NOT_IN_ROOM)
        self.assertEqual(self.refusal(self.alice.user.topic, "#dev", "x" * 391), Refusal.TEXT_TOO_LONG)
        self.successResultOf(self.alice.user.mode("#dev", [("-t", None)]))
        self.successResultOf(self.bob.user.topic("#dev", "anyone's"))

    def test_kick_puts_a_member_out_and_tells_everyone(self) -> None:
        self.assertEqual(self.refusal(self.bob.user.kick, "#dev", "alice", ""), Refusal.NOT_ROOM_OPERATOR)
        self.assertEqual(self.refusal(self.alice.user.kick, "#dev", "dave", ""), Refusal.USER_NOT_IN_ROOM)
        kicked = self.successResultOf(self.alice.user.kick("#dev", "BOB", ""))
        self.assertEqual(kicked, Kicked("#dev", "bob", "alice", "alice"))  # no reason: the kicker's name
        self.assertEqual(self.room_events(self.alice, self.bob), [[], [kicked]])
        self.assertEqual(list(self.store.rooms_kept["#dev"].members), ["alice"])

    def test_modes_change_in_turn_and_only_what_changes_is_told(self) -> None:
        changes = [("+o", "BOB"), ("+o", "alice"), ("+v", "bob"), ("+m", None), ("+n", None), ("+k", "s3"), ("+l", "2"), ("+b", "dave")]
        set_ = self.successResultOf(self.alice.user.mode("#dev", changes))
        effective = (("+o", "bob"), ("+v", "bob"), ("+m", None), ("+k", "s3"), ("+l", "2"), ("+b", "dave!*@*"))
        self.assertEqual(set_, ModeSet("#dev", "alice", effective))
        self.assertEqual(self.room_events(self.alice, self.bob), [[], [set_]])
        kept = self.store.rooms_kept["#dev"]
        self.assertEqual((kept.modes, kept.key, kept.limit, list(kept.bans)), ("mnt", "s3", 2, ["dave!*@*"]))
        self.assertEqual((kept.members["bob"].op, kept.members["bob"].voice), (True, True))
        view = self.view(self.alice, "#dev")
        self.assertEqual((view.key, [b.mask for b in view.bans]), ("s3", ["dave!*@*"]))
        outsider = self.view(self.dave, "#dev")
        self.assertEqual((outsider.key, outsider.bans), (None, ()))  # a member's to know
        self.assertEqual(self.refusal(self.alice.user.mode, "#dev", [("+o", "dave")]), Refusal.USER_NOT_IN_ROOM)
        self.assertEqual(self.refusal(self.dave.user.mode, "#dev", [("+i", None)]), Refusal.NOT_IN_ROOM)
        nothing = self.successResultOf(self.alice.user.mode("#dev", [("+m", None)]))
        self.assertEqual((nothing.changes, self.room_events(self.bob)), ((), [[]]))
        self.successResultOf(self.alice.user.mode("#dev", [("-b", "Dave"), ("-k", None), ("-l", None)]))
        self.assertEqual((kept.key, kept.limit, kept.bans), (None, None, {}))

    def test_a_mode_change_that_changes_nothing_is_answered_and_changes_nothing_anywhere(self) -> None:
        """Its answer has no changes (the line protocol's ``MODE #dev alice +``); no member is told, nothing
        is written, and the room is not said to have changed (RoomChanged: the server window's Rooms view
        reads it again)."""
        version = self.store.rooms_kept["#dev"].version
        self.events.clear()
        asked = [("+n", None), ("+o", "alice"), ("-b", "eve"), ("-k", None)]
        self.assertEqual(self.successResultOf(self.alice.user.mode("#dev", asked)), ModeSet("#dev", "alice", ()))
        self.assertEqual(self.room_events(self.alice, self.bob), [[], []])
        self.assertEqual(self.store.rooms_kept["#dev"].version, version)
        self.assertEqual([e for e in self.events if isinstance(e, RoomChanged)], [])

    def pipelined(self, *asked: tuple[str, str | None]) -> list[object]:
        """alice's MODE changes of #dev, each asked before the store answered the one before, then answered
        in turn: every change bob is told meanwhile."""
        answers = held_modes(self.store)
        modes = [self.alice.user.mode("#dev", [change]) for change in asked]
        for answer in answers:
            answer()
        for each in modes:
            self.successResultOf(each)
        [told] = self.room_events(self.bob)
        return [change for event in told for change in event.changes]  # type: ignore[attr-defined]

    def test_bans_asked_one_after_another_before_the_store_answers_are_told_once_each(self) -> None:
        """attack37 F12: an operator's MODE +b lines sent one after another (the next before the store
        answered the one before) had each store answer taken as newer than the node's copy: the copy
        lost the later bans for a moment and every member was told ``-b`` of bans nobody lifted, then
        ``+b`` again.  Real sockets (one SQLite server, and two Redis nodes; as at 50e907e): four
        ``MODE #r +b aN`` pipelined gave 8 MODE lines: +b a0, -b a1, +b a1, -b+b a2 a1, +b a2, -b+b a3
        a2, +b a3, +b a3."""
        changes = self.pipelined(("+b", "a1"), ("+b", "a2"), ("+b", "a3"))
        self.assertEqual(changes, [("+b", "a1!*@*"), ("+b", "a2!*@*"), ("+b", "a3!*@*")])
        bans = [b.mask for b in self.view(self.alice, "#dev").bans]
        self.assertEqual(bans, ["a1!*@*", "a2!*@*", "a3!*@*"])

    def test_a_key_set_lifted_and_set_again_before_the_store_answers_is_told_once_each(self) -> None:
        """As F12 for a key: the store's answer to ``+k s1`` (or ``-k``) does not undo the changes asked
        after it, here or in what the members are told."""
        changes = self.pipelined(("+k", "s1"), ("-k", None), ("+k", "s2"), ("-k", None), ("+k", "s3"))
        self.assertEqual(changes, [("+k", "s1"), ("-k", None), ("+k", "s2"), ("-k", None), ("+k", "s3")])
        self.assertEqual((self.view(self.alice, "#dev").key, self.store.rooms_kept["#dev"].key), ("s3", "s3"))

    def test_a_member_opped_and_deopped_before_the_store_answers_is_told_once_each(self) -> None:
        """As F12 for a member's op and voice (each with a version of its own)."""
        changes = self.pipelined(("+o", "bob"), ("-o", "bob"), ("+v", "bob"), ("+o", "bob"))
        self.assertEqual(changes, [("+o", "bob"), ("-o", "bob"), ("+v", "bob"), ("+o", "bob")])
        self.assertEqual(self.names(self.view(self.alice, "#dev"))[1], ("bob", True, True, True))
        kept = self.store.rooms_kept["#dev"].members["bob"]
        self.assertEqual((kept.op, kept.voice), (True, True))

    def test_limits_and_flags_set_before_the_store_answers_are_told_once_each(self) -> None:
        """As F12 for a limit and the flags."""
        changes = self.pipelined(("+l", "5"), ("+m", None), ("+l", "6"), ("-l", None), ("+l", "7"), ("-m", None))
        self.assertEqual(changes, [("+l", "5"), ("+m", None), ("+l", "6"), ("-l", None), ("+l", "7"), ("-m", None)])
        view, kept = self.view(self.alice, "#dev"), self.store.rooms_kept["#dev"]
        self.assertEqual((view.limit, view.modes), (7, "nt"))
        self.assertEqual((kept.limit, kept.modes), (7, "nt"))

    def test_joining_past_a_rooms_modes(self) -> None:
        erin = self.join("erin")
        self.successResultOf(self.alice.user.mode("#dev", [("+b", "dave"), ("+k", "s3")]))
        self.assertEqual(self.refusal(self.dave.user.join, "#dev", "s3"), Refusal.BANNED)
        self.assertEqual(self.refusal(erin.user.join, "#dev", None), Refusal.BAD_KEY)
        self.assertEqual(self.refusal(erin.user.join, "#dev", "nope"), Refusal.BAD_KEY)
        self.successResultOf(self.alice.user.mode("#dev", [("-k", None), ("+i", None)]))
        self.assertEqual(self.refusal(erin.user.join, "#dev", None), Refusal.INVITE_ONLY)
        self.assertEqual(self.refusal(self.bob.user.invite, "#dev", "erin"), Refusal.NOT_ROOM_OPERATOR)
        self.assertEqual(self.refusal(self.alice.user.invite, "#dev", "bob"), Refusal.ALREADY_IN_ROOM)
        self.assertEqual(self.refusal(self.alice.user.invite, "#dev", "nobody"), Refusal.RECIPIENT_INVALID)
        self.room_events(self.bob)
        invited = self.successResultOf(self.alice.user.invite("#dev", "ERIN"))
        self.assertEqual(invited, Invited("#dev", "erin", "alice"))
        self.assertEqual(self.room_events(erin, self.bob), [[invited], []])
        self.successResultOf(erin.user.join("#dev", None))
        self.successResultOf(erin.user.part("#dev", ""))
        self.assertEqual(self.refusal(erin.user.join, "#dev", None), Refusal.INVITE_ONLY)  # used
        self.successResultOf(self.alice.user.mode("#dev", [("-i", None), ("+l", "2")]))
        self.assertEqual(self.refusal(erin.user.join, "#dev", None), Refusal.ROOM_FULL)

    def test_an_operators_invitation_lets_a_banned_name_in_once(self) -> None:
        self.successResultOf(self.alice.user.mode("#dev", [("+b", "dave")]))
        self.successResultOf(self.bob.user.invite("#dev", "dave"))  # a member's: it only tells dave
        self.assertEqual(self.refusal(self.dave.user.join, "#dev", None), Refusal.BANNED)
        self.successResultOf(self.alice.user.invite("#dev", "dave"))
        self.successResultOf(self.dave.user.join("#dev", None))
        self.successResultOf(self.alice.user.kick("#dev", "dave", ""))
        self.assertEqual(self.refusal(self.dave.user.join, "#dev", None), Refusal.BANNED)  # used

    def test_an_invitation_is_told_once_the_store_keeps_it(self) -> None:
        """Its invitee hears of it once a JOIN on any node would find it in the store; one the store could
        not keep is refused, and nobody is told."""
        erin = self.join("erin")
        self.store.fail_rooms = True
        self.assertEqual(self.refusal(self.alice.user.invite, "#dev", "erin"), Refusal.UNAVAILABLE)
        self.flushLoggedErrors(OSError)
        self.assertEqual((self.room_events(erin), self.store.invites.get("#dev", {})), ([[]], {}))
        self.store.fail_rooms = False
        del self.store.rooms_kept["#dev"]  # the operator deleted it on another node, not heard here yet
        self.assertEqual(self.refusal(self.alice.user.invite, "#dev", "erin"), Refusal.NO_SUCH_ROOM)
        self.assertEqual((self.room_events(erin), self.store.invites), ([[]], {}))

    def test_an_invitation_pending_is_not_told_again_and_a_room_holds_100(self) -> None:
        """Attack 32: five members delivered 500 INVITATION lines to two names in 19 s."""
        erin = self.join("erin")
        for _ in range(5):
            self.assertEqual(self.successResultOf(self.bob.user.invite("#dev", "ERIN")), Invited("#dev", "erin", "bob"))
        self.assertEqual(self.room_events(erin), [[Invited("#dev", "erin", "bob")]])
        self.successResultOf(self.alice.user.invite("#dev", "erin"))  # an operator's lets her in: told
        self.successResultOf(self.alice.user.invite("#dev", "erin"))
        self.successResultOf(self.bob.user.invite("#dev", "erin"))
        self.assertEqual(self.room_events(erin), [[Invited("#dev", "erin", "alice")]])
        self.successResultOf(self.alice.user.mode("#dev", [("+b", "erin")]))
        for n in range(100):  # protected names in the log, offline
            self.join(f"u{n}").user.log_out()
            self.protect(f"u{n}")
        for n in range(100):  # a hundred more: the oldest, erin's, ends
            self.clock.advance(1)
            self.successResultOf(self.bob.user.invite("#dev", f"u{n}"))
        self.assertEqual(len(self.store.invites["#dev"]), 100)
        self.assertEqual(self.refusal(erin.user.join, "#dev", None), Refusal.BANNED)
        self.successResultOf(self.alice.user.invite("#dev", "erin"))
        self.assertEqual(self.room_events(erin), [[Invited("#dev", "erin", "alice")]])
        self.successResultOf(erin.user.join("#dev", None))

    def test_a_ban_is_a_mask_matched_against_name_ident_and_host(self) -> None:
        erin, frank = self.join("erin", host="192.0.2.7"), self.join("frank", host="198.51.100.9")
        frank.ident = "~fr"  # an IRC client's USER name; erin has none (the line protocol): her name
        bans = [("+b", "erin!erin@*"), ("+b", "*!*@192.0.2.*"), ("+b", "*!~fr@msgsvc"), ("+b", "DAVE")]
        set_ = self.successResultOf(self.alice.user.mode("#dev", bans))
        masks = ("erin!erin@*", "*!*@192.0.2.*", "*!~fr@msgsvc", "DAVE!*@*")
        self.assertEqual([arg for _, arg in set_.changes], list(masks))
        self.assertEqual([b.mask for b in self.view(self.alice, "#dev").bans], list(masks))
        for banned in (erin, frank, self.dave):
            self.assertEqual(self.refusal(banned.user.join, "#dev", None), Refusal.BANNED)
        self.successResultOf(self.alice.user.mode("#dev", [("-b", "erin!ERIN@*"), ("-b", "*!*@192.0.2.*")]))
        self.successResultOf(erin.user.join("#dev", None))  # no mask matches her now
        self.successResultOf(self.alice.user.mode("#dev", [("-b", "*!~fr@*")]))  # not a ban: nothing
        self.assertEqual(self.refusal(frank.user.join, "#dev", None), Refusal.BANNED)
        self.assertEqual(sorted(self.store.rooms_kept["#dev"].bans), ["*!~fr@msgsvc", "dave!*@*"])

    def test_a_secret_room_is_hidden_from_outsiders(self) -> None:
        self.successResultOf(self.alice.user.mode("#dev", [("+s", None)]))
        self.successResultOf(self.dave.user.join("#open", None))
        self.assertEqual([r.name for r in self.successResultOf(self.dave.user.rooms(False))], ["#open"])
        self.assertEqual([r.name for r in self.successResultOf(self.bob.user.rooms(False))], ["#dev", "#open"])
        self.assertEqual([r.name for r in self.successResultOf(self.bob.user.rooms(True))], ["#dev"])
        self.assertEqual(self.refusal(self.dave.user.members, "#dev"), Refusal.NO_SUCH_ROOM)
        self.assertEqual(self.refusal(self.dave.user.topic, "#dev", None), Refusal.NO_SUCH_ROOM)
        self.assertEqual(self.refusal(self.dave.user.send_room, "#dev", "hi"), Refusal.NO_SUCH_ROOM)


class LimitTests(RoomsTestCase):
    policy = RoomPolicy(max_per_user=2, max_members=2)

    def test_rooms_per_user_and_members_per_room(self) -> None:
        alice, bob, dave = self.join("alice"), self.join("bob"), self.join("dave")
        self.successResultOf(alice.user.join("#a", None))
        self.successResultOf(alice.user.join("#b", None))
        self.assertEqual(self.refusal(alice.user.join, "#c", None), Refusal.TOO_MANY_ROOMS)
        self.successResultOf(alice.user.join("#all", None))  # #all does not count
        self.successResultOf(bob.user.join("#a", None))
        self.assertEqual(self.refusal(dave.user.join, "#a", None), Refusal.ROOM_FULL)
        self.successResultOf(alice.user.mode("#a", [("+l", "5")]))
        self.assertEqual(self.refusal(dave.user.join, "#a", None), Refusal.ROOM_FULL)  # the server's limit holds

    def test_new_rooms_per_address_an_hour(self) -> None:
        """Three an hour, as this test's hub is given."""
        alice, bob = self.join("alice", "10.0.0.1"), self.join("bob", "10.0.0.1")
        elsewhere = self.join("dave", "10.0.0.2")
        self.successResultOf(alice.user.join("#a", None))
        self.successResultOf(alice.user.join("#b", None))
        self.successResultOf(bob.user.join("#c", None))
        self.assertEqual(self.refusal(bob.user.join, "#d", None), Refusal.RATE_LIMITED)
        self.successResultOf(bob.user.join("#a", None))  # joining is not creating
        self.successResultOf(elsewhere.user.join("#d", None))
        self.clock.advance(1200)  # a third of an hour: one more
        erin = self.join("erin", "10.0.0.1")
        self.successResultOf(erin.user.join("#e", None))
        self.assertEqual(self.refusal(erin.user.join, "#f", None), Refusal.RATE_LIMITED)

    def test_a_rooms_ban_list_holds_at_most_100_masks(self) -> None:
        """Attack 32: one operator put 106,840 bans in a room, each JOIN and SEND matching them all."""
        alice = self.join("alice")
        self.successResultOf(alice.user.join("#dev", None))
        for line in range(9):
            self.successResultOf(alice.user.mode("#dev", [("+b", f"m{line}x{i}") for i in range(12)][: 100 - 12 * line]))
        self.assertEqual(len(self.view(alice, "#dev").bans), 100)
        refused = [("+m", None), ("-b", "m0x0"), ("+b", "m0x0"), ("+b", "new")]  # all or none
        self.assertEqual(self.refusal(alice.user.mode, "#dev", refused), Refusal.BAN_LIST_FULL)
        self.assertNotIn("m", self.view(alice, "#dev").modes)
        self.successResultOf(alice.user.mode("#dev", [("+b", "M0X0"), ("-b", "m0x0"), ("+b", "new")]))
        self.assertEqual(len(self.store.rooms_kept["#dev"].bans), 100)

    def test_a_room_read_with_more_bans_keeps_them_and_takes_none_till_under(self) -> None:
        record = RoomRecord("#old", START, "Carol", members={"carol": Member("Carol", op=True, since=START)})
        record.bans = {f"m{i}!*@*": Ban(f"m{i}!*@*", "Carol", START) for i in range(101)}
        self.hub.rooms.load([record])
        self.protect("Carol")
        carol = self.join("Carol")
        self.assertEqual(len(self.view(carol, "#old").bans), 101)
        self.assertEqual(self.refusal(carol.user.mode, "#old", [("-b", "m0"), ("+b", "x")]), Refusal.BAN_LIST_FULL)
        self.successResultOf(carol.user.mode("#old", [("-b", "m0"), ("-b", "m1"), ("+b", "x")]))
        self.assertEqual(len(self.view(carol, "#old").bans), 100)


class MessageTests(RoomsTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.protect("Carol")
        self.alice, self.bob, self.carol, self.dave = (self.join(n) for n in ("alice", "bob", "Carol", "dave"))
        for member in (self.alice, self.bob, self.carol):
            self.successResultOf(member.user.join("#dev", None))

    def test_a_message_reaches_every_session_of_every_member(self) -> None:
        laptop = RecordingParticipant()
        laptop.user = self.hub.register(laptop, "carol", "peer-laptop", attach=True)
        self.successResultOf(self.hub.admit(laptop.user))
        report = self.carol.user.send_room("#DEV", "hello")
        self.assertEqual(outcome(report), (2, (), ()))  # alice and bob; not carol herself
        texts = [[(m.kind, m.recipients, m.text) for m in p.messages()] for p in (self.alice, self.bob, self.carol, laptop, self.dave)]
        one = [(Kind.ROOM, ("#dev",), "hello")]
        self.assertEqual(texts, [one, one, [], one, []])

    def test_offline_members_read_the_history_not_the_queue(self) -> None:
        self.carol.user.log_out()
        self.assertEqual(outcome(self.alice.user.send_room("#dev", "while away")), (1, (), ()))
        self.clock.advance(0)
        self.assertEqual(self.store.queue, [])
        carol = self.join("Carol")
        page = self.successResultOf(carol.user.history("#dev", None, 10))
        self.assertEqual([e.text for e in page.entries], ["while away"])
        summaries = self.successResultOf(carol.user.conversations(10, True))
        self.assertEqual([(s.latest.conversation, s.unread) for s in summaries], [("#dev", 1)])
        pages = self.successResultOf(carol.user.catch_up(True))
        self.assertEqual([(p.conversation, [e.text for e in p.entries]) for p in pages], [("#all", []), ("#dev", ["while away"])])
        self.successResultOf(carol.user.mark_read("#dev", page.entries[0].id))
        self.assertEqual(self.successResultOf(carol.user.conversations(10, True))[0].unread, 0)

    def test_only_members_read_a_rooms_history(self) -> None:
        self.alice.user.send_room("#dev", "inside")
        self.clock.advance(0)
        self.assertEqual(self.refusal(self.dave.user.history, "#dev", None, 10), Refusal.HISTORY_FORBIDDEN)
        self.successResultOf(self.bob.user.part("#dev", ""))
        self.assertEqual(self.refusal(self.bob.user.history, "#dev", None, 10), Refusal.HISTORY_FORBIDDEN)
        self.successResultOf(self.dave.user.join("#dev", None))
        self.assertEqual([e.text for e in self.successResultOf(self.dave.user.history("#dev", None, 10)).entries], ["inside"])

    def test_who_may_speak(self) -> None:
        self.assertEqual(self.refusal(self.dave.user.send_room, "#dev", "x"), Refusal.NOT_IN_ROOM)  # +n
        self.assertEqual(self.refusal(self.dave.user.send_room, "#nope", "x"), Refusal.NO_SUCH_ROOM)
        self.successResultOf(self.alice.user.mode("#dev", [("-n", None), ("+v", "bob")]))
        self.assertEqual(outcome(self.dave.user.send_room("#dev", "from outside")), (3, (), ()))
        self.successResultOf(self.alice.user.mode("#dev", [("+m", None)]))
        self.assertEqual(self.refusal(self.carol.user.send_room, "#dev", "x"), Refusal.MODERATED)
        self.assertEqual(outcome(self.bob.user.send_room("#dev", "voiced")), (2, (), ()))
        self.assertEqual(outcome(self.alice.user.send_room("#dev", "op")), (2, (), ()))

    def test_a_banned_member_is_silenced_unless_operator_or_voiced(self) -> None:
        self.successResultOf(self.alice.user.mode("#dev", [("+o", "Carol"), ("+b", "b*"), ("+b", "carol")]))
        self.assertEqual(self.refusal(self.bob.user.send_room, "#dev", "x"), Refusal.BANNED)  # joined before
        self.assertEqual(outcome(self.carol.user.send_room("#dev", "an operator")), (2, (), ()))
        self.successResultOf(self.alice.user.mode("#dev", [("+v", "bob")]))
        self.assertEqual(outcome(self.bob.user.send_room("#dev", "voiced")), (2, (), ()))
        self.successResultOf(self.alice.user.mode("#dev", [("-v", "bob"), ("-n", None), ("+b", "dave")]))
        self.assertEqual(self.refusal(self.dave.user.send_room, "#dev", "x"), Refusal.BANNED)  # nor from outside
        self.assertEqual(self.refusal(self.bob.user.send_room, "#dev", "x"), Refusal.BANNED)
        self.successResultOf(self.alice.user.mode("#dev", [("-b", "b*")]))
        self.assertEqual(outcome(self.bob.user.send_room("#dev", "unbanned")), (2, (), ()))
        self.assertEqual([m.text for m in self.alice.messages()], ["an operator", "voiced", "unbanned"])

    def test_a_members_ban_verdict_is_matched_once_till_the_bans_change(self) -> None:
        """Issue 32: a SEND of a plain member matches the room's bans once for its identity (name, user,
        host), not on every message; a ban set or lifted, or another identity, is matched again."""
        masks = [("+b", f"x{n}!*@*") for n in range(ROOM_BANS_MAX - 2)]
        self.successResultOf(self.alice.user.mode("#dev", masks))
        globs = self.globs()
        for _ in range(10):
            self.assertEqual(outcome(self.carol.user.send_room("#dev", "hi")), (2, (), ()))
        self.assertEqual(globs[0], 2 * len(masks))  # its two hosts, once: each message 196 before
        self.successResultOf(self.alice.user.mode("#dev", [("+b", "carol")]))
        self.assertEqual(self.refusal(self.carol.user.send_room, "#dev", "x"), Refusal.BANNED)
        self.successResultOf(self.alice.user.mode("#dev", [("-b", "carol"), ("+b", "*!~c@*")]))
        self.assertEqual(outcome(self.carol.user.send_room("#dev", "unbanned")), (2, (), ()))
        self.carol.ident = "~c"  # another identity (as another session of Carol's would be)
        self.assertEqual(self.refusal(self.carol.user.send_room, "#dev", "x"), Refusal.BANNED)
        phone = RecordingParticipant()
        phone.host = "192.0.2.7"
        phone.user = self.hub.register(phone, "carol", "peer-phone", attach=True)
        self.successResultOf(self.hub.admit(phone.user))
        self.successResultOf(self.alice.user.mode("#dev", [("-b", "*!~c@*"), ("+b", "*!*@192.0.2.*")]))
        matched = globs[0]
        for _ in range(3):  # each session's own verdict, kept
            self.assertEqual(self.refusal(phone.user.send_room, "#dev", "x"), Refusal.BANNED)
            self.assertEqual(outcome(self.carol.user.send_room("#dev", "mine")), (2, (), ()))
        self.assertEqual(globs[0], matched + 4 * (len(masks) + 1))
        self.successResultOf(self.alice.user.part("#dev", ""))
        self.assertEqual(self.hub.rooms._verdicts["#dev"].keys(), {"carol"})
        self.successResultOf(self.carol.user.part("#dev", ""))
        self.assertEqual(self.hub.rooms._verdicts["#dev"], {})  # a member's verdicts go with it

    def test_all_is_a_broadcast(self) -> None:
        report = self.alice.user.send_room("#all", "everyone")
        self.assertEqual(outcome(report), (3, (), ()))
        self.assertEqual([m.kind for m in self.dave.messages()], [Kind.BROADCAST])


class NodesTests(RoomsTestCase):
    """Rooms across nodes: what happens here is published; what another node publishes is applied here
    (without writing: that node wrote it) and told to the members' sessions here."""

    def make_hub(self, records: list[UserRecord] | None) -> Hub:
        self.network = FakeNetwork()
        return Hub(
            self.clock, self.store, records, 100, network=self.network, history=self.history
        )

    def test_a_name_gone_from_another_node_is_free_here_too(self) -> None:
        """zed, unprotected, founded #ops and was invited to #dev, and left the service on its node: the next
        zed here is neither #ops's founder nor invited (that node wrote it; nothing here)."""
        alice = self.join("alice")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(alice.user.mode("#dev", [("+i", None)]))
        zed = RemoteUser("zed", "there", "10.0.0.9:5000", "tcp", START)
        self.hub.nodes.remote_joined(zed, START, False, False)
        self.made_elsewhere("#ops", Member("zed", op=True, since=START))
        self.successResultOf(alice.user.join("#ops", None))
        kept = self.successResultOf(self.store.set_modes("#ops", [("+i", None)], "zed", START, {}))  # on zed's node
        self.hub.nodes.remote_room(ModeSet("#ops", "zed", (("+i", None),), kept))
        self.successResultOf(alice.user.invite("#dev", "zed"))
        self.hub.nodes.remote_room(Parted("#ops", "zed", "disconnected", quit=True))
        self.hub.nodes.remote_left("zed", "there", START + 1)
        self.assertEqual(self.view(alice, "#ops").founder, None)
        self.assertEqual(self.store.rooms_kept["#ops"].founder, "zed")  # zed's node writes it, not this one
        self.assertIn("zed", self.store.invites["#dev"])
        self.store.rooms_kept["#ops"].founder = None  # as it does, with his part
        self.successResultOf(self.store.remove_member("#ops", "zed"))
        self.successResultOf(self.store.uninvite("zed"))
        self.protect("zed")
        again = self.join("zed")
        self.assertEqual(self.refusal(again.user.join, "#ops", None), Refusal.INVITE_ONLY)
        self.assertEqual(self.refusal(again.user.join, "#dev", None), Refusal.INVITE_ONLY)

    def test_changes_made_here_are_published(self) -> None:
        alice = self.join("alice")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(alice.user.topic("#dev", "t"))
        self.successResultOf(alice.user.invite("#dev", "Carol"))
        self.assertEqual(
            self.network.room_changes,
            [
                Entered("#dev", Member("alice", op=True, since=START), created=True),
                TopicSet("#dev", "t", "alice", START),
                Invited("#dev", "Carol", "alice"),
            ],
        )

    def test_another_nodes_changes_are_applied_and_told_here(self) -> None:
        alice = self.join("alice")
        rooms = self.hub.rooms
        self.made_elsewhere("#ops", Member("zed", op=True, since=START))
        self.successResultOf(alice.user.join("#ops", None))
        self.assertEqual(self.names(self.view(alice, "#ops")), [("alice", True, False, False), ("zed", False, True, False)])
        kept = dict(self.store.rooms_kept)
        kicked = Kicked("#ops", "alice", "zed", "out")
        self.hub.nodes.remote_room(kicked)
        self.assertEqual(self.room_events(alice), [[kicked]])
        self.assertEqual(self.refusal(alice.user.part, "#ops", ""), Refusal.NOT_IN_ROOM)
        self.hub.nodes.remote_room(Invited("#ops", "alice", "zed"))
        self.assertEqual(self.room_events(alice), [[Invited("#ops", "alice", "zed")]])
        self.hub.nodes.remote_room(RoomGone("#ops", "closed"))
        self.assertIsNone(rooms.find("#ops"))
        self.assertEqual(self.store.rooms_kept.keys(), kept.keys())  # nothing written for another node's changes

    def test_a_ban_set_on_another_node_silences_a_member_here(self) -> None:
        alice = self.join("alice")
        self.made_elsewhere("#ops", Member("zed", op=True, since=START))
        self.successResultOf(alice.user.join("#ops", None))
        bob, al = Ban("bob!*@*", "zed", START), Ban("al*!*@*", "zed", START + 1)

        def banned(version: int, change: str, *bans: Ban) -> ModeSet:
            """zed's ``change`` (of al*), as his node publishes it: with every ban kept then."""
            return ModeSet("#ops", "zed", ((change, al.mask),), ModesKept("nt", None, None, version, (), bans))

        self.hub.nodes.remote_room(ModeSet("#ops", "zed", (("+b", bob.mask),), ModesKept("nt", None, None, 1, (), (bob,))))
        self.assertEqual(outcome(alice.user.send_room("#ops", "not banned")), (0, (), ()))  # its verdict kept
        self.hub.nodes.remote_room(banned(2, "+b", bob, al))
        self.assertEqual(self.refusal(alice.user.send_room, "#ops", "x"), Refusal.BANNED)
        self.hub.nodes.remote_room(banned(3, "-b", bob))
        self.assertEqual(outcome(alice.user.send_room("#ops", "unbanned")), (0, (), ()))
        self.hub.nodes.remote_room(banned(2, "+b", bob, al))  # heard late (or again): older than what is held
        self.assertEqual(outcome(alice.user.send_room("#ops", "still unbanned")), (0, (), ()))
        self.hub.nodes.remote_room(banned(4, "+b", bob, al))
        self.assertEqual(self.view(alice, "#ops").bans, (bob, al))
        voiced = ModesKept("nt", None, None, 5, (Member("alice", voice=True, since=START, version=5, joined=1),), (bob, al))
        self.hub.nodes.remote_room(ModeSet("#ops", "zed", (("+v", "alice"),), voiced))
        self.assertEqual(outcome(alice.user.send_room("#ops", "voiced")), (0, (), ()))  # zed is online on no node

    def test_an_accounts_sessions_here_are_told_of_its_join_on_another_node(self) -> None:
        """alice's session on another node joins #dev and creates #made: her session here is told, as a
        member's (attack35: told before the join was applied here, so not her)."""
        bob, alice = self.join("bob"), self.join("Carol")
        self.successResultOf(bob.user.join("#dev", None))
        entered = Entered("#dev", Member("Carol", since=START))
        self.hub.nodes.remote_room(entered)
        made = Entered("#made", Member("Carol", op=True, since=START), created=True)
        self.hub.nodes.remote_room(made)
        self.assertEqual(self.room_events(alice, bob), [[entered, made], [entered]])

    def test_a_room_emptied_here_as_a_name_joins_it_on_another_node_is_read_again_whole(self) -> None:
        """alice, #r's last member here, parts it as bob joins it on his node, whose join the store kept
        first: the store keeps the room (+ik, its ban) with bob; this node, hearing bob's join before the
        store's answer to its removal, reads it again; an outsider's JOIN here meanwhile waits for that
        answer, and is refused as before (attack35: made anew with no modes)."""
        alice, mallory = self.join("alice"), self.join("mallory")
        self.successResultOf(alice.user.join("#r", None))
        self.successResultOf(alice.user.mode("#r", [("+i", None), ("+k", "sekrit"), ("+b", "eve!*@*")]))
        bob = Member("bob", since=START + 1, joined=2)
        self.successResultOf(self.store.invite("#r", "bob", True, START))  # alice's
        entered = self.store.enter("#r", Joining("bob", START + 1, "sekrit"), 1000, 50)
        self.assertEqual(self.successResultOf(entered), bob)  # on bob's node
        answer: Deferred[None] = Deferred()
        vacate = self.store.vacate_room

        def held(room: str) -> Deferred[bool]:
            """Made now, answered once the test says."""
            stays = self.successResultOf(vacate(room))
            return answer.addCallback(lambda _: stays)

        self.patch(self.store, "vacate_room", held)
        parted = alice.user.part("#r", "")
        self.assertIsNone(self.hub.rooms.find("#r"))  # as this node sees it, for now
        joining = mallory.user.join("#r", None)
        self.assertNoResult(joining)
        self.hub.nodes.remote_room(Entered("#r", bob))
        view = self.hub.rooms.find("#r")
        assert view is not None
        self.assertEqual((view.modes, view.key, [b.mask for b in view.bans]), ("int", "sekrit", ["eve!*@*"]))
        self.assertEqual(self.names(view), [("bob", False, False, False)])
        answer.callback(None)
        self.successResultOf(parted)
        self.assertEqual(self.refusal(lambda: joining), Refusal.INVITE_ONLY)
        self.assertEqual(list(self.store.rooms_kept["#r"].members), ["bob"])

    def test_a_room_emptied_here_and_kept_by_the_store_is_read_again_before_its_join_is_heard(self) -> None:
        """As above, the store answering first: the room is read again at once, and an outsider's JOIN
        here, before bob's join is heard, is refused (it does not create the room the store keeps)."""
        alice, mallory = self.join("alice"), self.join("mallory")
        self.successResultOf(alice.user.join("#r", None))
        self.successResultOf(alice.user.mode("#r", [("+i", None)]))
        self.successResultOf(self.store.invite("#r", "bob", True, START))  # alice's
        self.successResultOf(self.store.enter("#r", Joining("bob", START + 1), 1000, 50))  # on bob's node
        self.successResultOf(alice.user.part("#r", ""))
        self.assertEqual(self.refusal(mallory.user.join, "#r", None), Refusal.INVITE_ONLY)
        self.assertEqual(list(self.store.rooms_kept["#r"].members), ["bob"])

    def test_a_join_here_of_a_room_emptied_on_another_node_meanwhile(self) -> None:
        """zed, #r's last member, parts it on his node as bob joins it here: bob's join kept first, this
        node reads the room again, as the store has it, and tells the others; kept after the room went, it
        is refused, and nothing is told (attack35: let in, in a room the store no longer had)."""
        bob = self.join("bob")
        made = RoomRecord("#r", START, "zed", modes="i", key="sekrit", members={"zed": Member("zed", op=True)})
        self.successResultOf(self.store.create_room(made, 50))
        self.hub.nodes.remote_room(Entered("#r", Member("zed", op=True), created=True))
        self.hub.nodes.remote_room(ModeSet("#r", "zed", (("+i", None), ("+k", "sekrit"))))
        self.successResultOf(self.store.invite("#r", "bob", True, START))  # zed's node keeps it, then tells
        self.hub.nodes.remote_room(Invited("#r", "bob", "zed"))
        answer: Deferred[None] = Deferred()
        enter = self.store.enter

        def held(*args: Any) -> Deferred[Refusal | Member]:
            """Kept now, answered once the test says."""
            kept = self.successResultOf(enter(*args))
            return answer.addCallback(lambda _: kept)

        self.patch(self.store, "enter", held)
        joined = bob.user.join("#r", "sekrit")
        self.successResultOf(self.store.remove_member("#r", "zed"))  # zed's node: bob is kept
        self.assertTrue(self.successResultOf(self.store.vacate_room("#r")))
        self.hub.nodes.remote_room(Parted("#r", "zed", ""))  # here, it is read again (with bob)
        answer.callback(None)
        view = self.successResultOf(joined)
        self.assertEqual((view.modes, view.key, self.names(view)), ("i", "sekrit", [("bob", True, False, False)]))
        self.assertEqual(self.network.room_changes[-1], Entered("#r", self.store.rooms_kept["#r"].members["bob"]))
        self.successResultOf(bob.user.part("#r", ""))  # the store's room goes, as this node sees it
        self.hub.nodes.remote_room(Entered("#r", Member("zed", op=True), created=True))
        self.hub.nodes.remote_room(Invited("#r", "bob", "zed"))
        told = len(self.network.room_changes)
        self.assertEqual(self.refusal(bob.user.join, "#r", None), Refusal.NO_SUCH_ROOM)  # zed's node had not kept it
        self.assertEqual((len(self.network.room_changes), self.store.rooms_kept), (told, {}))

    def test_a_room_its_last_two_members_leave_at_once_here_and_elsewhere_is_removed_from_the_store(self) -> None:
        """zed leaves #r on his node as alice leaves it here: each node's removal found the other still
        kept; this node, hearing zed leave last, removes it (attack35: Redis kept it, empty, with its key)."""
        alice = self.join("alice")
        self.made_elsewhere("#r", Member("zed", op=True, since=START))
        self.successResultOf(alice.user.join("#r", None))
        self.hub.nodes.remote_room(ModeSet("#r", "zed", (("+k", "sekrit"),)))
        self.successResultOf(self.store.remove_member("#r", "zed"))  # on zed's node: alice is kept
        self.successResultOf(self.store.vacate_room("#r"))
        self.successResultOf(alice.user.part("#r", ""))  # here: zed is, as this node sees it
        self.assertIn("#r", self.store.rooms_kept)
        self.hub.nodes.remote_room(Parted("#r", "zed", ""))
        self.assertEqual((self.hub.rooms.find("#r"), self.store.rooms_kept), (None, {}))

    def test_after_a_reconnection_the_rooms_are_taken_as_the_store_has_them(self) -> None:
        alice, _ = self.join("alice"), self.join("bob")
        self.successResultOf(alice.user.join("#dev", None))
        self.successResultOf(alice.user.join("#gone", None))
        rooms = self.hub.rooms
        # Meanwhile, unheard: zed (another node) joined #dev, #gone was deleted, #ops created.
        dev = RoomRecord("#dev", START, "alice", members={"alice": Member("alice", op=True, since=START)})
        dev.members["zed"] = Member("zed", since=START + 1)
        ops = RoomRecord("#ops", START + 2, "zed", members={"zed": Member("zed", op=True, since=START + 2)})
        changed: list[Event] = []
        self.hub.subscribe(changed.append)
        zed = RemoteUser("zed", "there", "10.0.0.9:5000", "tcp", START)
        self.hub.nodes.resync([UserRecord("zed", START, START)], [zed], [dev, ops], [])
        self.assertEqual([r.name for r in rooms.everything()], ["#dev", "#ops"])
        self.assertEqual([m.name for m in self.view(alice, "#dev").members], ["alice", "zed"])
        self.assertEqual(rooms.rooms_of("zed"), {"#dev", "#ops"})
        self.assertEqual(rooms.rooms_of("alice"), {"#dev"})
        self.assertEqual(
            [e for e in changed if isinstance(e, RoomChanged)],
            [RoomChanged("#dev"), RoomChanged("#gone"), RoomChanged("#ops")],
        )

    def test_a_node_of_several_ends_the_memberships_of_names_online_nowhere_once_it_knows_who_is(self) -> None:
        rooms = self.hub.rooms
        members = {name: Member(name, op=name == "Carol", since=START) for name in ("Carol", "yan", "zed")}
        rooms.load([RoomRecord("#dev", START, "Carol", members={k.lower(): m for k, m in members.items()})])
        view = rooms.find("#dev")
        assert view is not None
        self.assertEqual([m.name for m in view.members], ["Carol", "yan", "zed"])  # online elsewhere, maybe
        self.assertEqual(self.network.room_changes, [])
        zed = RemoteUser("zed", "there", "10.0.0.9:5000", "tcp", START)
        records = [UserRecord("Carol", 1.0, 2.0, protected=True), UserRecord("yan", 3.0, 4.0)]
        records.append(UserRecord("zed", 5.0, 6.0))
        dev = RoomRecord("#dev", START, "Carol", members={k.lower(): m for k, m in members.items()})
        self.hub.nodes.resync(records, [zed], [dev], [])  # once subscribed: who is online where is known
        view = rooms.find("#dev")
        assert view is not None
        self.assertEqual([m.name for m in view.members], ["Carol", "zed"])  # yan is online nowhere
        self.assertEqual(self.network.room_changes, [Parted("#dev", "yan", "disconnected", quit=True)])

    def test_an_unprotected_member_whose_node_died_leaves_its_rooms_on_the_nodes_that_hear_it(self) -> None:
        alice = self.join("alice")
        self.successResultOf(alice.user.join("#dev", None))
        zed = RemoteUser("zed", "there", "10.0.0.9:5000", "tcp", START)
        self.hub.nodes.remote_joined(zed, START, False, False)
        self.hub.nodes.remote_room(Entered("#dev", Member("zed", since=START)))
        self.hub.nodes.remote_left("zed", "there", START + 1)  # its node ended its memberships itself
        self.assertEqual([m.name for m in self.view(alice, "#dev").members], ["alice", "zed"])
        self.hub.nodes.remote_joined(zed, START, False, False)
        self.network.room_changes.clear()
        self.hub.nodes.remote_left("zed", "there", START + 2, dead=True)  # its node died: this one ends them
        parted = Parted("#dev", "zed", "disconnected", quit=True)
        self.assertEqual(self.room_events(alice), [[Entered("#dev", Member("zed", since=START)), parted]])
        self.assertEqual([m.name for m in self.view(alice, "#dev").members], ["alice"])
        self.assertEqual(self.network.room_changes, [parted])

    def test_a_node_of_several_keeps_unprotected_members_at_start(self) -> None:
        """bob may be online on another node: the node he leaves from ends his memberships, not this one."""
        alice = self.join("alice")
        self.successResultOf(alice.user.join("#dev", None))
        rooms = self.hub.rooms
        rooms.load(self.successResultOf(self.store.rooms()))
        self.assertEqual([m.name for m in rooms.everything()[0].members], ["alice"])
        self.assertEqual(list(self.store.rooms_kept["#dev"].members), ["alice"])

    def test_a_mode_change_the_hub_cannot_read_is_refused(self) -> None:
        alice = self.join("alice")
        self.successResultOf(alice.user.join("#dev", None))
        bad = [("+l", "abc"), ("+l", ""), ("+l", "0"), ("+l", None), ("+k", ""), ("+o", None), ("+b", "a b")]
        bad += [("+k", "a,b"), ("+k", "a b")]  # a key every front's JOIN gives
        for change in [*bad, ("+b", "a!b!c"), ("+x", None), ("i", None)]:
            self.assertEqual(self.refusal(alice.user.mode, "#dev", [change]), Refusal.MODE_INVALID, change)
        self.assertEqual(self.store.rooms_kept["#dev"].limit, None)


class TwoNodesTests(SynchronousTestCase):
    """Two nodes' hubs on one store, each hearing the other's room changes when the test passes them on:
    changes made at once on both end alike on each node and in the store."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.store = MemoryStore()
        policy = RoomPolicy(max_per_user=2)
        self.networks = {node: FakeNetwork() for node in "ab"}
        self.hubs = {
            node: Hub(
                self.clock,
                self.store,
                [],
                100,
                network=network,
                history=History(self.clock, self.store, HistoryPolicy()),
                room_policy=policy,
            )
            for node, network in self.networks.items()
        }

    def join(self, node: str, name: str) -> RecordingParticipant:
        participant = RecordingParticipant()
        self.successResultOf(admitted(self.hubs[node], participant, name, f"peer-{node}-{name}"))
        return participant

    def hear(self, node: str) -> None:
        """The other node hears what ``node`` published so far (in order)."""
        other = "b" if node == "a" else "a"
        changes, self.networks[node].room_changes[:] = list(self.networks[node].room_changes), []
        for event in changes:
            self.hubs[other].nodes.remote_room(event)

    def room(self, node: str) -> tuple[str, str | None, int | None, list[tuple[str, bool, bool]]]:
        view = self.hubs[node].rooms.find("#r")
        assert view is not None
        return view.modes, view.key, view.limit, [(m.name, m.op, m.voice) for m in view.members]

    def kept(self) -> tuple[str, str | None, int | None, list[tuple[str, bool, bool]]]:
        record = self.store.rooms_kept["#r"]
        members = [(m.name, m.op, m.voice) for _, m in sorted(record.members.items())]
        return record.modes, record.key, record.limit, members

    def two_operators(self) -> tuple[RecordingParticipant, RecordingParticipant, RecordingParticipant]:
        """alice (node a) made #r, bob and carol (node b) joined it, bob is an operator; all heard."""
        alice, bob, carol = self.join("a", "alice"), self.join("b", "bob"), self.join("b", "carol")
        self.successResultOf(alice.user.join("#r", None))
        self.hear("a")
        self.successResultOf(bob.user.join("#r", None))
        self.successResultOf(carol.user.join("#r", None))
        self.hear("b")
        self.successResultOf(alice.user.mode("#r", [("+o", "bob")]))
        self.hear("a")
        return alice, bob, carol

    def test_the_same_settings_changed_at_once_on_two_nodes_end_alike(self) -> None:
        """Attack 32: +k a on one node and +k b on the other left each node with the other's key."""
        alice, bob, carol = self.two_operators()
        self.successResultOf(alice.user.mode("#r", [("+k", "a"), ("+l", "5"), ("+i", None), ("+o", "carol")]))
        self.successResultOf(alice.user.mode("#r", [("-i", None), ("-o", "carol")]))
        self.successResultOf(bob.user.mode("#r", [("+k", "b"), ("+l", "9"), ("+i", None), ("+o", "carol")]))
        self.hear("a")
        self.hear("b")
        members = [("alice", True, False), ("bob", True, False), ("carol", True, False)]
        self.assertEqual(self.kept(), ("int", "b", 9, members))
        self.assertEqual(self.room("a"), self.kept())
        self.assertEqual(self.room("b"), self.kept())

    def test_bans_set_at_once_on_two_nodes_stop_at_the_most_a_room_holds(self) -> None:
        """Each node sees room for one more ban: the store, which has both, keeps the first and refuses the
        second (BAN_LIST_FULL, nothing of it written); the node that asked it reads the room and takes its
        bans as kept, its members told what that changes."""
        alice, bob, carol = self.two_operators()
        self.successResultOf(alice.user.mode("#r", [("+b", f"m{i:02d}") for i in range(ROOM_BANS_MAX - 1)]))
        self.hear("a")
        carol.events.clear()
        self.successResultOf(alice.user.mode("#r", [("+b", "first")]))  # b not told yet
        refused = self.failureResultOf(bob.user.mode("#r", [("+b", "second"), ("+m", None)]), Refused)
        self.assertEqual(refused.value.refusal, Refusal.BAN_LIST_FULL)  # type: ignore[attr-defined]
        undone = (("-m", None), ("-b", "second!*@*"), ("+b", "first!*@*"))
        told = [ModeSet("#r", "bob", (("+b", "second!*@*"), ("+m", None))), ModeSet("#r", "bob", undone)]
        self.assertEqual(carol.room_events(), told)
        kept = oldest_first(self.store.rooms_kept["#r"].bans.values())
        masks = {ban.mask for ban in kept}
        self.assertEqual((len(kept), "first!*@*" in masks, "second!*@*" in masks), (ROOM_BANS_MAX, True, False))
        self.hear("a")
        self.assertEqual((set(self.bans("a")), set(self.bans("b"))), (set(kept), set(kept)))
        self.assertEqual((self.room("a"), self.room("b")), (self.kept(), self.kept()))

    def test_changes_heard_in_either_order_end_alike_and_the_members_are_told_what_changed(self) -> None:
        alice, bob, carol = self.two_operators()
        bob.events.clear()
        carol.events.clear()
        self.successResultOf(bob.user.mode("#r", [("+k", "b"), ("+m", None)]))
        self.successResultOf(alice.user.mode("#r", [("+k", "a"), ("+s", None)]))
        self.hear("a")  # b hears the later change first
        self.hear("b")  # and a the earlier one after its own: passed over
        self.assertEqual(self.kept(), ("mnst", "a", None, [("alice", True, False), ("bob", True, False), ("carol", False, False)]))
        self.assertEqual(self.room("a"), self.kept())
        self.assertEqual(self.room("b"), self.kept())
        told = ModeSet("#r", "alice", (("+s", None), ("+k", "a")))
        self.assertEqual(self.room_events(bob, carol), [[told], [ModeSet("#r", "bob", (("+k", "b"), ("+m", None))), told]])
        # a wrote its own after b's, unheard yet: it takes b's with its own (told as alice's)
        self.assertEqual(self.room_events(alice), [[ModeSet("#r", "alice", (("+m", None),))]])

    def bans(self, node: str) -> tuple[Ban, ...]:
        view = self.hubs[node].rooms.find("#r")
        assert view is not None
        return view.bans

    def banned(self) -> tuple[RecordingParticipant, RecordingParticipant]:
        """As :meth:`two_operators`, with eve!*@* banned by alice and heard on b: alice and bob."""
        alice, bob, _ = self.two_operators()
        self.successResultOf(alice.user.mode("#r", [("+b", "eve")]))
        self.hear("a")
        return alice, bob

    def test_a_ban_lifted_on_one_node_as_it_is_set_again_on_the_other_ends_as_the_store_wrote_last(self) -> None:
        """alice lifts eve's ban on a, then bob lifts and sets it again on b, before either hears the other:
        each node ended with the other's change (a banning eve, b not); now both end as the store has it,
        banned by bob, in whichever order they hear each other."""
        alice, bob = self.banned()
        self.successResultOf(alice.user.mode("#r", [("-b", "eve")]))
        self.clock.advance(1)
        self.successResultOf(bob.user.mode("#r", [("-b", "eve"), ("+b", "eve")]))
        self.hear("b")
        self.hear("a")
        kept = (Ban("eve!*@*", "bob", START + 1),)
        self.assertEqual(oldest_first(self.store.rooms_kept["#r"].bans.values()), kept)
        self.assertEqual((self.bans("a"), self.bans("b")), (kept, kept))

    def test_a_ban_set_again_on_one_node_as_it_is_lifted_on_the_other_ends_as_the_store_wrote_last(self) -> None:
        """As above, bob's change written first: both end with no ban, as alice's came last."""
        alice, bob = self.banned()
        self.successResultOf(bob.user.mode("#r", [("-b", "eve"), ("+b", "eve")]))
        self.successResultOf(alice.user.mode("#r", [("-b", "eve")]))
        self.hear("a")
        self.hear("b")
        self.assertEqual((self.store.rooms_kept["#r"].bans, self.bans("a"), self.bans("b")), ({}, (), ()))

    def test_a_room_created_at_once_on_two_nodes_is_the_first_kept_and_the_other_creator_joins_it(self) -> None:
        """alice creates #r on a, kept first; bob's creation of it on b, before b hears of alice's, finds it
        kept: b reads it and bob joins it as a plain member; each node and the store end alike, and alice is
        told of bob (attack35: the store made bob an operator of it)."""
        alice, bob = self.join("a", "alice"), self.join("b", "bob")
        self.successResultOf(alice.user.join("#r", None))
        view = self.successResultOf(bob.user.join("#r", None))
        self.assertEqual([(m.name, m.op) for m in view.members], [("alice", True), ("bob", False)])
        self.assertEqual(self.networks["b"].room_changes, [Entered("#r", Member("bob", since=START, joined=1))])
        self.hear("a")
        self.hear("b")
        members = [("alice", True, False), ("bob", False, False)]
        self.assertEqual(self.kept(), ("nt", None, None, members))
        self.assertEqual((self.room("a"), self.room("b")), (self.kept(), self.kept()))
        self.assertEqual([view.founder for view in (self.hubs[n].rooms.find("#r") for n in "ab") if view], ["alice"] * 2)
        self.assertEqual([e for e in alice.room_events() if isinstance(e, Entered)], [Entered("#r", Member("bob", since=START, joined=1))])

    def test_a_join_heard_while_this_nodes_creation_of_the_room_is_answered_is_kept(self) -> None:
        """bob's creation of #r on b is kept first; alice's on a finds it kept and joins it; b hears her join
        before its own creation's answer, and reads the room, answered after it: b holds #r by then, and
        takes her join into it, telling bob (it read the room again and kept its own, without alice)."""
        alice, bob = self.join("a", "alice"), self.join("b", "bob")
        create, room = self.store.create_room, self.store.room
        created: Deferred[None] = Deferred()
        read: Deferred[None] = Deferred()

        def later(call: Any, answer: Deferred[None]) -> Any:
            """``call`` made at once, answered once ``answer`` fires."""

            def made(*args: Any) -> Deferred[Any]:
                kept = self.successResultOf(call(*args))
                return answer.addCallback(lambda _: kept)

            return made

        self.patch(self.store, "create_room", later(create, created))
        joined = bob.user.join("#r", None)
        self.patch(self.store, "create_room", create)
        self.successResultOf(alice.user.join("#r", None))
        self.patch(self.store, "room", later(room, read))
        self.hear("a")
        created.callback(None)
        self.assertEqual([m.name for m in self.successResultOf(joined).members], ["bob"])
        read.callback(None)
        self.assertEqual(self.room("b"), ("nt", None, None, [("alice", False, False), ("bob", True, False)]))
        self.assertEqual([e for e in bob.room_events() if isinstance(e, Entered)], [Entered("#r", Member("alice", since=START, joined=1))])

    def test_a_join_of_a_room_kept_but_not_heard_of_here_is_checked_as_any_join(self) -> None:
        """alice made #r +ik on a, unheard on b: mallory's JOIN on b, which does not hold it, finds it kept;
        b reads it and refuses her (not invited), writes and tells nothing; with an invitation and the key
        she joins it, no operator (attack35: made an operator of the kept +ik room)."""
        alice, mallory = self.join("a", "alice"), self.join("b", "mallory")
        self.successResultOf(alice.user.join("#r", None))
        self.successResultOf(alice.user.mode("#r", [("+i", None), ("+k", "sekrit")]))
        self.assertEqual(self.failureResultOf(mallory.user.join("#r", "sekrit"), Refused).value.refusal, Refusal.INVITE_ONLY)
        self.assertEqual((self.kept(), self.networks["b"].room_changes), (("int", "sekrit", None, [("alice", True, False)]), []))
        self.assertEqual(self.room("b"), self.kept())  # read as the store has it
        self.hubs["a"].nodes.remote_joined(RemoteUser("mallory", "b", "10.0.0.9:5000", "tcp", START), START, False, False)
        self.successResultOf(alice.user.invite("#r", "mallory"))
        self.hear("a")
        self.assertEqual(self.failureResultOf(mallory.user.join("#r", None), Refused).value.refusal, Refusal.BAD_KEY)
        self.successResultOf(mallory.user.join("#r", "sekrit"))
        self.assertEqual(self.kept(), ("int", "sekrit", None, [("alice", True, False), ("mallory", False, False)]))

    def room_events(self, *participants: RecordingParticipant) -> list[list[object]]:
        return [[e for e in p.room_events() if isinstance(e, ModeSet)] for p in participants]

    def rejoined(self) -> tuple[RecordingParticipant, RecordingParticipant]:
        """alice (node a) made #r, bob (node b) joined it, both heard: alice and bob."""
        alice, bob = self.join("a", "alice"), self.join("b", "bob")
        self.successResultOf(alice.user.join("#r", None))
        self.hear("a")
        self.successResultOf(bob.user.join("#r", None))
        self.hear("b")
        return alice, bob

    def part_and_join(self, bob: RecordingParticipant) -> None:
        """bob parts #r and joins it again on b (its new membership: no status)."""
        self.successResultOf(bob.user.part("#r", ""))
        self.successResultOf(bob.user.join("#r", None))

    def alike(self) -> None:
        """The store and both nodes hold bob as a plain member of #r."""
        members = [("alice", True, False), ("bob", False, False)]
        self.assertEqual(self.kept(), ("nt", None, None, members))
        self.assertEqual((self.room("a"), self.room("b")), (self.kept(), self.kept()))

    def test_an_op_asked_before_a_part_and_rejoin_but_written_after_does_not_land_on_the_new_membership(self) -> None:
        """alice's +o bob (a) reaches the store after bob parted and joined again (b): the store made the
        new member an operator, and both nodes followed it; now the change passes over it."""
        alice, bob = self.rejoined()
        writes: list[Callable[[], object]] = []
        set_modes = self.store.set_modes

        def later(*args: Any) -> Deferred[Any]:
            answer: Deferred[Any] = Deferred()
            writes.append(lambda: set_modes(*args).chainDeferred(answer))
            return answer

        self.patch(self.store, "set_modes", later)
        opped = alice.user.mode("#r", [("+o", "bob")])
        self.part_and_join(bob)
        self.hear("b")
        writes.pop()()
        self.successResultOf(opped)
        self.hear("a")
        self.alike()

    def test_an_op_written_before_a_part_and_rejoin_but_heard_after_it_is_passed_over(self) -> None:
        """alice's +o bob (a) is kept before bob parts and joins again (b), which hears of it after: b took
        it for the new member, which the store and a hold as plain."""
        alice, bob = self.rejoined()
        self.successResultOf(alice.user.mode("#r", [("+o", "bob")]))
        self.part_and_join(bob)
        self.hear("a")
        self.hear("b")
        self.alike()

    def test_an_op_answered_after_its_node_heard_the_part_and_rejoin_is_passed_over(self) -> None:
        """alice's +o bob (a) is kept before bob parts and joins again (b); a hears both before the store's
        answer, which names the old membership: a took it for the new member."""
        alice, bob = self.rejoined()
        answers = held_modes(self.store)
        opped = alice.user.mode("#r", [("+o", "bob")])
        self.part_and_join(bob)
        self.hear("b")
        answers.pop()()
        self.successResultOf(opped)
        self.hear("a")
        self.alike()

    def test_rooms_created_at_once_by_one_name_on_two_nodes_count_against_its_limit(self) -> None:
        """--max-rooms-per-user 2: alice, on both nodes, has #a; she creates #b on a and #c on b at once."""
        here, there = self.join("a", "alice"), self.join("b", "alice")
        self.successResultOf(here.user.join("#a", None))
        self.hear("a")
        self.successResultOf(here.user.join("#b", None))
        failure = self.failureResultOf(there.user.join("#c", None), Refused)
        self.assertEqual(failure.value.refusal, Refusal.TOO_MANY_ROOMS)
        self.assertEqual(sorted(self.store.rooms_kept), ["#a", "#b"])
        self.assertIsNone(self.hubs["b"].rooms.find("#c"))
        self.assertEqual(self.networks["b"].room_changes, [])  # nothing told of #c
        self.hear("a")
        self.assertEqual(self.hubs["b"].rooms.rooms_of("alice"), {"#a", "#b"})


class _Counted(dict[str, RoomRecord]):
    """The hub's rooms, counting the records read."""

    read = 0

    def __getitem__(self, key: str) -> RoomRecord:
        self.read += 1
        return super().__getitem__(key)

    def values(self) -> Any:
        for value in super().values():
            self.read += 1
            yield value


class CostTests(RoomsTestCase):
    """What a request reads of many rooms, counted in records (not timed)."""

    policy = RoomPolicy(max_per_user=1000)

    def test_rooms_mine_reads_the_askers_rooms_only(self) -> None:
        self.hub = self.make_hub([])
        owner, bob = self.join("owner", "10.0.0.1"), self.join("bob")
        self.hub.rooms._creations = lambda host: 0.0  # no creation limit here
        for n in range(1000):
            self.successResultOf(owner.user.join(f"#r{n}", None))
        self.successResultOf(bob.user.join("#r7", None))
        self.successResultOf(bob.user.join("#r500", None))
        counted = self.hub.rooms._rooms = _Counted(self.hub.rooms._rooms)
        self.assertEqual([r.name for r in self.successResultOf(bob.user.rooms(True))], ["#r500", "#r7"])
        self.assertEqual(counted.read, 2)  # every room's membership looked at: 1000
        self.assertEqual(len(self.successResultOf(bob.user.rooms(False))), 1000)


class StartTests(RoomsTestCase):
    def test_the_log_and_the_rooms_are_taken_together_so_the_first_login_has_its_rooms(self) -> None:
        dev = RoomRecord("#Dev", 1.0, "Carol", members={"carol": Member("Carol", op=True, since=1.0)})
        self.hub = self.make_hub(None)
        refused = RecordingParticipant()
        with self.assertRaises(Refused):  # nothing read: nobody registers (UNAVAILABLE)
            self.hub.register(refused, "Carol", "peer")
        self.hub.load([UserRecord("Carol", 1.0, 2.0, protected=True)], [dev])
        carol = self.join("Carol")
        self.assertEqual([r.name for r in self.successResultOf(carol.user.rooms(True))], ["#Dev"])
        self.assertEqual(self.names(self.view(carol, "#dev")), [("Carol", True, True, False)])
