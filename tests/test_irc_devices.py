"""Several sessions of one account on IRC (issue 31): each a client of the nick, in step."""

from __future__ import annotations

from msgsvc.hub.contracts import Kind, Message

from .support.irc import IrcTestCase

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

