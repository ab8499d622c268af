"""The persistent username log: SQLite, written from one worker thread.

:class:`UsernameDatabase` is plain synchronous SQLite.  :class:`UsernameLog`
is the service the server runs: it loads the log at start-up and then does
every write on its own thread, so an fsync never stalls the reactor.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from msgsvc.hub import UserRecord
from msgsvc.wire import username_key

SCHEMA_VERSION = 1


class StoreError(Exception):
    """The username log cannot be opened or used; the message names the file."""


class UsernameDatabase:
    """The username log in an SQLite file (WAL, ``synchronous=FULL``).

    Names are durable once :meth:`record_seen` returns: not even a power cut
    loses them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the username log {path!r}: {e}") from None
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
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            db.execute(
                "CREATE TABLE IF NOT EXISTS users ("
                " key TEXT PRIMARY KEY,"
                " name TEXT NOT NULL,"
                " first_seen REAL NOT NULL,"
                " last_seen REAL NOT NULL)"
            )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {version}; this msgsvc reads {SCHEMA_VERSION}")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")

    def load(self) -> list[UserRecord]:
        """Every name ever registered, oldest first."""
        rows = self._db.execute(
            "SELECT name, first_seen, last_seen FROM users ORDER BY first_seen, key"
        ).fetchall()
        return [UserRecord(name, first, last) for name, first, last in rows]

    def record_seen(self, seen: Sequence[tuple[str, float]]) -> None:
        """Add each name (first seen then) or move its last-seen time, in one transaction.

        Durable on return: one fsync for the lot, however many there are.
        """
        try:
            with self._db:  # BEGIN ... COMMIT, or ROLLBACK on an error
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO users (key, name, first_seen, last_seen) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET last_seen = excluded.last_seen",
                    [(username_key(name), name, when, when) for name, when in seen],
                )
        except sqlite3.Error as e:
            raise StoreError(f"cannot write to the username log {self.path!r}: {e}") from None

    def close(self) -> None:
        self._db.close()


class UsernameLog(Service):
    """The username log as a service: loaded at once, written on a worker thread.

    Writes are group-committed: what is asked while a transaction is being
    written waits and goes into the next one, so a thousand registrations
    cost a few fsyncs rather than a thousand.
    """

    def __init__(self, reactor: IReactorFromThreads, path: str) -> None:
        self._reactor = reactor
        self.path = path
        database = UsernameDatabase(path)  # a bad file fails here, before start-up
        try:
            self.records = database.load()
        finally:
            database.close()
        self._database: UsernameDatabase | None = None
        self._pool: ThreadPool | None = None
        self._waiting: list[tuple[str, float, Deferred[None]]] = []
        self._writing = False

    def startService(self) -> None:
        """Open the database (after twistd forks: a connection must not cross a fork)."""
        Service.startService(self)
        self._database = UsernameDatabase(self.path)
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="msgsvc-store")
        self._pool.start()

    def stopService(self) -> None:
        """Finish every queued write, then close the database."""
        Service.stopService(self)
        if self._pool is not None and self._database is not None:
            if self._waiting:
                self._write()
            self._pool.stop()  # joins the worker once its queue is empty
            self._database.close()
        self._pool = self._database = None

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        """Write ``name`` as seen at ``when``; fires once it is on disk."""
        if self._pool is None or self._database is None:
            return fail(StoreError("the username log is not running"))
        written: Deferred[None] = Deferred()
        self._waiting.append((name, when, written))
        if not self._writing:
            self._write()
        return written

    def _write(self) -> None:
        """Write everything waiting in one transaction on the worker thread."""
        assert self._pool is not None and self._database is not None
        batch, self._waiting = self._waiting, []
        self._writing = True
        seen = [(name, when) for name, when, _ in batch]

        def done(result: None | Failure) -> None:
            self._writing = False
            for _, _, written in batch:
                if isinstance(result, Failure):
                    written.errback(result)
                else:
                    written.callback(None)
            if self._waiting and self._pool is not None:
                self._write()

        deferToThreadPool(self._reactor, self._pool, self._database.record_seen, seen).addBoth(done)
