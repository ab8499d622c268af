"""The state in Redis, against a real redis-server (Debian's package; the tests fail without it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.auth.store import Reset, StillOnline
from msgsvc.hub.contracts import (
    Ban,
    Enqueue,
    Joining,
    Kind,
    Member,
    Queued,
    Refusal,
    RoomRecord,
    Stored,
    UserRecord,
)
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.ids import MessageIds
from msgsvc.hub.rules import username_key
from msgsvc.state import cluster, inbox, redis
from msgsvc.state.redis import (
    id_time_score,
    pairs,
    ACCOUNTS,
    ACCOUNTS_CHANGED,
    APPEND,
    CLOCK_MARGIN,
    HISTORIES,
    HISTORY_SIZE,
    LAYOUT,
    NAMED,
    ONLINE,
    PURGED,
    QUEUE_COUNT,
    QUEUE_ID,
    QUEUE_SENDERS,
    SENT,
    VERDICTS_MAX,
    RedisState,
    bans_key,
    conversations_key,
    history_entry,
    history_key,
    queue_entry,
    sessions_key,
    verdicts_key,
)
from msgsvc.state.redislink import REPLY_TIMEOUT, RedisUnavailable
from msgsvc.state.redisurl import RedisURL
from msgsvc.state.sqlite import Database

from .support.fakes import to_keep
from .support.processes import ROOT
from .support.queue import NO_ID, ROOM
from .support.redisserver import RedisStateCase


class RedisURLTests(SynchronousTestCase):
    def test_a_url_gives_host_port_database_tls_and_password(self) -> None:
        self.assertEqual(
            RedisURL.parse("rediss://:s%40cret@redis.example:6380/2"),
            RedisURL("redis.example", 6380, 2, tls=True, password="s@cret"),
        )
        self.assertEqual(RedisURL.parse("redis://localhost"), RedisURL("localhost"))
        self.assertEqual(RedisURL.parse("redis://u:p@[::1]:7000/3").username, "u")

    def test_the_url_in_the_log_hides_the_password(self) -> None:
        self.assertEqual(str(RedisURL.parse("redis://:secret@db:6379/1")), "redis://:***@db:6379/1")
        self.assertEqual(str(RedisURL.parse("rediss://db")), "rediss://db:6379/0")

    def test_a_bad_url_says_what_is_wrong(self) -> None:
        for url, problem in [
            ("http://db", "is not a redis:// or rediss:// URL"),
            ("redis://", "names no host"),
            ("redis://db/zero", "the database is a number"),
            ("redis://db:port", "Port could not be cast"),
            ("redis://db?ssl_ca_certs=/ca.pem", "ssl_ca_certs is for rediss:// (TLS) only"),
            ("rediss://db?ca=/ca.pem", "unknown parameter 'ca'"),
            ("rediss://db?ssl_ca_certs=", "ssl_ca_certs takes one path"),
            ("rediss://db?ssl_keyfile=/k.pem", "ssl_keyfile without ssl_certfile"),
        ]:
            with self.assertRaises(ValueError) as caught:
                RedisURL.parse(url)
            self.assertIn(problem, str(caught.exception))

    def test_tls_files_come_from_the_url_and_go_back_into_it(self) -> None:
        url = RedisURL.parse("rediss://db/1?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem")
        self.assertEqual((url.ca, url.certificate, url.key), ("/etc/ca.pem", "/c.pem", "/k.pem"))
        self.assertEqual(RedisURL.parse(str(url)), url)
        self.assertIsNone(RedisURL.parse("redis://db").tls_options())

    def test_a_tls_file_that_cannot_be_read_or_used_is_named(self) -> None:
        missing = RedisURL.parse("rediss://db?ssl_ca_certs=/no/such/ca.pem")
        with self.assertRaises(ValueError) as caught:
            missing.tls_options()
        self.assertIn(
            "cannot read ssl_ca_certs /no/such/ca.pem: No such file or directory", str(caught.exception)
        )
        garbage = self.mktemp()
        with open(garbage, "w") as f:
            f.write("not a certificate")
        with self.assertRaises(ValueError) as caught:
            RedisURL.parse(f"rediss://db?ssl_ca_certs={garbage}").tls_options()
        self.assertIn("is not a PEM certificate or key", str(caught.exception))


def wait(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class ParserTests(SynchronousTestCase):
    def test_replies_are_parsed_by_hiredis(self) -> None:
        """txredisapi's own parser takes a reactor pass for each reply after a bulk string (setup.py)."""
        import txredisapi

        from msgsvc.state.redislink import _Protocol

        self.assertTrue(issubclass(_Protocol, txredisapi.HiredisProtocol))


class _Connection:
    """What :class:`msgsvc.state.redislink._Overdue` reads of a connection: its clock and its reads."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.reads = 0


class ReplyTimeoutTests(SynchronousTestCase):
    """txredisapi's reply timeout on :class:`msgsvc.state.redislink._Overdue`."""

    def setUp(self) -> None:
        from msgsvc.state.redislink import _Overdue

        self.connection = _Connection()
        self.clock = self.connection.clock
        self.fired: list[str] = []
        self.call = _Overdue(self.connection, REPLY_TIMEOUT, self.fired.append, "timed out")  # type: ignore[arg-type]

    def test_a_silent_redis_times_out_when_due(self) -> None:
        self.clock.advance(REPLY_TIMEOUT - 0.01)
        self.assertEqual((self.fired, self.call.active()), ([], True))
        self.clock.advance(0.01)
        self.assertEqual((self.fired, self.call.active()), (["timed out"], False))

    def test_a_reactor_come_late_waits_once_more_then_times_out(self) -> None:
        self.clock.advance(REPLY_TIMEOUT + 3)  # one pass held the reactor past the timeout
        self.assertEqual((self.fired, self.call.active()), ([], True))
        self.clock.advance(REPLY_TIMEOUT + 3)  # late again: a silent Redis is still found out
        self.assertEqual((self.fired, self.call.active()), (["timed out"], False))

    def test_a_connection_read_meanwhile_waits_as_long_again(self) -> None:
        """lease38 / attack38: a command behind a reply the node takes longer than the timeout to read (the
        username log of 300,388 names: 7 s) failed with the connection, the lease's renewal among them."""
        for _ in range(3):
            self.clock.advance(REPLY_TIMEOUT / 2)
            self.connection.reads += 1  # a long reply ahead of the command's, read bit by bit
        self.clock.advance(REPLY_TIMEOUT / 2)
        self.assertEqual((self.fired, self.call.active()), ([], True))
        self.clock.advance(REPLY_TIMEOUT)  # then silence
        self.assertEqual(self.fired, ["timed out"])

    def test_an_answer_cancels_it(self) -> None:
        self.clock.advance(REPLY_TIMEOUT + 3)
        self.call.cancel()
        self.clock.advance(REPLY_TIMEOUT)
        self.assertEqual((self.fired, self.call.active()), ([], False))


