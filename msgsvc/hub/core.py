"""The hub's core: registration, sessions, the username log and its views, local routing, and the
operator's actions.  It composes the offline queue (:mod:`msgsvc.hub.queue`), the routing
between nodes (:mod:`msgsvc.hub.nodes`) and the history (:mod:`msgsvc.hub.history`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    Kind,
    Message,
    Network,
    Participant,
    QueuePolicy,
    Refusal,
    Refused,
    Report,
    Store,
    UserRecord,
    UserView,
)
from msgsvc.hub.events import (
    ClientDropped,
    ClientError,
    Connected,
    Disconnected,
    Event,
    LogLoaded,
    NoticeSent,
    ProtectionChanged,
    RegistrationRefused,
    UserJoined,
    UserKicked,
    UserLeft,
    UserRemoved,
)
from msgsvc.hub.history import History, NoHistory
from msgsvc.hub.ids import MessageIds
from msgsvc.hub.nodes import Alone, Nodes
from msgsvc.hub.queue import OfflineQueue
from msgsvc.hub.rules import is_valid_username, username_key
from msgsvc.hub.session import Session
from msgsvc.hub.user import User

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
        ids: MessageIds | None = None,
        history: History | NoHistory | None = None,
    ) -> None:
        """``network``: the other nodes of the service (none: a server alone); ``ids``: what makes the
        messages' ids (by default from ``clock`` and random bits); ``history``: where messages are kept
        (none: a :class:`NoHistory`, as with ``--history-days 0``)."""
        self._clock = clock
        self._ids = ids or MessageIds(clock)
        self.history = history or NoHistory()
        self._max_clients = max_clients
        self._log: dict[str, UserRecord] = {username_key(r.name): r for r in records or ()}
        self._loaded = records is not None  # else nobody may register until load()
        self._sessions: dict[str, Session] = {}  # by username key, pending ones too
        self._registered: dict[Participant, Session] = {}  # who holds a name, pending or online
        self._observers: list[Callable[[Event], None]] = []
        self._queue = OfflineQueue(clock, store, queue, self._log, self._sessions, self._emit)
        self._network = network or Alone(clock, store)
        self.nodes = Nodes(
            clock,
            self._network,
            self._log,
            self._sessions,
            self._queue,
            self._emit,
            self.set_protected,
            self._settle,
        )
        self._remote = self.nodes.remote  # users online on other nodes, by name key

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
        self._log.clear()
        self._log.update((username_key(r.name), r) for r in records)
        self._loaded = True
        self._emit(LogLoaded(len(self._log)))

    # -- registration ----------------------------------------------------

    def register(self, participant: Participant, name: str, peer: str) -> User:
        """Hold ``name`` for ``participant`` until :meth:`admit` or the user's :meth:`~User.log_out`.

        Raises :class:`Refused` if the name is invalid or taken (held,
        or online) or the server is full.  While it is held, the accounts
        check the owner's password; nobody else can take the name meanwhile.
        """
        key = username_key(name)
        held = self._registered.get(participant)
        if held is not None:
            raise Refused(Refusal.ALREADY_REGISTERED, f"already registered as {held.record.name}")
        refusal = None
        if not self._loaded:
            refusal = Refused(
                Refusal.UNAVAILABLE, "the server has not read its username log yet; try again later"
            )
        elif " " in name:  # the line protocol's "HELLO al ice", which its front words its own way
            refusal = Refused(Refusal.USERNAME_INVALID, "a username cannot hold spaces")
        elif not is_valid_username(name):
            refusal = Refused(
                Refusal.USERNAME_INVALID,
                "a username is 1-32 letters, digits, '_', '.' or '-', and starts with a letter",
            )
        elif key in self._sessions:
            refusal = Refused(Refusal.USERNAME_TAKEN, f"{self._sessions[key].record.name} is in use")
        elif key in self._remote:
            refusal = Refused(Refusal.USERNAME_TAKEN, f"{self._remote[key].name} is in use")
        elif len(self._sessions) >= self._max_clients:
            refusal = Refused(
                Refusal.SERVER_FULL, f"the server holds its limit of {self._max_clients} users"
            )
        if refusal is not None:
            self._emit(RegistrationRefused(name, peer, refusal.refusal, refusal.text))
            raise refusal
        now = self._clock.seconds()
        record = self._log.get(key) or UserRecord(name, now, now)
        session = self._sessions[key] = Session(participant, record, peer, now)
        self._registered[participant] = session
        return User(self, session)

    def admit(self, user: User) -> Deferred[User | None]:
        """Bring ``user``, holding its name, online once the log has the name on disk.

        Fires with ``user``, its name as the log spells it (at once for a
        name already in the log), or with None if it has logged out.
        """
        session = user.session
        record = session.record
        key = username_key(record.name)
        if self._sessions.get(key) is not session:
            return succeed(None)
        now = self._clock.seconds()
        network = self._network

        def held(claim: tuple[str, bool]) -> User | None:
            spelled, first_time = claim
            if self._sessions.get(key) is not session:  # it left meanwhile
                network.release(spelled, self._clock.seconds())
                return None
            record.name = spelled  # another node may have put it in the log first
            self._log[key] = record
            session.seen_before = 0.0 if first_time else record.last_seen
            record.last_seen = now
            session.online = True
            self._emit(UserJoined(record.name, session.peer, first_time))
            return user

        def failed(failure: Failure) -> Failure:
            if self._sessions.get(key) is session:
                del self._sessions[key]
                del self._registered[session.participant]
            return failure

        known = key in self._log
        return network.claim(
            record.name, session.peer, session.participant.front, session.since, known
        ).addCallbacks(held, failed)

    def unregister(self, session: Session) -> None:
        """Forget ``session`` (its :meth:`User.log_out`), whether online, pending or forgotten already;
        its User is refused from then on."""
        session.gone = True
        key = username_key(session.record.name)
        if self._sessions.get(key) is not session:
            return
        del self._sessions[key]
        del self._registered[session.participant]
        if not session.online:
            return
        now = self._clock.seconds()
        session.record.last_seen = now
        self._network.release(session.record.name, now)
        self._emit(UserLeft(session.record.name, session.peer))

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
                self._queue.waiting.get(key, 0),
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
                self._queue.waiting.get(key, 0),
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
            self._queue.waiting.get(key, 0),
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
        return self._network.node

    def log_size(self) -> int:
        return len(self._log)

    def online_count(self) -> int:
        """Users online, on every node."""
        return sum(1 for _ in self._online_sessions()) + len(self._remote)

    def _online_sessions(self) -> Iterable[Session]:
        return (s for s in self._sessions.values() if s.online)

    def _online_session(self, key: str) -> Session | None:
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
            self._queue.set_waiting(record.name, 0)  # the store dropped them with the password

    def remove(self, name: str, reason: str) -> bool:
        """Forget ``name``, which the operator removed from the state's log; False (and it is kept) if
        it is held: online (here or on another node) or logging in, in which case the removal came too
        late, and the name is back in the state once seen again."""
        key = username_key(name)
        if key in self._sessions or key in self._remote:
            return False
        record = self._log.pop(key, None)
        self._queue.waiting.pop(key, None)
        if record is not None:
            self._emit(UserRemoved(record.name, reason))
        return True

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

    # The User of a login calls these with its session: none looks a user up.

    def send(
        self, sender: Session, names: Sequence[str], text: str, queue: bool = True
    ) -> Report | Deferred[Report]:
        """Unicast (one name) or multicast (several) ``text`` from ``sender``.

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
        Deferred fails with Refused(UNAVAILABLE), as the call does at
        once when the network is known to be unreachable.
        """
        targets: list[Session] = []
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
        message = Message(sender.record.name, kind, tuple(group), text, *self._ids.make())
        if elsewhere or sender.outgoing:
            return self.nodes.route(sender, message, targets, elsewhere, offline, absent, queue)
        for session in targets:
            session.participant.receive(message)
        report = Report(message.id, message.at, len(targets), tuple(offline))
        return self._settle(message, report, absent)

    def _settle(
        self, message: Message, report: Report, absent: list[UserRecord]
    ) -> Report | Deferred[Report]:
        """Keep ``message``, delivered as ``report`` says, and queue it for ``absent`` (on its way here or
        through :meth:`Nodes.route`): its history goes to the store first, so what SENT calls queued is in
        the history after a crash (in the same group commit as its queueing, or an earlier one)."""
        self.history.keep(message)
        if not absent:
            return report
        self.history.write_now()
        return self._queue.enqueue(message, absent, report)

    def broadcast(self, sender: Session, text: str) -> Report | Deferred[Report]:
        """Send ``text`` to everyone online but the sender.

        With other nodes, the report comes as a Deferred once the network has
        passed it on, and counts the users of the nodes that took it.  While
        the network is unreachable it reaches this node's users only, and its
        count says so.
        """
        message = Message(sender.record.name, Kind.BROADCAST, (), text, *self._ids.make())
        return self._kept(self.nodes.broadcast(sender, message), message)

    def _kept(self, report: Report | Deferred[Report], message: Message) -> Report | Deferred[Report]:
        """``report``, once ``message`` is in the history (as soon as delivered: not waiting for it)."""
        history = self.history
        if isinstance(report, Report):
            history.keep(message)
            return report

        def delivered(report: Report) -> Report:
            history.keep(message)
            return report

        return report.addCallback(delivered)

    # -- the offline queue -----------------------------------------------

    def deliver_backlog(self, session: Session) -> None:
        """Send the online ``session`` the next page of what waited for it (none: nothing)."""
        self._queue.deliver_backlog(session)

    def acknowledge(self, session: Session, up_to: int) -> None:
        """``session`` has the queued messages up to id ``up_to``: drop them; send the next page."""
        self._queue.acknowledge(session, up_to)

    def expire_queued(self) -> Deferred[None]:
        """Drop messages older than the policy allows; count what waits for each user."""
        return self._queue.expire()
