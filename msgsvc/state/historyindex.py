"""The SQLite history's index, in memory: each conversation's entries in order, and each name's direct
conversations by their newest entry (docs/performance.rst, "The history's index in memory").

SQLite keeps the history as one table in id order, so that appending writes at its end; what the
reads need besides is here, built from that table when the server starts (:meth:`HistoryIndex.built`,
one scan) and kept exact by every append and drop.  An entry is its id's 128 bits
(:func:`msgsvc.hub.ids.message_id_value`) and its sender, a conversation's entries one ``bytearray`` of
24 bytes each: the id's 16 bytes, most significant first (so that they sort as the values do), and the
sender's number (a name key's, numbered as first seen) as a machine word.  A ``bytearray`` holds no
references, so Python's garbage collector does not track it: an ``array`` is tracked, and with one a
conversation every full collection walked them all (0.13 s for 400,000; docs/performance.rst, "What
callgrind missed").  What is changed between :meth:`~HistoryIndex.begin` and
:meth:`~HistoryIndex.commit` is journaled, so that a transaction rolled back
(:meth:`~HistoryIndex.rollback`) leaves the index as its table is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator

from msgsvc.hub.conversations import participants

_ID = 16  # an entry's bytes: its id's value, big-endian
_SIZE = 24  # and its sender's number, a machine word
_WORDS = 3  # words an entry (what its sender's number is the last of)
_ORDER = sys.byteorder  # a sender's number as memoryview.cast("Q") reads it


def _entry(value: int, sender: int) -> bytes:
    return value.to_bytes(_ID, "big") + sender.to_bytes(_SIZE - _ID, _ORDER)


def _at(values: bytearray, i: int) -> int:
    """The ``i``-th value of a conversation's entries."""
    return int.from_bytes(values[_SIZE * i : _SIZE * i + _ID], "big")


def _newest(values: bytearray) -> int:
    return int.from_bytes(values[-_SIZE : _ID - _SIZE], "big")


def _senders(values: bytearray, start: int, stop: int) -> list[int]:
    """The senders' numbers of a conversation's entries from the ``start``-th to before the ``stop``-th."""
    with memoryview(values) as view, view.cast("Q") as words:  # released at once: the bytearray may grow
        return words[_WORDS * start + 2 : _WORDS * stop : _WORDS].tolist()


