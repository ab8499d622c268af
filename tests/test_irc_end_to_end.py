"""``twistd -n msgsvc --irc``: IRC clients (the raw protocol) and TCP clients together, over loopback."""

from __future__ import annotations

import base64
import os
import signal
import socket
import ssl
import subprocess
import time

from twisted.trial.unittest import SynchronousTestCase

from msgsvc.state.sqlite import Database

from .support.processes import Peer, free_ports, run_msgsvc
from .support.tls import make_certificate

SERVER = "irc.msgsvc.test"


class IrcEndToEndTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "names.sqlite3")
        self.port, self.irc_port = free_ports(2)

    def start(self, irc: str = "tcp", options: str = "") -> subprocess.Popen[bytes]:
        """Run the server; its --irc endpoint is ``irc`` (tcp or ssl) with ``options``."""
        args = ["--db", self.db, "--irc-server-name", SERVER]
        args += ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        args += ["--irc", f"{irc}:{self.irc_port}:interface=127.0.0.1{options}"]
        return run_msgsvc(self, self.dir, args, [self.port, self.irc_port])

    def tcp(self, name: str, password: str | None = None) -> Peer:
        peer = Peer(self.port)
        self.addCleanup(peer.close)
        peer.send(f"HELLO {name}" if password is None else f"HELLO {name} :{password}")
        peer.until("ENDUSERS")
        return peer

    def protect(self, name: str) -> None:
        """Give ``name`` the password "correct horse", and leave."""
        peer = self.tcp(name)
        peer.send("PASSWORD :correct horse")
        peer.until("PROTECTED")
        peer.send("QUIT")
        peer.until("BYE")

    def irc(self, nick: str, *after: str, negotiate: bool = False) -> Peer:
        """An IRC client: ``CAP LS 302`` first if it ``negotiate``s, NICK and USER, then ``after``."""
        peer = Peer(self.irc_port)
        self.addCleanup(peer.close)
        if negotiate:
            peer.send("CAP LS 302")
        peer.send(f"NICK {nick}")
        peer.send(f"USER {nick} 0 * :{nick}")
        for line in after:
            peer.send(line)
        return peer

    def test_irc_and_tcp_users_talk(self) -> None:
        self.start()
        bob = self.tcp("bob")
        alice = self.irc("alice")
        welcome = alice.until(f":{SERVER} 376 ")
        self.assertEqual(welcome[0], f":{SERVER} 001 alice :Welcome to the msgsvc network, alice")
        self.assertEqual(bob.line(), "JOINED alice")
        alice.send("JOIN #all")
        self.assertEqual(alice.until(f":{SERVER} 366 ")[3], f":{SERVER} 353 alice = #all :alice bob")
        alice.send("PRIVMSG bob :hi from irc")
        self.assertEqual(bob.line(), "MSG alice unicast bob :hi from irc")
        bob.send("SEND alice :hi from tcp")
        bob.send("BROADCAST :to everyone")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc PRIVMSG alice :hi from tcp")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc PRIVMSG #all :to everyone")
        alice.send("PRIVMSG #all :hello all")
        self.assertEqual(bob.until("MSG alice broadcast")[-1], "MSG alice broadcast * :hello all")
        bob.send("QUIT")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc QUIT :left")
        alice.send("QUIT :done")
        self.assertTrue(alice.line().startswith("ERROR :Closing Link: "))

    def test_an_irc_user_and_a_version_11_user_in_one_room(self) -> None:
        """Issue 32: alice (IRC) creates #dev, bob (line protocol 11) joins; messages both ways; the
        topic, a mode and a kick are seen by both, each in its protocol."""
        self.start()
        alice = self.irc("alice")
        alice.until(f":{SERVER} 376 ")
        alice.send("JOIN #dev")
        joined = alice.until(f":{SERVER} 366 ")
        self.assertEqual(joined[0], ":alice!alice@msgsvc JOIN :#dev")
        self.assertEqual(joined[1], f":{SERVER} 353 alice = #dev :@alice")
        bob = Peer(self.port)
        self.addCleanup(bob.close)
        bob.send("VERSION 11")
        bob.send("HELLO bob")
        bob.until("ENDUSERS")
        bob.send("JOIN #Dev")
        self.assertEqual(bob.until("ENDMEMBERS")[-1], "ENDMEMBERS #dev 2")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc JOIN :#dev")

        alice.send("PRIVMSG #dev :hello room")
        self.assertRegex(bob.until("MSG")[-1], r"^MSG alice room #dev \S+ \S+ :hello room$")
        bob.send("SEND #dev :hello alice")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc PRIVMSG #dev :hello alice")
        self.assertRegex(bob.until("SENT")[-1], r"^SENT 1 ")

        alice.send("TOPIC #dev :ship it")
        self.assertEqual(alice.line(), ":alice!alice@msgsvc TOPIC #dev :ship it")
        self.assertRegex(bob.until("TOPIC")[-1], r"^TOPIC #dev alice \S+ :ship it$")
        alice.send("MODE #dev +m")
        self.assertEqual(alice.line(), ":alice!alice@msgsvc MODE #dev :+m")
        self.assertEqual(bob.until("MODE")[-1], "MODE #dev alice +m")
        bob.send("SEND #dev :may I?")  # +m: bob is neither operator nor voiced
        self.assertEqual(bob.until("ERROR")[-1].split(" ")[1], "MODERATED")
        bob.send("TOPIC #dev :mine")  # +t: operators only
        self.assertEqual(bob.until("ERROR")[-1].split(" ")[1], "NOT_ROOM_OPERATOR")
        alice.send("KICK #dev bob")
        self.assertEqual(alice.line(), ":alice!alice@msgsvc KICK #dev bob :alice")
        self.assertEqual(bob.until("KICKED")[-1], "KICKED #dev bob alice :alice")
        alice.send("NAMES #dev")
        self.assertEqual(alice.until(f":{SERVER} 366 ")[0], f":{SERVER} 353 alice = #dev :@alice")
        # A ban set on IRC by mask binds bob (kicked) on the line protocol: his user part is his name,
        # his host the one every mask shows or his address.
        alice.send("MODE #dev +b *!BOB@127.0.0.*")
        self.assertEqual(alice.line(), ":alice!alice@msgsvc MODE #dev +b :*!BOB@127.0.0.*")
        bob.send("JOIN #dev")
        self.assertEqual(bob.until("ERROR")[-1].split(" ")[1], "BANNED")
        alice.send("MODE #dev b")
        self.assertRegex(alice.line(), rf"^:{SERVER} 367 alice #dev \*!BOB@127\.0\.0\.\* alice :\d+$")

    def test_bans_to_version_11_and_12_clients_and_a_banned_member_silenced(self) -> None:
        """Version 12 shows bans as masks, version 11 a name's ban by the name (another mask whole); a
        member banned after joining may not speak (BANNED, IRC 404) until voiced."""
        self.start()
        alice = self.irc("alice")
        alice.until(f":{SERVER} 376 ")
        alice.send("JOIN #ops")
        alice.until(f":{SERVER} 366 ")
        dave = self.irc("dave", "JOIN #ops")
        dave.until(f":{SERVER} 366 ")
        clients = {}
        for name, version in (("bob", 11), ("carol", 12)):
            peer = clients[name] = Peer(self.port)
            self.addCleanup(peer.close)
            peer.send(f"VERSION {version}")
            self.assertEqual(peer.line(), f"VERSION {version} 90")
            peer.send(f"HELLO {name}")
            peer.until("ENDUSERS")
            peer.send("JOIN #ops")
            peer.until("ENDMEMBERS")
        bob, carol = clients["bob"], clients["carol"]
        alice.send("MODE #ops +bb bob *!*@192.0.2.*")
        self.assertEqual(bob.until("MODE")[-1], "MODE #ops alice +bb bob *!*@192.0.2.*")
        self.assertEqual(carol.until("MODE")[-1], "MODE #ops alice +bb bob!*@* *!*@192.0.2.*")
        bob.send("MODE #ops b")
        self.assertEqual([line.split(" ")[2] for line in bob.until("ENDBANS")], ["bob", "*!*@192.0.2.*", "2"])
        carol.send("MODE #ops b")
        self.assertEqual([line.split(" ")[2] for line in carol.until("ENDBANS")], ["bob!*@*", "*!*@192.0.2.*", "2"])
        bob.send("SEND #ops :still here?")  # a member, banned after joining
        self.assertEqual(bob.until("ERROR")[-1], "ERROR BANNED :you are banned from #ops: you may not speak there")
        alice.send("MODE #ops +b dave")
        dave.until(":alice!alice@msgsvc MODE #ops +b :dave!*@*")
        dave.send("PRIVMSG #ops :me neither?")
        refused = f":{SERVER} 404 dave #ops :Cannot send to channel: you are banned from #ops: you may not speak there"
        self.assertEqual(dave.line(), refused)
        alice.send("MODE #ops +v bob")
        bob.until("MODE #ops alice +v bob")
        bob.send("SEND #ops :voiced")
        self.assertRegex(bob.until("SENT")[-1], r"^SENT 3 ")
        self.assertRegex(carol.until("MSG")[-1], r"^MSG bob room #ops \S+ \S+ :voiced$")

    def test_a_protected_member_offline_stays_in_its_rooms_shown_away(self) -> None:
        """Issue 32: dave (protected) leaves: alice's client sees him part #all and go away in #dev, not
        quit (he is still #dev's member, and NAMES says so); back, he joins #all and is back in #dev."""
        self.start()
        self.protect("dave")
        dave = self.irc("dave", "PASS :correct horse", "CAP END", "JOIN #all,#dev", negotiate=True)
        dave.until(f":{SERVER} 366 dave #dev ")
        alice = self.irc("alice", "CAP REQ :away-notify", "CAP END", "JOIN #all,#dev", negotiate=True)
        alice.until(f":{SERVER} 366 alice #dev ")
        dave.send("QUIT")
        dave.until("ERROR")
        self.assertEqual(alice.line(), ":dave!dave@msgsvc PART #all :offline")
        self.assertEqual(alice.line(), ":dave!dave@msgsvc AWAY :offline")
        alice.send("NAMES #dev")
        self.assertEqual(alice.until(f":{SERVER} 366 ")[0], f":{SERVER} 353 alice = #dev :alice @dave")
        alice.send("WHO #dev")
        who = alice.until(f":{SERVER} 315 ")
        self.assertEqual(who[1], f":{SERVER} 352 alice #dev dave msgsvc {SERVER} dave G@ :0 dave")  # gone

        again = self.irc("dave", "PASS :correct horse", "CAP END", negotiate=True)
        self.assertEqual(again.until(f":{SERVER} 366 dave #dev ")[-3], ":dave!dave@msgsvc JOIN :#dev")
        self.assertEqual(alice.line(), ":dave!dave@msgsvc JOIN :#all")
        self.assertEqual(alice.line(), ":dave!dave@msgsvc AWAY")
        alice.send("PING :x")  # nothing else came: no QUIT, no JOIN #dev
        self.assertEqual(alice.line(), f":{SERVER} PONG {SERVER} :x")

    def test_a_protected_name_over_sasl_gets_what_waited_through_a_kill(self) -> None:
        server = self.start()
        self.protect("dave")
        bob = self.tcp("bob")
        bob.send("SEND dave :kept for you")
        self.assertEqual(bob.until("SENT"), ["SENT 0 dave dave"])
        server.send_signal(signal.SIGKILL)
        server.wait()
        self.start()

        token = base64.b64encode(b"\0dave\0correct horse").decode()
        irc = self.irc("dave", "CAP REQ :sasl server-time", "AUTHENTICATE PLAIN", negotiate=True)
        self.assertEqual(irc.until("AUTHENTICATE +")[-1], "AUTHENTICATE +")
        irc.send(f"AUTHENTICATE {token}")
        self.assertTrue(irc.until(f":{SERVER} 903 ")[-1].endswith(":SASL authentication successful"))
        irc.send("CAP END")
        got = irc.until("PING :ack-")
        (delayed,) = [g for g in got if " PRIVMSG dave " in g]
        self.assertRegex(
            delayed,
            r"^@time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z :bob!bob@msgsvc PRIVMSG dave :kept for you$",
        )
        irc.send(f"PONG :{got[-1].split(':')[1]}")
        irc.send("QUIT")
        irc.until("ERROR")

        again = self.tcp("dave", "correct horse")  # acknowledged: nothing comes again
        again.send("PING :x")
        self.assertEqual(again.line(), "PONG :x")

    def test_over_tls(self) -> None:
        folder = os.path.join(self.dir, "trusted")
        os.makedirs(folder)
        cert, key = make_certificate(folder, "localhost")
        self.start("ssl", f":privateKey={key}:certKey={cert}")
        bob = self.tcp("bob")
        context = ssl.create_default_context(cafile=cert)
        raw = socket.create_connection(("127.0.0.1", self.irc_port), timeout=10)
        with context.wrap_socket(raw, server_hostname="localhost") as tls, tls.makefile("rwb") as irc:
            irc.write(b"NICK alice\r\nUSER alice 0 * :Alice\r\nPRIVMSG bob :over TLS\r\nQUIT :done\r\n")
            irc.flush()
            got = irc.read().decode().splitlines()  # to the close: the server ends the TLS session
        self.assertTrue(got[0].startswith(f":{SERVER} 001 alice "), got)
        self.assertTrue(got[-1].startswith("ERROR :Closing Link: "), got)
        self.assertEqual(bob.until("MSG"), ["JOINED alice", "MSG alice unicast bob :over TLS"])

    def test_a_bystander_is_answered_while_attackers_run_the_worst_commands(self) -> None:
        """Issue 27: with a log of 3,000 names, attackers send the commands that froze or slowed the
        server (a long USER then PRIVMSG, NAMES and PRIVMSG naming #all 1,600 times, WHO masks, MOTD,
        LIST); a bystander's PING is answered within seconds all along (a freeze is what this catches)."""
        database = Database(self.db)
        database.record_seen([(f"user{i:04}", 1.0) for i in range(3000)])
        database.close()
        self.start()
        bob = self.tcp("bob")
        worst = [
            "PRIVMSG mallory :" + "é" * 2048,
            "PRIVMSG mallory :hi",
            "NAMES " + ",".join(["#all"] * 1600),
            "JOIN #all",
            "PRIVMSG #all," + ",".join(["#all"] * 1600) + " :x",
            "WHO " + "*a" * 30 + "*b",
            "WHO *",
            "MOTD",
            "LIST",
        ]
        attackers = []
        for i in range(4):
            attacker = socket.create_connection(("127.0.0.1", self.irc_port), timeout=10)
            self.addCleanup(attacker.close)
            nick = f"mallory{i}" if i else "mallory"
            burst = [f"NICK {nick}", f"USER {'a' * 480} 0 * :{'r' * 400}", *worst * 10]
            attacker.sendall("".join(f"{line}\r\n" for line in burst).encode())
            attackers.append(attacker)
        started = time.monotonic()
        for n in range(15):
            sent = time.monotonic()
            bob.send(f"PING :{n}")
            self.assertEqual(bob.until("PONG")[-1], f"PONG :{n}")
            self.assertLess(time.monotonic() - sent, 5.0)
            time.sleep(0.1)
        self.assertLess(time.monotonic() - started, 30.0)
        bob.send("BROADCAST :still here")
        bob.until("SENT")

    def test_two_irc_sessions_of_one_account_beside_a_line_client(self) -> None:
        """Issue 31: dave's two IRC clients (SASL, then PASS) and bob on the line protocol: each of dave's
        sessions sees everything to dave and what the other sent, with the same msgid; echo only where
        asked; a read marker moved on one reaches the other; one QUIT is seen by nobody, the last is
        bob's LEFT."""
        self.start()
        self.protect("dave")
        bob = self.tcp("bob")
        token = base64.b64encode(b"\0dave\0correct horse").decode()
        caps = "CAP REQ :sasl echo-message message-tags draft/read-marker"
        one = self.irc("dave", caps, "AUTHENTICATE PLAIN", negotiate=True)
        one.until("AUTHENTICATE +")
        one.send(f"AUTHENTICATE {token}")
        one.send("CAP END")
        one.until(f":{SERVER} 376 ")
        one.send("JOIN #all")
        self.assertEqual(one.until(f":{SERVER} 366 ")[3], f":{SERVER} MARKREAD #all :*")
        self.assertEqual(bob.line(), "JOINED dave")
        their_caps = "CAP REQ :message-tags draft/read-marker"
        two = self.irc("dave", "PASS :correct horse", their_caps, "CAP END", negotiate=True)
        welcome = two.until(f":{SERVER} 366 ")
        self.assertIn(f":{SERVER} 001 dave :Welcome to the msgsvc network, dave", welcome)
        burst = [w for w in welcome if w.split(" ")[1] in ("JOIN", "MARKREAD")]
        self.assertEqual(burst, [":dave!dave@msgsvc JOIN :#all", f":{SERVER} MARKREAD #all :*"])

        bob.send("SEND dave :to dave")
        self.assertEqual(bob.line(), "SENT 1 - -")
        got = [one.line(), two.line()]
        self.assertEqual({g.partition(" ")[2] for g in got}, {":bob!bob@msgsvc PRIVMSG dave :to dave"})
        self.assertEqual(got[0].partition(" ")[0], got[1].partition(" ")[0])  # the same msgid
        one.send("PRIVMSG bob :from one")
        self.assertEqual(bob.until("MSG"), ["MSG dave unicast bob :from one"])
        echo, copy = one.line(), two.line()
        self.assertEqual(echo, copy)
        self.assertRegex(copy, r"^@msgid=[0-9A-Z]{26} :dave!dave@msgsvc PRIVMSG bob :from one$")
        two.send("PRIVMSG #all :from two")  # two has no echo-message: it gets nothing back
        self.assertEqual(bob.until("MSG"), ["MSG dave broadcast * :from two"])
        self.assertRegex(one.line(), r"^@msgid=\S+ :dave!dave@msgsvc PRIVMSG #all :from two$")
        one.send("MARKREAD #all timestamp=2024-01-02T03:04:05.678Z")
        moved = f":{SERVER} MARKREAD #all :timestamp=2024-01-02T03:04:05.678Z"
        self.assertEqual(one.line(), moved)
        self.assertEqual(two.line(), moved)
        one.send("MARKREAD nobody timestamp=2024-01-02T03:04:05.678Z")  # no message with nobody: not kept
        self.assertRegex(one.line(), f"^:{SERVER} FAIL MARKREAD INVALID_PARAMS nobody :")

        one.send("QUIT :one out")
        self.assertTrue(one.line().startswith("ERROR :Closing Link: "))
        for peer, answer in ((two, f":{SERVER} PONG {SERVER} :x"), (bob, "PONG :x")):
            peer.send("PING :x")  # nothing came before the answer: no QUIT, no LEFT
            self.assertEqual(peer.line(), answer)
        two.send("QUIT")
        self.assertEqual(bob.line(), "LEFT dave")
