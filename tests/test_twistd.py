"""The real thing: ``twistd -n msgsvc`` in its own process, over loopback TCP."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import IO

from twisted.trial.unittest import SynchronousTestCase

import msgsvc
from msgsvc import build
from msgsvc.bench.servers import cpu_seconds

from .support.display import need_display
from .support.processes import ROOT, TWISTD, Peer, free_port, reap, wait_listening
from .support.roomexport import exports_rooms


class Output:
    """What a server writes, read as it comes by a thread of its own; ``loaded`` is set once it has read
    its state (its loader's 'username log' line)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[bytes] = []
        self.loaded = threading.Event()
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stdout: IO[bytes]) -> None:
        for line in stdout:
            self.lines.append(line)
            if b"] username log " in line:
                self.loaded.set()

    def text(self) -> str:
        """All of it once the server has exited; what came so far before."""
        self._thread.join(timeout=30)
        return b"".join(self.lines).decode()


class TwistdTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "names.sqlite3")
        self.port = free_port()
        self._outputs: dict[subprocess.Popen[bytes], Output] = {}

    def start(self, *extra: str, nofile: int = 0, backlog: int = 50) -> subprocess.Popen[bytes]:
        """Run the server; ``nofile``: its file descriptor limit, soft and hard."""
        env = dict(os.environ, PYTHONPATH=ROOT)
        args = [
            "-n",
            "--pidfile=",
            "msgsvc",
            "--db",
            self.db,
            "--listen",
            f"tcp:{self.port}:interface=127.0.0.1:backlog={backlog}",
        ]

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        process = subprocess.Popen(
            TWISTD + args + list(extra),
            cwd=self.dir,
            env=env,
            preexec_fn=limit,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(reap, process)
        read = self._outputs[process] = Output(process)
        wait_listening(self, process, [self.port], read.text)
        if not read.loaded.wait(30):  # before that, a HELLO is answered SERVER_ERROR (docs/protocol.rst)
            self.fail(f"twistd did not read its state: {read.text()}")
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        """What ``process`` wrote, once it has exited (within 30 s)."""
        process.wait(timeout=30)
        return self._outputs[process].text()

    def register(self, name: str) -> tuple[Peer, list[str]]:
        peer = Peer(self.port)
        self.addCleanup(peer.close)
        peer.send(f"HELLO {name}")
        return peer, peer.until("ENDUSERS")

    def test_names_survive_sigkill(self) -> None:
        server = self.start()
        for name in ["alice", "Bob"]:
            _, welcome = self.register(name)
            self.assertEqual(welcome[0], f"WELCOME {name} :welcome to msgsvc")
        server.send_signal(signal.SIGKILL)
        server.wait()

        self.start()
        _, welcome = self.register("carol")
        self.assertEqual(
            welcome[1:], ["USER alice offline", "USER Bob offline", "USER carol online", "ENDUSERS 3"]
        )

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "msgsvc.admin", "--db", self.db, *args],
            env=dict(os.environ, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def test_accounts_with_require_password_survive_sigkill_and_reset_by_the_admin_command(self) -> None:
        server = self.start("--require-password")
        refused = Peer(self.port)
        self.addCleanup(refused.close)
        refused.send("HELLO alice")
        self.assertEqual(
            refused.until("BYE")[0], "ERROR AUTH_REQUIRED :this server needs a password with every name"
        )
        alice, welcome = self.register("alice :alice's password")
        self.assertIn("USER alice online protected", welcome)
        alice.close()
        server.send_signal(signal.SIGKILL)
        server.wait()

        server = self.start("--require-password")
        self.assertEqual(self.admin("list").stdout.split("\t")[0], "alice")
        wrong = Peer(self.port)
        self.addCleanup(wrong.close)
        wrong.send("HELLO alice :not alice's password")
        self.assertEqual(wrong.until("BYE")[0], "ERROR AUTH_FAILED :wrong password for alice")
        alice, _ = self.register("alice :alice's password")
        done = self.admin("reset", "alice", "--reason", "forgot it")
        self.assertEqual((done.returncode, done.stdout), (0, "alice is no longer protected (forgot it)\n"))
        self.assertEqual(
            alice.until("BYE"),
            ["ACCOUNT alice unprotected", "BYE :the operator removed your name's password: forgot it"],
        )
        self.assertEqual(self.admin("reset", "alice", "--reason", "again").returncode, 1)
        alice, welcome = self.register("alice :a new password")  # anyone's to claim again
        self.assertEqual(welcome[1:], ["USER alice online protected", "ENDUSERS 1"])
        server.send_signal(signal.SIGTERM)
        output = self.output(server)
        self.assertIn("failed login for alice from 127.0.0.1:", output)
        self.assertIn("the operator removed the protection of alice: forgot it", output)
        self.assertNotIn("alice's password", output)

    def test_the_admin_command_removes_names_from_the_log_of_a_running_server(self) -> None:
        server = self.start()
        for name in ("spam1", "Spam2 :a password 123"):
            spammer, _ = self.register(name)
            spammer.send("QUIT")
            spammer.until("BYE")
        alice, _ = self.register("alice")
        done = self.admin("remove", "SPAM1", "spam2", "nobody", "--reason", "made by a script")
        self.assertEqual(
            (done.returncode, done.stdout, done.stderr),
            (
                1,
                "spam1 removed from the username log (made by a script)\n"
                "Spam2 removed from the username log (made by a script)\n",
                "msgsvc.admin: nobody is not in the username log\n",
            ),
        )
        self.assertEqual([alice.line(), alice.line()], ["REMOVED spam1", "REMOVED Spam2"])  # within 2 s
        alice.send("USERS")
        self.assertEqual(alice.until("ENDUSERS"), ["USER alice online", "ENDUSERS 1"])
        self.assertEqual(self.admin("list").stdout, "")  # Spam2's password went with it
        taken, welcome = self.register("spam2")  # anyone may take the name again, without a password
        self.assertEqual(welcome[0], "WELCOME spam2 :welcome to msgsvc")
        server.send_signal(signal.SIGTERM)
        output = self.output(server)
        self.assertIn("the operator removed spam1 from the username log: made by a script", output)

    def test_offline_delivery_survives_sigkill_and_a_dropped_backlog(self) -> None:
        server = self.start()
        bob, _ = self.register("bob :bob's password")  # protects bob
        bob.send("QUIT")
        bob.until("BYE")
        carol, _ = self.register("carol")
        alice, _ = self.register("alice")
        alice.send("SEND bob :are you in tomorrow?")
        self.assertEqual(alice.until("SENT"), ["SENT 0 bob bob"])
        alice.send("SEND bob,carol :standup moved to 10")
        self.assertEqual(alice.until("SENT")[-1], "SENT 1 bob bob")
        self.assertEqual(carol.until("MSG")[-1], "MSG alice multicast bob,carol :standup moved to 10")
        server.send_signal(signal.SIGKILL)
        server.wait()

        server = self.start()
        bob, _ = self.register("bob :bob's password")
        first, second, end = bob.line(), bob.line(), bob.line()
        self.assertRegex(
            first, r"^DELAYED (\d+) \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ alice unicast bob :are you in tomorrow\?$"
        )
        self.assertRegex(second, r"^DELAYED \d+ \S+ alice multicast bob,carol :standup moved to 10$")
        self.assertEqual(end, "ENDDELAYED 0")
        bob.send(f"ACK {second.split()[1]}")
        bob.send("QUIT")
        bob.until("BYE")
        bob, _ = self.register("bob :bob's password")
        bob.send("PING :nothing else")
        self.assertEqual(bob.line(), "PONG :nothing else")  # nothing twice
        bob.send("QUIT")
        bob.until("BYE")

        alice, _ = self.register("alice")
        for n in range(150):
            alice.send(f"SEND bob :message {n}")
        self.assertEqual(alice.until("SENT 0 bob bob"), ["SENT 0 bob bob"])
        for _ in range(149):
            self.assertEqual(alice.line(), "SENT 0 bob bob")
        bob, _ = self.register("bob :bob's password")
        page = [bob.line() for _ in range(101)]
        self.assertEqual(page[-1], "ENDDELAYED 50")
        bob.send(f"ACK {page[-2].split()[1]}")
        for n in range(100, 120):  # part of the second page, then the connection drops
            self.assertTrue(bob.line().endswith(f":message {n}"))
        bob.close()
        bob, _ = self.register("bob :bob's password")
        rest = bob.until("ENDDELAYED")
        self.assertEqual([line.rsplit(" ", 1)[-1] for line in rest[:-1]], [str(n) for n in range(100, 150)])
        self.assertEqual(rest[-1], "ENDDELAYED 0")

    def test_history_read_by_a_version_9_client_and_exported_and_purged_by_the_admin_command(self) -> None:
        server = self.start()
        alice, bob = Peer(self.port), Peer(self.port)
        for peer, name in ((alice, "alice"), (bob, "bob")):
            self.addCleanup(peer.close)
            peer.send(f"VERSION 9\r\nHELLO {name}")
            self.assertEqual(peer.line(), "VERSION 9 90")
            self.assertEqual(peer.until("ENDHISTORY")[-1], "ENDHISTORY #all 0 start")
        alice.send("SEND bob :before alice protected her name")
        self.assertRegex(alice.until("SENT")[-1], r"^SENT 1 - - [0-9A-Z]{26} \S+\.\d{3}Z$")
        alice.send("HISTORY bob")
        self.assertEqual(alice.line().split(" ")[:2], ["ERROR", "HISTORY_FORBIDDEN"])
        alice.send("PASSWORD :alice's password")
        alice.until("PROTECTED")
        alice.send("SEND bob :protected")
        alice.until("SENT")
        bob.send("SEND alice :after")
        bob.send("BROADCAST :everyone")
        [sent] = [line for line in bob.until("SENT") if line.startswith("SENT")]
        bob.until("SENT")  # the broadcast's: then alice's read below takes its history along to the disk
        alice.send("HISTORY BOB")
        answer = alice.until("ENDHISTORY")
        histmsg = answer[-2].split(" ")
        self.assertEqual(histmsg[:3] + histmsg[-1:], ["HISTMSG", "alice,bob", "bob", ":after"])
        self.assertEqual(answer[-1], "ENDHISTORY alice,bob 2 start")  # before she protected it: not kept
        self.assertEqual(histmsg[5], sent.split(" ")[4])  # SENT's id is the message's

        exported = self.admin("history", "export", "Bob,alice")
        self.assertEqual(exported.returncode, 0, exported.stderr)
        entries = [json.loads(line) for line in exported.stdout.splitlines()]
        texts = [(e["sender"], e["text"]) for e in entries]
        self.assertEqual(texts, [("alice", "protected"), ("bob", "after")])  # what nobody may read is not kept
        described = {"conversation": "alice,bob", "kind": "unicast", "recipients": ["bob"]}
        self.assertEqual(entries[0], {**entries[0], **described})
        everyone = self.admin("history", "export", "#all").stdout.splitlines()
        self.assertEqual([json.loads(line)["text"] for line in everyone], ["everyone"])
        self.assertEqual(self.admin("history", "export", "--user", "BOB").stdout, exported.stdout)
        purged = self.admin("history", "purge", "--user", "bob")
        self.assertEqual((purged.returncode, purged.stdout), (0, "purged 2 messages sent by bob\n"))
        left = self.admin("history", "export", "alice,bob").stdout.splitlines()
        self.assertEqual([json.loads(line)["text"] for line in left], ["protected"])
        alice.send("HISTORY bob")  # the running server's index learnt of the purge
        answer = alice.until("ENDHISTORY")
        histmsgs = [line for line in answer if line.startswith("HISTMSG ")]
        self.assertEqual([line.rsplit(" :", 1)[-1] for line in histmsgs], ["protected"])
        self.assertEqual(answer[-1], "ENDHISTORY alice,bob 1 start")
        refused = self.admin("history", "export", "alice", "--user", "bob")
        self.assertEqual((refused.returncode, refused.stdout), (2, ""))
        server.send_signal(signal.SIGTERM)
        server.wait()

    def test_the_admin_command_exports_a_room_and_the_rooms_of_a_member(self) -> None:
        self.start()
        exports_rooms(self, self.port, lambda *args: self.admin("history", "export", *args))

    def test_the_admin_command_lists_the_rooms_of_a_running_server_and_deletes_one_for_its_next_start(self) -> None:
        server = self.start()

        def version_11(name: str) -> Peer:
            peer = Peer(self.port)
            self.addCleanup(peer.close)
            peer.send(f"VERSION 11\r\nHELLO {name}")
            peer.until("ENDHISTORY")
            return peer

        alice, bob = version_11("alice :alice's password"), version_11("bob")
        alice.send("JOIN #Dev\r\nTOPIC #dev :ship it")
        alice.until("TOPIC #Dev alice ")
        bob.send("JOIN #dev")
        bob.until("ENDMEMBERS #Dev 2")  # answered once kept
        listed = self.admin("rooms", "list")
        self.assertEqual((listed.returncode, listed.stdout), (0, "#Dev\t+nt\t@alice bob\t-\tship it\n"))
        deleted = self.admin("rooms", "delete", "#DEV", "--reason", "closed")
        said = f"#Dev deleted (closed); a server running on {self.db} keeps it until it restarts\n"
        self.assertEqual((deleted.returncode, deleted.stdout), (0, said))
        self.assertEqual(self.admin("rooms", "list").stdout, "")
        server.send_signal(signal.SIGTERM)
        server.wait()
        self.start()
        alice = version_11("alice :alice's password")  # its founder, protected: the room would be kept
        alice.send("ROOMS")
        self.assertEqual(alice.line(), "ENDROOMS 0")

    def test_a_kill_9_in_a_burst_loses_nothing_sent_called_queued_and_so_none_of_their_history(self) -> None:
        """The history of a message is written in the same group commit as its queueing, or an
        earlier one: what SENT called queued is in the history too; the rest may be lost."""
        server = self.start()
        carol, _ = self.register("carol :carol's password")
        carol.send("QUIT")
        carol.until("BYE")
        alice, _ = self.register("alice")
        for n in range(400):
            alice.send(f"SEND carol :burst {n}")
        queued = 0
        while queued < 100:  # a part of the burst answered: then kill -9 in the middle of it
            if alice.line() == "SENT 0 carol carol":
                queued += 1
        server.send_signal(signal.SIGKILL)
        server.wait()

        server = self.start()
        exported = self.admin("history", "export", "alice,carol").stdout.splitlines()
        kept = [json.loads(line)["text"] for line in exported]
        carol, _ = self.register("carol :carol's password")
        delayed: list[str] = []
        while True:
            page = carol.until("ENDDELAYED")
            delayed += [line.split(" :", 1)[1] for line in page[:-1]]
            if page[-1] == "ENDDELAYED 0":
                break
            carol.send(f"ACK {page[-2].split()[1]}")
        told = [f"burst {n}" for n in range(queued)]
        self.assertEqual(delayed[:queued], told)  # every one SENT called queued
        self.assertEqual(kept[:queued], told)  # and its history
        self.assertEqual(delayed, [f"burst {n}" for n in range(len(delayed))])  # in order, none twice
        self.assertEqual(kept, [f"burst {n}" for n in range(len(kept))])
        server.send_signal(signal.SIGTERM)
        server.wait()

    def test_admin_command_refuses_a_missing_file(self) -> None:
        done = self.admin("list")
        self.assertEqual((done.returncode, done.stderr), (2, f"msgsvc.admin: no such file: {self.db}\n"))
        self.assertFalse(os.path.exists(self.db))

    def test_out_of_file_descriptors_pauses_accepting_and_serves_the_registered(self) -> None:
        server = self.start("--max-per-ip", "1000", nofile=64, backlog=200)
        alice, _ = self.register("alice")
        bob, _ = self.register("bob")
        # More connections than descriptors: the server accepts until EMFILE, the rest wait queued.
        extras = [socket.create_connection(("127.0.0.1", self.port), timeout=10) for _ in range(100)]
        time.sleep(0.5)
        cpu_before, wall_before = cpu_seconds(server.pid), time.monotonic()
        for i in range(10):
            alice.send(f"SEND bob :during the episode {i}")
            self.assertEqual(alice.until("SENT")[-1], "SENT 1 - -")
            time.sleep(0.1)
        for i in range(10):
            self.assertEqual(bob.until("MSG")[-1], f"MSG alice unicast bob :during the episode {i}")
        cpu = cpu_seconds(server.pid) - cpu_before
        wall = time.monotonic() - wall_before
        self.assertLess(cpu, wall / 3, f"the server spun: {cpu:.2f} s of CPU in {wall:.2f} s")

        # A connection that waited in the queue is accepted once descriptors are free, not dropped.
        waited = extras.pop()
        for extra in extras:
            extra.close()
        waited.sendall(b"HELLO dave\r\n")
        self.assertEqual(waited.makefile("rb").readline(), b"WELCOME dave :welcome to msgsvc\r\n")
        waited.close()
        carol = Peer(self.port)
        self.addCleanup(carol.close)
        carol.send("HELLO carol")
        self.assertEqual(carol.line(), "WELCOME carol :welcome to msgsvc")

        server.send_signal(signal.SIGTERM)
        output = self.output(server)
        self.assertIn("file descriptors: soft limit 64 (started at 64), hard limit 64", output)
        self.assertIn("--max-clients 1000 needs about 1064 file descriptors, but the limit is 64", output)
        self.assertEqual(output.count("cannot accept connections on"), 1, output)
        self.assertIn("EMFILE (too many open files); pausing accepts", output)
        self.assertNotIn("Traceback", output)

    def test_sigterm_says_bye_and_exits_cleanly(self) -> None:
        server = self.start()
        alice, _ = self.register("alice")
        server.send_signal(signal.SIGTERM)
        self.assertEqual(alice.line(), "BYE :server shutting down")
        self.assertRaises(EOFError, alice.line)
        output = self.output(server)
        # twistd ends the way the signal asked: -SIGTERM on Twisted >= 24.7, 0 before.
        self.assertIn(server.returncode, (0, -signal.SIGTERM), output)
        self.assertIn("Server Shut Down", output)
        self.assertNotIn("Traceback", output)

    def test_logs(self) -> None:
        server = self.start()
        alice, _ = self.register("alice")
        intruder = Peer(self.port)
        self.addCleanup(intruder.close)
        intruder.send("HELLO ALICE")
        intruder.until("BYE")
        alice.send("QUIT :lunch")
        alice.until("BYE")
        server.send_signal(signal.SIGTERM)
        output = self.output(server)
        for expected in [
            f"msgsvc {msgsvc.__version__}, {build.running()} build",  # the server imports the msgsvc this does
            "username log ",
            "registered as alice (new name)",
            "refused as 'ALICE': USERNAME_TAKEN",
            "disconnected: Connection was closed cleanly",  # the intruder, never registered
            "alice (127.0.0.1:",
            "left: quit: lunch",
        ]:
            self.assertIn(expected, output)

    def test_unusable_database_is_a_clear_error(self) -> None:
        with open(self.db, "wb") as f:
            f.write(b"definitely not sqlite " * 100)
        self.assertFailsToStart(f"msgsvc: the username log {self.db!r} is unusable")

    def assertFailsToStart(self, message: str, *options: str) -> None:
        """``twistd msgsvc`` with ``options`` exits with 1 and ``message``, without a traceback."""
        result = subprocess.run(
            TWISTD + ["-n", "--pidfile=", "msgsvc", "--db", self.db, *options],
            cwd=self.dir,
            env=dict(os.environ, PYTHONPATH=ROOT),
            capture_output=True,
            timeout=60,
        )
        output = (result.stdout + result.stderr).decode()
        self.assertEqual(result.returncode, 1, output)
        self.assertIn(message, output)
        self.assertNotIn("Traceback", output)

    def test_a_port_in_use_is_a_clear_error(self) -> None:
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        self.assertFailsToStart(
            f"msgsvc: cannot listen on tcp:{port}:interface=127.0.0.1: [Errno 98] Address already in use",
            "--listen",
            f"tcp:{port}:interface=127.0.0.1",
        )

    def test_terminal_client_end_to_end(self) -> None:
        self.start()
        alice, _ = self.register("alice")
        script = "bob\nu\nalice\nhello from a terminal\nb\nhi all\n"
        client = subprocess.Popen(
            [sys.executable, "-m", "msgsvc.client", "--text", "--server", f"tcp:127.0.0.1:{self.port}"],
            cwd=self.dir,
            env=dict(os.environ, PYTHONPATH=ROOT),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.addCleanup(reap, client)
        assert client.stdin is not None
        client.stdin.write(script.encode())
        client.stdin.flush()
        self.assertEqual(alice.line(), "JOINED bob")
        self.assertEqual(alice.line(), "MSG bob unicast alice :hello from a terminal")
        self.assertEqual(alice.line(), "MSG bob broadcast * :hi all")
        client.stdin.close()  # end of input: the client quits
        self.assertEqual(alice.line(), "LEFT bob")
        assert client.stdout is not None
        output = client.stdout.read().decode()  # to its end: the client has exited
        self.assertEqual(client.wait(timeout=30), 0, output)
        self.assertIn("Connected to 127.0.0.1:", output)
        self.assertIn("you to alice: hello from a terminal", output)

    def test_gui_server_runs_and_stops_cleanly(self) -> None:
        need_display()
        server = self.start("--gui")
        alice, welcome = self.register("alice")
        self.assertEqual(welcome[0], "WELCOME alice :welcome to msgsvc")
        server.send_signal(signal.SIGTERM)
        self.assertEqual(alice.line(), "BYE :server shutting down")
        output = self.output(server)
        self.assertIn(server.returncode, (0, -signal.SIGTERM), output)
        self.assertNotIn("Traceback", output)
