"""The state's contract (:class:`msgsvc.state.State`: the hub's Store and the accounts' AccountStore): the
username log, the offline queue with its quotas, the accounts and the operator's resets and removals; the
history's (:class:`msgsvc.hub.contracts.HistoryStore`); the rooms' (:class:`~msgsvc.hub.contracts.RoomStore`).

:class:`StateContract`, :class:`HistoryContract`, :class:`ReadContract` and :class:`RoomContract` run
unchanged against
the SQLite state, the Redis state (a real redis-server) and the tests'
in-memory fake (:class:`tests.support.fakes.MemoryStore`): each case gives
them an empty, started ``state`` and a way to open that state again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from msgsvc.auth.store import Reset
from msgsvc.hub.contracts import (
    ROOM_BANS_MAX,
    Ban,
    Enqueue,
    HistoryPolicy,
    Joining,
    Kind,
    Member,
    Queued,
    Refusal,
    Refused,
    RoomRecord,
    Stored,
    UserRecord,
)
from msgsvc.hub.history import History
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.globs import glob_match
from msgsvc.hub.ids import MessageIds, message_id_floor
from msgsvc.hub.rules import mask_key, username_key
from msgsvc.state import Snapshot, State
from msgsvc.state.redis import PURGED
from msgsvc.state.sqlite import HISTORY_INTERVAL, Database, SqliteStore

from .support.fakes import MemoryStore, to_keep
from .support.queue import NO_ID, ROOM
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
        message = Enqueue(keys, sender, "multicast", keys, "hi", at, 1000, oldest, per_sender, total, NO_ID)
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
            return Enqueue(("alice", "bob"), "carol", "multicast", group, text, at, limit, 0.0, *ROOM, NO_ID)

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
            return Enqueue(("alice",), "carol", "unicast", ("alice",), text, at, 1, oldest, *ROOM, NO_ID)

        await self.state.enqueue(message("old", 100.0, 0.0))
        self.assertEqual(await self.state.enqueue(message("new", 200.0, 150.0)), ("alice",))
        page, _ = await self.state.backlog("alice", 0, 150.0, 10)
        self.assertEqual([q.text for q in page], ["new"])
        to_bob = Enqueue(("bob",), "carol", "unicast", ("bob",), "x", 300.0, 5, 0.0, *ROOM, NO_ID)
        await self.state.enqueue(to_bob)
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
        to_alice = Enqueue(("alice",), "bob", "unicast", ("Alice",), "hi", 3.0, 10, 0.0, *ROOM, NO_ID)
        await self.state.enqueue(to_alice)
        reset = await self.state.reset("ALICE", "forgot it", 5.0)
        self.assertEqual(reset, Reset(1, "Alice", 5.0, "forgot it"))
        self.assertIsNone(await self.state.reset("alice", "again", 6.0))
        self.assertIsNone(await self.state.password_hash("alice"))
        self.assertEqual(await self.state.backlog("alice", 0, 0.0, 10), ([], 0))
        self.assertEqual((await self.read_log()).last_reset, 1)
        self.assertEqual(await self.state.resets_after(0), [Reset(1, "Alice", 5.0, "forgot it")])
        self.assertIsNone(await self.state.resets_after(1))

    async def test_a_first_password_is_set_only_if_the_name_has_none(self) -> None:
        self.assertIsNone(await self.state.set_first_password_hash("Alice", "$first", 2.0))
        self.assertEqual(await self.state.set_first_password_hash("ALICE", "$second", 3.0), "$first")
        self.assertEqual(await self.state.password_hash("alice"), "$first")
        await self.state.reset("alice", "forgot it", 4.0)
        self.assertIsNone(await self.state.set_first_password_hash("alice", "$third", 5.0))
        self.assertEqual(await self.state.password_hash("alice"), "$third")

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


KEEP = 10_000  # entries per conversation: more than any test keeps
LATER = 4_000_000_000.0  # a time to come (2096), ahead of any clock the state may keep its own


def stored(conversation: str, sender: str, at: float, text: str = "hi") -> Stored:
    """The entry of a message ``sender`` sent at ``at`` (a time of its own: ids of one millisecond are
    ordered only as one node makes them) in ``conversation``, with a fresh id."""
    clock = Clock()
    clock.advance(at)
    id, at = MessageIds(clock).make()
    if conversation == ALL:
        return Stored(id, at, ALL, sender, Kind.BROADCAST, (), text)
    others = tuple(p for p in participants(conversation) if p != username_key(sender))
    kind = Kind.UNICAST if len(others) == 1 else Kind.MULTICAST
    return Stored(id, at, conversation, sender, kind, others, text)


class HistoryContract(_Base):
    """The history's contract: ranges of a conversation by id, the latest of a member's conversations,
    retention, purges, and when each name was protected."""

    state: State

    async def reopened(self) -> State:
        raise NotImplementedError

    async def purge_time(self, name: str, at: float) -> float:
        """When ``name``'s history was last purged, by a purge dated ``at`` by its caller: ``at``, but
        for a store dating its purges by a clock of its own."""
        return at

    async def kept(self, *entries: Stored, keep: int = KEEP) -> list[Stored]:
        """Append ``entries`` (asked all at once, in order); them, once durable."""
        await self.state.append(to_keep(entries), keep)
        return list(entries)

    async def conversation(self, conversation: str, since: float = 0.0) -> list[Stored]:
        """Everything kept in ``conversation`` at or after ``since``, oldest first."""
        entries, more = await self.state.page_before(conversation, None, 1_000_000, since)
        self.assertFalse(more)
        return entries

    async def test_an_empty_conversation_has_no_entries(self) -> None:
        self.assertEqual(await self.state.page_before("alice,bob", None, 10, 0.0), ([], False))
        self.assertEqual(await self.state.page_after("alice,bob", "", 10, 0.0), ([], False))
        self.assertEqual(await self.state.latest("alice", 0.0, 10), [])
        self.assertEqual(await self.state.history_size(), 0)

    async def test_pages_before_a_position_are_its_newest_oldest_first_with_whether_older_exist(self) -> None:
        e = await self.kept(*(stored("alice,bob", "alice", 100.0 + i, f"m{i}") for i in range(5)))
        page = self.state.page_before
        self.assertEqual(await page("alice,bob", None, 2, 0.0), (e[3:5], True))
        self.assertEqual(await page("alice,bob", e[3].id, 2, 0.0), (e[1:3], True))
        self.assertEqual(await page("alice,bob", e[1].id, 2, 0.0), (e[0:1], False))
        self.assertEqual(await page("alice,bob", e[2].id, 2, 0.0), (e[0:2], False))  # exactly the rest
        self.assertEqual(await page("alice,bob", None, 5, 0.0), (e, False))
        self.assertEqual(await page("alice,bob", None, 6, 0.0), (e, False))
        self.assertEqual(await page("alice,bob", e[0].id, 2, 0.0), ([], False))

    async def test_pages_after_a_position_are_its_oldest_with_whether_newer_exist(self) -> None:
        e = await self.kept(*(stored("alice,bob", "bob", 100.0 + i, f"m{i}") for i in range(5)))
        page = self.state.page_after
        self.assertEqual(await page("alice,bob", "", 2, 0.0), (e[0:2], True))
        self.assertEqual(await page("alice,bob", e[1].id, 2, 0.0), (e[2:4], True))
        self.assertEqual(await page("alice,bob", e[2].id, 2, 0.0), (e[3:5], False))  # exactly the rest
        self.assertEqual(await page("alice,bob", e[3].id, 2, 0.0), (e[4:5], False))
        self.assertEqual(await page("alice,bob", e[4].id, 2, 0.0), ([], False))

    async def test_since_hides_older_entries_from_pages_and_from_more(self) -> None:
        e = await self.kept(*(stored("alice,bob", "alice", at) for at in (100.0, 200.0, 300.0, 400.0)))
        self.assertEqual(await self.conversation("alice,bob", since=200.0), e[1:])
        self.assertEqual(await self.state.page_before("alice,bob", None, 2, 200.0), (e[2:], True))
        self.assertEqual(await self.state.page_before("alice,bob", None, 3, 200.0), (e[1:], False))
        self.assertEqual(await self.state.page_before("alice,bob", e[2].id, 1, 200.0), (e[1:2], False))
        self.assertEqual(await self.state.page_after("alice,bob", "", 1, 250.0), (e[2:3], True))
        self.assertEqual(await self.state.page_after("alice,bob", "", 2, 250.0), (e[2:], False))

    async def test_an_append_asked_again_keeps_each_entry_once(self) -> None:
        """The hub asks again what an append failed to keep, whatever of it was written."""
        e = await self.kept(stored("alice,bob", "alice", 100.0, "a"), stored(ALL, "bob", 101.0, "b"))
        await self.kept(*e, stored("alice,bob", "bob", 102.0, "c"))
        self.assertEqual([x.text for x in await self.conversation("alice,bob")], ["a", "c"])
        self.assertEqual(await self.conversation(ALL), e[1:])
        self.assertEqual(await self.state.history_size(), 3)

    async def test_an_entry_of_the_millisecond_since_falls_in_counts_as_before_it(self) -> None:
        """A message's time is its id's millisecond: one of the protection's own millisecond is not
        after it, so it is hidden; from the next millisecond on, it is readable."""
        e = await self.kept(*(stored("alice,bob", "alice", at) for at in (200.0, 200.0009, 200.001)))
        self.assertEqual(await self.conversation("alice,bob", since=200.0004), e[2:])
        self.assertEqual(await self.state.page_after("alice,bob", "", 10, 200.0004), (e[2:], False))
        self.assertEqual(await self.state.latest("alice", 200.0004, 10), e[2:])

    async def test_any_id_or_time_is_a_position_and_conversations_stay_apart(self) -> None:
        first, last = await self.kept(stored("alice,bob", "alice", 100.0), stored("alice,bob", "bob", 300.0))
        (other,) = await self.kept(stored("alice,carol", "carol", 200.0))
        before, after = self.state.page_before, self.state.page_after
        self.assertEqual(await before("alice,bob", other.id, 10, 0.0), ([first], False))
        self.assertEqual(await after("alice,bob", other.id, 10, 0.0), ([last], False))
        self.assertEqual(await before("alice,bob", message_id_floor(300.0), 10, 0.0), ([first], False))
        self.assertEqual(await after("alice,bob", message_id_floor(300.0), 10, 0.0), ([last], False))
        self.assertEqual(await after("alice,bob", message_id_floor(300.001), 10, 0.0), ([], False))
        self.assertEqual(await self.conversation("alice,carol"), [other])
        self.assertEqual(await self.conversation("bob,carol"), [])

    async def test_latest_is_the_last_entry_of_each_direct_conversation_of_a_member(self) -> None:
        _, ac, abc, ab2, bc, _ = await self.kept(
            stored("alice,bob", "Alice", 100.0),
            stored("alice,carol", "carol", 200.0),
            stored("alice,bob,carol", "bob", 250.0),
            stored("alice,bob", "bob", 300.0),
            stored("bob,carol", "carol", 400.0),
            stored(ALL, "alice", 500.0),
        )
        self.assertEqual(await self.state.latest("ALICE", 0.0, 10), [ab2, abc, ac])
        self.assertEqual(await self.state.latest("bob", 0.0, 10), [bc, ab2, abc])
        self.assertEqual(await self.state.latest("alice", 0.0, 2), [ab2, abc])
        self.assertEqual(await self.state.latest("alice", 250.0, 10), [ab2, abc])
        self.assertEqual(await self.state.latest("dave", 0.0, 10), [])

    async def test_a_conversation_keeps_its_newest_entries_exactly_after_an_expiry(self) -> None:
        e = await self.kept(*(stored("alice,bob", "alice", 100.0 + i) for i in range(130)), keep=100)
        (other,) = await self.kept(stored(ALL, "bob", 50.0), keep=100)
        size = await self.state.history_size()
        self.assertLessEqual(size, 1 + 100 + 5)  # trimmed as it goes, a few percent over at most
        self.assertEqual(await self.state.expire_history(0.0, 100), size - 101)
        self.assertEqual(await self.conversation("alice,bob"), e[30:])
        self.assertEqual(await self.conversation(ALL), [other])
        self.assertEqual(await self.state.history_size(), 101)

    async def test_entries_older_than_the_oldest_kept_are_dropped(self) -> None:
        _, _, a2, b2 = await self.kept(
            stored("alice,bob", "alice", 100.0),
            stored(ALL, "bob", 200.0),
            stored("alice,bob", "bob", 250.0),
            stored(ALL, "alice", 300.0),
        )
        self.assertEqual(await self.state.expire_history(250.0, KEEP), 2)
        self.assertEqual(await self.conversation("alice,bob"), [a2])
        self.assertEqual(await self.conversation(ALL), [b2])
        self.assertEqual(await self.state.latest("alice", 0.0, 10), [a2])
        self.assertEqual(await self.state.expire_history(250.0, KEEP), 0)
        self.assertEqual(await self.state.history_size(), 2)

    async def test_a_purge_drops_what_a_sender_said_everywhere(self) -> None:
        bob_said, _, _, _, carol_said = await self.kept(
            stored("alice,bob", "bob", 100.0),
            stored("alice,bob", "Alice", 200.0),
            stored("alice,carol", "alice", 300.0),
            stored(ALL, "ALICE", 400.0),
            stored(ALL, "carol", 500.0),
        )
        self.assertEqual(await self.state.purge_history("alice", 600.0), 3)
        self.assertEqual(await self.conversation("alice,bob"), [bob_said])
        self.assertEqual(await self.conversation("alice,carol"), [])
        self.assertEqual(await self.conversation(ALL), [carol_said])
        self.assertEqual(await self.state.latest("alice", 0.0, 10), [bob_said])
        self.assertEqual(await self.state.history_size(), 2)
        self.assertEqual(await self.state.purge_history("alice", 600.0), 0)

    async def test_an_entry_sent_before_its_senders_purge_appended_after_it_is_not_kept(self) -> None:
        """attack37 F3: a purge holds against late writes (the hub's retry, another node's slow append):
        what its sender sent at or before the purge's time is left out, what it sent after is kept, and
        so is what others sent; a later purge dated earlier moves nothing back."""
        self.assertEqual(await self.state.purge_history("ALICE", 200.0), 0)
        self.assertEqual(await self.state.purge_history("alice", 150.0), 0)
        at = await self.purge_time("alice", 200.0)
        before, at_it = stored("alice,bob", "Alice", at - 100.0), stored(ALL, "alice", at)
        bob_said, after = stored("alice,bob", "bob", at - 50.0), stored("alice,bob", "alice", at + 0.1)
        await self.kept(before, at_it, bob_said, after)
        self.assertEqual(await self.conversation("alice,bob"), [bob_said, after])
        self.assertEqual(await self.conversation(ALL), [])
        self.assertEqual(await self.state.latest("alice", 0.0, 10), [after])
        later = (await self.kept(stored(ALL, "alice", at + 0.2)))[0]  # a pass all after the purge
        self.assertEqual(await self.conversation(ALL), [later])
        self.assertEqual(await self.state.history_size(), 3)

    async def test_protected_since_is_when_a_name_last_gained_a_password(self) -> None:
        # Times to come (2096): Redis's state takes none before its own clock (tests/test_state_redis.py).
        self.assertIsNone(await self.state.protected_since("alice"))
        await self.state.record_seen("Alice", LATER + 1.0)
        await self.state.set_password_hash("alice", "$h1", LATER + 10.0)
        await self.state.set_password_hash("ALICE", "$h2", LATER + 20.0)  # a new password: still since 10
        self.assertEqual(await self.state.protected_since("Alice"), LATER + 10.0)
        await self.state.reset("alice", "forgot it", LATER + 30.0)
        self.assertIsNone(await self.state.protected_since("alice"))
        await self.state.set_password_hash("alice", "$h3", LATER + 40.0)
        self.assertEqual(await self.state.protected_since("alice"), LATER + 40.0)
        await self.state.remove("alice", "gone", LATER + 50.0)
        self.assertIsNone(await self.state.protected_since("alice"))

    async def test_a_name_opens_at_most_its_bound_of_groups_a_day_and_may_send_to_any_with_a_history(self) -> None:
        day = 86_400.0

        async def opens(conversation: str, opener: str, at: float, most: int = 2) -> bool:
            return await self.state.open_group(conversation, opener, at, at - day, most)

        self.assertTrue(await opens("a,b,m", "m", 1000.0))
        self.assertTrue(await opens("a,c,m", "m", 1001.0))
        self.assertTrue(await opens("a,b,m", "m", 1002.0))  # opened already: not again
        self.assertFalse(await opens("b,c,m", "m", 1003.0))  # a third
        self.assertFalse(await opens("b,c,m", "m", 1003.0, most=0))
        self.assertTrue(await opens("b,c,m", "x", 1003.0))  # each name its own
        await self.kept(stored("b,c,d,m", "d", 1004.0))
        self.assertTrue(await opens("b,c,d,m", "m", 1005.0))  # it has a history
        self.assertTrue(await opens("b,c,m", "m", 1000.5 + day))  # a,b,m's day is over, not a,c,m's
        self.assertFalse(await opens("c,d,m", "m", 1000.5 + day))
        self.assertTrue(await opens("c,d,m", "m", 1001.5 + day))

    async def test_a_queued_message_keeps_its_id(self) -> None:
        id = message_id_floor(100.0)
        message = Enqueue(("bob",), "alice", "unicast", ("bob",), "hi", 100.0, 10, 0.0, *ROOM, message_id=id)
        await self.state.enqueue(message)
        page, _ = await self.state.backlog("bob", 0, 0.0, 10)
        self.assertEqual([q.message_id for q in page], [id])

    async def test_the_history_is_there_when_the_state_is_opened_again(self) -> None:
        await self.state.set_password_hash("alice", "$h", LATER)
        entries = await self.kept(stored("alice,bob", "alice", 100.0), stored(ALL, "bob", 200.0, "é ✓"))
        again = await self.reopened()
        self.assertEqual(await again.page_before("alice,bob", None, 10, 0.0), (entries[:1], False))
        self.assertEqual(await again.page_after(ALL, "", 10, 0.0), (entries[1:], False))
        self.assertEqual(await again.latest("bob", 0.0, 10), entries[:1])
        self.assertEqual(await again.protected_since("alice"), LATER)
        self.assertEqual(await again.history_size(), 2)


class ReadContract(_Base):
    """Read positions: how far each name has read each conversation, only forward, gone with its account;
    and the unread entries after a position."""

    state: State

    async def reopened(self) -> State:
        raise NotImplementedError

    async def kept(self, *entries: Stored, keep: int = KEEP) -> list[Stored]:
        raise NotImplementedError  # HistoryContract's: each store says when the entries are durable

    async def test_a_read_position_only_moves_forward_per_name_and_conversation(self) -> None:
        a, b, c = (message_id_floor(at) for at in (100.0, 200.0, 300.0))
        self.assertEqual(await self.state.read_positions("alice", [ALL, "alice,bob"]), {})
        self.assertEqual(await self.state.set_read("Alice", "alice,bob", b), b)
        self.assertEqual(await self.state.set_read("alice", "alice,bob", a), b)  # not back
        self.assertEqual(await self.state.set_read("ALICE", ALL, a), a)
        self.assertEqual(await self.state.set_read("bob", "alice,bob", c), c)
        self.assertEqual(await self.state.set_read("alice", ALL, c), c)
        both = {ALL: c, "alice,bob": b}
        self.assertEqual(await self.state.read_positions("alice", [ALL, "alice,bob", "alice,carol"]), both)
        self.assertEqual(await self.state.read_positions("Bob", ["alice,bob"]), {"alice,bob": c})
        self.assertEqual(await self.state.read_positions("alice", []), {})
        again = await self.reopened()
        self.assertEqual(await again.read_positions("alice", ["alice,bob", ALL]), {"alice,bob": b, ALL: c})

    async def test_a_reset_or_a_removal_drops_the_names_read_positions(self) -> None:
        position = message_id_floor(100.0)
        for name in ("alice", "bob"):
            await self.state.record_seen(name, 1.0)
            await self.state.set_password_hash(name, "$h", 2.0)
            await self.state.set_read(name, "alice,bob", position)
        await self.state.reset("ALICE", "forgot it", 3.0)
        self.assertEqual(await self.state.read_positions("alice", ["alice,bob"]), {})
        self.assertEqual(await self.state.read_positions("bob", ["alice,bob"]), {"alice,bob": position})
        await self.state.set_password_hash("alice", "$h", 4.0)
        earlier = message_id_floor(50.0)
        self.assertEqual(await self.state.set_read("alice", "alice,bob", earlier), earlier)  # none kept now
        await self.state.remove("alice", "gone", 5.0)
        self.assertEqual(await self.state.read_positions("alice", ["alice,bob"]), {})
        await self.state.remove("bob", "gone", 5.0)
        self.assertEqual(await self.state.read_positions("bob", ["alice,bob"]), {})

    async def test_the_history_keeps_positions_only_up_to_an_entry_its_reader_may_read(self) -> None:
        """History.mark_read on this state (issue 31): a made-up conversation, or one whose entries all
        came before the reader's protection, keeps no position; a position past the newest entry is it."""
        await self.state.record_seen("alice", 1.0)
        await self.state.set_password_hash("alice", "$h", LATER)  # Redis dates it no earlier than its clock
        newest = stored(ALL, "carol", 120.0)
        await self.kept(stored("alice,bob", "bob", 100.0), stored(ALL, "carol", 110.0), newest)
        history = History(Clock(), self.state, HistoryPolicy())
        far = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        for conversation in ("alice,zed", "alice,bob"):  # no entry at all; none since the protection
            refused = await self.assertFailure(history.mark_read("alice", conversation, far, frozenset()), Refused)
            self.assertIs(refused.refusal, Refusal.HISTORY_FORBIDDEN)
        self.assertEqual(await history.mark_read("alice", ALL, far, frozenset()), newest.id)
        self.assertEqual(await self.state.read_positions("alice", ["alice,zed", "alice,bob", ALL]), {ALL: newest.id})

    async def test_unread_counts_what_others_sent_after_a_position_up_to_a_cap(self) -> None:
        said = [stored("alice,bob", "Alice" if i % 3 == 0 else "bob", 100.0 + i) for i in range(9)]
        await self.kept(*said)
        await self.kept(stored(ALL, "carol", 50.0), stored("alice,carol", "carol", 150.0))
        unread = self.state.unread
        self.assertEqual(await unread("alice,bob", "", "alice", 100), 6)  # bob's: 1 2 4 5 7 8
        self.assertEqual(await unread("alice,bob", "", "BOB", 100), 3)
        self.assertEqual(await unread("alice,bob", said[4].id, "alice", 100), 3)  # after 4: 5 7 8
        self.assertEqual(await unread("alice,bob", message_id_floor(104.5), "alice", 100), 3)  # a time
        self.assertEqual(await unread("alice,bob", said[8].id, "alice", 100), 0)
        self.assertEqual(await unread("alice,bob", "", "alice", 4), 4)
        self.assertEqual(await unread("alice,bob", "", "alice", 0), 0)
        self.assertEqual(await unread("alice,bob", "", "carol", 100), 9)
        self.assertEqual(await unread("bob,carol", "", "bob", 100), 0)
        self.assertEqual(await unread(ALL, "", "alice", 100), 1)

    async def test_an_entry_kept_late_takes_its_place_by_id_before_a_position_moved_past_it(self) -> None:
        """Issue 30: a node's message kept late (its store away: the hub's append retry) has the id of when
        it was sent, before what another node kept meanwhile: a reader whose position moved past it does
        not count it unread, and the history has it in its place (docs/protocol.rst, "Durability")."""
        late, meanwhile = stored(ALL, "carol", 100.0, "kept late"), stored(ALL, "bob", 101.0)
        await self.kept(meanwhile)
        position = await self.state.set_read("alice", ALL, meanwhile.id)
        await self.kept(late)
        self.assertEqual(await self.state.unread(ALL, position, "alice", 100), 0)
        self.assertEqual(await self.state.page_before(ALL, None, 10, 0.0), ([late, meanwhile], False))

    async def test_unread_passes_the_readers_own_entries_beyond_the_cap(self) -> None:
        own = [stored("alice,bob", "alice", 100.0 + i) for i in range(25)]
        others = [stored("alice,bob", "bob", 200.0 + i) for i in range(3)]
        await self.kept(*own, *others)
        self.assertEqual(await self.state.unread("alice,bob", "", "alice", 10), 3)
        self.assertEqual(await self.state.unread("alice,bob", "", "alice", 2), 2)
        self.assertEqual(await self.state.unread("alice,bob", own[24].id, "alice", 3), 3)