class ProtocolClockTests(TestCase):
    def test_a_call_for_now_runs_in_the_next_pass_as_the_reactors_own(self) -> Deferred[None]:
        """review38: txredisapi's ``callLater(0, ...)`` (its line receiver's) went through the reply timeout's
        patience and ran a pass later than the reactor's own."""
        from msgsvc.state.redislink import _Protocol

        protocol = _Protocol(charset="utf-8")
        protocol.clock = reactor
        order: list[str] = []
        done: Deferred[None] = Deferred()

        def next_pass() -> None:
            order.append("next pass")
            done.callback(None)

        reactor.callLater(0, reactor.callLater, 0, next_pass)
        protocol.callLater(0, order.append, "txredisapi's")
        return done.addCallback(lambda _: self.assertEqual(order, ["txredisapi's", "next pass"]))


class RedisStateTests(RedisStateCase):
    @inlineCallbacks
    def test_while_redis_is_down_each_call_fails_at_once_and_it_reconnects_by_itself(self) -> object:
        yield self.state.record_seen("alice", 1.0)
        self.server.stop()
        yield wait(0.1)
        failure = self.failureResultOf(self.state.record_seen("bob", 2.0), RedisUnavailable)
        self.assertIn(f"Redis at redis://127.0.0.1:{self.server.port}/0 is unreachable", str(failure.value))
        self.server.start()  # the same directory: its append-only file
        yield self.state.redis.ready()
        yield self.state.record_seen("carol", 3.0)
        records = yield self.state.load()
        self.assertEqual([r.name for r in records], ["alice", "carol"])

    @inlineCallbacks
    def test_a_connection_made_while_redis_loads_its_file_is_made_again_once_it_has(self) -> object:
        """attack37 F11: a connection made while Redis loads its append-only file after a restart has its
        PING answered ``-LOADING``; that answer was passed over, the connection left open and never
        usable, and never made again: the node had no Redis until restarted.  Real sockets, two nodes,
        Redis stopped 5 s mid-flood and started (1 s of loading): one node's commands connection never
        came back, its lease ended, its users were disconnected, every history write failed from then."""
        names = [f"k{i}" for i in range(30000)]
        yield self.state.redis.execute("MSET", *[part for name in names for part in (name, "x")])
        yield self.state.redis.execute("BGREWRITEAOF")  # the keys in the file's base: loaded key by key
        while "aof_rewrite_in_progress:0" not in (yield self.state.redis.execute("INFO", "persistence")):
            yield wait(0.1)
        yield wait(0.5)
        self.server.stop()
        while self.state.redis.connected:
            yield wait(0.05)
        server = self.server
        argv = [server.binary, "--port", str(server.port), "--bind", "127.0.0.1", "--dir", server.directory]
        argv += ["--save", "", "--appendonly", "yes", "--key-load-delay", "300"]  # ~9 s of loading, during
        argv += ["--loading-process-events-interval-bytes", "1024"]  # which it answers -LOADING
        loading = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        self.addCleanup(loading.wait)
        self.addCleanup(loading.kill)
        yield wait(1.0)
        while not server._ping().startswith(b"+PONG"):  # loaded
            yield wait(0.2)
        yield self.state.redis.ready(timeout=10)  # made again once loaded, whatever it was told meanwhile
        self.assertEqual((yield self.state.redis.execute("GET", "k1")), "x")

    test_a_connection_made_while_redis_loads_its_file_is_made_again_once_it_has.timeout = 60  # type: ignore[attr-defined]

    @inlineCallbacks
    def test_an_answer_that_came_while_the_reactor_was_busy_is_read_not_timed_out(self) -> object:
        """lease38: a node's reactor held by one pass for longer than the reply timeout (the bench's login
        ramp on a loaded core) failed, in the first pass after, every command still waiting, though Redis
        had answered them, and dropped the connection: the logins under way were refused, and the lease's
        renewal sent in that pass failed with them."""
        answered = self.state.redis.execute("PING")
        time.sleep(REPLY_TIMEOUT + 0.5)  # this pass holds the reactor; Redis answers meanwhile
        self.assertEqual((yield answered), "PONG")
        self.assertTrue(self.state.redis.connected)
        self.assertEqual(self.state.redis.connections, 1)

    def test_a_reactor_pass_hands_the_kernel_all_its_commands_not_128_KiB_of_them(self) -> None:
        """Twisted's TCP transport sends at most 128 KiB a reactor pass; a node's busy pass writes more
        (its history: about 200 bytes a message, thousands a pass), so the rest waited for later passes,
        fell further behind each pass and held its entries in memory (5 MiB and 45,000 entries after
        five seconds of unicast with accounts, in the bench)."""
        transport = self.state.redis._protocol.transport
        self.assertGreaterEqual(transport.SEND_LIMIT, 64 * 1024 * 1024)

    @inlineCallbacks
    def test_the_migration_copies_an_sqlite_state_and_refuses_to_copy_twice(self) -> object:
        path = self.mktemp()
        db = Database(path)
        db.record_seen([("Alice", 10.25), ("bob", 11.5)])
        db.record_seen([("ALICE", 12.75)])
        db.set_password_hash("alice", "$argon2id$alice", 13.0)
        db.set_password_hash("bob", "$argon2id$bob", 14.0)
        db.reset("bob", "forgot it", 15.0)
        message = Enqueue(
            ("alice",),
            "bob",
            "multicast",
            ("Alice", "carol"),
            "while you were away",
            16.5,
            10,
            0.0,
            *ROOM,
            NO_ID,
        )
        said = [entry("alice,bob", "Alice", 16.0), entry(ALL, "bob", 16.25), entry("alice,bob", "bob", 16.5)]
        db.batch([lambda d: d.enqueue(message), lambda d: d.append(to_keep(said), 100)])
        db.batch([lambda d: d.set_read("Alice", "alice,bob", said[0].id)])
        db.batch([lambda d: d.set_read("alice", ALL, said[1].id)])
        dev = RoomRecord("#Dev", 17.0, "Alice", "Ship it", "Alice", 17.5, "iknt", "sesame", 20)
        dev.members = {"alice": Member("Alice", op=True, since=17.0)}
        dev.members["bob"] = Member("bob", voice=True, since=18.0)
        dev.bans = {"mallory!*@*": Ban("mallory!*@*", "Alice", 19.0)}
        db.batch([lambda d: d.create_room(dev, 50)])
        db.batch([lambda d: d.purge_history("Mallory", 16.75)])
        db.close()

        def migrate() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "msgsvc.state.migrate", "--db", path, "--redis", self.server.url],
                capture_output=True,
                text=True,
                timeout=30,
                env=dict(os.environ, PYTHONPATH=ROOT),
            )

        done = migrate()
        url = self.server.url
        self.assertEqual(
            (done.returncode, done.stdout),
            (
                0,
                f"copied 2 names, 1 passwords, 1 waiting messages, 3 history entries, 2 read positions and"
                f" 1 rooms to {url}\n",
            ),
        )
        records = yield self.state.load()
        self.assertEqual(records, [UserRecord("Alice", 10.25, 12.75, True), UserRecord("bob", 11.5, 11.5)])
        self.assertEqual((yield self.state.password_hash("alice")), "$argon2id$alice")
        self.assertEqual((yield self.state.protected_since("alice")), 13.0)
        self.assertIsNone((yield self.state.protected_since("bob")))
        direct = yield self.state.page_before("alice,bob", None, 10, 0.0)
        self.assertEqual(direct, ([said[0], said[2]], False))
        self.assertEqual((yield self.state.page_after(ALL, "", 10, 0.0)), ([said[1]], False))
        self.assertEqual((yield self.state.latest("alice", 0.0, 10)), [said[2]])
        self.assertEqual((yield self.state.history_size()), 3)
        self.assertEqual((yield self.state.unread("alice,bob", "", "alice", 100)), 1)  # placed by sender
        self.assertEqual((yield self.state.unread(ALL, "", "bob", 100)), 0)
        positions = yield self.state.read_positions("ALICE", ["alice,bob", ALL])
        self.assertEqual(positions, {"alice,bob": said[0].id, ALL: said[1].id})
        self.assertEqual((yield self.state.resets_after(0)), [Reset(1, "bob", 15.0, "forgot it")])
        self.assertEqual((yield self.state.rooms()), [dev])
        yield self.state.remove("bob", "gone", 20.0)  # its membership copied where a removal finds it
        del dev.members["bob"]
        self.assertEqual((yield self.state.rooms()), [dev])
        self.assertEqual(
            (yield self.state.backlog("alice", 0, 0.0, 10)),
            ([Queued(1, "bob", "multicast", ("Alice", "carol"), "while you were away", 16.5)], 0),
        )
        queued = yield self.state.enqueue(
            Enqueue(("alice",), "bob", "unicast", ("Alice",), "next", 17.0, 10, 0.0, *ROOM, NO_ID)
        )
        self.assertEqual(queued, ("alice",))
        over = Enqueue(("alice",), "bob", "unicast", ("Alice",), "over", 18.0, 10, 0.0, 2, 100, NO_ID)
        self.assertEqual((yield self.state.enqueue(over)), ())  # the copied message counts for bob
        page, _ = yield self.state.backlog("alice", 1, 0.0, 10)
        self.assertEqual([q.id for q in page], [2])  # ids go on after the copied ones
        late = [entry("bob,mallory", "mallory", 16.5), entry("bob,mallory", "bob", 16.5)]
        yield self.state.append(to_keep(late), 100)
        self.assertEqual((yield self.state.history_size()), 4)  # the purge of mallory copied: bob's only
        again = migrate()
        self.assertEqual(again.returncode, 1)
        self.assertIn("this Redis database already holds a msgsvc username log", again.stderr)


