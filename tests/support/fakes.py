"""Fakes of what the code under test talks to: the state, hashing, the network, participants, connections,
listeners."""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import replace

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from msgsvc.auth.store import Reset
from msgsvc.client.protocol import ClientListener, ClientProtocol
from msgsvc.hub.contracts import (
    ROOM_INVITES_MAX,
    Ban,
    Enqueue,
    IUser,
    Joining,
    Member,
    Message,
    ModeChange,
    ModesKept,
    Queued,
    Refusal,
    Refused,
    RoomEvent,
    RoomRecord,
    Stored,
    UserRecord,
    changed_modes,
    topic_stamp,
)
from msgsvc.hub.conversations import conversation_key, participants
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.kept import Kept
from msgsvc.hub.rules import (
    admission,
    bans_overflow,
    invites_anew,
    mask_key,
    oldest_first,
    room_key,
    username_key,
)
from msgsvc.hub.user import UNREGISTERED
from msgsvc.state import Snapshot
from msgsvc.state.redislink import RedisUnavailable



def to_keep(entries: Iterable[Stored]) -> Kept:
    """The messages ``entries`` are the history of, as HistoryStore.append takes them."""
    return Kept.of(Message(e.sender, e.kind, e.recipients, e.text, e.id, e.at) for e in entries)


def stored(sent: Iterable[Message]) -> list[Stored]:
    """The history's entries of the messages ``sent``, each in its conversation."""
    return [
        Stored(m.id, m.at, conversation_key(m.sender, m.kind, m.recipients) or "", m.sender, m.kind, m.recipients, m.text)
        for m in sent
    ]