def plain(answer: Refusal | Member) -> Refusal | Member:
    """``answer`` without its membership's number (each store gives its own: Member.joined)."""
    return replace(answer, joined=0) if isinstance(answer, Member) else answer


def dev(*members: Member) -> RoomRecord:
    """#Dev as alice created it at 10 (its founder, operator), with ``members`` besides."""
    record = RoomRecord("#Dev", 10.0, "Alice", members={"alice": Member("Alice", op=True, since=10.0)})
    record.members.update((username_key(m.name), m) for m in members)
    return record


class RoomContract(_Base):
    """The rooms: each with its settings, members (op, voice) and bans, by key; kept across a restart;
    a name's memberships gone with its password or its name."""

    state: State

    async def reopened(self) -> State:
        raise NotImplementedError

    async def test_a_room_is_kept_with_its_founder_and_read_back_after_a_restart(self) -> None:
        self.assertEqual(await self.state.rooms(), [])
        await self.state.create_room(dev(), 50)
        await self.state.create_room(RoomRecord("#ops", 11.5, None, modes="", limit=3), 50)
        expected = [dev(), RoomRecord("#ops", 11.5, None, modes="", limit=3)]
        self.assertEqual(await self.state.rooms(), expected)
        self.assertEqual(await (await self.reopened()).rooms(), expected)

    async def test_a_server_starting_reads_the_rooms_with_the_log(self) -> None:
        await self.state.create_room(dev(), 50)
        self.assertEqual((await (await self.reopened()).read_log()).rooms, [dev()])

    async def test_members_come_in_and_go_out_with_op_and_voice(self) -> None:
        await self.state.create_room(dev(), 50)
        bob = await self.state.enter("#dev", Joining("bob", 12.0), 10, 50)
        carol = await self.state.enter("#dev", Joining("Carol", 13.25), 10, 50)
        assert isinstance(bob, Member) and isinstance(carol, Member)
        self.assertEqual(bob, Member("bob", since=12.0, joined=bob.joined))
        self.assertEqual(carol, Member("Carol", since=13.25, joined=carol.joined))
        self.assertGreater(carol.joined, bob.joined)
        self.assertGreater(bob.joined, 0)
        memberships = {"bob": bob.joined, "alice": 0}
        kept = await self.state.set_modes("#dev", [("+o", "bob"), ("-o", "Alice")], "Alice", 14.0, memberships)
        await self.state.remove_member("#dev", "carol")
        assert kept is not None
        bob = Member("bob", op=True, since=12.0, version=kept.version, joined=bob.joined)
        expected = replace(dev(bob), version=kept.version)
        expected.members["alice"] = Member("Alice", since=10.0, version=kept.version)
        self.assertEqual(await (await self.reopened()).rooms(), [expected])

    async def test_an_op_or_voice_asked_of_a_membership_ended_is_not_made_on_the_next(self) -> None:
        """bob leaves #dev and enters it again (on another node) as alice's +o of him is written: her change
        was asked of his first membership, which his second's number tells apart (Member.joined; his
        time may be the same), and is passed over as of a member not kept; one of the second is made."""
        await self.state.create_room(dev(), 50)
        first = await self.state.enter("#dev", Joining("bob", 12.0), 10, 50)
        await self.state.remove_member("#dev", "bob")
        again = await self.state.enter("#dev", Joining("bob", 12.0), 10, 50)
        assert isinstance(first, Member) and isinstance(again, Member)
        self.assertGreater(again.joined, first.joined)
        asked = {"bob": first.joined, "alice": 0}
        kept = await self.state.set_modes("#dev", [("+o", "bob"), ("+v", "Alice")], "Alice", 13.0, asked)
        assert kept is not None
        self.assertEqual(kept.members, (Member("Alice", True, True, 10.0, kept.version),))
        self.assertEqual((await self.state.rooms())[0].members["bob"], again)
        kept = await self.state.set_modes("#dev", [("+o", "bob")], "Alice", 14.0, {"bob": again.joined})
        assert kept is not None
        opped = replace(again, op=True, version=kept.version)
        self.assertEqual(kept.members, (opped,))
        self.assertEqual((await (await self.reopened()).rooms())[0].members["bob"], opped)

    async def test_the_topic_and_founder_are_set_not_the_modes_or_members(self) -> None:
        await self.state.create_room(dev(), 50)
        changed = RoomRecord("#Dev", 10.0, None, "Ship it", "Alice", 20.5, "iknt", "sesame", 20, 7)  # no founder now
        changed.members["bob"] = Member("bob")  # members go by enter only
        await self.state.set_room(changed)
        expected = replace(dev(), founder=None, topic="Ship it", topic_by="Alice", topic_at=20.5)
        self.assertEqual(await (await self.reopened()).rooms(), [expected])
        cleared = replace(dev(), topic_by="bob", topic_at=21.0)
        await self.state.set_room(cleared)  # the topic (later) taken off, the founder back
        self.assertEqual(await self.state.rooms(), [cleared])

    async def test_mode_changes_are_made_in_turn_each_with_a_newer_version(self) -> None:
        """Set at once on several nodes, the store orders them: each node takes the newer (RoomStore.set_modes),
        the bans with the rest."""
        await self.state.create_room(dev(Member("bob", since=12.0)), 50)
        changes = [("+i", None), ("+k", "a"), ("+l", "5"), ("+o", "BOB"), ("+b", "eve!*@*"), ("-t", None)]
        memberships = {"alice": 0, "bob": 0, "zed": 0}
        first = await self.state.set_modes("#dev", changes, "Alice", 20.5, memberships)
        assert first is not None
        self.assertEqual((first.modes, first.key, first.limit), ("in", "a", 5))
        self.assertGreater(first.version, 0)
        self.assertEqual(first.members, (Member("bob", op=True, since=12.0, version=first.version),))
        self.assertEqual(first.bans, (Ban("eve!*@*", "Alice", 20.5),))
        changes = [("+k", "b"), ("+m", None), ("-l", None), ("+v", "bob"), ("-o", "alice"), ("+o", "zed"), ("-i", None)]
        changes += [("-b", "EVE!*@*"), ("+b", "*!*@192.0.2.*")]
        second = await self.state.set_modes("#dev", changes, "bob", 21.5, memberships)
        assert second is not None
        self.assertGreater(second.version, first.version)
        self.assertEqual((second.modes, second.key, second.limit), ("mn", "b", None))
        bob, alice = Member("bob", True, True, 12.0, second.version), Member("Alice", False, False, 10.0, second.version)
        self.assertEqual(second.members, (bob, alice))  # each named once, zed (no member) passed over
        ban = Ban("*!*@192.0.2.*", "bob", 21.5)
        self.assertEqual(second.bans, (ban,))
        expected = replace(dev(), modes="mn", key="b", version=second.version, bans={ban.mask: ban})
        expected.members.update(alice=alice, bob=bob)
        self.assertEqual(await (await self.reopened()).rooms(), [expected])
        self.assertIsNone(await self.state.set_modes("#nowhere", [("+i", None), ("+b", "x!*@*")], "bob", 22.0, {}))
        self.assertEqual(await self.state.rooms(), [expected])
        await self.state.create_room(RoomRecord("#copied", 11.0, None, version=second.version + 5), 50)
        copied = await self.state.set_modes("#copied", [("+i", None)], "bob", 22.0, {})  # another store's numbers
        assert copied is not None
        self.assertGreater(copied.version, second.version + 5)

    async def test_setting_the_topic_keeps_the_modes_set_meanwhile(self) -> None:
        """A topic written from a room's record does not undo a mode change another node made meanwhile."""
        await self.state.create_room(dev(), 50)
        kept = await self.state.set_modes("#dev", [("+k", "a"), ("+s", None)], "Alice", 15.0, {})
        assert kept is not None
        await self.state.set_room(replace(dev(), topic="t", topic_by="Alice", topic_at=20.0))
        expected = replace(dev(), topic="t", topic_by="Alice", topic_at=20.0, modes="nst", key="a", version=kept.version)
        self.assertEqual(await (await self.reopened()).rooms(), [expected])

    async def test_bans_are_kept_by_mask_until_lifted(self) -> None:
        """Each write answers every ban kept, oldest first (then by mask key)."""
        await self.state.create_room(dev(), 50)
        await self.state.set_modes("#dev", [("+b", "Mallory!*@*"), ("+b", "eve!*@*")], "Alice", 30.0, {})
        await self.state.set_modes("#dev", [("+b", "EVE!*@*"), ("+b", "*!~x@192.0.2.*")], "bob", 32.0, {})  # eve replaced
        kept = await self.state.set_modes("#dev", [("-b", "mallory!*@*"), ("-b", "nobody!*@*")], "Alice", 33.0, {})
        assert kept is not None
        bans = (Ban("*!~x@192.0.2.*", "bob", 32.0), Ban("EVE!*@*", "bob", 32.0))
        self.assertEqual(kept.bans, bans)
        expected = replace(dev(), version=kept.version, bans={mask_key(ban.mask): ban for ban in bans})
        self.assertEqual(await (await self.reopened()).rooms(), [expected])

    async def test_a_ban_past_the_most_a_room_holds_is_refused_and_nothing_of_its_change_written(self) -> None:
        """Nodes banning at once may each see room for one more ban: the store, which has them all, keeps
        at most ROOM_BANS_MAX (BAN_LIST_FULL, as the hub refuses; the changes taken in turn: a mask lifted
        first makes room, one banned again takes none)."""
        await self.state.create_room(dev(), 50)
        full = [("+b", f"m{i}!*@*") for i in range(ROOM_BANS_MAX)]
        kept = await self.state.set_modes("#dev", full, "Alice", 30.0, {})
        assert kept is not None and not isinstance(kept, Refusal)
        expected = replace(dev(), version=kept.version, bans={f"m{i}!*@*": Ban(f"m{i}!*@*", "Alice", 30.0) for i in range(ROOM_BANS_MAX)})
        refused = [("+i", None), ("+o", "Alice"), ("+b", "M0!*@*"), ("+b", "new!*@*")]  # m0 banned again: no room
        self.assertEqual(await self.state.set_modes("#dev", refused, "bob", 31.0, {}), Refusal.BAN_LIST_FULL)
        self.assertEqual(await self.state.rooms(), [expected])
        kept = await self.state.set_modes("#dev", [("-b", "m0!*@*"), ("+b", "new!*@*"), ("+b", "m1!*@*")], "bob", 32.0, {})
        assert kept is not None and not isinstance(kept, Refusal)
        self.assertEqual(len(kept.bans), ROOM_BANS_MAX)
        self.assertEqual(kept.bans[-2:], (Ban("m1!*@*", "bob", 32.0), Ban("new!*@*", "bob", 32.0)))

    async def test_a_room_kept_already_is_not_created_again_and_its_creator_is_no_member(self) -> None:
        """Created on another node a moment before, or not read on this one: False, nothing written, not
        even counted; the creator joins it as any room (attack35: an operator of a kept +ik room)."""
        record = replace(dev(), modes="i", key="sekrit")
        await self.state.create_room(record, 50)
        banned = await self.state.set_modes("#dev", [("+b", "eve!*@*")], "Alice", 31.0, {})
        assert banned is not None
        await self.state.set_room(replace(record, topic="kept"))
        zed = Member("zed", op=True, since=9.5)
        earlier = RoomRecord("#DEV", 9.5, "zed", modes="", members={"zed": zed}, bans={"x": Ban("x", "zed", 9.5)})
        self.assertIs(await self.state.create_room(earlier, 50), False)
        self.assertIs(await self.state.create_room(earlier, 0), False)
        expected = replace(record, topic="kept", version=banned.version, bans={"eve!*@*": Ban("eve!*@*", "Alice", 31.0)})
        self.assertEqual(await (await self.reopened()).rooms(), [expected])
        self.assertEqual(await self.state.room("#dev"), expected)

    async def test_a_later_topic_kept_stays_when_an_earlier_one_comes(self) -> None:
        """Topics set at once on two nodes: the later (time, then setter) stays, the founder is set."""
        await self.state.create_room(dev(), 50)
        later = replace(dev(), topic="from bob", topic_by="bob", topic_at=1_764_000_000.123456)
        await self.state.set_room(later)
        earlier = replace(dev(), topic="from alice", topic_by="alice", topic_at=1_764_000_000.123456)
        await self.state.set_room(earlier)  # the same time: bob's name comes later
        self.assertEqual(await (await self.reopened()).rooms(), [later])
        latest = replace(dev(), topic="a/b \u00e9", topic_by="alice", topic_at=1_764_000_001.5)
        await self.state.set_room(latest)
        await self.state.set_room(replace(later, founder=None))
        self.assertEqual(await self.state.rooms(), [replace(latest, founder=None)])

    async def test_entering_counts_the_members_and_the_rooms_as_kept(self) -> None:
        """Joins on several nodes at once: the store's count decides (+l, --max-rooms-per-user)."""
        await self.state.create_room(dev(Member("bob", since=11.0)), 50)
        await self.state.create_room(RoomRecord("#ops", 11.0, "bob", members={"bob": Member("bob", since=11.0)}), 50)
        carol, dave = Joining("Carol", 12.0), Joining("dave", 12.0)
        self.assertIs(await self.state.enter("#dev", carol, 2, 50), Refusal.ROOM_FULL)
        self.assertEqual(plain(await self.state.enter("#dev", carol, 3, 50)), Member("Carol", since=12.0))
        self.assertIs(await self.state.enter("#dev", dave, 3, 50), Refusal.ROOM_FULL)
        kept = await self.state.enter("#dev", Joining("BOB", 14.0), 3, 50)
        self.assertEqual(kept, Member("bob", since=11.0))  # kept already: as kept
        bob = Joining("bob", 13.0)
        self.assertIs(await self.state.enter("#new", bob, 10, 2), Refusal.NO_SUCH_ROOM)  # nothing kept
        await self.state.create_room(RoomRecord("#new", 13.0, "dave", members={"dave": Member("dave")}), 50)
        self.assertIs(await self.state.enter("#new", bob, 10, 2), Refusal.TOO_MANY_ROOMS)
        rooms = await (await self.reopened()).rooms()
        self.assertEqual([sorted(r.members) for r in rooms], [["alice", "bob", "carol"], ["dave"], ["bob"]])
        self.assertEqual(rooms[0].members["bob"], Member("bob", since=11.0))

    async def test_a_join_is_decided_by_the_rooms_bans_modes_key_and_limit_as_kept(self) -> None:
        """Set a moment ago on another node, not heard yet on the joiner's: what the store keeps decides,
        and a refused join writes nothing (attack35: 1 JOIN of 30 got past +ik set on another node)."""
        await self.state.create_room(dev(Member("bob", since=11.0)), 50)
        erin = Joining("erin", 12.0, masks=("erin!~e@msgsvc", "erin!~e@192.0.2.7"))
        await self.state.set_modes("#dev", [("+i", None)], "Alice", 12.5, {})
        self.assertIs(await self.state.enter("#dev", erin, 10, 50), Refusal.INVITE_ONLY)
        await self.state.set_modes("#dev", [("-i", None), ("+k", "sekrit")], "Alice", 12.5, {})
        self.assertIs(await self.state.enter("#dev", erin, 10, 50), Refusal.BAD_KEY)
        self.assertIs(await self.state.enter("#dev", replace(erin, key="Sekrit"), 10, 50), Refusal.BAD_KEY)
        await self.state.set_modes("#dev", [("+l", "2")], "Alice", 12.5, {})
        self.assertIs(await self.state.enter("#dev", replace(erin, key="sekrit"), 10, 50), Refusal.ROOM_FULL)
        await self.state.set_modes("#dev", [("-l", None), ("+i", None), ("+b", "*!*@192.0.2.*")], "Alice", 20.0, {})
        let_in = replace(erin, key="sekrit")
        self.assertIs(await self.state.enter("#dev", let_in, 10, 50), Refusal.BANNED)
        self.assertIs(await self.state.invite("#dev", "erin", True, 20.5), True)  # an operator's, on another node
        self.assertIs(await self.state.enter("#dev", erin, 10, 50), Refusal.BAD_KEY)  # refused: not used up
        self.assertEqual([sorted(r.members) for r in await self.state.rooms()], [["alice", "bob"]])
        self.assertEqual(plain(await self.state.enter("#dev", let_in, 10, 50)), Member("erin", since=12.0))
        self.assertIs(await self.state.enter("#dev", Joining("zed", 13.0, masks=("zed!z@msgsvc",)), 10, 50), Refusal.INVITE_ONLY)
        self.assertEqual([sorted(r.members) for r in await (await self.reopened()).rooms()], [["alice", "bob", "erin"]])

    async def test_the_rooms_protected_founder_enters_it_as_its_operator_past_invite_only_key_and_limit(self) -> None:
        await self.state.create_room(dev(Member("bob", since=11.0)), 50)
        await self.state.set_modes("#dev", [("+i", None), ("+k", "sekrit"), ("+l", "2")], "Alice", 11.0, {})
        await self.state.remove_member("#dev", "alice")
        await self.state.invite("#dev", "carol", True, 11.25)
        await self.state.enter("#dev", Joining("carol", 11.5, "sekrit"), 10, 50)
        alice = Joining("Alice", 13.0, masks=("alice!alice@msgsvc",))
        self.assertIs(await self.state.enter("#dev", alice, 10, 50), Refusal.INVITE_ONLY)  # not protected
        await self.state.record_seen("Alice", 1.0)
        await self.state.set_password_hash("Alice", "$h", 2.0)
        self.assertIs(await self.state.enter("#dev", alice, 2, 50), Refusal.ROOM_FULL)  # the server's limit holds
        await self.state.set_modes("#dev", [("+b", "alice!*@*")], "bob", 14.0, {})
        self.assertIs(await self.state.enter("#dev", alice, 3, 50), Refusal.BANNED)  # a ban too
        await self.state.set_modes("#dev", [("-b", "alice!*@*")], "bob", 14.5, {})
        self.assertEqual(plain(await self.state.enter("#dev", alice, 3, 50)), Member("Alice", op=True, since=13.0))
        await self.state.invite("#dev", "dave", True, 13.5)
        self.assertIs(await self.state.enter("#dev", Joining("dave", 14.0, "sekrit"), 10, 50), Refusal.ROOM_FULL)
        rooms = await (await self.reopened()).rooms()
        self.assertEqual(plain(rooms[0].members["alice"]), Member("Alice", op=True, since=13.0))

    async def test_a_ban_matches_as_the_hubs_globs_do(self) -> None:
        """Whatever matches a mask in the store (Redis's in Lua, whose patterns are no globs): as
        msgsvc.hub.globs, a character at a time, ``*`` and ``?`` only."""
        cases = [
            ("eve!*@*", "eve!e@msgsvc"),
            ("eve!*@*", "evel!e@msgsvc"),
            ("e?e!*@*", "eve!e@msgsvc"),
            ("e?e!*@*", "ee!e@msgsvc"),
            ("*", "eve!e@msgsvc"),
            ("**", "x"),
            ("?*?", "x"),
            ("?*?", "xy"),
            ("*a*a*a*a*a*a*b", "a" * 60),
            ("*a*a*b", "xaxaxb"),
            ("*!*@192.0.2.*", "eve!e@192.0.2.77"),
            ("*!*@192.0.2.*", "eve!e@192.0.20.7"),
            ("*!*@2001:db8:1:2::/64", "eve!e@2001:db8:1:2::/64"),
            ("%a+!*@*", "eve!e@msgsvc"),  # Lua's pattern characters are themselves
            ("%a+!*@*", "%a+!e@msgsvc"),
            (".*", "eve!e@msgsvc"),
            ("[ev]*", "eve!e@msgsvc"),
            ("[ev]*", "[ev]x!e@msgsvc"),
            ("eve!e@msgsvc", "eve!e@msgsvc"),
            ("eve!e@msgsvc", "eve!e@msgsvcx"),
            ("e-v*", "e-v!e@h"),
            ("e-v*", "ev!e@h"),
            ("^e$*", "^e$!e@h"),
            ("100%*", "100%!e@h"),
            ("a**b", "ab"),
            ("*?", ""),
            ("?ve!*@*", "\u00e9ve!e@h"),  # one character, two bytes of UTF-8
            ("\u00e9*", "\u00e9ve!e@h"),
            ("\u00e9?", "\u00e9\u00e9"),
            ("*??!*", "eve!e@h"),  # leading '?'s skipped by count
            ("*????!*", "eve!e@h"),
            ("*???", "ab"),  # more characters besides '*' than the name
            ("*???", "abc"),
            ("a*??*c", "abc"),  # the last part after the '?'s
            ("a*??*c", "abxc"),
            ("*\u00e9?*", "x\u00e9\u00e9y"),
            ("*??\u00e9", "\u00e9\u00e9\u00e9"),
            ("???", "\u00e9\u00e9"),
        ]
        verdicts = []
        for n, (mask, identity) in enumerate(cases):
            room = f"#r{n}"
            record = RoomRecord(room, 10.0, None, bans={mask: Ban(mask, "op", 10.0)})
            await self.state.create_room(record, 50)
            entered = await self.state.enter(room, Joining("eve", 11.0, masks=(identity,)), 10, 50)
            verdicts.append(entered is Refusal.BANNED)
        self.assertEqual(verdicts, [glob_match(mask, identity) for mask, identity in cases])
        self.assertEqual(verdicts.count(True), 23)

    async def test_creating_counts_the_founders_rooms_as_kept(self) -> None:
        """Rooms created at once on several nodes by one name: the store's count decides (--max-rooms-per-user)."""
        await self.state.create_room(dev(), 2)
        bob = Member("bob", op=True, since=11.0)
        await self.state.create_room(RoomRecord("#ops", 11.0, "bob", members={"bob": bob}), 2)
        self.assertEqual(plain(await self.state.enter("#ops", Joining("alice", 12.0), 10, 2)), Member("alice", since=12.0))
        alices = RoomRecord("#new", 13.0, "alice", members={"alice": Member("alice", op=True, since=13.0)})
        self.assertIs(await self.state.create_room(alices, 2), Refusal.TOO_MANY_ROOMS)  # nothing kept
        self.assertIs(await self.state.create_room(alices, 3), True)
        rooms = await (await self.reopened()).rooms()
        self.assertEqual([(r.name, sorted(r.members)) for r in rooms], [("#Dev", ["alice"]), ("#new", ["alice"]), ("#ops", ["alice", "bob"])])
        self.assertIs(await self.state.create_room(RoomRecord("#x", 14.0, "bob", members={"bob": bob}), 2), True)

    async def test_a_deleted_room_goes_with_its_members_and_bans(self) -> None:
        await self.state.create_room(dev(Member("bob", since=12.0)), 50)
        await self.state.set_modes("#dev", [("+b", "eve!*@*")], "Alice", 31.0, {})
        eve = Joining("eve", 31.5, masks=("eve!e@h",))
        self.assertIs(await self.state.enter("#dev", eve, 10, 50), Refusal.BANNED)
        await self.state.delete_room("#dev")
        self.assertEqual(await self.state.rooms(), [])
        # Whatever comes for it after its deletion (from another node, late) makes nothing again.
        self.assertIs(await self.state.enter("#dev", Joining("bob", 13.0), 10, 50), Refusal.NO_SUCH_ROOM)
        await self.state.set_room(replace(dev(), topic="late"))
        self.assertIsNone(await self.state.set_modes("#dev", [("+i", None), ("+o", "bob"), ("+b", "x!*@*")], "bob", 32.0, {}))
        self.assertEqual(await (await self.reopened()).rooms(), [])
        again = RoomRecord("#dev", 40.0, "carol", members={"carol": Member("carol", op=True, since=40.0)})
        await self.state.create_room(again, 50)
        self.assertEqual(await self.state.rooms(), [again])  # nothing of the room before
        self.assertEqual(plain(await self.state.enter("#dev", eve, 10, 50)), Member("eve", since=31.5))  # nor a ban

    async def test_a_room_emptied_on_one_node_as_a_name_joins_it_on_another_is_kept_with_the_joiner(self) -> None:
        """Its last member's node vacates it; the join the store kept first stands, with the room as it was,
        and is read back whole; a join after the room went is refused, and makes nothing."""
        record = dev()
        record.modes, record.key = "i", "sekrit"
        await self.state.create_room(record, 50)
        banned = await self.state.set_modes("#dev", [("+b", "eve!*@*")], "Alice", 31.0, {})
        assert banned is not None
        await self.state.invite("#dev", "bob", True, 11.5)
        bob = await self.state.enter("#dev", Joining("bob", 12.0, "sekrit"), 10, 50)
        assert isinstance(bob, Member)
        self.assertEqual(bob, Member("bob", since=12.0, joined=bob.joined))
        self.assertGreater(bob.joined, banned.version)
        await self.state.remove_member("#dev", "alice")
        self.assertTrue(await self.state.vacate_room("#dev"))  # alice's node saw it empty: it stays
        kept = replace(record, version=bob.joined, members={"bob": bob}, bans={"eve!*@*": Ban("eve!*@*", "Alice", 31.0)})
        self.assertEqual(await (await self.reopened()).rooms(), [kept])
        self.assertEqual(await self.state.room("#dev"), kept)
        await self.state.remove_member("#dev", "bob")
        self.assertFalse(await self.state.vacate_room("#dev"))
        self.assertIsNone(await self.state.room("#dev"))
        self.assertIsNone(await self.state.invite("#dev", "bob", True, 32.0))  # nothing kept
        self.assertIs(await self.state.enter("#dev", Joining("bob", 12.0, "sekrit"), 10, 50), Refusal.NO_SUCH_ROOM)
        self.assertEqual(await (await self.reopened()).rooms(), [])

    async def test_an_operators_invitation_lets_its_name_in_once_past_invite_only_and_the_bans(self) -> None:
        """An invitation is the store's: made on one node, used by a JOIN on any (attack36 F4: the nodes
        kept them, and a JOIN on another node right after the INVITE was refused); another member's lets
        nobody in; one pending as much is not kept again; entering uses it up; it is its name's only."""
        await self.state.create_room(dev(Member("bob", since=11.0)), 50)
        await self.state.set_modes("#dev", [("+i", None), ("+b", "eve!*@*")], "Alice", 12.0, {})
        eve, mallory = Joining("eve", 13.0, masks=("eve!e@msgsvc",)), Joining("mallory", 13.0, masks=("mallory!m@h",))
        self.assertIs(await self.state.invite("#dev", "eve", False, 12.5), True)  # bob's
        self.assertIs(await self.state.invite("#dev", "eve", False, 12.6), False)  # pending already
        self.assertIs(await self.state.enter("#dev", eve, 10, 50), Refusal.BANNED)
        self.assertIs(await self.state.invite("#dev", "eve", True, 12.7), True)  # an operator's: lets her in
        self.assertIs(await self.state.invite("#dev", "eve", True, 12.8), False)
        self.assertIs(await self.state.invite("#dev", "eve", False, 12.9), False)
        self.assertIs(await self.state.enter("#dev", mallory, 10, 50), Refusal.INVITE_ONLY)  # not hers
        self.assertEqual(plain(await self.state.enter("#dev", eve, 10, 50)), Member("eve", since=13.0))
        await self.state.remove_member("#dev", "eve")
        self.assertIs(await self.state.enter("#dev", eve, 10, 50), Refusal.BANNED)  # used up
        self.assertIs(await self.state.invite("#dev", "eve", True, 14.0), True)  # a new one
        self.assertEqual(plain(await self.state.enter("#dev", eve, 10, 50)), Member("eve", since=13.0))
        self.assertIs(await self.state.enter("#dev", mallory, 10, 50), Refusal.INVITE_ONLY)

    async def test_invitations_go_with_their_room_and_when_their_name_is_free(self) -> None:
        await self.state.create_room(dev(), 50)
        await self.state.create_room(RoomRecord("#ops", 11.0, "bob", modes="i", members={"bob": Member("bob")}), 50)
        await self.state.set_modes("#dev", [("+i", None)], "Alice", 12.0, {})
        for room in ("#dev", "#ops"):
            for name in ("carol", "dave"):
                await self.state.invite(room, name, True, 12.5)
        await self.state.uninvite("carol")  # an unprotected carol left: the next carol is not invited
        for room in ("#dev", "#ops"):
            self.assertIs(await self.state.enter(room, Joining("carol", 13.0), 10, 50), Refusal.INVITE_ONLY)
        await self.state.delete_room("#dev")
        await self.state.remove_member("#ops", "bob")
        self.assertFalse(await self.state.vacate_room("#ops"))
        for room in ("#dev", "#ops"):  # made anew: none of the invitations before
            await self.state.create_room(RoomRecord(room, 20.0, "bob", modes="i", members={"bob": Member("bob")}), 50)
            self.assertIs(await self.state.enter(room, Joining("dave", 21.0), 10, 50), Refusal.INVITE_ONLY)

    async def test_a_room_keeps_100_invitations_a_new_one_ending_the_oldest(self) -> None:
        """An operator inviting name after name: the room keeps the newest 100 (by time, then name key)."""
        await self.state.create_room(RoomRecord("#dev", 10.0, "bob", modes="i", members={"bob": Member("bob")}), 50)
        for n in range(150):
            self.assertIs(await self.state.invite("#dev", f"u{n:03d}", True, 11.0 + n), True)
        self.assertIs(await self.state.invite("#dev", "u149", True, 300.0), False)
        refused = [n for n in (0, 49, 50, 149) if await self.state.enter("#dev", Joining(f"u{n:03d}", 400.0), 1000, 50) is Refusal.INVITE_ONLY]
        self.assertEqual(refused, [0, 49])
        await self.state.create_room(RoomRecord("#ops", 10.0, "bob", modes="i", members={"bob": Member("bob")}), 50)
        for n in reversed(range(101)):  # invited at once: the first name key is the oldest
            await self.state.invite("#ops", f"v{n:03d}", True, 500.0)
        refused = [n for n in (0, 1, 100) if await self.state.enter("#ops", Joining(f"v{n:03d}", 502.0), 1000, 50) is Refusal.INVITE_ONLY]
        self.assertEqual(refused, [0])

    async def test_a_reset_or_a_removal_drops_the_names_memberships(self) -> None:
        for name in ("alice", "bob"):
            await self.state.record_seen(name, 1.0)
            await self.state.set_password_hash(name, "$h", 2.0)
        await self.state.create_room(dev(Member("bob", since=12.0)), 50)
        ops = RoomRecord("#ops", 11.0, "bob", members={"bob": Member("bob", op=True, since=11.0)})
        await self.state.create_room(ops, 50)
        await self.state.enter("#ops", Joining("Alice", 13.0), 10, 50)
        banned = await self.state.set_modes("#ops", [("+b", "alice!*@*")], "bob", 14.0, {})
        assert banned is not None
        ops.version = banned.version
        await self.state.reset("ALICE", "forgot it", 3.0)
        without_alice = dev(Member("bob", since=12.0))
        del without_alice.members["alice"]
        ops.bans["alice!*@*"] = Ban("alice!*@*", "bob", 14.0)  # a ban stays: it names the name, not the account
        self.assertEqual(await (await self.reopened()).rooms(), [without_alice, ops])
        await self.state.remove("bob", "gone", 4.0)
        del without_alice.members["bob"], ops.members["bob"]
        self.assertEqual(await (await self.reopened()).rooms(), [without_alice, ops])