def offline(recipients: tuple[str, ...], sender: str, text: str, quota: int) -> Enqueue:
    """A message queued for ``recipients`` while ``sender`` has fewer than ``quota`` waiting."""
    return Enqueue(recipients, sender, "unicast", ("x",), text, 20.0, 10, 0.0, quota, 100, NO_ID)


OLD_COUNTERS = ("msgsvc:queue:id", "msgsvc:queue:count", "msgsvc:queue:senders")
LOG = ("name", "first", "last")


class RedisKeysTests(RedisStateCase):
    """No name's keys are the state's own: a user may be called what a counter is called."""

    async def counters(self) -> list[object]:
        redis = self.state.redis
        asked = [("GET", QUEUE_ID), ("GET", QUEUE_COUNT), ("HGETALL", QUEUE_SENDERS)]
        return [await redis.execute(*command) for command in asked]

    async def test_users_named_as_the_queues_counters_have_queues_of_their_own(self) -> None:
        for name in ("count", "ID", "Senders"):
            await self.state.set_password_hash(name, f"$argon2id${name}", 10.0)
        sent = offline(("alice", "count", "id", "senders"), "bob", "hi", 3)
        self.assertEqual(await self.state.enqueue(sent), ("alice", "count", "id"))  # bob's quota: 3
        for name in ("count", "ID"):
            page, _ = await self.state.backlog(name, 0, 0.0, 10)
            self.assertEqual([q.text for q in page], ["hi"])
        self.assertEqual(await self.state.acknowledge("count", 10), 0)  # one of bob's three is gone
        self.assertIsNotNone(await self.state.reset("ID", "forgot it", 30.0))  # and another
        await self.state.record_seen("Senders", 31.0)
        self.assertIsNotNone(await self.state.remove("Senders", "gone", 32.0))
        again = offline(("alice", "senders", "id"), "bob", "again", 3)
        self.assertEqual(await self.state.enqueue(again), ("alice", "senders"))
        page, _ = await self.state.backlog("alice", 0, 0.0, 10)
        self.assertEqual([(q.id, q.text) for q in page], [(1, "hi"), (4, "again")])  # ids go on
        self.assertEqual(await self.state.expire(0.0), {"alice": 2, "senders": 1})
        self.assertEqual(await self.counters(), ["5", "3", ["bob", "3"]])

    async def test_a_name_with_a_session_on_a_node_alive_is_not_removed(self) -> None:
        await self.state.record_seen("alice", 1.0)
        redis = self.state.redis
        holder = {"peer": "p", "front": "tcp", "since": 1.0}
        await redis.execute("SET", cluster.node_key("B"), "{}")  # B alive; A's lease is gone
        await redis.execute("HSET", ONLINE, "alice", json.dumps({"node": "A", **holder}))  # not swept yet
        await redis.execute("HSET", sessions_key("alice"), "A/1", json.dumps({"node": "A", **holder}))
        await redis.execute("HSET", sessions_key("alice"), "B/4", json.dumps({"node": "B", **holder}))
        with self.assertRaises(StillOnline):
            await self.state.remove("alice", "gone", 2.0)
        await redis.execute("HDEL", sessions_key("alice"), "B/4")  # its last session, on A, is dead
        self.assertIsNotNone(await self.state.remove("alice", "gone", 3.0))

    def test_no_key_of_the_state_is_where_a_name_or_a_conversation_puts_its_own(self) -> None:
        fixed = {
            value
            for module in (redis, cluster, inbox)
            for name, value in vars(module).items()
            if name.isupper() and isinstance(value, str) and value.startswith(redis.PREFIX)
        }
        self.assertIn(QUEUE_COUNT, fixed)
        named = [*NAMED, cluster.node_key("")]  # a node's name has no ":", so its keys are its own
        self.assertEqual([(key, prefix) for key in fixed for prefix in named if key.startswith(prefix)], [])

    async def test_an_older_msgsvcs_counters_are_moved_once_by_whichever_node_starts_first(self) -> None:
        waiting = [f"{n}|{queue_entry('Alice', 'unicast', ('bob',), 'hi', 16.5, '')}" for n in (5, 7)]
        for command in [
            ("SET", OLD_COUNTERS[0], "7"),
            ("SET", OLD_COUNTERS[1], "2"),
            ("HSET", OLD_COUNTERS[2], "alice", "2"),
            ("SADD", "msgsvc:queues", "bob"),
            ("ZADD", "msgsvc:queue:bob", 5, waiting[0], 7, waiting[1]),
            *(("HSET", f"msgsvc:log:{field}", "bob", value) for field, value in zip(LOG, "b12")),
        ]:
            await self.state.redis.execute(*command)
        said: list[LogEvent] = []
        globalLogPublisher.addObserver(said.append)
        self.addCleanup(globalLogPublisher.removeObserver, said.append)

        def moved() -> list[str]:
            return [e["old"] for e in said if "moved the offline queue's counters" in e.get("log_format", "")]

        nodes = [self.started() for _ in range(3)]
        await gatherResults([n.redis.ready() for n in nodes])
        snapshots = await gatherResults([n.read_log() for n in nodes])
        self.assertEqual([[r.name for r in s.records] for s in snapshots], [["b"]] * 3)
        self.assertEqual(moved(), [", ".join(OLD_COUNTERS)])
        self.assertEqual(await self.state.redis.execute("EXISTS", *OLD_COUNTERS), 0)
        self.assertEqual(await self.counters(), ["7", "2", ["alice", "2"]])
        page, _ = await self.state.backlog("bob", 0, 0.0, 10)
        self.assertEqual([(q.id, q.sender) for q in page], [(5, "Alice"), (7, "Alice")])
        sent = offline(("bob", "id", "count", "senders"), "alice", "hi", 5)
        self.assertEqual(await self.state.enqueue(sent), ("bob", "id", "count"))  # alice had 2 waiting
        page, _ = await self.state.backlog("count", 0, 0.0, 10)
        self.assertEqual([q.id for q in page], [10])  # ids go on after the old counter's
        await nodes[0].upgrade()  # again: nothing to move
        self.assertEqual(len(moved()), 1)
        self.assertEqual(await self.counters(), ["10", "5", ["alice", "5"]])


