"""Issue 31 over real sockets: one account on two web pages and an IRC client at once, and a TCP user
(``twistd -n msgsvc`` with --listen, --web and --irc)."""

from __future__ import annotations

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from .support.processes import Peer, WebPeer, free_ports, run_msgsvc

SERVER = "irc.msgsvc.test"
PASSWORD = "correct horse"
ID_TIME = r"[0-9A-Z]{26} \S+Z"


class DevicesEndToEndTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.port, self.web_port, self.irc_port = free_ports(3)
        args = ["--db", os.path.join(self.dir, "names.sqlite3"), "--irc-server-name", SERVER]
        args += ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        args += ["--web", f"tcp:{self.web_port}:interface=127.0.0.1"]
        args += ["--irc", f"tcp:{self.irc_port}:interface=127.0.0.1"]
        run_msgsvc(self, self.dir, args, [self.port, self.web_port, self.irc_port])

    def login(self, peer: Peer, name: str, password: str | None = None) -> Peer:
        self.addCleanup(peer.close)
        peer.send("VERSION 10")
        peer.send(f"HELLO {name}" if password is None else f"HELLO {name} :{password}")
        self.assertEqual(peer.until("WELCOME")[-1], f"WELCOME {name} :welcome to msgsvc")
        peer.until("ENDHISTORY #all")
        return peer

    def test_two_pages_and_an_irc_client_of_one_account_with_a_tcp_user(self) -> None:
        """Alice on a phone's page, a laptop's page and an IRC client, Bob over TCP: each of alice's
        sessions sees every message to her and what the others sent, with one id; SENT and the IRC
        echo only where they belong; Bob hears JOINED once and LEFT when the last session leaves."""
        bob = self.login(Peer(self.port), "bob")
        phone = self.login(WebPeer(self.web_port), "alice", PASSWORD)  # claims the name
        self.assertEqual(bob.until("ACCOUNT"), ["JOINED alice", "ACCOUNT alice protected"])
        laptop = self.login(WebPeer(self.web_port), "alice", PASSWORD)
        irc = Peer(self.irc_port)
        self.addCleanup(irc.close)
        for line in ("CAP LS 302", f"PASS :{PASSWORD}", "NICK alice", "USER alice 0 * :Alice"):
            irc.send(line)
        irc.send("CAP REQ :echo-message message-tags")
        irc.send("CAP END")
        irc.until(f":{SERVER} 376 ")

        phone.send("SEND bob :from the phone")
        sent = phone.until("SENT")[-1]
        self.assertRegex(sent, f"^SENT 1 - - {ID_TIME}$")
        message_id = sent.split(" ")[4]
        got = bob.until("MSG")[-1]
        self.assertEqual(got, f"MSG alice unicast bob {' '.join(sent.split(' ')[4:])} :from the phone")
        self.assertEqual(laptop.until("MSG")[-1], got)  # as sent by alice, with the same id and time
        self.assertEqual(
            irc.until("@")[-1].partition(" ")[2], ":alice!alice@msgsvc PRIVMSG bob :from the phone"
        )

        bob.send("SEND alice :to every device")
        self.assertRegex(bob.until("SENT")[-1], f"^SENT 1 - - {ID_TIME}$")  # one user, three sessions
        to_phone, to_laptop = phone.until("MSG")[-1], laptop.until("MSG")[-1]
        self.assertEqual(to_phone, to_laptop)
        self.assertRegex(to_phone, f"^MSG bob unicast alice {ID_TIME} :to every device$")
        to_irc = irc.until("@")[-1]
        self.assertEqual(to_irc.partition(" ")[2], ":bob!bob@msgsvc PRIVMSG alice :to every device")
        self.assertEqual(re.search(r"msgid=([0-9A-Z]{26})", to_irc)[1], to_phone.split(" ")[4])  # type: ignore[index]

        irc.send("PRIVMSG bob :from irc")
        echo = irc.until("@")[-1]  # echo-message: the IRC client's own, once
        self.assertEqual(echo.partition(" ")[2], ":alice!alice@msgsvc PRIVMSG bob :from irc")
        from_irc = bob.until("MSG")[-1]
        self.assertRegex(from_irc, f"^MSG alice unicast bob {ID_TIME} :from irc$")
        self.assertEqual((phone.until("MSG")[-1], laptop.until("MSG")[-1]), (from_irc, from_irc))
        self.assertNotEqual(from_irc.split(" ")[4], message_id)

        phone.send("READ bob 7ZZZZZZZZZZZZZZZZZZZZZZZZZ")  # past the newest message: that message's
        read = f"READ alice,bob {from_irc.split(' ')[4]}"
        self.assertEqual((phone.line(), laptop.line()), (read, read))
        phone.send("READ zed,yves 7ZZZZZZZZZZZZZZZZZZZZZZZZZ")  # a conversation never had: nothing kept
        self.assertEqual(phone.line(), "ERROR HISTORY_FORBIDDEN :no message of that conversation is kept for you to read")

        laptop.send("QUIT")
        laptop.until("BYE")
        irc.send("QUIT :bye")
        irc.until("ERROR")
        bob.send("PING :nobody left yet")  # nothing came before the answer: no LEFT
        self.assertEqual(bob.line(), "PONG :nobody left yet")
        phone.send("QUIT")
        phone.until("BYE")
        self.assertEqual(bob.line(), "LEFT alice")
