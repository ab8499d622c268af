"""The hub: who is online, the username log, and message routing.

The hub knows no sockets and no wire format.  Protocols adapt it to the
network (:mod:`msgsvc.fronts`); observers (the log, a GUI, and
:mod:`msgsvc.presence`, which tells clients who came and went) subscribe to
its events.  Persistence goes through a :class:`Store` that answers with
Deferreds, so disk work never blocks routing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.wire import Code, Kind, ProtocolError, is_valid_username, username_key


@dataclass
class UserRecord:
    """One entry of the cumulative username log."""

    name: str
    first_seen: float
    last_seen: float
    protected: bool = False  # its owner set a password


@dataclass(slots=True, eq=False)
class Message:
    """A routed text message.  Compared and hashed by identity; slotted for speed, not to be changed."""

    sender: str
    kind: Kind
    #: Who it was addressed to: every named user in the log (online or not), in the log's
    #: spelling; names never registered are left out.  Empty for a broadcast.
    recipients: tuple[str, ...]
    text: str


@dataclass(slots=True)
class Report:
    """What a sender is told: how many got it, which named users are offline, which of those get it later."""

    delivered: int
    offline: tuple[str, ...]
    queued: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserView:
    """A username log entry with its presence, as observers and clients see it."""

    name: str
    online: bool
    first_seen: float
    last_seen: float
    peer: str | None  # the address of an online user
    front: str | None  # the client protocol of an online user: tcp, web or irc
    since: float | None  # when an online user registered
    protected: bool
    queued: int  # messages waiting for it
    node: str | None = None  # the node an online user is on, with --redis


@dataclass(frozen=True)
class RemoteUser:
    """A user online on another node of the service (``--redis``)."""

    name: str
    node: str
    peer: str
    front: str
    since: float


@dataclass(frozen=True)
class Queued:
    """A message waiting for its recipient: ``id`` grows with every message queued."""

    id: int
    sender: str
    kind: str
    recipients: tuple[str, ...]
    text: str
    sent_at: float


@dataclass(frozen=True)
class Enqueue:
    """Queue one message for each of ``recipients`` (name keys) that has room, in order, while the
    sender's quota and the total have room too."""

    recipients: tuple[str, ...]
    sender: str
    kind: str
    group: tuple[str, ...]  # whom it was addressed to, as MSG names them
    text: str
    sent_at: float
    limit: int  # messages a recipient may have waiting
    oldest: float  # messages sent before this have expired
    sender_limit: int  # messages that may wait from one sender, for all its recipients together
    total_limit: int  # messages that may wait in all the queues together


class Participant(Protocol):
    """A client connection as the hub sees it."""

    #: the client protocol it came by: "tcp" (the line protocol), "web" or "irc"
    front: str

    def receive(self, message: Message) -> None:
        """Deliver ``message``; the same object goes to every recipient."""

    def notice(self, text: str) -> None:
        """Deliver a notice from the server's operator."""

    def kick(self, reason: str) -> None:
        """The operator disconnects it, telling the client ``reason``."""

    def drop(self, reason: str) -> None:
        """The server disconnects it (its name could not be kept), telling the client ``reason``."""

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        """Deliver messages that waited for this user; ``waiting`` more are queued after them."""


class Store(Protocol):
    """Where the username log and the offline queue persist; each fires once durable."""

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        """Add ``name`` to the log or move its last-seen time."""

    def enqueue(self, message: Enqueue) -> Deferred[tuple[str, ...]]:
        """Queue a message; the recipient keys it was queued for.

        The counts it checks (each recipient's, the sender's, the total) and
        the messages it adds change together, atomically.
        """

    def backlog(self, name: str, after: int, oldest: float, limit: int) -> Deferred[tuple[list[Queued], int]]:
        """A page of what waits for ``name`` after id ``after``, and how many wait after that page."""

    def acknowledge(self, name: str, up_to: int) -> Deferred[int]:
        """Drop what waited for ``name`` up to id ``up_to``; how many are left."""

    def expire(self, oldest: float) -> Deferred[dict[str, int]]:
        """Drop what was sent before ``oldest``; how many wait for each recipient key."""


