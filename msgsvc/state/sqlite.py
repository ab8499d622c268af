"""The state in SQLite, in process: the username log, accounts, offline queue, history and rooms.

:class:`Database` is plain synchronous SQLite.  :class:`SqliteStore` is the
service the server runs: it loads the log at start-up and then does every
read and write on its own thread, so an fsync never stalls the reactor.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from msgsvc.auth.store import Reset
from msgsvc.hub.contracts import (
    ROOM_INVITES_MAX,
    Ban,
    Enqueue,
    Joining,
    Kind,
    Member,
    Message,
    ModeChange,
    ModesKept,
    Queued,
    Refusal,
    RoomRecord,
    Stored,
    UserRecord,
    changed_modes,
    topic_stamp,
)
from msgsvc.hub.ids import message_id_floor, message_id_time
from msgsvc.hub.kept import Kept
from msgsvc.hub.rules import admission, bans_overflow, invites_anew, mask_key, room_key, username_key
from msgsvc.state import Snapshot, StoreError
from msgsvc.state.historyindex import (
    ABOVE,
    PASS_ENTRIES,
    HistoryIndex,
    Place,
    Records,
    headers,
    rewritten,
    stored,
)

SCHEMA_VERSION = 15

_T = TypeVar("_T")

# Each schema version's tables, made on top of the previous version's in one transaction.
_SCHEMA: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE IF NOT EXISTS users ("
        " key TEXT PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " first_seen REAL NOT NULL,"
        " last_seen REAL NOT NULL)",
    ),
    2: (
        # A protected name's password hash (argon2id, in its PHC string form).
        "CREATE TABLE accounts (key TEXT PRIMARY KEY, hash TEXT NOT NULL, changed REAL NOT NULL)",
        # Every removal of a name's protection by the operator, and why.
        "CREATE TABLE resets ("
        " id INTEGER PRIMARY KEY,"
        " key TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " at REAL NOT NULL,"
        " reason TEXT NOT NULL)",
    ),
    3: (
        # Messages to protected names that were away, until their owner acknowledges them.
        "CREATE TABLE queue ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " recipient TEXT NOT NULL,"
        " sender TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " recipients TEXT NOT NULL,"
        " text TEXT NOT NULL,"
        " sent_at REAL NOT NULL)",
        "CREATE INDEX queue_by_recipient ON queue (recipient, id)",
    ),
    4: (
        # How many messages wait from each sender (by name key; names are ASCII, so lower() is the
        # key), and in all: kept by the triggers whatever removes a message (acknowledged, expired,
        # reset, its recipient removed), read by enqueue() for the sender's quota and the total.
        "CREATE TABLE queue_senders (sender TEXT PRIMARY KEY, waiting INTEGER NOT NULL)",
        "INSERT INTO queue_senders SELECT lower(sender), count(*) FROM queue GROUP BY lower(sender)",
        "CREATE TABLE queue_total (waiting INTEGER NOT NULL)",
        "INSERT INTO queue_total SELECT count(*) FROM queue",
        "CREATE TRIGGER queue_added AFTER INSERT ON queue BEGIN"
        " INSERT INTO queue_senders VALUES (lower(new.sender), 1)"
        " ON CONFLICT (sender) DO UPDATE SET waiting = waiting + 1;"
        " UPDATE queue_total SET waiting = waiting + 1;"
        " END",
        "CREATE TRIGGER queue_removed AFTER DELETE ON queue BEGIN"
        " UPDATE queue_senders SET waiting = waiting - 1 WHERE sender = lower(old.sender);"
        " DELETE FROM queue_senders WHERE sender = lower(old.sender) AND waiting <= 0;"
        " UPDATE queue_total SET waiting = waiting - 1;"
        " END",
        # A reset that removed the name itself from the log (the operator's doing), not only its password.
        "ALTER TABLE resets ADD COLUMN removed INTEGER NOT NULL DEFAULT 0",
    ),
    5: (
        # Every message kept, by id (msgsvc.hub.ids.MessageIds: time-ordered) and conversation.
        "CREATE TABLE history ("
        " id TEXT PRIMARY KEY,"
        " conversation TEXT NOT NULL,"
        " at REAL NOT NULL,"
        " sender TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " recipients TEXT NOT NULL,"
        " text TEXT NOT NULL) WITHOUT ROWID",
        "CREATE INDEX history_by_conversation ON history (conversation, id)",
        # How many entries each conversation holds, kept by the triggers: for trimming and the size.
        "CREATE TABLE history_counts (conversation TEXT PRIMARY KEY, entries INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TRIGGER history_added AFTER INSERT ON history BEGIN"
        " INSERT INTO history_counts VALUES (new.conversation, 1)"
        " ON CONFLICT (conversation) DO UPDATE SET entries = entries + 1;"
        " END",
        "CREATE TRIGGER history_removed AFTER DELETE ON history BEGIN"
        " UPDATE history_counts SET entries = entries - 1 WHERE conversation = old.conversation;"
        " DELETE FROM history_counts WHERE conversation = old.conversation AND entries <= 0;"
        " END",
        # The direct conversations each name key takes part in (for latest()).
        "CREATE TABLE history_members (member TEXT NOT NULL, conversation TEXT NOT NULL,"
        " PRIMARY KEY (member, conversation)) WITHOUT ROWID",
        # When the name last gained a password; before version 5 only when it last changed was kept:
        # later than the truth, so it hides more history, never less.
        "ALTER TABLE accounts ADD COLUMN protected_since REAL",
        "UPDATE accounts SET protected_since = changed",
        # The message's id (Message.id); "" for one queued before version 5.
        "ALTER TABLE queue ADD COLUMN message_id TEXT NOT NULL DEFAULT ''",
    ),
    6: (
        # How far each name key has read each conversation (HistoryStore.set_read): a message id.
        "CREATE TABLE reads (key TEXT NOT NULL, conversation TEXT NOT NULL, position TEXT NOT NULL,"
        " PRIMARY KEY (key, conversation)) WITHOUT ROWID",
    ),
    7: (
        # Each conversation (its key, as Stored.conversation) numbered, with its count of entries and its
        # newest id: the history's index holds (number, id), a short key, and a new conversation's
        # entries go at its end; Database.append keeps the count and the newest once per conversation.
        "CREATE TABLE conversations (key TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE,"
        " entries INTEGER NOT NULL, newest TEXT NOT NULL) WITHOUT ROWID",
        "INSERT INTO conversations SELECT conversation, row_number() OVER (ORDER BY conversation), entries,"
        " (SELECT max(id) FROM history WHERE conversation = c.conversation) FROM history_counts AS c",
        "CREATE TABLE history6 ("
        " id TEXT PRIMARY KEY,"
        " conversation INTEGER NOT NULL,"
        " at REAL NOT NULL,"
        " sender TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " recipients TEXT NOT NULL,"
        " text TEXT NOT NULL) WITHOUT ROWID",
        "INSERT INTO history6 SELECT h.id, c.id, at, sender, kind, recipients, text"
        " FROM history AS h JOIN conversations AS c ON c.key = h.conversation",
        "DROP TABLE history",
        "DROP TABLE history_counts",
        "ALTER TABLE history6 RENAME TO history",
        "CREATE INDEX history_by_conversation ON history (conversation, id)",
        "CREATE TRIGGER history_removed AFTER DELETE ON history BEGIN"
        " UPDATE conversations SET entries = entries - 1 WHERE id = old.conversation;"
        " END",
        # The direct conversations each name key takes part in, by their newest id: latest() reads only
        # the newest ``limit`` of them.
        "CREATE TABLE history_members6 (member TEXT NOT NULL, newest TEXT NOT NULL,"
        " conversation INTEGER NOT NULL, PRIMARY KEY (member, newest, conversation)) WITHOUT ROWID",
        "INSERT INTO history_members6 SELECT member, c.newest, c.id"
        " FROM history_members AS m JOIN conversations AS c ON c.key = m.conversation",
        "DROP TABLE history_members",
        "ALTER TABLE history_members6 RENAME TO history_members",
    ),
    8: (
        # The rooms (msgsvc.hub.contracts.RoomStore) by room key: their settings, members and bans (by
        # name key); a name's memberships found by its key, for a reset or a removal.
        "CREATE TABLE rooms (key TEXT PRIMARY KEY, name TEXT NOT NULL, created REAL NOT NULL, founder TEXT,"
        " topic TEXT NOT NULL, topic_by TEXT, topic_at REAL, modes TEXT NOT NULL, password TEXT,"
        " max_members INTEGER) WITHOUT ROWID",
        "CREATE TABLE room_members (room TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,"
        " op INTEGER NOT NULL, voice INTEGER NOT NULL, since REAL NOT NULL,"
        " PRIMARY KEY (room, key)) WITHOUT ROWID",
        "CREATE INDEX room_members_by_name ON room_members (key)",
        "CREATE TABLE room_bans (room TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL, by TEXT NOT NULL,"
        " at REAL NOT NULL, PRIMARY KEY (room, key)) WITHOUT ROWID",
    ),
    9: (
        # A ban is a mask nick!user@host (msgsvc.hub.rules.ban_mask) by its key (mask_key): a name banned
        # before is the mask name!*@* (a name key is its ASCII fold: the username rules are ASCII).
        "CREATE TABLE room_bans9 (room TEXT NOT NULL, key TEXT NOT NULL, mask TEXT NOT NULL,"
        " by TEXT NOT NULL, at REAL NOT NULL, PRIMARY KEY (room, key)) WITHOUT ROWID",
        "INSERT INTO room_bans9 SELECT room, key || '!*@*', name || '!*@*', by, at FROM room_bans",
        "DROP TABLE room_bans",
        "ALTER TABLE room_bans9 RENAME TO room_bans",
    ),
    10: (
        # Readiness's probe (Database.ready): one row, whose blob each probe writes anew.
        "CREATE TABLE ready (probe BLOB)",
        "INSERT INTO ready VALUES (NULL)",
    ),
    11: (
        # The version of a room's modes, key and limit, and of each member's op and voice: what orders
        # changes of them made at once (RoomStore.set_modes).
        "ALTER TABLE rooms ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE room_members ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
    ),
    12: (
        # The history is one B-tree in id order (ids grow with time: an entry goes at its end), each
        # entry with its conversation's key; each conversation's entries, count and newest and each
        # name's conversations are in memory (msgsvc.state.historyindex), built from it at start-up.
        "CREATE TABLE history12 ("
        " id TEXT PRIMARY KEY,"
        " at REAL NOT NULL,"
        " conversation TEXT NOT NULL,"
        " sender TEXT NOT NULL,"
        " kind TEXT NOT NULL,"
        " recipients TEXT NOT NULL,"
        " text TEXT NOT NULL) WITHOUT ROWID",
        "INSERT INTO history12 SELECT h.id, h.at, c.key, h.sender, h.kind, h.recipients, h.text"
        " FROM history AS h JOIN conversations AS c ON c.id = h.conversation ORDER BY h.id",
        "DROP TABLE history",
        "DROP TABLE history_members",
        "DROP TABLE conversations",
        "ALTER TABLE history12 RENAME TO history",
        # How many purges the history has had (Database.purge_history): how a server on the file learns
        # of the operator's (msgsvc.admin, another process), whose entries its index must drop.
        "CREATE TABLE history_purges (count INTEGER NOT NULL)",
        "INSERT INTO history_purges VALUES (0)",
    ),
    13: (
        # When each name key's history was last purged (Database.purge_history): an append leaves out an
        # entry it sent before then, written late (the hub's retry, a slow append).
        "CREATE TABLE history_purged (key TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID",
    ),
    14: (
        # Which of a name's memberships of a room a member is (Member.joined): a change of its op or voice
        # asked before it left and entered again is not made on the new one (RoomStore.set_modes).
        "ALTER TABLE room_members ADD COLUMN joined INTEGER NOT NULL DEFAULT 0",
    ),
    15: (
        # The history by the pass: a row holds the records of the entries one append kept (at most
        # PASS_ENTRIES of them, PASS_BYTES), one after another, their sizes (each 4 bytes, the machine's
        # order) and its newest id; the index in memory says where each entry's record is
        # (msgsvc.state.historyindex, which makes the records: Records).
        # The rows of version 14 are copied into such rows by _UPGRADES[15].
        "CREATE TABLE history_passes (id INTEGER PRIMARY KEY, newest TEXT NOT NULL, sizes BLOB NOT NULL,"
        " entries BLOB NOT NULL)",
        # Below which id a conversation's entries were dropped (its oldest past --history-max; '': every
        # conversation's, past --history-days): their records may stay in rows that hold others, and are
        # left out when the index is built.
        "CREATE TABLE history_floors (conversation TEXT PRIMARY KEY, floor TEXT NOT NULL) WITHOUT ROWID",
    ),
}

#: The longest the history's entries wait for a transaction (sooner if anything else is written or read):
#: what a kill -9 can lose of the history of messages delivered at once (docs/performance.rst).
HISTORY_INTERVAL = 1.0

#: The bytes readiness's probe writes (:meth:`Database.ready`): past one page of 4 KiB, so it needs pages.
READY_PROBE = 8192


_IDS = "(SELECT value FROM json_each(?))"  # the ids in a JSON array: each row found by its key


class Database:
    """The username log, accounts, offline queue and history in an SQLite file (WAL, ``synchronous=FULL``).

    Every write is one transaction, durable once the method returns: not
    even a power cut loses it, and a process killed in the middle leaves
    the state from before it, never half of it.  The history is a row of
    records a pass (an append); its index (each conversation's entries and
    where each is, each name's conversations) is in memory
    (:meth:`history_index`), built from the rows.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the username log {path!r}: {e}") from None
        self._data_version = -1  # what PRAGMA data_version said when resets_after() last looked
        self._index: HistoryIndex | None = None  # built when first needed: history_index()
        self._index_purges = -1  # the history's purges it knows of
        self._purged: dict[str, float] = {}  # when each name key was last purged, read with the index
        self._opened: dict[str, dict[str, float]] = {}  # each name key's groups opened: when (open_group)
        self._opened_since = 0.0  # what open_group was last asked since: older openings are forgotten
        self._next_row = 1  # the id of the next pass row (known with the index)
        self._added: list[tuple[Records, bytearray]] | None = None  # this transaction's appends, while undoable
        try:
            self._setup()
        except sqlite3.Error as e:
            self._db.close()
            raise StoreError(f"the username log {path!r} is unusable: {e}") from None

    def _setup(self) -> None:
        db = self._db
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise sqlite3.DatabaseError(f"could not switch to WAL journaling (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        # Up to 64 MiB of pages in memory (2 MiB by default): a second's history touches thousands of
        # pages, and each one read again or written twice in a transaction costs CPU the server shares.
        db.execute("PRAGMA cache_size=-65536")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version}; this msgsvc reads {SCHEMA_VERSION}")
        if version < SCHEMA_VERSION:
            self._migrate(version)
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        # The rooms' invitations: this connection's own (a TEMP table), written in the rooms' transactions
        # and gone with the server, as an IRC server's are (RoomStore.invite).
        db.execute(
            "CREATE TEMP TABLE room_invites (room TEXT, key TEXT, op INTEGER, at REAL, PRIMARY KEY (room, key))"
        )
        db.execute("CREATE INDEX temp.room_invites_by_name ON room_invites (key)")

    def _migrate(self, version: int) -> None:
        """Bring a file at schema ``version`` (0: new) to :data:`SCHEMA_VERSION`, all or nothing."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _SCHEMA[step]:
                    self._db.execute(statement)
                if step in _UPGRADES:
                    _UPGRADES[step](self)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def load(self) -> list[UserRecord]:
        """Every name ever registered, oldest first, marked if protected."""
        rows = self._db.execute(
            "SELECT name, first_seen, last_seen, accounts.key IS NOT NULL FROM users"
            " LEFT JOIN accounts USING (key) ORDER BY first_seen, key"
        ).fetchall()
        return [UserRecord(name, first, last, bool(protected)) for name, first, last, protected in rows]

    def record_seen(self, seen: Sequence[tuple[str, float]]) -> None:
        """Add each name (first seen then) or move its last-seen time, in one transaction.

        Durable on return: one fsync for the lot, however many there are.
        """
        self.batch([lambda db: db.record_seen_in_batch(seen)])

    def record_seen_in_batch(self, seen: Sequence[tuple[str, float]]) -> None:
        """:meth:`record_seen`, within :meth:`batch`."""
        self._db.executemany(
            "INSERT INTO users (key, name, first_seen, last_seen) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
            [(username_key(name), name, when, when) for name, when in seen],
        )

    def batch(self, work: Sequence[Callable[[Database], object]]) -> list[object]:
        """Run each of ``work`` in one transaction, in order; their results.  One fsync for the lot.

        The history's index follows: if the transaction fails, what its appends added is taken out (or,
        if anything else changed it, it is built again when next needed); it is built again after a purge
        by another connection (the operator's ``python -m msgsvc.admin history purge``, while the server
        runs)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if self._index is not None and self._purges() != self._index_purges:
                    self._index = None
                self._added = []
                results = [job(self) for job in work]
        except BaseException as e:
            self._taken_back()
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot write to {self.path!r}: {e}") from None
            raise
        finally:
            self._added = None
        return results

    def _taken_back(self) -> None:
        """After a failed transaction: the index without what its appends added, or (if anything else
        changed it: a trim, an expiry, a purge) none, built again from the rows when next needed."""
        if self._index is None or self._added is None:
            self._index = None
            return
        for kept, added in reversed(self._added):
            for conversation, id, took in zip(kept.conversations, kept.ids, added):
                if took:
                    self._index.drop(conversation, (id,))

    def history_index(self) -> HistoryIndex:
        """The history's index, built from the history (a scan of it) if it is not yet (or no longer);
        when each name was purged is read again with it."""
        if self._index is None:
            self._index_purges = self._purges()
            purged = self._db.execute("SELECT key, at FROM history_purged")
            self._purged = {str(key): float(at) for key, at in purged}
            floors = dict(self._db.execute("SELECT conversation, floor FROM history_floors").fetchall())
            everyone = floors.pop("", "")
            index, self._next_row = HistoryIndex(), 1
            for row, sizes, entries in self._db.execute("SELECT id, sizes, entries FROM history_passes ORDER BY id"):
                for offset, size, conversation, id, sender in headers(sizes, entries):
                    if id >= everyone and id >= floors.get(conversation, ""):
                        index.add(conversation, id, sender, row, offset, size)
                self._next_row = row + 1
            self._index = index
        return self._index

    def _purges(self) -> int:
        return int(self._db.execute("SELECT count FROM history_purges").fetchone()[0])

    def ready(self) -> str | None:
        """Readiness's probe (call within batch()): write :data:`READY_PROBE` bytes (or one more: a value of
        the same size is overwritten in place) anew into ``ready``'s one row, which takes pages besides those
        the row holds (SQLite writes the new value before it frees the old), so it fails where the file
        cannot grow and no page is free; None, else why.  In its own savepoint: the rest of the
        transaction is kept either way."""
        self._db.execute("SAVEPOINT ready")
        try:
            self._db.execute(
                "UPDATE ready SET probe = zeroblob(CASE length(probe) WHEN ?1 THEN ?1 + 1 ELSE ?1 END)",
                (READY_PROBE,),
            )
        except sqlite3.Error as e:
            self._db.execute("ROLLBACK TO ready")
            return str(e)
        finally:
            self._db.execute("RELEASE ready")
        return None

    # -- the offline queue (call these within batch()) ------------------------

    def enqueue(self, message: Enqueue) -> tuple[str, ...]:
        """Queue ``message`` for each recipient with room (expired ones do not count), while the sender's
        quota and the total have room (expired ones count until :meth:`expire`); those it was queued for."""
        queued: list[str] = []
        (from_sender,) = self._db.execute(
            "SELECT coalesce(sum(waiting), 0) FROM queue_senders WHERE sender = ?",
            (username_key(message.sender),),
        ).fetchone()
        (total,) = self._db.execute("SELECT waiting FROM queue_total").fetchone()
        for key in message.recipients:
            if min(message.sender_limit - from_sender, message.total_limit - total) <= len(queued):
                break
            # Counted no further than the limit (expired ones left for expire() to drop):
            # the cost of a message does not grow with the queue.
            (waiting,) = self._db.execute(
                "SELECT count(*) FROM (SELECT 1 FROM queue WHERE recipient = ? AND sent_at >= ? LIMIT ?)",
                (key, message.oldest, message.limit),
            ).fetchone()
            if waiting < message.limit:
                self._db.execute(
                    "INSERT INTO queue (recipient, sender, kind, recipients, text, sent_at, message_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        message.sender,
                        message.kind,
                        ",".join(message.group),
                        message.text,
                        message.sent_at,
                        message.message_id,
                    ),
                )
                queued.append(key)
        return tuple(queued)

    def backlog(self, name: str, after: int, oldest: float, limit: int) -> tuple[list[Queued], int]:
        """Up to ``limit`` unexpired messages waiting for ``name`` after id ``after``, oldest first;
        and how many wait after those."""
        key = username_key(name)
        rows = self._db.execute(
            "SELECT id, sender, kind, recipients, text, sent_at, message_id FROM queue"
            " WHERE recipient = ? AND id > ? AND sent_at >= ? ORDER BY id LIMIT ?",
            (key, after, oldest, limit),
        ).fetchall()
        last = rows[-1][0] if rows else after
        (more,) = self._db.execute(
            "SELECT count(*) FROM queue WHERE recipient = ? AND id > ? AND sent_at >= ?", (key, last, oldest)
        ).fetchone()
        backlog = [
            Queued(i, sender, kind, tuple(group.split(",")), text, at, message_id)
            for i, sender, kind, group, text, at, message_id in rows
        ]
        return backlog, int(more)

    def acknowledge(self, name: str, up_to: int) -> int:
        """Remove the messages for ``name`` up to id ``up_to``; how many are left."""
        key = username_key(name)
        self._db.execute("DELETE FROM queue WHERE recipient = ? AND id <= ?", (key, up_to))
        return int(self._db.execute("SELECT count(*) FROM queue WHERE recipient = ?", (key,)).fetchone()[0])

    def expire(self, oldest: float) -> dict[str, int]:
        """Remove the messages sent before ``oldest``; how many wait for each recipient now."""
        self._db.execute("DELETE FROM queue WHERE sent_at < ?", (oldest,))
        rows = self._db.execute("SELECT recipient, count(*) FROM queue GROUP BY recipient").fetchall()
        return {str(key): int(count) for key, count in rows}

    # -- the history (call these within batch()) -----------------------------------

    def append(self, kept: Kept, keep: int) -> None:
        """Keep the messages of ``kept`` (:meth:`append_all` of it alone)."""
        self.append_all([kept], keep)

    def append_all(self, kept: Sequence[Kept], keep: int) -> None:
        """Keep the messages of each of ``kept``, their records (:meth:`Records.of`, made here: on the
        worker thread) in pass rows (:meth:`HistoryIndex.take`); trim each of their conversations to its
        newest ``keep`` once it is 1% (at least one entry) over, so that a trim is one floor written per
        hundred appends, not one each.  An entry kept already is left as it is: it must not fail the
        queue's writes in the same transaction.  An entry whose sender was purged at or after its time is
        left out (written late: a retry).  What the index took is noted (:attr:`_added`), so that a failed
        transaction takes it back."""
        index = self.history_index()
        appends = [Records.of(each) for each in kept]
        if self._purged:
            appends = [self._unpurged(records) for records in appends]
        taken = index.take(appends, self._next_row, keep + max(keep // 100, 1))
        if self._added is not None:
            self._added += zip(appends, taken.added)
        self._db.executemany("INSERT INTO history_passes VALUES (?, ?, ?, ?)", taken.rows)
        self._next_row += len(taken.rows)
        for conversation in taken.over:
            self._trim(conversation, index.count(conversation) - keep)

    def _unpurged(self, kept: Records) -> Records:
        """``kept`` without the entries whose sender was purged at or after their time."""
        purged = self._purged
        senders = enumerate(zip(kept.ids, kept.senders))
        left = [i for i, (id, by) in senders if purged.get(username_key(by), -1.0) < message_id_time(id)]
        return kept.select(left)

    def _trim(self, conversation: str, over: int) -> int:
        """Drop the ``over`` oldest entries of ``conversation``, and keep below which id they are (their
        records leave the file at the next :meth:`expire_history`); how many."""
        index = self.history_index()
        dropped = index.drop_oldest(conversation, over)
        self._added = None  # dropped: a failed transaction builds the index again
        oldest = index.since(conversation, "", 1)
        if dropped and oldest:
            self._db.execute(
                "INSERT INTO history_floors VALUES (?, ?) ON CONFLICT (conversation) DO UPDATE SET floor = excluded.floor",
                (conversation, oldest[0][0]),
            )
        return dropped

    def page_before(
        self, conversation: str, before: str | None, limit: int, since: float
    ) -> tuple[list[Stored], bool]:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.page_before`: the index's newest entries below
        ``before``, their records read, until ``limit`` + 1 are at or after ``since``."""
        index, lowest = self.history_index(), message_id_floor(since)
        bound = ABOVE if before is None else before
        found: list[Stored] = []
        while len(found) <= limit:
            places = index.below(conversation, bound, lowest, limit + 1 - len(found))
            if not places:
                break
            found[:0] = [e for e in self._entries(places) if e.at >= since]
            bound = places[0][0]
        return found[max(len(found) - limit, 0) :], len(found) > limit

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> tuple[list[Stored], bool]:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.page_after`."""
        index = self.history_index()
        lowest = max(_just_after(after), message_id_floor(since))
        found: list[Stored] = []
        while len(found) <= limit:
            places = index.since(conversation, lowest, limit + 1 - len(found))
            if not places:
                break
            found += [e for e in self._entries(places) if e.at >= since]
            lowest = _just_after(places[-1][0])
        return found[:limit], len(found) > limit

    def latest(self, member: str, since: float, limit: int) -> list[Stored]:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.latest`: the member's conversations newest
        first, from the index, ``limit`` of them read."""
        newest = self.history_index().latest(username_key(member), message_id_floor(since))
        found: list[Stored] = []
        while len(found) < limit:
            places = list(islice(newest, limit - len(found)))
            if not places:
                break
            found += [e for e in self._entries(places) if e.at >= since]
        return found

    def _entries(self, places: Sequence[Place]) -> list[Stored]:
        """The entries kept at those places, in that order: each pass row read once."""
        rows = {row for _, row, _, _ in places}
        read = self._db.execute(f"SELECT id, entries FROM history_passes WHERE id IN {_IDS}", (json.dumps(list(rows)),))
        kept: dict[int, bytes] = dict(read.fetchall())
        found = []
        for id, row, offset, size in places:  # a record not where the index says (a row purged meanwhile) left out
            record = kept.get(row, b"")[offset : offset + size]
            if record[:26] == id.encode():
                found.append(stored(record))
        return found

    def history(self) -> list[Stored]:
        """Every entry kept, oldest first (what msgsvc.state.migrate copies)."""
        index, found = self.history_index(), []
        for row, sizes, entries in self._db.execute("SELECT id, sizes, entries FROM history_passes"):
            for offset, size, conversation, id, _ in headers(sizes, entries):
                if index.kept_at(conversation, id, row, offset):
                    found.append(stored(entries[offset : offset + size]))
        return sorted(found, key=lambda entry: entry.id)

    def expire_history(self, oldest: float, keep: int) -> int:
        """Drop the entries sent before ``oldest`` and each conversation's past its newest ``keep``; how
        many (a look at each conversation).  Then the rows, so that what was dropped leaves the file: a
        row no entry is kept in any more is deleted, and one that holds more records of entries dropped
        than kept is written again with those kept alone, the index told where each moved (a look at
        every entry; each such row read and written).  The names that opened no group since what
        :meth:`open_group` was last asked are forgotten."""
        since = self._opened_since
        self._opened = {k: o for k, o in self._opened.items() if any(when >= since for when in o.values())}
        index, floor = self.history_index(), message_id_floor(oldest)
        dropped = index.drop_below(floor)
        self._added = None
        dropped += sum(self._trim(conversation, over) for conversation, over in index.over(keep))
        self._db.execute(
            "INSERT INTO history_floors VALUES ('', ?)"
            " ON CONFLICT (conversation) DO UPDATE SET floor = max(floor, excluded.floor)",
            (floor,),
        )  # never lowered (asked for an earlier time: --history-days raised, the clock set back)
        self._db.execute(
            "DELETE FROM history_floors WHERE floor < (SELECT floor FROM history_floors WHERE conversation = '')"
        )
        live = index.rows()
        rows = self._db.execute("SELECT id, sizes FROM history_passes").fetchall()
        sparse = [row for row, sizes in rows if 2 * live.get(row, 0) < len(sizes) // 4]
        for row in sparse:
            if not live.get(row):
                self._db.execute("DELETE FROM history_passes WHERE id = ?", (row,))
                continue
            sizes, entries = self._db.execute("SELECT sizes, entries FROM history_passes WHERE id = ?", (row,)).fetchone()
            left, records, newest, moved, _ = rewritten(
                sizes, entries, lambda at, conversation, id, _: index.kept_at(conversation, id, row, at)
            )
            for conversation, id, offset in moved:
                index.moved(conversation, id, row, offset)
            self._db.execute(
                "UPDATE history_passes SET sizes = ?, entries = ?, newest = ? WHERE id = ?",
                (left, records, newest, row),
            )
        return dropped

    def purge_history(self, sender: str, at: float) -> int:
        """Drop every entry ``sender`` sent; how many (a scan of the whole history: the operator's): each
        row that holds one written again without it, the index built again when next needed (not by this
        scan, which holds the file's write lock: another process's server waits for it).  A row that
        does not hold the name between two separators is passed over unread (a search in C); an entry is
        counted if no floor dropped it.  Kept: that it was purged ``at``, so that no later append keeps
        what it sent before."""
        key, count = username_key(sender), 0
        named = f"\x1f{key}\x1f".encode()
        floors = dict(self._db.execute("SELECT conversation, floor FROM history_floors").fetchall())
        everyone = floors.pop("", "")
        rows: list[tuple[bytes, bytes, str, int]] = []  # each rewritten
        for row, sizes, entries in self._db.execute("SELECT id, sizes, entries FROM history_passes"):
            if named not in entries.lower():  # names are ASCII: lower() is their key
                continue
            left, records, newest, _, dropped = rewritten(
                sizes, entries, lambda offset, conversation, id, by: username_key(by) != key
            )
            count += sum(id >= everyone and id >= floors.get(c, "") for c, id in dropped)
            if dropped:
                rows.append((left, records, newest, row))
        self._db.executemany(
            "UPDATE history_passes SET sizes = ?, entries = ?, newest = ? WHERE id = ?", rows
        )
        self._db.execute("DELETE FROM history_passes WHERE sizes = x''")
        self._added = None
        self._db.execute(
            "INSERT INTO history_purged VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET at = max(at, excluded.at)",
            (key, at),
        )
        self._db.execute("UPDATE history_purges SET count = count + 1")
        self._index = None  # the records moved: built again from the rows when next needed
        return count

    def purged(self) -> list[tuple[str, float]]:
        """When each name key's history was last purged (what msgsvc.state.migrate copies)."""
        rows = self._db.execute("SELECT key, at FROM history_purged ORDER BY key")
        return [(str(key), float(at)) for key, at in rows]

    def history_size(self) -> int:
        """How many entries are kept, in all."""
        return self.history_index().size

    def open_group(self, conversation: str, opener: str, at: float, since: float, most: int) -> bool:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.open_group`: from the index and the openings
        since the server started (in memory: at most ``most`` a name, forgotten after ``since``)."""
        if self.history_index().count(conversation):
            return True
        self._opened_since = since
        opened = {c: when for c, when in self._opened.get(opener, {}).items() if when >= since}
        allowed = conversation in opened or len(opened) < most
        if allowed:
            opened.setdefault(conversation, at)
        if opened:
            self._opened[opener] = opened
        else:
            self._opened.pop(opener, None)
        return allowed

    # -- read positions ------------------------------------------------------------

    def set_read(self, name: str, conversation: str, position: str) -> str:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.set_read`."""
        (kept,) = self._db.execute(
            "INSERT INTO reads VALUES (?, ?, ?) ON CONFLICT (key, conversation)"
            " DO UPDATE SET position = max(position, excluded.position) RETURNING position",
            (username_key(name), conversation, position),
        ).fetchone()
        return str(kept)

    def read_positions(self, name: str, conversations: Sequence[str]) -> dict[str, str]:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.read_positions`."""
        rows = self._db.execute(
            "SELECT conversation, position FROM reads"
            " WHERE key = ? AND conversation IN (SELECT value FROM json_each(?))",
            (username_key(name), json.dumps(list(conversations))),
        )
        return {str(conversation): str(position) for conversation, position in rows}

    def reads(self) -> list[tuple[str, str, str]]:
        """Every read position: name key, conversation, position (what msgsvc.state.migrate copies)."""
        rows = self._db.execute("SELECT key, conversation, position FROM reads ORDER BY key, conversation")
        return [(str(key), str(conversation), str(position)) for key, conversation, position in rows]

    def unread(self, conversation: str, after: str, reader: str, cap: int) -> int:
        """See :meth:`msgsvc.hub.contracts.HistoryStore.unread`: from the index alone (its entries'
        senders), no statement."""
        return self.history_index().unread(conversation, _just_after(after), username_key(reader), cap)

    # -- rooms (msgsvc.hub.contracts.RoomStore; the writes within batch()) ---------------

    def rooms(self) -> list[RoomRecord]:
        """Every room, by key, with its members and bans."""
        return self._rooms("", ())

    def room(self, room: str) -> RoomRecord | None:
        """The room ``room`` (its key), with its members and bans; None if none is kept."""
        found = self._rooms(" WHERE {} = ?", (room,))
        return found[0] if found else None

    def _rooms(self, where: str, args: tuple[str, ...]) -> list[RoomRecord]:
        """The rooms ``where`` (a clause on ``{}``, the room's key column) picks, by key."""
        rooms = self._db.execute(
            "SELECT key, name, created, founder, topic, topic_by, topic_at, modes, password, max_members, version"
            f" FROM rooms{where.format('key')} ORDER BY key",
            args,
        )
        records = {str(key): RoomRecord(*settings) for key, *settings in rooms}
        members = f"SELECT room, key, name, op, voice, since, version, joined FROM room_members{where.format('room')}"
        for room, key, name, op, voice, since, version, joined in self._db.execute(
            members + " ORDER BY room, since, key", args
        ):
            records[room].members[key] = Member(name, bool(op), bool(voice), since, version, joined)
        bans = f"SELECT room, key, mask, by, at FROM room_bans{where.format('room')} ORDER BY room, at, key"
        for room, key, mask, by, at in self._db.execute(bans, args):
            records[room].bans[key] = Ban(mask, by, at)
        return list(records.values())

    def create_room(self, record: RoomRecord, most: int) -> Refusal | bool:
        """A new room, with its members (RoomStore.create_room: False, nothing written, if one is kept),
        unless one of them not in it is in ``most`` rooms."""
        key = room_key(record.name)
        if self._db.execute("SELECT 1 FROM rooms WHERE key = ?", (key,)).fetchone() is not None:
            return False
        for name in record.members:
            if self._in_rooms(name, key) >= most:
                return Refusal.TOO_MANY_ROOMS
        self.delete_room(key)  # what a late write left of a room deleted
        self._db.execute(
            "INSERT INTO rooms VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, record.name, record.created, record.founder, record.topic, record.topic_by, record.topic_at)
            + (record.modes, record.key, record.limit, record.version),
        )
        for member in record.members.values():
            self._put_member(key, member)
        for ban in record.bans.values():
            self._put_ban(key, ban)
        return True

    def _in_rooms(self, name: str, room: str) -> int:
        """How many rooms the name key ``name`` is kept in; none if ``room`` is one of them."""
        rooms = self._db.execute("SELECT room FROM room_members WHERE key = ?", (name,)).fetchall()
        return 0 if (room,) in rooms else len(rooms)

    def delete_room(self, room: str) -> None:
        tables = (("rooms", "key"), ("room_members", "room"), ("room_bans", "room"), ("room_invites", "room"))
        for table, column in tables:
            self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (room,))

    def vacate_room(self, room: str) -> bool:
        """RoomStore.vacate_room: not while a member is kept."""
        if self._db.execute("SELECT 1 FROM room_members WHERE room = ?", (room,)).fetchone() is not None:
            return True
        self.delete_room(room)
        return False

    def set_room(self, record: RoomRecord) -> None:
        """``record``'s topic and founder (RoomStore.set_room: a later topic kept stays)."""
        key = room_key(record.name)
        topic = (record.topic, record.topic_by, record.topic_at)
        kept = self._db.execute("SELECT topic, topic_by, topic_at FROM rooms WHERE key = ?", (key,)).fetchone()
        if kept is not None and topic_stamp(kept[2], kept[1]) > topic_stamp(record.topic_at, record.topic_by):
            topic = tuple(kept)
        self._db.execute(
            "UPDATE rooms SET topic = ?, topic_by = ?, topic_at = ?, founder = ? WHERE key = ?",
            topic + (record.founder, key),
        )

    def set_modes(
        self, room: str, changes: Sequence[ModeChange], by: str, at: float, memberships: Mapping[str, int]
    ) -> ModesKept | Refusal | None:
        """RoomStore.set_modes: the room's next version is one more than its own."""
        kept = self._db.execute(
            "SELECT modes, password, max_members, version FROM rooms WHERE key = ?", (room,)
        ).fetchone()
        if kept is None:
            return None
        if any(change[1] == "b" for change, _ in changes):
            banned = self._db.execute("SELECT key FROM room_bans WHERE room = ?", (room,))
            if bans_overflow((key for key, in banned), changes):
                return Refusal.BAN_LIST_FULL
        modes, key, limit = changed_modes(kept[0], kept[1], kept[2], changes)
        version = kept[3] + 1
        self._db.execute(
            "UPDATE rooms SET modes = ?, password = ?, max_members = ?, version = ? WHERE key = ?",
            (modes, key, limit, version, room),
        )
        members: dict[str, Member] = {}
        for change, arg in changes:
            if change == "+b" and arg:
                self._put_ban(room, Ban(arg, by, at))
            elif change == "-b" and arg:
                self._db.execute("DELETE FROM room_bans WHERE room = ? AND key = ?", (room, mask_key(arg)))
            if change[1] not in "ov" or not arg:
                continue
            name = username_key(arg)
            if name not in members:
                row = self._db.execute(
                    "SELECT name, op, voice, since, joined FROM room_members WHERE room = ? AND key = ?", (room, name)
                ).fetchone()
                if row is None or row[4] != memberships.get(name):
                    continue
                members[name] = Member(row[0], bool(row[1]), bool(row[2]), row[3], version, row[4])
            if change[1] == "o":
                members[name].op = change[0] == "+"
            else:
                members[name].voice = change[0] == "+"
        for name, member in members.items():
            self._db.execute(
                "UPDATE room_members SET op = ?, voice = ?, version = ? WHERE room = ? AND key = ?",
                (member.op, member.voice, version, room, name),
            )
        rows = self._db.execute("SELECT mask, by, at FROM room_bans WHERE room = ? ORDER BY at, key", (room,))
        bans = tuple(Ban(mask, by, at) for mask, by, at in rows)
        return ModesKept(modes, key, limit, version, tuple(members.values()), bans)

    def _put_member(self, room: str, member: Member) -> None:
        """Keep ``member`` of ``room``, if the room is still kept."""
        self._db.execute(
            "INSERT OR REPLACE INTO room_members SELECT key, ?, ?, ?, ?, ?, ?, ? FROM rooms WHERE key = ?",
            (username_key(member.name), member.name, member.op, member.voice, member.since)
            + (member.version, member.joined, room),
        )

    def invite(self, room: str, name: str, op: bool, at: float) -> bool | None:
        """RoomStore.invite: the oldest (by ``at``, then name key) of more than :data:`ROOM_INVITES_MAX` ends."""
        db = self._db
        if db.execute("SELECT 1 FROM rooms WHERE key = ?", (room,)).fetchone() is None:
            return None
        kept = db.execute("SELECT op FROM room_invites WHERE room = ? AND key = ?", (room, name)).fetchone()
        if not invites_anew(None if kept is None else bool(kept[0]), op):
            return False
        db.execute("INSERT OR REPLACE INTO room_invites VALUES (?, ?, ?, ?)", (room, name, op, at))
        count = db.execute("SELECT count(*) FROM room_invites WHERE room = ?", (room,)).fetchone()[0]
        if count > ROOM_INVITES_MAX:
            db.execute(
                "DELETE FROM room_invites WHERE room = ?1 AND key = "
                "(SELECT key FROM room_invites WHERE room = ?1 ORDER BY at, key LIMIT 1)",
                (room,),
            )
        return True

    def uninvite(self, name: str) -> None:
        self._db.execute("DELETE FROM room_invites WHERE key = ?", (name,))

    def enter(self, room: str, joining: Joining, limit: int, most: int) -> Refusal | Member:
        """RoomStore.enter: as :func:`~msgsvc.hub.rules.admission` decides from what is kept."""
        settings = self._db.execute(
            "SELECT name, created, founder, modes, password, max_members, version FROM rooms WHERE key = ?", (room,)
        ).fetchone()
        if settings is None:
            return Refusal.NO_SUCH_ROOM
        key = username_key(joining.name)
        kept = self._db.execute(
            "SELECT name, op, voice, since, version, joined FROM room_members WHERE room = ? AND key = ?", (room, key)
        ).fetchone()
        if kept is not None:
            name, op, voice, since, version, joined = kept
            return Member(name, bool(op), bool(voice), since, version, joined)
        name, created, founder, modes, password, max_members, version = settings
        record = RoomRecord(name, created, founder, modes=modes, key=password, limit=max_members)
        bans = self._db.execute("SELECT key, mask, by, at FROM room_bans WHERE room = ?", (room,))
        record.bans = {str(folded): Ban(mask, by, at) for folded, mask, by, at in bans}
        members = self._db.execute("SELECT count(*) FROM room_members WHERE room = ?", (room,)).fetchone()[0]
        protected = self._db.execute("SELECT 1 FROM accounts WHERE key = ?", (key,)).fetchone() is not None
        invites = self._db.execute("SELECT op FROM room_invites WHERE room = ? AND key = ?", (room, key))
        invited = bool((invites.fetchone() or (False,))[0])
        rooms = self._in_rooms(key, room)
        answer = admission(joining, record, invited, protected, members, rooms, limit, most)
        if isinstance(answer, Member):
            answer.joined = version + 1
            self._db.execute("UPDATE rooms SET version = ? WHERE key = ?", (answer.joined, room))
            self._put_member(room, answer)
            self._db.execute("DELETE FROM room_invites WHERE room = ? AND key = ?", (room, key))  # used up
        return answer

    def remove_member(self, room: str, name: str) -> None:
        self._db.execute("DELETE FROM room_members WHERE room = ? AND key = ?", (room, username_key(name)))

    def _put_ban(self, room: str, ban: Ban) -> None:
        """Keep ``ban`` in ``room``, if the room is still kept."""
        self._db.execute(
            "INSERT OR REPLACE INTO room_bans SELECT key, ?, ?, ?, ? FROM rooms WHERE key = ?",
            (mask_key(ban.mask), ban.mask, ban.by, ban.at, room),
        )

    # -- accounts ------------------------------------------------------------------

    def protected_keys(self) -> set[str]:
        """The key of every name with a password."""
        return {str(key) for (key,) in self._db.execute("SELECT key FROM accounts")}

    def password_hash(self, name: str) -> str | None:
        """The password hash of ``name``, or None if it is not protected."""
        row = self._db.execute("SELECT hash FROM accounts WHERE key = ?", (username_key(name),)).fetchone()
        return None if row is None else str(row[0])

    def set_password_hash(self, name: str, password_hash: str, when: float) -> None:
        """Protect ``name`` with ``password_hash`` (protected since ``when``), or replace its hash (protected
        since as before): one row, one transaction."""
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.execute(
                    "INSERT INTO accounts (key, hash, changed, protected_since) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET hash = excluded.hash, changed = excluded.changed",
                    (username_key(name), password_hash, when, when),
                )
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to the accounts in {self.path!r}: {e}") from None

    def set_first_password_hash(self, name: str, password_hash: str, when: float) -> str | None:
        """Protect ``name`` with ``password_hash`` (since ``when``) only if it has no password: None if
        stored, else the hash it has, unchanged; one transaction."""
        key = username_key(name)
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                written = self._db.execute(
                    "INSERT INTO accounts (key, hash, changed, protected_since) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key) DO NOTHING",
                    (key, password_hash, when, when),
                ).rowcount
                if written:
                    return None
                return str(self._db.execute("SELECT hash FROM accounts WHERE key = ?", (key,)).fetchone()[0])
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to the accounts in {self.path!r}: {e}") from None

    def protected_since(self, name: str) -> float | None:
        """When ``name`` last gained a password; None if it has none."""
        row = self._db.execute(
            "SELECT protected_since FROM accounts WHERE key = ?", (username_key(name),)
        ).fetchone()
        return None if row is None else float(row[0])

    def reset(self, name: str, reason: str, when: float) -> Reset | None:
        """Remove the protection of ``name``, noting why; None if it had none."""
        key = username_key(name)
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                if self._db.execute("DELETE FROM accounts WHERE key = ?", (key,)).rowcount == 0:
                    return None
                # Anyone may take the name now: what waited for its owner must not reach them, nor its
                # read positions and memberships stand for theirs.
                self._db.execute("DELETE FROM queue WHERE recipient = ?", (key,))
                self._db.execute("DELETE FROM reads WHERE key = ?", (key,))
                self._db.execute("DELETE FROM room_members WHERE key = ?", (key,))
                row = self._db.execute("SELECT name FROM users WHERE key = ?", (key,)).fetchone()
                spelled = name if row is None else str(row[0])
                cursor = self._db.execute(
                    "INSERT INTO resets (key, name, at, reason) VALUES (?, ?, ?, ?)",
                    (key, spelled, when, reason),
                )
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to the accounts in {self.path!r}: {e}") from None
        assert cursor.lastrowid is not None
        return Reset(cursor.lastrowid, spelled, when, reason)

    def remove(self, name: str, reason: str, when: float) -> Reset | None:
        """Remove ``name`` from the log with its password and what waited for it, noting why (a reset
        that says ``removed``); None if it is not in the log."""
        key = username_key(name)
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT name FROM users WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                named = (
                    ("users", "key"),
                    ("accounts", "key"),
                    ("queue", "recipient"),
                    ("reads", "key"),
                    ("room_members", "key"),
                )
                for table, column in named:
                    self._db.execute(f"DELETE FROM {table} WHERE {column} = ?", (key,))
                cursor = self._db.execute(
                    "INSERT INTO resets (key, name, at, reason, removed) VALUES (?, ?, ?, ?, 1)",
                    (key, row[0], when, reason),
                )
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to the username log in {self.path!r}: {e}") from None
        assert cursor.lastrowid is not None
        return Reset(cursor.lastrowid, str(row[0]), when, reason, removed=True)

    def accounts(self) -> list[tuple[str, str, float]]:
        """Every password hash: the name key, the hash, when it was set."""
        rows = self._db.execute("SELECT key, hash, changed FROM accounts ORDER BY key").fetchall()
        return [(str(key), str(hashed), float(changed)) for key, hashed, changed in rows]

    def queued(self) -> list[tuple[str, Queued]]:
        """Every message waiting, with the name key it waits for, oldest first."""
        rows = self._db.execute(
            "SELECT recipient, id, sender, kind, recipients, text, sent_at, message_id FROM queue ORDER BY id"
        ).fetchall()
        return [
            (str(key), Queued(i, sender, kind, tuple(group.split(",")), text, at, message_id))
            for key, i, sender, kind, group, text, at, message_id in rows
        ]

    def protected(self) -> list[tuple[str, float]]:
        """Every protected name in the log (as it spells them) with when its password was set."""
        rows = self._db.execute(
            "SELECT name, changed FROM accounts JOIN users USING (key) ORDER BY key"
        ).fetchall()
        return [(str(name), float(changed)) for name, changed in rows]

    def last_reset(self) -> int:
        """The id of the latest reset (0 for none)."""
        return int(self._db.execute("SELECT coalesce(max(id), 0) FROM resets").fetchone()[0])

    def resets_after(self, reset_id: int) -> list[Reset] | None:
        """The resets after ``reset_id``, oldest first; None if no other connection wrote since the last call.

        How ``python -m msgsvc.admin``'s resets reach a running server.
        """
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return None
        self._data_version = version
        rows = self._db.execute(
            "SELECT id, name, at, reason, removed FROM resets WHERE id > ? ORDER BY id", (reset_id,)
        ).fetchall()
        return [Reset(i, name, at, reason, bool(removed)) for i, name, at, reason, removed in rows]

    def close(self) -> None:
        self._db.close()


def _just_after(position: str) -> str:
    """The position just after ``position`` (an id, a floor; "": before the first id), as the index has
    them (msgsvc.state.historyindex)."""
    return position + "\0" if position else ""


def _copy_rows_into_passes(database: Database) -> None:
    """Schema 15: the history's rows of version 14, in id order, as pass rows (the index they are added
    to let go after: it is built from the rows when needed); their table dropped."""
    database._index = HistoryIndex()
    rows = database._db.execute("SELECT id, at, conversation, sender, kind, recipients, text FROM history ORDER BY id")
    while chunk := rows.fetchmany(PASS_ENTRIES):
        sent = (
            Message(by, Kind(kind), tuple(to.split(",")) if to else (), text, id, at)
            for id, at, _, by, kind, to, text in chunk
        )
        database.append(Kept.of(sent), 1 << 62)
    database._db.execute("DROP TABLE history")
    database._index = None


#: Python's part of a schema version's step, after its statements.
_UPGRADES: dict[int, Callable[[Database], None]] = {15: _copy_rows_into_passes}


class SqliteStore(Service):
    """The state as a service: the username log loaded at once, then all work on one worker thread.

    Writes of the username log, the queue and the history are group-committed: what is asked while a
    transaction is being written waits and goes into the next one, so a thousand registrations (or
    messages) cost a few fsyncs rather than a thousand.  The history's entries wait for the next
    transaction up to :data:`HISTORY_INTERVAL` on ``clock``: one transaction for many reactor passes'
    entries costs a message far less than one each (its pages are written once).
    """

    def __init__(self, reactor: IReactorFromThreads, path: str, clock: IReactorTime) -> None:
        self._reactor = reactor
        self._clock = clock
        self.path = path
        database = Database(path)  # a bad file fails here, before start-up
        try:
            last_reset = database.last_reset()  # first: see Snapshot
            self._snapshot = Snapshot(database.load(), last_reset, database.rooms())
            # Every name protected at start-up or by this process since: only these need the database
            # read to be checked.  It never shrinks: the operator's resets (msgsvc.admin, from another
            # process) only remove passwords, so a name reset since is read and found unprotected;
            # only this process gives names passwords.
            self._ever_protected = database.protected_keys()
        finally:
            database.close()
        self._database: Database | None = None
        self._pool: ThreadPool | None = None
        self._waiting: list[tuple[Callable[[Database], Any], Deferred[Any]]] = []
        self._appends: list[tuple[Kept, int, Deferred[None]]] = []  # for the next transaction
        self._history_timer: IDelayedCall | None = None
        self._history_due = False  # the appends waited HISTORY_INTERVAL: the next transaction is theirs
        self._writing = False
        #: The name keys invited since they were last freed: only these may hold an invitation (most names
        #: freed hold none, and are freed with no transaction).
        self._invitees: set[str] = set()

    @property
    def where(self) -> str:
        return self.path

    def read_log(self) -> Deferred[Snapshot]:
        """The log and the rooms as read when this was made (a bad file fails there, before start-up)."""
        return succeed(self._snapshot)

    def startService(self) -> None:
        """Open the database (after twistd forks: a connection must not cross a fork) and build the
        history's index (a scan of the history: docs/performance.rst says how long it takes)."""
        Service.startService(self)
        self._database = Database(self.path)
        self._database.history_index()
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="msgsvc-store")
        self._pool.start()

    def stopService(self) -> None:
        """Finish every queued write, then close the database."""
        Service.stopService(self)
        if self._pool is not None and self._database is not None:
            if self._waiting or self._appends:
                self._write()
            self._pool.stop()  # joins the worker once its queue is empty
            self._database.close()
        self._pool = self._database = None

    def check(self) -> Deferred[None]:
        """Fires once readiness's probe (:meth:`Database.ready`, in the next group commit) is on disk: the
        file takes a write that needs pages; else fails with why (a StoreError)."""

        def ready(why: str | None) -> None:
            if why is not None:
                raise StoreError(f"cannot write to {self.path!r}: {why}")

        return self._batched(Database.ready).addCallback(ready)

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        """Write ``name`` as seen at ``when``; fires once it is on disk."""
        return self._batched(lambda db: db.record_seen_in_batch([(name, when)]))

    # -- the offline queue ---------------------------------------------------------

    def enqueue(self, message: Enqueue) -> Deferred[tuple[str, ...]]:
        """Queue ``message``; fires, once on disk, with the recipients it was queued for."""
        return self._batched(lambda db: db.enqueue(message))

    def backlog(self, name: str, after: int, oldest: float, limit: int) -> Deferred[tuple[list[Queued], int]]:
        """What waits for ``name``, read after every write asked for before it."""
        return self._batched(lambda db: db.backlog(name, after, oldest, limit))

    def acknowledge(self, name: str, up_to: int) -> Deferred[int]:
        return self._batched(lambda db: db.acknowledge(name, up_to))

    def expire(self, oldest: float) -> Deferred[dict[str, int]]:
        return self._batched(lambda db: db.expire(oldest))

    # -- the history (msgsvc.hub.contracts.HistoryStore) ---------------------------

    def append(self, kept: Kept, keep: int) -> Deferred[None]:
        """Keep the messages of ``kept`` (their :class:`Records`, made on the worker thread) in the next
        transaction, at most :data:`HISTORY_INTERVAL` away and before whatever is asked next (a queueing,
        a read); fires once on disk.  The hub changes ``kept`` no more."""
        if self._pool is None or self._database is None:
            return fail(StoreError("the store is not running"))
        done: Deferred[None] = Deferred()
        self._appends.append((kept, keep, done))
        if self._history_timer is None:
            self._history_timer = self._clock.callLater(HISTORY_INTERVAL, self._appends_waited)
        return done

    def _appends_waited(self) -> None:
        self._history_timer = None
        self._history_due = True
        if not self._writing:
            self._write()

    def page_before(
        self, conversation: str, before: str | None, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        return self._batched(lambda db: db.page_before(conversation, before, limit, since))

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        return self._batched(lambda db: db.page_after(conversation, after, limit, since))

    def latest(self, member: str, since: float, limit: int) -> Deferred[list[Stored]]:
        return self._batched(lambda db: db.latest(member, since, limit))

    def expire_history(self, oldest: float, keep: int) -> Deferred[int]:
        return self._batched(lambda db: db.expire_history(oldest, keep))

    def purge_history(self, sender: str, at: float) -> Deferred[int]:
        return self._batched(lambda db: db.purge_history(sender, at))

    def history_size(self) -> Deferred[int]:
        return self._batched(lambda db: db.history_size())

    def set_read(self, name: str, conversation: str, position: str) -> Deferred[str]:
        return self._batched(lambda db: db.set_read(name, conversation, position))

    def read_positions(self, name: str, conversations: Sequence[str]) -> Deferred[dict[str, str]]:
        return self._batched(lambda db: db.read_positions(name, conversations))

    def unread(self, conversation: str, after: str, reader: str, cap: int) -> Deferred[int]:
        return self._batched(lambda db: db.unread(conversation, after, reader, cap))

    def open_group(self, conversation: str, opener: str, at: float, since: float, most: int) -> Deferred[bool]:
        return self._batched(lambda db: db.open_group(conversation, opener, at, since, most))

    # -- rooms (msgsvc.hub.contracts.RoomStore) ---------------------------------------

    def rooms(self) -> Deferred[list[RoomRecord]]:
        return self._batched(lambda db: db.rooms())

    def room(self, room: str) -> Deferred[RoomRecord | None]:
        return self._batched(lambda db: db.room(room))

    def create_room(self, record: RoomRecord, most: int) -> Deferred[Refusal | bool]:
        return self._batched(lambda db: db.create_room(record, most))

    def delete_room(self, room: str) -> Deferred[None]:
        return self._batched(lambda db: db.delete_room(room))

    def vacate_room(self, room: str) -> Deferred[bool]:
        return self._batched(lambda db: db.vacate_room(room))

    def set_room(self, record: RoomRecord) -> Deferred[None]:
        return self._batched(lambda db: db.set_room(record))

    def set_modes(
        self, room: str, changes: Sequence[ModeChange], by: str, at: float, memberships: Mapping[str, int]
    ) -> Deferred[ModesKept | Refusal | None]:
        return self._batched(lambda db: db.set_modes(room, changes, by, at, memberships))

    def invite(self, room: str, name: str, op: bool, at: float) -> Deferred[bool | None]:
        self._invitees.add(name)
        return self._batched(lambda db: db.invite(room, name, op, at))

    def uninvite(self, name: str) -> Deferred[None]:
        if name not in self._invitees:
            return succeed(None)
        self._invitees.discard(name)
        return self._batched(lambda db: db.uninvite(name))

    def enter(self, room: str, joining: Joining, limit: int, most: int) -> Deferred[Refusal | Member]:
        return self._batched(lambda db: db.enter(room, joining, limit, most))

    def remove_member(self, room: str, name: str) -> Deferred[None]:
        return self._batched(lambda db: db.remove_member(room, name))

    def _batched(self, job: Callable[[Database], _T]) -> Deferred[_T]:
        """Run ``job`` in the next transaction; fires with its result once that is on disk.

        What is asked while a transaction is being written waits and goes
        into the next one, in the order asked: a read sees every write asked
        for before it.
        """
        if self._pool is None or self._database is None:
            return fail(StoreError("the store is not running"))
        done: Deferred[_T] = Deferred()
        self._waiting.append((job, done))
        if not self._writing:
            self._write()
        return done

    def _write(self) -> None:
        """Run everything waiting in one transaction on the worker thread, the history's entries first
        (in one append for each ``keep``)."""
        assert self._pool is not None and self._database is not None
        appends, self._appends = self._appends, []
        if self._history_timer is not None:
            self._history_timer.cancel()
        self._history_timer, self._history_due = None, False
        kept: dict[int, list[Kept]] = {}  # the appends by their keep, each's rows filled in turn
        for each, keep, _ in appends:
            kept.setdefault(keep, []).append(each)
        batch: list[tuple[Callable[[Database], Any], Deferred[Any] | None]] = [
            *((partial(Database.append_all, kept=each, keep=keep), None) for keep, each in kept.items()),
            *self._waiting,
        ]
        self._waiting = []
        self._writing = True

        def done(result: list[Any] | Failure) -> None:
            self._writing = False
            for _, _, appended in appends:
                if isinstance(result, Failure):
                    appended.errback(result)
                else:
                    appended.callback(None)
            for index, (_, waiting) in enumerate(batch):
                if waiting is None:
                    continue
                if isinstance(result, Failure):
                    waiting.errback(result)
                else:
                    waiting.callback(result[index])
            if (self._waiting or self._history_due) and self._pool is not None:
                self._write()

        jobs = [job for job, _ in batch]
        deferToThreadPool(self._reactor, self._pool, self._database.batch, jobs).addBoth(done)

    def _run(self, work: Callable[[Database], _T]) -> Deferred[_T]:
        """Call ``work`` with the database on the worker thread, after what is queued there."""
        if self._pool is None or self._database is None:
            return fail(StoreError("the store is not running"))
        return deferToThreadPool(self._reactor, self._pool, work, self._database)

    # -- accounts (msgsvc.auth.store.AccountStore) --------------------------

    def password_hash(self, name: str) -> Deferred[str | None]:
        if username_key(name) in self._ever_protected or self._pool is None:
            return self._run(lambda db: db.password_hash(name))
        return succeed(None)  # the commonest login, a name without a password: no thread hop

    def set_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[None]:
        # Noted before the write is queued: a read queued after it, on the same thread, sees it.
        self._ever_protected.add(username_key(name))
        return self._run(lambda db: db.set_password_hash(name, password_hash, when))

    def set_first_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[str | None]:
        self._ever_protected.add(username_key(name))
        return self._run(lambda db: db.set_first_password_hash(name, password_hash, when))

    def protected_since(self, name: str) -> Deferred[float | None]:
        return self._run(lambda db: db.protected_since(name))

    def reset(self, name: str, reason: str, when: float) -> Deferred[Reset | None]:
        return self._run(lambda db: db.reset(name, reason, when))

    def remove(self, name: str, reason: str, when: float) -> Deferred[Reset | None]:
        return self._run(lambda db: db.remove(name, reason, when))

    def resets_after(self, reset_id: int) -> Deferred[list[Reset] | None]:
        return self._run(lambda db: db.resets_after(reset_id))
