"""Several ``twistd -n msgsvc --redis`` nodes as one service, against a real redis-server."""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import (
    Ban,
    Entered,
    Invited,
    Kicked,
    Kind,
    Member,
    Message,
    ModeSet,
    ModesKept,
    Parted,
    RemoteUser,
    RoomEvent,
    RoomGone,
    RoomRecord,
    Stored,
    TopicSet,
    UserRecord,
)
from msgsvc.hub.conversations import conversation_key
from msgsvc.hub.ids import MessageIds, message_id_floor
from msgsvc.auth.store import StillOnline
from msgsvc.hub.contracts import Refusal, Refused
from msgsvc.state import cluster
from msgsvc.state.cluster import (
    AWAY_AGAIN,
    FORMAT,
    NODES,
    RedisCluster,
    away_key,
    encode_message,
    node_key,
    users_key,
)
from msgsvc.state.inbox import BLOCK_MS, READ_COUNT, RETRY, ROUTE, TAKEN, Inbox, inbox_key, waiting_key
from msgsvc.state.redis import LOG_LAST, ONLINE, RedisState, sessions_key
from msgsvc.state.redislink import RedisUnavailable
from msgsvc.state.redisurl import RedisURL

from .support.fakes import to_keep
from .support.processes import ROOT, TWISTD, Peer, free_ports, reap, wait_listening
from .support.redisserver import RedisCase, RedisStateCase

LEASE = 2.0  # seconds: short, so that the tests of a dead node are quick


class Node:
    """One msgsvc server of the service, logging to a file of its own."""

    def __init__(
        self,
        case: SynchronousTestCase,
        folder: str,
        redis_url: str,
        lease: float,
        irc: bool = False,
        extra: Sequence[str] = (),
    ) -> None:
        self.case = case
        self.port, irc_port = free_ports(2)
        self.irc_port = irc_port if irc else 0
        fronts = ["--irc", f"tcp:{self.irc_port}:interface=127.0.0.1", "--irc-server-name", "irc.test"]
        self.log_path = os.path.join(folder, f"node-{self.port}.log")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                TWISTD
                + ["-n", "--pidfile=", "msgsvc", "--redis", redis_url, "--redis-lease", str(lease)]
                + ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
                + (fronts if irc else [])
                + list(extra),
                cwd=folder,
                env=dict(os.environ, PYTHONPATH=ROOT),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        case.addCleanup(reap, self.process)
        wait_listening(case, self.process, [self.port, *([self.irc_port] if irc else [])], self.output)
        self.wait_logged("lease held")
        self.wait_logged("username log ")
        self.wait_logged("] rooms: ")  # read with the log
        self.wait_logged("who is online on the other nodes read")  # subscribed: it hears the others
        self.id = re.findall(r"node (\S+): lease held", self.output())[0]

    def output(self) -> str:
        with open(self.log_path, encoding="utf-8") as log:
            return log.read()

    def wait_logged(self, text: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if time.monotonic() > deadline:
                self.case.fail(f"{text!r} not logged:\n{self.output()}")
            time.sleep(0.02)

    def connect(self) -> Peer:
        peer = Peer(self.port)
        self.case.addCleanup(peer.close)
        return peer

    def register(self, name: str) -> tuple[Peer, list[str]]:
        peer = self.connect()
        peer.send(f"HELLO {name}")
        return peer, peer.until("ENDUSERS")


def hello_until(peer: Peer, name: str, seconds: float = 15) -> list[str]:
    """HELLO every 0.05 s until welcomed (lines up to ENDUSERS); fails past ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peer.send(f"HELLO {name}")
        answer = peer.line()
        if answer.startswith("WELCOME"):
            return [answer, *peer.until("ENDUSERS")]
        assert answer.startswith("ERROR SERVER_ERROR "), answer
        time.sleep(0.05)
    raise AssertionError(f"{name} was never welcomed")


def answer(peer: Peer) -> str:
    """The next ``ROOM``, ``ENDMEMBERS`` or ``ERROR`` line ``peer`` gets (the lines before it read)."""
    line = peer.line()
    while not line.startswith(("ROOM ", "ENDMEMBERS ", "ERROR ")):
        line = peer.line()
    return line


def invite_only(op: Peer, invitee: Peer, room: str) -> None:
    """alice (``op``) makes ``room``, sets it +ik with the key ``sekrit`` and invites bob (``invitee``),
    who is told (so its node has the modes too)."""
    op.send(f"JOIN {room}")
    op.until("ENDMEMBERS")
    op.send(f"MODE {room} +ik sekrit")
    op.until(f"MODE {room} alice +ik")
    op.send(f"INVITE {room} bob")
    op.until(f"INVITED {room} bob")
    invitee.until(f"INVITATION {room} alice")


def alice_on(one: Node, two: Node, version: int) -> tuple[Peer, Peer]:
    """alice's sessions (protected, "alice's password") on nodes ``one`` and ``two``, speaking
    ``version``, each logged in (a PING answered after its HELLO)."""
    laptop, phone = one.connect(), two.connect()
    for peer in (laptop, phone):
        peer.send(f"VERSION {version}")
        peer.send("HELLO alice :alice's password")
        peer.send("PING :logged in")
        peer.until("PONG :logged in")
    return laptop, phone


def redis_call(port: int, *args: object) -> Any:
    """One command to the redis-server on ``port``, and its reply (bulk strings as text)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        words = [str(a).encode() for a in args]
        s.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        replies = s.makefile("rb")

        def reply() -> Any:
            line = replies.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:].decode()
            if kind == b"-":
                raise AssertionError(rest)
            if kind == b":":
                return int(rest)
            if kind == b"$":
                return None if rest == "-1" else replies.read(int(rest) + 2)[:-2].decode()
            if kind == b"*":
                return None if rest == "-1" else [reply() for _ in range(int(rest))]
            return rest

        return reply()


