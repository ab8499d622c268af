"""Rooms (docs/protocol.rst "Rooms"): named conversations with members, operators, a topic and modes.

The hub's :class:`Rooms` holds every room in memory (read from its :class:`RoomStore` at start, as the
username log is), checks each request against the room's modes and the server's limits (but who may enter a
room: its store decides, from the room as every node changed it and the invitations it keeps:
:meth:`RoomStore.enter`), changes the room at once, tells the other sessions of its members
(:meth:`Participant.room_event`), and writes the change to the store: the asker's answer comes once it is
kept.  A message to a room reaches the online sessions of its members (here, and on other nodes by their name
keys); offline members read it in the room's history, never through the offline queue.

A protected name stays a member until it leaves; an unprotected one's memberships end when its last
session leaves.  A room left without members is removed, unless its founder is a protected name.
"""

from __future__ import annotations

import math
from functools import partial
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from twisted.internet.defer import Deferred, FirstError, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    ROOM_FLAGS,
    ROOM_BANS_MAX,
    ROOM_LIMIT_MAX,
    Entered,
    Invited,
    Joining,
    Kicked,
    Kind,
    Member,
    MemberView,
    Message,
    ModeChange,
    ModeSet,
    ModesKept,
    Parted,
    Refusal,
    Refused,
    Report,
    RoomEvent,
    RoomGone,
    RoomInfo,
    RoomRecord,
    RoomStore,
    RoomView,
    TopicSet,
    UserRecord,
    changed_modes,
    topic_stamp,
)
from msgsvc.hub.conversations import ALL
from msgsvc.hub.events import Event, RoomChanged
from msgsvc.hub.ids import MessageIds
from msgsvc.hub.nodes import Nodes
from msgsvc.hub.roommodes import Asked, Pending, made, modes_of
from msgsvc.hub.rules import (
    SHOWN_HOST,
    ban_mask,
    bans_overflow,
    is_valid_username,
    mask_key,
    mask_matches,
    room_key,
    room_name,
    username_key,
)
from msgsvc.hub.session import Account, Session, deliver

T = TypeVar("T")
_R = TypeVar("_R")
#: A store write, made once the change is known to be this node's to write.
Write = Callable[[], Deferred[None]]

#: Bytes a topic may hold (as IRC servers' TOPICLEN).
TOPIC_MAX = 390
#: Seconds a topic set is at least later than the one it replaces (docs/scaling.rst).
TOPIC_STEP = 0.001
#: What the others are told when an unprotected member's last session leaves.
DISCONNECTED = "disconnected"
#: Identities (of its sessions) a member's ban verdicts are kept for in a room, at most.
VERDICTS_KEPT = 8
#: Members held, each with a member as a store kept it whose op and voice are newer (:func:`_newer`).
Newer = list[tuple[Member, Member]]
#: What a ban is matched against: a session's name, user part and host (:func:`_masks`).
Identity = tuple[str, str, str]
#: What a JOIN the store refused is told, by refusal (of the room ``room``, ``most`` rooms a name's limit).
_REFUSED = {
    Refusal.BANNED: "you are banned from {room}",
    Refusal.INVITE_ONLY: "{room} is invite-only",
    Refusal.BAD_KEY: "{room} needs its key",
    Refusal.ROOM_FULL: "{room} is full",
    Refusal.TOO_MANY_ROOMS: "you are in {most} rooms, the limit",
    Refusal.NO_SUCH_ROOM: "there is no room {room}",
}


@dataclass
class _Unanswered:
    """This node's creation or removals of a room its store has not answered (``count``), and the JOINs
    of the room waiting till it has answered them all."""

    count: int = 0
    joins: list[Deferred[None]] = field(default_factory=list)


@dataclass(frozen=True)
class RoomPolicy:
    """The rooms' limits (the documented defaults)."""

    max_per_user: int = 50  # --max-rooms-per-user: rooms a name may be in (#all not counted)
    max_members: int = 1000  # --max-room-members


def unlimited(host: str) -> float:
    """Rooms created from an address, not limited (a hub given no rate: tests)."""
    return 0.0