def entry(conversation: str, sender: str, at: float) -> Stored:
    """An entry with an id made at ``at`` (by a node of its own)."""
    clock = Clock()
    clock.advance(at)
    id, at = MessageIds(clock).make()
    if conversation == ALL:
        return Stored(id, at, ALL, sender, Kind.BROADCAST, (), "hi")
    others = tuple(p for p in participants(conversation) if p != username_key(sender)) or (sender,)
    return Stored(id, at, conversation, sender, Kind.UNICAST if len(others) == 1 else Kind.MULTICAST, others, "hi")


class RedisVerdictsTests(RedisStateCase):
    async def test_a_rooms_ban_verdicts_are_kept_for_so_many_identities_then_start_again(self) -> None:
        """ENTER keeps its verdict of the bans by the joiner's masks (attack36 F5), VERDICTS_MAX at most:
        one more drops them all first.  A room without bans keeps none."""
        await self.state.create_room(RoomRecord("#open", 10.0, None), 50)
        bans = {"*!*@192.0.2.*": Ban("*!*@192.0.2.*", "op", 10.0)}
        await self.state.create_room(RoomRecord("#r", 10.0, None, bans=bans), 50)

        def joined(room: str, n: int) -> Deferred[Refusal | Member]:
            return self.state.enter(room, Joining(f"eve{n}", 11.0, masks=(f"eve{n}!e@192.0.2.7",)), 10, 50)

        self.assertIsInstance(await joined("#open", 0), Member)
        refused = await gatherResults([joined("#r", n) for n in range(VERDICTS_MAX)])
        self.assertEqual(set(refused), {Refusal.BANNED})
        redis = self.state.redis
        self.assertEqual(await redis.execute("HLEN", verdicts_key("#r")), VERDICTS_MAX)
        self.assertIs(await joined("#r", VERDICTS_MAX), Refusal.BANNED)
        last = json.dumps([f"eve{VERDICTS_MAX}!e@192.0.2.7"])
        self.assertEqual(await redis.execute("HKEYS", verdicts_key("#r")), [last])
        self.assertEqual(await redis.execute("EXISTS", verdicts_key("#open")), 0)


