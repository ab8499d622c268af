"""The IRC front's channels, command by command and numeric by numeric, against a scripted fake of the
hub's room operations (:class:`FakeRooms`): what each IRC line asks the hub, and how each answer,
refusal and room event is said in IRC."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.irc.numerics import ROOM_REFUSALS
from msgsvc.hub.contracts import (
    Ban,
    Entered,
    HistoryPolicy,
    Invited,
    Kicked,
    Kind,
    Member,
    MemberView,
    Message,
    ModeSet,
    Parted,
    Refusal,
    Refused,
    RoomGone,
    RoomInfo,
    RoomView,
    TopicSet,
    UserRecord,
)
from msgsvc.hub.history import History
from msgsvc.hub.user import User

from .support.harness import PASSWORD, ServerHarness
from .support.irc import SERVER, Irc, IrcTestCase, numerics

OPS = ("join", "part", "topic", "invite", "kick", "mode", "members", "rooms", "send_room")
DEV = RoomView(
    name="#Dev",
    created=1000.0,
    founder="alice",
    topic="ship it",
    topic_by="alice",
    topic_at=1001.0,
    modes="nt",
    key=None,
    limit=None,
    members=(MemberView("alice", online=True, op=True, voice=True), MemberView("bob", True, False, False)),
    bans=(),
)


class FakeRooms:
    """The hub's room operations, scripted: each call is recorded as (op, user, args); its answer is what
    ``answers[op]`` holds (a value, or a Refused it fails with; none: an empty list, as ``rooms`` has)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.answers: dict[str, Any] = {}

    def install(self, case: IrcTestCase) -> None:
        for op in OPS:
            original = User.__dict__.get(op)
            setattr(User, op, self._op(op))
            case.addCleanup(_restore, op, original)

    def _op(self, op: str) -> Any:
        fake = self

        def call(user: User, *args: Any) -> Deferred[Any]:
            fake.calls.append((op, user.name, *args))
            answer = fake.answers.get(op, [])
            return fail(answer) if isinstance(answer, Refused) else succeed(answer)

        return call


def _restore(op: str, original: Any) -> None:
    if original is None:
        delattr(User, op)
    else:
        setattr(User, op, original)


