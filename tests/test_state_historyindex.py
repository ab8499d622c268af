"""The SQLite history's index in memory (msgsvc.state.historyindex): what each read answers, after every
kind of change, against a plain model of it; and a transaction rolled back leaves it as it was."""

from __future__ import annotations

import gc
import random
from itertools import islice

from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.conversations import ALL
from msgsvc.state.historyindex import HistoryIndex

_BELOW_EVERY = -1
_ABOVE_EVERY = 1 << 128


def _value(millis: int, low: int = 0) -> int:
    """An id's value: ``millis`` milliseconds, then 80 bits."""
    return millis << 80 | low


class _Model:
    """What the index holds, plainly: each conversation's values, sorted, and each entry's sender."""

    def __init__(self) -> None:
        self.conversations: dict[str, list[int]] = {}
        self.senders: dict[tuple[str, int], str] = {}  # (conversation, value): its sender

    def unread(self, conversation: str, lowest: int, reader: str, cap: int) -> int:
        """How many of ``conversation``'s entries from ``lowest`` on others sent, up to ``cap``."""
        values = self.conversations.get(conversation, [])
        return min(sum(v >= lowest and self.senders[conversation, v] != reader for v in values), cap)

    def reads(self, member: str) -> list[int]:
        """``member``'s conversations' newest values, newest first."""
        direct = [v for c, v in self.conversations.items() if v and member in c.split(",") and c[0] != "#"]
        newest = [values[-1] for values in direct]
        return sorted(newest, reverse=True)