def newest(*entries: Stored) -> dict[str, float]:
    """What a name's index holds of these entries, each its conversation's newest."""
    return {e.conversation: id_time_score(e.id) for e in entries}


class RedisHistoryTests(RedisStateCase):
    """What the history keeps in Redis beside the entries, and what an older msgsvc left there."""

    async def index(self, name: str) -> dict[str, float]:
        """A name's index: each of its conversations, and its newest entry's time as a score."""
        flat = await self.state.redis.execute("ZRANGE", conversations_key(name), 0, -1, "WITHSCORES")
        return {conversation: float(ms) for conversation, ms in pairs(flat).items()}

    async def keys(self) -> dict[str, object]:
        """The history's indexes: each conversation's newest id, and each name's conversations."""
        redis = self.state.redis
        names = {"alice": "", "bob": "", "carol": ""}
        return {
            "histories": sorted(await redis.execute("HGETALL", HISTORIES)),
            **{name: await self.index(name) for name in names},
        }

    async def test_the_indexes_follow_appends_expiry_and_purges_and_forget_an_empty_conversation(
        self,
    ) -> None:
        ab1, ac1, ac2, ab2, all1 = (
            entry("alice,bob", "alice", 100.0),
            entry("alice,carol", "alice", 150.0),
            entry("alice,carol", "carol", 200.0),
            entry("alice,bob", "bob", 300.0),
            entry(ALL, "bob", 400.0),
        )
        # Appended out of order (two nodes' clocks), in a pass and across passes: the newest id stays.
        await self.state.append(to_keep([ab2, ab1, ac2]), 100)
        await self.state.append(to_keep([ac1, all1, ab1]), 100)
        self.assertEqual(
            await self.keys(),
            {
                "histories": sorted([ALL, all1.id, "alice,bob", ab2.id, "alice,carol", ac2.id]),
                "alice": newest(ac2, ab2),
                "bob": newest(ab2),
                "carol": newest(ac2),
            },
        )
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([ab1, ab2], False))
        self.assertEqual(await self.state.history_size(), 5)
        purged = await self.state.purge_history("bob", 500.0)
        self.assertEqual(purged, 2)  # ab2 and all1: alice,bob's newest is ab1
        histories = (await self.keys())["histories"]
        self.assertEqual(histories, sorted(["alice,bob", ab1.id, "alice,carol", ac2.id]))
        self.assertEqual(await self.index("alice"), newest(ab1, ac2))
        self.assertEqual(await self.state.latest("bob", 0.0, 10), [ab1])
        self.assertEqual(await self.state.expire_history(150.0, 100), 1)  # ab1: alice,bob is empty
        self.assertEqual(
            await self.keys(),
            {
                "histories": sorted(["alice,carol", ac2.id]),
                "alice": newest(ac2),
                "bob": {},
                "carol": newest(ac2),
            },
        )
        gone = await self.state.redis.execute("EXISTS", history_key("alice,bob"), history_key(ALL))
        self.assertEqual(gone, 0)
        self.assertEqual(await self.state.history_size(), 2)

    async def calls_of(self, call: Callable[[], Deferred[Any]]) -> Counter[str]:
        """The commands Redis ran (its own count, INFO commandstats) for ``call()``, by name."""

        async def ran() -> Counter[str]:
            stats = await self.state.redis.execute("INFO", "commandstats")
            calls = re.findall(r"^cmdstat_([a-z|]+):calls=(\d+)", stats, re.MULTILINE)
            return Counter({c: int(n) for c, n in calls if c not in {"info", "evalsha", "eval", "ping"}})

        before = await ran()
        await call()
        return await ran() - before

    async def commands_of(self, call: Callable[[], Deferred[Any]]) -> int:
        """How many commands Redis ran for ``call()``."""
        return (await self.calls_of(call)).total()

    async def test_a_listing_of_conversations_reads_those_it_lists_however_many_there_are(self) -> None:
        many = [entry(f"alice,u{i:04}", "alice", 100.0 + i) for i in range(2000)]
        few = [entry(f"bob,u{i:04}", "bob", 100.0 + i) for i in range(20)]
        await self.state.append(to_keep([*many, *few]), 100)
        self.assertEqual(await self.state.latest("alice", 0.0, 3), many[:-4:-1])
        self.assertEqual(await self.state.latest("bob", 0.0, 3), few[:-4:-1])
        # Two reads of the index (the newest 10, those of the 10th's millisecond), and the newest entry
        # of each listed: 2000 conversations cost as 20.
        self.assertEqual(await self.commands_of(lambda: self.state.latest("alice", 0.0, 10)), 2 + 10)
        self.assertEqual(await self.commands_of(lambda: self.state.latest("bob", 0.0, 10)), 2 + 10)

    async def test_the_places_by_sender_go_with_their_entries_trimmed_expired_or_purged(self) -> None:
        async def places() -> int:
            self.assertEqual(await self.state.redis.execute("ZCARD", SENT), await self.state.history_size())
            return await self.state.unread("alice,bob", "", "alice", 100)

        said = [entry("alice,bob", "bob" if i % 2 else "Alice", 100.0 + i) for i in range(20)]
        await self.state.append(to_keep(said), 10)  # trimmed at once to the newest 10: 5 of bob's
        self.assertEqual(await places(), 5)
        await self.state.append(to_keep([entry("alice,bob", "bob", 200.0 + i) for i in range(5)]), 100)
        self.assertEqual(await places(), 10)
        self.assertEqual(await self.state.expire_history(115.0, 8), 7)  # 110-114, then 115-116 past 8
        self.assertEqual(await places(), 7)
        self.assertEqual(await self.state.purge_history("BOB", 300.0), 7)
        self.assertEqual(await places(), 0)
        self.assertEqual(await self.state.history_size(), 1)

    async def test_a_pass_costs_a_command_a_conversation_and_a_name_not_seven_an_entry(self) -> None:
        first = [entry(f"alice,u{i:04}", "alice", 100.0 + i) for i in range(500)]
        # 500 new conversations: a ZADD each, alice's index and each u's (a ZADD each), the newest ids
        # (an HMGET and an HSET), the entries' places by sender (a ZADD), the size (an INCRBY), Redis's
        # clock (a TIME) and whether anyone was ever purged (an EXISTS).
        self.assertEqual(await self.commands_of(lambda: self.state.append(to_keep(first), 100)), 500 + 501 + 2 + 4)
        again = [entry(f"alice,u{i:04}", f"u{i:04}", 1000.0 + i) for i in range(500)]
        # They had entries: a ZCARD each too, for --history-max.
        self.assertEqual(await self.commands_of(lambda: self.state.append(to_keep(again), 100)), 1000 + 501 + 2 + 4)
        self.assertEqual(await self.state.history_size(), 1000)
        self.assertEqual(await self.state.latest("alice", 0.0, 2), again[:-3:-1])

    async def test_a_pass_reads_when_its_senders_were_purged_only_once_someone_was(self) -> None:
        """The HMGET of ``msgsvc:purged`` (a field a sender) is left out while the hash does not exist."""
        said = [entry(f"alice,u{i:04}", f"u{i:04}", 100.0 + i) for i in range(100)]
        self.assertEqual((await self.calls_of(lambda: self.state.append(to_keep(said[:50]), 100)))["hmget"], 1)
        await self.state.purge_history("carol", 50.0)
        self.assertEqual((await self.calls_of(lambda: self.state.append(to_keep(said[50:]), 100)))["hmget"], 2)
        self.assertEqual(await self.state.history_size(), 100)

    async def test_a_pass_of_thousands_in_a_conversation_and_of_thousands_of_conversations_is_kept(
        self,
    ) -> None:
        broadcasts = [entry(ALL, "bob", 100.0 + i / 1000) for i in range(5000)]
        conversations = [entry(f"alice,u{i:04}", "alice", 200.0 + i / 1000) for i in range(5000)]
        await self.state.append(to_keep([*broadcasts, *conversations]), 4500)  # Lua's unpack takes under 8,000
        self.assertEqual(await self.state.history_size(), 4500 + 5000)
        self.assertEqual(await self.state.page_before(ALL, None, 1, 0.0), ([broadcasts[-1]], True))
        self.assertEqual(await self.state.redis.execute("ZCARD", conversations_key("alice")), 5000)
        self.assertEqual(await self.state.redis.execute("HLEN", HISTORIES), 5001)
        self.assertEqual(await self.state.latest("alice", 0.0, 1), conversations[-1:])

    async def test_a_listing_cut_within_a_millisecond_lists_the_newest_ids(self) -> None:
        clock = Clock()
        clock.advance(100.0)
        ids = MessageIds(clock)  # one node's ids of one millisecond grow in the order made
        made = [
            Stored(ids.make()[0], 100.0, f"alice,u{i}", "alice", Kind.UNICAST, (f"u{i}",), "hi") for i in range(9, 0, -1)
        ]  # alice,u9 first: the oldest id, yet the last conversation of the millisecond by name
        await self.state.append(to_keep(made), 100)
        self.assertEqual(await self.state.latest("alice", 0.0, 3), made[:-4:-1])

    async def test_an_unread_count_costs_the_same_however_long_the_conversation_and_the_readers_own(self) -> None:
        """attack36 F1 on Redis: UNREAD read the entries after the position in pages of the cap, the
        reader's own a page a cap of them, in one script holding Redis (101 pages for 10,000 of its own).
        Counted in Redis's commands (INFO commandstats), not timed."""
        said = [entry("alice,bob", "bob", 100.0 + i) for i in range(2000)]
        own = [entry("alice,bob", "alice", 3000.0 + i) for i in range(10_000)]
        few = [entry("alice,carol", "alice", 3000.0 + i) for i in range(10)]
        await self.state.append(to_keep([*said, *own, *few, entry("alice,bob", "bob", 20_000.0)]), 20_000)
        await self.state.append(to_keep([entry("alice,carol", "carol", 20_000.0)]), 20_000)
        unread = self.state.unread
        many = await self.commands_of(lambda: unread("alice,bob", said[-1].id, "alice", 100))
        self.assertEqual(await unread("alice,bob", said[-1].id, "alice", 100), 1)
        self.assertEqual(await unread("alice,carol", "", "alice", 100), 1)
        self.assertEqual(many, await self.commands_of(lambda: unread("alice,carol", "", "alice", 100)))
        self.assertEqual(many, await self.commands_of(lambda: unread("alice,bob", "", "alice", 100)))

    async def three_nodes_start(self) -> tuple[list[RedisState], list[LogEvent]]:
        """Three nodes started at once on this Redis, each having read the log; what they logged."""
        said: list[LogEvent] = []
        globalLogPublisher.addObserver(said.append)
        self.addCleanup(globalLogPublisher.removeObserver, said.append)
        nodes = [self.started() for _ in range(3)]
        await gatherResults([n.redis.ready() for n in nodes])
        await gatherResults([n.read_log() for n in nodes])
        return nodes, said

    async def test_an_older_msgsvcs_sets_of_conversations_are_indexed_once_by_whichever_node_starts_first(
        self,
    ) -> None:
        ab, ac = entry("alice,bob", "bob", 100.0), entry("alice,carol", "carol", 200.0)
        all1 = entry(ALL, "x", 1)
        for e in (ab, ac, all1):
            await self.state.redis.execute("ZADD", history_key(e.conversation), 0, history_entry(e))
            await self.state.redis.execute("HSET", HISTORIES, e.conversation, e.id)
        await self.state.redis.execute("DEL", LAYOUT)  # as an older msgsvc left it: sets, no layout
        await self.state.redis.execute("SADD", conversations_key("alice"), "alice,bob", "alice,carol")
        await self.state.redis.execute("SADD", conversations_key("bob"), "alice,bob")
        await self.state.redis.execute("SADD", conversations_key("carol"), "alice,carol")
        nodes, said = await self.three_nodes_start()
        indexed = [e["conversations"] for e in said if "by their newest ids" in e.get("log_format", "")]
        self.assertEqual(indexed, [2])
        self.assertEqual(await self.index("alice"), newest(ab, ac))
        self.assertEqual(await nodes[1].latest("alice", 0.0, 10), [ac, ab])
        self.assertEqual(await nodes[2].latest("bob", 0.0, 10), [ab])
        later = entry("alice,bob", "alice", 300.0)
        await nodes[0].append(to_keep([later]), 100)
        self.assertEqual(await self.state.latest("alice", 0.0, 10), [later, ac])

    async def test_an_older_msgsvcs_bans_of_names_become_masks_once_by_whichever_node_starts_first(
        self,
    ) -> None:
        await self.state.create_room(RoomRecord("#dev", 10.0, "alice"), 50)
        old = {"mallory": json.dumps(["Mallory", "alice", 19.25])}
        old["eve!*@*"] = json.dumps(["eve!*@*", "bob", 20.5])
        for key, entry_ in old.items():  # an older msgsvc's by name, and one by mask already
            await self.state.redis.execute("HSET", bans_key("#dev"), key, entry_)
        await self.state.redis.execute("SET", LAYOUT, 2)
        nodes, said = await self.three_nodes_start()
        self.assertEqual([e["bans"] for e in said if "kept as masks" in e.get("log_format", "")], [1])
        (dev,) = await nodes[1].rooms()
        self.assertEqual(
            dev.bans, {"mallory!*@*": Ban("Mallory!*@*", "alice", 19.25), "eve!*@*": Ban("eve!*@*", "bob", 20.5)}
        )
        self.assertEqual(await self.state.redis.execute("GET", LAYOUT), "4")

    async def test_an_older_msgsvcs_entries_are_placed_by_sender_once_by_whichever_node_starts_first(
        self,
    ) -> None:
        said = [entry("alice,bob", "Alice", 100.0), entry("alice,bob", "bob", 101.0), entry(ALL, "alice", 102.0)]
        for e in said:  # as a msgsvc of keys layout 3 kept them: no places
            await self.state.redis.execute("ZADD", history_key(e.conversation), 0, history_entry(e))
            await self.state.redis.execute("HSET", HISTORIES, e.conversation, e.id)
        await self.state.redis.execute("DEL", SENT)
        await self.state.redis.execute("SET", LAYOUT, 3)
        nodes, logged = await self.three_nodes_start()
        self.assertEqual([e["entries"] for e in logged if "placed by sender" in e.get("log_format", "")], [3])
        self.assertEqual(await self.state.redis.execute("GET", LAYOUT), "4")
        self.assertEqual(await nodes[1].unread("alice,bob", "", "alice", 100), 1)
        self.assertEqual(await nodes[2].unread("alice,bob", "", "bob", 100), 1)
        self.assertEqual(await nodes[0].unread(ALL, "", "bob", 100), 1)

    async def test_an_append_under_way_is_answered_before_the_state_stops(self) -> None:
        stopping = RedisState(reactor, RedisURL.parse(self.server.url))
        stopping.startService()
        await stopping.redis.ready()
        e = entry("alice,bob", "alice", 100.0)
        appended = stopping.append(to_keep([e]), 100)
        await stopping.stopService()
        await appended
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([e], False))

    async def test_a_text_with_tabs_and_line_breaks_is_kept_as_it_is(self) -> None:
        e = entry("alice,bob", "alice", 100.0)
        odd = Stored(e.id, e.at, e.conversation, e.sender, e.kind, e.recipients, "a\tb\nc\r\n")
        await self.state.append(to_keep([odd, entry(ALL, "bob", 101.0)]), 100)
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([odd], False))
        self.assertEqual(await self.state.history_size(), 2)

    async def test_appending_an_entry_twice_keeps_it_once(self) -> None:
        e = entry("alice,bob", "alice", 100.0)
        await gatherResults([self.state.append(to_keep([e]), 100), self.state.append(to_keep([e]), 100)])
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([e], False))
        self.assertEqual(await self.state.history_size(), 1)

    async def test_a_time_within_an_entrys_millisecond_cuts_it_exactly(self) -> None:
        e = entry("alice,bob", "alice", 100.25)  # ids are by the millisecond: 100.2505 falls in e's
        await self.state.append(to_keep([e]), 100)
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 100.2505), ([], False))
        self.assertEqual(await self.state.page_after("alice,bob", "", 10, 100.2505), ([], False))
        self.assertEqual(await self.state.latest("bob", 100.2505, 10), [])
        self.assertEqual(await self.state.latest("bob", 100.25, 10), [e])
        self.assertEqual(await self.state.expire_history(100.25, 100), 0)
        self.assertEqual(await self.state.expire_history(100.2505, 100), 1)

    async def test_what_an_older_msgsvc_left_reads_as_having_no_id_and_protected_since_its_password(
        self,
    ) -> None:
        redis = self.state.redis
        await redis.execute("ZADD", "msgsvc:queue:bob", 1, '1|16.5|["alice", "unicast", ["bob"], "hi"]')
        await redis.execute("HSET", ACCOUNTS, "bob", "$argon2id$bob")
        await redis.execute("HSET", ACCOUNTS_CHANGED, "bob", "12.5")
        page, _ = await self.state.backlog("bob", 0, 0.0, 10)
        self.assertEqual(page, [Queued(1, "alice", "unicast", ("bob",), "hi", 16.5, "")])
        self.assertEqual(await self.state.protected_since("bob"), 12.5)
        await self.state.set_password_hash("bob", "$argon2id$new", 20.0)  # not a new protection
        self.assertEqual(await self.state.protected_since("bob"), 20.0)  # later than the truth: hides more


