"""Several sessions of one account on IRC (issue 31): each a client of the nick, in step."""

from __future__ import annotations

import base64

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.irc.markers import position_at
from msgsvc.hub.contracts import HistoryPolicy, IUser, Kind, Message, Refusal, Refused, UserRecord
from msgsvc.hub.conversations import ALL
from msgsvc.hub.ids import message_id_below, message_id_floor

from .support.harness import PASSWORD, ServerHarness, lines
from .support.irc import SERVER, Irc, IrcTestCase, numerics

MESSAGE_ID = "01M8TYR19J1HB1YED1Z05M91H8"  # made at 2026-12-02T08:43:10.002Z


class OwnMessagesTests(IrcTestCase):
    def test_a_message_sent_from_another_session_shows_as_sent_by_the_nick_to_its_recipients(self) -> None:
        """The hub gives an account's other sessions what one of them sent (its sender their own name):
        IRC shows it as the nick's message to whom it went, as echo-message shows it to the sender."""
        alice = self.irc()
        alice.register("alice", "CAP REQ :message-tags", "CAP END")
        at = 1796200990.002
        alice.session.receive(Message("Alice", Kind.UNICAST, ("bob",), "hi", MESSAGE_ID, at))
        alice.session.receive(Message("alice", Kind.MULTICAST, ("bob", "carol"), "both", MESSAGE_ID, at))
        alice.session.receive(Message("alice", Kind.UNICAST, ("alice",), "me", MESSAGE_ID, at))
        self.assertEqual(
            alice.read(),
            [
                f"@msgid={MESSAGE_ID} :Alice!alice@msgsvc PRIVMSG bob :hi",
                f"@msgid={MESSAGE_ID} :alice!alice@msgsvc PRIVMSG bob,carol :both",
                f"@msgid={MESSAGE_ID} :alice!alice@msgsvc PRIVMSG alice :me",
            ],
        )

    def test_a_message_to_ones_own_nick_is_delivered_and_with_echo_message_echoed_too(self) -> None:
        """As Ergo does it and irctest's chathistory testMessagesToSelf asks: the sending session gets the
        delivery, and with echo-message the echo too (two identical lines, the label on the echo alone);
        the account's other sessions get it once."""
        one, two = self.irc(), self.irc()
        one.register("dave", f"PASS :{PASSWORD}", "CAP REQ :message-tags batch labeled-response", "CAP END")
        two.register("dave", f"PASS :{PASSWORD}", "CAP REQ :message-tags", "CAP END")
        one.read()
        (delivery,) = one.send("PRIVMSG dave :to myself")
        self.assertRegex(delivery, r"^@msgid=\S{26} :dave!dave@msgsvc PRIVMSG dave :to myself$")
        self.assertEqual(two.read(), [delivery])
        one.send("CAP REQ echo-message")
        delivery, echo = one.send("@label=xyz PRIVMSG dave :again")
        self.assertEqual(echo, "@label=xyz;" + delivery[1:])
        self.assertRegex(delivery, r"^@msgid=\S{26} :dave!dave@msgsvc PRIVMSG dave :again$")
        self.assertEqual(two.read(), [delivery])




def sasl(name: str) -> str:
    """SASL PLAIN's payload for ``name`` and the harness's password."""
    return "AUTHENTICATE " + base64.b64encode(f"\0{name}\0{PASSWORD}".encode()).decode()


