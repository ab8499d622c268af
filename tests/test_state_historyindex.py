"""The SQLite history's index in memory (msgsvc.state.historyindex): what each read answers, after every
kind of change, against a plain model of it, each entry where it was added."""

from __future__ import annotations

import gc
import random
from array import array
from collections.abc import Iterable
from itertools import islice

from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import Kind, Message, Stored
from msgsvc.hub.conversations import ALL
from msgsvc.hub.ids import message_id_text, message_id_value
from msgsvc.hub.kept import Kept
from msgsvc.state.historyindex import ABOVE, PASS_ENTRIES, STRETCH, HistoryIndex, Place, Records

_BELOW_EVERY = ""
_ABOVE_EVERY = ABOVE


def _value(millis: int, low: int = 0) -> str:
    """An id: ``millis`` milliseconds, then 80 bits."""
    return message_id_text(millis << 80 | low)


def _where(id: str) -> tuple[int, int, int]:
    """Where the tests keep the entry ``id``: a pass row, an offset and a size made of it."""
    value = message_id_value(id)
    return value % 1009 + 1, value % 7 * 100, value % 5 + 26


def _add(index: HistoryIndex, conversation: str, id: str, sender: str) -> int:
    return index.add(conversation, id, sender, *_where(id))


def _unicasts(numbers: Iterable[int]) -> list[Message]:
    """Unicasts between alice and bob, numbered (their texts say it, some not in ASCII), ids in order."""
    return [Message("alice", Kind.UNICAST, ("bob",), f"héllo {n}", _value(n + 1), (n + 1) / 1000) for n in numbers]


def _record(entry: Stored) -> bytes:
    to = ",".join(entry.recipients)
    return f"{entry.id}{entry.conversation}\x1f{entry.sender}\x1f{entry.kind.value}\x1f{to}\x1f{entry.text}".encode()


def _split(sizes: bytes, data: bytes) -> list[bytes]:
    """A pass row's records."""
    records, at = [], 0
    for size in array("I", sizes):
        records.append(data[at : at + size])
        at += size
    return records


def _values(places: Iterable[Place]) -> list[str]:
    """The ids of ``places``, each checked to be where it was added."""
    listed = list(places)
    for id, *where in listed:
        assert tuple(where) == _where(id), (id, where)
    return [id for id, *_ in listed]


class _Model:
    """What the index holds, plainly: each conversation's values, sorted, and each entry's sender."""

    def __init__(self) -> None:
        self.conversations: dict[str, list[str]] = {}
        self.senders: dict[tuple[str, str], str] = {}  # (conversation, value): its sender

    def unread(self, conversation: str, lowest: str, reader: str, cap: int) -> int:
        """How many of ``conversation``'s entries from ``lowest`` on others sent, up to ``cap``."""
        values = self.conversations.get(conversation, [])
        return min(sum(v >= lowest and self.senders[conversation, v] != reader for v in values), cap)

    def reads(self, member: str) -> list[str]:
        """``member``'s conversations' newest values, newest first."""
        direct = [v for c, v in self.conversations.items() if v and member in c.split(",") and c[0] != "#"]
        newest = [values[-1] for values in direct]
        return sorted(newest, reverse=True)


