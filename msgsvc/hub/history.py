"""The history: what the hub keeps of each message, and who may read what of it (docs/protocol.rst
"History").

The hub hands :meth:`History.keep` each message once delivered; the messages of one reactor pass go to
the store together, in one append at the pass's end (or, while one is in flight, once it is answered,
with those since; a read hands them over first), which it writes in its next group commit; nobody
waits for that.  What the store fails to take (Redis away, SQLite's file locked) is asked again, with
the messages since, after 0.2 s, doubling to 5 s, for ``policy.retry_for`` seconds after each was sent
and ``policy.backlog`` entries at most (the newest); what is given up is logged.

Reads go through the privacy rules here, never straight to the store: ``#all`` for everyone, a room's
for its current members (the reader's ``rooms``, as the hub's rooms have them: all of it), a direct
conversation only for its participants, only while protected, and only from the time the name was
last protected (the store's ``protected_since``, read at each request: it is the truth across nodes and
after the operator's resets).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    HistoryPolicy,
    HistoryStore,
    Message,
    Page,
    Refusal,
    Refused,
    Summary,
    retry_after,
)
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.kept import Kept
from msgsvc.hub.rules import is_valid_username, username_key

#: Unread entries are counted up to this (docs/protocol.rst: ``CONVERSATION``'s ``100`` means 100 or more).
UNREAD_CAP = 100
#: Direct conversations a version 10 catch-up brings at most (the newest with unread entries).
CATCH_UP_CONVERSATIONS = 20
#: Seconds in which a name opens at most ``HistoryPolicy.new_groups`` groups (--new-groups-per-day).
GROUP_WINDOW = 86_400.0
#: Groups (conversations) sent to lately that are let through again, whoever sends, without asking the store.
ADMITTED_MOST = 4096


class History(Service):
    """The history of one server's messages in ``store``, within ``policy`` (which keeps some:
    with ``--history-days 0`` the hub's history is a :class:`NoHistory`).  As a service, it drops
    what is past the policy every ``policy.expire_every`` seconds on ``clock``.  The store's failures
    are logged as warnings: the state logs why it fails, and a front tells the client."""

    log = Logger()

    def __init__(self, clock: IReactorTime, store: HistoryStore, policy: HistoryPolicy) -> None:
        self._clock = clock
        self._store = store
        self.policy = policy
        self._sweep = LoopingCall(self.expire)
        self._sweep.clock = clock
        self._keeping = Kept()  # this pass's messages (after a failure, all since), written at its end
        self._write_call: IDelayedCall | None = None
        self._unwritten = Kept()  # what the store failed to take, oldest first
        self._retry = 0.0  # seconds to wait before the next append while the store fails; 0: it does not
        self._writing = False  # an append of _write's is in flight: the next waits for its answer
        self._groups: dict[str, None] = {}  # groups let through lately, the oldest first
        self._uncounted: dict[str, dict[str, float]] = {}  # by name key: groups sent to while the store could not count
        self._by_address: dict[str, dict[str, float]] = {}  # by address: groups its names opened lately

    # -- writing ---------------------------------------------------------

    def keep(self, message: Message) -> None:
        """Write ``message`` (delivered) to its conversation's history, with the others of this reactor
        pass; a failure is logged.  Every message kept comes through here: its strings added to
        :class:`Kept`'s columns (docs/performance.rst, "The history's hand-over")."""
        keeping = self._keeping
        if not keeping.add(message):  # it named nobody in the log
            return
        if self._write_call is None and not self._writing:
            self._write_call = self._clock.callLater(self._retry, self._write)
        elif self._retry and len(keeping) > 2 * self.policy.backlog:  # waiting to try again
            over = len(keeping) - self.policy.backlog
            self._give_up(keeping.select(range(over)), f"over the {self.policy.backlog} kept to try again")
            self._keeping = keeping.select(range(over, len(keeping)))

    def write_now(self) -> Deferred[None] | None:
        """Hand the store what waits for the end of the pass now (None if nothing waits): a message about
        to be queued has its history in the same group commit as its queueing, or an earlier one.  While
        an append is in flight or the store fails, only this pass's messages, on their own."""
        if not len(self._keeping):
            return None
        if self._writing or self._retry:
            batch, self._keeping = self._keeping, Kept()
            return self._append(batch, paced=False)
        if self._write_call is not None:
            self._write_call.cancel()
        return self._write()

    def _write(self) -> Deferred[None]:
        """Hand the store what :meth:`keep` was given since the last append, after what it failed to take
        before, in one append, the only one of its kind in flight; if it fails, try again later
        (:func:`~msgsvc.hub.contracts.retry_after`)."""
        self._write_call = None
        batch, self._keeping = self._keeping, Kept()
        if len(self._unwritten):
            self._unwritten.extend(batch)
            batch, self._unwritten = self._unwritten, Kept()
        self._writing = True
        return self._append(batch, paced=True)

    def _append(self, batch: Kept, paced: bool) -> Deferred[None]:
        """Append ``batch``: :meth:`_write`'s (``paced``: it sets the pace of the next), or
        :meth:`write_now`'s beside it.  If the store fails, what is still recent waits for the next try,
        which the first failure with none coming sets (and says so); once stopped, nothing waits."""

        def written(_: None) -> None:
            if not paced:
                return
            self._writing = False
            if self._retry:
                self.log.info("history: the store takes messages again ({n} written late)", n=len(batch))
                self._retry = 0.0
            if (len(self._keeping) or len(self._unwritten)) and self._write_call is None and self.running:
                self._write_call = self._clock.callLater(0, self._write)

        def failed(failure: Failure) -> None:
            if paced:
                self._writing = False
            why = failure.getErrorMessage()
            unwritten, self._unwritten = self._unwritten, Kept()
            if not self.running:  # stopped (or never started): no later try
                unwritten.extend(batch)
                self._give_up(unwritten, f"the store failed ({why}) and the history stopped")
                return
            oldest = self._clock.seconds() - self.policy.retry_for
            ats = batch.ats
            old = batch.select([i for i, at in enumerate(ats) if at < oldest])
            self._give_up(old, f"sent over {self.policy.retry_for:g} s ago")
            recent = batch.select([i for i, at in enumerate(ats) if at >= oldest])
            late = len(unwritten) and len(recent) and recent.ids[0] < unwritten.ids[-1]
            unwritten.extend(recent)
            if late:
                unwritten = unwritten.select(sorted(range(len(unwritten)), key=unwritten.ids.__getitem__))
            over = max(len(unwritten) - self.policy.backlog, 0)
            self._give_up(unwritten.select(range(over)), f"over the {self.policy.backlog} kept to try again")
            self._unwritten = unwritten.select(range(over, len(unwritten)))
            if self._writing or self._write_call is not None:  # a try is coming: it sets the pace
                return
            self._retry = retry_after(self._retry)
            self.log.warn(
                "could not keep {count} messages in the history: {why}; trying again in {retry:g} s",
                count=len(self._unwritten),
                why=why,
                retry=self._retry,
            )
            self._write_call = self._clock.callLater(self._retry, self._write)

        return self._store.append(batch, self.policy.keep).addCallbacks(written, failed)

    def _give_up(self, entries: Kept, why: str) -> None:
        if len(entries):
            self.log.warn(
                "history: gave up {count} messages ({first} to {last}), {why}: they are not kept",
                count=len(entries),
                first=entries.ids[0],
                last=entries.ids[-1],
                why=why,
            )

    def open_group(self, opener: str, keys: Collection[str], address: str) -> Deferred[None] | None:
        """Whether the name key ``opener``, connected from ``address``, may send to the group of the
        distinct name keys ``keys`` (its own among them): None if it may at once (not a group: two names
        or fewer; a group let through lately, which has a history; or, while the store fails, as
        :meth:`_open_uncounted` says); else a Deferred that fires once the store says it may
        (:meth:`HistoryStore.open_group`: a group with no history counts as opened by ``opener``), or
        fails with Refused: TOO_MANY_NEW_GROUPS past ``policy.new_groups`` opened in
        :data:`GROUP_WINDOW`.  Either way the group counts against ``address`` first, in this node's
        memory: past ``policy.address_groups`` groups not let through lately, TOO_MANY_NEW_GROUPS at
        once, the store not asked.  If the store cannot say, the group goes as :meth:`_open_uncounted`
        says."""
        if len(keys) < 3:
            return None
        group = ",".join(sorted(keys))
        if group in self._groups:
            return None
        by_address = self.policy.address_groups
        fresh = self._count(self._by_address, address, group, by_address)
        if fresh is None:
            return fail(
                Refused(
                    Refusal.TOO_MANY_NEW_GROUPS,
                    f"the names of your address opened {by_address} new group conversations in a day,"
                    " the most this server allows: send to a group you have, or try again later",
                )
            )
        if self._retry:  # the store fails the history's appends: it would fail this, maybe after seconds
            refused = self._open_uncounted(opener, group)
            return None if refused is None else fail(refused)
        most = self.policy.new_groups
        at = self._clock.seconds()

        def said(allowed: bool) -> None:
            if not allowed:
                if fresh:  # counted for this group alone: it did not open
                    self._by_address.get(address, {}).pop(group, None)
                raise Refused(
                    Refusal.TOO_MANY_NEW_GROUPS,
                    f"you opened {most} new group conversations in a day, the most this server allows:"
                    " send to a group you have, or try again later",
                )
            self._let_through(group)

        def failed(failure: Failure) -> None:
            self.log.warn("could not count the groups {opener} opened: {why}", opener=opener, why=failure.getErrorMessage())
            refused = self._open_uncounted(opener, group)
            if refused is not None:
                raise refused

        return self._store.open_group(group, opener, at, at - GROUP_WINDOW, most).addCallbacks(said, failed)

    def _open_uncounted(self, opener: str, group: str) -> Refused | None:
        """While the store cannot count, ``opener`` sends to ``group`` (with or without a history: only
        the store knows) counted in this node's memory alone: None, or past ``policy.new_groups`` such
        groups in :data:`GROUP_WINDOW`, UNAVAILABLE (at once: nothing waits for the store)."""
        if self._count(self._uncounted, opener, group, self.policy.new_groups) is None:
            return Refused(
                Refusal.UNAVAILABLE,
                "the server cannot count new group conversations now: send to a group you sent to lately,"
                " or try again later",
            )
        self._let_through(group)
        return None

    def _count(self, opened: dict[str, dict[str, float]], by: str, group: str, most: int) -> bool | None:
        """Count ``group`` among those ``by`` opened in :data:`GROUP_WINDOW` (``opened[by]``: when each
        was first): True if counted now, False if it was already; None, counting nothing, past ``most``."""
        now = self._clock.seconds()
        since = now - GROUP_WINDOW
        lately = {g: at for g, at in opened.get(by, {}).items() if at >= since}
        opened[by] = lately
        if group in lately:
            return False
        if len(lately) >= most:
            return None
        lately[group] = now
        return True

    def _let_through(self, group: str) -> None:
        """Remember ``group`` as let through (its history is kept from now on): the oldest is forgotten
        past :data:`ADMITTED_MOST`."""
        self._groups[group] = None
        if len(self._groups) > ADMITTED_MOST:
            del self._groups[next(iter(self._groups))]

    def expire(self) -> Deferred[None]:
        """Drop the entries older than the policy keeps, and each conversation's past its newest ``keep``;
        forget the names and addresses that opened no group within :data:`GROUP_WINDOW`."""
        since = self._clock.seconds() - GROUP_WINDOW
        self._uncounted = _opened_since(self._uncounted, since)
        self._by_address = _opened_since(self._by_address, since)

        def dropped(count: int) -> None:
            if count:
                self.log.info("history: dropped {count} old messages", count=count)

        def failed(failure: Failure) -> None:
            self.log.warn("could not expire the history: {why}", why=failure.getErrorMessage())

        oldest = self._clock.seconds() - self.policy.age
        return self._store.expire_history(oldest, self.policy.keep).addCallbacks(dropped, failed)

    def size(self) -> Deferred[int]:
        """How many entries are kept, in all (the server's window shows it)."""
        return self._store.history_size()

    def startService(self) -> None:
        Service.startService(self)
        self._sweep.start(self.policy.expire_every, now=False)  # the state may not be reachable yet

    def stopService(self) -> Deferred[None] | None:
        """Stop the sweep; what waits for the end of this pass, or to be asked again, goes to the store
        now (before it stops), once: what it fails to take is given up."""
        Service.stopService(self)
        if self._sweep.running:
            self._sweep.stop()
        if self._write_call is not None:
            self._write_call.cancel()
            self._write_call = None
        if not (len(self._keeping) or len(self._unwritten)):
            return None
        return self._write()

    # -- reading, as a reader may ----------------------------------------

    # ``rooms``: the keys of the rooms ``reader`` is in now, whose histories it may read.  Each read
    # hands the store what waits for the next append first: a reader sees what was delivered.

    def page_before(
        self, reader: str, conversation: str, before: str | None, limit: int, rooms: frozenset[str]
    ) -> Deferred[Page]:
        """What ``reader`` may read of ``conversation`` before ``before`` (None: up to the newest)."""
        self.write_now()
        return Deferred.fromCoroutine(self._page(reader, conversation, before, None, limit, rooms))

    def page_after(
        self, reader: str, conversation: str, after: str, limit: int, rooms: frozenset[str]
    ) -> Deferred[Page]:
        """What ``reader`` may read of ``conversation`` after ``after``."""
        self.write_now()
        return Deferred.fromCoroutine(self._page(reader, conversation, None, after, limit, rooms))

    def conversations(
        self, reader: str, limit: int, rooms: frozenset[str], counts: bool
    ) -> Deferred[list[Summary]]:
        """Each conversation ``reader`` may read by its latest entry it may read, newest first: ``#all``,
        its rooms, and (if it is protected) its direct conversations; with ``counts``, their unread
        counts and read positions (a store read each), else neither read (None)."""
        limit = min(limit, self.policy.conversations)
        self.write_now()
        return Deferred.fromCoroutine(self._conversations(reader, limit, rooms, counts))

    def catch_up(self, reader: str, since: float, from_reads: bool, rooms: frozenset[str]) -> Deferred[list[Page]]:
        """The login's catch-up: the latest ``policy.catch_up`` entries of ``#all`` sent at or after
        ``since`` (when the name last logged out; 0 for a name new to the log); ``more`` if older
        ones exist, since then or before.  ``from_reads``, for a protected ``reader``: ``#all`` after
        its read position there if it has one, then its rooms and direct conversations with others'
        entries after its read positions (:data:`CATCH_UP_CONVERSATIONS` of them, newest first), each
        after it."""
        self.write_now()
        return Deferred.fromCoroutine(self._catch_up(reader, since, from_reads, rooms))

    def mark_read(self, reader: str, conversation: str, position: str, rooms: frozenset[str]) -> Deferred[str]:
        """Keep ``position`` (an id; past the newest entry ``reader`` may read there: that entry's id) as
        ``reader``'s read position in ``conversation`` if it is later than the one kept; fires with the
        one kept.  Refused (HISTORY_FORBIDDEN) where no entry it may read is kept: a position needs a
        conversation of the history, so made-up ones keep nothing."""
        self.write_now()
        return Deferred.fromCoroutine(self._mark_read(reader, conversation, position, rooms))

    def read_position(self, reader: str, conversation: str, rooms: frozenset[str]) -> Deferred[str | None]:
        """``reader``'s read position in ``conversation``; None: none kept."""
        self.write_now()
        return Deferred.fromCoroutine(self._read_position(reader, conversation, rooms))

    async def _page(
        self, reader: str, conversation: str, before: str | None, after: str | None, limit: int, rooms: frozenset[str]
    ) -> Page:
        limit = max(1, min(limit, self.policy.page))
        with _unavailable():
            since = await self._readable(reader, conversation, rooms)
            if after is None:
                entries, more = await self._store.page_before(conversation, before, limit, since)
            else:
                entries, more = await self._store.page_after(conversation, after, limit, since)
        return Page(conversation, tuple(entries), more)

    async def _conversations(self, reader: str, limit: int, rooms: frozenset[str], counts: bool) -> list[Summary]:
        key = username_key(reader)
        store = self._store
        with _unavailable():
            since = await store.protected_since(reader)
            direct = [] if since is None else await store.latest(key, since, limit)
            shared = [await store.page_before(c, None, 1, 0.0) for c in (ALL, *sorted(rooms))]
            everyone = [entry for entries, _ in shared for entry in entries]
            latest = sorted([*direct, *everyone], key=lambda entry: entry.id, reverse=True)[:limit]
            if not counts:
                return [Summary(e, None, None) for e in latest]
            reads = {} if since is None else await store.read_positions(key, [e.conversation for e in latest])
            floor = "" if since is None else message_id_floor(since)

            def after(conversation: str) -> str:
                """Its read position; without one, a direct conversation from the protection's start
                (what came before is not readable), #all and a room from their start."""
                return reads.get(conversation) or ("" if conversation.startswith("#") else floor)

            unread = await gatherResults([store.unread(e.conversation, after(e.conversation), key, UNREAD_CAP) for e in latest])
        return [Summary(e, count, reads.get(e.conversation)) for e, count in zip(latest, unread)]

    async def _catch_up(self, reader: str, since: float, from_reads: bool, rooms: frozenset[str]) -> list[Page]:
        key = username_key(reader)
        store = self._store
        with _unavailable():
            protected = await store.protected_since(reader) if from_reads else None
            if protected is None:
                return [await self._all_since(since)]
            direct = await store.latest(key, protected, self.policy.conversations)
            for room in sorted(rooms):
                direct += (await store.page_before(room, None, 1, 0.0))[0]
            direct.sort(key=lambda entry: entry.id, reverse=True)
            reads = await store.read_positions(key, [ALL, *(e.conversation for e in direct)])
            read_all = reads.get(ALL)
            pages = [await self._all_since(since) if read_all is None else await self._after(ALL, read_all, 0.0)]
            unread = [
                e for e in direct if e.id > reads.get(e.conversation, "") and username_key(e.sender) != key
            ]
            for entry in unread[:CATCH_UP_CONVERSATIONS]:
                readable = 0.0 if entry.conversation in rooms else protected
                pages.append(await self._after(entry.conversation, reads.get(entry.conversation, ""), readable))
        return pages

    async def _all_since(self, since: float) -> Page:
        """``#all``'s latest entries sent since ``since``; ``more`` if older ones exist, since then or before."""
        entries, more = await self._store.page_before(ALL, None, self.policy.catch_up, since)
        if not more:  # none older since then: any older at all? (all of #all is readable)
            older, _ = await self._store.page_before(ALL, entries[0].id if entries else None, 1, 0.0)
            more = bool(older)
        return Page(ALL, tuple(entries), more)

    async def _after(self, conversation: str, read: str, since: float) -> Page:
        """The latest entries of ``conversation`` after ``read`` (sent at or after ``since``); ``more``
        if older readable ones exist."""
        entries, more = await self._store.page_before(conversation, None, self.policy.catch_up, since)
        fresh = tuple(e for e in entries if e.id > read)
        return Page(conversation, fresh, more or len(fresh) < len(entries))

    async def _mark_read(self, reader: str, conversation: str, position: str, rooms: frozenset[str]) -> str:
        with _unavailable():
            since = await self._keeps_reads(reader, conversation, rooms)
            newest, _ = await self._store.page_before(conversation, None, 1, since)
            if not newest:  # a conversation never had (or no longer has) a message for it: no position
                raise Refused(Refusal.HISTORY_FORBIDDEN, "no message of that conversation is kept for you to read")
            return await self._store.set_read(username_key(reader), conversation, min(position, newest[0].id))

    async def _read_position(self, reader: str, conversation: str, rooms: frozenset[str]) -> str | None:
        with _unavailable():
            await self._keeps_reads(reader, conversation, rooms)
            reads = await self._store.read_positions(username_key(reader), [conversation])
        return reads.get(conversation)

    async def _keeps_reads(self, reader: str, conversation: str, rooms: frozenset[str]) -> float:
        """The time from which ``reader`` may read ``conversation`` (as :meth:`_readable`); refused
        (HISTORY_FORBIDDEN) unless it may read some and is protected: read positions are an account's."""
        since = await self._readable(reader, conversation, rooms)  # refuses an unprotected reader of a direct one
        if conversation.startswith("#") and await self._store.protected_since(reader) is None:
            raise Refused(Refusal.HISTORY_FORBIDDEN, _UNPROTECTED)
        return since

    async def _readable(self, reader: str, conversation: str, rooms: frozenset[str]) -> float:
        """The time from which ``reader`` may read ``conversation`` (0: all of it), or Refused
        (HISTORY_FORBIDDEN) if it may read none of it."""
        if conversation == ALL:
            return 0.0
        if conversation.startswith("#"):
            if conversation not in rooms:
                raise Refused(Refusal.HISTORY_FORBIDDEN, "you are not in that room")
            return 0.0
        if not _is_key(conversation) or username_key(reader) not in participants(conversation):
            raise Refused(Refusal.HISTORY_FORBIDDEN, "you take no part in that conversation")
        since = await self._store.protected_since(reader)
        if since is None:
            raise Refused(Refusal.HISTORY_FORBIDDEN, _UNPROTECTED)
        return since