class ClockTests(RedisStateCase):
    """Nodes whose clocks disagree, on one Redis: a message taken before a name's reset is never read by
    its next owner (docs/security.rst, "Clocks across nodes")."""

    async def redis_time(self) -> float:
        seconds, micros = await self.state.redis.execute("TIME")
        return int(seconds) + int(micros) / 1e6

    async def test_no_message_taken_before_a_reset_reads_as_after_the_next_owners_protection(self) -> None:
        ahead, behind = self.state, self.started()  # two nodes: one half a second ahead, one 3 s behind
        await behind.redis.ready()
        await behind.set_password_hash("alice", "$old", 0.0)
        now = await self.redis_time()
        taken = entry("alice,bob", "bob", now + 0.5)  # taken by `ahead` now, for the old owner
        await ahead.append(to_keep([taken]), 100)
        self.assertEqual(await ahead.page_before("alice,bob", None, 10, 0.0), ([taken], False))
        await behind.reset("alice", "forgot it", now - 3.0)
        await behind.set_password_hash("alice", "$new", now - 3.0)  # the next owner, at once
        since = await ahead.protected_since("alice")
        assert since is not None
        self.assertGreaterEqual(since, now + CLOCK_MARGIN)  # from Redis's clock, a margin after the reset
        self.assertEqual(await ahead.page_before("alice,bob", None, 10, since), ([], False))
        self.assertEqual(await ahead.latest("alice", since, 10), [])

    async def test_a_name_first_protected_reads_from_redis_time_at_the_earliest(self) -> None:
        before = await self.redis_time()
        await self.state.set_password_hash("alice", "$h", before - 3.0)  # a node 3 s behind
        since = await self.state.protected_since("alice")
        assert since is not None
        self.assertGreaterEqual(since, before)
        self.assertLessEqual(since, await self.redis_time())

    async def test_a_purge_is_dated_by_redis_not_by_the_operators_clock(self) -> None:
        """An operator's machine an hour behind or ahead: the purge holds from Redis's time, the one the
        nodes' entries are judged by; what the name sent before it, written late, is left out, and what it
        sends after it is kept."""
        for operators in (-3600.0, 3600.0):
            before = await self.redis_time()
            await self.state.purge_history("alice", before + operators)
            at = float(await self.state.redis.execute("HGET", PURGED, "alice"))
            self.assertGreaterEqual(at, before)
            self.assertLessEqual(at, await self.redis_time())
            late, after = entry("alice,bob", "alice", at - 1.0), entry("alice,bob", "alice", at + 0.5)
            await self.state.append(to_keep([late, after]), 100)
            self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([after], False))
        self.assertEqual(await self.state.history_size(), 1)  # the first pass's `after` went with the second purge

    async def test_an_entry_dated_beyond_the_margin_ahead_of_redis_is_not_kept_and_said(self) -> None:
        said: list[LogEvent] = []
        globalLogPublisher.addObserver(said.append)
        self.addCleanup(globalLogPublisher.removeObserver, said.append)
        now = await self.redis_time()
        soon, future = entry("alice,bob", "bob", now), entry("alice,bob", "alice", now + CLOCK_MARGIN + 60)
        await self.state.append(to_keep([soon, future]), 100)
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([soon], False))
        self.assertEqual(await self.state.history_size(), 1)
        self.assertEqual([e["too_new"] for e in said if "not kept" in e.get("log_format", "")], [1])