class SqliteContractTests(StateContract, HistoryContract, ReadContract, RoomContract, TestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        self.clock = Clock()  # when the history's entries are written
        Database(self.path).close()
        self.state = self.started()

    def started(self) -> SqliteStore:
        store = SqliteStore(reactor, self.path, self.clock)  # reads the log as it is made
        store.startService()
        self.addCleanup(store.stopService)
        return store

    async def kept(self, *entries: Stored, keep: int = KEEP) -> list[Stored]:
        appended = self.state.append(to_keep(entries), keep)
        self.clock.advance(HISTORY_INTERVAL)  # what waited that long is written
        await appended
        return list(entries)

    async def reopened(self) -> State:
        return self.started()

    async def test_invitations_end_with_the_server(self) -> None:
        """Kept in the server's memory (docs/protocol.rst "Rooms"), as an IRC server's: a restart ends them."""
        await self.state.create_room(RoomRecord("#dev", 10.0, "bob", modes="i", members={"bob": Member("bob")}), 50)
        self.assertIs(await self.state.invite("#dev", "carol", True, 11.0), True)
        again = await self.reopened()
        self.assertIs(await again.enter("#dev", Joining("carol", 12.0), 10, 50), Refusal.INVITE_ONLY)
        self.assertEqual(plain(await self.state.enter("#dev", Joining("carol", 12.0), 10, 50)), Member("carol", since=12.0))


class RedisContractTests(StateContract, HistoryContract, ReadContract, RoomContract, RedisStateCase):
    async def reopened(self) -> State:
        again = self.started()
        await again.redis.ready()
        return again

    async def purge_time(self, name: str, at: float) -> float:
        """Redis's clock's, as ``msgsvc:purged`` keeps it (not ``at``: tests/test_state_redis.py)."""
        return float(await self.state.redis.execute("HGET", PURGED, username_key(name)))

    async def test_invitations_outlive_a_nodes_restart(self) -> None:
        """Redis keeps them for the service (docs/scaling.rst): a node started again finds them."""
        await self.state.create_room(RoomRecord("#dev", 10.0, "bob", modes="i", members={"bob": Member("bob")}), 50)
        self.assertIs(await self.state.invite("#dev", "carol", True, 11.0), True)
        again = await self.reopened()
        self.assertEqual(plain(await again.enter("#dev", Joining("carol", 12.0), 10, 50)), Member("carol", since=12.0))


class MemoryContractTests(StateContract, HistoryContract, ReadContract, RoomContract, TestCase):
    def setUp(self) -> None:
        self.state = MemoryStore()

    async def reopened(self) -> State:
        return self.state  # nothing to open again: the log is read as it is now
