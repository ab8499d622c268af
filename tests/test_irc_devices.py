"""Several sessions of one account on IRC (issue 31): each a client of the nick, in step."""

from __future__ import annotations

import base64

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.hub.contracts import Kind, Message, UserRecord

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