class ClusterTests(RedisCase):
    def node(self, lease: float = LEASE, irc: bool = False, extra: Sequence[str] = ()) -> Node:
        return Node(self, self.dir, self.redis.url, lease, irc, extra)

    def flood(self, sender: Peer, count: int, size: int) -> list[int]:
        """``sender`` sends ``count`` messages of ``size`` bytes to alice, numbered; the numbers of those
        it was told she got."""
        texts = [f"{i:05} " + "x" * (size - 6) for i in range(count)]
        sender.sock.sendall(b"".join(f"SEND alice :{text}\r\n".encode() for text in texts))
        answers = [sender.line() for _ in texts]
        self.assertLessEqual(set(answers), {"SENT 1 - -", "SENT 0 alice -"})
        return [i for i, answer in enumerate(answers) if answer == "SENT 1 - -"]

    def received(self, peer: Peer, count: int, size: int) -> list[int]:
        """The numbers of the messages of :meth:`flood` ``peer`` gets: ``count``, or fewer if nothing
        more comes for 5 s (``peer`` cannot be read after that)."""
        got: list[int] = []
        peer.sock.settimeout(5)
        try:
            while len(got) < count:
                line = peer.line()
                self.assertRegex(line, f"^MSG bob unicast alice :\\d{{5}} x{{{size - 6}}}$")
                got.append(int(line.split(":", 1)[1][:5]))
        except TimeoutError:
            pass
        peer.sock.settimeout(10)
        return got

    def test_every_message_told_delivered_to_a_paused_node_arrives_once_it_resumes(self) -> None:
        """Issue 27, F11: node one paused (within its lease) while bob on node two writes to alice on
        it, more than Redis lets wait for a subscriber (64 kB here): each message bob was told alice
        got, she gets, in order."""
        redis_call(self.redis.port, "CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 64kb 0")
        one, two, alice, bob = self.paused_with_alice(lease=30)
        # 600 kB: far more than Redis lets wait (and the sockets' buffers hold), less than alice's node
        # may leave unread for her (--max-send-queue) when it sends them all at once
        told = self.flood(bob, 600, 1000)
        one.process.send_signal(signal.SIGCONT)
        self.assertEqual(self.received(alice, len(told), 1000), told)
        self.assertEqual(len(told), 600)  # the inbox had room for them all

    def paused_with_alice(self, **node: Any) -> tuple[Node, Node, Peer, Peer]:
        """alice on node one, bob on node two (sending as fast as he likes), node one paused."""
        one = self.node(**node)
        fast = ["--line-rate", "100000", "--line-burst", "100000", "--address-byte-burst", "100000000"]
        two = self.node(lease=node.get("lease", LEASE), extra=fast)
        alice, _ = one.register("alice")
        bob, _ = two.register("bob")
        self.assertEqual(alice.line(), "JOINED bob")
        one.process.send_signal(signal.SIGSTOP)
        self.addCleanup(one.process.send_signal, signal.SIGCONT)
        return one, two, alice, bob

    def test_a_node_whose_inbox_is_full_is_not_written_to_and_its_users_are_not_counted(self) -> None:
        """The inbox holds 20,000 bytes: of 20 messages of 3,000 bytes, the first 6 fit and are
        delivered; for the rest bob is told alice did not get them, and she does not."""
        one, two, alice, bob = self.paused_with_alice(lease=30, extra=["--redis-inbox", "20000"])
        told = self.flood(bob, 20, 3000)
        self.assertEqual(told, list(range(6)))
        two.wait_logged(f"node {one.id}: its inbox in Redis is full")
        one.process.send_signal(signal.SIGCONT)
        self.assertEqual(self.received(alice, len(told), 3000), told)
        bob.send("SEND alice :room again")  # after the 6: so none of the others came before it
        self.assertEqual(bob.line(), "SENT 1 - -")
        self.assertEqual(alice.line(), "MSG bob unicast alice :room again")
        waiting = f"msgsvc:node:{one.id}:waiting"
        deadline = time.monotonic() + 10  # node one deletes what it delivered with its next read
        while redis_call(self.redis.port, "HGET", waiting, "bytes") != "0" and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(redis_call(self.redis.port, "HMGET", waiting, "bytes", "limit"), ["0", "20000"])
        self.assertEqual(redis_call(self.redis.port, "XLEN", f"msgsvc:node:{one.id}:inbox"), 0)

    def test_what_waits_for_a_paused_node_outlives_a_restart_of_redis(self) -> None:
        one, two, alice, bob = self.paused_with_alice(lease=30)
        told = self.flood(bob, 50, 1000)
        self.assertEqual(told, list(range(50)))
        bob.send("BROADCAST :and to all")
        self.assertEqual(bob.line(), "SENT 1 - -")
        self.redis.stop()  # appendfsync always: what Redis acknowledged is in its file
        self.redis.start()
        one.process.send_signal(signal.SIGCONT)
        self.assertEqual(self.received(alice, 50, 1000), told)
        self.assertEqual(alice.line(), "MSG bob broadcast * :and to all")  # after them

    def test_a_killed_nodes_inbox_is_deleted_with_its_users_and_nothing_more_is_counted(self) -> None:
        # A lease of 5 s: the flood must be answered while node one's holds (2 s was too short on a
        # busy machine: its lease lapsed and nothing was counted).
        one, two, alice, bob = self.paused_with_alice(lease=5.0)
        self.assertEqual(self.flood(bob, 20, 1000), list(range(20)))  # within its lease: counted
        inbox = f"msgsvc:node:{one.id}:inbox"
        self.assertGreater(redis_call(self.redis.port, "XLEN", inbox), 0)
        one.process.send_signal(signal.SIGKILL)
        self.assertEqual(bob.line(), "LEFT alice")
        for key in (inbox, f"msgsvc:node:{one.id}:waiting", f"msgsvc:node:{one.id}"):
            self.assertEqual(redis_call(self.redis.port, "EXISTS", key), 0, key)
        bob.send("SEND alice :gone")
        self.assertEqual(bob.line(), "SENT 0 alice -")

    def test_an_irc_user_on_one_node_and_a_tcp_user_on_another_talk(self) -> None:
        one, two = self.node(irc=True), self.node()
        bob, _ = two.register("bob")
        alice = Peer(one.irc_port)
        self.addCleanup(alice.close)
        alice.send("NICK alice")
        alice.send("USER alice 0 * :alice")
        alice.until(":irc.test 376 ")
        self.assertEqual(bob.line(), "JOINED alice")
        alice.send("JOIN #all")
        self.assertEqual(alice.until(":irc.test 366 ")[3], ":irc.test 353 alice = #all :alice bob")
        alice.send("PRIVMSG bob,carol :across")  # carol: never seen
        self.assertEqual(alice.line(), ":irc.test 401 alice carol :No such nick/channel (not online)")
        self.assertEqual(bob.line(), "MSG alice multicast bob :across")
        bob.send("SEND alice :back")
        bob.send("BROADCAST :everyone")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc PRIVMSG alice :back")
        self.assertEqual(alice.line(), ":bob!bob@msgsvc PRIVMSG #all :everyone")
        self.assertEqual([bob.line() for _ in range(2)], ["SENT 1 - -", "SENT 1 - -"])
        alice.send("PRIVMSG #all :hello all")
        self.assertEqual(bob.line(), "MSG alice broadcast * :hello all")
        alice.send("QUIT :done")
        self.assertEqual(bob.line(), "LEFT alice")

    def test_an_irc_users_away_is_known_on_the_other_nodes(self) -> None:
        """ann (node one) is AWAY: ben, in her room on node two, hears it (away-notify), is told 301 when he
        writes to her or asks WHOIS, and WHO marks her G, as on one node (attack35: none of it on node two)."""
        one, two = self.node(irc=True), self.node(irc=True)
        ann, ben = Peer(one.irc_port), Peer(two.irc_port)
        for peer, nick in ((ann, "ann"), (ben, "ben")):
            self.addCleanup(peer.close)
            peer.send("CAP REQ :away-notify")
            peer.send(f"NICK {nick}")
            peer.send(f"USER {nick} 0 * :{nick}")
            peer.send("CAP END")
            peer.until(":irc.test 376 ")
        ann.send("JOIN #aw")
        ann.until(":irc.test 366 ")
        ben.send("JOIN #aw")
        ben.until(":irc.test 366 ")
        ann.until(":ben!ben@msgsvc JOIN ")
        ann.send("AWAY :at lunch")
        ann.until(":irc.test 306 ")
        heard: list[str] = []
        deadline = time.monotonic() + 10
        while True:
            ben.send("WHOIS ann")
            whois = ben.until(":irc.test 318 ")
            heard += whois
            if ":irc.test 301 ben ann :at lunch" in whois or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertIn(":irc.test 301 ben ann :at lunch", whois)
        self.assertIn(":ann!ann@msgsvc AWAY :at lunch", heard)  # away-notify
        ben.send("PRIVMSG ann :hello")
        ben.send("WHO #aw")
        who = ben.until(":irc.test 315 ")
        self.assertEqual(who[0], ":irc.test 301 ben ann :at lunch")
        self.assertIn(":irc.test 352 ben #aw ann msgsvc irc.test ann G@ :0 ann", who)

    def test_every_kind_of_message_and_presence_cross_nodes(self) -> None:
        one, two = self.node(), self.node()
        alice, _ = one.register("alice")
        bob, log = two.register("Bob")
        self.assertEqual(
            log, ["WELCOME Bob :welcome to msgsvc", "USER alice online", "USER Bob online", "ENDUSERS 2"]
        )
        self.assertEqual(alice.line(), "JOINED Bob")
        carol, _ = one.register("carol")
        self.assertEqual(bob.line(), "JOINED carol")
        self.assertEqual(alice.line(), "JOINED carol")

        bob.send("SEND alice :one")
        self.assertEqual(bob.line(), "SENT 1 - -")
        self.assertEqual(alice.line(), "MSG Bob unicast alice :one")
        alice.send("SEND bob,carol,dave :two")  # bob on the other node, carol here, dave never seen
        self.assertEqual(alice.line(), "SENT 2 dave -")
        self.assertEqual(bob.line(), "MSG alice multicast Bob,carol :two")
        self.assertEqual(carol.line(), "MSG alice multicast Bob,carol :two")
        carol.send("BROADCAST :three")
        self.assertEqual(carol.line(), "SENT 2 - -")
        self.assertEqual(alice.line(), "MSG carol broadcast * :three")
        self.assertEqual(bob.line(), "MSG carol broadcast * :three")

        per_sender = [f"SEND bob :{i}" for i in range(200)]  # order is kept across nodes
        alice.sock.sendall("".join(line + "\r\n" for line in per_sender).encode())
        self.assertEqual(
            [bob.line() for _ in range(200)], [f"MSG alice unicast Bob :{i}" for i in range(200)]
        )
        self.assertEqual({alice.line() for _ in range(200)}, {"SENT 1 - -"})
        # In one pass, unicasts and a broadcast between them: published so that bob gets them in order.
        alice.sock.sendall(b"SEND bob :u1\r\nBROADCAST :b2\r\nSEND bob :u3\r\nBROADCAST :b4\r\n")
        self.assertEqual(
            [bob.line() for _ in range(4)],
            ["MSG alice unicast Bob :u1", "MSG alice broadcast * :b2", "MSG alice unicast Bob :u3"]
            + ["MSG alice broadcast * :b4"],
        )
        self.assertEqual([alice.line() for _ in range(4)], ["SENT 1 - -", "SENT 2 - -"] * 2)
        self.assertEqual(
            [carol.line() for _ in range(2)], ["MSG alice broadcast * :b2", "MSG alice broadcast * :b4"]
        )

        bob.send("QUIT")
        self.assertEqual(alice.line(), "LEFT Bob")
        self.assertIn("Bob came online on node ", one.output())

    def test_a_message_has_one_id_on_every_node_and_is_in_the_history_read_on_any(self) -> None:
        """Issue 30: what alice sends on node one reaches bob on node two with its id and time, and is
        in the history bob reads there as soon as node one has written it."""
        one, two = self.node(), self.node()

        def protected(node: Node, name: str) -> Peer:
            peer = node.connect()
            peer.send("VERSION 9")
            peer.send(f"HELLO {name}")
            self.assertEqual(peer.until("ENDHISTORY #all")[-1], "ENDHISTORY #all 0 start")
            peer.send("PASSWORD :a long enough password")
            self.assertEqual(peer.line(), f"PROTECTED {name} :{name} is protected by your password")
            return peer

        alice, bob = protected(one, "alice"), protected(two, "bob")
        # Kept only if node one knows a participant is protected (docs/protocol.rst "History"), and sent
        # after the millisecond bob was protected in: one of that millisecond counts as before it.
        alice.until("ACCOUNT bob protected")
        time.sleep(0.002)
        sent = []
        for line, text in (("SEND bob", "hi bob"), ("BROADCAST", "hi all")):
            alice.send(f"{line} :{text}")
            answer = alice.until("SENT ")[-1].split()  # after presence lines, if any
            self.assertEqual(answer[:4], ["SENT", "1", "-", "-"])
            sent.append((answer[4], answer[5], text))
        (unicast_id, unicast_at, _), (broadcast_id, broadcast_at, _) = sent
        self.assertEqual(bob.until("MSG ")[-1], f"MSG alice unicast bob {unicast_id} {unicast_at} :hi bob")
        self.assertEqual(bob.line(), f"MSG alice broadcast * {broadcast_id} {broadcast_at} :hi all")
        expected = {
            "alice": [f"HISTMSG alice,bob alice unicast bob {unicast_id} {unicast_at} :hi bob"],
            "#all": [f"HISTMSG #all alice broadcast * {broadcast_id} {broadcast_at} :hi all"],
        }
        for conversation, lines in expected.items():
            key = "alice,bob" if conversation == "alice" else conversation
            deadline = time.monotonic() + 10
            while True:  # node one writes it at the end of its reactor pass, after delivering it
                bob.send(f"HISTORY {conversation}")
                page = bob.until("ENDHISTORY")
                if len(page) > 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(page, [*lines, f"ENDHISTORY {key} 1 start"])

    def test_two_nodes_racing_for_one_name_admit_one(self) -> None:
        nodes = [self.node(), self.node()]
        answers: list[str] = []
        peers = [node.connect() for node in nodes for _ in range(5)]

        def race(peer: Peer) -> None:
            peer.send("HELLO Racer")
            answers.append(peer.line())

        threads = [threading.Thread(target=race, args=(peer,)) for peer in peers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(sum(a.startswith("WELCOME ") for a in answers), 1, answers)
        self.assertEqual(sum(a == "ERROR USERNAME_TAKEN :Racer is in use" for a in answers), 9, answers)

    def test_a_killed_nodes_users_go_offline_and_their_names_are_free_within_a_lease(self) -> None:
        one, two = self.node(), self.node()
        alice, _ = one.register("alice")
        bob, _ = two.register("bob")
        self.assertEqual(alice.line(), "JOINED bob")
        killed = time.monotonic()
        two.process.send_signal(signal.SIGKILL)
        self.assertEqual(alice.line(), "LEFT bob")
        self.assertLess(time.monotonic() - killed, LEASE)
        alice.send("SEND bob :are you there")
        self.assertEqual(alice.line(), "SENT 0 bob -")
        bob_again, log = one.register("bob")
        self.assertEqual(log[0], "WELCOME bob :welcome to msgsvc")

    def test_an_accounts_sessions_on_two_nodes_get_its_messages_and_outlive_a_killed_node(self) -> None:
        one, two = self.node(extra=["--max-sessions", "2"]), self.node(extra=["--max-sessions", "2"])
        laptop, _ = one.register("alice :alice's password")
        bob, _ = one.register("bob")
        self.assertEqual(laptop.line(), "JOINED bob")
        phone, welcome = two.register("alice :alice's password")
        self.assertEqual(welcome[0], "WELCOME alice :welcome to msgsvc")
        phone.send("SEND bob :on the phone")  # once bob has it, node one has heard of the phone's session
        self.assertEqual(phone.line(), "SENT 1 - -")
        self.assertEqual(bob.line(), "MSG alice unicast bob :on the phone")
        bob.send("SEND alice :hi")
        self.assertEqual(bob.line(), "SENT 1 - -")  # one user, two sessions
        self.assertEqual(laptop.line(), "MSG bob unicast alice :hi")
        self.assertEqual(phone.line(), "MSG bob unicast alice :hi")
        third = one.connect()
        third.send("HELLO alice :alice's password")  # a third across the service: past --max-sessions
        self.assertTrue(third.line().startswith("ERROR SESSIONS_FULL "))
        carol, _ = one.register("carol")
        other = two.connect()
        other.send("HELLO carol")  # an unprotected name: one session in the whole service
        self.assertEqual(other.line(), "ERROR USERNAME_TAKEN :carol is in use")
        two.process.send_signal(signal.SIGKILL)  # the node of alice's phone
        time.sleep(LEASE * 1.5)  # its lease over and swept
        bob.send("PING :still here?")
        self.assertEqual(bob.until("PONG :still here?"), ["JOINED carol", "PONG :still here?"])  # no LEFT
        bob.send("SEND alice :and now")
        self.assertEqual(bob.line(), "SENT 1 - -")
        self.assertEqual(laptop.line(), "JOINED carol")
        self.assertEqual(laptop.line(), "MSG bob unicast alice :and now")
        laptop.send("QUIT")
        self.assertEqual(bob.line(), "LEFT alice")

    def test_a_read_position_moved_on_one_node_reaches_the_accounts_session_on_another(self) -> None:
        one, two = self.node(), self.node()
        laptop, phone = alice_on(one, two, 10)
        bob, _ = one.register("bob")
        bob.send("SEND alice :hi")
        self.assertEqual(bob.line(), "SENT 1 - -")
        message = laptop.until("MSG bob unicast alice ")[-1]
        self.assertEqual(phone.until("MSG bob unicast alice ")[-1], message)
        id = message.split()[4]
        laptop.send(f"READ bob {id}")
        self.assertEqual(laptop.line(), f"READ alice,bob {id}")
        self.assertEqual(phone.line(), f"READ alice,bob {id}")  # from the other node

    def test_while_redis_is_away_each_node_keeps_its_own_users_talking(self) -> None:
        one, two = self.node(lease=30), self.node(lease=30)  # an outage shorter than the lease
        alice, _ = one.register("alice")
        carol, _ = one.register("carol")
        bob, _ = two.register("bob")
        for peer, heard in ((alice, ["JOINED carol", "JOINED bob"]), (carol, ["JOINED bob"])):
            self.assertEqual([peer.line() for _ in heard], heard)
        self.redis.stop()
        one.wait_logged("lost Redis")
        alice.send("SEND carol :same node")  # needs no Redis
        self.assertEqual(alice.line(), "SENT 1 - -")
        self.assertEqual(carol.line(), "MSG alice unicast carol :same node")
        alice.send("SEND bob,carol :other node")  # nobody gets it: nothing is claimed
        self.assertEqual(
            alice.line(),
            "ERROR SERVER_ERROR :the service's state is unreachable: only users of this server can be reached now",
        )
        alice.send("BROADCAST :whoever can hear")
        self.assertEqual(alice.line(), "SENT 1 - -")  # carol only, and the count says so
        self.assertEqual(carol.line(), "MSG alice broadcast * :whoever can hear")
        dave = one.connect()
        dave.send("HELLO dave")
        self.assertTrue(dave.line().startswith("ERROR SERVER_ERROR "))
        self.redis.start()  # its append-only file: every claim is still there
        hello_until(dave, "dave")
        self.assertEqual(bob.line(), "JOINED dave")  # no LEFT nor JOINED for those who stayed
        self.assertEqual(alice.line(), "JOINED dave")
        alice.send("SEND bob :back")
        self.assertEqual(alice.line(), "SENT 1 - -")
        self.assertEqual(bob.line(), "MSG alice unicast bob :back")

    def test_what_is_said_while_redis_is_away_is_in_the_history_once_it_is_back(self) -> None:
        """The node asks Redis again (0.2 s, doubling to 5 s) for what it could not keep in the history."""
        one = self.node(lease=30)
        alice, carol = one.connect(), one.connect()
        for peer, name in ((alice, "alice"), (carol, "carol")):
            peer.send("VERSION 12")
            peer.send(f"HELLO {name}")
            peer.until("ENDHISTORY #all")
        self.assertEqual(alice.until("JOINED carol")[-1], "JOINED carol")
        self.redis.stop()
        one.wait_logged("lost Redis")
        alice.send("BROADCAST :while Redis was away")
        said = alice.until("SENT ")[-1].split()
        self.assertEqual(said[:4], ["SENT", "1", "-", "-"])
        one.wait_logged("could not keep 1 messages in the history")
        self.redis.start()
        line = f"HISTMSG #all alice broadcast * {said[4]} {said[5]} :while Redis was away"
        deadline = time.monotonic() + 15
        while True:
            carol.send("HISTORY #all")
            page = [carol.line()]  # or ERROR UNAVAILABLE, until the node has Redis again
            while not page[-1].startswith(("ENDHISTORY", "ERROR")):
                page.append(carol.line())
            if line in page or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertIn(line, page)
        one.wait_logged("history: the store takes messages again")

    def test_a_name_taken_elsewhere_while_its_node_was_cut_off_stays_with_its_new_holder(self) -> None:
        """Redis lost its data while node one was stopped (within its lease), and alice registered
        anew on node two: node one, back, claims its alice again, is refused and disconnects her."""
        one, two = self.node(lease=30), self.node(lease=30)
        alice, _ = one.register("alice")
        bob, _ = two.register("bob")
        self.assertEqual(alice.line(), "JOINED bob")
        one.process.send_signal(signal.SIGSTOP)
        self.addCleanup(one.process.send_signal, signal.SIGCONT)
        self.redis.stop()
        shutil.rmtree(self.redis.directory)  # its append-only file too: every claim is lost
        os.makedirs(self.redis.directory)
        self.redis.start()
        for _ in range(300):  # until node two is back and no longer counts the old alice as online
            usurper = two.connect()  # USERNAME_TAKEN closes the connection
            usurper.send("HELLO alice")
            answer = usurper.line()
            if answer.startswith("WELCOME"):
                break
            self.assertRegex(answer, "^ERROR (SERVER_ERROR|USERNAME_TAKEN) ")
            usurper.close()
            time.sleep(0.05)
        else:
            self.fail("alice was never welcomed on node two")
        usurper.until("ENDUSERS")
        self.assertEqual(bob.line(), "LEFT alice")  # the old one, gone with Redis's data
        self.assertEqual(bob.line(), "JOINED alice")
        one.process.send_signal(signal.SIGCONT)
        self.assertEqual(alice.line(), "BYE :alice was taken on another server while this one was cut off")
        one.wait_logged("lease held")
        usurper.send("SEND bob :still mine")
        self.assertEqual(usurper.line(), "SENT 1 - -")
        self.assertEqual(bob.line(), "MSG alice unicast bob :still mine")
        carol, log = one.register("carol")  # node one serves again, and knows who holds alice
        self.assertIn("USER alice online", log)
        self.assertIn("USER bob online", log)  # node two claimed bob again, its lease first

    def test_a_node_cut_off_longer_than_its_lease_drops_its_users(self) -> None:
        one = self.node()
        alice, _ = one.register("alice")
        self.redis.stop()
        self.assertEqual(alice.line(), "BYE :this server lost the service's state (Redis); connect again")
        self.redis.start()
        one.wait_logged("lease held", timeout=15)
        again = one.connect()
        hello_until(again, "alice")

    def test_a_password_set_on_one_node_shows_on_the_others(self) -> None:
        one, two = self.node(), self.node()
        alice, _ = one.register("alice")
        alice.send("PASSWORD :alice's password")
        self.assertTrue(alice.line().startswith("PROTECTED "))
        two.wait_logged("alice is protected: a password was set on another server")
        bob, log = two.register("bob")
        self.assertIn("USER alice online protected", log)

    def room_user(self, node: Node, name: str) -> Peer:
        """A version 11 client of ``node`` (rooms) logged in as ``name``."""
        peer = node.connect()
        peer.send("VERSION 11")
        peer.send(f"HELLO {name}")
        peer.until("ENDHISTORY")
        return peer

    def listed(self, peer: Peer, line: str) -> list[str]:
        """ROOMS every 0.05 s until ``line`` is among the rooms (another node's change is published: it
        comes a moment later); the rooms then."""
        deadline = time.monotonic() + 10
        while True:
            peer.send("ROOMS")
            rooms = peer.until("ENDROOMS")
            if line in rooms or time.monotonic() > deadline:
                return rooms
            time.sleep(0.05)

    def operators_of_dev(self) -> tuple[Peer, Peer]:
        """alice on one node and bob on another, both operators of #dev (alice made it, then made bob
        one), each having seen the other's join."""
        one, two = self.node(), self.node()
        alice, bob = self.room_user(one, "alice"), self.room_user(two, "bob")
        alice.until("JOINED bob")
        alice.send("JOIN #dev")
        alice.until("ENDMEMBERS")
        self.listed(bob, "ROOMINFO #dev 1 :")
        bob.send("JOIN #dev")
        bob.until("ENDMEMBERS")
        alice.until("ENTERED #dev bob")
        alice.send("MODE #dev +o bob")
        bob.until("MODE #dev alice +o bob")
        return alice, bob

    def test_a_room_spans_two_nodes_its_messages_and_a_kick_cross_them(self) -> None:
        one, two = self.node(), self.node()
        alice, bob, carol = self.room_user(one, "alice"), self.room_user(two, "bob"), self.room_user(two, "carol")
        alice.until("JOINED carol")  # from the other node
        bob.until("JOINED carol")
        alice.send("JOIN #Dev")
        self.assertEqual(alice.until("ENDMEMBERS")[-2:], ["MEMBER #Dev alice online op", "ENDMEMBERS #Dev 1"])
        # Created on one, listed on two.
        self.assertEqual(self.listed(bob, "ROOMINFO #Dev 1 :"), ["ROOMINFO #Dev 1 :", "ENDROOMS 1"])
        bob.send("JOIN #dev")
        self.assertEqual(
            bob.until("ENDMEMBERS")[-3:],
            ["MEMBER #Dev alice online op", "MEMBER #Dev bob online", "ENDMEMBERS #Dev 2"],
        )
        self.assertEqual(alice.line(), "ENTERED #Dev bob")  # from the other node
        # A message from each side reaches the other's member, and SENT counts it.
        bob.send("SEND #dev :from two")
        self.assertRegex(bob.line(), r"^SENT 1 - - \S+ \S+$")
        self.assertRegex(alice.line(), r"^MSG bob room #Dev \S+ \S+ :from two$")
        alice.send("SEND #dev :from one")
        self.assertRegex(alice.line(), r"^SENT 1 - - \S+ \S+$")
        self.assertRegex(bob.line(), r"^MSG alice room #Dev \S+ \S+ :from one$")
        carol.send("JOIN #dev")
        carol.until("ENDMEMBERS #Dev 3")
        self.assertEqual((alice.line(), bob.line()), ("ENTERED #Dev carol", "ENTERED #Dev carol"))
        # A kick on one is seen on two: by the kicked, and by another member there.
        alice.send("KICK #dev bob :enough")
        self.assertEqual(alice.line(), "KICKED #Dev bob alice :enough")
        self.assertEqual((bob.line(), carol.line()), ("KICKED #Dev bob alice :enough",) * 2)
        bob.send("SEND #dev :still here?")  # node two knows he is out
        self.assertEqual(bob.line(), "ERROR NOT_IN_ROOM :you are not in #Dev")
        alice.send("SEND #dev :after")
        self.assertRegex(alice.line(), r"^SENT 1 - - ")  # carol alone
        self.assertRegex(carol.line(), r"^MSG alice room #Dev \S+ \S+ :after$")
        bob.send("PING :nothing more")
        self.assertEqual(bob.line(), "PONG :nothing more")
        # The operator deletes it: its members on both nodes are told.
        done = self.admin("rooms", "delete", "#DEV", "--reason", "closed")
        self.assertEqual((done.returncode, done.stdout), (0, "#Dev deleted (closed)\n"))
        self.assertEqual((alice.line(), carol.line()), ("ROOMGONE #Dev :closed",) * 2)
        self.assertEqual(self.listed(bob, "ENDROOMS 0"), ["ENDROOMS 0"])

    def test_a_room_created_on_two_nodes_at_once_has_both_joiners_everywhere(self) -> None:
        """Both JOINs create #race: the first Redis keeps makes it, the other joins it (a plain member);
        each node, and Redis, ends with both members."""
        one, two = self.node(), self.node()
        alice, bob = self.room_user(one, "alice"), self.room_user(two, "bob")
        alice.until("JOINED bob")
        alice.send("JOIN #race")
        bob.send("JOIN #race")
        for peer, other in ((alice, "bob"), (bob, "alice")):
            # in the room's members, or told from the other node (before or after)
            lines = peer.until("ENDMEMBERS")
            if not [line for line in lines if line.startswith((f"MEMBER #race {other} ", f"ENTERED #race {other}"))]:
                peer.until(f"ENTERED #race {other}")
        for peer in (alice, bob):
            peer.send("SEND #race :hi")  # a member on its node, which knows the other
            self.assertRegex(peer.until("SENT")[-1], r"^SENT 1 ")
        carol = self.room_user(self.node(), "carol")  # a third node reads the room from Redis
        carol.send("MEMBERS #race")
        members = [line.split()[2:] for line in carol.until("ENDMEMBERS") if line.startswith("MEMBER ")]
        self.assertIn(members, ([["alice", "online", "op"], ["bob", "online"]], [["alice", "online"], ["bob", "online", "op"]]))

    def test_topics_set_at_once_on_two_nodes_agree_everywhere(self) -> None:
        """Each node applied its own topic, then the other's (attack 32: 5 of 5 disagreed): now the later
        stands on both nodes and in Redis.  Each one's answer is read before the topic is asked: bob's
        may come after what he is told of alice's topic and +m (node two read its subscription before
        Redis's answer to its own topic), and was then taken for the answer to his TOPIC query (the test
        failed now and then under load, node two said to keep 'from bob' while it kept alice's)."""
        alice, bob = self.operators_of_dev()
        alice.send("TOPIC #dev :from alice")
        bob.send("TOPIC #dev :from bob")
        # A change after each, seen on the other node: the topic before it was heard there too.
        alice.send("MODE #dev +m")
        if not [line for line in bob.until("MODE #dev alice +m") if line.startswith("TOPIC #dev bob ")]:
            bob.until("TOPIC #dev bob ")  # his answer (he is told none of his own)
        bob.send("MODE #dev +i")
        alice.until("MODE #dev bob +i")
        carol = self.room_user(self.node(), "carol")  # reads the room from Redis
        topics = []
        for peer in (alice, bob, carol):
            peer.send("TOPIC #dev")
            topics.append(peer.until("TOPIC #dev ")[-1])
        self.assertIn(topics[0].split(" :", 1)[1], ["from alice", "from bob"])
        self.assertEqual(topics, [topics[0]] * 3)

    def test_a_member_made_operator_as_soon_as_it_joined_is_one_on_every_node(self) -> None:
        """dave joins on one, and alice there makes him an operator (or voices him) as soon as she is told:
        node two hears the join before the mode change (had it heard the change first, it would pass it
        over, dave unknown, then take the join without op: not as Redis keeps him).  Ten rounds."""
        one, two = self.node(), self.node()
        alice, dave, carol = self.room_user(one, "alice"), self.room_user(one, "dave"), self.room_user(two, "carol")
        alice.until("JOINED carol")
        alice.send("JOIN #dev")
        alice.until("ENDMEMBERS")
        self.listed(carol, "ROOMINFO #dev 1 :")
        carol.send("JOIN #dev")
        carol.until("ENDMEMBERS")
        alice.until("ENTERED #dev carol")
        for n, (letter, shown) in enumerate([("o", "op"), ("v", "voice")] * 5):
            dave.send("JOIN #dev")
            alice.until("ENTERED #dev dave")
            alice.send(f"MODE #dev +{letter} dave")
            alice.until(f"MODE #dev alice +{letter} dave")
            carol.until(f"MODE #dev alice +{letter} dave")  # node two took the change: dave was known there
            carol.send("MEMBERS #dev")
            self.assertIn(f"MEMBER #dev dave online {shown}", carol.until("ENDMEMBERS"), f"round {n}")
            kept = json.loads(redis_call(self.redis.port, "HGET", "msgsvc:members:#dev", "dave"))
            self.assertEqual(kept[1:3], [letter == "o", letter == "v"])
            dave.send("PART #dev")
            dave.until("PARTED #dev dave")
            carol.until("PARTED #dev dave")

    def test_modes_set_at_once_on_two_nodes_end_as_redis_has_them_everywhere(self) -> None:
        """+k, +l and a flag set at once on two nodes (Redis paused meanwhile, so neither has heard the
        other's): each node applied its own, then the other's, and ended with the other's key (attack 32),
        and Redis kept one node's flags; now both nodes end with the room as Redis keeps it, both flags."""
        alice, bob = self.operators_of_dev()
        redis_call(self.redis.port, "CLIENT", "PAUSE", "600", "WRITE")
        alice.send("MODE #dev +ikl a 10")
        bob.send("MODE #dev +mkl b 20")
        alice.until("MODE #dev alice +ikl a 10")
        bob.until("MODE #dev bob +mkl b 20")
        settings = json.loads(redis_call(self.redis.port, "HGET", "msgsvc:rooms:settings", "#dev"))
        self.assertIn((settings[3], settings[4], settings[5]), [("imnt", "a", 10), ("imnt", "b", 20)])
        deadline = time.monotonic() + 10  # another node's change comes a moment later
        while True:
            modes = []
            for peer in (alice, bob):
                peer.send("MODE #dev")
                modes.append(peer.until("MODE #dev - ")[-1])
            if len(set(modes)) == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(modes, [f"MODE #dev - +iklmnt {settings[5]} {settings[4]}"] * 2)

    def test_a_ban_lifted_and_set_again_at_once_on_two_nodes_ends_as_redis_has_it_everywhere(self) -> None:
        """alice lifts eve's ban on one node as bob lifts and sets it again on the other (Redis paused
        meanwhile, so neither has heard the other's): each node applied its own, then the other's, and
        ended with the other's, one banning eve and one not; now both end with the bans Redis keeps."""
        alice, bob = self.operators_of_dev()
        alice.send("MODE #dev +b eve")
        alice.until("MODE #dev alice +b eve")
        bob.until("MODE #dev alice +b eve")
        redis_call(self.redis.port, "CLIENT", "PAUSE", "600", "WRITE")
        alice.send("MODE #dev -b eve")
        bob.send("MODE #dev -b+b eve eve")
        alice.until("MODE #dev alice ")
        bob.until("MODE #dev bob ")
        bans_kept = [json.loads(ban) for ban in redis_call(self.redis.port, "HVALS", "msgsvc:bans:#dev")]
        kept = [[mask.removesuffix("!*@*"), by] for mask, by, _ in bans_kept]  # a name's, as version 11 shows it
        self.assertIn(kept, ([], [["eve", "bob"]]))
        deadline = time.monotonic() + 10  # another node's change comes a moment later
        while True:
            bans = []
            for peer in (alice, bob):
                peer.send("MODE #dev b")
                bans.append([line.split()[2:4] for line in peer.until("ENDBANS ") if line.startswith("BAN ")])
            if bans == [kept] * 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(bans, [kept] * 2)

    def test_rooms_created_at_once_by_one_account_on_two_nodes_count_against_its_limit(self) -> None:
        """--max-rooms-per-user 3: alice's sessions on two nodes create three rooms each at once; three
        are made, as Redis counts them (each node counted its own)."""
        extra = ["--max-rooms-per-user", "3"]
        one, two = self.node(extra=extra), self.node(extra=extra)
        laptop = self.room_user(one, "alice :alice's password")
        phone = self.room_user(two, "alice :alice's password")
        for peer, rooms in ((laptop, "abc"), (phone, "xyz")):
            for room in rooms:
                peer.send(f"JOIN #{room}")
        answers = []
        for peer in (laptop, phone):
            for _ in range(3):
                line = peer.line()
                while not line.startswith(("ROOM ", "ERROR ")):
                    line = peer.line()
                answers.append(line.split()[0] if line.startswith("ROOM ") else line.split()[1])
        self.assertEqual(sorted(answers), ["ROOM"] * 3 + ["TOO_MANY_ROOMS"] * 3)
        self.assertEqual(redis_call(self.redis.port, "SCARD", "msgsvc:memberships:alice"), 3)
        self.assertEqual(len(redis_call(self.redis.port, "HKEYS", "msgsvc:rooms")), 3)

    def test_the_groups_a_name_opens_a_day_are_counted_across_nodes(self) -> None:
        """--new-groups-per-day 2 (attack36 F2): alice opens two groups from node one; from node two her
        third new group is refused and reaches nobody, as Redis counts them, and a group she has goes."""
        extra = ["--new-groups-per-day", "2"]
        one, two = self.node(extra=extra), self.node(extra=extra)
        laptop, phone = alice_on(one, two, 13)
        bob, _ = one.register("bob")
        carol, _ = two.register("carol")
        dave, _ = two.register("dave")
        for group in ("bob,carol", "bob,dave"):
            laptop.send(f"SEND {group} :hi {group}")
            self.assertTrue(laptop.until("SENT ")[-1].startswith("SENT 2 "))
        phone.send("SEND carol,dave :a third")
        refused = phone.until("ERROR ")[-1]
        self.assertTrue(refused.startswith("ERROR TOO_MANY_NEW_GROUPS :you opened 2 new group"), refused)
        phone.send("SEND bob,carol :again")
        self.assertTrue(phone.until("SENT ")[-1].startswith("SENT 2 "))
        got = carol.until("MSG alice multicast bob,carol :again")
        self.assertEqual([line.split(" :", 1)[1] for line in got if line.startswith("MSG ")], ["hi bob,carol", "again"])
        self.assertEqual(redis_call(self.redis.port, "ZCARD", "msgsvc:opened:alice"), 2)

    def test_a_member_limit_holds_for_joins_at_once_on_two_nodes(self) -> None:
        """#dev +l 3: six joins sent at once, three a node, admit two (attack 32 saw five members)."""
        one, two = self.node(), self.node()
        alice = self.room_user(one, "alice")
        alice.send("JOIN #dev")
        alice.until("ENDMEMBERS")
        alice.send("MODE #dev +l 3")
        alice.until("MODE #dev alice +l 3")
        joiners = [self.room_user(node, f"{name}{i}") for i in range(3) for node, name in ((one, "p"), (two, "q"))]
        for peer in joiners:
            self.listed(peer, "ROOMINFO #dev 1 :")  # its node has the room and its limit
        for peer in joiners:
            peer.send("JOIN #dev")
        answers = []
        for peer in joiners:
            line = peer.line()
            while not line.startswith(("ROOM ", "ERROR ")):
                line = peer.line()
            answers.append(line.split()[0] if line.startswith("ROOM ") else line.split()[1])
        self.assertEqual(sorted(answers), ["ROOM", "ROOM"] + ["ROOM_FULL"] * 4)
        carol = self.room_user(self.node(), "carol")  # Redis has three members
        carol.send("MEMBERS #dev")
        self.assertEqual(carol.until("ENDMEMBERS")[-1], "ENDMEMBERS #dev 3")

    def test_a_room_left_by_its_last_member_while_joined_on_another_node_keeps_its_modes_everywhere(self) -> None:
        """alice (node one) leaves #rN, +ik, as bob (node two, invited, with the key) joins it: whether bob is
        let in or not, both nodes and Redis agree (attack35: 18 of 40 times bob was let in, Redis had no
        room, and node one made it anew with no modes: mallory, an outsider there, joined it with no key
        nor invitation and spoke to bob)."""
        many = ["--new-rooms-per-hour", "1000"]  # 20 rooms from one address
        one, two = self.node(extra=many), self.node(extra=many)
        alice, bob, mallory = self.room_user(one, "alice"), self.room_user(two, "bob"), self.room_user(one, "mallory")

        for trial in range(20):
            room = f"#r{trial}"
            invite_only(alice, bob, room)
            alice.send(f"PART {room}")
            bob.send(f"JOIN {room} :sekrit")
            alice.until(f"PARTED {room} alice")
            joined = answer(bob)
            if not joined.startswith("ROOM ") or "i" not in joined.split()[3]:
                continue  # the room was gone (or bob made it anew): nothing kept to agree on
            bob.until("ENDMEMBERS")
            deadline = time.monotonic() + 10  # node one hears of bob's join
            while True:
                mallory.send(f"MEMBERS {room}")
                if answer(mallory) == f"ENDMEMBERS {room} 1" or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            mallory.send(f"JOIN {room}")
            self.assertEqual(answer(mallory), f"ERROR INVITE_ONLY :{room} is invite-only")
            kept = redis_call(self.redis.port, "HEXISTS", f"msgsvc:members:{room}", "bob")
            self.assertEqual(kept, 1)  # what a node started now would read

    def test_an_accounts_session_on_another_node_is_told_of_its_own_join(self) -> None:
        """Membership belongs to the account: its session on node two is told that its session on node one
        joined a room, as it is on one node (attack35: nothing came, so an IRC session there never showed the
        channel, nor its KICK, MODE or TOPIC, yet got its messages)."""
        one, two = self.node(), self.node()
        here, there = self.room_user(one, "alice :alice's password"), self.room_user(two, "alice :alice's password")
        bob = self.room_user(one, "bob")
        bob.send("JOIN #dev")
        bob.until("ENDMEMBERS")
        self.listed(there, "ROOMINFO #dev 1 :")
        for room, operator, flags in (("#dev", bob, ""), ("#made", here, " op")):  # one that is there, one made
            here.send(f"JOIN {room}")
            here.until("ENDMEMBERS")
            operator.send(f"MODE {room} +v alice")  # told after the join, on every node
            told = there.until(f"MODE {room} ")
            self.assertIn(f"ENTERED {room} alice{flags}", told)

    def test_an_accounts_irc_session_on_another_node_shows_the_room_it_joined(self) -> None:
        """As on one node, alice's IRC session shows the channel her session on another node joined (attack35:
        it never did, so it showed none of its KICK, MODE or TOPIC)."""
        one, two = self.node(), self.node(irc=True)
        here = self.room_user(one, "alice :alice's password")
        there = Peer(two.irc_port)
        self.addCleanup(there.close)
        for command in ("PASS :alice's password", "NICK alice", "USER alice 0 * :alice"):
            there.send(command)
        there.until(":irc.test 376 ")
        here.send("JOIN #made")
        here.until("ENDMEMBERS")
        shown = there.until(":irc.test 366 ")
        self.assertIn(":alice!alice@msgsvc JOIN :#made", shown)

    def test_a_room_its_last_two_members_leave_at_once_on_two_nodes_is_removed_everywhere(self) -> None:
        """alice (node one) and bob (node two) leave #rN, +k, at once: each node sees the other leave last and
        removes the room, and so must Redis; made anew by carol, it is hers and keyless on a node started
        later (attack35: 17 of 20 times Redis kept the room, empty, with its key: made anew, it kept the old
        founding and key there, while the nodes running showed it keyless; a node started later asked for
        the old key)."""
        one, two = (self.node(extra=["--new-rooms-per-hour", "100"]) for _ in range(2))
        alice, bob, carol = self.room_user(one, "alice"), self.room_user(two, "bob"), self.room_user(one, "carol")
        rooms = [f"#r{trial}" for trial in range(10)]
        for room in rooms:
            alice.send(f"JOIN {room}")
            alice.until("ENDMEMBERS")
            alice.send(f"MODE {room} +k sekrit")
            alice.until(f"MODE {room} alice +k")
            self.listed(bob, f"ROOMINFO {room} 1 :")
            bob.send(f"JOIN {room} :sekrit")
            self.assertEqual(bob.until("ENDMEMBERS ")[-1], f"ENDMEMBERS {room} 2")
            alice.until(f"ENTERED {room} bob")
            alice.send(f"PART {room}")
            bob.send(f"PART {room}")
            alice.until(f"PARTED {room} alice")
            bob.until(f"PARTED {room} bob")
        for peer in (carol, bob):  # each node has heard both leave: it has no room
            self.listed(peer, "ENDROOMS 0")
        for room in rooms:
            carol.send(f"JOIN {room}")
            self.assertRegex(answer(carol), f"^ROOM {room} \\S+ \\+nt :$")  # made anew
            self.assertEqual(carol.until("ENDMEMBERS")[-2:], [f"MEMBER {room} carol online op", f"ENDMEMBERS {room} 1"])
        dave = self.room_user(self.node(), "dave")  # reads the rooms from Redis
        for room in rooms:
            dave.send(f"JOIN {room}")  # no key
            self.assertRegex(answer(dave), f"^ROOM {room} \\S+ \\+nt :$")
            self.assertEqual(dave.until("ENDMEMBERS")[-1], f"ENDMEMBERS {room} 2")

    def test_a_join_where_a_room_kept_elsewhere_was_dropped_makes_no_operator_of_it(self) -> None:
        """alice (node one) leaves #cN, +ik, as bob (node two, invited, with the key) joins it, and mallory
        (node one, neither invited nor given the key) joins it too: node one has dropped the room, so
        mallory's join creates it, and the store must not make her a member, let alone an operator, of the
        +ik room it keeps with bob (attack35: 12 of the 13 times bob's join was kept, mallory was an
        operator of it, and node one showed it +nt with no key)."""
        many = ["--new-rooms-per-hour", "1000", "--new-names-burst", "100"]
        one, two = self.node(extra=many), self.node(extra=many)
        alice, bob = self.room_user(one, "alice"), self.room_user(two, "bob")

        def joined(peer: Peer) -> None:
            """Read a JOIN's answer through its end (ENDMEMBERS, or an ERROR)."""
            while not peer.line().startswith(("ENDMEMBERS ", "ERROR ")):
                pass

        for trial in range(30):
            room = f"#c{trial}"
            mallory = self.room_user(one, f"mallory{trial}")  # a line burst of her own
            invite_only(alice, bob, room)
            alice.send(f"PART {room}")
            bob.send(f"JOIN {room} :sekrit")
            for _ in range(20):
                mallory.send(f"JOIN {room}")
            alice.until(f"PARTED {room} alice")
            joined(bob)
            for _ in range(20):
                joined(mallory)  # each kept (or refused) before it is answered
            settings = redis_call(self.redis.port, "HGET", "msgsvc:rooms:settings", room)
            member = redis_call(self.redis.port, "HEXISTS", f"msgsvc:members:{room}", f"mallory{trial}")
            if settings is not None and "i" in json.loads(settings)[3]:
                self.assertEqual(member, 0, f"mallory{trial} is in {room}, +ik")
            mallory.close()

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m msgsvc.admin`` on the service's Redis."""
        return subprocess.run(
            [sys.executable, "-m", "msgsvc.admin", "--redis", self.redis.url, *args],
            env=dict(os.environ, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=30,
        )

    def test_the_operators_command_removes_offline_names_for_every_node(self) -> None:
        one, two = self.node(), self.node()
        spam, _ = one.register("spam :a password 123")
        spam.send("QUIT")
        spam.until("BYE")
        alice, _ = one.register("alice")
        bob, _ = two.register("bob")
        refused = self.admin("remove", "Alice", "--reason", "why not")
        self.assertEqual(
            (refused.returncode, refused.stderr), (1, "msgsvc.admin: alice is online: disconnect it first\n")
        )
        done = self.admin("remove", "SPAM", "--reason", "made by a script")
        removed = (0, "spam removed from the username log (made by a script)\n")
        self.assertEqual((done.returncode, done.stdout), removed)
        self.assertEqual(bob.until("REMOVED")[-1], "REMOVED spam")  # the other node picked it up
        self.assertEqual(alice.until("REMOVED")[-1], "REMOVED spam")
        two.wait_logged("the operator removed spam from the username log: made by a script")
        _, log = two.register("carol")
        self.assertEqual([line for line in log if line.startswith("USER ")][-1], "USER carol online")
        self.assertNotIn("USER spam offline protected", log)
        again, welcome = one.register("spam")  # anyone's again, without a password
        self.assertEqual(welcome[0], "WELCOME spam :welcome to msgsvc")

    def test_the_operators_command_resets_a_password_for_every_node(self) -> None:
        one, two = self.node(), self.node()
        alice, _ = one.register("alice :alice's password")
        admin = self.admin

        self.assertEqual(admin("list").stdout.split("\t")[0], "alice")
        done = admin("reset", "ALICE", "--reason", "forgot it")
        self.assertEqual((done.returncode, done.stdout), (0, "alice is no longer protected (forgot it)\n"))
        self.assertEqual(
            [alice.line(), alice.line()],
            ["ACCOUNT alice unprotected", "BYE :the operator removed your name's password: forgot it"],
        )
        self.assertEqual(admin("reset", "alice", "--reason", "again").returncode, 1)
        two.wait_logged("the operator removed the protection of alice: forgot it")  # within 2 s
        bob, log = two.register("bob")
        [listed] = [line for line in log if line.startswith("USER alice ")]
        self.assertNotIn("protected", listed)  # on the other node too


class _Scripts:
    """Redis's commands for :class:`RedisCluster`, answered by the test."""

    connected = True

    def __init__(self) -> None:
        self.calls: list[tuple[object, list[object], Deferred[Any]]] = []

    def script(self, script: object, keys: list[str], args: list[object]) -> Deferred[Any]:
        answer: Deferred[Any] = Deferred()
        self.calls.append((script, args, answer))
        return answer


class RouteTests(SynchronousTestCase):
    """What a node writes for the messages of one reactor pass, and what each is told it reached."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()  # a name resolver too: the connections' endpoints (not started)
        self.redis = _Scripts()
        state = SimpleNamespace(redis=self.redis, url=RedisURL("localhost"), node="")
        self.cluster = RedisCluster(self.clock, state, 30.0, 1000, node="A")  # type: ignore[arg-type]

    def message(self, kind: Kind, text: str) -> Message:
        at = 1_764_000_000.0 + len(text)
        recipients = ("bob",) if kind is Kind.UNICAST else ()
        return Message("alice", kind, recipients, text, message_id_floor(at), at)

    def route(self, message: Message, keys_by_node: dict[str, list[str]]) -> list[set[str] | Failure]:
        """Route ``message``: the list gets its answer."""
        answers: list[set[str] | Failure] = []
        self.cluster.route(message, keys_by_node, answers.append)
        return answers

    def test_one_script_a_pass_with_each_message_and_the_nodes_it_is_for_in_order(self) -> None:
        routed = [
            self.route(self.message(Kind.UNICAST, "u1"), {"B": ["bob"]}),
            self.route(self.message(Kind.BROADCAST, "b2"), {}),
            self.route(self.message(Kind.MULTICAST, "m3"), {"B": ["bob"], "C": ["carol", "dave"]}),
        ]
        self.assertEqual(self.redis.calls, [])  # at the end of the pass
        self.clock.advance(0)
        ((script, args, answer),) = self.redis.calls
        self.assertIs(script, ROUTE)
        self.assertEqual(args[0], "A")
        lines = [line.split("\t") for line in str(args[1]).split("\n")]  # one argument: a line a message
        self.assertEqual([to for to, _ in lines], ["B", "", "B,C"])
        bodies = [json.loads(body) for _, body in lines]
        self.assertEqual([b[3] for b in bodies], ["u1", "b2", "m3"])
        self.assertEqual(bodies[2][6], {"B": ["bob"], "C": ["carol", "dave"]})
        broadcast = self.message(Kind.BROADCAST, "b2")
        self.assertEqual(bodies[1], ["alice", "broadcast", [], "b2", broadcast.id, broadcast.at, {}])
        answer.callback([["B"], ["B", "C"], ["B"], ["C"]])  # C's inbox was full for m3
        self.assertEqual(routed, [[{"B"}], [{"B", "C"}], [{"B"}]])  # each answered once

    def test_a_message_read_from_the_inbox_keeps_the_id_and_time_its_node_gave_it(self) -> None:
        """A message has one id on every node: the one its sender's node made."""
        got: list[tuple[Message, object]] = []
        nodes = SimpleNamespace(remote_message=lambda m, keys: got.append((m, keys)))
        self.cluster.attach(nodes)  # type: ignore[arg-type]
        sent = self.message(Kind.UNICAST, "u1"), self.message(Kind.BROADCAST, "b2")
        self.route(sent[0], {"A": ["bob"]})
        self.route(sent[1], {})
        self.clock.advance(0)
        ((_, args, _),) = self.redis.calls
        bodies = [line.split("\t")[1] for line in str(args[1]).split("\n")]
        self.cluster._messages("[" + ",".join(bodies) + "]")  # one entry, as ROUTE writes it
        self.assertEqual([(m.id, m.at, m.text) for m, _ in got], [(m.id, m.at, m.text) for m in sent])
        self.assertEqual([keys for _, keys in got], [["bob"], ()])

    def test_a_message_that_cannot_be_delivered_is_logged_and_the_others_of_its_entry_go(self) -> None:
        got: list[str] = []
        logged: list[str] = []

        def remote_message(message: Message, keys: object) -> None:
            if message.text == "bad":
                raise KeyError(message.text)
            got.append(message.text)

        self.cluster.attach(SimpleNamespace(remote_message=remote_message))  # type: ignore[arg-type]
        self.cluster.log = Logger(observer=lambda event: logged.append(event["log_format"]))
        entry = [self.message(Kind.UNICAST, text) for text in ("one", "bad", "three")]
        self.cluster._messages("[" + ",".join(encode_message(m, {"A": ["bob"]}) for m in entry) + "]")
        self.assertEqual(got, ["one", "three"])
        self.assertEqual(logged, ["could not deliver a message from {sender}"])

    def test_a_node_whose_inbox_is_full_is_logged_once_until_it_takes_messages_again(self) -> None:
        logged: list[str] = []
        self.cluster.log = Logger(observer=lambda event: logged.append(event["log_format"]))

        def pass_(reply: list[list[str]]) -> None:
            self.route(self.message(Kind.UNICAST, "u"), {"C": ["carol"]})
            self.clock.advance(0)
            self.redis.calls[-1][2].callback(reply)

        pass_([[], ["C"]])
        pass_([[], ["C"]])
        self.assertEqual(len(logged), 1)
        self.assertIn("its inbox in Redis is full", logged[0])
        pass_([["C"], []])
        pass_([[], ["C"]])
        self.assertEqual(len(logged), 2)

    def test_when_redis_fails_every_message_of_the_pass_fails(self) -> None:
        routed = [self.route(self.message(Kind.UNICAST, str(i)), {"B": ["bob"]}) for i in range(3)]
        self.clock.advance(0)
        self.redis.calls[0][2].errback(RedisUnavailable("gone"))
        for [failure] in routed:
            assert isinstance(failure, Failure)
            self.assertTrue(failure.check(RedisUnavailable))

    def test_a_reply_that_does_not_fit_fails_every_message_rather_than_leave_some_waiting(self) -> None:
        routed = [
            self.route(self.message(Kind.UNICAST, str(i)), {n: ["x"]}) for i, n in enumerate("BC")
        ]
        self.clock.advance(0)
        self.redis.calls[0][2].callback([["B"], []])  # one reply for two messages, and the full nodes
        for [failure] in routed:
            assert isinstance(failure, Failure)
            self.assertTrue(failure.check(ValueError))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.text(min_size=1),
        st.sampled_from(Kind),
        st.lists(st.text(min_size=1), max_size=3),
        st.text(),
        st.floats(min_value=0, max_value=2**47 / 1000, allow_nan=False),
        st.dictionaries(st.text(min_size=1), st.lists(st.text(min_size=1), max_size=3), max_size=3),
    )
    def test_a_message_is_written_as_compact_json_dumps_writes_it(
        self, sender: str, kind: Kind, group: list[str], text: str, at: float, keys: dict[str, list[str]]
    ) -> None:
        """encode_message writes the JSON by hand: exactly json.dumps's, which every node reads."""
        message = Message(sender, kind, tuple(group), text, message_id_floor(at), at)
        written = json.dumps([sender, kind.value, group, text, message.id, at, keys], separators=(",", ":"))
        self.assertEqual(encode_message(message, keys), written)


class InboxScriptTests(RedisCase):
    """The scripts that write a pass's messages to the nodes' inboxes and delete what a node delivered,
    in a real redis-server."""

    def call(self, *args: object) -> Any:
        return redis_call(self.redis.port, *args)

    def test_each_node_takes_what_fits_in_order_and_only_a_node_alive(self) -> None:
        self.call("SADD", NODES, "A", "B", "C", "D")  # D: its lease is gone
        for node, limit in (("A", 1000), ("B", 1000), ("C", 100)):
            self.call("SET", f"msgsvc:node:{node}", "{}")
            self.call("HSET", waiting_key(node), "limit", limit)
        messages = ["B", "m1" * 25, "", "b" * 50, "B,C", "m3" * 30, "D", "m4"]
        lines = "\n".join(f"{to}\t{message}" for to, message in zip(messages[::2], messages[1::2]))
        replies = self.call("EVAL", ROUTE.source, 1, NODES, "A", lines)
        replies[1].sort()  # the nodes of a set
        # m1 and the broadcast fit in C (51 bytes each, with their separator); m3 (61) no longer does
        self.assertEqual(replies, [["B"], ["B", "C"], ["B"], [], ["C"]])
        ((entry, fields),) = self.call("XRANGE", inbox_key("B"), "-", "+")
        self.assertEqual(fields, ["s", "163", "m", "[" + ",".join(messages[1:6:2]) + "]"])
        self.assertEqual(
            self.call("XRANGE", inbox_key("C"), "-", "+")[0][1], ["s", "51", "m", "[" + "b" * 50 + "]"]
        )
        self.assertEqual(self.call("EXISTS", inbox_key("A"), inbox_key("D")), 0)
        self.assertEqual(self.call("HGET", waiting_key("B"), "bytes"), "163")
        taken = [TAKEN.source, 2, inbox_key("B"), waiting_key("B"), entry, 163]
        self.assertEqual(self.call("EVAL", *taken), 163)
        self.assertEqual(self.call("EVAL", *taken), 0)  # again (a reply lost): counted once
        self.assertEqual(self.call("HGET", waiting_key("B"), "bytes"), "0")
        self.assertEqual(self.call("XLEN", inbox_key("B")), 0)

    def test_a_node_with_no_limit_yet_takes_nothing(self) -> None:
        self.call("SET", "msgsvc:node:B", "{}")
        self.assertEqual(self.call("EVAL", ROUTE.source, 1, NODES, "A", "B\tm"), [[], ["B"]])


class _Hub:
    """The hub's side of a node (:class:`msgsvc.hub.contracts.NetworkListener`): keeps the messages and
    the presence from other nodes."""

    def __init__(self) -> None:
        self.messages: list[tuple[Message, tuple[str, ...]]] = []
        self.presence: list[tuple[object, ...]] = []
        self.rooms: list[RoomRecord] | None = None  # as the last resync read them
        self.resynced: list[int] = []  # how many presence events had come at each resync
        self.away: list[tuple[str, str, str]] = []  # as the last resync read them
        self.away_here: dict[str, str] = {}  # this node's away names, by key
        self.local: list[tuple[str, int, int, str, str, float]] = []  # this node's sessions (local_users)

    def remote_message(self, message: Message, keys: Sequence[str]) -> None:
        self.messages.append((message, tuple(keys)))

    def remote_joined(self, user: RemoteUser, first_seen: float, protected: bool, first_time: bool) -> None:
        self.presence.append(("joined", user.name, user.node))

    def remote_left(self, key: str, node: str, when: float, dead: bool = False) -> None:
        self.presence.append(("left", key, node) + (("dead",) if dead else ()))

    def remote_protected(self, key: str) -> None:
        pass

    def remote_backlog(self, key: str) -> None:
        self.presence.append(("backlog", key))

    def remote_read(self, key: str, conversation: str, position: str) -> None:
        self.presence.append(("read", key, conversation, position))

    def remote_room(self, event: RoomEvent) -> None:
        self.presence.append(("room", event))

    def remote_away(self, key: str, node: str, message: str | None) -> None:
        self.presence.append(("away", key, node, message))

    def resync(
        self,
        records: Iterable[UserRecord],
        online: Iterable[RemoteUser],
        rooms: Iterable[RoomRecord],
        away: Iterable[tuple[str, str, str]],
    ) -> None:
        self.rooms = list(rooms)
        self.away = list(away)
        self.resynced.append(len(self.presence))

    def local_users(self) -> list[tuple[str, int, int, str, str, float]]:
        return list(self.local)

    def local_away(self) -> dict[str, str]:
        return dict(self.away_here)

    def drop_local(self, name: str | None, reason: str) -> None:
        pass


class _TwoNodes(RedisStateCase):
    """Nodes in this process on one redis-server, each with a :class:`_Hub`."""

    async def until(self, done: Any) -> None:
        deadline = time.monotonic() + 10
        while not done():
            self.assertLess(time.monotonic(), deadline, "not within 10 s")
            await deferLater(reactor, 0.02, lambda: None)

    def held_rooms(self, state: RedisState) -> list[Deferred[list[RoomRecord]]]:
        """From now on, ``state``'s reads of the rooms are answered when the test fires the Deferreds
        added to the list returned."""
        asked: list[Deferred[list[RoomRecord]]] = []

        def rooms() -> Deferred[list[RoomRecord]]:
            asked.append(Deferred())
            return asked[-1]

        state.rooms = rooms  # type: ignore[method-assign]
        return asked

    def node(self, name: str, lease: float = LEASE) -> tuple[RedisCluster, RedisState, _Hub]:
        state = self.started()
        cluster = RedisCluster(reactor, state, lease, 1 << 20, node=name)
        hub = _Hub()
        cluster.attach(hub)
        cluster.startService()
        self.addCleanup(cluster.stopService)
        return cluster, state, hub


class TwoNodesHistoryTests(_TwoNodes):
    """Two nodes: a message has one id everywhere, and one history."""

    async def test_a_message_sent_on_one_node_has_its_id_and_its_history_on_the_other(self) -> None:
        (a, on_a, _), (b, on_b, hub_b) = self.node("A"), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable())
        ids = MessageIds(reactor)
        unicast = Message("alice", Kind.UNICAST, ("bob",), "hi", *ids.make())
        broadcast = Message("alice", Kind.BROADCAST, (), "all", *ids.make())
        routed: Deferred[set[str] | Failure] = Deferred()
        a.route(unicast, {"B": ["bob"]}, routed.callback)
        self.assertEqual(await routed, {"B"})
        reached: Deferred[set[str] | Failure] = Deferred()
        self.assertTrue(a.broadcast(broadcast, reached.callback))
        self.assertEqual(await reached, {"B"})
        await self.until(lambda: len(hub_b.messages) == 2)
        self.assertEqual(
            [(m.id, m.at, m.text, keys) for m, keys in hub_b.messages],
            [(unicast.id, unicast.at, "hi", ("bob",)), (broadcast.id, broadcast.at, "all", ())],
        )
        conversation = conversation_key("alice", Kind.UNICAST, ("bob",))
        assert conversation is not None
        entry = Stored(unicast.id, unicast.at, conversation, "alice", Kind.UNICAST, ("bob",), "hi")
        await on_a.append(to_keep([entry]), 100)
        self.assertEqual(await on_b.page_before("alice,bob", None, 10, 0.0), ([entry], False))