class Rooms:
    """Every room of the service as this node sees it, and what its users ask of them.  The hub's log,
    sessions (by name key) and :class:`Nodes` are shared with it; ``settle`` keeps a message routed in
    the history."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        store: RoomStore,
        users: dict[str, UserRecord],
        sessions: dict[str, Account],
        nodes: Nodes,
        ids: MessageIds,
        emit: Callable[[Event], None],
        settle: Callable[[Message, Report, list[UserRecord]], Report | Deferred[Report]],
        policy: RoomPolicy,
        creations: Callable[[str], float],
    ) -> None:
        """``creations`` counts a room created from an address (``--new-rooms-per-hour``): 0, or (past
        its rate, and not counted) the seconds to wait."""
        self._clock = clock
        self._store = store
        self._users = users
        self._sessions = sessions
        self._nodes = nodes
        self._ids = ids
        self._emit = emit
        self._settle = settle
        self.policy = policy
        self._rooms: dict[str, RoomRecord] = {}  # by room key
        self._of: dict[str, set[str]] = {}  # each name key's rooms (keys)
        self._claims: dict[str, set[str]] = {}  # each name key's rooms it founded (keys)
        #: By room key, member key and identity: whether a ban of the room matches (:meth:`_silenced`).
        self._verdicts: dict[str, dict[str, dict[Identity, bool]]] = {}
        self._creations = creations
        #: By room key: this node's creation or removals of the room the store has not answered, and the
        #: JOINs of it waiting till it has (:meth:`_awaiting`).
        self._unanswered: dict[str, _Unanswered] = {}
        self._reads: dict[str, int] = {}  # by room key: the reads of it in flight (:meth:`_read_room`)
        #: By room key: the other nodes' events of it heard while it was read, to take after the read.
        self._held: dict[str, list[RoomEvent]] = {}
        #: By room key: its mode changes asked here that the store has not answered yet.
        self._pending: dict[str, Pending] = {}
        nodes.rooms = self

    # -- start -----------------------------------------------------------

    def load(self, records: Iterable[RoomRecord]) -> None:
        """Take the rooms read from the store.  A server alone then ends the memberships of names not
        protected now (it stopped before it could), and removes the rooms left empty as the rules say; a
        node of several does so once it knows who is online on the others (:meth:`resync`)."""
        self._take(records)
        if self._nodes.network.node is None:
            self._end_absent()

    def resync(self, records: Iterable[RoomRecord]) -> None:
        """Take the rooms as the store has them now, on a node of several once it has read who is online
        on the others: at start, or after it could not hear them for a while (its subscription was lost).
        What changed meanwhile is not told to the sessions here.  The memberships of unprotected names
        online nowhere end (their node stopped before it could end them)."""
        before = dict(self._rooms)
        self._take(records)
        for key in sorted(before.keys() | self._rooms.keys()):
            self._emit(RoomChanged((self._rooms.get(key) or before[key]).name))
        self._end_absent()

    def _take(self, records: Iterable[RoomRecord]) -> None:
        """Hold ``records`` as the rooms."""
        self._rooms.clear()
        self._of.clear()
        self._claims.clear()
        self._verdicts.clear()
        self._pending.clear()
        for record in records:
            self._hold(record)

    def _hold(self, record: RoomRecord) -> None:
        """Hold ``record``, as the store has it, as a room."""
        self._rooms[room_key(record.name)] = record
        for key in record.members:
            self._of.setdefault(key, set()).add(room_key(record.name))
        if record.founder is not None:
            self._claim(username_key(record.founder), room_key(record.name))

    def _reread(self, room: str) -> Deferred[RoomRecord | None]:
        """The room ``room`` (a key) held here, read from the store if it is not: the store keeps a member
        in it that this node does not know of (it dropped the room as its last member here left, as a
        name joined it on another node).  None: the store has it no more either."""

        def read(record: RoomRecord | None) -> RoomRecord | None:
            if room not in self._rooms and record is not None:
                self._read(record)
            return self._rooms.get(room)

        return self._read_room(room, read)

    def _read_room(self, room: str, take: Callable[[RoomRecord | None], T]) -> Deferred[T]:
        """``take`` of the room ``room`` (a key) as the store has it now (None: not kept).  What the other
        nodes tell of it meanwhile waits (:meth:`remote`) and is applied after ``take``, in turn, as any
        of their events (by version, stamp or membership: the read may have it already)."""
        self._reads[room] = self._reads.get(room, 0) + 1

        def done(result: T | Failure) -> T | Failure:
            self._reads[room] -= 1
            if not self._reads[room]:
                del self._reads[room]
            for event in self._held.pop(room, []):
                self.remote(event)
            return result

        return self._store.room(room).addCallback(take).addBoth(done)

    def _read(self, record: RoomRecord) -> None:
        """Hold ``record``, read from the store, as a room this node did not hold."""
        self._hold(record)
        self._emit(RoomChanged(record.name))

    def _end_absent(self) -> None:
        """End the memberships (and foundings) of unprotected names online nowhere, and remove the rooms
        left empty as the rules say."""
        names = self._of.keys() | self._claims.keys()
        for key in sorted(k for k in names if not self._protected(k) and not self._online(k)):
            self.forget(key, DISCONNECTED)
        for record in list(self._rooms.values()):
            self._quietly(self._write(self._vacate(record)))

    # -- what a user asks ----------------------------------------------------

    def join(self, session: Session, name: str, key: str | None) -> Deferred[RoomView]:
        user = _key(session)
        if room_key(name) == ALL:
            return succeed(self._everyone())
        record = self._rooms.get(room_key(room_name(name)))
        if record is not None and user in record.members:
            return succeed(self.view(record, user))
        unanswered = self._unanswered.get(room_key(name))
        if record is None and unanswered is not None:
            answered: Deferred[None] = Deferred()
            unanswered.joins.append(answered)
            return answered.addCallback(lambda _: self.join(session, name, key))
        if len(self._of.get(user, ())) >= self.policy.max_per_user:
            raise Refused(Refusal.TOO_MANY_ROOMS, f"you are in {self.policy.max_per_user} rooms, the limit")
        now = self._clock.seconds()
        spelled, most = session.record.name, self.policy.max_per_user
        if record is None:
            wait = self._creations(session.participant.host)
            if wait:
                raise Refused(
                    Refusal.RATE_LIMITED,
                    f"too many new rooms from your address; try again in {math.ceil(wait)} s",
                )
            first = Member(spelled, op=True, since=now)
            made = RoomRecord(name, now, spelled, members={user: first})

            def created(made_here: Refusal | bool) -> RoomView | Deferred[RoomView]:
                """Kept unless the store, which counts every node's rooms, found the name in too many, or
                keeps the room already (created at once on another node, or not read here yet: joined
                as any room, read first); the room as it is here now."""
                if isinstance(made_here, Refusal):
                    raise Refused(made_here, f"you are in {most} rooms, the limit")
                if not made_here:
                    return self._reread(room_key(made.name)).addErrback(self._unkept).addCallback(existing)
                event = Entered(made.name, first, created=True)
                now_kept = self._found(event)
                if user not in now_kept.members:
                    self._apply(now_kept, event)  # its write made
                    self._announce(now_kept, event, session)
                return self.view(now_kept, user)

            def existing(kept: RoomRecord | None) -> Deferred[RoomView]:
                """The room the store keeps, now held here, joined by the checks of any join."""
                if kept is None:  # emptied meanwhile on another node
                    raise Refused(Refusal.NO_SUCH_ROOM, f"there is no room {made.name}")
                return self.join(session, name, key)

            # The JOINs that wait for the creation then join the room as any (not counted as creations),
            # or create it if it was not made.
            return self._awaiting(
                room_key(made.name),
                lambda: self._store.create_room(made, most).addErrback(self._unkept).addCallback(created),
            )
        room, spelled_room = room_key(record.name), record.name
        # The store decides, from the room as every node changed it (its bans, modes, key and limit, its
        # members, the name's rooms, its invitations): this node's copy may not have heard the latest
        # change yet.
        joining = Joining(spelled, now, key, _masks(session))

        def entered(kept: Refusal | Member) -> RoomView | Deferred[RoomView]:
            """Kept unless the store refused it (:func:`~msgsvc.hub.rules.admission`), or has the room no
            more (emptied or deleted meanwhile on another node); the room as it is here now."""
            if isinstance(kept, Refusal):
                raise Refused(kept, _REFUSED[kept].format(room=spelled_room, most=most))
            now_kept = self._rooms.get(room)
            if now_kept is None:  # its last member here left it meanwhile: the store has the room, and the join
                return self._reread(room).addCallback(told)
            if user not in now_kept.members:
                self._apply(now_kept, Entered(now_kept.name, kept))  # its write made
                return told(now_kept)
            if now_kept is not record:  # read again meanwhile (emptied here), the join in it: nobody told yet
                return told(now_kept)
            return self.view(now_kept, user)  # joined meanwhile by another of its sessions: told then

        def told(now_kept: RoomRecord | None) -> RoomView:
            """The room with the join: its members here and the other nodes are told of it."""
            if now_kept is None or user not in now_kept.members:
                raise Refused(Refusal.NO_SUCH_ROOM, f"there is no room {spelled_room}")
            self._announce(now_kept, Entered(now_kept.name, now_kept.members[user]), session)
            return self.view(now_kept, user)

        answer = self._store.enter(room, joining, self.policy.max_members, most)
        return answer.addErrback(self._unkept).addCallback(entered)

    def part(self, session: Session, name: str, reason: str) -> Deferred[Parted]:
        if room_key(name) == ALL:
            raise Refused(Refusal.CANNOT_LEAVE, "everyone is in #all")
        user = _key(session)
        record = self._member_of(name, user)
        event = Parted(record.name, session.record.name, reason)
        return self._kept(self._remove(record, user, event, session), event)

    def send(self, session: Session, name: str, text: str) -> Report | Deferred[Report]:
        """A message to the room ``name`` (not ``#all``: the hub's broadcast); refused while this node
        reads again (:meth:`_current`)."""
        self._current()
        user = _key(session)
        record = self._visible(name, user)
        member = record.members.get(user)
        if member is None and "n" in record.modes:
            raise Refused(Refusal.NOT_IN_ROOM, f"you are not in {record.name}")
        speaks = member is not None and (member.op or member.voice)
        if record.bans and not speaks and self._silenced(record, user, member, session):
            raise Refused(Refusal.BANNED, f"you are banned from {record.name}: you may not speak there")
        if "m" in record.modes and not speaks:
            raise Refused(Refusal.MODERATED, f"{record.name} is moderated: only its operators and voiced members speak")
        message = Message(session.record.name, Kind.ROOM, (record.name,), text, *self._ids.make())
        targets: list[Account] = []
        elsewhere: dict[str, list[str]] = {}
        remote, sessions = self._nodes.remote, self._sessions
        for key in record.members:
            if key in remote:  # its sessions on other nodes
                for node in remote[key]:
                    elsewhere.setdefault(node, []).append(key)
            account = sessions.get(key)
            if account is not None and account.online and key != user:
                targets.append(account)
        for node in self._nodes.nodes_of(user):  # the sender's own sessions there see what it sent
            if user not in elsewhere.get(node, ()):
                elsewhere.setdefault(node, []).append(user)
        if elsewhere or session.outgoing:
            return self._nodes.route(session, message, targets, elsewhere, [], [], False)
        deliver(message, targets, session)
        return self._settle(message, Report(message.id, message.at, len(targets), ()), [])

    def topic(self, session: Session, name: str, text: str | None) -> Deferred[TopicSet]:
        user = _key(session)
        if room_key(name) == ALL:
            if text is not None:
                raise Refused(Refusal.NOT_ROOM_OPERATOR, "#all's topic cannot be set")
            return succeed(TopicSet(ALL, "", None, None))
        if text is None:
            record = self._visible(name, user)
            return succeed(TopicSet(record.name, record.topic, record.topic_by, record.topic_at))
        self._current()
        record = self._member_of(name, user)
        if "t" in record.modes and not record.members[user].op:
            raise Refused(Refusal.NOT_ROOM_OPERATOR, f"only {record.name}'s operators set its topic")
        size = len(text.encode("utf-8"))
        if size > TOPIC_MAX:
            raise Refused(Refusal.TEXT_TOO_LONG, f"the topic is {size} bytes; the limit is {TOPIC_MAX}")
        # later than the topic it replaces, whatever the clock of the node that set that one
        at = max(self._clock.seconds(), (record.topic_at or 0.0) + TOPIC_STEP)
        event = TopicSet(record.name, text, session.record.name, at)
        writes = self._apply(record, event)
        self._announce(record, event, session)
        return self._kept(self._write(writes), event)

    def invite(self, session: Session, name: str, invitee: str) -> Deferred[Invited]:
        self._current()
        user = _key(session)
        record = self._member_of(name, user)
        if "i" in record.modes and not record.members[user].op:
            raise Refused(Refusal.NOT_ROOM_OPERATOR, f"only {record.name}'s operators invite to it")
        target = self._users.get(username_key(invitee))
        if target is None:
            raise Refused(Refusal.RECIPIENT_INVALID, f"nobody is named {invitee}")
        if not target.protected and not self._online(username_key(target.name)):  # its next holder: anyone
            raise Refused(Refusal.RECIPIENT_INVALID, f"{target.name} is not connected (and has no password)")
        if username_key(target.name) in record.members:
            raise Refused(Refusal.ALREADY_IN_ROOM, f"{target.name} is in {record.name}")
        event = Invited(record.name, target.name, session.record.name)
        room, op = room_key(record.name), record.members[user].op

        def kept(new: bool | None) -> Invited:
            """Told to the invitee's sessions, once the store keeps it (a JOIN of it on any node finds it),
            unless one was pending already that did as much."""
            if new is None:  # deleted or emptied meanwhile on another node
                raise Refused(Refusal.NO_SUCH_ROOM, f"there is no room {event.room}")
            if new:
                self._invited(event, session)
                self._nodes.network.room_changed(event)
            return event

        invited = self._store.invite(room, username_key(target.name), op, self._clock.seconds())
        return invited.addErrback(self._unkept).addCallback(kept)

    def kick(self, session: Session, name: str, target: str, reason: str) -> Deferred[Kicked]:
        self._current()
        user = _key(session)
        record = self._operated(name, user)
        kicked = record.members.get(username_key(target))
        if kicked is None:
            raise Refused(Refusal.USER_NOT_IN_ROOM, f"{target} is not in {record.name}")
        event = Kicked(record.name, kicked.name, session.record.name, reason or session.record.name)
        return self._kept(self._remove(record, username_key(kicked.name), event, session), event)

    def mode(self, session: Session, name: str, changes: Sequence[ModeChange]) -> Deferred[ModeSet]:
        user = _key(session)
        if room_key(name) == ALL:
            raise Refused(Refusal.NOT_ROOM_OPERATOR, "#all's modes cannot be changed")
        self._current()
        record = self._operated(name, user)
        event = ModeSet(record.name, session.record.name, self._effective(record, changes))
        if not event.changes:  # nothing changed: nothing made, written or told
            return succeed(event)
        writes = self._apply(record, event)  # the other nodes hear it once kept (_modes_kept)
        self._tell(record, event, session)
        return self._kept(self._write(writes), event)

    def members(self, session: Session, name: str) -> Deferred[RoomView]:
        user = _key(session)
        if room_key(name) == ALL:
            return succeed(self._everyone())
        return succeed(self.view(self._visible(name, user), user))

    def rooms(self, session: Session, mine: bool) -> Deferred[list[RoomInfo]]:
        user = _key(session)
        if mine:  # its own rooms only, not every room's membership
            listed = [self._rooms[key] for key in sorted(self._of.get(user, ()))]
        else:
            listed = [self._rooms[key] for key in sorted(self._rooms)]
            listed = [r for r in listed if "s" not in r.modes or user in r.members]
        return succeed([RoomInfo(r.name, len(r.members), r.topic) for r in listed])

    def rooms_of(self, name: str) -> frozenset[str]:
        """The keys of the rooms ``name`` is in (what of the history it may read)."""
        return frozenset(self._of.get(username_key(name), ()))

    # -- the operator ------------------------------------------------------

    def view(self, record: RoomRecord, reader: str | None = None) -> RoomView:
        """``record`` as ``reader`` (a name key) sees it: its key and bans only if a member; None: the
        operator, who sees everything."""
        inside = reader is None or reader in record.members
        members = tuple(
            MemberView(m.name, self._online(key), m.op, m.voice)
            for key, m in sorted(record.members.items())
        )
        bans = tuple(sorted(record.bans.values(), key=lambda b: b.at)) if inside else ()
        return RoomView(
            record.name,
            record.created,
            record.founder,
            record.topic,
            record.topic_by,
            record.topic_at,
            record.modes,
            record.key if inside else None,
            record.limit,
            members,
            bans,
        )

    def everything(self) -> list[RoomView]:
        """Every room, as the operator sees it, by name."""
        return [self.view(self._rooms[key]) for key in sorted(self._rooms)]

    def find(self, name: str) -> RoomView | None:
        """The room ``name`` as the operator sees it; None: there is none."""
        record = self._rooms.get(room_key(name))
        return None if record is None else self.view(record)

    def delete(self, name: str, reason: str) -> Deferred[bool]:
        """Delete the room ``name``: its members are told ROOMGONE; False if there is none."""
        record = self._rooms.get(room_key(name))
        if record is None:
            return succeed(False)
        self._announce(record, RoomGone(record.name, reason), None)
        self._drop(record)
        return self._kept(self._store.delete_room(room_key(record.name)), True)

    def remove_member(self, name: str, member: str, reason: str) -> Deferred[bool]:
        """End ``member``'s membership of the room ``name``: it is told ROOMGONE, the others that it
        parted; False if it is no member."""
        record = self._rooms.get(room_key(name))
        key = username_key(member)
        if record is None or key not in record.members:
            return succeed(False)
        event = RoomGone(record.name, reason, record.members[key].name)
        return self._kept(self._remove(record, key, event, None), True)

    # -- what the other nodes say ------------------------------------------

    def remote(self, event: RoomEvent) -> None:
        """What happened in a room on another node (which kept it), or by the operator's command there:
        applied here, without writing, and told to the sessions here of its members (an invitation: of
        the invitee).  A room it leaves empty here is removed from the store too (:meth:`_vacate`): its
        last two members may have left at once here and there, each node seeing the other's leave last."""
        key = room_key(event.room)
        if key in self._reads:  # taken after the read, in turn (:meth:`_read_room`)
            self._held.setdefault(key, []).append(event)
            return
        record = self._rooms.get(key)
        match event:
            case Entered(_, _, False) if record is None:  # emptied here, or being created here: the store has it
                self._quietly(self._read_room(key, partial(self._reentered, event)))
                return
            case Entered(_, _, True):
                record = self._found(event)
            case RoomGone(_, _, None) if record is not None:
                self._tell(record, event, None)
                self._drop(record)
                return
            case Invited() if record is not None:  # kept by its node
                self._invited(event, None)
                return
            case Parted(_, name) | Kicked(_, name) | RoomGone(_, _, str(name)) if record is not None:
                if username_key(name) not in record.members:
                    return
            case TopicSet(_, _, by, at) if record is not None:
                if topic_stamp(at, by) < topic_stamp(record.topic_at, record.topic_by):
                    return  # set at once with a later one, heard first: the later stands on every node
            case ModeSet(_, by, _, kept) if record is not None:
                if kept is not None:  # as another node publishes it (:meth:`_modes_kept`)
                    self._take_modes(record, by, kept)
                return
        if record is None:  # a room not held here (a deletion of one held: above)
            return
        if isinstance(event, Entered):
            self._joined(record, event)
            return
        self._tell(record, event, None)
        self._apply(record, event)
        self._quietly(self._write(self._vacate(record)))  # its last members left at once here and there

    def _reentered(self, event: Entered, read: RoomRecord | None) -> None:
        """``event``, from another node, of a room not held here, and the room as the store has it since
        (``read``): held here meanwhile (its creation here kept first, or read for another join), the join
        is taken as any; else ``read`` is held, and its members here told of the join.  Neither if the
        joiner left it meanwhile."""
        joined = read is not None and username_key(event.member.name) in read.members
        record = self._rooms.get(room_key(event.room))
        if record is not None:
            if joined:
                self._joined(record, event)
        elif read is not None:
            self._read(read)
            if joined:
                self._tell(read, event, None)

    def _joined(self, record: RoomRecord, event: Entered) -> None:
        """``event``, from another node, applied to ``record``, then told to its members here: the
        joiner's own sessions here among them."""
        self._apply(record, event)
        self._tell(record, event, None)

    def _found(self, event: Entered) -> RoomRecord:
        """The room ``event`` created, here or on another node: new, or the one held, read here already
        (for a join of it): the store keeps one creation of a room (:meth:`RoomStore.create_room`)."""
        key, member = room_key(event.room), event.member
        record = self._rooms.get(key)
        if record is None:
            record = self._rooms[key] = RoomRecord(event.room, member.since, member.name)
            self._claim(username_key(member.name), key)
        return record

    # -- what happens to names -------------------------------------------

    def left(self, name: str) -> None:
        """The last session of ``name`` in the service left: an unprotected name's memberships end, and it
        is free (:meth:`forget`)."""
        key = username_key(name)
        if not self._protected(key):
            self.forget(key, DISCONNECTED)

    def left_elsewhere(self, name: str) -> None:
        """The last session of ``name`` in the service left on another node, which ended its memberships
        and wrote it free: an unprotected name is free here too (nothing written)."""
        key = username_key(name)
        if not self._protected(key):
            self._free(key)

    def forget(self, key: str, reason: str) -> None:
        """The memberships of the name ``key`` end: it lost its password or was removed (the store dropped
        them with its account), or was not protected when the server started; the other members are
        told it parted; and it is free (:meth:`_free`)."""
        for record in [self._rooms[r] for r in sorted(self._of.get(key, ()))]:
            event = Parted(record.name, record.members[key].name, reason, quit=True)
            self._quietly(self._remove(record, key, event, None))
        self._write_freed(key)

    # -- inside ------------------------------------------------------------

    def _current(self) -> None:
        """Refused UNAVAILABLE while this node reads the service's state again: its rooms may be behind (a
        ban, ``+m``, an operator's status taken away elsewhere not known yet), so neither a message to a
        room nor a change of one is judged on them.  A JOIN is judged by the store."""
        if self._nodes.network.rereading():
            raise Refused(Refusal.UNAVAILABLE, "this server is reading the rooms again; try again soon")

    def _visible(self, name: str, user: str) -> RoomRecord:
        """The room ``name``, or Refused (NO_SUCH_ROOM: none, or a secret one ``user`` is not in)."""
        record = self._rooms.get(room_key(room_name(name)))
        if record is None or ("s" in record.modes and user not in record.members):
            raise Refused(Refusal.NO_SUCH_ROOM, f"there is no room {name}")
        return record

    def _member_of(self, name: str, user: str) -> RoomRecord:
        record = self._visible(name, user)
        if user not in record.members:
            raise Refused(Refusal.NOT_IN_ROOM, f"you are not in {record.name}")
        return record

    def _operated(self, name: str, user: str) -> RoomRecord:
        record = self._member_of(name, user)
        if not record.members[user].op:
            raise Refused(Refusal.NOT_ROOM_OPERATOR, f"you are not an operator of {record.name}")
        return record

    def _silenced(self, record: RoomRecord, user: str, member: Member | None, session: Session) -> bool:
        """Whether a ban of ``record`` matches ``session`` (of the name key ``user``): for a member, the
        verdict kept for its identity, matched once until the room's bans change or it leaves."""
        if member is None:
            return _banned(record, session)
        identity = (session.record.name, session.participant.ident, session.participant.host)
        room = room_key(record.name)
        kept = self._verdicts.get(room)
        if kept is None:
            kept = self._verdicts[room] = {}
        verdicts = kept.get(user)
        if verdicts is None:
            verdicts = kept[user] = {}
        verdict = verdicts.get(identity)
        if verdict is None:
            if len(verdicts) >= VERDICTS_KEPT:
                verdicts.clear()
            verdict = verdicts[identity] = _banned(record, session)
        return verdict

    def _effective(self, record: RoomRecord, changes: Sequence[ModeChange]) -> tuple[ModeChange, ...]:
        """Those of ``changes`` that change something, in turn, their names spelled as the log has them and
        bans as whole masks; or Refused: USER_NOT_IN_ROOM for an o or v of no member, BAN_LIST_FULL for a
        ban past :data:`ROOM_BANS_MAX` (a room read with more keeps them, and takes none till under it)."""
        settings = ("".join(sorted(record.modes)), record.key, record.limit)  # as changed_modes gives them
        members = {k: (m.op, m.voice) for k, m in record.members.items()}
        bans = set(record.bans)
        effective: list[ModeChange] = []
        for change, arg in changes:
            arg = _checked(change, arg)
            on, letter = change[0] == "+", change[1]
            if letter in ROOM_FLAGS + "kl":
                now = changed_modes(*settings, [(change, arg)])
                if now != settings:
                    settings = now
                    effective.append((change, arg if on and letter in "kl" else None))
            elif letter in "ov" and arg is not None:
                target = username_key(arg)
                if target not in members:
                    raise Refused(Refusal.USER_NOT_IN_ROOM, f"{arg} is not in {record.name}")
                op, voice = members[target]
                if (op if letter == "o" else voice) != on:
                    members[target] = (on, voice) if letter == "o" else (op, on)
                    effective.append((change, record.members[target].name))
            elif letter == "b" and arg is not None:
                if (mask_key(arg) in bans) != on:
                    bans.symmetric_difference_update({mask_key(arg)})
                    effective.append((change, arg))
        if bans_overflow(record.bans, effective):
            raise Refused(Refusal.BAN_LIST_FULL, f"{record.name} holds {ROOM_BANS_MAX} bans at most")
        return tuple(effective)

    def _apply(self, record: RoomRecord, event: RoomEvent) -> list[Write]:
        """Change ``record`` as ``event`` says (here, or as another node did); the store writes it needs
        (made here: another node's event was written there)."""
        room, store = room_key(record.name), self._store
        writes: list[Write] = []
        match event:
            case TopicSet(_, topic, by, at):
                record.topic, record.topic_by, record.topic_at = topic, by, at
                writes.append(lambda: store.set_room(record))
            case Entered(_, member):  # written by the store's enter or create_room
                self._add(record, member)
            case Parted(_, name) | Kicked(_, name) | RoomGone(_, _, str(name)):
                key = username_key(name)
                del record.members[key]
                self._verdicts.get(room, {}).pop(key, None)
                _unindex(self._of, key, room)
                writes.append(lambda: store.remove_member(room, key))
            case ModeSet():
                writes = self._apply_modes(record, event)
        self._emit(RoomChanged(record.name))
        return writes

    def _apply_modes(self, record: RoomRecord, event: ModeSet) -> list[Write]:
        """Make ``event``'s changes (asked here: one at least) to ``record``, as this node shows them
        (:func:`~msgsvc.hub.roommodes.made`); the write: one change of the room's modes and bans
        (:meth:`RoomStore.set_modes`) whose version orders it among those of every node.  Till the store
        answers, ``event`` is pending (:mod:`msgsvc.hub.roommodes`): what the store answers or tells
        meanwhile is taken under it."""
        room, at = room_key(record.name), self._clock.seconds()
        named = (username_key(arg) for change, arg in event.changes if change[1] in "ov" and arg is not None)
        asked = Asked(event, at, {key: record.members[key].joined for key in named})
        before = modes_of(record)
        self._pending.setdefault(room, Pending(before)).asked.append(asked)
        self._make(record, *_newer(record, made(before, [asked]), forced=True))
        return [partial(self._set_modes, room, asked)]

    def _set_modes(self, room: str, asked: Asked) -> Deferred[None]:
        """Write ``asked``; fires once kept, before this node takes what was kept (:meth:`_modes_kept`):
        the asker has its answer before it hears of a change made at once on another node.
        Refused(BAN_LIST_FULL) if the store found the room's bans full (bans set at once on another node,
        not heard here), once the room is read again and taken as kept."""
        event = asked.event
        written: Deferred[None] = Deferred()

        def kept(modes: ModesKept | Refusal | None) -> None:
            if isinstance(modes, Refusal):
                refused = Refused(modes, f"{event.room} holds {ROOM_BANS_MAX} bans at most")

                def answered(result: T) -> T:
                    written.errback(refused)
                    return result

                self._unpend(room, asked, Pending.refused)
                self._quietly(self._read_room(room, partial(self._retaken, room, event.by)).addBoth(answered))
                return
            written.callback(None)
            self._modes_kept(room, asked, modes)

        def failed(failure: Failure) -> None:
            self._unpend(room, asked, Pending.failed)
            written.errback(failure)

        self._store.set_modes(room, event.changes, event.by, asked.at, asked.memberships).addCallbacks(kept, failed)
        return written

    def _unpend(self, room: str, asked: Asked, how: Callable[[Pending, Asked], None]) -> Pending | None:
        """``asked`` (of the room ``room``, a key) is answered, ``how`` says: no more pending; the room's
        pending changes (none may wait now), or None if ``asked`` was not pending (the room read anew)."""
        pending = self._pending.get(room)
        if pending is None or asked not in pending.asked:
            return None
        how(pending, asked)
        if not pending.asked:
            del self._pending[room]
        return pending

    def _modes_kept(self, room: str, asked: Asked, kept: ModesKept | None) -> None:
        """The store kept ``asked`` (made here) as ``kept`` (None: the room is gone): this node takes what
        a change made at once on another node and written first changed besides, under its own changes
        still pending, and the other nodes hear ``asked`` with ``kept``."""
        if kept is None:
            self._unpend(room, asked, Pending.refused)
            return
        event = asked.event
        pending = self._unpend(room, asked, partial(Pending.answered, kept=kept))
        record = self._rooms.get(room)
        if record is not None:
            if pending is None:
                self._take_modes(record, event.by, kept)
            else:
                self._show(record, event.by, pending.shown(), True)
        self._nodes.network.room_changed(replace(event, kept=kept))

    def _retaken(self, room: str, by: str, read: RoomRecord | None) -> None:
        """The store refused ``by``'s change of the room ``room`` (a key), made here: the room's modes,
        key, limit, bans and members' op and voice are taken as the store has them (``read``), whatever
        this node holds (:meth:`_take_modes`)."""
        record = self._rooms.get(room)
        if record is None or read is None:
            return
        self._take_modes(record, by, modes_of(read), forced=True)

    def _take_modes(self, record: RoomRecord, by: str, kept: ModesKept, forced: bool = False) -> None:
        """Take of ``kept`` what is newer than ``record`` holds, by version (``forced``: all of it), under
        this node's changes still pending (:mod:`msgsvc.hub.roommodes`)."""
        pending = self._pending.get(room_key(record.name))
        if pending is None:
            self._show(record, by, kept, forced)
            return
        pending.take(kept, forced)
        self._show(record, by, pending.shown(), True)

    def _show(self, record: RoomRecord, by: str, kept: ModesKept, forced: bool) -> None:
        """Make ``record`` as ``kept`` where it is newer (:func:`_newer`, :meth:`_make`); the members here
        are told what changed (as ``by``'s ModeSet)."""
        settings, members = _newer(record, kept, forced)
        news = _news(record, settings, members)
        if news:
            self._tell(record, ModeSet(record.name, by, news), None)
        if self._make(record, settings, members) or news:
            self._emit(RoomChanged(record.name))

    def _make(self, record: RoomRecord, settings: ModesKept | None, members: Newer) -> bool:
        """Make ``record``'s modes, key, limit, version and bans as ``settings``'s (None: not them), and
        each member held as its pair's op and voice (:func:`_newer`).  Whether its bans changed (the room's
        verdicts then dropped: :meth:`_silenced`)."""
        changed = False
        if settings is not None:
            record.modes, record.key, record.limit = settings.modes, settings.key, settings.limit
            record.version = settings.version
            bans = {mask_key(ban.mask): ban for ban in settings.bans}
            if bans != record.bans:  # its masks, or who set one and when
                record.bans, changed = bans, True
                self._verdicts.pop(room_key(record.name), None)
        for held, member in members:
            held.op, held.voice, held.version = member.op, member.voice, member.version
        return changed

    def _add(self, record: RoomRecord, member: Member) -> None:
        key = username_key(member.name)
        record.members[key] = member
        self._of.setdefault(key, set()).add(room_key(record.name))

    def _remove(self, record: RoomRecord, key: str, event: RoomEvent, asker: Session | None) -> Deferred[None]:
        """Tell the members (``key`` among them) of ``event``, which ends ``key``'s membership; then
        remove it, and the room if it is left empty as the rules say."""
        self._announce(record, event, asker)
        writes = self._apply(record, event)
        writes += self._vacate(record)
        return self._write(writes)

    def _write_freed(self, key: str) -> None:
        """Free ``key`` (:meth:`_free`) and write what that changes: its invitations end in the store (most
        names hold none: a store that knows answers at once), and the rooms it founded have no founder
        (most names founded none: then nothing written, and nothing gathered, on each departure)."""
        self._quietly(self._store.uninvite(key))
        writes = self._free(key)
        if writes:
            self._quietly(self._write(writes))

    def _vacate(self, record: RoomRecord) -> list[Write]:
        """Drop ``record`` here if it has no members and its founder is not a protected name; the store's
        removal of it to write then (:meth:`_vacated`)."""
        if record.members or (record.founder is not None and self._protected(username_key(record.founder))):
            return []
        self._drop(record)
        return [partial(self._vacated, room_key(record.name))]

    def _vacated(self, room: str) -> Deferred[None]:
        """Remove the room ``room`` (a key), dropped here as emptied, from the store, which keeps it if a
        member joined it on another node meanwhile: then it is read again.  A JOIN of it here waits till
        then, lest it create anew a room the store keeps with its settings (its user made an operator)."""

        def answered(stays: bool) -> Deferred[RoomRecord | None] | None:
            return self._reread(room) if stays else None

        return self._awaiting(room, lambda: self._store.vacate_room(room).addCallback(answered)).addCallback(
            lambda _: None
        )

    def _awaiting(self, room: str, answer: Callable[[], Deferred[T]]) -> Deferred[T]:
        """``answer()``: the store's answer to this node's creation or a removal of the room ``room`` (a
        key), and what is made of it; a JOIN of the room here waits till every such answer is taken."""
        unanswered = self._unanswered.setdefault(room, _Unanswered())
        unanswered.count += 1

        def taken(result: _R) -> _R:
            unanswered.count -= 1
            if not unanswered.count:
                del self._unanswered[room]
                for waiting in unanswered.joins:
                    waiting.callback(None)
            return result

        return answer().addCallbacks(taken, taken)

    def _write(self, writes: list[Write]) -> Deferred[None]:
        """Make ``writes``; fires once all are kept (or fails as the first that fails)."""
        written = gatherResults([write() for write in writes], consumeErrors=True)
        return written.addCallbacks(lambda _: None, lambda f: f.value.subFailure if f.check(FirstError) else f)

    def _drop(self, record: RoomRecord) -> None:
        for key in record.members:
            _unindex(self._of, key, room_key(record.name))
        self._verdicts.pop(room_key(record.name), None)
        self._pending.pop(room_key(record.name), None)
        if record.founder is not None:
            _unindex(self._claims, username_key(record.founder), room_key(record.name))
        del self._rooms[room_key(record.name)]
        self._emit(RoomChanged(record.name))

    def _claim(self, key: str, room: str) -> None:
        self._claims.setdefault(key, set()).add(room)

    def _free(self, key: str) -> list[Write]:
        """The name ``key`` is free (an unprotected name gone, or its password or itself removed): whoever
        takes it next inherits none of it, so the rooms it founded have no founder (docs/security.rst
        "Rooms"); the store writes that needs (its invitations, the store's, end: :meth:`_write_freed`)."""
        writes: list[Write] = []
        for room in sorted(self._claims.pop(key, ())):
            record = self._rooms.get(room)
            if record is not None and _founded(record, key):
                record.founder = None
                writes.append(partial(self._store.set_room, record))
                self._emit(RoomChanged(record.name))
        return writes

    def _announce(self, record: RoomRecord, event: RoomEvent, asker: Session | None) -> None:
        """Tell the members here (but ``asker``) and the other nodes of ``event``, made here."""
        self._tell(record, event, asker)
        self._nodes.network.room_changed(event)

    def _invited(self, event: Invited, asker: Session | None) -> None:
        for session in self._online_sessions(username_key(event.name)):
            if session is not asker:
                session.participant.room_event(event)

    def _tell(self, record: RoomRecord, event: RoomEvent, asker: Session | None) -> None:
        """Tell every online session here of every member of ``record`` of ``event``, but ``asker``."""
        for key in record.members:
            for session in self._online_sessions(key):
                if session is not asker:
                    session.participant.room_event(event)

    def _online_sessions(self, key: str) -> list[Session]:
        account = self._sessions.get(key)
        return account.online_sessions() if account is not None and account.online else []

    def _online(self, key: str) -> bool:
        account = self._sessions.get(key)
        return (account is not None and account.online) or bool(self._nodes.nodes_of(key))

    def _protected(self, key: str) -> bool:
        record = self._users.get(key)
        return record is not None and record.protected

    def _everyone(self) -> RoomView:
        """#all: every user online, here and on the other nodes."""
        names = {k: a.record.name for k, a in self._sessions.items() if a.online}
        for key, nodes in self._nodes.remote.items():
            names.setdefault(key, next(iter(nodes.values())).name)
        members = tuple(MemberView(names[k], True, False, False) for k in sorted(names))
        return RoomView(ALL, 0.0, None, "", None, None, "", None, None, members, ())

    def _kept(self, written: Deferred[None], answer: T) -> Deferred[T]:
        """``answer`` once ``written`` is kept; Refused(UNAVAILABLE) if the store failed (logged)."""
        return written.addCallbacks(lambda _: answer, self._unkept)

    def _unkept(self, failure: Failure) -> Failure:
        """A store's ``failure`` (logged) as Refused(UNAVAILABLE); its refusal as it is (BAN_LIST_FULL:
        :meth:`_set_modes`)."""
        if failure.check(Refused):
            return failure
        self.log.failure("could not keep a change of a room", failure)
        return Failure(Refused(Refusal.UNAVAILABLE, "the server could not keep that change; try again later"))

    def _quietly(self, written: Deferred[None]) -> None:
        written.addErrback(lambda f: self.log.failure("could not keep a change of a room", f))


def _checked(change: str, arg: str | None) -> str | None:
    """``arg`` (a ban's as its whole mask), or Refused(MODE_INVALID) unless ``change`` is a sign and a
    mode, with the argument it takes (a key without a comma or a space)."""
    valid = len(change) == 2 and change[0] in "+-" and change[1] in ROOM_FLAGS + "klovb"
    if valid and (change[1] in "ovb" or change in ("+k", "+l")):
        valid = bool(arg)
        if change[1] in "ov":
            valid = arg is not None and is_valid_username(arg)
        elif change[1] == "b":
            valid = arg is not None and ban_mask(arg) is not None
        elif change == "+l":
            valid = arg is not None and arg.isascii() and arg.isdigit() and 1 <= int(arg) <= ROOM_LIMIT_MAX
        elif change == "+k":  # a key every front can give to JOIN: IRC's lists keys with commas
            valid = arg is not None and arg != "" and "," not in arg and " " not in arg
    if not valid:
        raise Refused(Refusal.MODE_INVALID, f"not a mode change: {change} {arg or ''}".rstrip())
    return ban_mask(arg) if change[1] == "b" and arg is not None else arg


def _newer(record: RoomRecord, kept: ModesKept, forced: bool) -> tuple[ModesKept | None, Newer]:
    """What of ``kept`` (as a store kept it) is newer than ``record`` holds (``forced``: whatever the
    versions): its modes, key, limit and bans as one, by the room's version (None: not newer); and each
    member held whose op and voice are newer by the member's, with them (of the same membership: one that
    left and entered again, or a member not here, passed over)."""
    settings = kept if forced or kept.version > record.version else None
    members: Newer = []
    for member in kept.members:
        held = record.members.get(username_key(member.name))
        if held is not None and held.joined == member.joined and (forced or member.version > held.version):
            members.append((held, member))
    return settings, members


def _news(record: RoomRecord, settings: ModesKept | None, members: Newer) -> tuple[ModeChange, ...]:
    """The changes that make ``record`` as what is newer (:func:`_newer`): its modes, key, limit and bans
    as ``settings`` (None: as they are); each member held's op and voice as its pair's."""
    changes: list[ModeChange] = []
    if settings is not None:
        for letter in ROOM_FLAGS:
            if (letter in settings.modes) != (letter in record.modes):
                changes.append((("+" if letter in settings.modes else "-") + letter, None))
        if settings.key != record.key:
            changes.append(("-k", None) if settings.key is None else ("+k", settings.key))
        if settings.limit != record.limit:
            changes.append(("-l", None) if settings.limit is None else ("+l", str(settings.limit)))
        bans = {mask_key(ban.mask): ban for ban in settings.bans}
        changes += [("-b", ban.mask) for key, ban in record.bans.items() if key not in bans]
        changes += [("+b", ban.mask) for key, ban in bans.items() if key not in record.bans]
    for held, member in members:
        for letter, was, now in (("o", held.op, member.op), ("v", held.voice, member.voice)):
            if was != now:
                changes.append((("+" if now else "-") + letter, held.name))
    return tuple(changes)


def _masks(session: Session) -> tuple[str, ...]:
    """What a ban matches ``session`` by: ``name!user@host`` (folded), the user its ident (the name on a
    front without one), the host the one every mask shows, and its address."""
    name = session.record.name
    user = session.participant.ident or name
    return tuple(mask_key(f"{name}!{user}@{host}") for host in (SHOWN_HOST, session.participant.host))


def _banned(record: RoomRecord, session: Session) -> bool:
    """Whether a ban of ``record`` matches ``session`` (:func:`_masks`)."""
    masks = _masks(session)
    return any(mask_matches(key, mask) for key in record.bans for mask in masks)


def _unindex(index: dict[str, set[str]], key: str, room: str) -> None:
    """Take the room ``room`` out of the name ``key``'s rooms in ``index`` (the name out of it with its
    last)."""
    rooms = index.get(key)
    if rooms is not None:
        rooms.discard(room)
        if not rooms:
            del index[key]


def _founded(record: RoomRecord, key: str) -> bool:
    """Whether the name ``key`` founded ``record``."""
    return record.founder is not None and username_key(record.founder) == key


def _key(session: Session) -> str:
    return username_key(session.record.name)