class Network(Protocol):
    """The other nodes of one service (:mod:`msgsvc.state.cluster`); a server alone has none.

    It calls the hub back with what happens elsewhere: :meth:`Hub.remote_joined`,
    :meth:`Hub.remote_left`, :meth:`Hub.remote_message`, :meth:`Hub.resync` and
    :meth:`Hub.drop_local`.
    """

    #: this node's name, as the server window shows it
    node: str

    def claim(self, name: str, peer: str, front: str, since: float) -> Deferred[tuple[str, bool]]:
        """Hold ``name`` for a user of this node in the whole service, and put it in the log.

        Fires with the name as the log spells it and whether it is new to the
        log; fails with ProtocolError(USERNAME_TAKEN) if another node holds it,
        or with a StoreError if that cannot be known now.
        """

    def release(self, name: str, when: float) -> None:
        """The user of this node holding ``name`` left at ``when``."""

    def route(self, message: Message, keys_by_node: dict[str, list[str]]) -> Deferred[set[str]]:
        """Send ``message`` to these users of other nodes; fires with the nodes that took it, to deliver
        to those of its users still connected when it reads it.  A node not alive within its lease,
        or too far behind to take more, is left out.

        A broadcast (``keys_by_node`` empty) goes to every other node.
        """

    def reachable(self) -> bool:
        """Whether the service's state is reachable now: without it, only this node's users are."""


@dataclass(frozen=True)
class QueuePolicy:
    """How much may wait for an offline protected user (the documented defaults)."""

    limit: int = 1000  # messages per recipient
    age: float = 30 * 86400.0  # seconds before a waiting message expires
    page: int = 100  # messages delivered before the client must acknowledge
    per_sender: int = 2000  # messages waiting from one sender, for all its recipients together
    total: int = 100_000  # messages waiting in all the queues together


@dataclass(frozen=True)
class UserJoined:
    name: str
    peer: str
    first_time: bool
    node: str | None = None  # another node's user


@dataclass(frozen=True)
class UserLeft:
    name: str
    peer: str
    node: str | None = None


@dataclass(frozen=True)
class RegistrationRefused:
    name: str
    peer: str
    code: Code
    reason: str


@dataclass(frozen=True)
class UserKicked:
    name: str
    reason: str


@dataclass(frozen=True)
class ProtectionChanged:
    """A name was protected, got a new password, or lost its protection (``reason`` says why)."""

    name: str
    protected: bool
    reason: str


@dataclass(frozen=True)
class UserRemoved:
    """The operator removed ``name`` from the username log (with its password and what waited for it)."""

    name: str
    reason: str


@dataclass(frozen=True)
class QueueChanged:
    """How many messages wait for ``name`` now."""

    name: str
    waiting: int


@dataclass(frozen=True)
class LogLoaded:
    """The username log was read from the state: at start-up, or (``resync``) from Redis with who is
    online on the other nodes, once this node's subscription is up (again)."""

    names: int
    resync: bool = False


@dataclass(frozen=True)
class NoticeSent:
    text: str
    delivered: int


@dataclass(frozen=True)
class Connected:
    """A connection opened (announced by the server, not the hub)."""

    peer: str


@dataclass(frozen=True)
class Disconnected:
    peer: str
    reason: str


@dataclass(frozen=True)
class ClientError:
    """A client's line was refused with ``ERROR``."""

    peer: str
    code: Code
    text: str


@dataclass(frozen=True)
class ClientDropped:
    """The server cut a client off to protect the others."""

    peer: str
    reason: str


Event = (
    UserJoined
    | UserLeft
    | RegistrationRefused
    | UserKicked
    | ProtectionChanged
    | UserRemoved
    | QueueChanged
    | LogLoaded
    | NoticeSent
    | Connected
    | Disconnected
    | ClientError
    | ClientDropped
)


def _unreachable() -> ProtocolError:
    return ProtocolError(
        Code.SERVER_ERROR, "the service's state is unreachable: only users of this server can be reached now"
    )