class SessionsAcrossNodesTests(_TwoNodes):
    """One name's sessions on two nodes: held while any lives, within the allowance across the service."""

    async def two(self) -> tuple[RedisCluster, _Hub, RedisCluster, _Hub]:
        (a, _, hub_a), (b, _, hub_b) = self.node("A"), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable())
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        return a, hub_a, b, hub_b

    async def refusal(self, claim: Deferred[tuple[str, bool]]) -> Refusal:
        try:
            await claim
        except Refused as e:
            return e.refusal
        self.fail("claimed")

    async def online(self) -> dict[str, list[str]]:
        """Who holds each name, as Redis has it: its sessions' fields."""
        keys = await self.state.redis.execute("HKEYS", ONLINE)
        return {key: sorted(await self.state.redis.execute("HKEYS", sessions_key(key))) for key in keys}

    async def test_an_accounts_sessions_on_two_nodes_are_held_within_its_allowance(self) -> None:
        a, hub_a, b, hub_b = await self.two()
        self.assertEqual(await a.claim("Alice", "p1", "tcp", 1.0, False, 1, 3), ("Alice", True))
        self.assertEqual(await b.claim("alice", "p2", "web", 2.0, True, 1, 3), ("Alice", False))
        self.assertEqual(await a.claim("ALICE", "p3", "irc", 3.0, True, 2, 3), ("Alice", False))
        full = await self.refusal(b.claim("alice", "p4", "tcp", 4.0, True, 2, 3))
        self.assertEqual(full, Refusal.SESSIONS_FULL)
        self.assertEqual(await self.online(), {"alice": ["A/1", "A/2", "B/1"]})
        await self.until(lambda: ("joined", "Alice", "A") in hub_b.presence)
        await self.until(lambda: ("joined", "Alice", "B") in hub_a.presence)
        self.assertEqual(hub_b.presence, [("joined", "Alice", "A")])  # a node's first session only

    async def test_an_unprotected_name_is_exclusive_across_the_service(self) -> None:
        a, _, b, _ = await self.two()
        await a.claim("bob", "p1", "tcp", 1.0, False, 1, 1)
        taken = await self.refusal(b.claim("bob", "p2", "tcp", 2.0, True, 1, 1))
        self.assertEqual(taken, Refusal.USERNAME_TAKEN)
        await b.claim("alice", "p3", "tcp", 3.0, False, 2, 10)  # an account
        taken = await self.refusal(a.claim("alice", "p4", "tcp", 4.0, True, 3, 1))  # not protected here
        self.assertEqual(taken, Refusal.USERNAME_TAKEN)
        self.assertEqual(await self.online(), {"bob": ["A/1"], "alice": ["B/2"]})

    async def test_the_name_is_held_until_its_last_session_on_any_node_goes(self) -> None:
        a, hub_a, b, hub_b = await self.two()
        for node, session in ((a, 1), (a, 2), (b, 1)):
            await node.claim("alice", "p", "tcp", 1.0, True, session, 10)
        a.release("alice", 1, 5.0)
        await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(await self.online(), {"alice": ["A/2", "B/1"]})
        self.assertNotIn(("left", "alice", "A"), hub_b.presence)
        a.release("alice", 2, 6.0)
        await self.until(lambda: ("left", "alice", "A") in hub_b.presence)
        self.assertEqual(await self.online(), {"alice": ["B/1"]})
        holder = json.loads(await self.state.redis.execute("HGET", ONLINE, "alice"))
        self.assertEqual(holder["node"], "B")  # the name's holder is one still there
        b.release("alice", 1, 7.0)
        await self.until(lambda: ("left", "alice", "B") in hub_a.presence)
        self.assertEqual(await self.online(), {})
        self.assertEqual(await self.state.redis.execute("HGET", LOG_LAST, "alice"), "7.0")

    async def test_an_accounts_backlog_goes_to_one_session_in_the_service_at_a_time(self) -> None:
        a, hub_a, b, hub_b = await self.two()
        for node, session in ((a, 1), (a, 2), (b, 1)):
            await node.claim("alice", "p", "tcp", 1.0, True, session, 10)
        self.assertTrue(await a.take_backlog("alice", 1))
        self.assertTrue(await a.take_backlog("Alice", 1))  # its own still
        self.assertFalse(await b.take_backlog("alice", 1))
        self.assertFalse(await a.take_backlog("alice", 2))
        b.drop_backlog("alice", 1)  # not its: nothing happens
        a.drop_backlog("alice", 1)
        await self.until(lambda: ("backlog", "alice") in hub_b.presence)
        self.assertNotIn(("backlog", "alice"), hub_a.presence)  # its own node handed it over itself
        self.assertTrue(await b.take_backlog("alice", 1))
        b.release("alice", 1, 5.0)  # gone without letting it go (Redis away then, say): it holds it no more
        self.assertTrue(await a.take_backlog("alice", 2))
        self.assertEqual(hub_b.presence.count(("backlog", "alice")), 1)  # only a holder's drop is said

    async def test_the_backlog_a_dead_nodes_session_had_is_free(self) -> None:
        a, _, b, hub_b = await self.two()
        await a.claim("alice", "p", "tcp", 1.0, False, 1, 10)
        await b.claim("alice", "p", "web", 2.0, True, 1, 10)
        self.assertTrue(await a.take_backlog("alice", 1))
        self.assertFalse(await b.take_backlog("alice", 1))
        await a.stopService()  # its lease ends: the next sweep of B takes its sessions
        await self.until(lambda: ("left", "alice", "A", "dead") in hub_b.presence)
        self.assertTrue(await b.take_backlog("alice", 1))

    async def test_a_dead_node_takes_only_its_own_sessions(self) -> None:
        a, _, b, hub_b = await self.two()
        await a.claim("alice", "p", "tcp", 1.0, False, 1, 10)
        await b.claim("alice", "p", "web", 2.0, True, 1, 10)
        await a.claim("carol", "p", "tcp", 3.0, False, 2, 1)
        await a.stopService()  # its lease ends: the next sweep of B takes its sessions
        await self.until(lambda: ("left", "carol", "A", "dead") in hub_b.presence)
        self.assertIn(("left", "alice", "A", "dead"), hub_b.presence)
        self.assertEqual(await self.online(), {"alice": ["B/1"]})
        holder = json.loads(await self.state.redis.execute("HGET", ONLINE, "alice"))
        self.assertEqual(holder["node"], "B")
        with self.assertRaises(StillOnline):  # held by B
            await self.state.remove("alice", "gone", 9.0)


    async def test_a_read_position_moved_on_one_node_reaches_the_others(self) -> None:
        a, hub_a, b, hub_b = await self.two()
        a.read_moved("Alice", "alice,bob", "0123")
        await self.until(lambda: hub_b.presence)
        self.assertEqual(hub_b.presence, [("read", "alice", "alice,bob", "0123")])
        self.assertEqual(hub_a.presence, [])

    async def test_an_away_message_reaches_the_others_and_a_node_started_later_until_its_name_leaves(
        self,
    ) -> None:
        """F5: away is the service's: B hears A's user go away and come back, C (started later) reads it,
        and it goes with the name's last session on A; a name A does not hold is not away there."""
        a, hub_a, b, hub_b = await self.two()
        await a.claim("Alice", "p1", "irc", 1.0, False, 1, 1)
        a.away_changed("Alice", "at lunch")
        a.away_changed("bob", "not held")
        await self.until(lambda: ("away", "alice", "A", "at lunch") in hub_b.presence)
        self.assertEqual(await self.state.redis.execute("HGETALL", away_key("A")), ["alice", "at lunch"])
        _, _, hub_c = self.node("C")
        await self.until(lambda: hub_c.rooms is not None)  # resynced
        self.assertEqual(hub_c.away, [("alice", "A", "at lunch")])
        a.away_changed("alice", None)
        a.away_changed("alice", "back soon")
        await self.until(lambda: ("away", "alice", "A", "back soon") in hub_b.presence)
        a.release("alice", 1, 2.0)
        await self.until(lambda: ("left", "alice", "A") in hub_b.presence)
        self.assertEqual(
            [p for p in hub_b.presence if p[0] == "away"],
            [
                ("away", "alice", "A", "at lunch"),
                ("away", "alice", "A", None),
                ("away", "alice", "A", "back soon"),
            ],
        )
        self.assertEqual(await self.state.redis.execute("EXISTS", away_key("A")), 0)

    async def test_a_node_back_says_again_who_of_its_names_is_away_and_only_what_changed(self) -> None:
        """After a reconnection a node gives its away names whole: what Redis had otherwise is published."""
        a, hub_a, b, hub_b = await self.two()
        for session, name in enumerate(("alice", "carol"), 1):
            await a.claim(name, "p", "irc", 1.0, False, session, 1)
        a.away_changed("alice", "at lunch")
        await self.state.redis.execute("HSET", away_key("A"), "bob", "stale")  # bob left while Redis was away
        await self.state.redis.script(
            AWAY_AGAIN,
            [users_key("A"), away_key("A")],
            ["A", "alice", "at lunch", "carol", "in a meeting", "dave", "not held"],
        )
        await self.until(lambda: ("away", "carol", "A", "in a meeting") in hub_b.presence)
        self.assertEqual(
            [p for p in hub_b.presence if p[0] == "away"],
            [
                ("away", "alice", "A", "at lunch"),
                ("away", "bob", "A", None),
                ("away", "carol", "A", "in a meeting"),
            ],
        )
        away = await self.state.redis.execute("HGETALL", away_key("A"))
        self.assertEqual(
            dict(zip(away[::2], away[1::2], strict=True)), {"alice": "at lunch", "carol": "in a meeting"}
        )

    async def test_a_node_reads_the_rooms_whenever_it_subscribes(self) -> None:
        dev = RoomRecord("#Dev", 1.0, "alice", "t", "alice", 2.0, "int", "k", 5)
        dev.members = {"alice": Member("alice", op=True, since=1.0)}
        await self.state.create_room(dev, 50)
        a, hub_a, _, _ = await self.two()
        await self.until(lambda: hub_a.rooms is not None)  # what it did not hear while unsubscribed
        self.assertEqual(hub_a.rooms, [dev])

    async def test_what_happens_in_a_room_on_one_node_reaches_the_others_as_it_was(self) -> None:
        a, hub_a, b, hub_b = await self.two()
        events: list[RoomEvent] = [
            Entered("#Dev", Member("Alice", op=True, since=1.0 / 3), created=True),
            TopicSet("#Dev", "Ship it", "Alice", 2.0 / 3),
            Kicked("#Dev", "bob", "Alice", "bye"),
            Invited("#Dev", "carol", "Alice"),
            Parted("#Dev", "Alice", "disconnected", quit=True),
            RoomGone("#Dev", "spam", "dave"),
            RoomGone("#Dev", "closed"),
        ]
        for event in events:
            a.room_changed(event)
        await self.until(lambda: len(hub_b.presence) == len(events))
        self.assertEqual(hub_b.presence, [("room", event) for event in events])
        self.assertEqual(hub_a.presence, [])  # not told its own

    async def test_a_change_of_a_rooms_modes_reaches_the_others_from_redis_as_it_was_kept(self) -> None:
        """``SET_MODES`` publishes the change with what it kept, before its answer to the node that made it
        (attack36 F6: the node published it after answering its asker, whose next line on another node
        was read first); that node publishes none of its own (:meth:`RedisCluster.room_changed`)."""
        (a, state_a, hub_a), (b, _, hub_b) = self.node("A"), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable())
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        dev = RoomRecord("#Dev", 1.0, "Alice")
        dev.members = {"alice": Member("Alice", op=True, since=1.0), "bob": Member("bob", since=1.0 / 3)}
        await state_a.create_room(dev, 50)
        changes = (("+k", "sesame"), ("+i", None), ("+o", "bob"), ("+b", "eve!*@*"))
        kept = await state_a.set_modes("#dev", changes, "Alice", 2.0 / 3, {"bob": 0})
        assert kept is not None
        bob = Member("bob", True, False, 1.0 / 3, 1)
        self.assertEqual((kept.modes, kept.key, kept.members), ("int", "sesame", (bob,)))
        self.assertEqual(kept.bans, (Ban("eve!*@*", "Alice", 2.0 / 3),))
        modes = ModeSet("#Dev", "Alice", changes, kept)
        topic = TopicSet("#Dev", "Ship it", "Alice", 3.0)
        a.room_changed(modes)
        a.room_changed(topic)
        await self.until(lambda: len(hub_b.presence) == 2)
        self.assertEqual(hub_b.presence, [("room", modes), ("room", topic)])
        self.assertEqual(hub_a.presence, [])  # not told its own

    async def test_every_event_heard_while_a_node_reads_again_is_taken_after_the_read(self) -> None:
        """A node reads the log, who is online, the rooms and who is away again when its subscription or its
        lease comes back; Redis may answer before a change whose event reaches the subscription before the
        answer reaches the node.  Every event heard from then to the read's end (joined, away, left, a
        room's) is given to the hub after the read, in turn, not before, where the read would undo it (a
        name joined meanwhile dropped, one left meanwhile kept online, a topic lost: on that node only)."""
        (a, _, _), (b, state_b, hub_b) = self.node("A"), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable() and hub_b.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        await a.claim("carol", "10.0.0.3:5000", "lines", 1.0, False, 2, 1)
        await self.until(lambda: ("joined", "carol", "A") in hub_b.presence)
        before = await state_b.rooms()
        asked = self.held_rooms(state_b)
        heard = len(hub_b.presence)
        b._reclaim()  # as when its subscription or lease comes back
        await self.until(lambda: asked != [])
        topic = TopicSet("#Dev", "Ship it", "Alice", 2.0 / 3)
        await a.claim("alice", "10.0.0.1:5000", "lines", 1.0, False, 1, 1)
        a.away_changed("alice", "at lunch")
        a.release("carol", 2, 5.0)
        a.room_changed(topic)
        events = [
            ("joined", "alice", "A"),
            ("away", "alice", "A", "at lunch"),
            ("left", "carol", "A"),
            ("room", topic),
        ]
        await self.until(lambda: len(b._heard_meanwhile) + len(hub_b.presence) - heard == len(events))
        asked[0].callback(before)  # as Redis had them before the topic
        await self.until(lambda: len(hub_b.resynced) == 2)
        self.assertEqual(hub_b.resynced[-1], heard)  # nothing taken before the read
        self.assertEqual(hub_b.presence[heard:], events)

    async def test_a_node_says_it_reads_again_from_the_start_of_a_reclaim_to_the_reads_end(self) -> None:
        """What its hub refuses room SENDs by (UNAVAILABLE: its rooms may be behind) while it holds."""
        b, state_b, hub_b = self.node("B")
        await self.until(lambda: b.reachable() and hub_b.resynced != [])
        self.assertFalse(b.rereading())
        before = await state_b.rooms()
        asked = self.held_rooms(state_b)
        b._reclaim()  # as when its subscription or lease comes back
        self.assertTrue(b.rereading())
        await self.until(lambda: asked != [])
        asked[0].callback(before)
        await self.until(lambda: len(hub_b.resynced) == 2)
        self.assertFalse(b.rereading())

    async def test_a_node_whose_read_failed_says_it_reads_again_until_a_read_is_taken(self) -> None:
        """A re-read that fails (Redis away again) leaves what the node holds behind: it says so (its hub
        refuses room SENDs) until the read it makes again at its next renewal is taken."""
        b, state_b, hub_b = self.node("B")
        await self.until(lambda: b.reachable() and hub_b.resynced != [])
        before = await state_b.rooms()
        asked = self.held_rooms(state_b)
        b._reclaim()
        await self.until(lambda: asked != [])
        asked[0].errback(RedisUnavailable("Redis went away again"))
        await self.until(lambda: len(asked) == 2)  # asked again at the next renewal
        self.assertTrue(b.rereading())
        asked[1].callback(before)
        await self.until(lambda: len(hub_b.resynced) == 2)
        self.assertFalse(b.rereading())

    async def test_an_away_redis_did_not_take_reaches_the_other_nodes_once_it_answers(self) -> None:
        """An AWAY set while this node's commands connection is down (Redis stopped, hung, a connection
        dropped) fails; its subscription and lease may hold all along, so the node never reads again.  The
        other nodes heard it only at the node's next re-read; now it reads again at its next renewal (a
        quarter lease).  The lease outlasts the reconnection (up to 1.2 s: 0.2 s and up to 1 s of jitter)."""
        (a, _, hub_a), (b, _, hub_b) = self.node("A", lease=8.0), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable() and hub_a.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        await a.claim("alice", "10.0.0.1:5000", "lines", 1.0, False, 1, 1)
        hub_a.local.append(("alice", 1, 1, "10.0.0.1:5000", "lines", 1.0))
        a._redis._protocol.transport.loseConnection()
        await self.until(lambda: not a._redis.connected)
        hub_a.away_here["alice"] = "at lunch"
        a.away_changed("alice", "at lunch")  # fails at once
        await self.until(lambda: ("away", "alice", "A", "at lunch") in hub_b.presence)
        self.assertEqual(await self.state.redis.execute("HGETALL", away_key("A")), ["alice", "at lunch"])
        self.flushLoggedErrors(RedisUnavailable)  # the outage's first failure, logged whole

    async def test_a_re_read_redis_cannot_take_fails_once_not_also_unhandled(self) -> None:
        """A re-read made while the commands connection is down: the forgetting of ended sessions fails
        with the claims, and the re-read says so once (read again at the next renewal); its failure is not
        also an 'Unhandled error in Deferred' when the forgetting's Deferred is collected (review38)."""
        b, _, hub_b = self.node("B")
        await self.until(lambda: b.reachable() and hub_b.resynced != [])
        b._redis._protocol.transport.loseConnection()
        await self.until(lambda: not b._redis.connected)
        with capturedLogs() as logged:
            b._reclaim()
            gc.collect()
        told = [formatEvent(e) for e in logged]
        self.assertEqual([line for line in told if "Unhandled error" in line], [])
        self.assertEqual(len([line for line in told if "could not read who is online" in line]), 1)
        self.flushLoggedErrors(RedisUnavailable)

    async def test_a_renewal_whose_answer_breaks_leaves_the_heartbeat_beating(self) -> None:
        """A fault raised while a renewal's answer is taken (here the re-read it starts) is logged, and the
        next beat renews: the heartbeat's LoopingCall, which stops for good at a failure, never sees it
        (before: the lease was let run out, the node's users dropped, and no lease taken again)."""
        b, _, hub_b = self.node("B")
        await self.until(lambda: b.reachable() and hub_b.resynced != [])
        reclaim = b._reclaim

        def broken() -> None:
            b._reclaim = reclaim  # type: ignore[method-assign]
            raise RuntimeError("a fault in the re-read")

        b._reclaim = broken  # type: ignore[method-assign]
        b._owed = True  # the next renewal reads again
        await self.until(lambda: b._reclaim is reclaim)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(b._heartbeat.running)
        renewed = b._held_until
        await self.until(lambda: b._held_until > renewed)  # the next beat renewed
        self.assertTrue(b.holds_lease())

    async def test_a_node_does_not_join_a_service_whose_nodes_run_another_event_format(self) -> None:
        """Nodes of two event formats would drop each other's events (a MODE from a newer node not
        understood by an older one: rooms diverged, silently).  A node takes no lease while a node of
        another format holds one, says why once, and joins once that node has gone."""
        lease = json.dumps({"node": "old", "started": 1.0, "format": FORMAT + 1})
        await self.state.redis.execute("SET", node_key("old"), lease, "PX", 60_000)
        await self.state.redis.execute("SADD", NODES, "old")
        with capturedLogs() as logged:
            b, _, _ = self.node("B")
            await deferLater(reactor, 1.5, lambda: None)  # three renewals tried
        refusals = [formatEvent(e) for e in logged if "not joining" in (e.get("log_format") or "")]
        self.assertEqual(
            refusals,
            [
                f"node B: not joining the service: node old runs event format {FORMAT + 1}, this one "
                f"{FORMAT}: nodes of two formats do not understand each other's events; this node joins once "
                'no node of another format runs (docs/scaling.rst, "Upgrades")'
            ],
        )
        self.assertFalse(b.holds_lease())
        self.assertIn("runs event format", self.failureResultOf(b.check()).getErrorMessage())
        await self.state.redis.execute("DEL", node_key("old"))  # it stopped
        await self.until(b.holds_lease)

    async def test_a_node_without_a_format_in_its_lease_runs_the_first(self) -> None:
        """Nodes from before the formats were numbered run format 1: a node of format 1 joins them."""
        lease = '{"node": "old", "started": 1.0}'
        await self.state.redis.execute("SET", node_key("old"), lease, "PX", 60_000)
        await self.state.redis.execute("SADD", NODES, "old")
        self.patch(cluster, "FORMAT", 1)
        b, _, _ = self.node("B")
        await self.until(b.holds_lease)

    async def test_a_name_released_while_redis_did_not_answer_leaves_for_the_other_nodes_once_it_answers(self) -> None:
        """attack38 F1: a session that ends while this node's commands connection is down (Redis stopped,
        hung, a connection dropped) is not released in Redis ('its claim ends with this node's lease'), and
        the lease is renewed all along once Redis answers: the other nodes keep the name online for as long
        as this node runs, and a message sent there to it is answered delivered (real sockets: ``SENT 1 - -``
        to a name that had quit 30 s before; its node queued it).  The release must be told once Redis
        answers, as an AWAY it did not take is."""
        (a, _, hub_a), (b, _, hub_b) = self.node("A", lease=8.0), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable() and hub_a.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        await a.claim("alice", "10.0.0.1:5000", "lines", 1.0, False, 1, 1)
        await self.until(lambda: ("joined", "alice", "A") in hub_b.presence)
        a._redis._protocol.transport.loseConnection()
        await self.until(lambda: not a._redis.connected)
        a.release("alice", 1, 5.0)  # fails at once; alice is no longer among A's local users
        await self.until(lambda: ("left", "alice", "A") in hub_b.presence)
        self.assertEqual(await self.online(), {})
        self.flushLoggedErrors(RedisUnavailable)  # the outage's first failure, logged whole

    async def test_a_claim_redis_did_not_take_while_reading_again_is_made_again_at_the_next_renewal(self) -> None:
        """A node reading again claims its sessions again; one claim Redis did not take (a reply timeout,
        the connection dropped mid-read) was only logged, a line a name: the session stayed here unclaimed
        in Redis (offline on the other nodes, its unprotected name free for another node) until some later
        re-read.  Now it is a change Redis did not take: the next renewal reads and claims again."""
        (a, _, hub_a), (b, _, hub_b) = self.node("A", lease=8.0), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable() and hub_a.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        await a.claim("alice", "10.0.0.1:5000", "lines", 1.0, False, 1, 1)
        hub_a.local.append(("alice", 1, 1, "10.0.0.1:5000", "lines", 1.0))
        joined = ("joined", "alice", "A")
        await self.until(lambda: joined in hub_b.presence)
        await self.state.redis.execute("DEL", "msgsvc:sessions:alice")  # as if Redis lost it
        claim = a.claim
        self.patch(a, "claim", lambda *args: fail(RedisUnavailable("the reply timed out")))
        a._reclaim()
        self.patch(a, "claim", claim)
        await self.until(lambda: hub_b.presence.count(joined) == 2)  # claimed again
        self.flushLoggedErrors(RedisUnavailable)  # the outage's first failure, logged whole

    async def queue_let_go_unanswered(self) -> tuple[RedisCluster, _Hub, RedisCluster, _Hub]:
        """Nodes A and B; alice's session 1 on A takes her offline queue, and lets it go while A's commands
        connection is down."""
        (a, _, hub_a), (b, _, hub_b) = self.node("A", lease=8.0), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable() and hub_a.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        await a.claim("alice", "10.0.0.1:5000", "lines", 1.0, False, 1, 2)
        hub_a.local.append(("alice", 1, 2, "10.0.0.1:5000", "lines", 1.0))
        self.assertTrue(await a.take_backlog("alice", 1))
        a._redis._protocol.transport.loseConnection()
        await self.until(lambda: not a._redis.connected)
        a.drop_backlog("alice", 1)  # fails at once
        return a, hub_a, b, hub_b

    async def test_an_offline_queue_let_go_while_redis_did_not_answer_is_freed_once_it_answers(self) -> None:
        """reclaim38: a session that lets its account's offline queue go while this node's commands
        connection is down (it has it all, or it left) leaves it held in Redis, and the other nodes are not
        told it is free: another session of the account got what waits only at its next login or ACK.  Now
        the next renewal Redis answers lets it go, and says so."""
        a, hub_a, b, hub_b = await self.queue_let_go_unanswered()
        await self.until(lambda: ("backlog", "alice") in hub_b.presence)
        self.assertTrue(await b.take_backlog("alice", 1))
        self.flushLoggedErrors(RedisUnavailable)  # the outage's first failure, logged whole

    async def test_an_offline_queue_taken_again_after_a_failed_let_go_is_not_let_go_by_the_read(self) -> None:
        """A let-go Redis did not take, then the same session taking the queue again: the read after does
        not let go what it holds now."""
        a, hub_a, b, hub_b = await self.queue_let_go_unanswered()
        await self.until(lambda: a._redis.connected)
        self.assertTrue(await a.take_backlog("alice", 1))
        await self.until(lambda: len(hub_a.resynced) == 2)  # the renewal's read
        self.assertFalse(await b.take_backlog("alice", 1))
        self.assertNotIn(("backlog", "alice"), hub_b.presence)
        self.flushLoggedErrors(RedisUnavailable)

    async def test_a_read_position_redis_did_not_take_reaches_the_other_nodes_once_it_answers(self) -> None:
        """reclaim38: a read position published while this node's commands connection is down was lost:
        the name's sessions on other nodes kept showing the conversation unread.  Now the next renewal Redis
        answers publishes the newest of each conversation (one published since, taken, is not said again)."""
        (a, _, hub_a), (b, _, hub_b) = self.node("A", lease=8.0), self.node("B")
        await self.until(lambda: a.reachable() and b.reachable() and hub_a.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # both subscribed
        a._redis._protocol.transport.loseConnection()
        await self.until(lambda: not a._redis.connected)
        a.read_moved("Alice", "alice,bob", "0001")  # each fails at once
        a.read_moved("Alice", "alice,bob", "0002")
        a.read_moved("Alice", "#dev", "0003")
        await self.until(lambda: a._redis.connected)
        a.read_moved("alice", "#dev", "0004")
        await self.until(lambda: len(hub_a.resynced) == 2)
        await self.until(lambda: len([e for e in hub_b.presence if e[0] == "read"]) >= 2)
        await deferLater(reactor, 0.1, lambda: None)  # nothing more comes
        reads = sorted(e for e in hub_b.presence if e[0] == "read")
        self.assertEqual(reads, [("read", "alice", "#dev", "0004"), ("read", "alice", "alice,bob", "0002")])
        self.flushLoggedErrors(RedisUnavailable)

    async def test_a_room_change_redis_did_not_take_makes_the_node_read_the_rooms_again(self) -> None:
        """A room change made here is published just before its write, on the commands connection: with it
        down, neither is kept, and the node held its own copy (the change applied, its asker told
        UNAVAILABLE) unlike Redis and the other nodes, until some later re-read.  Now the next renewal
        reads the rooms again, as Redis has them."""
        (a, state_a, hub_a), _ = self.node("A", lease=8.0), self.node("B")
        await self.until(lambda: a.reachable() and hub_a.resynced != [])
        await deferLater(reactor, 0.1, lambda: None)  # subscribed
        a._redis._protocol.transport.loseConnection()
        await self.until(lambda: not a._redis.connected)
        a.room_changed(TopicSet("#Dev", "Ship it", "alice", 2.0))  # fails at once
        await self.until(lambda: len(hub_a.resynced) == 2)
        self.assertEqual(hub_a.rooms, await state_a.rooms())
        self.flushLoggedErrors(RedisUnavailable)  # the outage's first failure, logged whole

    async def test_a_renewal_answered_after_the_node_stopped_leaves_nothing_to_run(self) -> None:
        """A renewal in flight as the node stops scheduled the lease's end after stopService had cancelled
        it (a DirtyReactorAggregateError in a full run of the suite)."""
        a, _, hub_a = self.node("A")
        await self.until(lambda: a.reachable() and hub_a.resynced != [])
        a._renew()
        await a.stopService()  # its DEL goes after the renewal, on the same connection
        self.assertFalse(a._expiry is not None and a._expiry.active())

    async def test_the_operators_command_lists_rooms_and_deletes_one_for_every_node(self) -> None:
        a, hub_a, b, hub_b = await self.two()
        dev = RoomRecord("#Dev", 1.0, "alice", "Ship it", "alice", 2.0, "nt", None, None)
        dev.members = {"alice": Member("alice", op=True, since=1.0), "bob": Member("bob", since=3.0)}
        await self.state.create_room(dev, 50)
        await self.state.create_room(RoomRecord("#ops", 4.0, "carol", modes="s"), 50)

        def admin(*args: str) -> Deferred[subprocess.CompletedProcess[str]]:
            """The command, run in a thread: the nodes go on meanwhile (their leases renewed)."""
            return deferToThread(
                subprocess.run,
                [sys.executable, "-m", "msgsvc.admin", "--redis", self.server.url, "rooms", *args],
                env=dict(os.environ, PYTHONPATH=ROOT),
                capture_output=True,
                text=True,
                timeout=30,
            )

        listed = await admin("list")
        self.assertEqual(listed.stdout, "#Dev\t+nt\t@alice bob\t-\tShip it\n#ops\t+s\t-\t-\t\n")
        done = await admin("delete", "#dev", "--reason", "spam")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "#Dev deleted (spam)\n", ""))
        gone = ("room", RoomGone("#Dev", "spam"))
        await self.until(lambda: gone in hub_a.presence and gone in hub_b.presence)  # every node is told
        self.assertEqual([r.name for r in await self.state.rooms()], ["#ops"])
        self.assertEqual(await self.state.redis.execute("SMEMBERS", "msgsvc:memberships:bob"), [])
        missing = await admin("delete", "#dev", "--reason", "again")
        self.assertEqual((missing.returncode, missing.stderr), (1, "msgsvc.admin: there is no room #dev\n"))