class MemoryStore(Service):
    """A :class:`msgsvc.state.State` in memory, held to the real states' contract (tests/test_state.py).

    ``log`` holds the username log by name key, starting from ``records``.
    Writes of the log succeed at once, unless ``hold`` is set: then each
    waits in ``pending`` until the test fires it; ``written`` lists them.
    ``hashes`` holds the password hashes by name key; ``resets`` what the
    operator reset; ``history`` the history by conversation, oldest first (entries are appended in id
    order, as one node makes them); ``since`` when each name key was last protected; ``reads`` each name
    key's read positions by conversation; ``rooms_kept`` the rooms by key (copies: what the hub changes
    in its own records is not kept until it says so), ``invites`` their invitations (room key -> name key
    -> whether an operator's, when); with ``fail_rooms`` each room write fails.
    """

    where = "memory"

    def __init__(self, records: Iterable[UserRecord] = ()) -> None:
        self.log = {username_key(r.name): UserRecord(r.name, r.first_seen, r.last_seen) for r in records}
        self.written: list[tuple[str, float]] = []
        self.hold = False
        self.pending: list[Deferred[None]] = []
        self.hashes: dict[str, str] = {}
        self.queue: list[tuple[str, Queued]] = []  # (recipient key, message), oldest first
        self._last_id = 0  # the latest message's id: an id is never given twice
        self.hold_queue = False  # enqueue() waits in pending_queue until the test fires it
        self.pending_queue: list[Deferred[None]] = []
        self.resets: list[Reset] = []
        self.external: list[Reset] = []  # resets another process made (msgsvc.admin), for resets_after()
        self.hold_lookups = False  # password_hash() waits in pending_lookups until the test fires it
        self.pending_lookups: list[Deferred[None]] = []
        self.history: dict[str, list[Stored]] = {}
        self.purged: dict[str, float] = {}  # name key -> when its history was last purged
        self.since: dict[str, float] = {}
        self.reads: dict[str, dict[str, str]] = {}
        self.opened: dict[str, dict[str, float]] = {}  # each name key's groups opened: when
        self.rooms_kept: dict[str, RoomRecord] = {}  # by room key, as written (copies)
        self.invites: dict[str, dict[str, tuple[bool, float]]] = {}
        self.fail_rooms = False  # each room write fails

    def enqueue(self, message: Enqueue) -> Deferred[tuple[str, ...]]:
        def write(_: object) -> tuple[str, ...]:
            done = []
            sender = username_key(message.sender)
            for key in message.recipients:
                self.queue = [(k, q) for k, q in self.queue if k != key or q.sent_at >= message.oldest]
                from_sender = sum(1 for _, q in self.queue if username_key(q.sender) == sender)
                if from_sender >= message.sender_limit or len(self.queue) >= message.total_limit:
                    break
                if sum(1 for k, _ in self.queue if k == key) < message.limit:
                    self._last_id += 1
                    what = (message.sender, message.kind, message.group, message.text, message.sent_at)
                    self.queue.append((key, Queued(self._last_id, *what, message.message_id)))
                    done.append(key)
            return tuple(done)

        if not self.hold_queue:
            return succeed(write(None))
        waiting: Deferred[None] = Deferred()
        self.pending_queue.append(waiting)
        return waiting.addCallback(write)

    def backlog(self, name: str, after: int, oldest: float, limit: int) -> Deferred[tuple[list[Queued], int]]:
        mine = [q for k, q in self.queue if k == username_key(name) and q.id > after and q.sent_at >= oldest]
        return succeed((mine[:limit], len(mine[limit:])))

    def acknowledge(self, name: str, up_to: int) -> Deferred[int]:
        key = username_key(name)
        self.queue = [(k, q) for k, q in self.queue if k != key or q.id > up_to]
        return succeed(sum(1 for k, _ in self.queue if k == key))

    def expire(self, oldest: float) -> Deferred[dict[str, int]]:
        self.queue = [(k, q) for k, q in self.queue if q.sent_at >= oldest]
        counts: dict[str, int] = {}
        for key, _ in self.queue:
            counts[key] = counts.get(key, 0) + 1
        return succeed(counts)

    def password_hash(self, name: str) -> Deferred[str | None]:
        if not self.hold_lookups:
            return succeed(self.hashes.get(username_key(name)))
        waiting: Deferred[None] = Deferred()
        self.pending_lookups.append(waiting)
        return waiting.addCallback(lambda _: self.hashes.get(username_key(name)))

    def set_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[None]:
        self.hashes[username_key(name)] = password_hash
        self.since.setdefault(username_key(name), when)
        return succeed(None)

    def set_first_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[str | None]:
        held = self.hashes.get(username_key(name))
        if held is None:
            self.set_password_hash(name, password_hash, when)
        return succeed(held)

    def reset(self, name: str, reason: str, when: float) -> Deferred[Reset | None]:
        key = username_key(name)
        if self.hashes.pop(key, None) is None:
            return succeed(None)
        self._forget(key)
        known = self.log.get(key)
        reset = Reset(self._last_reset() + 1, name if known is None else known.name, when, reason)
        self.resets.append(reset)
        return succeed(reset)

    def remove(self, name: str, reason: str, when: float) -> Deferred[Reset | None]:
        key = username_key(name)
        known = self.log.pop(key, None)
        if known is None:
            return succeed(None)
        self.hashes.pop(key, None)
        self._forget(key)
        removal = Reset(self._last_reset() + 1, known.name, when, reason, removed=True)
        self.resets.append(removal)
        return succeed(removal)

    def _forget(self, key: str) -> None:
        """What goes with a name's password: its protection time, read positions, queue, memberships."""
        self.since.pop(key, None)
        self.reads.pop(key, None)
        self.queue = [(k, q) for k, q in self.queue if k != key]
        for record in self.rooms_kept.values():
            record.members.pop(key, None)

    def resets_after(self, reset_id: int) -> Deferred[list[Reset] | None]:
        after = sorted((r for r in self.resets + self.external if r.id > reset_id), key=lambda r: r.id)
        return succeed(after or None)

    def _last_reset(self) -> int:
        return max((r.id for r in self.resets + self.external), default=0)

    def read_log(self) -> Deferred[Snapshot]:
        records = [replace(r, protected=key in self.hashes) for key, r in self.log.items()]
        records.sort(key=lambda r: (r.first_seen, username_key(r.name)))
        return succeed(Snapshot(records, self._last_reset(), self._rooms()))

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        self.written.append((name, when))
        key = username_key(name)
        known = self.log.get(key)
        self.log[key] = UserRecord(name, when, when) if known is None else replace(known, last_seen=when)
        if not self.hold:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        return d

    # -- the history (msgsvc.hub.contracts.HistoryStore)

    def append(self, batch: Kept, keep: int) -> Deferred[None]:
        for entry in batch.entries():
            if self.purged.get(username_key(entry.sender), -1.0) >= entry.at:
                continue
            kept = self.history.setdefault(entry.conversation, [])
            if entry not in kept:  # asked again after a failure: kept once; in its place by id, if late
                insort(kept, entry, key=lambda e: e.id)
                del kept[:-keep]
        return succeed(None)

    def page_before(
        self, conversation: str, before: str | None, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        older = [e for e in self._readable(conversation, since) if before is None or e.id < before]
        return succeed((older[-limit:], len(older) > limit))

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        newer = [e for e in self._readable(conversation, since) if e.id > after]
        return succeed((newer[:limit], len(newer) > limit))

    def _readable(self, conversation: str, since: float) -> list[Stored]:
        return [e for e in self.history.get(conversation, []) if e.at >= since]

    def latest(self, member: str, since: float, limit: int) -> Deferred[list[Stored]]:
        key = username_key(member)
        last = [
            kept[-1]
            for conversation, kept in self.history.items()
            if kept and key in participants(conversation) and kept[-1].at >= since
        ]
        return succeed(sorted(last, key=lambda e: e.id, reverse=True)[:limit])

    def protected_since(self, name: str) -> Deferred[float | None]:
        return succeed(self.since.get(username_key(name)))

    def expire_history(self, oldest: float, keep: int) -> Deferred[int]:
        floor = message_id_floor(oldest)
        return self._drop(lambda kept: [e for e in kept if e.id >= floor][-keep:])

    def purge_history(self, sender: str, at: float) -> Deferred[int]:
        key = username_key(sender)
        self.purged[key] = max(self.purged.get(key, at), at)
        return self._drop(lambda kept: [e for e in kept if username_key(e.sender) != key])

    def _drop(self, keeping: Callable[[list[Stored]], list[Stored]]) -> Deferred[int]:
        """Keep of each conversation what ``keeping`` keeps of it; how many entries were dropped."""
        before = self._size()
        self.history = {conversation: keeping(kept) for conversation, kept in self.history.items()}
        return succeed(before - self._size())

    def history_size(self) -> Deferred[int]:
        return succeed(self._size())

    def open_group(self, conversation: str, opener: str, at: float, since: float, most: int) -> Deferred[bool]:
        if self.history.get(conversation):
            return succeed(True)
        opened = {c: when for c, when in self.opened.get(opener, {}).items() if when >= since}
        allowed = conversation in opened or len(opened) < most
        if allowed:
            opened.setdefault(conversation, at)
        self.opened[opener] = opened
        return succeed(allowed)

    def set_read(self, name: str, conversation: str, position: str) -> Deferred[str]:
        positions = self.reads.setdefault(username_key(name), {})
        positions[conversation] = max(positions.get(conversation, ""), position)
        return succeed(positions[conversation])

    def read_positions(self, name: str, conversations: Sequence[str]) -> Deferred[dict[str, str]]:
        positions = self.reads.get(username_key(name), {})
        return succeed({c: positions[c] for c in conversations if c in positions})

    def unread(self, conversation: str, after: str, reader: str, cap: int) -> Deferred[int]:
        key = username_key(reader)
        kept = self.history.get(conversation, [])
        others = (e for e in kept if e.id > after and username_key(e.sender) != key)
        return succeed(sum(1 for _ in zip(range(cap), others)))

    def _size(self) -> int:
        return sum(map(len, self.history.values()))

    # -- rooms (msgsvc.hub.contracts.RoomStore): a write for a room not kept changes nothing

    def rooms(self) -> Deferred[list[RoomRecord]]:
        return succeed(self._rooms())

    def room(self, room: str) -> Deferred[RoomRecord | None]:
        kept = self.rooms_kept.get(room)
        return succeed(None if kept is None else deepcopy(kept))

    def _rooms(self) -> list[RoomRecord]:
        return [deepcopy(self.rooms_kept[room]) for room in sorted(self.rooms_kept)]

    def _room_write(self, change: Callable[[], object]) -> Deferred[None]:
        if self.fail_rooms:
            return fail(OSError("disk full"))
        change()
        return succeed(None)

    def create_room(self, record: RoomRecord, most: int) -> Deferred[Refusal | bool]:
        room = room_key(record.name)
        if room in self.rooms_kept:
            return succeed(False)
        if any(self._in_rooms(name, room) >= most for name in record.members):
            return succeed(Refusal.TOO_MANY_ROOMS)
        def made() -> None:
            self.rooms_kept[room] = deepcopy(record)
            self.invites.pop(room, None)  # what a late write left of a room deleted

        return self._room_write(made).addCallback(lambda _: True)

    def _in_rooms(self, name: str, room: str) -> int:
        """How many rooms the name key ``name`` is kept in; none if ``room`` is one of them."""
        rooms = [key for key, kept in self.rooms_kept.items() if name in kept.members]
        return 0 if room in rooms else len(rooms)

    def delete_room(self, room: str) -> Deferred[None]:
        return self._room_write(lambda: self._drop_room(room))

    def vacate_room(self, room: str) -> Deferred[bool]:
        kept = self.rooms_kept.get(room)
        stays = kept is not None and bool(kept.members)
        return self._room_write(lambda: stays or self._drop_room(room)).addCallback(lambda _: stays)

    def _drop_room(self, room: str) -> None:
        self.rooms_kept.pop(room, None)
        self.invites.pop(room, None)

    def set_room(self, record: RoomRecord) -> Deferred[None]:
        def change() -> None:
            kept = self.rooms_kept.get(room_key(record.name))
            if kept is not None:
                if topic_stamp(record.topic_at, record.topic_by) >= topic_stamp(kept.topic_at, kept.topic_by):
                    kept.topic, kept.topic_by, kept.topic_at = record.topic, record.topic_by, record.topic_at
                kept.founder = record.founder

        return self._room_write(change)

    def set_modes(
        self, room: str, changes: Sequence[ModeChange], by: str, at: float, memberships: Mapping[str, int]
    ) -> Deferred[ModesKept | Refusal | None]:
        if self.fail_rooms:
            return fail(OSError("disk full"))
        kept = self.rooms_kept.get(room)
        if kept is None:
            return succeed(None)
        if bans_overflow(kept.bans, changes):
            return succeed(Refusal.BAN_LIST_FULL)
        kept.version += 1
        kept.modes, kept.key, kept.limit = changed_modes(kept.modes, kept.key, kept.limit, changes)
        named: dict[str, Member] = {}
        for change, arg in changes:
            if change == "+b" and arg:
                kept.bans[mask_key(arg)] = Ban(arg, by, at)
            elif change == "-b" and arg:
                kept.bans.pop(mask_key(arg), None)
            member = kept.members.get(username_key(arg)) if change[1] in "ov" and arg else None
            if member is not None and member.joined == memberships.get(username_key(member.name)):
                if change[1] == "o":
                    member.op = change[0] == "+"
                else:
                    member.voice = change[0] == "+"
                member.version = kept.version
                named[username_key(member.name)] = member
        written = tuple(replace(m) for m in named.values())
        bans = oldest_first(kept.bans.values())
        return succeed(ModesKept(kept.modes, kept.key, kept.limit, kept.version, written, bans))

    def invite(self, room: str, name: str, op: bool, at: float) -> Deferred[bool | None]:
        if room not in self.rooms_kept:
            return succeed(None)
        pending = self.invites.get(room, {}).get(name)
        if not invites_anew(None if pending is None else pending[0], op):
            return succeed(False)

        def kept() -> None:
            invites = self.invites.setdefault(room, {})
            invites[name] = (op, at)
            if len(invites) > ROOM_INVITES_MAX:
                del invites[min(invites, key=lambda k: (invites[k][1], k))]

        return self._room_write(kept).addCallback(lambda _: True)

    def uninvite(self, name: str) -> Deferred[None]:
        def ended() -> None:
            for invites in self.invites.values():
                invites.pop(name, None)

        return self._room_write(ended)

    def enter(self, room: str, joining: Joining, limit: int, most: int) -> Deferred[Refusal | Member]:
        kept = self.rooms_kept.get(room)
        if kept is None:
            return succeed(Refusal.NO_SUCH_ROOM)
        key = username_key(joining.name)
        if key in kept.members:
            return succeed(replace(kept.members[key]))
        rooms = self._in_rooms(key, room)
        invited = self.invites.get(room, {}).get(key, (False, 0.0))[0]
        answer = admission(joining, kept, invited, key in self.hashes, len(kept.members), rooms, limit, most)
        if isinstance(answer, Refusal):
            return succeed(answer)
        member = answer

        def entered(record: RoomRecord) -> None:
            record.version += 1
            member.joined = record.version
            record.members[key] = replace(member)
            self.invites.get(room, {}).pop(key, None)  # used up

        return self._in_room(room, entered).addCallback(lambda _: member)

    def remove_member(self, room: str, name: str) -> Deferred[None]:
        return self._in_room(room, lambda kept: kept.members.pop(username_key(name), None))

    def _in_room(self, room: str, change: Callable[[RoomRecord], object]) -> Deferred[None]:
        return self._room_write(lambda: room in self.rooms_kept and change(self.rooms_kept[room]))

class FakeHashing:
    """A :class:`msgsvc.auth.hashing.Hashing` that answers at once (or, with ``hold``, when the test says).

    A "hash" is the password with a prefix; ``rehash`` says every hash is out of date.
    """

    def __init__(self) -> None:
        self.hold = False
        self.rehash = False
        self.pending: list[Deferred[None]] = []
        self.checked: list[str] = []  # the passwords verified

    def _answer(self, value: object) -> Deferred[object]:
        if not self.hold:
            return succeed(value)
        waiting: Deferred[None] = Deferred()
        self.pending.append(waiting)
        return waiting.addCallback(lambda _: value)

    def hash(self, password: str) -> Deferred[str]:
        return self._answer(f"fake${password}")  # type: ignore[return-value]

    def verify(self, password_hash: str, password: str) -> Deferred[bool]:
        self.checked.append(password)
        return self._answer(password_hash == f"fake${password}")  # type: ignore[return-value]

    def needs_rehash(self, password_hash: str) -> bool:
        return self.rehash


class RecordingParticipant:
    """A :class:`msgsvc.hub.contracts.Participant` that writes down what it is told."""

    front = "tcp"
    host = "127.0.0.1"
    ident = ""
    #: its handle on the hub, kept as a front keeps it (set by :func:`tests.support.harness.admitted`)
    user: IUser = UNREGISTERED

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def receive(self, message: Message) -> None:
        self.events.append(("message", message))

    def notice(self, text: str) -> None:
        self.events.append(("notice", text))

    def kick(self, reason: str) -> None:
        self.events.append(("kicked", reason))

    def drop(self, reason: str) -> None:
        self.events.append(("dropped", reason))

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        self.events.append(("delivered", (backlog, waiting)))

    def read_moved(self, conversation: str, position: str) -> None:
        self.events.append(("read", (conversation, position)))

    def room_event(self, event: RoomEvent) -> None:
        self.events.append(("room", event))

    def room_events(self) -> list[RoomEvent]:
        return [e for kind, e in self.events if kind == "room"]  # type: ignore[misc]

    def messages(self) -> list[Message]:
        return [m for kind, m in self.events if kind == "message"]  # type: ignore[misc]


class FakeNetwork:
    """A :class:`msgsvc.hub.contracts.Network` whose answers the test gives."""

    node = "here"

    def __init__(self) -> None:
        self.up = True
        self.reading = False  # :meth:`rereading`
        self.claims: list[str] = []
        self.taken: set[str] = set()
        self.released: list[str] = []
        self.routed: list[tuple[Message, dict[str, list[str]]]] = []
        self.read_moves: list[tuple[str, str, str]] = []
        self.room_changes: list[RoomEvent] = []
        self.away: list[tuple[str, str | None]] = []
        self.answers: list[Deferred[set[str]]] = []
        self.receivers: dict[str, str] = {}  # name key -> the node/session its backlog goes to
        self.backlog_drops: list[tuple[str, int]] = []

    def claim(
        self, name: str, peer: str, front: str, since: float, known: bool, session: int, sessions: int
    ) -> Deferred[tuple[str, bool]]:
        self.claims.append(name)
        if not self.up:
            return fail(RedisUnavailable("Redis away"))
        if name.lower() in self.taken:
            return fail(Refused(Refusal.USERNAME_TAKEN, f"{name} is in use"))
        return succeed((name, True))

    def release(self, name: str, session: int, when: float) -> None:
        self.released.append(name)

    def take_backlog(self, name: str, session: int) -> Deferred[bool]:
        """Taken unless :attr:`receivers` names another holder (a test's "there/1": on another node)."""
        holder = self.receivers.setdefault(name.lower(), f"here/{session}")
        return succeed(holder == f"here/{session}")

    def drop_backlog(self, name: str, session: int) -> None:
        self.backlog_drops.append((name, session))
        if self.receivers.get(name.lower()) == f"here/{session}":
            del self.receivers[name.lower()]

    def read_moved(self, name: str, conversation: str, position: str) -> None:
        self.read_moves.append((name, conversation, position))

    def away_changed(self, name: str, message: str | None) -> None:
        self.away.append((name, message))

    def room_changed(self, event: RoomEvent) -> None:
        """Kept as it is now, as the wire carries it: the node may change its objects after."""
        self.room_changes.append(deepcopy(event))

    def route(
        self, message: Message, keys_by_node: dict[str, list[str]], answer: Callable[[set[str] | Failure], None]
    ) -> None:
        """The answer waits in :attr:`answers`, for the test to give."""
        self.routed.append((message, keys_by_node))
        answered: Deferred[set[str]] = Deferred()
        answered.addBoth(answer)
        self.answers.append(answered)

    def broadcast(self, message: Message, answer: Callable[[set[str] | Failure], None]) -> bool:
        if self.up:
            self.route(message, {}, answer)
        return self.up

    def reachable(self) -> bool:
        return self.up

    def rereading(self) -> bool:
        return self.reading


class FakeConnection:
    """A Connector whose connections are ClientProtocols on StringTransports."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []
        self.passwords: list[str | None] = []
        self.refuse = False
        self.protocol: ClientProtocol | None = None
        self.transport = StringTransport()

    def __call__(
        self, server: str, username: str, password: str | None, listener: ClientListener
    ) -> Deferred[ClientProtocol]:
        self.attempts.append((server, username))
        self.passwords.append(password)
        if self.refuse:
            return fail(ConnectionRefusedError("connection refused"))
        self.protocol = ClientProtocol(username, listener, password)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        d: Deferred[ClientProtocol] = Deferred()
        d.callback(self.protocol)
        return d

    def server_says(self, *lines: str) -> None:
        assert self.protocol is not None
        self.protocol.dataReceived("".join(line + "\r\n" for line in lines).encode())

    def close(self) -> None:
        assert self.protocol is not None
        self.protocol.connectionLost(Failure(ConnectionDone("Connection was closed cleanly.")))

    def sent(self) -> list[str]:
        data = self.transport.value().decode()
        self.transport.clear()
        return data.split("\r\n")[:-1]


class Recorder:
    """Records every listener or view call as (method, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return lambda *args: self.calls.append((name, args))

    def last(self, method: str) -> tuple[object, ...]:
        return [args for name, args in self.calls if name == method][-1]

    def entries(self) -> list[tuple[str, str]]:
        appended = [args[0] for name, args in self.calls if name == "append"]
        return [(e.style, e.text) for e in appended]  # type: ignore[attr-defined]
