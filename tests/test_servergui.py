"""The server's window: its presenter with no display, and the real window under Xvfb."""

from __future__ import annotations

import tkinter
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.auth.accounts import Accounts
from msgsvc.hub.contracts import HistoryPolicy, RemoteUser, RoomGone, UserRecord
from msgsvc.hub.core import Hub
from msgsvc.hub.history import History
from msgsvc.hub.rooms import RoomPolicy
from msgsvc.servergui.presenter import COLUMNS, ServerPresenter, removal_question
from msgsvc.servergui.rooms import BANS_LIFTED_BY, REDRAW, RoomRows, deletion_question
from msgsvc.servergui.times import duration, stamp
from msgsvc.servergui.service import ServerWindowService
from msgsvc.servergui.window import ServerWindow

from .support.display import collect_windows, need_display
from .support.fakes import FakeHashing, FakeNetwork, MemoryStore, RecordingParticipant
from .support.harness import PASSWORD, admitted
from .support.loopback import LoopbackServer


class RecordingServerView:
    def __init__(self) -> None:
        self.header = ""
        self.rows: list[tuple[str, tuple[str, ...]]] = []
        self.events: list[str] = []
        self.full_redraws = 0
        self.sessions: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self.rooms: list[RoomRows] = []
        self.room_redraws = 0
        self.room_rows_drawn = 0  # rows handed to the Rooms tab: rooms', members' and bans'

    def show_header(self, text: str) -> None:
        self.header = text

    def show_rows(self, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        self.full_redraws += 1
        self.rows = list(rows)

    def put_row(self, row_id: str, cells: tuple[str, ...], index: int) -> None:
        self.rows = [r for r in self.rows if r[0] != row_id]
        self.rows.insert(index, (row_id, cells))

    def set_cell(self, row_id: str, column: str, text: str) -> None:
        rows = self.sessions[row_id.partition("#")[0]] if "#" in row_id else self.rows
        index = next(i for i, (rid, _) in enumerate(rows) if rid == row_id)
        cells = list(rows[index][1])
        cells[COLUMNS.index(column)] = text
        rows[index] = (row_id, tuple(cells))

    def show_sessions(self, row_id: str, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        self.sessions[row_id] = list(rows)

    def delete_row(self, row_id: str) -> None:
        self.rows = [r for r in self.rows if r[0] != row_id]

    def add_event(self, text: str, keep: int) -> None:
        self.events = (self.events + [text])[-keep:]

    def show_rooms(self, rooms: list[RoomRows]) -> None:
        self.room_redraws += 1
        self.room_rows_drawn += sum(1 + len(members) + len(bans) for _, members, bans in rooms)
        self.rooms = list(rooms)

    def put_room(self, rows: RoomRows, index: int) -> None:
        self.room_rows_drawn += 1 + len(rows[1]) + len(rows[2])
        self.delete_room(rows[0][0])
        self.rooms.insert(index, rows)

    def delete_room(self, row_id: str) -> None:
        self.rooms = [r for r in self.rooms if r[0][0] != row_id]

    def room(self, name: str) -> tuple[str, ...]:
        return next(cells for (_, cells), _, _ in self.rooms if cells[0] == name)

    def members(self, name: str) -> list[tuple[str, ...]]:
        return next([cells for _, cells in members] for (_, room), members, _ in self.rooms if room[0] == name)

    def bans(self, name: str) -> list[tuple[str, ...]]:
        return next([cells for _, cells in bans] for (_, room), _, bans in self.rooms if room[0] == name)

    def names(self) -> list[str]:
        return [cells[0] for _, cells in self.rows]

    def row(self, name: str) -> tuple[str, ...]:
        return next(cells for _, cells in self.rows if cells[0] == name)


def in_rooms(test: SynchronousTestCase, hub: Hub, name: str, *rooms: str) -> RecordingParticipant:
    """``name`` logged in to ``hub``, and a member of ``rooms`` (each joined, or created)."""
    participant = RecordingParticipant()
    test.successResultOf(admitted(hub, participant, name, "10.0.0.1:5000"))
    for room in rooms:
        test.successResultOf(participant.user.join(room, None))
    return participant


def open_window(
    test: SynchronousTestCase, hub: Hub, accounts: Accounts, clock: IReactorTime
) -> tuple[ServerWindow, ServerPresenter]:
    """The server's window on ``hub``, started; closed when ``test`` ends."""
    window = ServerWindow(tkinter.Tk())
    presenter = ServerPresenter(window, hub, accounts, clock, ["tcp:0"])
    window.bind(presenter)
    presenter.start()

    def close() -> None:
        presenter.stop()
        window.root.destroy()
        collect_windows([])

    test.addCleanup(close)
    return window, presenter


class ServerPresenterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        records = [UserRecord("Zoe", 1_600_000_000, 1_650_000_000, protected=True)]
        self.store = MemoryStore(records)
        self.store.hashes["zoe"] = "fake$" + PASSWORD
        self.hub = Hub(self.clock, self.store, records, max_clients=10)
        accounts = Accounts(self.hub, self.store, FakeHashing(), self.clock, require_password=False)
        self.view = RecordingServerView()
        self.presenter = ServerPresenter(
            self.view, self.hub, accounts, self.clock, ["tcp:8123"], keep_events=5
        )
        self.presenter.start()
        self.addCleanup(self.presenter.stop)

    def join(self, name: str, peer: str = "10.0.0.1:5000") -> RecordingParticipant:
        participant = RecordingParticipant()
        self.successResultOf(admitted(self.hub, participant, name, peer))
        return participant

    def test_start(self) -> None:
        self.assertEqual(self.view.names(), ["Zoe"])
        self.assertEqual(self.view.row("Zoe")[1], "○ offline")
        self.assertEqual(
            self.view.header, "Listening on tcp:8123   ·   0 online   ·   1 names in the log   ·   up 0s"
        )

    def test_join_and_leave_update_one_row_each(self) -> None:
        bob = self.join("bob", "10.0.0.2:4000")
        self.join("alice")
        self.assertEqual(self.view.names(), ["alice", "bob", "Zoe"])
        self.assertEqual(self.view.row("bob")[1], "● online")
        self.assertEqual(self.view.row("bob")[2], "tcp")
        self.assertEqual(self.view.row("bob")[3], "")  # no node: a server alone
        self.assertNotIn("node", self.presenter.columns)  # and no Node column shown
        self.assertEqual(self.view.row("bob")[7:], ("now", "10.0.0.2:4000", "0s", "1"))
        self.assertIn("2 online", self.view.header)
        self.clock.advance(65)
        bob.user.log_out()
        self.assertEqual(self.view.row("bob")[1], "○ offline")
        self.assertEqual(self.view.row("bob")[8:], ("", "", ""))
        self.assertEqual(self.view.row("bob")[2], "")  # no front while offline
        self.assertEqual(self.view.full_redraws, 1)
        self.assertTrue(self.view.events[-1].endswith("bob left (10.0.0.2:4000)"), self.view.events)

    def test_clocks_tick(self) -> None:
        self.join("bob")
        self.clock.advance(125)
        self.assertEqual(self.view.row("bob")[9], "2m 05s")
        self.assertIn("up 2m 05s", self.view.header)

    def test_the_history_size_is_shown_with_a_history(self) -> None:
        hub = Hub(self.clock, self.store, [], 10, history=History(self.clock, self.store, HistoryPolicy()))
        accounts = Accounts(hub, self.store, FakeHashing(), self.clock, require_password=False)
        view = RecordingServerView()
        presenter = ServerPresenter(view, hub, accounts, self.clock, ["tcp:8123"])
        presenter.start()
        self.addCleanup(presenter.stop)
        alice, bob = RecordingParticipant(), RecordingParticipant()
        for participant, name in ((alice, "alice"), (bob, "bob")):
            self.successResultOf(admitted(hub, participant, name, "peer"))
        self.assertIn("names in the log   ·   0 messages in the history   ·   up 0s", view.header)
        hub.set_protected("alice", True)  # a direct conversation is kept for a protected participant
        alice.user.send(["bob"], "one")
        alice.user.broadcast("two")
        self.clock.advance(1)  # read at this tick, shown at the next
        self.assertIn("0 messages in the history", view.header)
        self.clock.advance(1)
        self.assertIn("names in the log   ·   2 messages in the history   ·   up 2s", view.header)
        self.assertNotIn("history", self.view.header)  # a server that keeps none

    def test_sort(self) -> None:
        self.join("bob")
        self.join("amy")
        self.presenter.sort("state")
        self.assertEqual(self.view.names(), ["amy", "bob", "Zoe"])
        self.presenter.sort("state")
        self.assertEqual(self.view.names(), ["Zoe", "bob", "amy"])
        self.join("carl")
        self.assertEqual(self.view.names(), ["Zoe", "carl", "bob", "amy"])
        self.presenter.sort("name")
        self.assertEqual(self.view.names(), ["amy", "bob", "carl", "Zoe"])

    def test_kick_and_notice(self) -> None:
        bob = self.join("bob")
        self.assertTrue(self.presenter.kick("bob", " spam "))
        self.assertEqual(bob.events, [("kicked", "spam")])
        self.assertTrue(self.view.events[-1].endswith("operator disconnected bob: spam"))
        self.assertFalse(self.presenter.kick("Zoe", ""))
        self.assertTrue(self.view.events[-1].endswith("Zoe is not online"))
        self.assertFalse(self.presenter.kick("", ""))
        self.assertTrue(self.view.events[-1].endswith("pick an online user to disconnect"))
        self.assertFalse(self.presenter.notice("   "))
        self.assertTrue(self.presenter.notice("restart at noon"))
        self.assertEqual(bob.events[-1], ("notice", "restart at noon"))

    def test_each_session_of_a_user_with_several_and_disconnecting_one_or_all(self) -> None:
        sessions = []
        for peer, front in [("10.0.0.1:5000", "tcp"), ("10.0.0.9:6000", "web"), ("10.0.0.7:7000", "web")]:
            participant = RecordingParticipant()
            participant.front = front  # type: ignore[misc]
            participant.user = self.hub.register(participant, "zoe", peer, attach=True)
            self.successResultOf(self.hub.admit(participant.user))
            sessions.append(participant)
            self.clock.advance(60)
        self.assertEqual(self.view.row("Zoe")[2], "tcp, web")
        self.assertEqual(self.view.row("Zoe")[COLUMNS.index("sessions")], "3")
        self.assertEqual(self.presenter.columns[:3], ("name", "state", "sessions"))
        under = self.view.sessions["zoe"]
        self.assertEqual([cells[COLUMNS.index("address")] for _, cells in under], ["10.0.0.1:5000", "10.0.0.9:6000", "10.0.0.7:7000"])
        self.assertEqual([cells[2] for _, cells in under], ["tcp", "web", "web"])
        self.assertEqual([cells[COLUMNS.index("connected")] for _, cells in under], ["3m 00s", "2m 00s", "1m 00s"])
        self.assertTrue(self.view.events[-1].endswith("Zoe opened another session from 10.0.0.7:7000 (web): 3 sessions"))
        self.clock.advance(60)  # the clocks of the sessions tick too
        self.assertEqual([cells[COLUMNS.index("connected")] for _, cells in self.view.sessions["zoe"]], ["4m 00s", "3m 00s", "2m 00s"])

        row_id = under[1][0]
        self.assertTrue(self.presenter.kick_row("Zoe", row_id, " lost phone "))
        self.assertEqual(sessions[1].events, [("kicked", "lost phone")])
        sessions[1].user.log_out()
        self.assertEqual(self.view.row("Zoe")[COLUMNS.index("sessions")], "2")
        self.assertEqual(len(self.view.sessions["zoe"]), 2)
        self.assertFalse(self.presenter.kick_row("Zoe", row_id, "again"))
        self.assertTrue(self.view.events[-1].endswith("that session of Zoe is no longer online"))
        sessions[2].user.log_out()
        self.assertEqual(self.view.sessions["zoe"], [])  # one session: its row says it all
        self.assertEqual(self.view.row("Zoe")[COLUMNS.index("address")], "10.0.0.1:5000")
        self.assertTrue(self.presenter.kick_row("Zoe", "zoe", "all"))
        self.assertEqual(sessions[0].events, [("kicked", "all")])

    def test_the_sessions_of_another_node_are_shown_and_disconnected_there(self) -> None:
        zoe = RecordingParticipant()
        zoe.user = self.hub.register(zoe, "zoe", "10.0.0.1:5000", attach=True)
        self.successResultOf(self.hub.admit(zoe.user))
        self.hub.nodes.remote_joined(RemoteUser("Zoe", "there", "10.0.0.2:8000", "irc", self.clock.seconds()), 1.0, True, False)
        self.assertEqual(self.view.row("Zoe")[COLUMNS.index("sessions")], "2")
        [(here, _), (there, cells)] = self.view.sessions["zoe"]
        self.assertEqual((there, cells[2], cells[COLUMNS.index("node")]), ("zoe#@there", "irc", "there"))
        self.assertFalse(self.presenter.kick_row("Zoe", there, "lost laptop"))
        self.assertTrue(self.view.events[-1].endswith("that session of Zoe is on node there: disconnect it there"))
        self.assertEqual(zoe.events, [])
        self.hub.nodes.remote_left("zoe", "there", self.clock.seconds())
        self.assertEqual(self.view.sessions["zoe"], [])  # one session left: its row says it all

    def test_protected_names_and_removing_a_password(self) -> None:
        self.assertEqual(self.view.row("Zoe")[4], "protected")
        zoe = self.join("Zoe")
        self.assertFalse(self.presenter.reset("Zoe", "  "))
        self.assertTrue(self.view.events[-1].endswith("give a reason to remove the password of Zoe"))
        self.assertFalse(self.presenter.reset("", "why"))
        self.assertTrue(self.view.events[-1].endswith("pick a protected user to remove its password"))
        self.assertTrue(self.presenter.reset("Zoe", " forgot it "))
        self.assertEqual(self.view.row("Zoe")[4], "")
        self.assertTrue(self.view.events[-1].endswith("Zoe no longer protected: forgot it"))
        self.assertEqual(zoe.events, [("dropped", "the operator removed your name's password: forgot it")])
        self.assertNotIn("zoe", self.store.hashes)
        self.presenter.reset("Zoe", "again")
        self.assertTrue(self.view.events[-1].endswith("Zoe is not protected"))

    def test_removing_offline_names_from_the_log(self) -> None:
        bob = self.join("bob")
        self.join("amy")
        bob.user.log_out()
        self.assertFalse(self.presenter.remove([], "spam"))
        self.assertTrue(self.view.events[-1].endswith("pick the offline names to remove from the log"))
        self.assertFalse(self.presenter.remove(["bob"], " "))
        self.assertTrue(self.view.events[-1].endswith("give a reason to remove bob from the log"))
        self.assertTrue(self.presenter.remove(["bob", "Zoe", "amy", "ghost"], "made by a script"))
        self.assertEqual(self.view.names(), ["amy"])
        self.assertIn("1 names in the log", self.view.header)
        ends = [e.split("  ", 1)[1] for e in self.view.events[-4:]]
        self.assertEqual(
            ends,
            [
                "bob removed from the log: made by a script",
                "Zoe removed from the log: made by a script",
                "could not remove amy: amy is online: disconnect it first",
                "ghost is not in the log",
            ],
        )
        self.assertNotIn("zoe", self.store.hashes)

    def test_the_waiting_column_follows_the_queue(self) -> None:
        self.assertEqual(self.view.row("Zoe")[5], "")  # nothing waits: an empty cell
        bob = self.join("bob")
        for text in ("one", "two"):
            self.successResultOf(bob.user.send(["Zoe"], text))  # type: ignore[arg-type]
        self.assertEqual(self.view.row("Zoe")[5], "2")

    def test_event_pane_is_bounded(self) -> None:
        for i in range(10):
            self.presenter.kick(f"ghost{i}", "")
        self.assertEqual(len(self.view.events), 5)
        self.assertTrue(self.view.events[-1].endswith("ghost9 is not online"))

    def test_stop(self) -> None:
        self.presenter.stop()
        self.join("late")
        self.assertNotIn("late", self.view.names())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_removal_question_names_at_most_ten(self) -> None:
        """Thousands of spam names selected make a question of one line, not a dialog taller than the screen."""
        question = removal_question([f"spam{n}" for n in range(5000)])
        self.assertTrue(question.startswith("Remove spam0, spam1, spam2, spam3, spam4, spam5, spam6, spam7, "))
        self.assertIn("spam9 and 4990 more from the username log", question)
        self.assertLess(len(question), 300)

    def test_duration(self) -> None:
        self.assertEqual(
            [duration(s) for s in (0, 59, 60, 3599, 3600, 7322)],
            ["0s", "59s", "1m 00s", "59m 59s", "1h 00m", "2h 02m"],
        )


class RoomsPresenterTests(SynchronousTestCase):
    """The Rooms view on a real hub keeping rooms: each room, its members, modes and topic; the operator
    deletes a room and removes a member."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        records = [UserRecord("Zoe", 1_600_000_000, 1_650_000_000, protected=True)]
        self.store = MemoryStore(records)
        self.store.hashes["zoe"] = "fake$" + PASSWORD
        self.hub = Hub(self.clock, self.store, records, max_clients=10)
        accounts = Accounts(self.hub, self.store, FakeHashing(), self.clock, require_password=False)
        self.view = RecordingServerView()
        self.presenter = ServerPresenter(self.view, self.hub, accounts, self.clock, ["tcp:8123"])
        self.presenter.start()
        self.addCleanup(self.presenter.stop)

    def join(self, name: str, *rooms: str) -> RecordingParticipant:
        return in_rooms(self, self.hub, name, *rooms)

    def said(self) -> list[str]:
        return [e.split("  ", 1)[1] for e in self.view.events]

    def redrawn(self) -> None:
        """The changes so far are drawn (each changed room once)."""
        self.clock.advance(REDRAW)

    def test_each_room_with_its_members_marks_operators_modes_and_topic(self) -> None:
        self.assertEqual(self.view.rooms, [])
        alice = self.join("alice", "#Dev")
        bob = self.join("bob", "#dev")
        zoe = self.join("Zoe", "#dev")
        self.successResultOf(alice.user.topic("#dev", "standup at 10"))
        self.successResultOf(alice.user.mode("#dev", [("+k", "s3cret"), ("+l", "20"), ("+i", None)]))
        self.assertEqual(self.view.rooms, [])  # not yet: redrawn once for all these changes
        self.redrawn()
        self.assertEqual(
            self.view.room("#Dev"),
            ("#Dev", "3 (3 online)", "+iklnt key=s3cret limit=20", "standup at 10  (set by alice)", "alice",
             stamp(1_700_000_000)),
        )
        self.assertEqual(
            self.view.members("#Dev"),
            [("alice", "● online", "operator", "", "", ""), ("bob", "● online", "", "", "", ""),
             ("Zoe", "● online", "", "", "", "")],
        )
        zoe.user.log_out()  # protected: still a member, offline
        self.redrawn()
        self.assertEqual(self.view.members("#Dev")[2][:2], ("Zoe", "○ offline"))
        bob.user.log_out()  # unprotected: its membership ends with its last session
        self.redrawn()
        self.assertEqual([m[0] for m in self.view.members("#Dev")], ["alice", "Zoe"])
        self.assertEqual(self.view.room("#Dev")[1], "2 (1 online)")
        self.join("Zoe")  # back: its mark follows
        self.redrawn()
        self.assertEqual(self.view.members("#Dev")[1][:2], ("Zoe", "● online"))
        self.join("carl", "#ops", "#apps")
        self.redrawn()
        self.assertEqual([rows[0][0] for rows in self.view.rooms], ["#apps", "#dev", "#ops"])  # by name
        self.assertEqual(self.view.room_redraws, 1)  # each change redraws its own room only

    def test_the_operator_deletes_a_room_and_its_members_are_told(self) -> None:
        alice = self.join("alice", "#dev")
        self.join("bob", "#dev", "#ops")
        self.assertFalse(self.presenter.rooms.delete("", "spam"))
        self.assertFalse(self.presenter.rooms.delete("#dev", "  "))
        self.assertEqual(self.said()[-2:], ["pick a room to delete", "give a reason to delete #dev"])
        self.redrawn()
        self.assertTrue(self.presenter.rooms.delete("#dev", " spam "))
        self.redrawn()
        self.assertEqual([rows[0][0] for rows in self.view.rooms], ["#ops"])
        self.assertIn(("room", RoomGone("#dev", "spam")), alice.events)
        self.assertEqual(self.said()[-1], "operator deleted #dev: spam")
        self.assertTrue(self.presenter.rooms.delete("#dev", "again"))
        self.assertEqual(self.said()[-1], "#dev is no longer there")

    def test_the_operator_removes_a_member_and_the_others_are_told(self) -> None:
        alice = self.join("alice", "#dev")
        bob = self.join("bob", "#dev")
        self.assertFalse(self.presenter.rooms.remove_member("#dev", "", "x"))
        self.assertFalse(self.presenter.rooms.remove_member("#dev", "bob", ""))
        self.assertEqual(self.said()[-2:], ["pick a member of a room to remove", "give a reason to remove bob from #dev"])
        self.assertTrue(self.presenter.rooms.remove_member("#dev", "bob", "flooding"))
        self.redrawn()
        self.assertEqual([m[0] for m in self.view.members("#dev")], ["alice"])
        self.assertIn(("room", RoomGone("#dev", "flooding", "bob")), bob.events)
        self.assertIn(("room", RoomGone("#dev", "flooding", "bob")), alice.events)
        self.assertEqual(self.said()[-1], "operator removed bob from #dev: flooding")
        self.presenter.rooms.remove_member("#dev", "bob", "again")
        self.assertEqual(self.said()[-1], "bob is not in #dev")

    def test_each_ban_with_who_set_it_and_when(self) -> None:
        alice = self.join("alice", "#dev")
        self.join("bob", "#dev")
        self.successResultOf(alice.user.mode("#dev", [("+b", "mallory")]))
        self.clock.advance(60)
        self.successResultOf(alice.user.mode("#dev", [("+b", "bob")]))  # a member banned stays a member
        self.redrawn()
        self.assertEqual(
            self.view.bans("#dev"),
            [("mallory!*@*", "⊘ banned", "by alice", "", "", stamp(1_700_000_000)),
             ("bob!*@*", "⊘ banned", "by alice", "", "", stamp(1_700_000_060))],
        )
        self.assertEqual([m[0] for m in self.view.members("#dev")], ["alice", "bob"])
        self.assertEqual(self.view.rooms[0][2][0][0], "#dev/ban/mallory!*@*")  # its row under the room
        self.successResultOf(alice.user.mode("#dev", [("-b", "mallory")]))  # lifted by a room operator
        self.redrawn()
        self.assertEqual([b[0] for b in self.view.bans("#dev")], ["bob!*@*"])

    def test_the_deletion_question_says_what_is_lost(self) -> None:
        self.assertEqual(
            deletion_question("#dev", 12),
            "Delete #dev? Its 12 members are told why and leave it; its topic, modes and bans are forgotten."
            " This cannot be undone.",
        )


class RoomsCostTests(SynchronousTestCase):
    """What the Rooms tab draws for large rooms, counted in rows (not timed)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        policy = RoomPolicy(max_per_user=1000)
        self.hub = Hub(self.clock, self.store, [], max_clients=1000, room_policy=policy)
        accounts = Accounts(self.hub, self.store, FakeHashing(), self.clock, require_password=False)
        self.view = RecordingServerView()
        self.presenter = ServerPresenter(self.view, self.hub, accounts, self.clock, ["tcp:8123"])
        self.presenter.start()
        self.addCleanup(self.presenter.stop)

    def test_a_burst_of_joins_draws_the_room_once_not_once_a_join(self) -> None:
        for n in range(500):
            in_rooms(self, self.hub, f"u{n}", "#big")
        self.clock.advance(REDRAW)
        self.assertEqual(self.view.room("#big")[1], "500 (500 online)")
        self.assertEqual(self.view.room_rows_drawn, 1 + 500)  # redrawn at each join: 125,750 rows

    def test_a_member_of_a_thousand_rooms_leaving_redraws_the_rooms_it_left(self) -> None:
        owner = in_rooms(self, self.hub, "owner", *[f"#r{n}" for n in range(999)])
        in_rooms(self, self.hub, "bob", "#r0", "#bobs")
        self.clock.advance(REDRAW)
        self.assertEqual(len(self.view.rooms), 1000)
        drawn = self.view.room_rows_drawn
        owner.user.log_out()  # unprotected: leaves its 999 rooms, 998 of them removed (no rows drawn)
        self.clock.advance(REDRAW)
        self.assertEqual([r[0][0] for r in self.view.rooms], ["#bobs", "#r0"])
        self.assertEqual(self.view.room_rows_drawn - drawn, 2)  # #r0 and bob in it; #bobs untouched


class NodePresenterTests(SynchronousTestCase):
    """The window of one node of a service of several: its name, each user's node, resyncs."""

    def test_the_node_its_users_nodes_and_a_resync(self) -> None:
        clock = Clock()
        clock.advance(1_700_000_000)
        store = MemoryStore()
        hub = Hub(clock, store, [], max_clients=10, network=FakeNetwork())
        view = RecordingServerView()
        accounts = Accounts(hub, store, FakeHashing(), clock, require_password=False)
        presenter = ServerPresenter(view, hub, accounts, clock, ["tcp:8123"])
        presenter.start()
        self.addCleanup(presenter.stop)
        self.assertTrue(view.header.startswith("Node here   ·   Listening on tcp:8123   ·   "), view.header)
        self.assertIn("node", presenter.columns)
        self.successResultOf(admitted(hub, RecordingParticipant(), "alice", "10.0.0.1:5000"))
        bob = RemoteUser("bob", "there", "10.0.0.2:5000", "web", clock.seconds())
        hub.nodes.resync([UserRecord("bob", 1.0, 2.0)], [bob], [], [])
        self.assertEqual((view.row("alice")[3], view.row("bob")[3]), ("here", "there"))
        self.assertEqual(view.row("bob")[2], "web")
        self.assertTrue(
            view.events[-1].endswith("who is online on the other nodes read from Redis; 2 names in the log"),
            view.events,
        )


class ServerWindowTests(TestCase):
    async def setUp(self) -> None:
        need_display()
        self.server = await LoopbackServer(self.mktemp()).start(self)
        self.hub = self.server.hub
        self.window, self.presenter = open_window(self, self.hub, self.server.accounts, reactor)

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        for _ in range(1500):
            self.window.root.update()
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out waiting for {what}")

    def state(self, name: str) -> str:
        return (
            self.window.table.set(name.casefold(), "state")
            if self.window.table.exists(name.casefold())
            else ""
        )

    def events(self) -> str:
        return "\n".join(self.window.events.get(0, "end"))

    async def test_rows_follow_clients_and_the_operator_can_act(self) -> None:
        alice = await self.server.client()
        alice.send("HELLO alice")
        await self.until("alice online", lambda: self.state("alice") == "● online")
        bob = await self.server.client()
        bob.send("HELLO bob")
        await self.until("bob online", lambda: self.state("bob") == "● online")
        self.assertIn("2 online", self.window.header.cget("text"))

        intruder = await self.server.client()
        intruder.send("HELLO ALICE")
        await self.until("the refusal", lambda: "refused 'ALICE'" in self.events())

        bob.send("QUIT")
        await self.until("bob offline", lambda: self.state("bob") == "○ offline")

        self.window.notice.insert(0, "restart at noon")
        self.window.notice_button.invoke()
        await alice.until("NOTICE :restart at noon")

        alice.send("PASSWORD :alice's password")
        await alice.until("PROTECTED")
        await self.until("alice protected", lambda: self.window.table.set("alice", "password") == "protected")
        self.window.table.selection_set("alice")
        self.window.reason.insert(0, "testing")
        self.window.reset_button.invoke()
        self.assertEqual(self.window.reason.get(), "", "the Reason is cleared after the action, as the Notice is")
        bye = await alice.until("BYE")
        self.assertEqual(bye[-1], "BYE :the operator removed your name's password: testing")
        await self.until("alice unprotected", lambda: self.window.table.set("alice", "password") == "")
        await self.until("alice offline", lambda: self.state("alice") == "○ offline")
        alice = await self.server.client()
        alice.send("HELLO alice")
        await self.until("alice online", lambda: self.state("alice") == "● online")
        self.window.reason.insert(0, "testing")
        self.window.kick_button.invoke()
        self.assertEqual(self.window.reason.get(), "")
        self.assertEqual((await alice.until("BYE"))[-1], "BYE :disconnected by the operator: testing")
        await self.until("alice offline", lambda: self.state("alice") == "○ offline")
        self.assertIn("operator disconnected alice: testing", self.events())

    async def test_a_user_s_sessions_show_under_it_and_the_operator_disconnects_one(self) -> None:
        laptop = await self.server.client()
        laptop.send("HELLO alice")
        await laptop.until("ENDUSERS")
        laptop.send("PASSWORD :alice's password")
        await laptop.until("PROTECTED")
        phone = await self.server.client()
        phone.send("HELLO alice :alice's password")
        await phone.until("ENDUSERS")
        await self.until("two sessions", lambda: len(self.window.table.get_children("alice")) == 2)
        self.assertEqual(self.window.table.set("alice", "sessions"), "2")
        phone_row = self.window.table.get_children("alice")[1]
        self.window.table.selection_set(phone_row)
        self.window.reason.insert(0, "lost phone")
        self.window.kick_button.invoke()
        self.assertEqual((await phone.until("BYE"))[-1], "BYE :disconnected by the operator: lost phone")
        await self.until("one session", lambda: self.window.table.set("alice", "sessions") == "1")
        self.assertEqual(self.window.table.get_children("alice"), ())
        self.assertEqual(self.state("alice"), "● online")
        laptop.send("PING :still here")
        await laptop.until("PONG")

    async def test_the_operator_removes_offline_names_after_confirming(self) -> None:
        for name in ("spam1", "spam2", "alice"):
            client = await self.server.client()
            client.send(f"HELLO {name}")
            await self.until(name, lambda n=name: self.state(n) == "● online")
            if name != "alice":
                client.send("QUIT")
                await self.until(f"{name} offline", lambda n=name: self.state(n) == "○ offline")
        asked: list[str] = []
        answer = False

        def confirm(title: str, question: str) -> bool:
            asked.append(question)
            return answer

        self.window.confirm = confirm
        self.window.table.selection_set(["spam1", "spam2"])
        self.window.reason.insert(0, "made by a script")
        self.window.remove_button.invoke()
        self.assertEqual(len(asked), 1)
        self.assertIn("Remove spam1, spam2 from the username log", asked[0])
        self.assertEqual(self.state("spam1"), "○ offline")  # not confirmed: nothing done
        answer = True
        self.window.remove_button.invoke()
        # Each name is removed by its own store write: the rows go as each is answered, in any order.
        await self.until(
            "the rows gone", lambda: not self.window.table.exists("spam1") and not self.window.table.exists("spam2")
        )
        self.assertEqual(self.window.reason.get(), "")
        self.assertIn("spam2 removed from the log: made by a script", self.events())
        self.window.table.selection_set(["alice"])
        self.window.reason.insert(0, "why not")
        self.window.remove_button.invoke()
        await self.until("the refusal", lambda: "could not remove alice: alice is online" in self.events())
        self.assertEqual(self.state("alice"), "● online")

    async def test_headings_sort(self) -> None:
        for name in ("bob", "amy"):
            client = await self.server.client()
            client.send(f"HELLO {name}")
            await self.until(name, lambda n=name: self.state(n) == "● online")
        self.assertEqual(list(self.window.table.get_children()), ["amy", "bob"])
        self.window.root.tk.call(self.window.table.heading("name", "command"))  # click "Username"
        self.window.root.update()
        self.assertEqual(list(self.window.table.get_children()), ["bob", "amy"])


class RoomsWindowTests(SynchronousTestCase):
    """The Rooms tab under Xvfb, on a real hub keeping rooms."""

    def setUp(self) -> None:
        need_display()
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        store = MemoryStore()
        self.hub = Hub(self.clock, store, [], max_clients=10)
        accounts = Accounts(self.hub, store, FakeHashing(), self.clock, require_password=False)
        self.window, self.presenter = open_window(self, self.hub, accounts, self.clock)

    def member(self, name: str, *rooms: str) -> RecordingParticipant:
        return in_rooms(self, self.hub, name, *rooms)

    def shown(self) -> dict[str, list[tuple[str, str, str]]]:
        """Each room's name: its members' (name, state, role) as the tab shows them."""
        rooms = self.window.rooms
        self.clock.advance(REDRAW)
        self.window.root.update()
        return {
            rooms.item(room, "text"): [
                (rooms.item(m, "text"), rooms.set(m, "members"), rooms.set(m, "modes")) for m in rooms.get_children(room)
            ]
            for room in rooms.get_children()
        }

    def test_each_room_and_its_members_and_the_operator_removes_one_and_deletes_a_room(self) -> None:
        self.window.tabs.select(1)
        alice = self.member("alice", "#Dev")
        bob = self.member("bob", "#dev", "#apps")
        self.assertEqual(
            self.shown(),
            {
                "#apps": [("bob", "● online", "operator")],
                "#Dev": [("alice", "● online", "operator"), ("bob", "● online", "")],
            },
        )
        self.assertEqual(list(self.window.rooms.get_children()), ["#apps", "#dev"])  # by name
        self.assertEqual(self.window.rooms.set("#dev", "members"), "2 (2 online)")
        self.assertEqual(self.window.rooms.set("#dev", "modes"), "+nt")
        self.assertEqual(self.window.rooms.set("#dev", "founder"), "alice")

        self.window.rooms.selection_set("#dev/bob")
        self.window.reason.insert(0, "flooding")
        self.window.remove_member_button.invoke()
        self.assertEqual(self.window.reason.get(), "")
        self.assertIn(RoomGone("#Dev", "flooding", "bob"), bob.room_events())
        self.assertEqual(self.shown()["#Dev"], [("alice", "● online", "operator")])

        asked: list[str] = []

        def refuse(title: str, question: str) -> bool:
            asked.append(question)
            return False

        self.window.confirm = refuse
        self.window.rooms.selection_set("#dev/alice")  # a member's row: its room
        self.window.reason.insert(0, "closed")
        self.window.delete_room_button.invoke()
        self.assertEqual(asked, [deletion_question("#Dev", 1)])
        self.assertIn("#Dev", self.shown())  # not confirmed: nothing done
        self.window.confirm = lambda title, question: True
        self.window.delete_room_button.invoke()
        self.assertIn(RoomGone("#Dev", "closed"), alice.room_events())
        self.assertEqual(list(self.shown()), ["#apps"])
        self.assertIn("operator deleted #Dev: closed", "\n".join(self.window.events.get(0, "end")))

    def test_bans_under_their_room_and_the_window_says_who_lifts_them(self) -> None:
        self.window.tabs.select(1)
        alice = self.member("alice", "#dev")
        bob = self.member("bob", "#dev")
        self.successResultOf(alice.user.mode("#dev", [("+b", "bob"), ("+b", "mallory")]))
        rooms = self.window.rooms
        self.assertEqual(
            self.shown()["#dev"],
            [("alice", "● online", "operator"), ("bob", "● online", ""), ("bob!*@*", "⊘ banned", "by alice"),
             ("mallory!*@*", "⊘ banned", "by alice")],
        )
        self.assertEqual(rooms.set("#dev/ban/bob!*@*", "created"), stamp(1_700_000_000))
        self.assertEqual(rooms.item("#dev/ban/bob!*@*", "tags"), ("banned",))
        self.assertTrue(self.window.bans_note.winfo_ismapped())
        self.assertEqual(self.window.bans_note.cget("text"), BANS_LIFTED_BY)
        told = len(bob.room_events())
        rooms.selection_set("#dev/ban/bob!*@*")  # a ban's row is no member's: bob stays
        self.window.reason.insert(0, "flooding")
        self.window.remove_member_button.invoke()
        self.assertEqual(len(bob.room_events()), told)
        self.assertIn(("bob", "● online", ""), self.shown()["#dev"])
        self.assertIn("pick a member of a room to remove", "\n".join(self.window.events.get(0, "end")))
        asked: list[str] = []

        def refuse(title: str, question: str) -> bool:
            asked.append(question)
            return False

        self.window.confirm = refuse
        self.window.delete_room_button.invoke()
        self.assertEqual(asked, [deletion_question("#dev", 2)])  # its members, not its bans


class ServerWindowServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        need_display()
        self.addCleanup(collect_windows, [])

    def test_closing_the_window_stops_the_server(self) -> None:
        fake_reactor = MemoryReactorClock()
        store = MemoryStore()
        hub = Hub(fake_reactor, store, [], max_clients=5)
        accounts = Accounts(hub, store, FakeHashing(), fake_reactor, require_password=False)
        service = ServerWindowService(fake_reactor, hub, accounts, ["tcp:8123"])
        service.startService()
        window = service.window
        assert window is not None
        window.root.update()
        self.assertIn("Listening on tcp:8123", window.header.cget("text"))
        window.root.tk.call(window.root.protocol("WM_DELETE_WINDOW"))
        self.assertTrue(fake_reactor.hasStopped)
        service.stopService()
        self.assertRaises(tkinter.TclError, window.root.winfo_exists)
