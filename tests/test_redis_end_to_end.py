"""``twistd -n msgsvc --redis URL`` against a real redis-server: the state lives in Redis."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

from .support.processes import ROOT, TWISTD, Peer, free_port, reap, wait_listening
from .support.redisserver import RedisCase
from .support.roomexport import exports_rooms
from .support.tls import make_certificate


class RedisServerCase(RedisCase):
    """A msgsvc server on the test's redis-server: ways to start it, and to register on it."""

    def setUp(self) -> None:
        super().setUp()
        self.port = free_port()

    def start(self, *extra: str, loaded: bool = True, url: str | None = None) -> subprocess.Popen[bytes]:
        """Run the server (on ``url``, else the test's Redis); wait until it has read the username log,
        if ``loaded``."""
        self.log_path = os.path.join(self.dir, f"server-{self.port}-{time.monotonic_ns()}.log")
        log = open(self.log_path, "ab")
        self.addCleanup(log.close)
        process = subprocess.Popen(
            TWISTD
            + ["-n", "--pidfile=", "msgsvc", "--redis", url or self.redis.url, "--listen", f"tcp:{self.port}"]
            + list(extra),
            cwd=self.dir,
            env=dict(os.environ, PYTHONPATH=ROOT),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(reap, process)
        wait_listening(self, process, [self.port], self.output)
        if loaded:
            self.wait_logged("username log ")
        return process

    def output(self) -> str:
        """What the server started last has logged."""
        with open(self.log_path, encoding="utf-8") as log:
            return log.read()

    def peer(self) -> Peer:
        peer = Peer(self.port)
        self.addCleanup(peer.close)
        return peer

    def register(self, name: str) -> tuple[Peer, list[str]]:
        peer = self.peer()
        peer.send(f"HELLO {name}")
        return peer, peer.until("ENDUSERS")

    def hello_until_welcome(self, peer: Peer, name: str) -> list[str]:
        """HELLO every 0.1 s until the server welcomes; the answers before."""
        refused = []
        for _ in range(100):
            peer.send(f"HELLO {name}")
            answer = peer.line()
            if answer.startswith("WELCOME"):
                return refused
            refused.append(answer)
            time.sleep(0.1)
        self.fail(f"never welcomed: {refused[-3:]}")

    def wait_logged(self, text: str) -> None:
        deadline = time.monotonic() + 10
        while text not in self.output():
            if time.monotonic() > deadline:
                self.fail(f"{text!r} not logged:\n{self.output()}")
            time.sleep(0.05)


class RedisServerTests(RedisServerCase):
    def test_the_log_accounts_and_queue_are_in_redis_and_outlive_the_server(self) -> None:
        server = self.start("--redis-lease", "1")
        alice, welcome = self.register("alice :alice's password")
        self.assertEqual(welcome[0], "WELCOME alice :welcome to msgsvc")
        alice.close()
        bob, _ = self.register("Bob")
        bob.send("SEND alice :while you were away")
        self.assertEqual(bob.until("SENT")[-1], "SENT 0 alice alice")  # offline, and queued
        server.send_signal(signal.SIGKILL)
        server.wait()
        time.sleep(1)  # its lease ends: Bob is no longer online there

        self.start()  # a new process, nothing on disk: all it knows is in Redis
        wrong = self.peer()
        wrong.send("HELLO alice :not alice's password")
        self.assertEqual(wrong.until("BYE")[0], "ERROR AUTH_FAILED :wrong password for alice")
        alice, welcome = self.register("alice :alice's password")
        self.assertEqual(welcome[1:], ["USER alice online protected", "USER Bob offline", "ENDUSERS 2"])
        (delayed, end) = alice.until("ENDDELAYED")
        number, stamp, rest = delayed.split(" ", 3)[1:]
        self.assertEqual((number, rest, end), ("1", "Bob unicast alice :while you were away", "ENDDELAYED 0"))

    def test_a_name_claimed_on_two_nodes_at_once_keeps_the_welcomed_claimers_password(self) -> None:
        """Two HELLOs claiming one new name with different passwords on two nodes at once: one is
        welcomed, the other refused, and the name is protected by the welcomed one's password (issue 31's
        attack: the refused one's password was stored too, often last, and it could then attach to the
        winner's account while the winner's own password was refused)."""
        self.start()
        first = self.port
        self.port = free_port()
        self.start()
        for attempt in range(5):
            name = f"new{attempt}"
            one, two = Peer(first), Peer(self.port)
            self.addCleanup(one.close)
            self.addCleanup(two.close)
            one.send(f"HELLO {name} :password one")
            two.send(f"HELLO {name} :password two")
            answers = {"password one": one.line(), "password two": two.line()}
            welcomed = [password for password, answer in answers.items() if answer.startswith("WELCOME")]
            self.assertEqual(len(welcomed), 1, answers)
            one.close()
            two.close()
            time.sleep(0.5)  # gone from both nodes
            again = self.peer()
            again.send(f"HELLO {name} :{welcomed[0]}")
            self.assertEqual(again.line(), f"WELCOME {name} :welcome to msgsvc", (attempt, answers))
            again.close()
            time.sleep(0.5)

    def test_a_backlog_being_received_on_one_node_is_not_sent_to_a_session_on_another(self) -> None:
        """docs/protocol.rst, "Several sessions": a session that logs in while another receives the queue
        gets no DELAYED, on any server of the service (issue 31's attack: the second node sent it again)."""
        self.start()
        self.laptop_receiving()
        self.port = free_port()
        self.start()  # a second node of the service
        self.assertEqual(self.delayed_lines(self.register("alice :alice's password")[0]), [])

    def laptop_receiving(self) -> tuple[Peer, str]:
        """alice's laptop logged in on the node started last, with the message bob queued for her shown and
        not acknowledged; it, and the DELAYED line."""
        alice, _ = self.register("alice :alice's password")
        alice.close()
        bob, _ = self.register("bob")
        bob.send("SEND alice :while you were away")
        self.assertEqual(bob.until("SENT")[-1], "SENT 0 alice alice")
        laptop, _ = self.register("alice :alice's password")
        delayed, end = laptop.until("ENDDELAYED")
        self.assertEqual(delayed.split(" ", 3)[3], "bob unicast alice :while you were away")
        self.assertEqual(end, "ENDDELAYED 0")  # shown, not acknowledged yet
        return laptop, delayed

    def delayed_lines(self, peer: Peer) -> list[str]:
        """The DELAYED lines ``peer`` got by the PONG of a PING sent a second from now (the backlog is read
        from Redis after the welcome: a PING sent at once would be answered first)."""
        time.sleep(1)
        peer.send("PING :end")
        return [line for line in peer.until("PONG") if "DELAYED" in line]

    def test_a_backlog_left_unacknowledged_on_one_node_goes_to_a_session_on_another(self) -> None:
        """The receiving session leaves without ACK: what it did not acknowledge goes to the account's
        session on the other node, as it would to one on its own; acknowledged there, it is gone."""
        self.start()
        laptop, delayed = self.laptop_receiving()
        self.port = free_port()
        self.start()
        phone, _ = self.register("alice :alice's password")
        self.assertEqual(self.delayed_lines(phone), [])
        laptop.send("QUIT")
        laptop.until("BYE")
        self.assertEqual(phone.until("ENDDELAYED"), [delayed, "ENDDELAYED 0"])
        phone.send(f"ACK {delayed.split()[1]}")
        tablet, _ = self.register("alice :alice's password")
        self.assertEqual(self.delayed_lines(tablet), [])

    def test_a_backlog_its_receivers_node_took_down_with_it_goes_to_a_session_on_another(self) -> None:
        """The node of the receiving session is killed (kill -9): once its lease lapses, the account's
        session on another node gets what was not acknowledged."""
        node = self.start("--redis-lease", "1")
        _, delayed = self.laptop_receiving()
        self.port = free_port()
        self.start("--redis-lease", "1")
        phone, _ = self.register("alice :alice's password")
        self.assertEqual(self.delayed_lines(phone), [])
        node.send_signal(signal.SIGKILL)
        node.wait()
        self.assertEqual(phone.until("ENDDELAYED")[-2:], [delayed, "ENDDELAYED 0"])  # after LEFT bob

    def test_the_history_is_in_redis_and_outlives_a_killed_server(self) -> None:
        """What a server wrote to the history is Redis's: killed (kill -9) and started again, it serves
        it.  (What it had not sent yet is the window docs/scaling.rst states: here it had half a second.)"""
        server = self.start("--redis-lease", "1")
        alice, _ = self.register("alice")
        alice.send("BROADCAST :said before the kill")
        self.assertEqual(alice.line(), "SENT 0 - -")
        time.sleep(0.5)
        server.send_signal(signal.SIGKILL)
        server.wait()
        time.sleep(1)  # its lease ends

        self.start()
        carol = self.peer()
        carol.send("VERSION 9")
        carol.send("HELLO carol")
        lines = carol.until("ENDHISTORY")
        self.assertEqual(lines[0], "VERSION 9 90")
        said = r"^HISTMSG #all alice broadcast \* [0-9A-Z]{26} \S+Z :said before the kill$"
        self.assertRegex(lines[-2], said)
        self.assertEqual(lines[-1], "ENDHISTORY #all 1 start")

    def test_the_admin_command_exports_and_purges_the_history_in_redis(self) -> None:
        self.start()
        alice, _ = self.register("alice")
        bob, _ = self.register("Bob")
        alice.send("PASSWORD :alice's password")  # a direct conversation is kept for a protected participant
        alice.until("PROTECTED")
        alice.send("SEND bob :hi bob")
        bob.send("SEND alice :hi alice")
        bob.send("BROADCAST :everyone")
        for peer in (alice, bob, bob):
            peer.until("SENT")
        time.sleep(0.5)  # written at the end of the server's reactor pass
        admin = self.history_admin

        def texts(*args: str) -> list[str]:
            done = admin("export", *args)
            self.assertEqual(done.returncode, 0, done.stderr)
            return [json.loads(line)["text"] for line in done.stdout.splitlines()]

        self.assertEqual(texts("alice,bob"), ["hi bob", "hi alice"])
        self.assertEqual(texts("#all"), ["everyone"])
        self.assertEqual(texts("--user", "BOB"), ["hi bob", "hi alice"])
        purged = admin("purge", "--user", "bob")
        self.assertEqual((purged.returncode, purged.stdout), (0, "purged 2 messages sent by bob\n"))
        self.assertEqual(texts("alice,bob"), ["hi bob"])
        self.assertEqual(texts("#all"), [])

    def test_the_admin_command_exports_a_room_and_the_rooms_of_a_member_from_redis(self) -> None:
        self.start()
        exports_rooms(self, self.port, lambda *args: self.history_admin("export", *args))

    def history_admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m msgsvc.admin --redis URL history ARGS``, done."""
        return subprocess.run(
            [sys.executable, "-m", "msgsvc.admin", "--redis", self.redis.url, "history", *args],
            env=dict(os.environ, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def test_with_redis_away_at_start_hello_is_a_server_error_until_it_comes(self) -> None:
        self.redis.stop()
        self.start(loaded=False)
        peer = self.peer()
        peer.send("HELLO alice")
        self.assertEqual(
            peer.line(), "ERROR SERVER_ERROR :the server has not read its username log yet; try again later"
        )
        self.wait_logged(f"cannot reach Redis at {self.redis.url}: Connection was refused")
        self.redis.start()
        self.hello_until_welcome(peer, "alice")
        self.assertEqual(peer.until("ENDUSERS"), ["USER alice online", "ENDUSERS 1"])

    def test_with_redis_gone_a_new_name_is_a_server_error_and_the_connection_stays(self) -> None:
        self.start()
        self.register("alice")
        self.redis.stop()
        peer = self.peer()
        peer.send("HELLO bob")
        self.assertEqual(
            peer.line(), "ERROR SERVER_ERROR :the server could not record the username; try again later"
        )
        self.redis.start()
        refused = self.hello_until_welcome(peer, "bob")
        self.assertTrue(all(line.startswith("ERROR SERVER_ERROR ") for line in refused), refused)
        self.wait_logged("state: connected to Redis at")

    def acl(self, rules: str) -> None:
        with socket.create_connection(("127.0.0.1", self.redis.port)) as admin:
            admin.sendall(f"ACL SETUSER {rules}\r\n".encode())
            self.assertEqual(admin.recv(64), b"+OK\r\n")

    def test_the_acl_user_docs_scaling_gives_is_enough(self) -> None:
        self.acl("msgsvc on >PASSWORD ~msgsvc:* &msgsvc:* +@all -@dangerous")  # docs/scaling.rst
        self.start("--redis-lease", "1", url=f"redis://msgsvc:PASSWORD@127.0.0.1:{self.redis.port}/0")
        self.wait_logged("subscription: connected")
        alice, _ = self.register("alice :alice's password")
        bob, _ = self.register("bob")
        bob.send("SEND alice,carol :hi")
        self.assertEqual(bob.until("SENT")[-1], "SENT 1 carol -")
        self.assertEqual(alice.until("MSG")[-1], "MSG bob multicast alice :hi")  # carol: never seen
        self.assertNotIn("NOPERM", self.output())

    def test_a_user_redis_does_not_let_subscribe_is_said_once_and_tried_again(self) -> None:
        self.acl("limited on >pw ~* &* +@all -subscribe")
        url = f"redis://limited:pw@127.0.0.1:{self.redis.port}/0"
        self.start(url=url, loaded=False)
        self.wait_logged(
            f"subscription: cannot reach Redis at redis://limited:***@127.0.0.1:{self.redis.port}/0: NOPERM"
        )
        deadline = time.monotonic() + 10
        while self.output().count("Scheduling retry") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertGreaterEqual(self.output().count("Scheduling retry"), 3)  # the subscription's
        self.assertEqual(self.output().count("NOPERM"), 1)
        self.assertNotIn("subscription: connected", self.output())


class RedisOverTlsTests(RedisServerCase):
    """rediss:// to a redis-server that speaks TLS only and asks for the client's certificate."""

    tls = True

    def test_a_private_authority_and_a_client_certificate_from_the_url(self) -> None:
        self.start()
        self.wait_logged("state: connected to Redis at rediss://localhost:")
        alice, _ = self.register("alice")
        bob, _ = self.register("bob")
        self.assertEqual(alice.line(), "JOINED bob")
        bob.send("SEND alice :over TLS")
        self.assertEqual(bob.line(), "SENT 1 - -")
        self.assertEqual(alice.line(), "MSG bob unicast alice :over TLS")

    def test_a_redis_whose_certificate_the_url_does_not_trust_is_not_used(self) -> None:
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        stranger, _ = make_certificate(other)
        self.start(loaded=False, url=f"rediss://localhost:{self.redis.port}/0?ssl_ca_certs={stranger}")
        self.wait_logged("cannot reach Redis at rediss://localhost:")
        self.assertRegex(self.output(), "certificate verify failed")
        alice = self.peer()
        alice.send("HELLO alice")
        self.assertTrue(alice.line().startswith("ERROR SERVER_ERROR "))
