"""What every state (SQLite, Redis) must do with the offline queue's quotas and the operator's removals.

:class:`StateContract` is mixed into a trial TestCase per state, which
gives it a started ``state``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msgsvc.auth import Reset
from msgsvc.hub.contracts import Enqueue
from msgsvc.state import State

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object

#: A sender's quota and a total that a test never meets: Enqueue's last two fields.
ROOM = (1_000_000, 1_000_000)


class StateContract(_Base):
    """Each test starts from an empty state, and reads only through the state's interface."""

    state: State

    async def names_in_log(self) -> list[str]:
        """The names in the state's log, read anew."""
        raise NotImplementedError

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

    async def test_a_reset_recipient_takes_what_waited_for_it_out_of_the_counts(self) -> None:
        await self.state.record_seen("a", 1.0)
        await self.state.set_password_hash("a", "$h", 2.0)
        await self.queue("mallory", "a", "b", "a2")
        await self.state.reset("a", "forgot", 3.0)
        self.assertEqual(await self.queue("mallory", "c", "d"), ("c",))

    async def test_the_total_bounds_all_the_queues(self) -> None:
        self.assertEqual(await self.queue("a", "x", "y", total=3), ("x", "y"))
        self.assertEqual(await self.queue("b", "x", "y", total=3), ("x",))
        self.assertEqual(await self.queue("c", "z", total=3), ())
        await self.state.acknowledge("x", 1_000)
        self.assertEqual(await self.queue("c", "z", "w", "v", total=3), ("z", "w"))

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