class AttachTests(IrcTestCase):
    """A second IRC client with dave's password attaches to the nick dave (dave is protected)."""

    def dave(self, caps: str = "", by_sasl: bool = False, user: str = "dave") -> Irc:
        client = self.irc()
        if by_sasl:
            login = [f"CAP REQ :sasl {caps}".rstrip(), "AUTHENTICATE PLAIN", sasl("dave"), "CAP END"]
        else:
            login = [f"PASS :{PASSWORD}", *([f"CAP REQ :{caps}", "CAP END"] if caps else [])]
        got = client.send(*login, "NICK dave", f"USER {user} 0 * :dave")
        self.assertIn(f":{SERVER} 001 dave :Welcome to the msgsvc network, dave", got)
        return client

    def test_nobody_sees_a_second_session_come_or_one_of_two_go(self) -> None:
        _, bob = self.harness.register("bob")
        carol = self.irc()
        carol.register("carol")
        carol.send("JOIN #all", "MONITOR + dave")
        lines(bob)
        one = self.dave()
        came = [":dave!dave@msgsvc JOIN :#all", f":{SERVER} 730 carol :dave!dave@msgsvc"]
        self.assertEqual(carol.read(), came)
        self.assertEqual(lines(bob), ["JOINED dave"])
        two = self.dave(by_sasl=True)
        self.assertEqual((carol.read(), lines(bob), one.read()), ([], [], []))
        self.assertTrue(two.send("QUIT :two out")[-1].startswith("ERROR :Closing Link: "))
        two.session.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((carol.read(), lines(bob), one.read()), ([], [], []))  # no QUIT, no 731, no LEFT
        one.send("QUIT")
        one.session.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(carol.read(), [":dave!dave@msgsvc QUIT :left", f":{SERVER} 731 carol :dave"])
        self.assertEqual(lines(bob), ["LEFT dave"])

    def test_an_attached_session_is_in_all_as_its_nick_is_and_join_and_part_are_the_nicks(self) -> None:
        one = self.dave(user="first")
        one.send("JOIN #all")
        two = self.irc()
        got = two.register("dave", f"PASS :{PASSWORD}")
        joined = got.index(":dave!first@msgsvc JOIN :#all")  # the nick's mask: its first session's ident
        self.assertEqual(numerics(got[joined - 1 :]), ["376", "JOIN", "332", "333", "353", "366"])
        self.assertEqual(one.read(), [])
        self.assertEqual(two.send("PART #all :bye"), [":dave!first@msgsvc PART #all :bye"])
        self.assertEqual(one.read(), [":dave!first@msgsvc PART #all :bye"])
        self.assertEqual(numerics(one.send("JOIN #all")), ["JOIN", "332", "333", "353", "366"])
        self.assertEqual(numerics(two.read()), ["JOIN", "332", "333", "353", "366"])
        alone = self.irc()
        self.assertNotIn("JOIN", numerics(alone.register("carol")))  # nobody else's session is joined

    def test_each_session_gets_what_comes_and_what_the_other_sent(self) -> None:
        bob, bob_transport = self.harness.register("bob")
        one = self.dave("echo-message message-tags")
        two = self.dave("message-tags")
        for client in (one, two):
            client.send("JOIN #all")
        lines(bob_transport)
        bob.dataReceived(b"SEND dave :hi dave\r\nBROADCAST :hi all\r\n")
        got = one.read()
        self.assertEqual(got, two.read())  # the same msgid each
        self.assertRegex(got[0], r"^@msgid=\S{26} :bob!bob@msgsvc PRIVMSG dave :hi dave$")
        self.assertRegex(got[1], r"^@msgid=\S{26} :bob!bob@msgsvc PRIVMSG #all :hi all$")
        echo = one.send("@+draft/reply=x PRIVMSG bob :from one")
        self.assertRegex(echo[0], r"^@msgid=\S{26};\+draft/reply=x :dave!dave@msgsvc PRIVMSG bob :from one$")
        self.assertEqual(two.read(), echo)
        self.assertEqual(lines(bob_transport)[-1], "MSG dave unicast bob :from one")
        self.assertEqual(two.send("PRIVMSG #all :from two"), [])  # no echo-message: nothing back
        (copy,) = one.read()
        self.assertRegex(copy, r"^@msgid=\S{26} :dave!dave@msgsvc PRIVMSG #all :from two$")
        carol = self.irc()
        carol.register("carol", "CAP REQ :message-tags", "CAP END")
        one.read(), two.read()
        sent = one.send("@+typing=active TAGMSG carol")
        self.assertRegex(sent[0], r"^@msgid=\S{26};\+typing=active :dave!dave@msgsvc TAGMSG :carol$")
        self.assertEqual(two.read(), sent)  # the sender's other IRC session too
        self.assertEqual(carol.read(), sent)
        carol.send("TAGMSG dave")
        self.assertEqual(numerics(one.read() + two.read()), ["TAGMSG", "TAGMSG"])

    def test_refusals(self) -> None:
        self.dave()
        nobody = self.irc()
        got = nobody.send("NICK dave", "USER d 0 * :d")  # without the password, as before
        self.assertEqual(got, [f":{SERVER} 433 dave dave :dave is protected: give its password"])
        two = self.dave()
        got = two.send("NICK other")  # refused on each session, as with one
        self.assertEqual(
            got, [f":{SERVER} 432 dave other :A msgsvc name cannot change: reconnect as the new one"]
        )
        harness = ServerHarness(records=(UserRecord("dave", 1.0, 1.0, protected=True),), max_sessions=2)
        factory = IrcFactory(harness.clients, SERVER)
        Irc(harness, factory).register("dave", f"PASS :{PASSWORD}")
        Irc(harness, factory).register("dave", f"PASS :{PASSWORD}")
        third, by_sasl = Irc(harness, factory), Irc(harness, factory)
        refused = f":{SERVER} 433 dave dave :dave has its limit of 2 sessions"
        self.assertEqual(third.send(f"PASS :{PASSWORD}", "NICK dave", "USER d 0 * :d"), [refused])
        self.assertFalse(third.transport.disconnecting)  # it may try another nick
        got = by_sasl.send("CAP REQ :sasl", "AUTHENTICATE PLAIN", sasl("dave"))
        full = "SASL authentication failed: dave has its limit of 2 sessions"
        self.assertEqual(got[-1], f":{SERVER} 904 * :{full}")