class RoomsTestCase(IrcTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.rooms = FakeRooms()
        self.rooms.install(self)

    def client(self, nick: str, caps: str = "") -> Irc:
        client = self.irc()
        client.register(nick, *([f"CAP REQ :{caps}", "CAP END"] if caps else []))
        self.rooms.calls.clear()
        return client


class JoinTests(RoomsTestCase):
    def test_join_answers_join_topic_and_names_with_prefixes(self) -> None:
        alice = self.client("alice")
        self.rooms.answers["join"] = DEV
        got = alice.send("JOIN #dev")
        self.assertEqual(self.rooms.calls, [("join", "alice", "#dev", None)])
        self.assertEqual(
            got,
            [
                ":alice!alice@msgsvc JOIN :#Dev",
                f":{SERVER} 332 alice #Dev :ship it",
                f":{SERVER} 333 alice #Dev alice :1001",
                f":{SERVER} 353 alice = #Dev :@alice bob",
                f":{SERVER} 366 alice #Dev :End of /NAMES list",
            ],
        )

    def test_multi_prefix_shows_every_prefix(self) -> None:
        alice = self.client("alice", "multi-prefix")
        self.rooms.answers["join"] = DEV
        self.assertIn(f":{SERVER} 353 alice = #Dev :@+alice bob", alice.send("JOIN #dev"))

    def test_several_rooms_each_with_its_key_and_0_leaves_them_but_all(self) -> None:
        alice = self.client("alice")
        self.rooms.answers["join"] = DEV
        alice.send("JOIN #all,#dev,#ops sesame,,other")
        self.assertEqual(
            self.rooms.calls, [("join", "alice", "#dev", None), ("join", "alice", "#ops", "other")]
        )
        self.assertIn(alice.session, self.factory.members)
        self.rooms.calls.clear()
        self.rooms.answers["part"] = Parted("#Dev", "alice", "")
        self.assertEqual(alice.send("JOIN 0"), [":alice!alice@msgsvc PART :#Dev"])
        self.assertEqual(self.rooms.calls, [("part", "alice", "#Dev", "")])
        self.assertIn(alice.session, self.factory.members)  # #all stays

    def test_a_name_without_a_hash_is_403_and_the_hubs_refusals_are_their_numerics(self) -> None:
        alice = self.client("alice")
        self.assertEqual(numerics(alice.send("JOIN dev")), ["403"])
        for refusal, (numeric, about_nick, _) in ROOM_REFUSALS.items():
            self.rooms.answers["join"] = Refused(refusal, "why")
            (got,) = alice.send("JOIN #dev")
            self.assertEqual(numerics([got]), [numeric], refusal)
            params = "alice * #dev :" if about_nick else "alice #dev :"
            self.assertIn(f" {numeric} {params}", got)
            self.assertTrue(got.endswith(": why"), got)

    def test_another_session_of_the_nick_joining_shows_the_room_here_too(self) -> None:
        alice = self.client("alice")
        self.rooms.answers["members"] = DEV
        alice.session.room_event(Entered("#Dev", Member("alice", op=True)))
        got = alice.read()
        self.assertEqual(got[0], ":alice!alice@msgsvc JOIN :#Dev")
        self.assertEqual(numerics(got), ["JOIN", "332", "333", "353", "366"])
        self.assertEqual(alice.session.rooms, {"#dev": "#Dev"})

    def test_rooms_the_account_is_in_are_joined_after_the_welcome(self) -> None:
        self.rooms.answers["rooms"] = [RoomInfo("#Dev", 2, "ship it")]
        self.rooms.answers["members"] = DEV
        got = self.irc().register("alice")
        self.assertIn(("rooms", "alice", True), self.rooms.calls)
        self.assertEqual(numerics(got)[-5:], ["JOIN", "332", "333", "353", "366"])


class JoinedTestCase(RoomsTestCase):
    def joined(self, nick: str = "alice", caps: str = "") -> Irc:
        client = self.client(nick, caps)
        self.rooms.answers["join"] = DEV
        client.send("JOIN #dev")
        self.rooms.calls.clear()
        return client


class PartKickInviteTests(JoinedTestCase):
    def test_part_with_a_reason_and_442_when_not_in(self) -> None:
        alice = self.joined()
        self.rooms.answers["part"] = Parted("#Dev", "alice", "bye now")
        self.assertEqual(alice.send("PART #dev :bye now"), [":alice!alice@msgsvc PART #Dev :bye now"])
        self.assertEqual(alice.session.rooms, {})
        self.rooms.answers["part"] = Refused(Refusal.NOT_IN_ROOM, "not a member")
        self.assertEqual(numerics(alice.send("PART #dev")), ["442"])

    def test_kick_without_a_comment_carries_the_kickers_nick(self) -> None:
        alice = self.joined()
        self.rooms.answers["kick"] = Kicked("#Dev", "bob", "alice", "alice")
        self.assertEqual(alice.send("KICK #dev bob"), [":alice!alice@msgsvc KICK #Dev bob :alice"])
        self.assertEqual(self.rooms.calls, [("kick", "alice", "#dev", "bob", "alice")])
        self.rooms.calls.clear()
        self.rooms.answers["kick"] = Kicked("#Dev", "bob", "alice", "out")
        alice.send("KICK #dev bob,carol :out")
        self.assertEqual([c[3:] for c in self.rooms.calls], [("bob", "out"), ("carol", "out")])

    def test_kick_refusals_482_and_441_with_the_nick(self) -> None:
        alice = self.joined()
        self.rooms.answers["kick"] = Refused(Refusal.NOT_ROOM_OPERATOR, "")
        self.assertEqual(
            alice.send("KICK #dev bob"), [f":{SERVER} 482 alice #dev :You're not channel operator"]
        )
        self.rooms.answers["kick"] = Refused(Refusal.USER_NOT_IN_ROOM, "")
        self.assertEqual(
            alice.send("KICK #dev bob"), [f":{SERVER} 441 alice bob #dev :They aren't on that channel"]
        )

    def test_invite_is_341_and_the_invitee_gets_invite_with_its_account(self) -> None:
        alice = self.joined()
        bob = self.client("bob", "account-tag")
        self.rooms.answers["invite"] = Invited("#Dev", "bob", "alice")
        self.assertEqual(alice.send("INVITE bob #dev"), [f":{SERVER} 341 alice bob :#Dev"])
        self.assertEqual(self.rooms.calls, [("invite", "alice", "#dev", "bob")])
        self.rooms.answers["invite"] = Refused(Refusal.ALREADY_IN_ROOM, "")
        alice.read()
        self.assertEqual(numerics(alice.send("INVITE bob #dev")), ["443"])
        self.assertEqual(numerics(alice.send("INVITE nobody #dev")), ["401"])
        bob.session.room_event(Invited("#Dev", "bob", "dave"))
        bob.session.room_event(Invited("#Dev", "carol", "dave"))  # for another: not told here
        self.assertEqual(bob.read(), ["@account=dave :dave!dave@msgsvc INVITE bob :#Dev"])


class TopicNamesListWhoTests(JoinedTestCase):
    def test_topic_query_331_or_332_and_333_and_a_set_echoed(self) -> None:
        alice = self.joined()
        self.rooms.answers["topic"] = TopicSet("#Dev", "", None, None)
        self.assertEqual(alice.send("TOPIC #dev"), [f":{SERVER} 331 alice #Dev :No topic is set"])
        self.assertEqual(self.rooms.calls, [("topic", "alice", "#dev", None)])
        self.rooms.answers["topic"] = TopicSet("#Dev", "ship it", "bob", 1234.5)
        self.assertEqual(
            alice.send("TOPIC #dev"),
            [f":{SERVER} 332 alice #Dev :ship it", f":{SERVER} 333 alice #Dev bob :1234"],
        )
        self.rooms.answers["topic"] = TopicSet("#Dev", "new", "alice", 1300.0)
        self.assertEqual(alice.send("TOPIC #dev :new"), [":alice!alice@msgsvc TOPIC #Dev :new"])
        self.rooms.answers["topic"] = Refused(Refusal.NOT_ROOM_OPERATOR, "the topic is locked")
        self.assertEqual(numerics(alice.send("TOPIC #dev :mine")), ["482"])

    def test_names_of_a_room_and_366_alone_for_one_not_seen(self) -> None:
        alice = self.joined()
        self.rooms.answers["members"] = DEV
        self.assertEqual(numerics(alice.send("NAMES #dev")), ["353", "366"])
        self.rooms.answers["members"] = Refused(Refusal.NO_SUCH_ROOM, "")
        self.assertEqual(alice.send("NAMES #nope"), [f":{SERVER} 366 alice #nope :End of /NAMES list"])

    def test_names_of_several_channels_ends_with_one_366_of_them_all(self) -> None:
        alice = self.joined()
        alice.send("JOIN #all")
        self.rooms.answers["members"] = DEV
        got = alice.send("NAMES #all,#dev,#ops")
        asked = [c for c in self.rooms.calls if c[0] == "members"]
        self.assertEqual(asked, [("members", "alice", "#dev"), ("members", "alice", "#ops")])
        self.assertEqual(
            got,
            [
                f":{SERVER} 353 alice = #Dev :@alice bob",
                f":{SERVER} 353 alice = #Dev :@alice bob",
                f":{SERVER} 353 alice = #all :alice",
                f":{SERVER} 366 alice #all,#dev,#ops :End of /NAMES list",
            ],
        )

    def test_names_alone_is_every_room_list_shows_and_all_if_in_it(self) -> None:
        alice = self.joined()
        self.rooms.answers["rooms"] = [RoomInfo("#Dev", 2, "ship it"), RoomInfo("#ops", 1, "")]
        self.rooms.answers["members"] = DEV
        self.rooms.calls.clear()
        self.assertEqual(numerics(alice.send("NAMES")), ["353", "353", "366"])
        self.assertEqual(
            self.rooms.calls,
            [("rooms", "alice", False), ("members", "alice", "#Dev"), ("members", "alice", "#ops")],
        )
        alice.send("JOIN #all")
        got = alice.send("NAMES")
        self.assertEqual(numerics(got), ["353", "353", "353", "366"])
        self.assertEqual(
            got[-2:], [f":{SERVER} 353 alice = #all :alice", f":{SERVER} 366 alice * :End of /NAMES list"]
        )

    def test_secret_rooms_names_are_marked_at(self) -> None:
        alice = self.joined()
        self.rooms.answers["members"] = RoomView(**{**DEV.__dict__, "modes": "nst"})
        self.assertIn(f":{SERVER} 353 alice @ #Dev :@alice bob", alice.send("NAMES #dev"))

    def test_list_has_all_and_the_rooms_the_hub_shows(self) -> None:
        alice = self.joined()
        self.rooms.answers["rooms"] = [RoomInfo("#Dev", 2, "ship it"), RoomInfo("#ops", 1, "")]
        alice.send("JOIN #all")
        got = alice.send("LIST")
        self.assertEqual(self.rooms.calls, [("rooms", "alice", False)])
        self.assertEqual(numerics(got), ["321", "322", "322", "322", "323"])
        self.assertEqual(got[2], f":{SERVER} 322 alice #Dev 2 :ship it")
        self.assertEqual(numerics(alice.send("LIST #ops")), ["321", "322", "323"])

    def test_who_a_room_marks_away_and_offline_g_and_the_prefixes(self) -> None:
        alice = self.joined()
        offline = MemberView("carol", online=False, op=False, voice=True)
        self.rooms.answers["members"] = RoomView(**{**DEV.__dict__, "members": (*DEV.members, offline)})
        alice.send("AWAY :lunch")
        got = alice.send("WHO #dev")
        self.assertEqual(
            got,
            [
                f":{SERVER} 352 alice #Dev alice msgsvc {SERVER} alice G@ :0 alice real",
                f":{SERVER} 352 alice #Dev bob msgsvc {SERVER} bob H :0 bob",
                f":{SERVER} 352 alice #Dev carol msgsvc {SERVER} carol G+ :0 carol",
                f":{SERVER} 315 alice #dev :End of WHO list",
            ],
        )


class MessageTests(JoinedTestCase):
    def test_privmsg_to_a_room_goes_to_the_hub_and_404_when_it_refuses(self) -> None:
        alice = self.joined(caps="echo-message")
        self.rooms.answers["send_room"] = self.harness.clients.hub.user("alice")
        from msgsvc.hub.contracts import Report

        self.rooms.answers["send_room"] = Report("01M8TYR19J1HB1YED1Z05M91H8", 5.0, 1, ())
        self.assertEqual(alice.send("PRIVMSG #dev :hello"), [":alice!alice@msgsvc PRIVMSG #Dev :hello"])
        self.assertEqual(self.rooms.calls, [("send_room", "alice", "#dev", "hello")])
        for refusal in (Refusal.NOT_IN_ROOM, Refusal.BANNED, Refusal.MODERATED):
            self.rooms.answers["send_room"] = Refused(refusal, "no")
            self.assertEqual(
                alice.send("PRIVMSG #dev :hello"), [f":{SERVER} 404 alice #dev :Cannot send to channel: no"]
            )
            self.assertEqual(alice.send("NOTICE #dev :hello"), [])
        self.rooms.answers["send_room"] = Refused(Refusal.NO_SUCH_ROOM, "")
        self.assertEqual(numerics(alice.send("PRIVMSG #nope :hello")), ["403"])
        self.assertEqual(numerics(alice.send("PRIVMSG #dev :")), ["412"])

    def test_a_room_message_comes_to_the_channel(self) -> None:
        bob = self.joined("bob", "account-tag")
        bob.session.receive(Message("dave", Kind.ROOM, ("#dev",), "hi all", "id", 5.0))
        self.assertEqual(bob.read(), ["@account=dave :dave!dave@msgsvc PRIVMSG #Dev :hi all"])


class ModeTests(JoinedTestCase):
    def test_mode_query_is_324_and_329(self) -> None:
        alice = self.joined()
        self.rooms.answers["members"] = RoomView(**{**DEV.__dict__, "modes": "int", "key": "k", "limit": 5})
        self.assertEqual(
            alice.send("MODE #dev"),
            [f":{SERVER} 324 alice #Dev +intlk 5 :k", f":{SERVER} 329 alice #Dev :1000"],
        )

    def test_changes_go_to_the_hub_in_one_call_and_come_back_as_one_mode_line(self) -> None:
        alice = self.joined()
        self.client("bob"), self.client("carol")
        changed = (("+o", "bob"), ("-v", "carol"), ("+b", "eve!*@*"))
        self.rooms.answers["mode"] = ModeSet("#Dev", "alice", changed)
        got = alice.send("MODE #dev +o-v+b BOB carol eve")  # nicks as the log spells them; a mask whole
        self.assertEqual(
            self.rooms.calls, [("mode", "alice", "#dev", [("+o", "bob"), ("-v", "carol"), ("+b", "eve!*@*")])]
        )
        self.assertEqual(got, [":alice!alice@msgsvc MODE #Dev +o-v+b bob carol :eve!*@*"])
        self.rooms.calls.clear()
        alice.send("MODE #dev +imk-l+l key 7")
        self.assertEqual(
            self.rooms.calls[0][3], [("+i", None), ("+m", None), ("+k", "key"), ("-l", None), ("+l", "7")]
        )

    def test_bans_listed_367_368_unknown_mode_472_and_refusals(self) -> None:
        alice = self.joined()
        bans = (Ban("eve!*@*", "alice", 1200.0), Ban("*!*@192.0.2.*", "bob", 1300.0))
        self.rooms.answers["members"] = RoomView(**{**DEV.__dict__, "bans": bans})
        self.assertEqual(
            alice.send("MODE #dev +b"),
            [
                f":{SERVER} 367 alice #Dev eve!*@* alice :1200",
                f":{SERVER} 367 alice #Dev *!*@192.0.2.* bob :1300",
                f":{SERVER} 368 alice #Dev :End of channel ban list",
            ],
        )
        self.assertEqual(numerics(alice.send("MODE #dev +x")), ["472"])
        self.rooms.calls.clear()
        self.rooms.answers["mode"] = ModeSet("#Dev", "alice", (("+s", None),))
        self.assertEqual(numerics(alice.send("MODE #dev +sp")), ["472", "MODE"])  # p unknown, s applied
        self.assertEqual(self.rooms.calls, [("mode", "alice", "#dev", [("+s", None)])])
        self.rooms.calls.clear()
        self.rooms.answers["mode"] = ModeSet("#Dev", "alice", (("+b", "*!*@host"), ("+b", "*!ev?@*")))
        self.assertEqual(
            alice.send("MODE #dev +bb *!*@host ev?@*"), [":alice!alice@msgsvc MODE #Dev +bb *!*@host :*!ev?@*"]
        )
        asked = [("+b", "*!*@host"), ("+b", "*!ev?@*")]
        self.assertEqual(self.rooms.calls, [("mode", "alice", "#dev", asked)])
        self.rooms.calls.clear()
        self.assertEqual(numerics(alice.send("MODE #dev +b a!b!c")), ["696"])  # not a mask
        self.assertEqual(self.rooms.calls, [])
        self.rooms.answers["mode"] = Refused(Refusal.USER_NOT_IN_ROOM, "")
        self.assertEqual(numerics(alice.send("MODE #dev +o dave")), ["441"])
        self.assertEqual(numerics(alice.send("MODE #dev +o nobody")), ["401"])  # not in the log
        self.rooms.answers["mode"] = Refused(Refusal.NO_SUCH_ROOM, "")
        self.assertEqual(numerics(alice.send("MODE #nope +o nobody")), ["403"])  # the room first
        self.rooms.calls.clear()
        self.rooms.answers["mode"] = ModeSet("#Dev", "alice", (("-l", None),))
        self.assertEqual(
            alice.send("MODE #dev +l-l+l+k+l abc 0 :"),
            [
                f":{SERVER} 696 alice #dev l abc :The limit must be a number over 0",
                f":{SERVER} 696 alice #dev l 0 :The limit must be a number over 0",
                f":{SERVER} 696 alice #dev k * :A key cannot be empty or hold a space or a comma",
                ":alice!alice@msgsvc MODE #Dev :-l",
            ],
        )
        self.assertEqual(self.rooms.calls, [("mode", "alice", "#dev", [("-l", None)])])
        self.assertEqual(numerics(alice.send("MODE #dev +k :open sesame")), ["696"])  # JOIN could not give it

    def test_a_mode_line_makes_at_most_12_changes(self) -> None:
        """docs/security.rst: an 800-byte MODE line put 150 bans at once (attack 32); MODES=12 says the bound."""
        alice = self.joined()
        self.rooms.answers["mode"] = ModeSet("#Dev", "alice", ())
        alice.send("MODE #dev +" + "b" * 150 + " " + " ".join(f"m{i}" for i in range(150)))
        self.assertEqual(self.rooms.calls, [("mode", "alice", "#dev", [("+b", f"m{i}!*@*") for i in range(12)])])
        self.rooms.calls.clear()
        self.assertEqual(numerics(alice.send("MODE #dev +" + "x" * 400)), ["472"] * 12)  # unknown: 12 said at most
        self.assertEqual(self.rooms.calls, [])

    def test_a_key_with_a_comma_is_696_as_join_could_not_give_it(self) -> None:
        alice = self.joined()
        self.assertEqual(
            alice.send("MODE #dev +k a,b"),
            [f":{SERVER} 696 alice #dev k a,b :A key cannot be empty or hold a space or a comma"],
        )
        self.assertEqual(self.rooms.calls, [])

    def test_a_full_ban_list_is_478(self) -> None:
        alice = self.joined()
        self.rooms.answers["mode"] = Refused(Refusal.BAN_LIST_FULL, "#Dev holds 100 bans at most")
        self.assertEqual(
            alice.send("MODE #dev +b eve"),
            [f":{SERVER} 478 alice #dev b :Channel list is full: #Dev holds 100 bans at most"],
        )

    def test_isupport_says_the_channel_modes_and_prefixes(self) -> None:
        got = " ".join(g for g in self.irc().register("erin") if " 005 " in g)
        for token in (
            "PREFIX=(ov)@+",
            "CHANMODES=b,k,l,imnst",
            "CHANTYPES=#",
            "MAXLIST=b:100",
            "MODES=12",
            "TOPICLEN=390",
        ):
            self.assertIn(token, got)


class EventTests(JoinedTestCase):
    def test_each_event_in_a_joined_room_is_an_irc_line(self) -> None:
        bob = self.joined("bob", "extended-join")
        session = bob.session
        session.room_event(Entered("#Dev", Member("dave")))
        session.room_event(TopicSet("#Dev", "new", "dave", 5.0))
        session.room_event(ModeSet("#Dev", "dave", (("+m", None), ("+v", "carol"))))
        session.room_event(Kicked("#Dev", "carol", "dave", ""))
        session.room_event(Parted("#Dev", "dave", "later"))
        session.room_event(Entered("#other", Member("dave")))  # a room not shown here: nothing
        self.assertEqual(
            bob.read(),
            [
                ":dave!dave@msgsvc JOIN #Dev dave :dave",
                ":dave!dave@msgsvc TOPIC #Dev :new",
                ":dave!dave@msgsvc MODE #Dev +mv :carol",
                ":dave!dave@msgsvc KICK #Dev carol :dave",
                ":dave!dave@msgsvc PART #Dev :later",
            ],
        )

    def test_kicked_or_the_room_gone_leaves_the_channel(self) -> None:
        bob = self.joined("bob")
        bob.session.room_event(RoomGone("#Dev", "closed", "carol"))
        bob.session.room_event(Kicked("#Dev", "bob", "alice", "bye"))
        self.assertEqual(
            bob.read(),
            [f":{SERVER} KICK #Dev carol :closed", ":alice!alice@msgsvc KICK #Dev bob :bye"],
        )
        self.assertEqual(bob.session.rooms, {})
        bob.session.room_event(TopicSet("#Dev", "new", "dave", 5.0))
        self.assertEqual(bob.read(), [])

    def test_a_quit_is_said_once_in_all_else_here(self) -> None:
        bob = self.joined("bob")
        bob.send("JOIN #all")
        bob.session.room_event(Parted("#Dev", "dave", "", quit=True))
        self.assertEqual(bob.read(), [])
        bob.send("PART #all")
        bob.session.room_event(Parted("#Dev", "dave", "", quit=True))
        self.assertEqual(bob.read(), [":dave!dave@msgsvc QUIT :left"])


class AwayTests(RoomsTestCase):
    def test_away_305_306_away_notify_and_301(self) -> None:
        alice = self.client("alice", "away-notify")
        bob = self.client("bob")
        alice.send("JOIN #all")
        bob.send("JOIN #all")
        alice.read()
        self.assertEqual(bob.send("AWAY :lunch"), [f":{SERVER} 306 bob :You have been marked as being away"])
        self.assertEqual(alice.read(), [":bob!bob@msgsvc AWAY :lunch"])
        self.assertIn(f":{SERVER} 301 alice bob :lunch", alice.send("PRIVMSG bob :hi"))
        self.assertIn(f":{SERVER} 301 alice bob :lunch", alice.send("WHOIS bob"))
        self.assertEqual(
            alice.send("USERHOST bob alice"), [f":{SERVER} 302 alice :bob=-bob@msgsvc alice=+alice@msgsvc"]
        )
        bob.read()
        self.assertEqual(bob.send("AWAY"), [f":{SERVER} 305 bob :You are no longer marked as being away"])
        self.assertEqual(alice.read(), [":bob!bob@msgsvc AWAY"])
        self.assertNotIn("301", numerics(alice.send("PRIVMSG bob :hi")))


class OnTheHubTests(IrcTestCase):
    """The same commands on the real hub's rooms: two IRC users, and dave's two sessions."""

    def setUp(self) -> None:
        self.harness = ServerHarness(records=(UserRecord("dave", 1.0, 1.0, protected=True),))
        self.factory = IrcFactory(self.harness.clients, SERVER)
        self.alice, self.bob = self.irc(), self.irc()
        self.alice.register("alice")
        self.bob.register("bob")

    def test_a_mode_line_that_changes_nothing_says_nothing(self) -> None:
        """As IRC servers do: ``+n`` on a ``+n`` channel, ``+o`` of an operator or ``-b`` of no ban is no
        ``MODE`` line, to the asker (a labeled one is ``ACK``) or to the others."""
        alice, bob = self.alice, self.bob
        alice.send("JOIN #dev", "CAP REQ :batch labeled-response", "CAP END")
        bob.send("JOIN #dev")
        alice.read()
        self.assertEqual(alice.send("MODE #dev +n", "MODE #dev +o-b alice eve"), [])
        self.assertEqual(alice.send("@label=m MODE #dev +t"), [f"@label=m :{SERVER} ACK"])
        self.assertEqual(bob.read(), [])
        self.assertEqual(alice.send("MODE #dev +nm"), [":alice!alice@msgsvc MODE #dev :+m"])  # what changed

    def test_create_join_talk_topic_mode_kick(self) -> None:
        alice, bob = self.alice, self.bob
        got = alice.send("JOIN #Dev")
        self.assertEqual(got[0], ":alice!alice@msgsvc JOIN :#Dev")
        self.assertEqual(
            got[1:], [f":{SERVER} 353 alice = #Dev :@alice", f":{SERVER} 366 alice #Dev :End of /NAMES list"]
        )
        self.assertEqual(numerics(bob.send("JOIN #dev")), ["JOIN", "353", "366"])
        self.assertEqual(alice.read(), [":bob!bob@msgsvc JOIN :#Dev"])
        bob.send("PRIVMSG #dev :hi alice")
        self.assertEqual(alice.read(), [":bob!bob@msgsvc PRIVMSG #Dev :hi alice"])
        self.assertEqual(numerics(bob.send("TOPIC #dev :mine")), ["482"])  # +t
        self.assertEqual(alice.send("TOPIC #dev :ship it"), [":alice!alice@msgsvc TOPIC #Dev :ship it"])
        self.assertEqual(bob.read(), [":alice!alice@msgsvc TOPIC #Dev :ship it"])
        self.assertEqual(numerics(bob.send("TOPIC #dev")), ["332", "333"])
        self.assertEqual(alice.send("MODE #dev +mv bob"), [":alice!alice@msgsvc MODE #Dev +mv :bob"])
        self.assertEqual(bob.read(), [":alice!alice@msgsvc MODE #Dev +mv :bob"])
        self.assertIn(f":{SERVER} 324 bob #Dev :+mnt", bob.send("MODE #dev"))
        alice.send("MODE #dev -v bob")
        bob.read()
        self.assertEqual(numerics(bob.send("PRIVMSG #dev :still?")), ["404"])  # +m
        self.assertEqual(numerics(bob.send("KICK #dev alice")), ["482"])
        self.assertEqual(alice.send("KICK #dev bob"), [":alice!alice@msgsvc KICK #Dev bob :alice"])
        self.assertEqual(bob.read()[-1], ":alice!alice@msgsvc KICK #Dev bob :alice")
        self.assertEqual(numerics(bob.send("PRIVMSG #dev :out")), ["404"])  # +n
        self.assertEqual(numerics(alice.send("KICK #dev bob")), ["441"])
        self.assertEqual(numerics(bob.send("PART #dev")), ["442"])

    def test_a_member_banned_after_joining_gets_404_unless_voiced(self) -> None:
        alice, bob = self.alice, self.bob
        alice.send("JOIN #dev")
        bob.send("JOIN #dev")
        alice.send("MODE #dev +b *!bob@*")
        bob.read()
        self.assertEqual(
            bob.send("PRIVMSG #dev :hi"),
            [f":{SERVER} 404 bob #dev :Cannot send to channel: you are banned from #dev: you may not speak there"],
        )
        self.assertEqual(bob.send("NOTICE #dev :hi"), [])
        self.assertEqual(alice.read(), [])
        alice.send("MODE #dev +v bob")
        bob.read()
        bob.send("PRIVMSG #dev :voiced")
        self.assertEqual(alice.read(), [":bob!bob@msgsvc PRIVMSG #dev :voiced"])

    def test_the_join_refusals(self) -> None:
        alice, bob = self.alice, self.bob
        alice.send("JOIN #dev")
        alice.send("MODE #dev +i")
        self.assertEqual(numerics(bob.send("JOIN #dev")), ["473"])
        self.assertEqual(alice.send("INVITE bob #DEV"), [f":{SERVER} 341 alice bob :#dev"])
        self.assertEqual(bob.read(), [":alice!alice@msgsvc INVITE bob :#dev"])
        self.assertEqual(numerics(bob.send("JOIN #dev")), ["JOIN", "353", "366"])
        alice.read()
        self.assertEqual(numerics(alice.send("INVITE bob #dev")), ["443"])
        alice.send("KICK #dev bob", "MODE #dev -i+k sesame")
        bob.read()
        self.assertEqual(numerics(bob.send("JOIN #dev")), ["475"])
        self.assertEqual(numerics(bob.send("JOIN #dev nope")), ["475"])
        self.assertEqual(numerics(bob.send("JOIN #dev sesame")), ["JOIN", "353", "366"])
        alice.send("KICK #dev bob", "MODE #dev -k+l sesame 1")
        bob.read()
        self.assertEqual(numerics(bob.send("JOIN #dev sesame")), ["471"])
        alice.send("MODE #dev -l+b bob!*@*")
        self.assertEqual(alice.send("MODE #dev b")[0].split(" ")[1:5], ["367", "alice", "#dev", "bob!*@*"])
        self.assertEqual(numerics(bob.send("JOIN #dev")), ["474"])
        self.assertEqual(numerics(bob.send("JOIN #no!pe")), ["476"])

    def test_names_list_and_who_on_the_hub(self) -> None:
        alice, bob = self.alice, self.bob
        alice.send("JOIN #dev,#hidden", "MODE #hidden +s", "TOPIC #dev :ship it")
        bob.send("JOIN #dev")
        alice.read()
        got = bob.send("LIST")  # bob is not in #all: the rooms alone
        self.assertEqual(got[1:], [f":{SERVER} 322 bob #dev 2 :ship it", f":{SERVER} 323 bob :End of /LIST"])
        self.assertEqual(numerics(bob.send("NAMES #hidden")), ["366"])
        self.assertEqual(numerics(alice.send("NAMES #hidden")), ["353", "366"])
        self.assertEqual(
            bob.send("WHO #dev"),
            [
                f":{SERVER} 352 bob #dev alice msgsvc {SERVER} alice H@ :0 alice real",
                f":{SERVER} 352 bob #dev bob msgsvc {SERVER} bob H :0 bob real",
                f":{SERVER} 315 bob #dev :End of WHO list",
            ],
        )

    def test_an_accounts_sessions_share_its_rooms(self) -> None:
        one, two = self.irc(), self.irc()
        one.register("dave", f"PASS :{PASSWORD}")
        two.register("dave", f"PASS :{PASSWORD}")
        self.assertEqual(numerics(one.send("JOIN #dev")), ["JOIN", "353", "366"])
        self.assertEqual(numerics(two.read()), ["JOIN", "353", "366"])
        one.send("QUIT")
        one.session.connectionLost(Failure(ConnectionDone()))
        two.send("QUIT")
        two.session.connectionLost(Failure(ConnectionDone()))
        again = self.irc()
        got = again.register("dave", f"PASS :{PASSWORD}")  # a protected member stays one
        self.assertEqual(numerics(got)[-3:], ["JOIN", "353", "366"])

    def test_chanlimit_counts_all_and_the_rooms_a_user_may_join(self) -> None:
        got = " ".join(g for g in self.irc().register("erin") if " 005 " in g)
        self.assertIn("CHANLIMIT=#:51 ", got)  # --max-rooms-per-user 50, and #all


class RoomHistoryTests(IrcTestCase):
    """A room's history over draft/chathistory and its read position over draft/read-marker."""

    def setUp(self) -> None:
        super().setUp()
        store, clock = self.harness.store, self.harness.clock
        self.harness.hub.history = History(clock, store, HistoryPolicy())
        store.since["dave"] = 0.0
        self.dave = self.irc()
        caps = "CAP REQ :batch draft/chathistory draft/read-marker"
        self.dave.register("dave", caps, "CAP END", f"PASS :{PASSWORD}")
        self.alice = self.irc()
        self.alice.register("alice")
        self.dave.send("JOIN #Dev")
        self.alice.send("JOIN #dev")
        for n in range(3):
            clock.advance(0.001)
            self.alice.send(f"PRIVMSG #dev :dev {n}")
        self.dave.read()

    def test_a_members_history_and_targets_and_an_outsiders_refusal(self) -> None:
        got = self.dave.send("CHATHISTORY LATEST #dev * 10")
        rows = [g.split(" ", 2)[2] for g in got if " PRIVMSG " in g]
        self.assertEqual(rows, [f"PRIVMSG #Dev :dev {n}" for n in range(3)])
        got = self.dave.send(
            "CHATHISTORY TARGETS timestamp=1970-01-01T00:00:00Z timestamp=2262-01-01T00:00:00Z 10"
        )
        self.assertIn("CHATHISTORY TARGETS #Dev ", " ".join(got))
        carol = self.irc()
        carol.register("carol")
        (refused,) = carol.send("CHATHISTORY LATEST #dev * 10")
        self.assertIn(" FAIL CHATHISTORY INVALID_TARGET LATEST #dev ", refused)

    def test_targets_reads_no_unread_counts(self) -> None:
        counted: list[str] = []
        unread = self.harness.store.unread
        self.harness.store.unread = lambda *a: (counted.append(a[0]), unread(*a))[1]  # type: ignore[method-assign]
        got = self.dave.send("CHATHISTORY TARGETS timestamp=1970-01-01T00:00:00Z timestamp=2262-01-01T00:00:00Z 10")
        self.assertIn("CHATHISTORY TARGETS #Dev ", " ".join(got))
        self.assertEqual(counted, [])

    def test_a_marker_is_kept_up_to_the_newest_message_and_refused_where_there_is_none(self) -> None:
        self.harness.clock.advance(5)  # the history kept; the clock well past the newest message
        got = self.dave.send("MARKREAD #dev timestamp=2262-01-01T00:00:00.000Z")
        self.assertEqual(got, [f":{SERVER} MARKREAD #dev :timestamp=1970-01-12T13:46:40.003Z"])  # "dev 2"
        self.alice.send("JOIN #elsewhere")
        self.alice.send("PRIVMSG #elsewhere :not for dave")
        self.harness.clock.advance(0)
        fail = f":{SERVER} FAIL MARKREAD INVALID_PARAMS"
        for target in ("#elsewhere", "nobody", "alice"):  # not a member; no message with either name
            (refused,) = self.dave.send(f"MARKREAD {target} timestamp=1970-01-12T13:46:40.000Z")
            self.assertTrue(refused.startswith(f"{fail} {target} :"), refused)
        self.assertEqual(list(self.harness.store.reads["dave"]), ["#dev"])

    def test_a_read_position_in_a_room_is_said_with_the_room(self) -> None:
        self.dave.session.read_moved("#dev", "01M8TYR19J1HB1YED1Z05M91H8")
        (moved,) = self.dave.read()
        self.assertRegex(moved, rf"^:{SERVER} MARKREAD #Dev :timestamp=")

    def test_a_join_says_the_read_position_before_the_names(self) -> None:
        got = self.dave.send("JOIN #ops")
        self.assertEqual(numerics(got), ["JOIN", "MARKREAD", "353", "366"])
        self.assertEqual(got[1], f":{SERVER} MARKREAD #ops :*")
        labeled = self.irc()
        labeled.register(
            "dave", "CAP REQ :batch labeled-response draft/read-marker", "CAP END", f"PASS :{PASSWORD}"
        )
        got = labeled.send("@label=j JOIN #ops2")
        self.assertEqual(numerics(got), ["BATCH", "JOIN", "MARKREAD", "353", "366", "BATCH"])
        self.assertTrue(got[0].startswith("@label=j "), got)


class _LookedAt(dict[str, str]):
    """A session's rooms, counting the looks at them (what a walk through every session reads)."""

    def __init__(self, looks: list[int], rooms: dict[str, str]) -> None:
        super().__init__(rooms)
        self.looks = looks

    def __iter__(self) -> Iterator[str]:
        self.looks[0] += 1
        return super().__iter__()


class _CapsLookedAt(set[str]):
    """A session's capabilities, counting the looks at them."""

    def __init__(self, looks: list[int], caps: set[str]) -> None:
        super().__init__(caps)
        self.looks = looks

    def __contains__(self, cap: object) -> bool:
        self.looks[0] += 1
        return super().__contains__(cap)


class CostTests(IrcTestCase):
    """What a nick's rooms hearing of it costs, counted in looks at other sessions (not timed)."""

    def test_away_and_a_protected_member_going_and_coming_look_at_its_rooms_sessions_only(self) -> None:
        """Issue 32: AWAY, and dave (protected) going offline and back (away-notify), reach #dev's
        sessions from the rooms' index; the IRC sessions elsewhere (18: 20 connections an address) are not
        looked at (each was, for each of the three)."""
        looks = [0]
        bystanders = [self.irc() for _ in range(18)]
        for n, bystander in enumerate(bystanders):
            bystander.register(f"by{n}", "CAP REQ :away-notify", "CAP END")
            bystander.send("JOIN #elsewhere")
        for session in (bystander.session for bystander in bystanders):
            session.rooms, session.caps = _LookedAt(looks, session.rooms), _CapsLookedAt(looks, session.caps)
        alice, dave = self.irc(), self.irc()
        alice.register("alice", "CAP REQ :away-notify", "CAP END")
        dave.register("dave", "CAP REQ :away-notify", "CAP END", f"PASS :{PASSWORD}")
        alice.send("JOIN #dev")
        dave.send("JOIN #dev")
        alice.read()
        dave.send("AWAY :lunch")
        self.assertEqual(alice.read(), [":dave!dave@msgsvc AWAY :lunch"])
        dave.send("QUIT")
        dave.session.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(alice.read(), [":dave!dave@msgsvc AWAY :offline"])
        self.irc().register("dave", f"PASS :{PASSWORD}")
        self.assertEqual(alice.read(), [":dave!dave@msgsvc AWAY"])
        self.assertEqual(looks, [0])
        self.assertEqual({k: len(v) for k, v in self.factory.in_room.items()}, {"#elsewhere": 18, "#dev": 2})
