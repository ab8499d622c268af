"""The SQLite username log."""

from __future__ import annotations

import os
import sqlite3
import threading

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.hub import UserRecord
from msgsvc.store import Database, SqliteStore, StoreError


class DatabaseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.db = Database(self.path)
        self.addCleanup(self.db.close)

    def test_new_file_is_empty(self) -> None:
        self.assertEqual(self.db.load(), [])
        self.assertTrue(os.path.exists(self.path))

    def test_names_survive_reopening(self) -> None:
        self.db.record_seen([("alice", 10.0)])
        self.db.record_seen([("Bob", 20.0)])
        self.db.close()
        again = Database(self.path)
        self.addCleanup(again.close)
        self.assertEqual(again.load(), [UserRecord("alice", 10.0, 10.0), UserRecord("Bob", 20.0, 20.0)])

    def test_seeing_again_moves_last_seen_and_keeps_first_spelling(self) -> None:
        self.db.record_seen([("Alice", 10.0)])
        self.db.record_seen([("ALICE", 50.0)])
        self.assertEqual(self.db.load(), [UserRecord("Alice", 10.0, 50.0)])

    def test_wal_and_full_sync(self) -> None:
        raw = sqlite3.connect(self.path)
        self.addCleanup(raw.close)
        self.assertEqual(raw.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(self.db._db.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL

    def test_committed_at_once(self) -> None:
        self.db.record_seen([("carol", 1.0)])
        other = sqlite3.connect(self.path)
        self.addCleanup(other.close)
        self.assertEqual(other.execute("SELECT name FROM users").fetchall(), [("carol",)])


class BadFileTests(SynchronousTestCase):
    def assertRefused(self, path: str, *words: str) -> None:
        with self.assertRaises(StoreError) as caught:
            Database(path)
        message = str(caught.exception)
        self.assertIn(repr(path), message)
        for word in words:
            self.assertIn(word, message)

    def test_not_a_database(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"this is no sqlite file, just some text" * 100)
        self.assertRefused(path, "not a database")

    def test_missing_directory(self) -> None:
        self.assertRefused(os.path.join(self.mktemp(), "no", "such", "dir.sqlite3"), "cannot open")

    def test_newer_schema(self) -> None:
        path = self.mktemp()
        raw = sqlite3.connect(path)
        raw.execute("PRAGMA user_version=99")
        raw.close()
        self.assertRefused(path, "schema version 99")

    def test_a_bad_file_is_left_untouched(self) -> None:
        path = self.mktemp()
        data = b"garbage" * 1000
        with open(path, "wb") as f:
            f.write(data)
        self.assertRaises(StoreError, Database, path)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), data)


class SqliteStoreTests(TestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        seed = Database(self.path)
        seed.record_seen([("zoe", 1.0)])
        seed.close()
        self.log = SqliteStore(reactor, self.path)

    def test_loads_at_construction(self) -> None:
        self.assertEqual(self.log.records, [UserRecord("zoe", 1.0, 1.0)])

    def test_refuses_to_write_when_not_running(self) -> None:
        self.failureResultOf(self.log.record_seen("x", 1.0), StoreError)

    async def test_writes_on_a_worker_thread_and_flushes_on_stop(self) -> None:
        self.log.startService()
        threads: list[threading.Thread] = []
        database = self.log._database
        assert database is not None
        original = database.record_seen

        batches: list[int] = []

        def spy(seen: list[tuple[str, float]]) -> None:
            threads.append(threading.current_thread())
            batches.append(len(seen))
            original(seen)

        database.record_seen = spy  # type: ignore[method-assign]
        await self.log.record_seen("amy", 5.0)
        queued = [self.log.record_seen(f"user{i}", 6.0 + i) for i in range(20)]
        self.log.stopService()  # returns once the queue is written
        await gatherResults(queued)
        self.assertEqual(batches, [1, 1, 19])  # what waited for a write went in one transaction
        self.assertNotIn(threading.current_thread(), threads)
        reopened = Database(self.path)
        self.addCleanup(reopened.close)
        self.assertEqual(len(reopened.load()), 22)