class Reads:
    """The account's read positions as the hub keeps them (only forward), for one session's user."""

    def __init__(self, user: IUser, protected: bool = True) -> None:
        self.user = user
        self.protected = protected
        self.kept: dict[str, str] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self.user, name)

    def mark_read(self, conversation: str, position: str) -> Deferred[str]:
        if not self.protected:
            return fail(Refused(Refusal.HISTORY_FORBIDDEN, "alice is not protected"))
        kept = self.kept[conversation] = max(self.kept.get(conversation, ""), position)
        return succeed(kept)

    def read_position(self, conversation: str) -> Deferred[str | None]:
        if not self.protected:
            return fail(Refused(Refusal.HISTORY_FORBIDDEN, "alice is not protected"))
        return succeed(self.kept.get(conversation))


class ReadMarkerTests(IrcTestCase):
    """IRCv3 draft/read-marker, as irctest's read_marker.py checks it (on #all and nicks)."""

    def client(
        self, caps: str = "draft/read-marker", protected: bool = True, nick: str = "alice"
    ) -> tuple[Irc, Reads]:
        client = self.irc()
        client.register(nick, f"CAP REQ :{caps}", "CAP END")
        reads = Reads(client.session.user, protected)
        client.session.user = reads  # type: ignore[assignment]
        return client, reads

    def test_offered_with_the_history_only(self) -> None:
        self.assertIn("draft/read-marker", self.irc().send("CAP LS 302")[0])
        off = IrcFactory(self.harness.clients, SERVER, history=HistoryPolicy(days=0))
        client = Irc(self.harness, off)
        self.assertNotIn("draft/read-marker", client.send("CAP LS 302")[0])
        client.register("alice", "CAP END")
        self.assertEqual(numerics(client.send("MARKREAD #all")), ["421"])

    def test_set_get_and_never_back(self) -> None:
        alice, reads = self.client()
        self.assertEqual(alice.send("MARKREAD #all"), [f":{SERVER} MARKREAD #all :*"])
        newer, older = "2019-06-01T12:00:00.000Z", "2019-01-01T00:00:00.000Z"
        self.assertEqual(
            alice.send(f"MARKREAD #ALL :timestamp={newer}"), [f":{SERVER} MARKREAD #ALL :timestamp={newer}"]
        )
        # The position is the greatest id of that millisecond: every message of it counts as read.
        self.assertEqual(reads.kept[ALL], message_id_below(message_id_floor(1559390400.001)))
        self.assertEqual(
            alice.send(f"MARKREAD #all :timestamp={older}"), [f":{SERVER} MARKREAD #all :timestamp={newer}"]
        )
        self.assertEqual(alice.send("MARKREAD #all"), [f":{SERVER} MARKREAD #all :timestamp={newer}"])
        when = "2023-07-04T00:00:00.123Z"
        self.assertEqual(
            alice.send(f"MARKREAD Bob :timestamp={when}"), [f":{SERVER} MARKREAD Bob :timestamp={when}"]
        )
        self.assertEqual(set(reads.kept), {ALL, "alice,bob"})

    def test_refusals(self) -> None:
        alice, reads = self.client()
        fail = f":{SERVER} FAIL MARKREAD"
        self.assertEqual(alice.send("MARKREAD"), [f"{fail} NEED_MORE_PARAMS :Missing parameters"])
        for bad in ("*", "timestamp=not-a-timestamp", "msgid=01M8TYR19J1HB1YED1Z05M91H8", "2019-01-01"):
            (got,) = alice.send(f"MARKREAD #all {bad}")
            self.assertTrue(got.startswith(f"{fail} INVALID_PARAMS #all :"), got)
        (got,) = alice.send("MARKREAD #no!pe timestamp=2019-01-01T00:00:00.000Z")  # no room's name
        self.assertTrue(got.startswith(f"{fail} INVALID_PARAMS #no!pe :"), got)
        self.assertEqual(reads.kept, {})

    def test_a_name_without_an_account_keeps_none(self) -> None:
        alice, _ = self.client(protected=False)
        self.assertEqual(alice.send("MARKREAD bob"), [f":{SERVER} MARKREAD bob :*"])
        self.assertEqual(
            alice.send("MARKREAD bob timestamp=2019-01-01T00:00:00.000Z"),
            [f":{SERVER} FAIL MARKREAD ACCOUNT_REQUIRED bob :alice is not protected"],
        )

    def test_join_says_the_marker_before_the_end_of_names(self) -> None:
        alice, reads = self.client()
        reads.kept[ALL] = str(position_at("timestamp=2020-03-15T10:00:00.000Z"))
        got = alice.send("JOIN #all")
        self.assertEqual(numerics(got), ["JOIN", "332", "333", "MARKREAD", "353", "366"])
        self.assertEqual(got[3], f":{SERVER} MARKREAD #all :timestamp=2020-03-15T10:00:00.000Z")
        plain, _ = self.client("server-time", nick="carol")
        self.assertEqual(numerics(plain.send("JOIN #all")), ["JOIN", "332", "333", "353", "366"])

    def test_a_labeled_get_and_join_are_one_reply(self) -> None:
        alice, _ = self.client("draft/read-marker labeled-response batch")
        self.assertEqual(alice.send("@label=a MARKREAD #all"), [f"@label=a :{SERVER} MARKREAD #all :*"])
        got = alice.send("@label=b JOIN #all")
        self.assertEqual(got[0], f"@label=b :{SERVER} BATCH +2 labeled-response")
        self.assertEqual(numerics(got)[1:], ["JOIN", "332", "333", "MARKREAD", "353", "366", "BATCH"])

    def test_a_move_from_another_session_is_said_to_those_that_asked(self) -> None:
        alice, _ = self.client()
        plain, _ = self.client("server-time", nick="carol")
        when = "timestamp=2022-11-11T11:11:11.111Z"
        position = position_at(when)
        assert position is not None
        for session in (alice.session, plain.session):
            session.read_moved(ALL, position)
            session.read_moved("alice,bob", position)
            session.read_moved("alice", position)
            session.read_moved("alice,bob,carol", position)  # no IRC target
        self.assertEqual(
            alice.read(),
            [f":{SERVER} MARKREAD {target} :{when}" for target in ("#all", "bob", "alice")],
        )
        self.assertEqual(plain.read(), [])


