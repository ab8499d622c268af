"""The state's contract (:class:`msgsvc.state.State`: the hub's Store and the accounts' AccountStore): the
username log, the offline queue with its quotas, the accounts and the operator's resets and removals.

:class:`StateContract` runs unchanged against the SQLite state, the Redis
state (a real redis-server) and the tests' in-memory fake
(:class:`tests.support.fakes.MemoryStore`): each case gives it an empty,
started ``state`` and a way to open that state again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from msgsvc.auth.store import Reset
from msgsvc.hub.contracts import Enqueue, Queued, UserRecord
from msgsvc.state import Snapshot, State
from msgsvc.state.sqlite import Database, SqliteStore

from .support.fakes import MemoryStore
from .support.queue import ROOM
from .support.redisserver import RedisStateCase

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object


class StateContract(_Base):
    """Each test starts from an empty state, and reads only through the state's interface."""

    state: State

    async def reopened(self) -> State:
        """The same state opened again, as a server starting on it would."""
        raise NotImplementedError

    async def read_log(self) -> Snapshot:
        """The log as a server starting now would read it."""
        return await (await self.reopened()).read_log()

    async def names_in_log(self) -> list[str]:
        """The names in the state's log, read anew."""
        return [r.name for r in (await self.read_log()).records]

    async def queue(
        self,
        sender: str,
        *keys: str,
        per_sender: int = 3,
        total: int = 100,
        at: float = 100.0,
        oldest: float = 0.0,
    ) -> tuple[str, ...]:
        """Queue a message from ``sender`` to ``keys``; the keys it was queued for."""
        message = Enqueue(keys, sender, "multicast", keys, "hi", at, 1000, oldest, per_sender, total)
        return await self.state.enqueue(message)

    # -- the username log

    async def test_the_log_keeps_each_name_as_first_spelled_with_first_and_last_seen(self) -> None:
        await self.state.record_seen("Alice", 10.5)
        await self.state.record_seen("bob", 11.0)
        await self.state.record_seen("ALICE", 12.25)
        await self.state.set_password_hash("bob", "$argon2id$...", 13.0)
        records = (await self.read_log()).records
        self.assertEqual(records, [UserRecord("Alice", 10.5, 12.25), UserRecord("bob", 11.0, 11.0, True)])

    # -- the offline queue

    async def test_a_message_waits_for_each_recipient_with_room_until_acknowledged(self) -> None:
        def message(text: str, at: float, limit: int = 2) -> Enqueue:
            group = ("Alice", "bob")
            return Enqueue(("alice", "bob"), "carol", "multicast", group, text, at, limit, 0.0, *ROOM)

        self.assertEqual(await self.state.enqueue(message("one|1", 100.0)), ("alice", "bob"))
        self.assertEqual(await self.state.enqueue(message("two", 101.0)), ("alice", "bob"))
        self.assertEqual(await self.state.acknowledge("bob", 2), 1)
        self.assertEqual(await self.state.enqueue(message("three", 102.0)), ("bob",))  # alice is full
        page, more = await self.state.backlog("Alice", 0, 0.0, 1)
        self.assertEqual(page, [Queued(1, "carol", "multicast", ("Alice", "bob"), "one|1", 100.0)])
        self.assertEqual(more, 1)
        page, more = await self.state.backlog("bob", 0, 0.0, 10)
        self.assertEqual([(q.id, q.text) for q in page], [(4, "two"), (5, "three")])
        self.assertEqual(more, 0)

    async def test_expired_messages_are_dropped_and_do_not_count(self) -> None:
        def message(text: str, at: float, oldest: float) -> Enqueue:
            return Enqueue(("alice",), "carol", "unicast", ("alice",), text, at, 1, oldest, *ROOM)

        await self.state.enqueue(message("old", 100.0, 0.0))
        self.assertEqual(await self.state.enqueue(message("new", 200.0, 150.0)), ("alice",))
        page, _ = await self.state.backlog("alice", 0, 150.0, 10)
        self.assertEqual([q.text for q in page], ["new"])
        await self.state.enqueue(Enqueue(("bob",), "carol", "unicast", ("bob",), "x", 300.0, 5, 0.0, *ROOM))
        self.assertEqual(await self.state.expire(250.0), {"bob": 1})
        self.assertEqual(await self.state.expire(400.0), {})

    async def test_a_sender_has_a_quota_for_all_its_recipients_together(self) -> None:
        self.assertEqual(await self.queue("Mallory", "a", "b"), ("a", "b"))
        # The third fits, the fourth does not: the name is left out, as for a full queue.
        self.assertEqual(await self.queue("mallory", "c", "d"), ("c",))
        self.assertEqual(await self.queue("MALLORY", "e"), ())
        self.assertEqual(await self.queue("bob", "d", "e"), ("d", "e"))  # another sender has its own

    async def test_acknowledged_messages_leave_the_senders_count(self) -> None:
        await self.queue("mallory", "a", "b", "c")
        self.assertEqual(await self.state.acknowledge("a", 1_000), 0)
        self.assertEqual(await self.queue("mallory", "d", "e"), ("d",))
        self.assertEqual(await self.queue("mallory", "e"), ())

    async def test_expired_messages_leave_the_counts(self) -> None:
        await self.queue("mallory", "a", "b", "c", at=100.0)
        self.assertEqual(await self.state.expire(150.0), {})
        queued = await self.queue("mallory", "a", "b", "c", "d", at=200.0, oldest=150.0)
        self.assertEqual(queued, ("a", "b", "c"))
        self.assertEqual(await self.state.expire(150.0), {"a": 1, "b": 1, "c": 1})

    async def test_the_total_bounds_all_the_queues(self) -> None:
        self.assertEqual(await self.queue("a", "x", "y", total=3), ("x", "y"))
        self.assertEqual(await self.queue("b", "x", "y", total=3), ("x",))
        self.assertEqual(await self.queue("c", "z", total=3), ())
        await self.state.acknowledge("x", 1_000)
        self.assertEqual(await self.queue("c", "z", "w", "v", total=3), ("z", "w"))

    # -- accounts: passwords, the operator's resets and removals

    async def test_a_reset_drops_the_password_and_what_waited_and_is_read_back(self) -> None:
        await self.state.record_seen("Alice", 1.0)
        await self.state.set_password_hash("alice", "$argon2id$hash", 2.0)
        self.assertEqual(await self.state.password_hash("ALICE"), "$argon2id$hash")
        await self.state.enqueue(Enqueue(("alice",), "bob", "unicast", ("Alice",), "hi", 3.0, 10, 0.0, *ROOM))
        reset = await self.state.reset("ALICE", "forgot it", 5.0)
        self.assertEqual(reset, Reset(1, "Alice", 5.0, "forgot it"))
        self.assertIsNone(await self.state.reset("alice", "again", 6.0))
        self.assertIsNone(await self.state.password_hash("alice"))
        self.assertEqual(await self.state.backlog("alice", 0, 0.0, 10), ([], 0))
        self.assertEqual((await self.read_log()).last_reset, 1)
        self.assertEqual(await self.state.resets_after(0), [Reset(1, "Alice", 5.0, "forgot it")])
        self.assertIsNone(await self.state.resets_after(1))

    async def test_a_reset_recipient_takes_what_waited_for_it_out_of_the_counts(self) -> None:
        await self.state.record_seen("a", 1.0)
        await self.state.set_password_hash("a", "$h", 2.0)
        await self.queue("mallory", "a", "b", "a2")
        await self.state.reset("a", "forgot", 3.0)
        self.assertEqual(await self.queue("mallory", "c", "d"), ("c",))

    async def test_a_name_removed_from_the_log_goes_with_its_password_and_queue(self) -> None:
        await self.state.record_seen("Alice", 1.0)
        await self.state.record_seen("bob", 1.5)
        await self.state.set_password_hash("alice", "$h", 2.0)
        await self.queue("mallory", "alice", "bob", "carol")
        removal = await self.state.remove("ALICE", "a name made by a script", 3.0)
        self.assertEqual(removal, Reset(1, "Alice", 3.0, "a name made by a script", removed=True))
        self.assertIsNone(await self.state.remove("alice", "again", 4.0))
        self.assertIsNone(await self.state.password_hash("alice"))
        self.assertEqual(await self.state.backlog("alice", 0, 0.0, 10), ([], 0))
        self.assertEqual(await self.queue("mallory", "dave", "erin"), ("dave",))  # alice's left the count
        self.assertEqual(await self.state.resets_after(0), [removal])
        self.assertEqual(await self.names_in_log(), ["bob"])


class SqliteContractTests(StateContract, TestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        Database(self.path).close()
        self.state = store = SqliteStore(reactor, self.path)
        store.startService()
        self.addCleanup(store.stopService)

    async def reopened(self) -> State:
        return SqliteStore(reactor, self.path)  # reads the log as it is made


class RedisContractTests(StateContract, RedisStateCase):
    async def reopened(self) -> State:
        again = self.started()
        await again.redis.ready()
        return again


class MemoryContractTests(StateContract, TestCase):
    def setUp(self) -> None:
        self.state = MemoryStore()

    async def reopened(self) -> State:
        return self.state  # nothing to open again: the log is read as it is now