class HistoryIndexTests(SynchronousTestCase):
    def assertReadsAs(self, index: HistoryIndex, model: _Model, members: list[str]) -> None:
        """Every read of ``index`` answers as ``model``."""
        for conversation, values in model.conversations.items():
            self.assertEqual(index.count(conversation), len(values))
            self.assertEqual(_values(index.since(conversation, _BELOW_EVERY, len(values) + 1)), values)
            self.assertEqual(_values(index.below(conversation, _ABOVE_EVERY, _BELOW_EVERY, len(values) + 1)), values)
        self.assertEqual(index.size, sum(map(len, model.conversations.values())))
        for member in members:
            self.assertEqual(_values(index.latest(member, _BELOW_EVERY)), model.reads(member))
            for conversation, values in model.conversations.items():
                for lowest in (_BELOW_EVERY, *values[::2]):
                    for cap in (1, 100):
                        unread = model.unread(conversation, lowest, member, cap)
                        self.assertEqual(index.unread(conversation, lowest, member, cap), unread)

    def test_a_conversation_reads_its_ids_in_order_between_positions(self) -> None:
        index = HistoryIndex()
        for millis in (5, 1, 3, 9, 7):  # out of order too (a clock set back across a restart)
            self.assertTrue(_add(index, "alice,bob", _value(millis), "alice"))
        self.assertEqual(_add(index, "alice,bob", _value(3), "alice"), 0)  # kept already: nothing changes
        self.assertEqual((index.count("alice,bob"), index.size), (5, 5))
        self.assertEqual(_add(index, "alice,carol", _value(2), "alice"), 1)  # how many it holds now
        ids = [_value(m) for m in (1, 3, 5, 7, 9)]
        index.drop("alice,carol", [_value(2)])
        self.assertEqual(_values(index.below("alice,bob", _value(7), _BELOW_EVERY, 2)), ids[1:3])
        self.assertEqual(_values(index.below("alice,bob", _value(7), _value(4), 10)), ids[2:3])
        self.assertEqual(_values(index.below("alice,bob", _ABOVE_EVERY, _BELOW_EVERY, 0)), [])
        self.assertEqual(_values(index.since("alice,bob", _value(3), 2)), ids[1:3])
        self.assertEqual(_values(index.since("alice,bob", _value(3, 1), 10)), ids[2:])
        self.assertEqual(_values(index.since("alice,carol", _BELOW_EVERY, 10)), [])
        self.assertEqual(_values(index.below("alice,carol", _ABOVE_EVERY, _BELOW_EVERY, 10)), [])

    def test_ids_of_one_millisecond_are_ordered_by_their_low_bits(self) -> None:
        index = HistoryIndex()
        high_low = [_value(8, 1 << 70), _value(8, 1), _value(8, (1 << 70) + 5), _value(8, 1 << 64)]
        for value in high_low:
            _add(index, ALL, value, "alice")
        self.assertEqual(_values(index.since(ALL, _BELOW_EVERY, 10)), sorted(high_low))
        self.assertEqual(_values(index.below(ALL, _value(8, 1 << 70), _BELOW_EVERY, 10)), sorted(high_low)[:2])

    def test_a_member_lists_its_direct_conversations_by_their_newest_entry(self) -> None:
        index = HistoryIndex()
        _add(index, "alice,bob", _value(1), "alice")
        _add(index, "alice,carol", _value(2), "alice")
        _add(index, ALL, _value(3), "alice")  # no member's
        _add(index, "#dev", _value(4), "alice")  # a room's: no member's either
        _add(index, "alice,bob,carol", _value(5), "alice")
        _add(index, "alice,bob", _value(6), "alice")
        self.assertEqual(_values(index.latest("alice", _BELOW_EVERY)), [_value(6), _value(5), _value(2)])
        self.assertEqual(_values(index.latest("carol", _BELOW_EVERY)), [_value(5), _value(2)])
        self.assertEqual(_values(index.latest("alice", _value(5))), [_value(6), _value(5)])
        self.assertEqual(_values(index.latest("dave", _BELOW_EVERY)), [])

    def test_a_listing_holds_one_place_per_conversation_however_many_entries_each_takes(self) -> None:
        """An entry of a conversation the index has touches no listing (a read orders them): the
        listing's places are its conversations, however many entries each took."""
        index = HistoryIndex()
        for n in range(2000):
            _add(index, f"mallory,n{n % 20:02d}", _value(n), "mallory")
        self.assertEqual(len(index._listings["mallory"].keys), 20)
        listed = index.latest("mallory", _BELOW_EVERY)
        self.assertEqual(_values(islice(listed, 3)), [_value(1999), _value(1998), _value(1997)])
        self.assertEqual(len(_values(index.latest("mallory", _BELOW_EVERY))), 20)

    def test_dropping_a_conversations_newest_lists_it_by_its_newest_left(self) -> None:
        index = HistoryIndex()
        for millis, conversation in enumerate(["alice,bob", "alice,carol", "alice,bob", "alice,dave"]):
            _add(index, conversation, _value(millis), "alice")
        self.assertEqual(index.drop("alice,bob", [_value(2), _value(99)]), 1)  # 99 is not in it
        self.assertEqual(_values(index.latest("alice", _BELOW_EVERY)), [_value(3), _value(1), _value(0)])
        self.assertEqual(index.drop("alice,bob", [_value(0)]), 1)
        self.assertEqual(_values(index.latest("bob", _BELOW_EVERY)), [])
        self.assertEqual(index.count("alice,bob"), 0)
        self.assertEqual(index.size, 2)

    def test_the_oldest_go_by_count_or_below_a_bound(self) -> None:
        index = HistoryIndex()
        for millis in range(10):
            _add(index, "alice,bob", _value(millis), "alice")
        _add(index, "alice,carol", _value(6), "alice")
        self.assertEqual(index.drop_oldest("alice,bob", 3), 3)
        self.assertEqual(index.drop_below(_value(5)), 2)  # alice,carol's 6 stays
        self.assertEqual(index.drop_oldest("alice,carol", 1), 1)
        self.assertEqual(index.over(3), [("alice,bob", 2)])
        self.assertEqual(_values(index.since("alice,bob", _BELOW_EVERY, 10)), [_value(m) for m in range(5, 10)])
        self.assertEqual(index.drop_oldest("alice,bob", 10), 5)
        self.assertEqual((index.size, index.over(0)), (0, []))
        self.assertEqual(_values(index.latest("alice", _BELOW_EVERY)), [])

    def test_it_says_where_each_entry_is_how_many_each_row_holds_and_takes_a_move(self) -> None:
        index = HistoryIndex()
        for millis in range(1, 6):
            _add(index, "alice,bob" if millis % 2 else ALL, _value(millis), "alice")
        row, offset, _ = _where(_value(3))
        self.assertTrue(index.kept_at("alice,bob", _value(3), row, offset))
        self.assertFalse(index.kept_at("alice,bob", _value(3), row + 1, offset))  # a copy elsewhere
        self.assertFalse(index.kept_at("alice,bob", _value(2), *_where(_value(2))[:2]))  # #all's
        self.assertFalse(index.kept_at("carol,dave", _value(3), row, offset))
        self.assertEqual(index.rows(), {_where(_value(m))[0]: 1 for m in range(1, 6)})
        index.drop_oldest("alice,bob", 2)
        self.assertEqual(index.rows(), {_where(_value(m))[0]: 1 for m in (2, 4, 5)})
        index.moved("alice,bob", _value(5), 7, 99)
        self.assertEqual(index.since("alice,bob", _value(5), 1), [(_value(5), 7, 99, _where(_value(5))[2])])

    def test_a_take_writes_the_records_of_the_entries_it_added_in_rows_of_their_bytes(self) -> None:
        """Rows of at most PASS_ENTRIES records, each row the added entries' records one after another
        (some not ASCII), the entries the index held already left out wherever they fall: at a row's
        start, inside it, at its end, across two appends."""
        index = HistoryIndex()
        held = Kept.of(_unicasts(range(0, 600, 7)))
        index.take([Records.of(held)], 1, 10**9)
        appends = [Kept.of(_unicasts(range(0, 400))), Kept.of(_unicasts(range(400, 600)))]
        taken = index.take([Records.of(kept) for kept in appends], 100, 10**9)
        added = [m for kept in appends for m in kept.entries() if int(m.text.split()[-1]) % 7]
        self.assertEqual([len(flags) - sum(flags) for flags in taken.added], [58, 28])
        self.assertEqual([row for row, *_ in taken.rows], [100, 101, 102])
        records = [r for _, _, sizes, data in taken.rows for r in _split(sizes, data)]
        self.assertEqual(records, [_record(m) for m in added])
        self.assertEqual([len(_split(sizes, data)) for _, _, sizes, data in taken.rows], [PASS_ENTRIES, 256, 2])
        self.assertEqual([newest for _, newest, _, _ in taken.rows], [added[255].id, added[511].id, added[-1].id])

    def test_what_goes_through_all_or_a_hand_over_pauses_after_each_stretch(self) -> None:
        """Making records, a take, and each look at every conversation call the pause after each
        STRETCH of what they go through, so the store's thread lets the reactor's run (compiled code
        never lets go of the GIL by itself); a shorter one never."""
        pauses: list[str] = []
        index = HistoryIndex(lambda: pauses.append("index"))
        kept = Kept.of(_unicasts(range(3 * STRETCH + 5)))
        records = Records.of(kept, lambda: pauses.append("records"))
        self.assertEqual(pauses, ["records"] * 3)
        index.take([records], 1, 10**9)
        self.assertEqual(pauses, ["records"] * 3 + ["index"] * 3)
        for n in range(2 * STRETCH + 1):  # conversations besides alice,bob
            _add(index, f"alice,n{n}", _value(n), "alice")
        del pauses[:]
        self.assertEqual(index.over(10**9), [])
        self.assertEqual(sum(index.rows().values()), index.size)
        self.assertEqual(index.drop_below(_value(1)), 1)
        self.assertEqual(pauses, ["index"] * 6)
        short = HistoryIndex(lambda: pauses.append("short"))
        fewer = Kept.of(_unicasts(range(STRETCH - 1)))
        short.take([Records.of(fewer, lambda: pauses.append("short"))], 1, 10**9)
        self.assertEqual(short.size, STRETCH - 1)
        self.assertNotIn("short", pauses)

    def test_any_sequence_of_changes_reads_as_a_plain_model(self) -> None:
        """Random adds, drops, trims and expiries, each read checked against the model after every change."""
        names = ["alice", "bob", "carol", "dave"]
        conversations = [ALL, "alice,bob", "alice,carol", "alice,bob,carol", "bob,dave", "dave"]
        for seed in range(20):
            chooser = random.Random(seed)
            index, model = HistoryIndex(), _Model()
            for _ in range(150):
                conversation = chooser.choice(conversations)
                values = model.conversations.setdefault(conversation, [])
                step = chooser.random()
                if step < 0.5:
                    value = _value(chooser.randrange(40), chooser.choice([0, 1, 1 << 70]))
                    held = 0 if value in values else len(values) + 1
                    sender = chooser.choice(names)
                    self.assertEqual(_add(index, conversation, value, sender), held)
                    if held:
                        model.senders[conversation, value] = sender
                    values[:] = sorted({*values, value})
                elif step < 0.65:
                    dropped = chooser.sample(values, min(len(values), 2)) + [_value(99)]
                    self.assertEqual(index.drop(conversation, dropped), len(dropped) - 1)
                    values[:] = [v for v in values if v not in dropped]
                elif step < 0.75:
                    count = chooser.randrange(3)
                    self.assertEqual(index.drop_oldest(conversation, count), len(values[:count]))
                    del values[:count]
                elif step < 0.8:
                    bound = _value(chooser.randrange(40))
                    below = sum(v < bound for held in model.conversations.values() for v in held)
                    self.assertEqual(index.drop_below(bound), below)
                    for held in model.conversations.values():
                        held[:] = [v for v in held if v >= bound]
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
        _add(index, pairs[0], _value(1), names[0])  # the index's first listing, sender and dict made
        gc.collect()
        before = len(gc.get_objects())
        for n, pair in enumerate(pairs[1:], start=2):
            _add(index, pair, _value(n), pair.split(",")[0])
        gc.collect()
        added = len(gc.get_objects()) - before  # a listing and its list of keys a name
        self.assertLessEqual(added, 2 * len(names), "tracked objects added")