class _Reads:
    """The inbox's connection, answered by the test."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[tuple[tuple[object, ...], Deferred[Any]]] = []

    def execute(self, *args: object) -> Deferred[Any]:
        answer: Deferred[Any] = Deferred()
        self.sent.append((args, answer))
        return answer

    def script(self, script: object, keys: list[str], args: list[object]) -> Deferred[Any]:
        return self.execute(script, *keys, *args)


class InboxTests(SynchronousTestCase):
    """How a node reads its inbox: in order, from the last entry delivered, deleting what it delivered."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.delivered: list[str] = []
        self.inbox = Inbox(self.clock, RedisURL("localhost"), "A", self.delivered.append)
        self.reads = _Reads()
        self.inbox._connection = self.reads  # type: ignore[assignment]
        self.inbox._running = True

    def xread(self, after: str) -> tuple[object, ...]:
        return ("XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", inbox_key("A"), after)

    def test_entries_are_delivered_in_order_then_deleted_while_it_reads_on(self) -> None:
        self.inbox._read()
        ((args, answer),) = self.reads.sent
        self.assertEqual(args, self.xread("0-0"))
        entries = [["1-0", ["s", "8", "m", "[1,2]"]], ["2-0", ["s", "4", "m", "[3]"]]]
        answer.callback([[inbox_key("A"), entries]])
        self.assertEqual(self.delivered, ["[1,2]", "[3]"])  # an entry's messages together
        taken, read = self.reads.sent[1:]
        self.assertEqual(taken[0], (TAKEN, inbox_key("A"), waiting_key("A"), "1-0", "8", "2-0", "4"))
        self.assertEqual(read[0], self.xread("2-0"))
        read[1].callback(None)  # nothing came within the block: read again
        self.assertEqual(self.reads.sent[-1][0], self.xread("2-0"))

    def test_after_a_lost_connection_it_reads_on_from_the_last_delivered_and_deletes_it_then(self) -> None:
        self.inbox._read()
        self.reads.sent[0][1].callback([[inbox_key("A"), [["1-0", ["s", "2", "m", "a"]]]]])
        taken, read = self.reads.sent[1:]
        taken[1].errback(RedisUnavailable("gone"))
        read[1].errback(RedisUnavailable("gone"))
        self.assertEqual(len(self.reads.sent), 3)  # nothing more until the connection is back
        self.inbox._read()  # it is back
        taken, read = self.reads.sent[3:]
        self.assertEqual(taken[0], (TAKEN, inbox_key("A"), waiting_key("A"), "1-0", "2"))
        self.assertEqual(read[0], self.xread("1-0"))
        self.assertEqual(self.delivered, ["a"])

    def test_a_read_redis_refuses_is_logged_once_and_tried_again_later(self) -> None:
        logged: list[str] = []
        self.inbox.log = Logger(observer=lambda event: logged.append(event["log_format"]))
        self.inbox._read()
        self.reads.sent[0][1].errback(Exception("NOPERM"))
        self.assertEqual(len(logged), 1)
        self.assertEqual(len(self.reads.sent), 1)
        self.clock.advance(RETRY)
        self.assertEqual(self.reads.sent[1][0], self.xread("0-0"))
        self.reads.sent[1][1].errback(Exception("NOPERM"))  # the same reason: not said again
        self.clock.advance(RETRY)
        self.assertEqual(len(logged), 1)
        self.assertEqual(len(self.reads.sent), 3)

    def test_an_entry_without_its_fields_is_logged_and_reading_goes_on(self) -> None:
        self.inbox.log = Logger(observer=lambda event: None)
        self.inbox._read()
        self.reads.sent[0][1].callback([[inbox_key("A"), [["1-0", ["x", "y"]], ["2-0", ["s", "2", "m", "[1]"]]]]])
        self.assertEqual(self.delivered, ["[]", "[1]"])  # the first: nothing a node could deliver
        self.assertEqual(self.reads.sent[-1][0], self.xread("2-0"))