def _below(values: bytearray, value: int) -> int:
    """How many of a conversation's values are below ``value`` (any integer)."""
    low, high = 0, len(values) // _SIZE
    while low < high:
        middle = (low + high) >> 1
        if int.from_bytes(values[_SIZE * middle : _SIZE * middle + _ID], "big") < value:
            low = middle + 1
        else:
            high = middle
    return low


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
    """Each conversation's entries (their ids' values, ascending, with their senders) and each name key's
    direct conversations by their newest entry; how many entries in all (:attr:`size`).  Conversations
    are held by one string each, shared by the listings."""

    def __init__(self) -> None:
        self._conversations: dict[str, bytearray] = {}
        self._listings: dict[str, _Listing] = {}
        self._senders: dict[str, int] = {}  # each sender's name key: its number
        self._journal: list[tuple[str, int, int, bool]] | None = None  # (conversation, value, sender, added)
        self.size = 0

    def _sender(self, key: str) -> int:
        """The number of the sender ``key`` (a name key), numbered when first seen."""
        number = self._senders.get(key)
        if number is None:
            number = self._senders[key] = len(self._senders)
        return number

    @classmethod
    def built(cls, entries: Iterable[tuple[int, str, str]]) -> HistoryIndex:
        """The index of ``entries``, each a value, its conversation and its sender's name key, in
        ascending order of value (a scan of the table): each conversation's entries appended to, the
        listings sorted at the end."""
        index = cls()
        conversations, sender = index._conversations, index._sender
        for value, conversation, key in entries:
            values = conversations.get(conversation)
            if values is None:
                values = conversations[conversation] = bytearray()
            values += _entry(value, sender(key))
        index.size = sum(len(values) for values in conversations.values()) // _SIZE
        for conversation in conversations:
            for member in participants(conversation):
                listing = index._listings.get(member)
                if listing is None:
                    listing = index._listings[member] = _Listing()
                listing.keys.append(conversation)
                listing.count += 1
        return index

    # -- transactions --------------------------------------------------------

    def begin(self) -> None:
        """Journal what changes from now on, until :meth:`commit` or :meth:`rollback`."""
        self._journal = []

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        """Undo what changed since :meth:`begin`, the latest first."""
        journal, self._journal = self._journal, None
        for conversation, value, sender, added in reversed(journal or []):
            if added:
                self.drop(conversation, (value,))
            else:
                self._add(conversation, value, sender)

    # -- changes --------------------------------------------------------------

    def add(self, conversation: str, value: int, sender: str) -> int:
        """Add an entry sent by the name key ``sender``; how many ``conversation`` holds now (0: it had it
        already, nothing changed)."""
        number = self._senders.get(sender)
        return self._add(conversation, value, self._sender(sender) if number is None else number)

    def _add(self, conversation: str, value: int, sender: int) -> int:
        # Every message kept comes through here: no call it can do without (docs/performance.rst, "Where
        # a kept message's instructions go").
        entry = _entry(value, sender)
        values = self._conversations.get(conversation)
        if values is None:
            values = self._conversations[conversation] = bytearray(entry)
            self._listed(conversation)
        elif value > _newest(values):
            values += entry
        else:
            i = _below(values, value)
            if _at(values, i) == value:
                return 0
            values[_SIZE * i : _SIZE * i] = entry
        self.size += 1
        if self._journal is not None:
            self._journal.append((conversation, value, sender, True))
        return len(values) // _SIZE

    def _listed(self, conversation: str) -> None:
        """Put ``conversation``, new, in its members' listings."""
        if conversation.startswith("#"):  # #all, a room: no participants (as participants() has it)
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

    def drop(self, conversation: str, dropped: Iterable[int]) -> int:
        """Drop those entries of ``conversation`` (any not in it passed over); how many."""
        values = self._conversations.get(conversation)
        if values is None:
            return 0
        count = 0
        for value in dropped:
            i = _below(values, value)
            if _SIZE * i < len(values) and _at(values, i) == value:
                sender = int.from_bytes(values[_SIZE * i + _ID : _SIZE * (i + 1)], _ORDER)
                del values[_SIZE * i : _SIZE * (i + 1)]
                count += 1
                if self._journal is not None:
                    self._journal.append((conversation, value, sender, False))
        self._dropped(conversation, values, count)
        return count

    def drop_below(self, conversation: str, bound: int) -> int:
        """Drop the entries of ``conversation`` below ``bound``; how many."""
        values = self._conversations.get(conversation)
        return 0 if values is None else len(self.drop_oldest(conversation, _below(values, bound)))

    def drop_oldest(self, conversation: str, count: int) -> list[int]:
        """Drop the ``count`` oldest entries of ``conversation``; their values."""
        values = self._conversations.get(conversation)
        if values is None or count <= 0:
            return []
        first = [_at(values, i) for i in range(min(count, len(values) // _SIZE))]
        if self._journal is not None:
            senders = _senders(values, 0, len(first))
            self._journal += ((conversation, value, sender, False) for value, sender in zip(first, senders))
        del values[: _SIZE * len(first)]
        self._dropped(conversation, values, len(first))
        return first

    def _dropped(self, conversation: str, values: bytearray, count: int) -> None:
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
        return len(self._conversations.get(conversation, b"")) // _SIZE

    def over(self, keep: int) -> list[tuple[str, int]]:
        """Each conversation holding more than ``keep`` entries, with how many more (a look at each)."""
        return [(c, n - keep) for c, values in self._conversations.items() if (n := len(values) // _SIZE) > keep]

    def below(self, conversation: str, bound: int, lowest: int, count: int) -> list[int]:
        """The newest ``count`` entries of ``conversation`` below ``bound`` and not below ``lowest``,
        oldest first."""
        values = self._conversations.get(conversation)
        if values is None:
            return []
        stop = _below(values, bound)
        return [_at(values, i) for i in range(max(_below(values, lowest), stop - count, 0), stop)]

    def since(self, conversation: str, lowest: int, count: int) -> list[int]:
        """The oldest ``count`` entries of ``conversation`` not below ``lowest``, oldest first."""
        values = self._conversations.get(conversation)
        if values is None:
            return []
        start = _below(values, lowest)
        return [_at(values, i) for i in range(start, min(start + count, len(values) // _SIZE))]

    def unread(self, conversation: str, lowest: int, reader: str, cap: int) -> int:
        """How many entries of ``conversation`` not below ``lowest`` others than the name key ``reader``
        sent, up to ``cap``: one look-up and the count of the reader's number among their senders."""
        values = self._conversations.get(conversation)
        if values is None:
            return 0
        start = _below(values, lowest)
        after = len(values) // _SIZE - start
        sender = self._senders.get(reader)
        own = 0 if sender is None or not after else _senders(values, start, len(values) // _SIZE).count(sender)
        return min(after - own, cap)

    def latest(self, member: str, lowest: int) -> Iterator[int]:
        """The newest entry of each direct conversation of the name key ``member``, newest first, down to
        ``lowest``: a look at each of its conversations and a sort of their newest ids' bytes (the listing
        compacted first if it holds places of conversations gone)."""
        listing = self._listings.get(member)
        if listing is None:
            return
        if len(listing.keys) > listing.count:
            self._compact(listing)
        conversations, bound = self._conversations, lowest.to_bytes(_ID, "big") if lowest > 0 else b""
        newest = [n for key in listing.keys if (n := conversations[key][-_SIZE : _ID - _SIZE]) >= bound]
        newest.sort(reverse=True)
        for n in newest:
            yield int.from_bytes(n, "big")

    def _compact(self, listing: _Listing) -> None:
        """Each of ``listing``'s conversations once, those gone left out."""
        conversations = self._conversations
        listing.keys = [key for key in dict.fromkeys(listing.keys) if key in conversations]
