"""Routing between the nodes of a service: users online elsewhere, messages to and from them.

A server alone is a network of one node (:class:`Alone`): nobody is online elsewhere, so its
messages never wait for a network, and the same code serves it and a node of several.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    Kind,
    Message,
    Network,
    Outage,
    Refusal,
    Refused,
    RemoteUser,
    Report,
    RoomEvent,
    RoomRecord,
    Store,
    UserRecord,
)
from msgsvc.hub.events import AwayChanged, Event, LogLoaded, SessionsElsewhere, UserJoined, UserLeft
from msgsvc.hub.queue import OfflineQueue
from msgsvc.hub.rules import username_key
from msgsvc.hub.session import Account, Outgoing, Session, deliver


def _fire(answer: Deferred[set[str]], outcome: set[str] | Failure) -> None:
    if isinstance(outcome, Failure):
        answer.errback(outcome)
    else:
        answer.callback(outcome)


def _unreachable() -> Refused:
    return Refused(
        Refusal.UNAVAILABLE,
        "the service's state is unreachable: only users of this server can be reached now",
    )


class RoomsHere(Protocol):
    """The rooms of a node (:class:`msgsvc.hub.rooms.Rooms`), as what the other nodes say reaches them."""

    def remote(self, event: RoomEvent) -> None:
        """Apply another node's change, and tell the members' sessions here."""

    def left(self, name: str) -> None:
        """``name`` is online nowhere now: an unprotected name's memberships end."""

    def left_elsewhere(self, name: str) -> None:
        """``name`` left the service on another node, which ended its memberships: it is free here too."""

    def resync(self, records: Iterable[RoomRecord]) -> None:
        """Take the rooms as the store has them now (the other nodes' changes meanwhile were not heard)."""


class Alone:
    """The :class:`Network` of a server alone: the username log is its store's, and there is no
    other node to route to."""

    log = Logger()
    node = None

    def __init__(self, clock: IReactorTime, store: Store) -> None:
        self._clock = clock
        self._store = store

    def claim(
        self, name: str, peer: str, front: str, since: float, known: bool, session: int, sessions: int
    ) -> Deferred[tuple[str, bool]]:
        written = self._store.record_seen(name, self._clock.seconds())
        if not known:
            return written.addCallback(lambda _: (name, True))
        # A name already in the log is on disk: only its last-seen time is written now,
        # and a returning user need not wait for that.
        written.addErrback(lambda f: self.log.failure("could not record when {name} came back", f, name=name))
        return succeed((name, False))

    def release(self, name: str, session: int, when: float) -> None:
        self._store.record_seen(name, when).addErrback(
            lambda f: self.log.failure("could not record when {name} left", f, name=name)
        )

    def take_backlog(self, name: str, session: int) -> Deferred[bool]:
        return succeed(True)  # the hub's account has one receiver among its sessions here

    def drop_backlog(self, name: str, session: int) -> None:
        pass  # no other node to tell

    def read_moved(self, name: str, conversation: str, position: str) -> None:
        pass  # no session on another node: never asked

    def away_changed(self, name: str, message: str | None) -> None:
        pass  # no other node to tell

    def room_changed(self, event: RoomEvent) -> None:
        pass  # no other node to tell

    def route(
        self, message: Message, keys_by_node: dict[str, list[str]], answer: Callable[[set[str] | Failure], None]
    ) -> None:
        answer(set())  # no user is online on another node: never asked

    def broadcast(self, message: Message, answer: Callable[[set[str] | Failure], None]) -> bool:
        return False  # no other node

    def reachable(self) -> bool:
        return True

    def rereading(self) -> bool:
        return False  # nothing read from elsewhere


