"""Rooms in the client (version 11): the protocol's room lines and commands, and the presenter
with no display: joining, the open room's members, an operator's actions, hostile lines."""

from __future__ import annotations

import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.client.presenter import ChatPresenter, ConversationItem, RoomItem
from msgsvc.client.protocol import MAX_LISTED, Member, RoomInfo
from msgsvc.hub.contracts import Kind

from .support.fakes import FakeConnection, Recorder
from .test_client import ID1, ID2, ProtocolTestCase, _millis


class ClientProtocolRoomTests(ProtocolTestCase):
    def test_room_lines(self) -> None:
        at = _millis(2026, 12, 2, 9, 0)
        self.feed(
            "VERSION 11",
            f"ROOM #Dev {at} +nt :the build",
            "MEMBER #Dev alice online op",
            "MEMBER #Dev bob offline voice",
            "ENDMEMBERS #Dev 2",
            "ENTERED #Dev carol",
            "ENTERED #Dev alice op",
            "PARTED #Dev carol :lunch",
            "PARTED #Dev carol",
            "KICKED #Dev bob alice :spam",
            f"TOPIC #Dev alice {at} :new topic",
            "TOPIC #Dev - - :",
            "MODE #Dev - +ntl 20",
            "MODE #Dev alice +o-v bob bob",
            "INVITED #Dev dave",
            "INVITATION #ops erin",
            "ROOMGONE #ops :deleted",
            "ROOMINFO #Dev 2 :the build",
            "ROOMINFO #lunch 0",
            "ENDROOMS 2",
            f"BAN #Dev mallory alice {at}",
            "ENDBANS #Dev 1",
            f"MSG bob room #Dev {ID1} {at} :hi all",
        )
        self.assertEqual(
            self.listener.calls[1:],
            [
                ("room", ("#Dev", "+nt", "the build")),
                ("room_members", ("#Dev", [Member("alice", True, op=True), Member("bob", False, voice=True)])),
                ("entered", ("#Dev", Member("carol", True))),
                ("entered", ("#Dev", Member("alice", True, op=True))),
                ("parted", ("#Dev", "carol", "lunch")),
                ("parted", ("#Dev", "carol", "")),
                ("kicked", ("#Dev", "bob", "alice", "spam")),
                ("room_topic", ("#Dev", "alice", "new topic")),
                ("room_topic", ("#Dev", "", "")),
                ("room_mode", ("#Dev", "", "+ntl", ("20",))),
                ("room_mode", ("#Dev", "alice", "+o-v", ("bob", "bob"))),
                ("invited", ("#Dev", "dave")),
                ("invitation", ("#ops", "erin")),
                ("room_gone", ("#ops", "deleted")),
                ("rooms_listed", ([RoomInfo("#Dev", 2, "the build"), RoomInfo("#lunch", 0, "")],)),
                ("bans", ("#Dev", [("mallory", "alice")])),
                ("message", ("bob", Kind.ROOM, ("#Dev",), "hi all", self.listener.calls[-1][1][4])),
            ],
        )

    def test_a_version_12_servers_bans_are_masks(self) -> None:
        at = _millis(2026, 12, 2, 9, 0)
        self.feed(
            "VERSION 13",
            f"BAN #Dev *!*@192.0.2.* alice {at}",
            f"BAN #Dev bob!*@* alice {at}",
            f"BAN #Dev a!b!c alice {at}",  # no mask: skipped
            f"BAN #Dev a,b alice {at}",
            "ENDBANS #Dev 4",
        )
        self.assertEqual(self.listener.last("bans"), ("#Dev", [("*!*@192.0.2.*", "alice"), ("bob!*@*", "alice")]))

    def test_a_version_10_server_has_no_room_lines(self) -> None:
        self.feed("VERSION 10", "ENTERED #dev bob", "ROOMINFO #dev 1 :x", "ENDROOMS 1", "ROOMGONE #dev")
        self.assertEqual(self.listener.calls, [("version", (10, 0))])

    def test_hostile_room_lines_are_skipped(self) -> None:
        self.feed(
            "VERSION 11",
            "ENTERED dev bob",  # no '#'
            "ENTERED #9dev bob",  # not a name
            "PARTED #dev\x01x bob",
            "KICKED #dev bob",  # who kicked is missing
            "ENTERED #dev \u202ebob",  # no username
            "TOPIC #dev b\u00f6b - :x",
            "ROOM",
            "TOPIC #dev",
            "MODE #dev",
            "MEMBER #dev",
            "MEMBER #dev b%d online",  # no username
            "ENDMEMBERS #",
            "ROOMINFO #dev -3 :negative",
            "ROOMINFO #dev many :x",
            "ROOMINFO d 3 :x",
            "ENDROOMS 0",
            "INVITATION #" + "a" * 40 + " bob",
        )
        self.assertEqual(self.listener.calls, [("version", (11, 0)), ("rooms_listed", ([],))])

    def test_members_and_rooms_past_the_cap_are_skipped(self) -> None:
        self.feed("VERSION 11", *(f"MEMBER #dev u{n} online" for n in range(MAX_LISTED + 5)), "ENDMEMBERS #dev 9")
        self.feed(*(f"ROOMINFO #r{n} 1" for n in range(MAX_LISTED + 5)), "ENDROOMS 9")
        members = self.listener.last("room_members")[1]
        self.assertEqual(len(members), MAX_LISTED)  # type: ignore[arg-type]
        self.assertEqual(len(self.listener.last("rooms_listed")[0]), MAX_LISTED)  # type: ignore[arg-type]

    def test_room_commands(self) -> None:
        self.transport.clear()
        self.protocol.join("#dev")
        self.protocol.join("#ops", "sesame seed")
        self.protocol.part("#dev", "bye now")
        self.protocol.topic("#dev", None)
        self.protocol.topic("#dev", "")
        self.protocol.invite("#dev", "bob")
        self.protocol.kick("#dev", "bob", "spam")
        self.protocol.mode("#dev")
        self.protocol.mode("#dev", "+o", "bob")
        self.protocol.members("#dev")
        self.protocol.rooms()
        self.protocol.rooms(mine=True)
        self.protocol.send(("#dev",), "hi")
        self.assertEqual(
            self.transport.value().decode().split("\r\n")[:-1],
            [
                "JOIN #dev",
                "JOIN #ops :sesame seed",
                "PART #dev :bye now",
                "TOPIC #dev",
                "TOPIC #dev :",
                "INVITE #dev bob",
                "KICK #dev bob :spam",
                "MODE #dev",
                "MODE #dev +o bob",
                "MEMBERS #dev",
                "ROOMS",
                "ROOMS mine",
                "SEND #dev :hi",
            ],
        )


class RoomPresenterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.view = Recorder()
        self.connection = FakeConnection()
        self.clock = Clock()
        self.clock.advance(time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1)))
        self.presenter = ChatPresenter(self.view, self.connection, self.clock, username="alice")  # type: ignore[arg-type]

    def log_in(self, version: int = 11, *rooms: str) -> None:
        self.presenter.login("alice", "tcp:localhost:8123")
        self.connection.server_says(
            f"VERSION {version}",
            "WELCOME alice :hi",
            "USER alice online",
            "USER bob online",
            "USER carol offline",
            "ENDUSERS 3",
        )
        self.assertEqual(self.connection.sent()[2:], ["ROOMS mine"] if version >= 11 else [])
        self.view.calls.clear()
        if version >= 11:
            self.connection.server_says(*rooms, f"ENDROOMS {len(rooms)}")

    def join_dev(self) -> None:
        self.presenter.join("Dev")
        self.assertEqual(self.connection.sent(), ["JOIN #Dev"])
        self.connection.server_says(
            f"ROOM #Dev {_millis(2026, 12, 2, 9, 0)} +nt :",
            "MEMBER #Dev alice online op",
            "MEMBER #Dev carol offline",
            "ENDMEMBERS #Dev 2",
        )

    def room_shown(self) -> RoomItem | None:
        return self.view.last("show_room")[0]  # type: ignore[return-value]

    def test_the_rooms_of_this_user_are_asked_at_login_and_listed(self) -> None:
        self.log_in(11, "ROOMINFO #ops 3 :on call", "ROOMINFO #all 9 :", "ROOMINFO #dev 2 :the build")
        self.assertEqual(
            self.view.last("show_conversations")[0],
            [
                ConversationItem("#all", "everyone", ""),
                ConversationItem("#ops", "#ops", ""),
                ConversationItem("#dev", "#dev", ""),
            ],
        )

    def test_joining_opens_the_room_with_its_members_operators_first(self) -> None:
        self.log_in()
        self.join_dev()
        self.assertEqual((self.presenter.mode, self.presenter.selected), (Kind.ROOM, ("#Dev",)))
        self.assertEqual(self.presenter.conversation(), "#dev")
        self.assertEqual(
            self.room_shown(),
            RoomItem("#Dev", "", "nt", [Member("alice", True, op=True), Member("carol", False)], operator=True),
        )
        self.assertIn(("info", "You are in #Dev (2 members)."), self.view.entries())
        self.assertEqual(
            self.view.last("show_conversations")[0],
            [ConversationItem("#all", "everyone", ""), ConversationItem("#dev", "#Dev", "")],
        )
        self.assertEqual(self.presenter.addressees(), "everyone in #Dev")

    def test_sending_to_the_room_and_a_message_in_it(self) -> None:
        self.log_in()
        self.join_dev()
        self.assertTrue(self.presenter.send("hello room"))
        self.assertEqual(self.connection.sent(), ["SEND #Dev :hello room"])
        at = _millis(2026, 12, 2, 9, 31)
        self.connection.server_says(
            f"SENT 1 - - {ID1} {at}",
            f"MSG bob room #Dev {ID2} {at} :hi alice",
        )
        self.assertEqual(
            self.view.entries()[-2:], [("sent", "you to #Dev: hello room"), ("group", "bob in #Dev: hi alice")]
        )
        self.assertEqual(
            self.view.last("show_conversations")[0],
            [ConversationItem("#dev", "#Dev", "today 09:31"), ConversationItem("#all", "everyone", "")],
        )
        self.assertTrue(self.presenter.reply_all())
        self.assertEqual(self.presenter.selected, ("#Dev",))

    def test_the_seeds_flow_leaves_the_room(self) -> None:
        self.log_in()
        self.join_dev()
        self.presenter.choose_mode(Kind.UNICAST)
        self.assertEqual(self.presenter.selected, ())
        self.presenter.choose_recipients(("bob",))
        self.assertEqual(self.presenter.conversation(), "alice,bob")
        self.assertIsNone(self.room_shown())
        self.presenter.open_conversation("#dev")
        self.assertEqual(self.room_shown().name, "#Dev")  # type: ignore[union-attr]

    def test_members_come_and_go_and_their_marks_change(self) -> None:
        self.log_in()
        self.join_dev()
        self.connection.server_says(
            "ENTERED #Dev bob",
            "MODE #Dev alice +v bob",
            "JOINED carol",
            "MODE #Dev alice +o carol",
            "PARTED #Dev carol :lunch",
        )
        room = self.room_shown()
        assert room is not None
        self.assertEqual(room.members, [Member("alice", True, op=True), Member("bob", True, voice=True)])
        self.assertEqual(
            self.view.entries()[-4:],
            [
                ("info", "bob joined #Dev"),
                ("info", "alice set +v bob in #Dev"),
                ("info", "alice set +o carol in #Dev"),
                ("info", "carol left #Dev (lunch)"),
            ],
        )
        self.connection.server_says("KICKED #Dev bob alice :spam")
        self.assertEqual(self.view.entries()[-1], ("info", "alice removed bob from #Dev: spam"))
        self.assertEqual([m.name for m in self.room_shown().members], ["alice"])  # type: ignore[union-attr]

    def test_an_operators_actions(self) -> None:
        self.log_in()
        self.join_dev()
        self.presenter.set_topic("the build is green")
        self.presenter.set_topic()
        self.presenter.invite("bob")
        self.presenter.kick("carol", "bye")
        self.presenter.set_mode("+i")
        self.presenter.set_mode("+o", ("bob",))
        self.presenter.set_mode()
        self.presenter.set_mode("b")
        self.presenter.part("done")
        self.assertEqual(
            self.connection.sent(),
            [
                "TOPIC #Dev :the build is green",
                "TOPIC #Dev",
                "INVITE #Dev bob",
                "KICK #Dev carol :bye",
                "MODE #Dev +i",
                "MODE #Dev +o bob",
                "MODE #Dev",
                "MODE #Dev b",
                "PART #Dev :done",
            ],
        )
        at = _millis(2026, 12, 2, 9, 31)
        self.connection.server_says(
            f"TOPIC #Dev alice {at} :the build is green",
            f"TOPIC #Dev alice {at} :the build is green",
            "INVITED #Dev bob",
            "KICKED #Dev carol alice :bye",
            "MODE #Dev alice +i",
            "ERROR USER_NOT_IN_ROOM :bob is not in #Dev",
            "MODE #Dev - +int",
            f"BAN #Dev mallory alice {at}",
            "ENDBANS #Dev 1",
            "PARTED #Dev alice :done",
        )
        self.assertEqual(
            self.view.entries()[-9:],
            [
                ("info", "alice set the topic of #Dev: the build is green"),
                ("info", "Topic of #Dev: the build is green (set by alice)"),
                ("info", "You invited bob to #Dev."),
                ("info", "alice removed carol from #Dev: bye"),
                ("info", "alice set +i in #Dev"),
                ("error", "Cannot change the modes of #Dev: bob is not in #Dev (USER_NOT_IN_ROOM)"),
                ("info", "Modes of #Dev: +int (invite only, no messages from outside, topic locked)"),
                ("info", "Banned from #Dev: mallory (by alice)"),
                ("info", "You left #Dev (done)"),
            ],
        )
        self.assertEqual(self.presenter.mode, Kind.BROADCAST)  # the room is no longer open
        self.assertIsNone(self.room_shown())
        self.assertEqual(self.view.last("show_conversations")[0], [ConversationItem("#all", "everyone", "")])

    def test_a_refused_join_says_why(self) -> None:
        self.log_in()
        self.presenter.join("#ops")
        self.connection.server_says("ERROR INVITE_ONLY :#ops is invite-only")
        self.assertEqual(self.view.entries()[-1], ("error", "Cannot join #ops: #ops is invite-only (INVITE_ONLY)"))
        self.assertEqual(self.presenter.mode, Kind.UNICAST)

    def test_kicked_or_the_room_gone_forgets_it(self) -> None:
        self.log_in()
        self.join_dev()
        self.connection.server_says("KICKED #Dev alice bob")
        self.assertEqual(self.view.entries()[-1], ("info", "bob removed you from #Dev"))
        self.assertEqual(self.presenter.mode, Kind.BROADCAST)
        self.join_dev()
        self.connection.server_says("ROOMGONE #dev :deleted by the operator")
        self.assertEqual(self.view.entries()[-1], ("info", "#dev is no longer yours: deleted by the operator"))
        self.presenter.open_conversation("#dev")
        self.assertEqual(self.view.entries()[-1], ("error", "You are not in #dev: join it first."))

    def test_without_an_open_room_or_on_an_older_server(self) -> None:
        self.log_in()
        self.presenter.kick("bob")
        self.assertEqual(self.view.entries()[-1][1], "Open a room first (join one, or pick it among your conversations).")
        self.presenter.join("#no room")
        self.assertIn("A room's name is #", self.view.entries()[-1][1])
        self.presenter.join("#all")
        self.assertEqual(self.presenter.mode, Kind.BROADCAST)
        self.assertEqual(self.connection.sent(), [])
        self.log_in(10)
        self.presenter.join("#dev")
        self.assertEqual(self.view.entries()[-1][1], "This server has no rooms (it speaks an older version of the protocol).")

    def test_another_session_joining_lists_the_room_and_asks_its_members(self) -> None:
        self.log_in()
        self.connection.server_says("ENTERED #ops alice", "ENTERED #all bob")
        self.assertEqual(self.connection.sent(), ["MEMBERS #ops"])
        self.connection.server_says("MEMBER #ops alice online op", "ENDMEMBERS #ops 1")
        self.presenter.open_conversation("#ops")
        self.assertEqual(self.room_shown().members, [Member("alice", True, op=True)])  # type: ignore[union-attr]

    def test_hostile_room_notices_change_nothing_they_should_not(self) -> None:
        self.log_in()
        self.join_dev()
        self.connection.server_says(
            "MODE #Dev bob +oooovk",  # no names for them
            "MODE #Dev bob +o nobody",
            "MODE #Dev bob -zq x y",
            "KICKED #nowhere alice bob",
            "PARTED #nowhere bob",
            "ENTERED #nowhere bob",
            "ENDMEMBERS #elsewhere 3",
            "TOPIC #nowhere bob - :x",
            "ROOMGONE #nowhere",
            "ENDROOMS 0",
        )
        room = self.room_shown()
        assert room is not None
        self.assertEqual([(m.name, m.op) for m in room.members], [("alice", True), ("carol", False)])
        self.assertEqual(self.presenter.conversation(), "#dev")
        self.assertTrue(self.presenter.send("still here"))

    def test_a_rooms_unread_count_and_history_and_reading_it(self) -> None:
        at = _millis(2026, 12, 2, 9, 0)
        self.presenter.login("alice", "tcp:localhost:8123", "alice's secret")
        self.connection.server_says(
            "VERSION 11 90",
            "WELCOME alice :hi",
            "USER alice online protected",
            "USER bob online",
            "ENDUSERS 2",
        )
        self.assertEqual(self.connection.sent()[2:], ["CONVERSATIONS", "ROOMS mine"])
        self.connection.server_says(
            "ENDHISTORY #all 0 start",
            f"CONVERSATION #dev {ID2} {at} 2 {ID1}",
            "ENDCONVERSATIONS 1",
            "ROOMINFO #Dev 2 :the build",
            "ENDROOMS 1",
        )
        self.assertEqual(
            self.view.last("show_conversations")[0],
            [ConversationItem("#dev", "#Dev", "today 09:00", unread=2), ConversationItem("#all", "everyone", "")],
        )
        self.presenter.look(True)
        self.presenter.open_conversation("#dev")
        self.assertEqual(self.connection.sent(), ["HISTORY #dev *", "MEMBERS #Dev"])
        self.connection.server_says(
            f"HISTMSG #dev bob room #Dev {ID2} {at} :is the build green?",
            "ENDHISTORY #dev 1 start",
            "MEMBER #Dev alice online op",
            "MEMBER #Dev bob online",
            "ENDMEMBERS #Dev 2",
        )
        entries = [args[1] for name, args in self.view.calls if name == "insert"]
        inserted = [(e.style, e.text) for e in entries]  # type: ignore[attr-defined]
        self.assertIn(("group", "bob in #Dev: is the build green?"), inserted)
        self.assertEqual(self.connection.sent(), [f"READ #dev {ID2}"])
        self.assertEqual(self.view.last("show_conversations")[0][0].unread, 0)  # type: ignore[index]