@dataclass
class _Session:
    participant: Participant
    record: UserRecord
    peer: str
    since: float
    online: bool = False  # False while the store write is pending
    delivered_through: int = 0  # the id of the last queued message sent to it
    reading: bool = False  # a page of its backlog is being read
    unacknowledged: bool = False  # a page was sent and not yet acknowledged
    outgoing: deque[_Outgoing] | None = None  # its messages waiting for the network, oldest first


class _Outgoing:
    """A message waiting for the network's answer, and then for its sender's earlier messages."""

    __slots__ = ("done", "outcome")

    def __init__(self, done: Deferred[set[str]]) -> None:
        self.done = done  # fired with the answer, to deliver the message here
        self.outcome: set[str] | Failure | None = None  # the answer: the nodes the network reached


class Hub:
    """Registration, presence and routing for one server."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        store: Store,
        records: Iterable[UserRecord] | None,
        max_clients: int,
        queue: QueuePolicy = QueuePolicy(),  # noqa: B008 - frozen
        network: Network | None = None,
    ) -> None:
        self._clock = clock
        self._store = store
        self._network = network
        self._remote: dict[str, RemoteUser] = {}  # users online on other nodes, by name key
        self._max_clients = max_clients
        self._queue = queue
        self._waiting: dict[str, int] = {}  # queued messages by recipient key
        self._log: dict[str, UserRecord] = {username_key(r.name): r for r in records or ()}
        self._loaded = records is not None  # else nobody may register until load()
        self._sessions: dict[str, _Session] = {}  # by username key, pending ones too
        self._keys: dict[Participant, str] = {}
        self._observers: list[Callable[[Event], None]] = []

    # -- observers -------------------------------------------------------

    def subscribe(self, observer: Callable[[Event], None]) -> None:
        """Call ``observer`` with every :data:`Event` from now on."""
        self._observers.append(observer)

    def unsubscribe(self, observer: Callable[[Event], None]) -> None:
        self._observers.remove(observer)

    def announce(
        self, event: Connected | Disconnected | ClientError | ClientDropped | RegistrationRefused
    ) -> None:
        """Pass a connection-level event from a front (or a login refused by the accounts) to the observers."""
        self._emit(event)

    def _emit(self, event: Event) -> None:
        for observer in list(self._observers):
            try:
                observer(event)
            except Exception:
                self.log.failure(
                    "hub observer {observer!r} failed on {event!r}", observer=observer, event=event
                )

    def load(self, records: Iterable[UserRecord]) -> None:
        """Take the username log read from the state, and let clients register."""
        self._log = {username_key(r.name): r for r in records}
        self._loaded = True
        self._emit(LogLoaded(len(self._log)))

    # -- registration ----------------------------------------------------

    def register(self, participant: Participant, name: str, peer: str) -> None:
        """Hold ``name`` for ``participant`` until :meth:`admit` or :meth:`unregister`.

        Raises :class:`ProtocolError` if the name is invalid or taken (held,
        or online) or the server is full.  While it is held, the accounts
        check the owner's password; nobody else can take the name meanwhile.
        """
        key = username_key(name)
        if participant in self._keys:
            raise ProtocolError(
                Code.ALREADY_REGISTERED,
                f"already registered as {self._sessions[self._keys[participant]].record.name}",
            )
        refusal = None
        if not self._loaded:
            refusal = ProtocolError(
                Code.SERVER_ERROR, "the server has not read its username log yet; try again later"
            )
        elif " " in name:  # "HELLO al ice"
            refusal = ProtocolError(
                Code.USERNAME_INVALID, "a username cannot hold spaces (a password goes after ' :')"
            )
        elif not is_valid_username(name):
            refusal = ProtocolError(
                Code.USERNAME_INVALID,
                "a username is 1-32 letters, digits, '_', '.' or '-', and starts with a letter",
            )
        elif key in self._sessions:
            refusal = ProtocolError(Code.USERNAME_TAKEN, f"{self._sessions[key].record.name} is in use")
        elif key in self._remote:
            refusal = ProtocolError(Code.USERNAME_TAKEN, f"{self._remote[key].name} is in use")
        elif len(self._sessions) >= self._max_clients:
            refusal = ProtocolError(
                Code.SERVER_FULL, f"the server holds its limit of {self._max_clients} users"
            )
        if refusal is not None:
            self._emit(RegistrationRefused(name, peer, refusal.code, refusal.text))
            raise refusal
        now = self._clock.seconds()
        record = self._log.get(key) or UserRecord(name, now, now)
        self._sessions[key] = _Session(participant, record, peer, now)
        self._keys[participant] = key

    def admit(self, participant: Participant, name: str) -> Deferred[str | None]:
        """Bring ``participant``, holding ``name``, online once the log has the name on disk.

        Fires with the name as the log spells it (at once for a name already
        in the log), or with None if the participant has left.
        """
        key = self._keys.get(participant)
        if key is None:
            return succeed(None)
        if key != username_key(name):
            raise ValueError(f"{name} is not the name this participant holds")
        session = self._sessions[key]
        record = session.record
        first_time = key not in self._log
        now = self._clock.seconds()

        def recorded(_: None) -> str | None:
            if self._sessions.get(key) is not session:
                return None
            self._log[key] = record
            record.last_seen = now
            session.online = True
            self._emit(UserJoined(record.name, session.peer, first_time))
            return record.name

        def failed(failure: Failure) -> Failure:
            if self._sessions.get(key) is session:
                del self._sessions[key]
                del self._keys[participant]
            return failure

        if self._network is not None:
            network = self._network

            def held(claim: tuple[str, bool]) -> str | None:
                nonlocal first_time
                spelled, first_time = claim
                if self._sessions.get(key) is not session:  # it left meanwhile
                    network.release(spelled, self._clock.seconds())
                    return None
                record.name = spelled  # another node may have put it in the log first
                return recorded(None)

            since = session.since
            return network.claim(record.name, session.peer, participant.front, since).addCallbacks(
                held, failed
            )
        written = self._store.record_seen(record.name, now)
        if first_time:
            return written.addCallbacks(recorded, failed)
        # A name already in the log is on disk: only its last-seen time is written now,
        # and a returning user need not wait for that.
        written.addErrback(
            lambda f: self.log.failure("could not record when {name} came back", f, name=record.name)
        )
        return succeed(None).addCallback(recorded)

    def unregister(self, participant: Participant) -> None:
        """Forget ``participant``, whether registered, pending or unknown."""
        key = self._keys.pop(participant, None)
        if key is None:
            return
        session = self._sessions.pop(key)
        if not session.online:
            return
        now = self._clock.seconds()
        session.record.last_seen = now
        if self._network is not None:
            self._network.release(session.record.name, now)
        else:
            self._store.record_seen(session.record.name, now).addErrback(
                lambda f: self.log.failure("could not record when {name} left", f, name=session.record.name)
            )
        self._emit(UserLeft(session.record.name, session.peer))

    def name_of(self, participant: Participant) -> str | None:
        """The registered name of ``participant``, or None."""
        session = self._session_of(participant)
        return session.record.name if session is not None else None

    def _session_of(self, participant: Participant) -> _Session | None:
        """The session of ``participant`` if it is registered and online."""
        key = self._keys.get(participant)
        return self._online_session(key) if key is not None else None

    # -- the log ---------------------------------------------------------

    def users(self) -> list[UserView]:
        """The whole username log with presence, in case-insensitive name order."""
        return [self._view(key, self._log[key]) for key in sorted(self._log)]

    def _view(self, key: str, record: UserRecord) -> UserView:
        session = self._online_session(key)
        remote = self._remote.get(key) if session is None else None
        if remote is not None:
            return UserView(
                record.name,
                True,
                record.first_seen,
                record.last_seen,
                remote.peer,
                remote.front,
                remote.since,
                record.protected,
                self._waiting.get(key, 0),
                remote.node,
            )
        if session is None:
            return UserView(
                record.name,
                False,
                record.first_seen,
                record.last_seen,
                None,
                None,
                None,
                record.protected,
                self._waiting.get(key, 0),
            )
        return UserView(
            record.name,
            True,
            record.first_seen,
            record.last_seen,
            session.peer,
            session.participant.front,
            session.since,
            record.protected,
            self._waiting.get(key, 0),
            self.node,
        )

    def user(self, name: str) -> UserView | None:
        """The log entry for ``name`` with its presence, or None if never registered."""
        key = username_key(name)
        record = self._log.get(key)
        if record is None:
            return None
        return self._view(key, record)

    @property
    def node(self) -> str | None:
        """This node's name in a service of several (``--redis``); None for a server alone."""
        return self._network.node if self._network is not None else None

    def log_size(self) -> int:
        return len(self._log)

    def online_count(self) -> int:
        """Users online, on every node."""
        return sum(1 for _ in self._online_sessions()) + len(self._remote)

    def _online_sessions(self) -> Iterable[_Session]:
        return (s for s in self._sessions.values() if s.online)

    def _online_session(self, key: str) -> _Session | None:
        """The session of the user with this key if it is online (not just registering)."""
        session = self._sessions.get(key)
        return session if session is not None and session.online else None

    # -- operator actions ------------------------------------------------

    def kick(self, name: str, reason: str) -> bool:
        """Disconnect the online user ``name``; False if nobody by that name is online."""
        session = self._online_session(username_key(name))
        if session is None:
            return False
        self._emit(UserKicked(session.record.name, reason))
        session.participant.kick(reason)
        return True

    def set_protected(self, name: str, protected: bool, reason: str = "") -> None:
        """Mark ``name`` (in the log, or held by a registering client) as protected or not.

        Called again with ``protected`` True, it tells the observers of a new password.
        """
        key = username_key(name)
        session = self._sessions.get(key)
        record = self._log.get(key) or (session.record if session is not None else None)
        if record is None:
            return
        record.protected = protected
        self._emit(ProtectionChanged(record.name, protected, reason))
        if not protected:
            self._set_waiting(record.name, 0)  # the store dropped them with the password

    def remove(self, name: str, reason: str) -> bool:
        """Forget ``name``, which the operator removed from the state's log; False (and it is kept) if
        it is held: online (here or on another node) or logging in, in which case the removal came too
        late, and the name is back in the state once seen again."""
        key = username_key(name)
        if key in self._sessions or key in self._remote:
            return False
        record = self._log.pop(key, None)
        self._waiting.pop(key, None)
        if record is not None:
            self._emit(UserRemoved(record.name, reason))
        return True

    def remote_protected(self, key: str) -> None:
        """A password was set for the name ``key`` (on any node): shown as protected here too."""
        record = self._log.get(key)
        if record is not None and not record.protected:
            self.set_protected(record.name, True, "a password was set on another server")

    def notify(self, name: str, text: str) -> bool:
        """Send a server notice to the online user ``name``; False if it is not online."""
        session = self._online_session(username_key(name))
        if session is not None:
            session.participant.notice(text)
        return session is not None

    def notice(self, text: str) -> int:
        """Send a server notice to everyone online; how many got it."""
        sessions = list(self._online_sessions())
        for session in sessions:
            session.participant.notice(text)
        self._emit(NoticeSent(text, len(sessions)))
        return len(sessions)

    # -- routing ---------------------------------------------------------

    def registered_name(self, participant: Participant) -> str:
        """The name of ``participant``, who must be registered (else NOT_REGISTERED)."""
        return self._sender(participant).record.name

    def send(
        self, participant: Participant, names: Sequence[str], text: str, queue: bool = True
    ) -> Report | Deferred[Report]:
        """Unicast (one name) or multicast (several) ``text`` from ``participant``.

        ``names`` must be distinct case-insensitively.  Names not online,
        known or not, are reported back as offline.  Each recipient is told
        the whole group (see :attr:`Message.recipients`), so it can reply to all.
        For offline protected recipients the message is queued (unless not
        ``queue``: the front's bound for the sender is reached): then the
        report comes as a Deferred, once the queue is on disk, and names
        those it was queued for (none, if the store failed).

        Recipients on other nodes get it through the network, and the
        report comes as a Deferred once it has answered: those on a node
        not alive within its lease count as offline.  Nobody gets it before
        that answer, and if the network cannot answer, nobody gets it: the
        Deferred fails with ProtocolError(SERVER_ERROR), as the call does at
        once when the network is known to be unreachable.
        """
        sender = self._sender(participant)
        targets: list[_Session] = []
        elsewhere: dict[str, list[str]] = {}  # keys of recipients on other nodes, by node
        group: list[str] = []  # the names in the log, as it spells them
        offline: list[str] = []
        absent: list[UserRecord] = []  # offline protected recipients: their messages wait
        for name in names:
            key = username_key(name)
            session = self._online_session(key)
            if session is not None:
                targets.append(session)
                group.append(session.record.name)
                continue
            remote = self._remote.get(key)
            if remote is not None:
                elsewhere.setdefault(remote.node, []).append(key)
                group.append(remote.name)
                continue
            record = self._log.get(key)
            if record is not None:
                group.append(record.name)
                if record.protected and queue:
                    absent.append(record)
            offline.append(record.name if record is not None else name)
        kind = Kind.UNICAST if len(names) == 1 else Kind.MULTICAST
        message = Message(sender.record.name, kind, tuple(group), text)
        if elsewhere or sender.outgoing:
            return self._route(sender, message, targets, elsewhere, offline, absent)
        for session in targets:
            session.participant.receive(message)
        report = Report(len(targets), tuple(offline))
        if not absent:
            return report
        return self._enqueue(message, absent, report)

    def _sender(self, participant: Participant) -> _Session:
        """The session of ``participant``, who must be registered (else NOT_REGISTERED)."""
        session = self._session_of(participant)
        if session is None:
            raise ProtocolError(Code.NOT_REGISTERED, "say HELLO <username> first")
        return session

    def _route(
        self,
        sender: _Session,
        message: Message,
        targets: list[_Session],
        elsewhere: dict[str, list[str]],
        offline: list[str],
        absent: list[UserRecord],
    ) -> Deferred[Report]:
        """:meth:`send` to users on other nodes, or after ``sender``'s messages that wait for the
        network: the local users get it once the network has answered, and after those."""
        routing: Deferred[set[str]] | None = None
        if elsewhere:
            network = self._network
            if network is None or not network.reachable():
                raise _unreachable()
            routing = network.route(message, elsewhere)

        def routed(reached: set[str]) -> Report | Deferred[Report]:
            delivered = 0
            for session in targets:
                if session.online:  # not gone meanwhile
                    session.participant.receive(message)
                    delivered += 1
            for node, keys in elsewhere.items():
                if node in reached:
                    delivered += len(keys)
                    continue
                for key in keys:  # its node is gone or behind: offline, and waiting if protected
                    record = self._log[key]
                    offline.append(record.name)
                    if record.protected:
                        absent.append(record)
            report = Report(delivered, tuple(offline))
            return self._enqueue(message, absent, report) if absent else report

        def failed(failure: Failure) -> Failure:
            self.log.failure("could not route a message from {sender}", failure, sender=message.sender)
            return Failure(_unreachable())

        return self._in_order(sender, routing, routed, failed)

    def _in_order(
        self,
        sender: _Session,
        routing: Deferred[set[str]] | None,
        routed: Callable[[set[str]], Report | Deferred[Report]],
        failed: Callable[[Failure], Failure | Report],
    ) -> Deferred[Report]:
        """Call ``routed`` with what ``routing`` answers (None: no nodes, at once), or ``failed``, but only
        after the calls for ``sender``'s earlier messages: its users here get its messages in order."""
        done: Deferred[set[str]] = Deferred()
        item = _Outgoing(done)
        if sender.outgoing is None:
            sender.outgoing = deque()
        sender.outgoing.append(item)
        if routing is None:
            self._answered(set(), sender, item)
        else:
            routing.addBoth(self._answered, sender, item)
        return done.addCallbacks(routed, failed)

    @staticmethod
    def _answered(outcome: set[str] | Failure, sender: _Session, item: _Outgoing) -> None:
        item.outcome = outcome
        waiting = sender.outgoing
        assert waiting is not None
        while waiting and waiting[0].outcome is not None:
            head = waiting.popleft()
            if isinstance(head.outcome, Failure):
                head.done.errback(head.outcome)
            elif head.outcome is not None:
                head.done.callback(head.outcome)
        if not waiting:
            sender.outgoing = None

    def _enqueue(self, message: Message, absent: list[UserRecord], report: Report) -> Deferred[Report]:
        now = self._clock.seconds()
        keys = tuple(username_key(r.name) for r in absent)
        queue = self._queue
        request = Enqueue(
            keys,
            message.sender,
            message.kind.value,
            message.recipients,
            message.text,
            now,
            queue.limit,
            now - queue.age,
            queue.per_sender,
            queue.total,
        )

        def queued(done: tuple[str, ...]) -> Report:
            for record in absent:
                key = username_key(record.name)
                if key in done:
                    self._set_waiting(record.name, self._waiting.get(key, 0) + 1)
            report.queued = tuple(r.name for r in absent if username_key(r.name) in done)
            return report

        def failed(failure: Failure) -> Report:
            self.log.failure("could not queue a message from {sender}", failure, sender=message.sender)
            return report

        return self._store.enqueue(request).addCallbacks(queued, failed)

    # -- the offline queue ---------------------------------------------------

    def deliver_backlog(self, participant: Participant) -> None:
        """Send the online ``participant`` the next page of what waited for it (none: nothing)."""
        session = self._session_of(participant)
        if session is None or session.reading or session.unacknowledged or not session.record.protected:
            return
        session.reading = True
        now = self._clock.seconds()
        name = session.record.name

        def got(page: tuple[list[Queued], int]) -> None:
            backlog, waiting = page
            session.reading = False
            if not backlog or self._sessions.get(username_key(name)) is not session:
                return
            session.delivered_through = backlog[-1].id
            session.unacknowledged = True
            session.participant.deliver(backlog, waiting)

        def failed(failure: Failure) -> None:
            session.reading = False
            self.log.failure("could not read the messages waiting for {name}", failure, name=name)

        self._store.backlog(
            name, session.delivered_through, now - self._queue.age, self._queue.page
        ).addCallbacks(got, failed)

    def acknowledge(self, participant: Participant, up_to: int) -> None:
        """``participant`` has the queued messages up to id ``up_to``: drop them; send the next page."""
        name = self.registered_name(participant)
        session = self._sessions[username_key(name)]
        whole_page = session.unacknowledged and up_to >= session.delivered_through
        if whole_page:
            session.unacknowledged = False  # a second ACK of it brings nothing more

        def dropped(left: int) -> None:
            self._set_waiting(name, left)
            if whole_page and self._sessions.get(username_key(name)) is session:
                self.deliver_backlog(participant)

        self._store.acknowledge(name, min(up_to, session.delivered_through)).addCallbacks(
            dropped, lambda f: self.log.failure("could not drop what {name} received", f, name=name)
        )

    def _set_waiting(self, name: str, count: int) -> None:
        """Note that ``count`` messages wait for ``name``, telling the observers if that changed."""
        key = username_key(name)
        if self._waiting.get(key, 0) == count:
            return
        if count:
            self._waiting[key] = count
        else:
            del self._waiting[key]
        self._emit(QueueChanged(name, count))

    def expire_queued(self) -> Deferred[None]:
        """Drop messages older than the policy allows; count what waits for each user."""

        def counted(waiting: dict[str, int]) -> None:
            for key in set(self._waiting) | set(waiting):
                record = self._log.get(key)
                if record is not None:  # messages are queued only for names in the log
                    self._set_waiting(record.name, waiting.get(key, 0))

        return self._store.expire(self._clock.seconds() - self._queue.age).addCallback(counted)

    def broadcast(self, participant: Participant, text: str) -> Report | Deferred[Report]:
        """Send ``text`` to everyone online but the sender.

        With other nodes, the report comes as a Deferred once the network has
        passed it on, and counts the users of the nodes that took it.  While
        the network is unreachable it reaches this node's users only, and its
        count says so.
        """
        sender = self._sender(participant)
        message = Message(sender.record.name, Kind.BROADCAST, (), text)
        network = self._network
        routing = network.route(message, {}) if network is not None and network.reachable() else None

        def deliver() -> int:
            delivered = 0
            for session in list(self._online_sessions()):
                if session is not sender:
                    session.participant.receive(message)
                    delivered += 1
            return delivered

        def counted(reached: set[str], delivered: int) -> Report:
            return Report(delivered + sum(1 for u in self._remote.values() if u.node in reached), ())

        def failed(failure: Failure, delivered: int) -> Report:
            self.log.failure("could not pass a broadcast from {sender} on", failure, sender=message.sender)
            return Report(delivered, ())

        if sender.outgoing:  # after its earlier messages, which wait for the network
            return self._in_order(
                sender, routing, lambda reached: counted(reached, deliver()), lambda f: failed(f, deliver())
            )
        delivered = deliver()
        if routing is None:
            return Report(delivered, ())
        return routing.addCallbacks(counted, failed, callbackArgs=(delivered,), errbackArgs=(delivered,))

    # -- other nodes (msgsvc.state.cluster) ----------------------------------

    def remote_message(self, message: Message, keys: Sequence[str]) -> None:
        """Deliver a message from another node's user to these users here (a broadcast: to all).

        Its sender was told they got it: one who left meanwhile gets it later if its name is
        protected (queued, as for a recipient offline when it was sent), else not at all.
        """
        if message.kind is Kind.BROADCAST:
            for session in list(self._online_sessions()):
                session.participant.receive(message)
            return
        absent = []
        for key in keys:
            recipient = self._online_session(key)
            if recipient is not None:
                recipient.participant.receive(message)
            elif (record := self._log.get(key)) is not None and record.protected:
                absent.append(record)
        if absent:
            self._enqueue(message, absent, Report(0, ())).addCallback(self._lost, message, absent)

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
        """``user`` came online on another node."""
        key = username_key(user.name)
        if self._online_session(key) is not None:
            return  # ours until the network says otherwise (drop_local, or a kick)
        before = self._remote.get(key)
        if before == user:
            return  # heard again, after a resync
        if before is not None:  # its old node died without a word: it left there first
            self._emit(UserLeft(before.name, before.peer, before.node))
        record = self._log.get(key)
        if record is None:
            record = self._log[key] = UserRecord(user.name, first_seen, user.since, protected)
        record.last_seen = user.since
        record.protected = protected
        self._remote[key] = user
        self._emit(UserJoined(user.name, user.peer, first_time, user.node))

    def remote_left(self, key: str, node: str, when: float) -> None:
        """The user holding name ``key`` on ``node`` left it (or the node died) at ``when``."""
        user = self._remote.get(key)
        if user is None or user.node != node:
            return
        del self._remote[key]
        record = self._log.get(key)
        if record is not None:
            record.last_seen = when
        self._emit(UserLeft(user.name, user.peer, node))

    def resync(self, records: Iterable[UserRecord], online: Iterable[RemoteUser]) -> None:
        """Take the log and who is online elsewhere as the network has them now (after it reconnected)."""
        for record in records:
            key = username_key(record.name)
            mine = self._log.get(key)
            if mine is None:
                self._log[key] = record
            else:
                mine.protected = record.protected
        now = {username_key(u.name): u for u in online}
        for key, user in list(self._remote.items()):
            if now.get(key) != user:
                self.remote_left(key, user.node, self._clock.seconds())
        for user in now.values():
            known = self._log.get(username_key(user.name))
            if known is not None:
                self.remote_joined(user, known.first_seen, known.protected, False)
        self._emit(LogLoaded(len(self._log), resync=True))

    def local_users(self) -> list[tuple[str, str, str, float]]:
        """This node's online users: name, peer, front, since (to claim again after a reconnection)."""
        return [(s.record.name, s.peer, s.participant.front, s.since) for s in self._online_sessions()]

    def drop_local(self, name: str | None, reason: str) -> None:
        """Disconnect this node's user ``name`` (None: every one), whose claim the network lost."""
        sessions = list(self._sessions.values())
        for session in sessions:
            if name is None or username_key(name) == username_key(session.record.name):
                session.participant.drop(reason)