class _Scripts:
    """Redis's commands for :class:`RedisState`, answered by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, list[str], list[object], Deferred[Any]]] = []

    def script(self, script: object, keys: list[str], args: list[object]) -> Deferred[Any]:
        answer: Deferred[Any] = Deferred()
        self.calls.append((script, keys, args, answer))
        return answer


class AppendTests(SynchronousTestCase):
    """What a node writes for the history entries of one reactor pass (the hub's History gathers them)."""

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.state = RedisState(self.clock, RedisURL("localhost"))  # not started: its commands are faked
        self.redis = self.state.redis = _Scripts()  # type: ignore[assignment]
        self.entries = [entry("alice,bob", "alice", 100.0), entry(ALL, "bob", 101.0)]

    def test_one_script_with_each_entry_in_order_a_line_each(self) -> None:
        appended = self.state.append(to_keep(self.entries), 10)
        ((script, keys, args, answer),) = self.redis.calls
        self.assertEqual((script, keys), (APPEND, [HISTORY_SIZE, PURGED]))
        members = [history_entry(e) for e in self.entries]
        self.assertEqual(args, [CLOCK_MARGIN, 10, f"alice,bob\t{members[0]}\n{ALL}\t{members[1]}"])
        self.assertNoResult(appended)
        answer.callback([2, 0])
        self.assertIsNone(self.successResultOf(appended))

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.floats(min_value=0, max_value=2**47 / 1000, allow_nan=False),
        st.text(min_size=1),
        st.sampled_from(Kind),
        st.lists(st.text(min_size=1), max_size=3),
        st.text(),
    )
    def test_a_member_is_the_entrys_id_and_the_json_of_the_rest(
        self, at: float, sender: str, kind: Kind, recipients: list[str], text: str
    ) -> None:
        e = Stored("01KBXYZ0123456789ABCDEFGHJ", at, "c", sender, kind, tuple(recipients), text)
        payload = json.dumps([at, sender, kind.value, recipients, text])
        self.assertEqual(history_entry(e), f"{e.id}|{payload}")

    def test_when_redis_fails_the_append_fails(self) -> None:
        appended = self.state.append(to_keep(self.entries), 10)
        self.redis.calls[0][3].errback(RedisUnavailable("gone"))
        self.failureResultOf(appended, RedisUnavailable)
