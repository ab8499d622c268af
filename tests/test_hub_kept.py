"""What the hub hands the history's store: messages by column (msgsvc.hub.kept)."""

from __future__ import annotations

import gc

from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import Kind, Message
from msgsvc.hub.conversations import ALL
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.kept import Kept

from .support.fakes import stored


def sent(count: int) -> list[Message]:
    """``count`` messages of every kind, in id order."""
    shapes = [
        ("Alice", Kind.UNICAST, ("Bob",)),
        ("Bob", Kind.MULTICAST, ("Alice", "Carol")),
        ("Carol", Kind.BROADCAST, ()),
        ("Alice", Kind.ROOM, ("#Team",)),
        ("Dave", Kind.UNICAST, ("Dave",)),
    ]
    at = [100.0 + i for i in range(count)]
    return [Message(*shapes[i % 5], f"text {i}", message_id_floor(at[i]), at[i]) for i in range(count)]


class KeptTests(SynchronousTestCase):
    def test_each_message_is_an_entry_in_its_conversation(self) -> None:
        messages = sent(10)
        kept = Kept.of(messages)
        self.assertEqual(len(kept), 10)
        self.assertEqual(kept.entries(), stored(messages))
        self.assertEqual(kept.conversations[:5], ["alice,bob", "alice,bob,carol", ALL, "#team", "dave"])

    def test_a_message_that_named_nobody_is_not_kept(self) -> None:
        kept = Kept()
        nobody = Message("Alice", Kind.MULTICAST, (), "to nobody", message_id_floor(1.0), 1.0)
        self.assertFalse(kept.add(nobody))
        self.assertEqual((len(kept), kept.entries()), (0, []))

    def test_select_and_extend_keep_the_columns_together(self) -> None:
        messages = sent(6)
        kept = Kept.of(messages)
        some = kept.select([4, 1])
        some.extend(Kept.of(messages[:1]))
        self.assertEqual(some.entries(), stored([messages[4], messages[1], messages[0]]))
        self.assertEqual(len(kept), 6)  # left as it was

    def test_the_columns_hold_nothing_the_garbage_collector_walks(self) -> None:
        """A Message and its recipients' tuple are tracked by the collector; a second's thousands held
        while an append is in flight were walked at every collection (docs/performance.rst, "The
        history's hand-over").  The columns hold strings and floats: seven objects in all."""
        kept = Kept.of(sent(1000))
        columns = [kept.conversations, kept.ids, kept.ats, kept.senders, kept.kinds, kept.recipients]
        walked = {id(v) for column in [*columns, kept.texts] for v in column if gc.is_tracked(v)}
        self.assertLessEqual(walked, {id(kind) for kind in Kind})  # an enum's members: there from the start