class Nodes:
    """This node's users' messages to other nodes' users, in order, and what the other nodes tell it:
    the hub's :class:`~msgsvc.hub.contracts.NetworkListener`, which :mod:`msgsvc.state.cluster`
    calls.  The hub's log and sessions are by name key."""

    log = Logger()
    #: the rooms here: the hub's :class:`~msgsvc.hub.rooms.Rooms`, which sets it as the hub makes it
    rooms: RoomsHere

    def __init__(
        self,
        clock: IReactorTime,
        network: Network,
        users: dict[str, UserRecord],
        sessions: dict[str, Account],
        queue: OfflineQueue,
        emit: Callable[[Event], None],
        protect: Callable[[str, bool, str], None],
        settle: Callable[[Message, Report, list[UserRecord]], Report | Deferred[Report]],
        max_sessions: int,
    ) -> None:
        """``settle``: keeps a message routed (the hub's history) and queues it for those absent;
        ``max_sessions``: an account's sessions on every node together."""
        self._clock = clock
        self.network = network
        self._users = users
        self._sessions = sessions
        self._queue = queue
        self._emit = emit
        self._protect = protect
        self._settle = settle
        self._max_sessions = max_sessions
        #: users online on other nodes, by name key, then by node (its first session there): a name online
        #: here may be too, an account's
        self.remote: dict[str, dict[str, RemoteUser]] = {}
        self._away_here: dict[str, str] = {}  # by name key: the away message of a name online here
        self._away_elsewhere: dict[str, dict[str, str]] = {}  # by name key, then node: as there
        self._passing = Outage(
            self.log,
            clock,
            "pass a message to another node",
            "its sender is refused UNAVAILABLE; a broadcast reaches this node's users only",
        )

    # -- away ------------------------------------------------------------------------------

    def away(self, key: str) -> str | None:
        """The away message of the name ``key`` (its own here first, else one of another node's); None:
        not away."""
        message = self._away_here.get(key)
        if message is None:
            message = next(iter(self._away_elsewhere.get(key, {}).values()), None)
        return message

    def set_away(self, name: str, message: str | None) -> None:
        """``name``, online here, is away with ``message`` (None: back): the other nodes are told."""
        key = username_key(name)
        before = self.away(key)
        if message is None:
            self._away_here.pop(key, None)
        else:
            self._away_here[key] = message
        self.network.away_changed(name, message)
        self._away_shown(key, before)

    def left_here(self, key: str) -> None:
        """The last session of the name ``key`` here left: its away message here goes (the network drops
        it with the name's claim)."""
        before = self.away(key)
        self._away_here.pop(key, None)
        self._away_shown(key, before)

    def _put_away_elsewhere(self, key: str, node: str, message: str | None) -> None:
        nodes = self._away_elsewhere.setdefault(key, {})
        if message is None:
            nodes.pop(node, None)
        else:
            nodes[node] = message
        if not nodes:
            del self._away_elsewhere[key]

    def _away_shown(self, key: str, before: str | None) -> None:
        """AwayChanged if the away message of the name ``key``, online, is no longer ``before``."""
        after = self.away(key)
        if after != before and (key in self.remote or self._online_here(key)):
            record = self._users.get(key)
            self._emit(AwayChanged(record.name if record is not None else key, after))

    def local_away(self) -> dict[str, str]:
        return dict(self._away_here)

    def allowance(self, record: UserRecord) -> int:
        """How many sessions ``record``'s name may have in the service: an account's, or one."""
        return self._max_sessions if record.protected else 1

    def elsewhere(self, key: str) -> RemoteUser | None:
        """The name ``key`` as online on another node (its first there), None if it is on none."""
        return next(iter(self.remote.get(key, {}).values()), None)

    def nodes_of(self, key: str) -> Collection[str]:
        """The other nodes the name ``key`` has sessions on (a view, read at once: on one node, and for a
        name on no other, nothing is made)."""
        nodes = self.remote.get(key)
        return () if nodes is None else nodes.keys()

    def _online(self) -> list[Session]:
        return [s for a in self._sessions.values() for s in a.sessions if s.online]

    def _online_here(self, key: str) -> bool:
        account = self._sessions.get(key)
        return account is not None and account.online

    def route(
        self,
        sender: Session,
        message: Message,
        targets: list[Account],
        elsewhere: dict[str, list[str]],
        offline: list[str],
        absent: list[UserRecord],
        queue: bool,
    ) -> Deferred[Report]:
        """Send to users on other nodes, or after ``sender``'s messages that wait for the network:
        the local ``targets`` get it once the network has answered, and after those.  A target gone
        meanwhile is offline, and the message waits for it if its name is protected (and ``queue``,
        as :meth:`~msgsvc.hub.core.Hub.send` has it); one back meanwhile gets it on its new connection."""
        if elsewhere and not self.network.reachable():
            raise _unreachable()

        def routed(reached: set[str]) -> Report | Deferred[Report]:
            # A name counts once however many nodes have its sessions; the sender's own other sessions
            # elsewhere get its message, and do not count unless it named itself.
            here, got, missed = [], set(), []  # missed: in order, the names gone here, then elsewhere
            for target in targets:
                key = username_key(target.record.name)
                account = self._sessions.get(key)
                if account is not None and account.online:
                    here.append(account)
                    got.add(key)
                else:
                    missed.append(key)
            deliver(message, here, sender)
            for node, keys in elsewhere.items():
                if node in reached:
                    got.update(keys)
                else:
                    missed.extend(keys)
            for key in dict.fromkeys(missed):  # gone here, its nodes gone or behind: offline
                if key not in got:
                    record = self._users[key]
                    offline.append(record.name)
                    if record.protected and queue:
                        absent.append(record)
            if message.kind is Kind.ROOM:  # the members it reached but the sender
                delivered = len(got - {username_key(message.sender)})
            else:
                delivered = len(got.intersection(username_key(name) for name in message.recipients))
            return self._settle(message, Report(message.id, message.at, delivered, tuple(offline)), absent)

        def failed(failure: Failure) -> Failure:  # logged by _heard
            return Failure(_unreachable())

        item = Outgoing(sender, routed, failed)  # its report in turn, after the sender's earlier ones
        if elsewhere:
            self.network.route(message, elsewhere, self._heard(item.answer))
        else:
            item.answer(set())
        return item.report

    def broadcast(self, sender: Session, message: Message) -> Report | Deferred[Report]:
        """Send a broadcast to everyone online but ``sender``, here and on the nodes that take it."""
        own = username_key(sender.record.name)  # its name, should it be back meanwhile

        def deliver_here() -> int:
            accounts = [a for k, a in self._sessions.items() if a.online and k != own]
            deliver(message, accounts, sender)
            return len(accounts)

        def counted(reached: set[str], delivered: int) -> Report:
            # the names elsewhere, not counted here, on a node that took it
            reached_there = sum(
                1
                for key, nodes in self.remote.items()
                if key != own and not self._online_here(key) and not reached.isdisjoint(nodes)
            )
            return Report(message.id, message.at, delivered + reached_there, ())

        def failed(failure: Failure, delivered: int) -> Report:  # logged by _heard
            return Report(message.id, message.at, delivered, ())

        reachable = self.network.reachable()
        if sender.outgoing:  # after its earlier messages, which wait for the network
            item = Outgoing(
                sender, lambda reached: counted(reached, deliver_here()), lambda f: failed(f, deliver_here())
            )
            if not (reachable and self.network.broadcast(message, self._heard(item.answer))):
                item.answer(set())
            return item.report
        delivered = deliver_here()
        report: Deferred[set[str]] = Deferred()
        told = self._heard(lambda outcome: _fire(report, outcome))
        if not (reachable and self.network.broadcast(message, told)):
            return Report(message.id, message.at, delivered, ())
        return report.addCallbacks(counted, failed, callbackArgs=(delivered,), errbackArgs=(delivered,))

    def _heard(
        self, answer: Callable[[set[str] | Failure], None]
    ) -> Callable[[set[str] | Failure], None]:
        """``answer``, with the network's failures logged a few lines an outage (:class:`Outage`)."""

        def heard(outcome: set[str] | Failure) -> None:
            if isinstance(outcome, Failure):
                self._passing.failed(outcome)
            else:
                self._passing.over()
            answer(outcome)

        return heard

    # -- what the other nodes say ------------------------------------------------------

    def remote_message(self, message: Message, keys: Sequence[str]) -> None:
        """Deliver a message from another node's user to these users here (a broadcast: to all).

        Its sender was told they got it: one who left meanwhile gets it later if its name is
        protected (queued, as for a recipient offline when it was sent), else not at all.
        """
        if message.kind is Kind.BROADCAST:
            for session in self._online():
                session.participant.receive(message)
            return
        absent = []
        for key in keys:
            recipient = self._sessions.get(key)
            if recipient is not None and recipient.online:
                for session in recipient.online_sessions():
                    session.participant.receive(message)
            elif message.kind is Kind.ROOM:  # an offline member reads the room's history
                continue
            elif (record := self._users.get(key)) is not None and record.protected and key not in self.remote:
                absent.append(record)  # online nowhere: another node cannot have given it
        if absent:
            told = Report(message.id, message.at, 0, ())
            self._queue.enqueue(message, absent, told).addCallback(self._lost, message, absent)

    def _lost(self, report: Report, message: Message, absent: list[UserRecord]) -> None:
        """Say which of ``absent`` a message counted delivered to did not get, nor will: their queues
        (or the sender's quota, or the total) refused it."""
        lost = [r.name for r in absent if r.name not in report.queued]
        if lost:
            self.log.warn(
                "a message from {sender}, told delivered, is lost for {names}: they left before it came "
                "from its node, and it could not wait for them",
                sender=message.sender,
                names=", ".join(lost),
            )

    def remote_joined(self, user: RemoteUser, first_seen: float, protected: bool, first_time: bool) -> None:
        """``user`` came online on another node (its first session there): JOINED if the name was online
        nowhere else."""
        key = username_key(user.name)
        nodes = self.remote.setdefault(key, {})
        if nodes.get(user.node) == user:
            return  # heard again, after a resync
        online = bool(nodes) or self._online_here(key)
        known = set(nodes)
        nodes[user.node] = user
        record = self._users.get(key)
        if record is None:
            record = self._users[key] = UserRecord(user.name, first_seen, user.since, protected)
        record.last_seen = max(record.last_seen, user.since)
        record.protected = protected
        if not online:
            self._emit(UserJoined(user.name, user.peer, first_time, user.node))
        elif user.node not in known:
            self._emit(SessionsElsewhere(user.name))

    def remote_left(self, key: str, node: str, when: float, dead: bool = False) -> None:
        """The last session of name ``key`` on ``node`` left it (or the node died) at ``when``: LEFT if the
        name is online nowhere else; its away message there goes."""
        if dead:  # it may have had the name's offline queue: a session here takes what is left (also if a
            self.remote_backlog(key)  # read of who is online, taken first, had the name gone from there)
        nodes = self.remote.get(key, {})
        user = nodes.pop(node, None)
        if user is None:
            return
        before = self.away(key)
        self._put_away_elsewhere(key, node, None)
        self._away_shown(key, before)
        if not nodes:
            del self.remote[key]
        if nodes or self._online_here(key):
            self._emit(SessionsElsewhere(user.name))
            return
        record = self._users.get(key)
        if record is not None:
            record.last_seen = when
        self._emit(UserLeft(user.name, user.peer, node))
        if dead:
            # Its node could not end an unprotected name's memberships: every node that hears it does (the
            # first change published is applied, the others' find no member).
            self.rooms.left(user.name)
        else:
            self.rooms.left_elsewhere(user.name)

    def remote_backlog(self, key: str) -> None:
        """The session receiving the offline queue of the name ``key`` on another node let it go: a
        session of it here takes what is left, if none of its sessions on another node does first."""
        account = self._sessions.get(key)
        if account is not None:
            self._queue.hand_over(account)

    def remote_read(self, key: str, conversation: str, position: str) -> None:
        """The read position of the name ``key`` in ``conversation`` moved on another node: its sessions
        here are told."""
        account = self._sessions.get(key)
        for session in account.online_sessions() if account is not None else ():
            session.participant.read_moved(conversation, position)

    def remote_away(self, key: str, node: str, message: str | None) -> None:
        """The name ``key`` on ``node`` is away with ``message`` (None: back)."""
        before = self.away(key)
        self._put_away_elsewhere(key, node, message)
        self._away_shown(key, before)

    def remote_room(self, event: RoomEvent) -> None:
        """What happened in a room on another node, or by the operator's command: applied to the rooms
        here, which tell their members' sessions here."""
        self.rooms.remote(event)

    def remote_protected(self, key: str) -> None:
        """A password was set for the name ``key`` (on any node): shown as protected here too."""
        record = self._users.get(key)
        if record is not None and not record.protected:
            self._protect(record.name, True, "a password was set on another server")

    def resync(
        self,
        records: Iterable[UserRecord],
        online: Iterable[RemoteUser],
        rooms: Iterable[RoomRecord],
        away: Iterable[tuple[str, str, str]],
    ) -> None:
        """Take the log, who is online elsewhere, the rooms and who is away elsewhere as the network has
        them now (after it reconnected)."""
        for record in records:
            key = username_key(record.name)
            mine = self._users.get(key)
            if mine is None:
                self._users[key] = record
            else:
                mine.protected = record.protected
        now: dict[tuple[str, str], RemoteUser] = {(username_key(u.name), u.node): u for u in online}
        for key, nodes in list(self.remote.items()):
            for node, user in list(nodes.items()):
                if now.get((key, node)) != user:
                    self.remote_left(key, node, self._clock.seconds())
        for (key, _), user in now.items():
            known = self._users.get(key)
            if known is not None:
                self.remote_joined(user, known.first_seen, known.protected, False)
        shown = {key: self.away(key) for key in self._away_elsewhere}
        self._away_elsewhere = {}
        for key, node, message in away:
            shown.setdefault(key, self.away(key))
            self._put_away_elsewhere(key, node, message)
        for key, before in shown.items():
            self._away_shown(key, before)
        self.rooms.resync(rooms)
        self._emit(LogLoaded(len(self._users), resync=True))

    def local_users(self) -> list[tuple[str, int, int, str, str, float]]:
        """This node's online sessions: name, session, the name's allowance, peer, front, since (to claim
        again after a reconnection)."""
        return [
            (s.record.name, s.id, self.allowance(s.record), s.peer, s.participant.front, s.since)
            for s in self._online()
        ]

    def drop_local(self, name: str | None, reason: str) -> None:
        """Disconnect this node's user ``name`` (None: every one), whose claim the network lost."""
        key = None if name is None else username_key(name)
        for held, account in list(self._sessions.items()):
            if key is None or key == held:
                for session in list(account.sessions):
                    session.participant.drop(reason)
