"""The state in Redis, against a real redis-server (Debian's package; the tests fail without it)."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.auth import Reset
from msgsvc.hub.contracts import Enqueue, Queued, UserRecord
from msgsvc.state.redis import RedisState
from msgsvc.state.redislink import RedisUnavailable
from msgsvc.state.redisurl import RedisURL
from msgsvc.state.sqlite import Database

from .statecontract import ROOM, StateContract
from .support.processes import ROOT
from .support.redisserver import RedisServer


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


class RedisTestCase(TestCase):
    timeout = 30

    def setUp(self) -> Deferred[None]:
        self.server = RedisServer()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.state = self.started()
        return self.state.redis.ready()

    def started(self) -> RedisState:
        state = RedisState(reactor, RedisURL.parse(self.server.url))
        state.startService()
        self.addCleanup(state.stopService)
        return state


class RedisContractTests(StateContract, RedisTestCase):
    async def names_in_log(self) -> list[str]:
        return [r.name for r in await self.state.load()]


class RedisStateTests(RedisTestCase):

    @inlineCallbacks
    def test_the_log_keeps_each_name_as_first_spelled_with_first_and_last_seen(self) -> object:
        yield self.state.record_seen("Alice", 10.5)
        yield self.state.record_seen("bob", 11.0)
        yield self.state.record_seen("ALICE", 12.25)
        yield self.state.set_password_hash("bob", "$argon2id$...", 13.0)
        again = self.started()
        yield again.redis.ready()
        records = yield again.load()
        self.assertEqual(records, [UserRecord("Alice", 10.5, 12.25), UserRecord("bob", 11.0, 11.0, True)])

    @inlineCallbacks
    def test_a_message_waits_for_each_recipient_with_room_until_acknowledged(self) -> object:
        def message(text: str, at: float, limit: int = 2) -> Enqueue:
            group = ("Alice", "bob")
            return Enqueue(("alice", "bob"), "carol", "multicast", group, text, at, limit, 0.0, *ROOM)

        self.assertEqual((yield self.state.enqueue(message("one|1", 100.0))), ("alice", "bob"))
        self.assertEqual((yield self.state.enqueue(message("two", 101.0))), ("alice", "bob"))
        self.assertEqual((yield self.state.acknowledge("bob", 2)), 1)
        self.assertEqual((yield self.state.enqueue(message("three", 102.0))), ("bob",))  # alice is full
        page, more = yield self.state.backlog("Alice", 0, 0.0, 1)
        self.assertEqual(page, [Queued(1, "carol", "multicast", ("Alice", "bob"), "one|1", 100.0)])
        self.assertEqual(more, 1)
        page, more = yield self.state.backlog("bob", 0, 0.0, 10)
        self.assertEqual([(q.id, q.text) for q in page], [(4, "two"), (5, "three")])
        self.assertEqual(more, 0)

    @inlineCallbacks
    def test_expired_messages_are_dropped_and_do_not_count(self) -> object:
        def message(text: str, at: float, oldest: float) -> Enqueue:
            return Enqueue(("alice",), "carol", "unicast", ("alice",), text, at, 1, oldest, *ROOM)

        yield self.state.enqueue(message("old", 100.0, 0.0))
        self.assertEqual((yield self.state.enqueue(message("new", 200.0, 150.0))), ("alice",))
        page, _ = yield self.state.backlog("alice", 0, 150.0, 10)
        self.assertEqual([q.text for q in page], ["new"])
        yield self.state.enqueue(Enqueue(("bob",), "carol", "unicast", ("bob",), "x", 300.0, 5, 0.0, *ROOM))
        self.assertEqual((yield self.state.expire(250.0)), {"bob": 1})
        self.assertEqual((yield self.state.expire(400.0)), {})

    @inlineCallbacks
    def test_a_reset_drops_the_password_and_what_waited_and_is_read_back(self) -> object:
        yield self.state.record_seen("Alice", 1.0)
        yield self.state.set_password_hash("alice", "$argon2id$hash", 2.0)
        self.assertEqual((yield self.state.password_hash("ALICE")), "$argon2id$hash")
        yield self.state.enqueue(Enqueue(("alice",), "bob", "unicast", ("Alice",), "hi", 3.0, 10, 0.0, *ROOM))
        reset = yield self.state.reset("ALICE", "forgot it", 5.0)
        self.assertEqual(reset, Reset(1, "Alice", 5.0, "forgot it"))
        self.assertIsNone((yield self.state.reset("alice", "again", 6.0)))
        self.assertIsNone((yield self.state.password_hash("alice")))
        self.assertEqual((yield self.state.backlog("alice", 0, 0.0, 10)), ([], 0))
        self.assertEqual((yield self.state.last_reset()), 1)
        self.assertEqual((yield self.state.resets_after(0)), [Reset(1, "Alice", 5.0, "forgot it")])
        self.assertIsNone((yield self.state.resets_after(1)))

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
    def test_the_migration_copies_an_sqlite_state_and_refuses_to_copy_twice(self) -> object:
        path = self.mktemp()
        db = Database(path)
        db.record_seen([("Alice", 10.25), ("bob", 11.5)])
        db.record_seen([("ALICE", 12.75)])
        db.set_password_hash("alice", "$argon2id$alice", 13.0)
        db.set_password_hash("bob", "$argon2id$bob", 14.0)
        db.reset("bob", "forgot it", 15.0)
        message = Enqueue(
            ("alice",), "bob", "multicast", ("Alice", "carol"), "while you were away", 16.5, 10, 0.0, *ROOM
        )
        db.batch([lambda d: d.enqueue(message)])
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
        self.assertEqual(
            (done.returncode, done.stdout),
            (0, f"copied 2 names, 1 passwords and 1 waiting messages to {self.server.url}\n"),
        )
        records = yield self.state.load()
        self.assertEqual(records, [UserRecord("Alice", 10.25, 12.75, True), UserRecord("bob", 11.5, 11.5)])
        self.assertEqual((yield self.state.password_hash("alice")), "$argon2id$alice")
        self.assertEqual((yield self.state.resets_after(0)), [Reset(1, "bob", 15.0, "forgot it")])
        self.assertEqual(
            (yield self.state.backlog("alice", 0, 0.0, 10)),
            ([Queued(1, "bob", "multicast", ("Alice", "carol"), "while you were away", 16.5)], 0),
        )
        queued = yield self.state.enqueue(
            Enqueue(("alice",), "bob", "unicast", ("Alice",), "next", 17.0, 10, 0.0, *ROOM)
        )
        self.assertEqual(queued, ("alice",))
        over = Enqueue(("alice",), "bob", "unicast", ("Alice",), "over", 18.0, 10, 0.0, 2, 100)
        self.assertEqual((yield self.state.enqueue(over)), ())  # the copied message counts for bob
        page, _ = yield self.state.backlog("alice", 1, 0.0, 10)
        self.assertEqual([q.id for q in page], [2])  # ids go on after the copied ones
        again = migrate()
        self.assertEqual(again.returncode, 1)
        self.assertIn("this Redis database already holds a msgsvc username log", again.stderr)