class ReadMarkerInStepTests(IrcTestCase):
    """MARKREAD on the hub's read positions: moved from one session, every other one is told."""

    def setUp(self) -> None:
        records = (UserRecord("dave", 1.0, 1.0, protected=True),)
        self.harness = ServerHarness(records=records, history=HistoryPolicy())
        self.factory = IrcFactory(self.harness.clients, SERVER)

    def dave(self, caps: str) -> Irc:
        client = self.irc()
        client.register("dave", f"PASS :{PASSWORD}", f"CAP REQ :{caps}", "CAP END")
        return client

    def test_a_marker_set_on_one_session_reaches_the_others(self) -> None:
        one, two = self.dave("draft/read-marker"), self.dave("draft/read-marker")
        plain = self.dave("server-time")
        line, line_transport = self.harness.register("dave", PASSWORD, version=10)
        erin, _ = self.harness.register("erin")
        erin.dataReceived(b"BROADCAST :to read\r\n")  # #all's newest message, at the clock's 13:46:40
        self.harness.end_of_pass()
        for client in (one, two, plain):
            client.read()
        lines(line_transport)
        when = "timestamp=1970-01-12T13:46:39.500Z"
        moved = f":{SERVER} MARKREAD #all :{when}"
        self.assertEqual(one.send(f"MARKREAD #all {when}"), [moved])
        self.assertEqual((two.read(), plain.read()), ([moved], []))
        self.assertEqual(lines(line_transport), [f"READ #all {position_at(when)}"])
        older = "timestamp=1970-01-12T13:46:39.000Z"
        self.assertEqual(one.send(f"MARKREAD #all {older}"), [moved])  # not moved: nobody else is told
        self.assertEqual((two.read(), lines(line_transport)), ([], []))
        self.assertEqual(two.send("MARKREAD #all"), [moved])
        later = "timestamp=1970-01-12T13:46:39.900Z"
        line.dataReceived(f"READ #all {position_at(later)}\r\n".encode())  # from the line front
        self.assertEqual(lines(line_transport), [f"READ #all {position_at(later)}"])
        for client in (one, two):
            self.assertEqual(client.read(), [f":{SERVER} MARKREAD #all :{later}"])
        self.harness.clock.advance(5)
        got = one.send("MARKREAD #all timestamp=2262-01-01T00:00:00.000Z")  # the newest message's, not now
        self.assertEqual(got, [f":{SERVER} MARKREAD #all :timestamp=1970-01-12T13:46:40.000Z"])