class HistoryIndexTests(SynchronousTestCase):
    def assertReadsAs(self, index: HistoryIndex, model: _Model, members: list[str]) -> None:
        """Every read of ``index`` answers as ``model``."""
        for conversation, values in model.conversations.items():
            self.assertEqual(index.count(conversation), len(values))
            self.assertEqual(index.since(conversation, _BELOW_EVERY, len(values) + 1), values)
            self.assertEqual(index.below(conversation, _ABOVE_EVERY, _BELOW_EVERY, len(values) + 1), values)
        self.assertEqual(index.size, sum(map(len, model.conversations.values())))
        for member in members:
            self.assertEqual(list(index.latest(member, _BELOW_EVERY)), model.reads(member))
            for conversation, values in model.conversations.items():
                for lowest in (_BELOW_EVERY, *values[::2]):
                    for cap in (1, 100):
                        unread = model.unread(conversation, lowest, member, cap)
                        self.assertEqual(index.unread(conversation, lowest, member, cap), unread)

    def test_a_conversation_reads_its_ids_in_order_between_positions(self) -> None:
        index = HistoryIndex()
        for millis in (5, 1, 3, 9, 7):  # out of order too (a clock set back across a restart)
            self.assertTrue(index.add("alice,bob", _value(millis), "alice"))
        self.assertEqual(index.add("alice,bob", _value(3), "alice"), 0)  # kept already: nothing changes
        self.assertEqual((index.count("alice,bob"), index.size), (5, 5))
        self.assertEqual(index.add("alice,carol", _value(2), "alice"), 1)  # how many it holds now
        ids = [_value(m) for m in (1, 3, 5, 7, 9)]
        index.drop("alice,carol", [_value(2)])
        self.assertEqual(index.below("alice,bob", _value(7), _BELOW_EVERY, 2), ids[1:3])
        self.assertEqual(index.below("alice,bob", _value(7), _value(4), 10), ids[2:3])
        self.assertEqual(index.below("alice,bob", _ABOVE_EVERY, _BELOW_EVERY, 0), [])
        self.assertEqual(index.since("alice,bob", _value(3), 2), ids[1:3])
        self.assertEqual(index.since("alice,bob", _value(3, 1), 10), ids[2:])
        self.assertEqual(index.since("alice,carol", _BELOW_EVERY, 10), [])
        self.assertEqual(index.below("alice,carol", _ABOVE_EVERY, _BELOW_EVERY, 10), [])

    def test_ids_of_one_millisecond_are_ordered_by_their_low_bits(self) -> None:
        index = HistoryIndex()
        high_low = [_value(8, 1 << 70), _value(8, 1), _value(8, (1 << 70) + 5), _value(8, 1 << 64)]
        for value in high_low:
            index.add(ALL, value, "alice")
        self.assertEqual(index.since(ALL, _BELOW_EVERY, 10), sorted(high_low))
        self.assertEqual(index.below(ALL, _value(8, 1 << 70), _BELOW_EVERY, 10), sorted(high_low)[:2])

    def test_a_member_lists_its_direct_conversations_by_their_newest_entry(self) -> None:
        index = HistoryIndex()
        index.add("alice,bob", _value(1), "alice")
        index.add("alice,carol", _value(2), "alice")
        index.add(ALL, _value(3), "alice")  # no member's
        index.add("#dev", _value(4), "alice")  # a room's: no member's either
        index.add("alice,bob,carol", _value(5), "alice")
        index.add("alice,bob", _value(6), "alice")
        self.assertEqual(list(index.latest("alice", _BELOW_EVERY)), [_value(6), _value(5), _value(2)])
        self.assertEqual(list(index.latest("carol", _BELOW_EVERY)), [_value(5), _value(2)])
        self.assertEqual(list(index.latest("alice", _value(5))), [_value(6), _value(5)])
        self.assertEqual(list(index.latest("dave", _BELOW_EVERY)), [])

    def test_a_listing_holds_one_place_per_conversation_however_many_entries_each_takes(self) -> None:
        """An entry of a conversation the index has touches no listing (a read orders them): the
        listing's places are its conversations, however many entries each took."""
        index = HistoryIndex()
        for n in range(2000):
            index.add(f"mallory,n{n % 20:02d}", _value(n), "mallory")
        self.assertEqual(len(index._listings["mallory"].keys), 20)
        listed = index.latest("mallory", _BELOW_EVERY)
        self.assertEqual(list(islice(listed, 3)), [_value(1999), _value(1998), _value(1997)])
        self.assertEqual(len(list(index.latest("mallory", _BELOW_EVERY))), 20)

    def test_dropping_a_conversations_newest_lists_it_by_its_newest_left(self) -> None:
        index = HistoryIndex()
        for millis, conversation in enumerate(["alice,bob", "alice,carol", "alice,bob", "alice,dave"]):
            index.add(conversation, _value(millis), "alice")
        self.assertEqual(index.drop("alice,bob", [_value(2), _value(99)]), 1)  # 99 is not in it
        self.assertEqual(list(index.latest("alice", _BELOW_EVERY)), [_value(3), _value(1), _value(0)])
        self.assertEqual(index.drop("alice,bob", [_value(0)]), 1)
        self.assertEqual(list(index.latest("bob", _BELOW_EVERY)), [])
        self.assertEqual(index.count("alice,bob"), 0)
        self.assertEqual(index.size, 2)

    def test_the_oldest_go_by_count_or_below_a_bound(self) -> None:
        index = HistoryIndex()
        for millis in range(10):
            index.add("alice,bob", _value(millis), "alice")
        self.assertEqual(index.drop_oldest("alice,bob", 3), [_value(0), _value(1), _value(2)])
        self.assertEqual(index.drop_below("alice,bob", _value(5)), 2)
        self.assertEqual(index.drop_below("alice,carol", _value(5)), 0)
        self.assertEqual(index.over(3), [("alice,bob", 2)])
        self.assertEqual(index.drop_oldest("alice,bob", 10), [_value(m) for m in range(5, 10)])
        self.assertEqual((index.size, index.over(0)), (0, []))
        self.assertEqual(list(index.latest("alice", _BELOW_EVERY)), [])

    def test_built_from_a_scan_it_reads_as_when_added_to(self) -> None:
        added, rows = HistoryIndex(), []
        chooser = random.Random(30)
        for millis in range(3000):
            conversation = ",".join(sorted(chooser.sample(["alice", "bob", "carol", "dave", "erin"], 2)))
            conversation = ALL if millis % 7 == 0 else conversation
            sender = chooser.choice(["alice", "bob", "erin"])
            added.add(conversation, _value(millis), sender)
            rows.append((_value(millis), conversation, sender))
        built = HistoryIndex.built(rows)
        model = _Model()
        for value, conversation, sender in rows:
            model.conversations.setdefault(conversation, []).append(value)
            model.senders[conversation, value] = sender
        self.assertReadsAs(built, model, ["alice", "bob", "erin"])
        self.assertReadsAs(added, model, ["alice", "bob", "erin"])

    def test_a_rollback_undoes_what_changed_since_begin_and_a_commit_keeps_it(self) -> None:
        kept = [(_value(1), "alice,bob", "bob"), (_value(2), "alice,carol", "alice"), (_value(3), "alice,bob", "alice")]
        index = HistoryIndex.built(kept)
        index.begin()
        index.add("alice,dave", _value(4), "alice")
        index.add("alice,carol", _value(5), "alice")
        index.drop("alice,bob", [_value(3)])
        index.drop_oldest("alice,bob", 1)
        index.rollback()
        model = _Model()
        model.conversations = {"alice,bob": [_value(1), _value(3)], "alice,carol": [_value(2)]}
        model.senders = {("alice,bob", _value(1)): "bob", ("alice,bob", _value(3)): "alice"}
        model.senders |= {("alice,carol", _value(2)): "alice", ("alice,dave", _value(4)): "alice"}
        self.assertReadsAs(index, model, ["alice", "bob", "carol", "dave"])
        index.begin()
        index.add("alice,dave", _value(4), "alice")
        index.commit()
        index.rollback()  # nothing journaled since the commit
        model.conversations["alice,dave"] = [_value(4)]
        self.assertReadsAs(index, model, ["alice", "bob", "carol", "dave"])

    def test_any_sequence_of_changes_reads_as_a_plain_model(self) -> None:
        """Random adds, drops, trims, expiries and transactions (committed or rolled back), each read
        checked against the model after every change."""
        names = ["alice", "bob", "carol", "dave"]
        conversations = [ALL, "alice,bob", "alice,carol", "alice,bob,carol", "bob,dave", "dave"]
        for seed in range(20):
            chooser = random.Random(seed)
            index, model = HistoryIndex(), _Model()
            saved: tuple[dict[str, list[int]], dict[tuple[str, int], str]] | None = None
            for _ in range(150):
                conversation = chooser.choice(conversations)
                values = model.conversations.setdefault(conversation, [])
                step = chooser.random()
                if step < 0.5:
                    value = _value(chooser.randrange(40), chooser.choice([0, 1, 1 << 70]))
                    held = 0 if value in values else len(values) + 1
                    sender = chooser.choice(names)
                    self.assertEqual(index.add(conversation, value, sender), held)
                    if held:
                        model.senders[conversation, value] = sender
                    values[:] = sorted({*values, value})
                elif step < 0.65:
                    dropped = chooser.sample(values, min(len(values), 2)) + [_value(99)]
                    self.assertEqual(index.drop(conversation, dropped), len(dropped) - 1)
                    values[:] = [v for v in values if v not in dropped]
                elif step < 0.75:
                    count = chooser.randrange(3)
                    self.assertEqual(index.drop_oldest(conversation, count), values[:count])
                    del values[:count]
                elif step < 0.85:
                    bound = _value(chooser.randrange(40))
                    below = [v for v in values if v < bound]
                    self.assertEqual(index.drop_below(conversation, bound), len(below))
                    values[:] = [v for v in values if v >= bound]
                elif saved is None:
                    index.begin()
                    saved = ({c: list(v) for c, v in model.conversations.items()}, dict(model.senders))
                elif step < 0.93:
                    index.commit()
                    saved = None
                else:
                    index.rollback()
                    (model.conversations, model.senders), saved = saved, None
                model.conversations = {c: v for c, v in model.conversations.items() if v}
                self.assertReadsAs(index, model, names)


    def test_its_conversations_add_nothing_the_garbage_collector_walks(self) -> None:
        """A conversation's entries hold no references, so the collector does not track them: a full
        collection walks each tracked object, and with one for each of the hundreds of thousands of
        conversations a run of new pairs makes, each walked them all (docs/performance.rst, "What
        callgrind missed").  What is tracked grows with the names (their listings), not the conversations."""
        index = HistoryIndex()
        names = [f"n{i:02d}" for i in range(40)]
        pairs = [f"{a},{b}" for a in names for b in names if a < b]  # 780 conversations
        index.add(pairs[0], _value(1), names[0])  # the index's first listing, sender and dict made
        gc.collect()
        before = len(gc.get_objects())
        for n, pair in enumerate(pairs[1:], start=2):
            index.add(pair, _value(n), pair.split(",")[0])
        gc.collect()
        added = len(gc.get_objects()) - before  # a listing and its list of keys a name
        self.assertLessEqual(added, 2 * len(names), "tracked objects added")
