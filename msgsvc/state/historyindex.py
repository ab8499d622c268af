"""The SQLite history's index, in memory: each conversation's entries in order, where each is kept, and
each name's direct conversations by their newest entry (docs/performance.rst, "The history's index in
memory", "The history by the pass").

SQLite keeps the history as rows of a pass's records each (``history_passes``: an append writes one row,
or a few), so that a kept message costs a share of one row; the records are written (:class:`Records`,
:meth:`HistoryIndex.take`), read (:func:`stored`, :func:`headers`) and written again (:func:`rewritten`)
here, in one place.  What the reads need besides the rows is here too, built from those rows when the
server starts (a scan) and kept exact by every append and drop.  An entry is :data:`SIZE` bytes: its id's
26 characters (ids sort as their characters do), then its sender's number (numbered as first seen), the
size of its record, its offset in its pass's row and that row's id, in the machine's order.  A
conversation's entries are one ``bytes`` or ``bytearray``, which holds no references, so Python's
garbage collector does not track it (docs/performance.rst, "What callgrind missed").  If a transaction
that changed the index fails, the database takes out what its appends added, or builds it again from the
rows (``Database.batch``).

A position is an id, or what sorts among them: ``""`` below every id, :data:`ABOVE` above every id, a
floor (:func:`msgsvc.hub.ids.message_id_floor`) at a time's first, an id and ``"\\0"`` just after it.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from struct import Struct
from time import sleep
from typing import TypeVar

from msgsvc.hub.contracts import Kind, Stored
from msgsvc.hub.conversations import participants
from msgsvc.hub.ids import message_id_time
from msgsvc.hub.kept import Kept
from msgsvc.hub.rules import username_key

#: An entry's bytes.
SIZE = 44
_ENTRY = Struct("=26sxxIIII")  # its id, then its sender's number, its record's size and offset, its row's id
_ID = 26
_WORDS = 11  # 4-byte words an entry: its sender's number the eighth, its row's id the last
_SENDER = 7

#: A position above every id.
ABOVE = "~"

#: The most records a pass row holds, and the bytes past which it holds no more: a read of one entry
#: reads its whole row.
PASS_ENTRIES = 256
PASS_BYTES = 32768

#: The records or conversations the store's thread goes through between two of :func:`let_go`: about
#: 2 ms of a hand-over's records on the bench's machine.
STRETCH = 1024

_KIND_TEXT = {kind: kind.value for kind in Kind}  # a record's kind: a look-up here costs an eighth of .value

#: A pass row as :meth:`HistoryIndex.take` makes it: its id, its newest entry's id, its records' sizes
#: (each 4 bytes, the machine's order) and its records (UTF-8).
Row = tuple[int, str, bytes, bytes]

#: Where an entry is kept: its id, its pass's row id, its record's offset and size there.
Place = tuple[str, int, int, int]

#: A conversation's entries: ``bytes`` while it holds one (one object where a ``bytearray`` is two: a
#: conversation's first entry is most of the bench's, and of a new pair's), a ``bytearray`` once it holds
#: more or is changed.
Entries = bytes | bytearray


def let_go() -> None:
    """Let go of the GIL for a moment, so that the reactor's thread runs if it waits.  Compiled code
    never lets go of it by itself (interpreted code does, each ``sys.getswitchinterval()``): without this,
    a second's hand-over (60,000 messages through :meth:`Records.of` and :meth:`HistoryIndex.take`, over
    100 ms) held back every delivery for as long (docs/performance.rst, "The reactor held by the
    history's thread")."""
    sleep(0)


_T = TypeVar("_T")


def _paced(items: Iterable[_T], pause: Callable[[], None]) -> Iterator[_T]:
    """``items``, ``pause`` called after each :data:`STRETCH` of them."""
    for i, item in enumerate(items):
        if i % STRETCH == STRETCH - 1:
            pause()
        yield item


def _id(values: Entries, i: int) -> bytes:
    """The ``i``-th id of a conversation's entries."""
    return bytes(values[SIZE * i : SIZE * i + _ID])


def _place(values: Entries, i: int) -> Place:
    """The ``i``-th entry of a conversation: its id and where it is kept."""
    id, _, size, offset, row = _ENTRY.unpack_from(values, SIZE * i)
    return id.decode(), row, offset, size


def _words(values: Entries, first: int, start: int, stop: int) -> list[int]:
    """The ``first``-th word of each of a conversation's entries from the ``start``-th to before the
    ``stop``-th."""
    with memoryview(values) as view, view.cast("I") as words:  # released at once: the bytearray may grow
        return words[_WORDS * start + first : _WORDS * stop : _WORDS].tolist()


def _below(values: Entries, position: bytes) -> int:
    """How many of a conversation's ids are below ``position``."""
    low, high = 0, len(values) // SIZE
    while low < high:
        middle = (low + high) >> 1
        if values[SIZE * middle : SIZE * middle + _ID] < position:
            low = middle + 1
        else:
            high = middle
    return low


def _row(row: int, newest: str, sizes: list[int], pieces: list[bytes]) -> Row:
    """The pass row ``row`` of the records in ``pieces`` (UTF-8, one after another), whose ``sizes`` they
    are and whose newest id is ``newest``."""
    return row, newest, array("I", sizes).tobytes(), b"".join(pieces)  # one piece: that piece, not a copy


def stored(record: bytes) -> Stored:
    """An entry from its record in a pass row (:class:`Records`): its time its id's."""
    text = record.decode()
    id, (conversation, sender, kind, group, body) = text[:_ID], text[_ID:].split("\x1f", 4)
    recipients = tuple(group.split(",")) if group else ()
    return Stored(id, message_id_time(id), conversation, sender, Kind(kind), recipients, body)


def headers(sizes: bytes, records: bytes) -> Iterator[tuple[int, int, str, str, str]]:
    """Each record of a pass row (its ``sizes``, then its ``records``): its offset and size, its
    conversation, id and sender."""
    offset = 0
    for size in array("I", sizes):
        end = offset + size
        conversation = records.find(b"\x1f", offset + _ID, end)
        sender = records.find(b"\x1f", conversation + 1, end)
        yield (
            offset,
            size,
            records[offset + _ID : conversation].decode(),
            records[offset : offset + _ID].decode(),
            records[conversation + 1 : sender].decode(),
        )
        offset = end


def rewritten(
    sizes: bytes, records: bytes, keeps: Callable[[int, str, str, str], bool]
) -> tuple[bytes, bytes, str, list[tuple[str, str, int]], list[tuple[str, str]]]:
    """A pass row (its ``sizes``, then its ``records``) with only the records ``keeps`` keeps (asked with
    each one's offset, conversation, id and sender): its sizes, records and newest id then; where each
    kept one is then (its conversation, id and offset); and the conversation and id of each left out."""
    left, kept, moved, dropped = array("I"), [], [], []
    newest, at = "", 0
    for offset, size, conversation, id, sender in headers(sizes, records):
        if not keeps(offset, conversation, id, sender):
            dropped.append((conversation, id))
            continue
        kept.append(records[offset : offset + size])
        left.append(size)
        moved.append((conversation, id, at))
        at += size
        newest = max(newest, id)
    return left.tobytes(), b"".join(kept), newest, moved, dropped


class Records:
    """Entries as the SQLite history keeps them: their records one after another in ``data`` (UTF-8),
    each one's size there, conversation, id and sender.  A record is the id, then the conversation,
    sender, kind, recipients (joined by commas) and text, each after a ``\\x1f`` (the text last: it may
    hold one).  Made when the hub hands the messages over (``SqliteStore.append``), from
    :class:`~msgsvc.hub.kept.Kept`'s columns (three of its lists shared): one ``bytes`` and four lists,
    a few objects to the garbage collector where a Message each would be thousands, and no record an
    object of its own while it waits for its transaction (docs/performance.rst, "The history's
    hand-over")."""

    def __init__(
        self, data: bytes, sizes: list[int], conversations: list[str], ids: list[str], senders: list[str]
    ) -> None:
        self.data = data
        self.sizes = sizes
        self.conversations = conversations
        self.ids = ids
        self.senders = senders

    @staticmethod
    def of(kept: Kept, pause: Callable[[], None] = let_go) -> Records:
        """The records of the messages ``kept`` (its lists of conversations, ids and senders shared),
        ``pause`` called after each :data:`STRETCH` of them."""
        records: list[str] = []
        sizes: list[int] = []
        ids, conversations, senders, kinds, to, texts = (
            kept.ids, kept.conversations, kept.senders, kept.kinds, kept.recipients, kept.texts
        )
        for i in _paced(range(len(ids)), pause):
            kind = _KIND_TEXT[kinds[i]]
            record = f"{ids[i]}{conversations[i]}\x1f{senders[i]}\x1f{kind}\x1f{to[i]}\x1f{texts[i]}"
            records.append(record)
            sizes.append(len(record) if record.isascii() else len(record.encode()))
        return Records("".join(records).encode(), sizes, kept.conversations, kept.ids, kept.senders)

    def select(self, which: Sequence[int]) -> Records:
        """The entries at the positions ``which`` (in order), alone."""
        starts, at = [], 0
        for size in self.sizes:
            starts.append(at)
            at += size
        data, sizes = self.data, self.sizes
        return Records(
            b"".join([data[starts[i] : starts[i] + sizes[i]] for i in which]),
            [sizes[i] for i in which],
            [self.conversations[i] for i in which],
            [self.ids[i] for i in which],
            [self.senders[i] for i in which],
        )


class Taken:
    """What :meth:`HistoryIndex.take` took: the pass rows to write, for each of its appends a flag an
    entry (1: added), and the conversations that hold more than it was asked to keep."""

    def __init__(self, rows: list[Row], added: list[bytearray], over: list[str]) -> None:
        self.rows = rows
        self.added = added
        self.over = over


#: Places a listing may hold besides one for each of its conversations (those of conversations gone)
#: before it is compacted.
_SPARE = 16


class _Listing:
    """A name's direct conversations, ``count`` of them: their keys (shared with the index), each put once,
    when its conversation's first entry is kept, and never moved: a read orders them by their newest
    entries (reads are rare, appends are not).  Eight bytes a place; compacted (each key once, those of
    conversations gone left out) past twice its count and :data:`_SPARE`, and when read with places to
    spare."""

    __slots__ = ("keys", "count")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.count = 0


class HistoryIndex:
    """Each conversation's entries (their ids, ascending, with their senders and where each is kept) and
    each name key's direct conversations by their newest entry; how many entries in all (:attr:`size`).
    Conversations are held by one string each, shared by the listings.  What goes through all of them,
    or through a hand-over, calls ``pause`` after each :data:`STRETCH` (:func:`let_go`: the store's
    thread lets the reactor's run)."""

    def __init__(self, pause: Callable[[], None] = let_go) -> None:
        self._pause = pause
        self._conversations: dict[str, Entries] = {}
        self._listings: dict[str, _Listing] = {}
        self._numbers: dict[str, int] = {}  # each sender's number, by its name as sent and by its name key
        self._newest = ""  # the newest id ever added: one newer goes at its conversation's end
        self.size = 0

    # -- changes --------------------------------------------------------------

    def add(self, conversation: str, id: str, sender: str, row: int, offset: int, size: int) -> int:
        """Add the entry ``id`` that ``sender`` (a name) sent, whose record is ``size`` bytes at ``offset``
        in the pass row ``row``; how many ``conversation`` holds now (0: it had it already, nothing
        changed)."""
        # Every message kept comes through here (docs/performance.rst, "The history by the pass"): a
        # look-up of its sender and of its conversation, and (an id newer than any: its own node's
        # messages, in order) an entry put at the end.
        number = self._numbers.get(sender)
        if number is None:
            number = self._number(sender)
        entry = _ENTRY.pack(id.encode(), number, size, offset, row)
        newer = id > self._newest  # so at its conversation's end, and held by none
        if newer:
            self._newest = id
        held = self._conversations.get(conversation)
        if held is None:
            self._conversations[conversation] = entry
            self._listed(conversation)
            self.size += 1
            return 1
        values = self._mutable(conversation, held)
        if newer:
            values += entry
        else:
            i = _below(values, entry[:_ID])
            if values[SIZE * i : SIZE * i + _ID] == entry[:_ID]:
                return 0
            values[SIZE * i : SIZE * i] = entry
        self.size += 1
        return len(values) // SIZE

    def take(self, appends: Sequence[Records], row: int, most: int) -> Taken:
        """Add the entries of ``appends``, their records in pass rows from ``row`` on (the next after
        :data:`PASS_ENTRIES` records or :data:`PASS_BYTES`), those it holds already left out."""
        rows: list[Row] = []
        flags: list[bytearray] = []
        over: dict[str, None] = {}
        pieces: list[bytes] = []  # the row's records so far, but for those of the run being read
        sizes: list[int] = []  # and their sizes
        offset, newest = 0, ""  # the next record's offset in the row; the row's newest id
        for kept in appends:
            added = bytearray(len(kept.ids))
            conversations, ids, senders, sized = kept.conversations, kept.ids, kept.senders, kept.sizes
            data = kept.data
            at = run = 0  # where the next record starts in data; where the row's run of records there does
            for i in _paced(range(len(ids)), self._pause):
                id, size = ids[i], sized[i]
                count = self.add(conversations[i], id, senders[i], row, offset, size)
                if not count:  # the run ends before it
                    if run < at:
                        pieces.append(data[run:at])
                    at += size
                    run = at
                    continue
                added[i] = 1
                at += size
                sizes.append(size)
                offset += size
                if id > newest:
                    newest = id
                if count > most:
                    over[conversations[i]] = None
                if len(sizes) == PASS_ENTRIES or offset >= PASS_BYTES:
                    pieces.append(data[run:at])
                    rows.append(_row(row, newest, sizes, pieces))
                    row, pieces, sizes, offset, newest, run = row + 1, [], [], 0, "", at
            if run < at:
                pieces.append(data[run:at])
            flags.append(added)
        if sizes:
            rows.append(_row(row, newest, sizes, pieces))
        return Taken(rows, flags, list(over))

    def _mutable(self, conversation: str, held: Entries) -> bytearray:
        """``conversation``'s entries ``held`` as a ``bytearray``, from now on."""
        if isinstance(held, bytearray):
            return held
        self._conversations[conversation] = values = bytearray(held)
        return values

    def _number(self, sender: str) -> int:
        """The number of the name ``sender``, its name key's (numbered now if new)."""
        key = username_key(sender)
        number = self._numbers.get(key)
        if number is None:
            number = self._numbers[key] = len(self._numbers)
        self._numbers[sender] = number
        return number

    def _listed(self, conversation: str) -> None:
        """Put ``conversation``, new, in its members' listings."""
        if conversation[0] == "#":  # #all, a room: no participants (as participants() has it)
            return
        listings = self._listings
        for member in conversation.split(","):
            listing = listings.get(member)
            if listing is None:
                listing = listings[member] = _Listing()
            listing.keys.append(conversation)
            listing.count += 1
            if len(listing.keys) > 2 * listing.count + _SPARE:  # of conversations gone (and made again)
                self._compact(listing)

    def drop(self, conversation: str, dropped: Iterable[str]) -> int:
        """Drop those entries of ``conversation`` (any not in it passed over); how many."""
        held = self._conversations.get(conversation)
        if held is None:
            return 0
        values, count = self._mutable(conversation, held), 0
        for id in dropped:
            key = id.encode()
            i = _below(values, key)
            if values[SIZE * i : SIZE * i + _ID] == key:
                del values[SIZE * i : SIZE * (i + 1)]
                count += 1
        self._dropped(conversation, values, count)
        return count

    def drop_below(self, position: str) -> int:
        """Drop every entry below ``position``; how many (a look at each conversation's oldest)."""
        bound, dropped = position.encode(), 0
        for conversation, held in _paced(list(self._conversations.items()), self._pause):
            if held[:_ID] < bound:
                values = self._mutable(conversation, held)
                count = _below(values, bound)
                del values[: SIZE * count]
                self._dropped(conversation, values, count)
                dropped += count
        return dropped

    def drop_oldest(self, conversation: str, count: int) -> int:
        """Drop the ``count`` oldest entries of ``conversation``; how many."""
        held = self._conversations.get(conversation)
        if held is None or count <= 0:
            return 0
        values = self._mutable(conversation, held)
        count = min(count, len(values) // SIZE)
        del values[: SIZE * count]
        self._dropped(conversation, values, count)
        return count

    def _dropped(self, conversation: str, values: Entries, count: int) -> None:
        """After ``count`` entries of ``conversation`` went: forget it if empty (its places in its members'
        listings are left out when each is next compacted)."""
        self.size -= count
        if values or not count:
            return
        del self._conversations[conversation]
        for member in participants(conversation):
            listing = self._listings[member]
            listing.count -= 1
            if not listing.count:
                del self._listings[member]

    # -- reads ------------------------------------------------------------------

    def count(self, conversation: str) -> int:
        return len(self._conversations.get(conversation, b"")) // SIZE

    def kept_at(self, conversation: str, id: str, row: int, offset: int) -> bool:
        """Whether ``conversation`` holds the entry ``id`` with its record at ``offset`` in the row
        ``row`` (not a copy elsewhere: one written twice, say)."""
        i = self._at(conversation, id)
        return i >= 0 and _place(self._conversations[conversation], i)[1:3] == (row, offset)

    def moved(self, conversation: str, id: str, row: int, offset: int) -> None:
        """The record of ``conversation``'s entry ``id`` is at ``offset`` in the row ``row`` now."""
        i = self._at(conversation, id)
        values = self._mutable(conversation, self._conversations[conversation])
        _, number, size, _, _ = _ENTRY.unpack_from(values, SIZE * i)
        _ENTRY.pack_into(values, SIZE * i, id.encode(), number, size, offset, row)

    def _at(self, conversation: str, id: str) -> int:
        """Where ``conversation``'s entry ``id`` is among its entries; -1: it holds none."""
        values = self._conversations.get(conversation)
        if values is None:
            return -1
        key = id.encode()
        i = _below(values, key)
        return i if values[SIZE * i : SIZE * i + _ID] == key else -1

    def over(self, keep: int) -> list[tuple[str, int]]:
        """Each conversation holding more than ``keep`` entries, with how many more (a look at each)."""
        conversations = _paced(self._conversations.items(), self._pause)
        return [(c, n - keep) for c, values in conversations if (n := len(values) // SIZE) > keep]

    def rows(self) -> dict[int, int]:
        """How many entries each pass row holds a record of (a look at every entry)."""
        rows: dict[int, int] = {}
        for values in _paced(self._conversations.values(), self._pause):
            for row in _words(values, _WORDS - 1, 0, len(values) // SIZE):
                rows[row] = rows.get(row, 0) + 1
        return rows

    def below(self, conversation: str, bound: str, lowest: str, count: int) -> list[Place]:
        """The newest ``count`` entries of ``conversation`` below ``bound`` and not below ``lowest``,
        oldest first."""
        values = self._conversations.get(conversation)
        if values is None:
            return []
        stop = _below(values, bound.encode())
        return [_place(values, i) for i in range(max(_below(values, lowest.encode()), stop - count, 0), stop)]

    def since(self, conversation: str, lowest: str, count: int) -> list[Place]:
        """The oldest ``count`` entries of ``conversation`` not below ``lowest``, oldest first."""
        values = self._conversations.get(conversation)
        if values is None:
            return []
        start = _below(values, lowest.encode())
        return [_place(values, i) for i in range(start, min(start + count, len(values) // SIZE))]

    def unread(self, conversation: str, lowest: str, reader: str, cap: int) -> int:
        """How many entries of ``conversation`` not below ``lowest`` others than the name key ``reader``
        sent, up to ``cap``: one look-up and the count of the reader's number among their senders."""
        values = self._conversations.get(conversation)
        if values is None:
            return 0
        start, stop = _below(values, lowest.encode()), len(values) // SIZE
        number = self._numbers.get(reader)
        own = 0 if number is None or start == stop else _words(values, _SENDER, start, stop).count(number)
        return min(stop - start - own, cap)

    def latest(self, member: str, lowest: str) -> Iterator[Place]:
        """The newest entry of each direct conversation of the name key ``member``, newest first, down to
        ``lowest``: a look at each of its conversations and a sort of their newest ids (the listing
        compacted first if it holds places of conversations gone)."""
        listing = self._listings.get(member)
        if listing is None:
            return
        if len(listing.keys) > listing.count:
            self._compact(listing)
        conversations, bound = self._conversations, lowest.encode()
        newest = [(_id(values, len(values) // SIZE - 1), key) for key in listing.keys if (values := conversations[key])]
        newest = [(id, key) for id, key in newest if id >= bound]
        newest.sort(reverse=True)
        for _, key in newest:
            values = conversations[key]
            yield _place(values, len(values) // SIZE - 1)

    def _compact(self, listing: _Listing) -> None:
        """Each of ``listing``'s conversations once, those gone left out."""
        conversations = self._conversations
        listing.keys = [key for key in dict.fromkeys(listing.keys) if key in conversations]