class NoHistory(Service):
    """The history of a server that keeps none (``--history-days 0``), as :class:`~msgsvc.hub.nodes.Alone`
    is the network of a server alone: it writes nothing, and refuses every read (HISTORY_OFF)."""

    policy = HistoryPolicy(days=0)

    def keep(self, message: Message) -> None:
        """Nothing is kept."""

    def write_now(self) -> None:
        """Nothing waits."""

    def open_group(self, opener: str, keys: Collection[str], address: str) -> None:
        """Any group: nothing is kept of it."""

    def size(self) -> Deferred[int]:
        return succeed(0)

    def page_before(self, reader: str, conversation: str, before: str | None, limit: int, rooms: frozenset[str]) -> Deferred[Page]:
        return _off()

    def page_after(self, reader: str, conversation: str, after: str, limit: int, rooms: frozenset[str]) -> Deferred[Page]:
        return _off()

    def conversations(self, reader: str, limit: int, rooms: frozenset[str], counts: bool) -> Deferred[list[Summary]]:
        return _off()

    def catch_up(self, reader: str, since: float, from_reads: bool, rooms: frozenset[str]) -> Deferred[list[Page]]:
        return _off()

    def mark_read(self, reader: str, conversation: str, position: str, rooms: frozenset[str]) -> Deferred[str]:
        return _off()

    def read_position(self, reader: str, conversation: str, rooms: frozenset[str]) -> Deferred[str | None]:
        return _off()


def _opened_since(opened: dict[str, dict[str, float]], since: float) -> dict[str, dict[str, float]]:
    """``opened`` without those that opened nothing since ``since``."""
    return {by: groups for by, groups in opened.items() if any(at >= since for at in groups.values())}


def _off() -> Deferred[Any]:
    return fail(Refused(Refusal.HISTORY_OFF, "this server keeps no history"))


_UNPROTECTED = "protect your name (PASSWORD) to keep the history of your conversations"


def _is_key(conversation: str) -> bool:
    """Whether ``conversation`` is a direct conversation's key as :func:`conversation_key` makes it."""
    names = participants(conversation)
    keys = all(is_valid_username(n) and n == username_key(n) for n in names)
    return keys and list(names) == sorted(set(names))


@contextmanager
def _unavailable() -> Iterator[None]:
    """A refusal passes; the store's failure is logged, and refused as UNAVAILABLE."""
    try:
        yield
    except Refused:
        raise
    except Exception as e:
        History.log.warn("could not read the history: {why}", why=Failure(e).getErrorMessage())
        raise Refused(Refusal.UNAVAILABLE, "the history cannot be read now; try again later") from e
