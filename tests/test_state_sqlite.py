"""The SQLite state: the file, its migrations, the group commit, and what a kill -9 leaves."""

from __future__ import annotations

import gc
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from functools import partial

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.auth.hashing import HASHER
from msgsvc.auth.store import Reset
from msgsvc.hub.contracts import (
    Ban,
    Enqueue,
    Joining,
    Kind,
    Member,
    Message,
    ModesKept,
    Queued,
    Refusal,
    RoomRecord,
    Stored,
    UserRecord,
)
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.kept import Kept
from msgsvc.state import StoreError
from msgsvc.state.sqlite import _SCHEMA, HISTORY_INTERVAL, SCHEMA_VERSION, Database, SqliteStore

from .support.fakes import stored, to_keep
from .support.logs import VERSION_1
from .support.queue import NO_ID, ROOM
from .support.processes import ROOT


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
        self.clock = Clock()
        self.log = SqliteStore(reactor, self.path, self.clock)

    def test_loads_at_construction(self) -> None:
        self.assertEqual(self.successResultOf(self.log.read_log()).records, [UserRecord("zoe", 1.0, 1.0)])

    def test_refuses_to_write_when_not_running(self) -> None:
        self.failureResultOf(self.log.record_seen("x", 1.0), StoreError)

    async def test_a_name_never_invited_is_freed_without_a_transaction(self) -> None:
        """Every unprotected departure frees its name (RoomStore.uninvite); most were never invited: no job
        on the worker thread for them (a transaction a departure cost 100,000 instructions more)."""
        self.log.startService()
        self.addCleanup(self.log.stopService)
        self.assertIsNone(self.successResultOf(self.log.uninvite("zoe")))  # answered at once
        room = RoomRecord("#dev", 1.0, "zoe", modes="i", members={"zoe": Member("zoe", op=True)})
        await self.log.create_room(room, 50)
        await self.log.invite("#dev", "bob", True, 2.0)
        freed = self.log.uninvite("bob")
        self.assertNoResult(freed)  # a job: bob was invited
        await freed
        self.assertIs(await self.log.enter("#dev", Joining("bob", 3.0), 10, 50), Refusal.INVITE_ONLY)
        self.assertIsNone(self.successResultOf(self.log.uninvite("bob")))  # freed already

    async def test_writes_on_a_worker_thread_and_flushes_on_stop(self) -> None:
        self.log.startService()
        threads: list[threading.Thread] = []
        database = self.log._database
        assert database is not None
        original = database.batch

        batches: list[int] = []

        def spy(work: list[Callable[[Database], object]]) -> list[object]:
            threads.append(threading.current_thread())
            batches.append(len(work))
            return original(work)

        database.batch = spy  # type: ignore[method-assign]
        await self.log.record_seen("amy", 5.0)
        queued = [self.log.record_seen(f"user{i}", 6.0 + i) for i in range(20)]
        self.log.stopService()  # returns once the queue is written
        await gatherResults(queued)
        self.assertEqual(batches, [1, 1, 19])  # what waited for a write went in one transaction
        self.assertNotIn(threading.current_thread(), threads)
        reopened = Database(self.path)
        self.addCleanup(reopened.close)
        self.assertEqual(len(reopened.load()), 22)

    async def test_the_history_waits_for_its_interval_or_the_next_transaction(self) -> None:
        """Entries alone are written once they have waited HISTORY_INTERVAL, in one transaction for all;
        a queueing asked after them is written with them (their history first: kill -9 keeps both or
        neither)."""
        self.log.startService()
        self.addCleanup(self.log.stopService)
        first = self.log.append(to_keep([_entry(1.0)]), 10)
        second = self.log.append(to_keep([_entry(2.0)]), 10)
        self.clock.advance(HISTORY_INTERVAL - 0.001)
        self.assertNoResult(first)
        self.clock.advance(0.001)
        await gatherResults([first, second])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        third = self.log.append(to_keep([_entry(3.0)]), 10)
        message = Enqueue(("bob",), "alice", "unicast", ("bob",), "hi", 1.0, 10, 0.0, *ROOM, NO_ID)
        self.assertEqual(await self.log.enqueue(message), ("bob",))
        await third  # no time passed: it went with the queueing
        self.assertEqual(self.clock.getDelayedCalls(), [])
        reopened = Database(self.path)
        self.addCleanup(reopened.close)
        self.assertEqual(reopened.history(), [_entry(1.0), _entry(2.0), _entry(3.0)])

    async def test_the_historys_records_are_made_on_the_worker_thread(self) -> None:
        """The reactor hands the worker the Kept the hub gave it, and the records are made there, where
        the index's work lets go of the interpreter's lock as it goes, not on the reactor's thread (25 ms
        a second's hand-over: docs/performance.rst, "The reactor held by the history's thread")."""
        self.log.startService()
        self.addCleanup(self.log.stopService)
        database = self.log._database
        assert database is not None
        original = database.batch
        handed: list[list[Kept]] = []  # what each transaction's appends were given
        threads: list[threading.Thread] = []

        def spy(work: list[Callable[[Database], object]]) -> list[object]:
            threads.append(threading.current_thread())
            appends = [job for job in work if isinstance(job, partial) and "kept" in job.keywords]
            handed.extend(job.keywords["kept"] for job in appends)
            return original(work)

        database.batch = spy  # type: ignore[method-assign]
        kept, other = to_keep([_entry(1.0)]), to_keep([_entry(2.0)])
        appended = [self.log.append(kept, 10), self.log.append(other, 10)]
        self.clock.advance(HISTORY_INTERVAL)
        await gatherResults(appended)
        self.assertEqual(len(handed), 1)
        self.assertEqual([id(each) for each in handed[0]], [id(kept), id(other)])  # not their records
        self.assertNotIn(threading.current_thread(), threads)
        self.assertEqual(database.history(), [_entry(1.0), _entry(2.0)])

    async def test_only_names_that_have_had_a_password_are_read_for_one(self) -> None:
        seed = Database(self.path)
        seed.set_password_hash("Zoe", "z", 2.0)
        seed.close()
        store = SqliteStore(reactor, self.path, self.clock)
        store.startService()
        self.addCleanup(store.stopService)
        self.assertIsNone(self.successResultOf(store.password_hash("amy")))  # answered at once, no read
        self.assertEqual(await store.password_hash("zoe"), "z")  # protected in the file at start-up
        await store.set_password_hash("amy", "a", 3.0)
        self.assertEqual(await store.password_hash("AMY"), "a")
        operator = Database(self.path)  # msgsvc.admin reset, from another process
        operator.reset("amy", "forgot", 4.0)
        operator.close()
        self.assertIsNone(await store.password_hash("amy"))


class MigrationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        shutil.copy(VERSION_1, self.path)

    def test_a_version_1_log_keeps_its_names_spellings_and_times(self) -> None:
        db = Database(self.path)
        self.addCleanup(db.close)
        self.assertEqual(
            db.load(),
            [
                UserRecord("alice", 1700000000.5, 1700003600.0),
                UserRecord("Bob", 1700000100.25, 1700010000.0),
                UserRecord("carol.x", 1700007200.0, 1700007200.0),
            ],
        )
        self.assertEqual(db._db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
        db.set_password_hash("BOB", "hash", 1.0)
        self.assertEqual([r.protected for r in db.load()], [False, True, False])

    def test_migrating_is_all_or_nothing(self) -> None:
        raw = sqlite3.connect(self.path)
        raw.execute("CREATE TABLE resets (x)")  # in the way of version 2's table
        raw.commit()
        raw.close()
        self.assertRaises(StoreError, Database, self.path)
        raw = sqlite3.connect(self.path)
        self.addCleanup(raw.close)
        self.assertEqual(raw.execute("PRAGMA user_version").fetchone()[0], 1)
        tables = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        self.assertEqual(tables, {"users", "resets"})  # no accounts table was left behind

    def test_opening_again_changes_nothing(self) -> None:
        Database(self.path).close()
        db = Database(self.path)
        self.addCleanup(db.close)
        self.assertEqual(len(db.load()), 3)


class AccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.db = Database(self.path)
        self.addCleanup(self.db.close)
        self.db.record_seen([("Alice", 1.0), ("bob", 2.0)])

    def test_set_and_replace_a_hash(self) -> None:
        self.assertIsNone(self.db.password_hash("alice"))
        self.db.set_password_hash("ALICE", "first", 3.0)
        self.db.set_password_hash("alice", "second", 4.0)
        self.assertEqual(self.db.password_hash("Alice"), "second")
        self.assertEqual(self.db.protected(), [("Alice", 4.0)])

    def test_reset_removes_the_hash_and_notes_why(self) -> None:
        self.db.set_password_hash("alice", "h", 3.0)
        self.assertEqual(self.db.reset("ALICE", "forgot it", 5.0), Reset(1, "Alice", 5.0, "forgot it"))
        self.assertIsNone(self.db.password_hash("alice"))
        self.assertIsNone(self.db.reset("alice", "again", 6.0))
        self.assertEqual(self.db.last_reset(), 1)

    def test_resets_by_another_connection_are_seen_once(self) -> None:
        self.db.set_password_hash("alice", "h", 3.0)
        self.assertEqual(self.db.resets_after(0), [])  # the first look reads whatever is there
        self.assertIsNone(self.db.resets_after(0))  # nothing written since by anyone else
        admin = Database(self.path)
        self.addCleanup(admin.close)
        admin.reset("alice", "from the command line", 7.0)
        self.assertEqual(self.db.resets_after(0), [Reset(1, "Alice", 7.0, "from the command line")])
        self.assertIsNone(self.db.resets_after(1))


_CHANGER = """
import sys
from msgsvc.state.sqlite import Database
db = Database(sys.argv[1])
n = 1
db.set_password_hash("alice", sys.argv[2 + n % 2], float(n))
print("ready", flush=True)  # one change is on disk: whenever the kill comes, there is a password
while True:
    n += 1
    db.set_password_hash("alice", sys.argv[2 + n % 2], float(n))
"""


class KilledDuringAPasswordChangeTests(SynchronousTestCase):
    def test_leaves_the_old_or_the_new_hash(self) -> None:
        """A process changing alice's password in a loop is killed with SIGKILL, again and again."""
        path = self.mktemp()
        Database(path).close()
        hashes = [HASHER.hash("old password"), HASHER.hash("new password")]  # written at even, odd n
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for round_ in range(5):
            changer = subprocess.Popen(
                [sys.executable, "-c", _CHANGER, path, *hashes],
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": root},
            )
            assert changer.stdout is not None
            self.assertEqual(changer.stdout.readline(), b"ready\n")
            time.sleep(0.05 + 0.03 * round_)  # some way into the loop (where exactly does not matter)
            changer.kill()
            changer.wait()
            changer.stdout.close()
            db = Database(path)  # opens: the file is not broken
            stored = db.password_hash("alice")
            [(writes,)] = db._db.execute("SELECT changed FROM accounts").fetchall()
            db.close()
            self.assertGreaterEqual(writes, 1)
            self.assertIn(stored, hashes)
            assert stored is not None
            self.assertTrue(HASHER.verify(stored, "new password" if writes % 2 else "old password"))


def _taken_back(db: Database, script: str) -> None:
    """``db``'s file taken back to schema version 14 (its history as one table of rows, the index and
    pass rows gone), then by ``script`` (a ``_BACK_TO_*`` and its user_version) further."""
    entries = db.history()
    db._db.executescript(
        "DROP TABLE history_passes; DROP TABLE history_floors;"
        " CREATE TABLE history (id TEXT PRIMARY KEY, at REAL NOT NULL, conversation TEXT NOT NULL,"
        " sender TEXT NOT NULL, kind TEXT NOT NULL, recipients TEXT NOT NULL, text TEXT NOT NULL) WITHOUT ROWID;"
    )
    db._db.executemany(
        "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(e.id, e.at, e.conversation, e.sender, e.kind.value, ",".join(e.recipients), e.text) for e in entries],
    )
    db._db.executescript(script)


# Takes a file at schema version 14 back to version 13 (less its user_version): memberships not numbered.
_BACK_TO_13 = "ALTER TABLE room_members DROP COLUMN joined;"

# Takes a file at schema version 14 back to version 12 (less its user_version): no purge's time kept.
_BACK_TO_12 = _BACK_TO_13 + " DROP TABLE history_purged;"

# Takes a file at schema version 14 back to version 11 (less its user_version): the history as version 11
# kept it, its conversations numbered with their counts and newest, and each name's conversations.
_BACK_TO_11 = _BACK_TO_12 + (
    " DROP TABLE history_purges;"
    " CREATE TABLE conversations (key TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE,"
    " entries INTEGER NOT NULL, newest TEXT NOT NULL) WITHOUT ROWID;"
    " INSERT INTO conversations SELECT conversation, row_number() OVER (ORDER BY conversation),"
    " count(*), max(id) FROM history GROUP BY conversation;"
    " CREATE TABLE history11 (id TEXT PRIMARY KEY, conversation INTEGER NOT NULL, at REAL NOT NULL,"
    " sender TEXT NOT NULL, kind TEXT NOT NULL, recipients TEXT NOT NULL, text TEXT NOT NULL) WITHOUT ROWID;"
    " INSERT INTO history11 SELECT h.id, c.id, h.at, h.sender, h.kind, h.recipients, h.text"
    " FROM history AS h JOIN conversations AS c ON c.key = h.conversation;"
    " DROP TABLE history; ALTER TABLE history11 RENAME TO history;"
    " CREATE INDEX history_by_conversation ON history (conversation, id);"
    " CREATE TRIGGER history_removed AFTER DELETE ON history BEGIN"
    " UPDATE conversations SET entries = entries - 1 WHERE id = old.conversation; END;"
    " CREATE TABLE history_members (member TEXT NOT NULL, newest TEXT NOT NULL,"
    " conversation INTEGER NOT NULL, PRIMARY KEY (member, newest, conversation)) WITHOUT ROWID;"
    " INSERT INTO history_members SELECT j.value, c.newest, c.id"
    " FROM conversations AS c, json_each('[\"' || replace(c.key, ',', '\",\"') || '\"]') AS j"
    " WHERE c.key NOT LIKE '#%';"
)

# Takes a file at schema version 14 back to version 10 (less its user_version).
_BACK_TO_10 = _BACK_TO_11 + (
    "ALTER TABLE rooms DROP COLUMN version; ALTER TABLE room_members DROP COLUMN version;"
)

# Takes a file at schema version 14 back to version 7 (less its user_version).
_BACK_TO_7 = _BACK_TO_11 + (
    "DROP TABLE ready; DROP TABLE rooms; DROP TABLE room_members; DROP TABLE room_bans;"
)

# Takes a file at schema version 14 back to version 4 (less its user_version).
_BACK_TO_4 = _BACK_TO_7 + (
    "DROP TABLE reads; DROP TABLE history; DROP TABLE conversations; DROP TABLE history_members;"
    " ALTER TABLE accounts DROP COLUMN protected_since; ALTER TABLE queue DROP COLUMN message_id;"
)


class QueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.db = Database(self.mktemp())
        self.addCleanup(self.db.close)

    def enqueue(self, *keys: str, at: float = 100.0, limit: int = 10, oldest: float = 0.0) -> object:
        message = Enqueue(keys, "alice", "multicast", ("Bob", "carol"), "hi", at, limit, oldest, *ROOM, NO_ID)
        [queued] = self.db.batch([lambda db: db.enqueue(message)])
        return queued

    def test_queue_page_acknowledge(self) -> None:
        self.assertEqual(self.enqueue("bob", "carol"), ("bob", "carol"))
        self.enqueue("bob", at=200.0)
        [(page, more)] = self.db.batch([lambda db: db.backlog("BOB", 0, 0.0, 1)])  # type: ignore[misc]
        self.assertEqual(page, [Queued(1, "alice", "multicast", ("Bob", "carol"), "hi", 100.0)])
        self.assertEqual(more, 1)
        self.assertEqual(self.db.batch([lambda db: db.acknowledge("bob", 1)]), [1])
        [(page, more)] = self.db.batch([lambda db: db.backlog("bob", 0, 0.0, 10)])  # type: ignore[misc]
        self.assertEqual([q.id for q in page], [3])

    def test_limit_and_expiry(self) -> None:
        self.assertEqual(self.enqueue("bob", limit=1), ("bob",))
        self.assertEqual(self.enqueue("bob", limit=1), ())
        self.assertEqual(
            self.enqueue("bob", limit=1, at=500.0, oldest=150.0), ("bob",)
        )  # the old one expired
        self.assertEqual(self.db.batch([lambda db: db.expire(600.0)]), [{}])

    def test_a_version_3_file_is_given_the_counts_of_what_waits(self) -> None:
        path = self.mktemp()
        db = Database(path)
        for sender in ("alice", "Alice", "bob"):
            message = Enqueue(("carol",), sender, "unicast", ("carol",), "hi", 1.0, 10, 0.0, *ROOM, NO_ID)
            db.batch([lambda d: d.enqueue(message)])  # noqa: B023 - run at once
        _taken_back(
            db,
            _BACK_TO_4 + "DROP TRIGGER queue_added; DROP TRIGGER queue_removed; DROP TABLE queue_senders;"
            " DROP TABLE queue_total; ALTER TABLE resets DROP COLUMN removed; PRAGMA user_version = 3"
        )
        db.close()
        db = Database(path)
        self.addCleanup(db.close)
        to_two = Enqueue(("x", "y"), "ALICE", "multicast", ("x", "y"), "hi", 2.0, 10, 0.0, 3, 100, NO_ID)
        self.assertEqual(db.batch([lambda d: d.enqueue(to_two)]), [("x",)])  # alice had 2 waiting
        to_two = Enqueue(("x", "y"), "erin", "multicast", ("x", "y"), "hi", 2.0, 10, 0.0, 3, 5, NO_ID)
        self.assertEqual(db.batch([lambda d: d.enqueue(to_two)]), [("x",)])  # 4 waited in all

    def reopened_at(self, version: int, back: str, db: Database, path: str) -> Database:
        """``db``'s file at ``path`` taken back to schema ``version`` by the script ``back``, then opened
        again (so upgraded), closed at the test's end."""
        _taken_back(db, back + f"PRAGMA user_version = {version}")
        db.close()
        db = Database(path)
        self.addCleanup(db.close)
        return db

    def test_a_version_4_file_is_given_protection_times_and_empty_message_ids(self) -> None:
        path = self.mktemp()
        db = Database(path)
        db.set_password_hash("alice", "h", 7.0)
        db.set_password_hash("alice", "h2", 9.0)  # before version 5, only this time was kept
        message = Enqueue(("alice",), "bob", "unicast", ("alice",), "hi", 1.0, 10, 0.0, *ROOM, message_id="X")
        db.batch([lambda d: d.enqueue(message)])
        db = self.reopened_at(4, _BACK_TO_4, db, path)
        self.assertEqual(db.protected_since("alice"), 9.0)  # later than the truth: hides more, never less
        [(page, _)] = db.batch([lambda d: d.backlog("alice", 0, 0.0, 10)])  # type: ignore[misc]
        self.assertEqual([q.message_id for q in page], [""])
        self.assertEqual(db.batch([lambda d: d.history_size()]), [0])

    def test_a_version_5_file_is_given_read_positions_and_keeps_its_history(self) -> None:
        path = self.mktemp()
        said = Stored(message_id_floor(100.0), 100.0, "alice,bob", "bob", Kind.UNICAST, ("alice",), "hi")
        _version_5(path, [said])
        db = Database(path)
        self.addCleanup(db.close)
        self.assertEqual(db.read_positions("alice", ["alice,bob"]), {})
        self.assertEqual(db.batch([lambda d: d.unread("alice,bob", "", "alice", 10)]), [1])
        self.assertEqual(db.batch([lambda d: d.set_read("alice", "alice,bob", said.id)]), [said.id])
        self.assertEqual(db.read_positions("ALICE", ["alice,bob"]), {"alice,bob": said.id})
        self.assertEqual(db.batch([lambda d: d.unread("alice,bob", said.id, "alice", 10)]), [0])

    def test_a_version_11_files_history_is_one_table_read_through_its_index_in_memory(self) -> None:
        path = self.mktemp()
        db = Database(path)
        said = [
            _direct(1.0, "alice,bob"),
            _entry(2.0, "to all"),
            _direct(3.0, "alice,bob,carol"),
            _direct(4.0, "alice,bob", "again"),
        ]
        db.batch([lambda d: d.append(to_keep(said), 10)])
        _taken_back(db, _BACK_TO_11 + "PRAGMA user_version = 11")
        self.assertEqual(db._db.execute("SELECT count(*) FROM history_members").fetchone(), (5,))
        db.close()
        db = Database(path)
        self.addCleanup(db.close)
        tables = {name for (name,) in db._db.execute("SELECT name FROM sqlite_master")}
        self.assertLessEqual({"history_passes", "history_purges", "history_purged"}, tables)
        self.assertFalse(tables & {"history", "conversations", "history_members", "history_by_conversation"})
        self.assertEqual(db.history(), said)
        self.assertEqual(db.latest("bob", 0.0, 10), [said[3], said[2]])
        self.assertEqual(db.page_before("alice,bob", None, 10, 0.0), ([said[0], said[3]], False))
        self.assertEqual(db.history_size(), 4)

    def test_a_version_7_file_is_given_rooms_and_keeps_its_history_and_accounts(self) -> None:
        path = self.mktemp()
        db = Database(path)
        db.set_password_hash("alice", "h", 7.0)
        said = Stored(message_id_floor(100.0), 100.0, "alice,bob", "bob", Kind.UNICAST, ("alice",), "hi")
        db.batch([lambda d: d.append(to_keep([said]), 10)])
        db = self.reopened_at(7, _BACK_TO_7, db, path)
        self.assertEqual(db.rooms(), [])
        dev = RoomRecord("#dev", 10.0, "alice", members={"alice": Member("alice", op=True, since=10.0)})
        db.batch([lambda d: d.create_room(dev, 50)])
        self.assertEqual(db.rooms(), [dev])
        self.assertEqual(db.history(), [said])
        self.assertEqual(db.password_hash("alice"), "h")

    def test_a_version_10_files_rooms_and_members_have_version_0_till_a_mode_change(self) -> None:
        path = self.mktemp()
        db = Database(path)
        dev = RoomRecord("#dev", 10.0, "alice", modes="int", members={"alice": Member("alice", op=True, since=10.0)})
        dev.members["bob"] = Member("bob", since=11.0)
        db.batch([lambda d: d.create_room(dev, 50)])
        db = self.reopened_at(10, _BACK_TO_10, db, path)
        self.assertEqual(db.rooms(), [dev])
        [kept] = db.batch([lambda d: d.set_modes("#dev", [("-i", None), ("+v", "bob")], "alice", 20.0, {"bob": 0})])
        self.assertEqual(kept, ModesKept("nt", None, None, 1, (Member("bob", voice=True, since=11.0, version=1),)))
        self.assertEqual(db.rooms()[0].members["bob"].version, 1)

    def test_a_version_13_files_members_are_memberships_0_and_an_entry_gets_the_next_version(self) -> None:
        path = self.mktemp()
        db = Database(path)
        dev = RoomRecord("#dev", 10.0, "alice", version=4, members={"alice": Member("alice", op=True, since=10.0)})
        db.batch([lambda d: d.create_room(dev, 50)])
        db = self.reopened_at(13, _BACK_TO_13, db, path)
        self.assertEqual(db.rooms(), [dev])
        [bob] = db.batch([lambda d: d.enter("#dev", Joining("bob", 11.0), 10, 50)])
        self.assertEqual(bob, Member("bob", since=11.0, joined=5))
        self.assertEqual(db.rooms()[0].members["bob"], bob)

    def test_a_version_8_files_bans_of_names_become_masks(self) -> None:
        path = self.mktemp()
        db = Database(path)
        db.batch([lambda d: d.create_room(RoomRecord("#dev", 10.0, "alice"), 50)])
        _taken_back(
            db,
            _BACK_TO_10 + "DROP TABLE ready; DROP TABLE room_bans; CREATE TABLE room_bans (room TEXT NOT NULL, key TEXT NOT NULL,"
            " name TEXT NOT NULL, by TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (room, key)) WITHOUT ROWID;"
            " INSERT INTO room_bans VALUES ('#dev', 'mallory', 'Mallory', 'alice', 19.25);"
            " PRAGMA user_version = 8"
        )
        db.close()
        db = Database(path)
        self.addCleanup(db.close)
        (dev,) = db.rooms()
        self.assertEqual(dev.bans, {"mallory!*@*": Ban("Mallory!*@*", "alice", 19.25)})
        db.batch([lambda d: d.set_modes("#dev", [("-b", "MALLORY!*@*")], "alice", 20.0, {})])  # any case, as the hub lifts it
        self.assertEqual(db.rooms()[0].bans, {})

    def test_an_unread_count_reads_its_cap_of_entries_however_long_the_conversation(self) -> None:
        def said(conversation: str, start: float, count: int) -> list[Stored]:
            ids = [message_id_floor(start + i) for i in range(count)]
            return [Stored(id, start + i, conversation, conversation[6:], Kind.UNICAST, ("alice",), "hi") for i, id in enumerate(ids)]

        many, few = said("alice,bob", 100.0, 2000), said("alice,carol", 5000.0, 20)
        self.db.batch([lambda d: d.append(to_keep([*many, *few]), 10_000)])

        def steps(conversation: str) -> int:
            """SQLite's virtual machine steps for one unread count of ``conversation``, capped at 10."""
            counted = [0]

            def step() -> int:
                counted[0] += 1
                return 0

            self.db._db.set_progress_handler(step, 1)
            self.assertEqual(self.db.unread(conversation, "", "alice", 10), 10)
            self.db._db.set_progress_handler(None, 1)
            return counted[0]

        self.assertEqual(steps("alice,bob"), steps("alice,carol"))  # 2000 entries cost as 20

    def test_a_reset_drops_the_names_queue(self) -> None:
        self.db.record_seen([("bob", 1.0)])
        self.db.set_password_hash("bob", "h", 1.0)
        self.enqueue("bob")
        self.db.reset("bob", "forgot", 2.0)
        self.assertEqual(self.db.batch([lambda db: db.expire(0.0)]), [{}])


def _entry(at: float, text: str = "hi") -> Stored:
    return Stored(message_id_floor(at), at, ALL, "alice", Kind.BROADCAST, (), text)


def _direct(at: float, conversation: str, text: str = "hi") -> Stored:
    sender, *others = conversation.split(",")
    return Stored(message_id_floor(at), at, conversation, sender, Kind.UNICAST, tuple(others), text)


def _version_5(path: str, entries: list[Stored]) -> None:
    """A file at schema version 5 holding ``entries`` in its history, as version 5 wrote them."""
    raw = sqlite3.connect(path)
    for version in range(1, 6):
        for statement in _SCHEMA[version]:
            raw.execute(statement)
    for e in entries:  # its trigger counts them
        raw.execute(
            "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?, ?)",
            (e.id, e.conversation, e.at, e.sender, e.kind.value, ",".join(e.recipients), e.text),
        )
    for conversation in {e.conversation for e in entries}:
        for member in participants(conversation):
            raw.execute("INSERT OR IGNORE INTO history_members VALUES (?, ?)", (member, conversation))
    raw.execute("PRAGMA user_version=5")
    raw.commit()
    raw.close()


class Version5HistoryTests(SynchronousTestCase):
    def test_a_version_5_file_with_history_upgrades_and_reads_back_the_same(self) -> None:
        path = self.mktemp()
        entries = [
            _direct(1.0, "alice,bob"),
            _entry(2.0, "to all"),
            _direct(3.0, "alice,bob,carol"),
            _direct(4.0, "alice,bob", "again"),
        ]
        _version_5(path, entries)
        db = Database(path)
        self.addCleanup(db.close)
        self.assertEqual(db.history(), sorted(entries, key=lambda e: e.id))
        self.assertEqual(db.latest("bob", 0.0, 10), [entries[3], entries[2]])
        self.assertEqual(db.latest("carol", 0.0, 10), [entries[2]])
        self.assertEqual(db.page_before("alice,bob", None, 10, 0.0), ([entries[0], entries[3]], False))
        self.assertEqual(db.history_size(), 4)
        later = [_direct(5.0, "bob,dave"), _direct(6.0, "alice,bob"), _direct(7.0, "alice,bob")]
        db.batch([lambda d: d.append(to_keep(later), 2)])  # a new conversation; a trim
        self.assertEqual(db.latest("bob", 0.0, 2), [later[2], later[0]])
        self.assertEqual(db.page_before("alice,bob", None, 10, 0.0), (later[1:], False))
        self.assertEqual(db.history_size(), 5)


class UnreadCostTests(SynchronousTestCase):
    """attack36 (issue 30, schema 12): an unread count passes over the reader's own entries after its read
    position one SQL statement per ``cap`` of them (the index's ids read in steps of the cap, each step a
    look-up by key), where schema 11 counted them in one statement: ~11x the store thread's time (25 ms
    against 2.3 ms for 10,000 own entries).  A name's CONVERSATIONS counts its unread in up to 100
    conversations; 9 sessions of one account with 4 conversations of 10,000 of its own messages asking it
    at the line rate took bystanders' store round trips (a HISTORY, a SEND queued for an offline name)
    from 2 ms to 1.4 s median, 4.1 s worst (real server, one SQLite file).  Counted in statements, not
    timed."""

    def statements(self, own: int) -> int:
        """SQL statements for one unread count (cap 100) of a conversation of ``own`` entries of the
        reader's, then one of the other participant's."""
        db = Database(self.mktemp())
        self.addCleanup(db.close)
        mine = [
            Stored(message_id_floor(1.0 + n), 1.0 + n, "bob,mallory", "mallory", Kind.UNICAST, ("bob",), "hi")
            for n in range(own)
        ]
        theirs = Stored(message_id_floor(50_000.0), 50_000.0, "bob,mallory", "bob", Kind.UNICAST, ("mallory",), "hi")
        db.batch([lambda d: d.append(to_keep([*mine, theirs]), 100_000)])
        counted: list[str] = []
        db._db.set_trace_callback(counted.append)
        self.assertEqual(db.unread("bob,mallory", "", "mallory", 100), 1)
        db._db.set_trace_callback(None)
        return len(counted)

    def test_an_unread_count_passes_over_the_readers_own_entries_in_one_statement(self) -> None:
        self.assertEqual(self.statements(10_000), self.statements(10))


class LatestCostTests(SynchronousTestCase):
    """The second attack on history (docs/security.rst): a listing of conversations read every
    conversation of its reader, however many (0.26 s for a name in 100,000 conversations, every write
    waiting).  Counted in SQLite's steps (its progress handler), not timed."""

    def steps(self, conversations: int) -> int:
        """SQLite's steps for one latest(limit 10) of a name in ``conversations`` conversations."""
        db = Database(self.mktemp())
        self.addCleanup(db.close)
        entries = [_direct(1.0 + n, f"mallory,n{n:05d}") for n in range(conversations)]
        db.batch([lambda d: d.append(to_keep(entries), 10)])
        counted = [0]

        def step() -> int:
            counted[0] += 1
            return 0

        db._db.set_progress_handler(step, 10)
        self.assertEqual(db.latest("mallory", 0.0, 10), entries[::-1][:10])
        return counted[0]

    def test_listing_costs_what_it_lists_not_every_conversation(self) -> None:
        self.assertLess(self.steps(20_000), 2 * self.steps(20))

    def test_conversations_older_than_the_readers_protection_cost_nothing(self) -> None:
        db = Database(self.mktemp())
        self.addCleanup(db.close)
        old = [_direct(1.0 + n, f"mallory,n{n:05d}") for n in range(20_000)]
        db.batch([lambda d: d.append(to_keep([*old, _direct(50_000.0, "alice,mallory")]), 10)])
        counted = [0]

        def step() -> int:
            counted[0] += 1
            return 0

        db._db.set_progress_handler(step, 10)
        self.assertEqual([e.at for e in db.latest("mallory", 40_000.0, 10)], [50_000.0])
        self.assertLess(counted[0], 20)


class HistoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.db = Database(self.mktemp())
        self.addCleanup(self.db.close)

    def size(self) -> int:
        [size] = self.db.batch([lambda db: db.history_size()])
        return size  # type: ignore[return-value]

    def test_a_conversation_is_trimmed_when_one_percent_over_what_it_keeps(self) -> None:
        self.db.batch([lambda db: db.append(to_keep([_entry(float(i)) for i in range(202)]), 200)])
        self.assertEqual(self.size(), 202)  # 200 kept, and 1% over
        self.db.batch([lambda db: db.append(to_keep([_entry(202.0)]), 200)])
        self.assertEqual(self.size(), 200)
        [(page, more)] = self.db.batch([lambda db: db.page_after(ALL, "", 1, 0.0)])  # type: ignore[misc]
        self.assertEqual((page, more), ([_entry(3.0)], True))  # the oldest three went

    def test_an_expiry_takes_what_was_dropped_out_of_the_file_and_moves_what_is_kept(self) -> None:
        """A trim drops entries from the index at once; the hourly expiry then writes a row that holds
        more records of dropped entries than of kept ones again with the kept alone (the index told where
        each moved), and deletes a row that holds none kept: the dropped texts leave the file, and every
        read answers as before, also from an index built again from the rows."""
        said = [_direct(1000.0 + i, "alice,bob", f"secret {i}") if i % 2 else _entry(1000.0 + i, f"all {i}") for i in range(200)]
        self.db.batch([lambda db: db.append(to_keep([_direct(1.0, "carol,dave", "gone")]), 1000)])
        self.db.batch([lambda db: db.append(to_keep(said), 1000)])
        self.assertEqual(self.db.batch([lambda db: db.expire_history(500.0, 10)]), [181])  # carol's by age, 90 + 90
        kept = [(page, more) for page, more in (self.db.page_before(c, None, 100, 0.0) for c in ("alice,bob", ALL))]
        self.assertEqual(kept, [(said[181::2], False), (said[180::2], False)])
        rows = [entries for (entries,) in self.db._db.execute("SELECT entries FROM history_passes")]
        self.assertEqual(len(rows), 1)  # carol's row deleted, the other written again
        self.assertNotIn(b"secret 179", rows[0])
        self.assertNotIn(b"gone", rows[0])
        self.assertIn(b"secret 199", rows[0])
        for built_again in (False, True):
            if built_again:
                self.db._index = None
            self.assertEqual([self.db.page_before(c, None, 100, 0.0) for c in ("alice,bob", ALL)], kept)
            self.assertEqual(self.size(), 20)

    def test_an_expiry_of_an_earlier_time_brings_nothing_dropped_back(self) -> None:
        """An expiry asked for an earlier time than the last (--history-days raised at a restart, the
        clock set back) drops nothing more, and what was dropped stays dropped when the index is built
        again from the rows, though a row that holds more kept records keeps its bytes."""
        said = [_entry(1000.0 + i, f"all {i}") for i in range(10)]
        self.db.batch([lambda db: db.append(to_keep(said), 1000)])
        self.assertEqual(self.db.batch([lambda db: db.expire_history(1003.0, 1000)]), [3])
        self.assertEqual(self.db.batch([lambda db: db.expire_history(500.0, 1000)]), [0])
        self.db._index = None  # a restart
        self.assertEqual(self.size(), 7)
        self.assertEqual(self.db.page_before(ALL, None, 100, 0.0), (said[3:], False))

    def test_a_conversation_emptied_leaves_no_trace_of_its_members(self) -> None:
        direct = Stored(message_id_floor(1.0), 1.0, "alice,bob", "alice", Kind.UNICAST, ("bob",), "hi")
        self.db.batch([lambda db: db.append(to_keep([direct]), 10)])
        self.assertEqual(self.db.batch([lambda db: db.purge_history("ALICE", 0.5)]), [1])
        self.assertEqual(list(self.db.history_index().latest("bob", "")), [])
        self.db.batch([lambda db: db.append(to_keep([direct]), 10)])
        self.assertEqual(self.db.batch([lambda db: db.expire_history(2.0, 10)]), [1])
        self.assertEqual(list(self.db.history_index().latest("bob", "")), [])
        self.assertEqual(self.db._db.execute("SELECT count(*) FROM history_passes").fetchone(), (0,))

    def test_a_transaction_that_fails_leaves_the_index_as_the_file(self) -> None:
        kept = _direct(1.0, "alice,bob")
        self.db.batch([lambda db: db.append(to_keep([kept]), 10)])

        def fails(db: Database) -> None:
            db._db.execute("SELECT * FROM no_such_table")

        def raises(db: Database) -> None:
            raise ValueError("a bug")

        later = [_direct(2.0, "alice,carol"), _direct(3.0, "alice,bob"), _direct(4.0, "bob,dave")]
        index = self.db.history_index()
        self.assertRaises(StoreError, self.db.batch, [lambda db: db.append(to_keep(later), 10), fails])
        self.assertIs(self.db.history_index(), index)  # what the appends added taken out, not built again
        self.assertEqual(self.size(), 1)
        appended_and_purged = [
            lambda db: db.append(to_keep(later), 1),
            lambda db: db.purge_history("alice", 5.0),
            raises,
        ]
        self.assertRaises(ValueError, self.db.batch, appended_and_purged)
        self.assertEqual(self.db.latest("alice", 0.0, 10), [kept])
        self.assertEqual(self.db.latest("dave", 0.0, 10), [])
        self.assertEqual(self.db.page_before("alice,bob", None, 10, 0.0), ([kept], False))
        self.assertEqual(self.size(), 1)

    def test_a_purge_by_another_connection_is_seen_at_the_next_transaction(self) -> None:
        """The operator's ``history purge`` writes the file while the server runs: the server's index
        is built again at its next transaction; other writes (a reset) leave it as it is."""
        said = [_direct(1.0, "alice,bob"), _direct(2.0, "bob,carol"), _direct(3.0, "alice,bob")]
        self.db.batch([lambda db: db.append(to_keep(said), 10)])
        index = self.db.history_index()
        operator = Database(self.db.path)
        self.addCleanup(operator.close)
        operator.set_password_hash("bob", "h", 1.0)
        operator.reset("bob", "forgot", 2.0)
        self.assertEqual(self.size(), 3)
        self.assertIs(self.db.history_index(), index)  # not built again
        self.assertEqual(operator.purge_history("alice", 3.0), 2)
        self.assertEqual(self.size(), 1)
        [latest] = self.db.batch([lambda db: db.latest("bob", 0.0, 10)])
        self.assertEqual(latest, [said[1]])
        [page] = self.db.batch([lambda db: db.page_before("alice,bob", None, 10, 0.0)])
        self.assertEqual(page, ([], False))
        late, after = _direct(2.5, "alice,bob", "written late"), _direct(4.0, "alice,bob", "after")
        self.db.batch([lambda db: db.append(to_keep([late, after]), 10)])  # what alice sent before the purge: left out
        [page] = self.db.batch([lambda db: db.page_before("alice,bob", None, 10, 0.0)])
        self.assertEqual(page, ([after], False))

    def test_every_entry_is_read_oldest_first_for_a_migration(self) -> None:
        direct = Stored(message_id_floor(1.0), 1.0, "alice,bob", "Alice", Kind.UNICAST, ("bob",), "hi")
        self.db.batch([lambda db: db.append(to_keep([_entry(2.0, "all")]), 10), lambda db: db.append(to_keep([direct]), 10)])
        self.assertEqual(self.db.history(), [direct, _entry(2.0, "all")])

    def test_an_entry_appended_twice_is_kept_once_and_fails_no_other_write(self) -> None:
        message = Enqueue(("bob",), "alice", "unicast", ("bob",), "hi", 1.0, 10, 0.0, *ROOM, NO_ID)
        twice = [lambda db: db.append(to_keep([_entry(1.0)]), 10), lambda db: db.enqueue(message)] * 2
        self.assertEqual(self.db.batch(twice), [None, ("bob",), None, ("bob",)])
        self.assertEqual(self.size(), 1)

    def test_a_long_append_spans_rows_and_keeps_each_new_entry_once(self) -> None:
        """An append's records go into a row until it holds 256 or 32 KiB, then into the next: every entry
        kept once (those kept already left out), each read back whole, after the index is built again
        from the rows too; texts hold any character, the record's separator among them."""
        kept = [_entry(float(i), f"kept {i}") for i in (10, 240)]
        self.db.batch([lambda db: db.append(to_keep(kept), 1000)])
        texts = ["\x1f\x01 é ✓ \t" + "x" * (i % 7 * 1000) for i in range(600)]
        entries = [_entry(float(i), f"{i} {text}") for i, text in enumerate(texts)]
        self.db.batch([lambda db: db.append(to_keep(entries), 1000)])
        self.assertGreater(self.db._db.execute("SELECT count(*) FROM history_passes").fetchone()[0], 3)
        expected = sorted({e.id: e for e in [*entries, *kept]}.values(), key=lambda e: e.id)
        expected = [kept[0] if e.id == kept[0].id else kept[1] if e.id == kept[1].id else e for e in expected]
        for built_again in (False, True):
            if built_again:
                self.db._index = None
            self.assertEqual(self.size(), 600)
            [(all_, more)] = self.db.batch([lambda db: db.page_after(ALL, "", 1000, 0.0)])  # type: ignore[misc]
            self.assertEqual((all_, more), (expected, False))


class RandomHistoryTests(SynchronousTestCase):
    """The history against a model of it, at random: appends (an entry of them sent again now and then,
    a transaction that fails), trims, expiries (some asked for an earlier time than the last), purges by
    another connection and restarts; after each, every read answers as the model says."""

    NAMES = ("alice", "Bob", "carol", "dave", "BOB")
    TEXTS = ("hi", "\x1f\x01 \u00e9\t", "\u65e5\u672c" * 100, "x" * 4000, "\U0001f600" * 1000)

    def test_random_runs_read_as_their_model(self) -> None:
        for seed in range(3):
            self.run_once(random.Random(seed), self.mktemp())

    def message(self, rnd: random.Random, millis: int) -> Message:
        sender, text = rnd.choice(self.NAMES), rnd.choice(self.TEXTS)
        kind, recipients = rnd.choice(
            [
                (Kind.BROADCAST, ()),
                (Kind.ROOM, ("#Dev",)),
                (Kind.UNICAST, (rnd.choice(self.NAMES),)),
                (Kind.MULTICAST, tuple(rnd.sample(self.NAMES, 3))),
            ]
        )
        return Message(sender, kind, recipients, text, message_id_floor(millis / 1000), millis / 1000)

    def run_once(self, rnd: random.Random, path: str) -> None:
        db, model, purged, millis = Database(path), dict[str, Stored](), dict[str, float](), 1_000_000
        for _ in range(80):
            step = rnd.random()
            if step < 0.6:
                keep, sent = rnd.choice((5, 10**6)), []
                for _ in range(rnd.choice((1, 40, 300))):
                    millis += rnd.choice((1, 300, 5000, 100000))
                    sent.append(self.message(rnd, millis))
                again = [model[rnd.choice(list(model))]] if model and rnd.random() < 0.2 else []
                kept = to_keep(again)
                kept.extend(Kept.of(sent))
                jobs: list[Callable[[Database], object]] = [lambda db: db.append(kept, keep)]
                if rnd.random() < 0.2:
                    self.assertRaises(StoreError, db.batch, [*jobs, lambda db: db._db.execute("SELECT * FROM none")])
                    continue
                db.batch(jobs)
                new = [e for e in stored(sent) if purged.get(e.sender.lower(), -1.0) < e.at]
                model.update((e.id, e) for e in new)
                for conversation in {e.conversation for e in new}:
                    self.trim(model, conversation, keep, keep + max(keep // 100, 1))  # 1% over
            elif step < 0.75:
                oldest, keep = millis / 1000 - rnd.choice((0, 50, 500, 10**6)), rnd.choice((2, 10**6))
                db.batch([lambda db: db.expire_history(oldest, keep)])
                for id in [id for id in model if id < message_id_floor(oldest)]:
                    del model[id]
                for conversation in {e.conversation for e in model.values()}:
                    self.trim(model, conversation, keep, keep)
            elif step < 0.85:
                name, operator = rnd.choice(self.NAMES), Database(path)
                operator.purge_history(name, millis / 1000)
                operator.close()
                purged[name.lower()] = millis / 1000
                model = {id: e for id, e in model.items() if e.sender.lower() != name.lower()}
            else:
                db.close()
                db = Database(path)
            self.assertRead(db, model)
        db.close()

    def trim(self, model: dict[str, Stored], conversation: str, keep: int, most: int) -> None:
        """The model's ``conversation`` trimmed to its newest ``keep`` if it holds more than ``most``."""
        ids = sorted(id for id, e in model.items() if e.conversation == conversation)
        for id in ids[: len(ids) - keep] if len(ids) > most else ():
            del model[id]

    def assertRead(self, db: Database, model: dict[str, Stored]) -> None:
        kept = sorted(model.values(), key=lambda e: e.id)
        [history, size] = db.batch([lambda db: db.history(), lambda db: db.history_size()])
        self.assertEqual((history, size), (kept, len(kept)))
        for conversation in {e.conversation for e in kept}:
            entries = [e for e in kept if e.conversation == conversation]
            self.assertEqual(db.page_before(conversation, None, 10000, 0.0), (entries, False))
            middle = entries[len(entries) // 2].id
            self.assertEqual(db.page_after(conversation, middle, 5, 0.0)[0], [e for e in entries if e.id > middle][:5])
            for name in participants(conversation):
                others = [e for e in entries if e.id > middle and e.sender.lower() != name]
                self.assertEqual(db.unread(conversation, middle, name, 10000), len(others))
        for name in ("alice", "bob", "carol", "dave"):
            newest: dict[str, Stored] = {}
            for e in kept:
                if name in participants(e.conversation):
                    newest[e.conversation] = e
            self.assertEqual(db.latest(name, 0.0, 100), sorted(newest.values(), key=lambda e: e.id, reverse=True))


_APPENDER = """
import sys
from msgsvc.hub.contracts import Kind, Message
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.kept import Kept
from msgsvc.state.sqlite import Database
db = Database(sys.argv[1])
start = n = float(sys.argv[2])
while True:
    batch = Kept.of(Message("alice", Kind.BROADCAST, (), "hi", message_id_floor(n + i), n + i) for i in range(5))
    db.batch([lambda d: d.append(batch, 1_000_000)])
    n += 5
    print(int(n - start), flush=True)  # how many this process appended: on disk
"""


class KilledDuringAppendsTests(SynchronousTestCase):
    def test_keeps_every_group_commit_that_returned(self) -> None:
        """A process appending to the history in group commits of five is killed with SIGKILL, again and
        again: what it was told is on disk is there, and no group commit is there in part."""
        path = self.mktemp()
        Database(path).close()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        committed = 0
        for round_ in range(3):
            appender = subprocess.Popen(
                [sys.executable, "-c", _APPENDER, path, str(round_ * 1_000_000)],
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": root},
            )
            assert appender.stdout is not None
            first = appender.stdout.readline()
            time.sleep(0.05 + 0.03 * round_)  # some way into the loop (where exactly does not matter)
            appender.kill()
            appender.wait()
            committed += int((first + appender.stdout.read()).split()[-1])
            appender.stdout.close()
            db = Database(path)  # opens: the file is not broken
            try:
                kept = len(db.history())
                size = db.history_size()
            finally:
                db.close()
            self.assertEqual(size, kept)  # the index holds what the rows do
            self.assertEqual(kept % 5, 0)
            self.assertGreaterEqual(kept, committed)
            self.assertGreater(committed, 0)


def admin(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m msgsvc.admin`` as the operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "msgsvc.admin", *args],
        env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )


class AdminRoomsTests(SynchronousTestCase):
    """``msgsvc.admin rooms list|delete`` on the SQLite file."""

    def setUp(self) -> None:
        self.path = self.mktemp()
        db = Database(self.path)
        dev = RoomRecord("#Dev", 10.0, "Alice", "Ship it", "Alice", 11.0, "imnt", "sesame", 20)
        dev.members = {"alice": Member("Alice", op=True, since=10.0), "carol": Member("carol", since=12.0)}
        dev.members["bob"] = Member("bob", voice=True, since=13.0)
        dev.bans = {"mallory!*@*": Ban("mallory!*@*", "Alice", 14.0), "eve!*@*": Ban("Eve!*@*", "Alice", 15.0)}
        kept = RoomRecord("#lunch", 20.0, "dave")  # no member left: its founder is protected
        db.batch([lambda d: d.create_room(dev, 50), lambda d: d.create_room(kept, 50)])
        db.close()

    def test_rooms_list_shows_each_room_with_its_modes_members_operators_bans_and_topic(self) -> None:
        done = admin("--db", self.path, "rooms", "list")
        self.assertEqual(
            (done.returncode, done.stdout, done.stderr),
            (
                0,
                "#Dev\t+iklmnt sesame 20\t@Alice +bob carol\tEve!*@* mallory!*@*\tShip it\n"
                "#lunch\t+nt\t-\t-\t\n",
                "",
            ),
        )

    def test_rooms_delete_drops_a_room_with_its_members_and_bans(self) -> None:
        done = admin("--db", self.path, "rooms", "delete", "#DEV", "--reason", "spam")
        self.assertEqual(
            (done.returncode, done.stdout),
            (0, f"#Dev deleted (spam); a server running on {self.path} keeps it until it restarts\n"),
        )
        db = Database(self.path)
        self.addCleanup(db.close)
        self.assertEqual([r.name for r in db.rooms()], ["#lunch"])
        self.assertEqual(db._db.execute("SELECT count(*) FROM room_members").fetchone(), (0,))
        self.assertEqual(db._db.execute("SELECT count(*) FROM room_bans").fetchone(), (0,))

    def test_rooms_delete_refuses_a_room_that_is_not_and_a_missing_reason(self) -> None:
        missing = admin("--db", self.path, "rooms", "delete", "#ops", "--reason", "spam")
        self.assertEqual((missing.returncode, missing.stderr), (1, "msgsvc.admin: there is no room #ops\n"))
        blank = admin("--db", self.path, "rooms", "delete", "#dev", "--reason", " ")
        self.assertEqual((blank.returncode, blank.stderr), (2, "msgsvc.admin: give a reason\n"))
        self.assertEqual(admin("--db", self.path, "rooms", "list").stdout.count("\n"), 2)


class IndexMemoryTests(SynchronousTestCase):
    """attack36 F2 (issue 30, schema 12): what one sender's messages to new conversations add to the
    history's index in memory, as docs/security.rst and docs/performance.rst ("The history's index in
    memory") state it: under 270 bytes a two-person conversation and under 640 bytes one of 33
    participants (a multicast to 32 names), with 3-letter names: its key, its entries' bytearray, a place in
    each participant's listing (it was 1,378 bytes, a dict entry a participant).  How many one sender
    makes is bounded by the hub (tests.test_hub_history).  Measured with tracemalloc on Database.append
    (SQLite's own cache apart)."""

    def each(self, size: int, pool: int) -> float:
        """The bytes a new conversation of ``size`` participants among ``pool`` names costs: what
        tracemalloc sees the appends add (the conversation's key among it: the store makes it).  The
        messages are made before it looks, and the interpreter's table of interned strings (which every
        module and test fills, and which grows by doubling: 1.9 MB at once, seen when run after
        tests.test_cluster and others) is not touched while it does."""
        db = Database(self.mktemp())
        self.addCleanup(db.close)
        db.history_index()
        names = [f"p{i:03d}" for i in range(pool)]
        rnd = random.Random(36)
        groups = list(dict.fromkeys(tuple(sorted(rnd.sample(names, size))) for _ in range(1000)))  # each new
        sent = [
            Kept.of([Message(sender, Kind.MULTICAST, tuple(group), "x", message_id_floor(1.0 + n), 1.0 + n)])
            for n, (sender, *group) in enumerate(groups)
        ]
        gc.collect()
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = tracemalloc.get_traced_memory()[0]
        for one in sent:
            db.batch([partial(Database.append, kept=one, keep=10_000)])
        gc.collect()
        added = tracemalloc.get_traced_memory()[0] - before
        return added / len(groups)

    def test_a_two_person_conversation_costs_what_the_docs_say(self) -> None:
        each = self.each(2, 100)
        self.assertLessEqual(each, 270, f"{each:.0f} bytes a conversation")

    def test_a_senders_multicasts_to_new_groups_cost_what_the_docs_say_a_conversation_costs(self) -> None:
        each = self.each(33, 40)
        self.assertLessEqual(each, 640, f"{each:.0f} bytes a conversation")
