"""The hub's core: registration, sessions, the username log and its views, local routing, and the
operator's actions.  It composes the offline queue (:mod:`msgsvc.hub.queue`), the routing
between nodes (:mod:`msgsvc.hub.nodes`), the history (:mod:`msgsvc.hub.history`) and the rooms
(:mod:`msgsvc.hub.rooms`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    HubStore,
    Kind,
    Message,
    Network,
    Participant,
    QueuePolicy,
    Refusal,
    Refused,
    Report,
    RoomRecord,
    SessionView,
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
    SessionClosed,
    SessionOpened,
    UserJoined,
    UserKicked,
    UserLeft,
    UserRemoved,
)
from msgsvc.hub.history import History, NoHistory
from msgsvc.hub.ids import MessageIds
from msgsvc.hub.nodes import Alone, Nodes
from msgsvc.hub.queue import OfflineQueue
from msgsvc.hub.rooms import RoomPolicy, Rooms, unlimited
from msgsvc.hub.rules import is_valid_username, username_key
from msgsvc.hub.session import Account, Session, deliver
from msgsvc.hub.user import User

class Hub:
    """Registration, presence and routing for one server."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        store: HubStore,
        records: Iterable[UserRecord] | None,
        max_clients: int,
        queue: QueuePolicy = QueuePolicy(),  # noqa: B008 - frozen
        network: Network | None = None,
        ids: MessageIds | None = None,
        history: History | NoHistory | None = None,
        max_sessions: int = 10,
        room_policy: RoomPolicy = RoomPolicy(),  # noqa: B008 - frozen
        room_creations: Callable[[str], float] = unlimited,
    ) -> None:
        """``max_clients``: sessions at once, of every name; ``network``: the other nodes of the service
        (none: a server alone); ``ids``: what makes the messages' ids (by default from ``clock`` and
        random bits); ``history``: where messages are kept (none: a :class:`NoHistory`, as with
        ``--history-days 0``); ``max_sessions``: sessions of one protected name at once; ``records``: the
        username log (and no rooms), or None until :meth:`load`; ``room_creations``: counts a room created
        from an address, 0 or the seconds to wait (by default, no limit)."""
        self._clock = clock
        self._ids = ids or MessageIds(clock)
        self.history = history or NoHistory()
        self._max_clients = max_clients
        self._max_sessions = max_sessions
        self._session_ids = 0  # the latest session's id
        self._log: dict[str, UserRecord] = {username_key(r.name): r for r in records or ()}
        self._loaded = records is not None  # else nobody may register until load()
        self._sessions: dict[str, Account] = {}  # the names held here, by username key, pending ones too
        self._registered: dict[Participant, Session] = {}  # who holds a name, pending or online
        self._admitting: dict[Account, list[tuple[User, Deferred[User | None]]]] = {}  # claims in flight
        self._observers: list[Callable[[Event], None]] = []
        self._network = network or Alone(clock, store)
        self._queue = OfflineQueue(clock, store, self._network, queue, self._log, self._emit)
        self.nodes = Nodes(
            clock,
            self._network,
            self._log,
            self._sessions,
            self._queue,
            self._emit,
            self.set_protected,
            self._settle,
            max_sessions,
        )
        self._remote = self.nodes.remote  # users online on other nodes, by name key, then node
        self.rooms = Rooms(
            clock,
            store,
            self._log,
            self._sessions,
            self.nodes,
            self._ids,
            self._emit,
            self._settle,
            room_policy,
            room_creations,
        )
        if records is not None:
            self.rooms.load(())

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

    def load(self, records: Iterable[UserRecord], rooms: Iterable[RoomRecord]) -> None:
        """Take the username log and the rooms read from the state, and let clients register."""
        self._log.clear()
        self._log.update((username_key(r.name), r) for r in records)
        self.rooms.load(rooms)
        self._loaded = True
        self._emit(LogLoaded(len(self._log)))

    # -- registration ----------------------------------------------------

    def register(
        self, participant: Participant, name: str, peer: str, attach: bool = False, host: str | None = None
    ) -> User:
        """Hold ``name`` for ``participant`` (connected from ``peer``, counted by the per-address bounds as
        ``host``: :func:`~msgsvc.fronts.clients.host_of`; ``peer`` if None) until :meth:`admit` or the
        user's :meth:`~User.log_out`.

        Raises :class:`Refused` if the name is invalid or taken (held,
        or online) or the server is full.  While it is held, the accounts
        check the owner's password; nobody else can take the name meanwhile.
        With ``attach`` (its password is checked), a protected name held here
        gets one more session, up to ``max_sessions`` (then SESSIONS_FULL).
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
        elif (account := self._sessions.get(key)) is not None and not (attach and account.record.protected):
            refusal = Refused(Refusal.USERNAME_TAKEN, f"{account.record.name} is in use")
        elif account is not None and len(account.sessions) >= self._max_sessions:
            refusal = Refused(
                Refusal.SESSIONS_FULL, f"{account.record.name} has its limit of {self._max_sessions} sessions"
            )
        elif account is None and (remote := self.nodes.elsewhere(key)) is not None and not (
            attach and self._log[key].protected
        ):
            refusal = Refused(Refusal.USERNAME_TAKEN, f"{remote.name} is in use")
        elif len(self._registered) >= self._max_clients:
            refusal = Refused(
                Refusal.SERVER_FULL, f"the server holds its limit of {self._max_clients} users"
            )
        if refusal is not None:
            self._emit(RegistrationRefused(name, peer, refusal.refusal, refusal.text))
            raise refusal
        now = self._clock.seconds()
        if account is None:
            account = self._sessions[key] = Account(self._log.get(key) or UserRecord(name, now, now))
        self._session_ids += 1
        session = Session(participant, account, peer, peer if host is None else host, now, self._session_ids)
        account.sessions.append(session)
        self._registered[participant] = session
        return User(self, session)

    def admit(self, user: User, ready: Callable[[], Deferred[None]] | None = None) -> Deferred[User | None]:
        """Bring ``user``, holding its name, online once the log has the name on disk (a further session
        of a name online here: at once).

        Fires with ``user``, its name as the log spells it (at once for a
        name already in the log), or with None if it has logged out.
        ``ready``, for the name's first session only (registered without
        ``attach``), is called once the name is claimed for it in the whole
        service, before it is online (its first password stored): its failure
        releases the claim and is the admission's.
        """
        session = user.session
        account = session.account
        if session.gone:
            return succeed(None)
        if account.online:
            return self._claim_more(user)
        admitted: Deferred[User | None] = Deferred()
        self._admitting.setdefault(account, []).append((user, admitted))
        if not account.claiming:
            account.claiming = True
            self._claim(account, session, ready)
        return admitted

    def _claim(self, account: Account, first: Session, ready: Callable[[], Deferred[None]] | None) -> None:
        """Claim ``account``'s name for its first session (then call ``ready``), then bring it online,
        and its other sessions once each is claimed (:meth:`_claim_more`)."""
        record = account.record
        key = username_key(record.name)
        now = self._clock.seconds()
        network = self._network

        def held(claim: tuple[str, bool]) -> None:
            spelled, first_time = claim
            if first.gone:  # it left meanwhile: the next session waiting claims, if any
                network.release(spelled, first.id, self._clock.seconds())
                waiting = self._admitting.pop(account, [])
                for user, admitted in waiting:
                    if user.session.gone:
                        admitted.callback(None)
                live = [(user, admitted) for user, admitted in waiting if not user.session.gone]
                if live:
                    self._admitting[account] = live
                    self._claim(account, live[0][0].session, None)
                else:
                    account.claiming = False
                return
            account.claiming = False
            record.name = spelled  # another node may have put it in the log first
            self._log[key] = record
            account.seen_before = 0.0 if first_time else record.last_seen
            record.last_seen = now
            account.online = True
            first.online = True
            if key not in self._remote:  # online on another node already: not news
                self._emit(UserJoined(record.name, first.peer, first_time))
            self._emit(SessionOpened(record.name, first.peer, first.participant.front, 1))
            for user, admitted in self._admitting.pop(account, []):
                if user.session is first:
                    admitted.callback(user)
                elif user.session.gone:
                    admitted.callback(None)
                else:
                    self._claim_more(user).chainDeferred(admitted)

        def failed(failure: Failure) -> None:
            account.claiming = False
            waiting = self._admitting.pop(account, [])
            if self._sessions.get(key) is account:
                del self._sessions[key]
            for user, admitted in waiting:
                if not user.session.gone:
                    user.session.gone = True
                    account.sessions.remove(user.session)
                    del self._registered[user.session.participant]
                admitted.errback(failure)

        known = key in self._log
        allowance = self.nodes.allowance(record)
        claimed = network.claim(
            record.name, first.peer, first.participant.front, first.since, known, first.id, allowance
        )
        if ready is not None:
            claimed.addCallback(self._when_claimed, first, ready)
        claimed.addCallbacks(held, failed)

    def _when_claimed(
        self, claim: tuple[str, bool], session: Session, ready: Callable[[], Deferred[None]]
    ) -> Deferred[tuple[str, bool]]:
        """Call ``ready`` now that ``claim`` holds the name for ``session``; if it fails, release the claim."""

        def refused(failure: Failure) -> Failure:
            self._network.release(claim[0], session.id, self._clock.seconds())
            return failure

        return ready().addCallbacks(lambda _: claim, refused)

    def _claim_more(self, user: User) -> Deferred[User | None]:
        """Claim a further session of an account online here, within its allowance in the service; then
        bring it online.  Refused, it logs out."""
        session = user.session
        record = session.record

        def held(_: object) -> User | None:
            if session.gone:
                self._network.release(record.name, session.id, self._clock.seconds())
                return None
            self._open(session)
            return user

        def failed(failure: Failure) -> Failure:
            self.unregister(session)
            return failure

        allowance = self.nodes.allowance(record)
        return self._network.claim(
            record.name, session.peer, session.participant.front, session.since, True, session.id, allowance
        ).addCallbacks(held, failed)

    def _open(self, session: Session) -> None:
        """Bring a further session of an account online here."""
        session.online = True
        account = session.account
        count = len(account.online_sessions())
        self._emit(SessionOpened(account.record.name, session.peer, session.participant.front, count))

    def unregister(self, session: Session) -> None:
        """Forget ``session`` (its :meth:`User.log_out`), whether online, pending or forgotten already;
        its User is refused from then on.  The name is offline once its last session is."""
        session.gone = True
        account = session.account
        if session not in account.sessions:
            return
        account.sessions.remove(session)
        del self._registered[session.participant]
        record = account.record
        if session.online:
            count = len(account.online_sessions())
            self._network.release(record.name, session.id, self._clock.seconds())
            self._emit(SessionClosed(record.name, session.peer, session.participant.front, count))
        self._queue.leave(session)
        if account.sessions:
            return
        key = username_key(record.name)
        if self._sessions.get(key) is account:
            del self._sessions[key]
            self.nodes.left_here(key)
        if not account.online:
            return
        record.last_seen = self._clock.seconds()
        if key not in self._remote:  # else online on another node still
            self._emit(UserLeft(record.name, session.peer))
            self.rooms.left(record.name)

    # -- the log ---------------------------------------------------------

    def users(self) -> list[UserView]:
        """The whole username log with presence, in case-insensitive name order."""
        return [self._view(key, self._log[key]) for key in sorted(self._log)]

    def _view(self, key: str, record: UserRecord) -> UserView:
        account = self._online_account(key)
        waiting = self._queue.waiting.get(key, 0)
        here = tuple(
            SessionView(s.id, s.participant.front, s.peer, s.since, self.node)
            for s in (account.online_sessions() if account is not None else ())
        )
        elsewhere = tuple(  # with --redis: the first session of each other node holding the name
            SessionView(0, r.front, r.peer, r.since, r.node) for r in self._remote.get(key, {}).values()
        )
        sessions = here + elsewhere
        if not sessions:
            return UserView(
                record.name, False, record.first_seen, record.last_seen, None, None, None, record.protected, waiting
            )
        first = sessions[0]
        return UserView(
            record.name,
            True,
            record.first_seen,
            record.last_seen,
            first.peer,
            first.front,
            first.since,
            record.protected,
            waiting,
            first.node,
            sessions,
        )

    def user(self, name: str) -> UserView | None:
        """The log entry for ``name`` with its presence, or None if never registered."""
        key = username_key(name)
        record = self._log.get(key)
        if record is None:
            return None
        return self._view(key, record)

    def account(self, name: str) -> str | None:
        """``name`` as the log spells it if it is protected (an account), else None: what IRC's
        ``account-tag`` says on each message, so a look-up, not a :meth:`user` view."""
        record = self._log.get(username_key(name))
        return record.name if record is not None and record.protected else None

    @property
    def node(self) -> str | None:
        """This node's name in a service of several (``--redis``); None for a server alone."""
        return self._network.node

    def log_size(self) -> int:
        return len(self._log)

    def online_count(self) -> int:
        """Users online, on every node."""
        here = sum(1 for a in self._sessions.values() if a.online)
        return here + sum(1 for key in self._remote if self._online_account(key) is None)

    def _online_sessions(self) -> Iterable[Session]:
        return (s for a in self._sessions.values() for s in a.sessions if s.online)

    def _online_account(self, key: str) -> Account | None:
        """The account of the user with this key if it is online (not just registering)."""
        account = self._sessions.get(key)
        return account if account is not None and account.online else None

    # -- operator actions ------------------------------------------------

    def kick(self, name: str, reason: str) -> bool:
        """Disconnect every session of the online user ``name``; False if nobody by that name is online."""
        account = self._online_account(username_key(name))
        if account is None:
            return False
        self._emit(UserKicked(account.record.name, reason))
        for session in account.online_sessions():
            session.participant.kick(reason)
        return True

    def kick_session(self, name: str, session: int, reason: str) -> bool:
        """Disconnect one session (its :attr:`SessionView.id`) of the online user ``name``; False if it has
        no such session online."""
        account = self._online_account(username_key(name))
        for online in account.online_sessions() if account is not None else ():
            if online.id == session:
                self._emit(UserKicked(online.record.name, reason))
                online.participant.kick(reason)
                return True
        return False

    def set_away(self, name: str, message: str | None) -> None:
        """``name``, online here, is away with ``message`` (None: back), in the whole service, until it
        comes back or its last session here leaves: observers here (and on the other nodes) hear
        :class:`~msgsvc.hub.events.AwayChanged` if that changes what :meth:`away` says."""
        self.nodes.set_away(name, message)

    def away(self, name: str) -> str | None:
        """``name``'s away message (as set here or on another node); None: not away."""
        return self.nodes.away(username_key(name))

    def set_protected(self, name: str, protected: bool, reason: str = "") -> None:
        """Mark ``name`` (in the log, or held by a registering client) as protected or not.

        Called again with ``protected`` True, it tells the observers of a new password.  Its protection
        removed (the operator's doing), every session of the name is disconnected, told ``reason``.
        """
        key = username_key(name)
        account = self._sessions.get(key)
        record = self._log.get(key) or (account.record if account is not None else None)
        if record is None:
            return
        record.protected = protected
        self._emit(ProtectionChanged(record.name, protected, reason))
        if protected:
            return
        self._queue.set_waiting(record.name, 0)  # the store dropped them with the password
        self.rooms.forget(key, "the operator removed the name's password")
        for session in account.online_sessions() if account is not None else ():
            session.participant.drop(f"the operator removed your name's password: {reason}")

    def remove(self, name: str, reason: str) -> bool:
        """Forget ``name``, which the operator removed from the state's log; False (and it is kept) if
        it is held: online (here or on another node) or logging in, in which case the removal came too
        late, and the name is back in the state once seen again."""
        key = username_key(name)
        if key in self._sessions or key in self._remote:
            return False
        record = self._log.pop(key, None)
        self._queue.waiting.pop(key, None)
        self.rooms.forget(key, "the operator removed the name")
        if record is not None:
            self._emit(UserRemoved(record.name, reason))
        return True

    def notify(self, name: str, text: str) -> bool:
        """Send a server notice to every session of the online user ``name``; False if it is not online."""
        account = self._online_account(username_key(name))
        for session in account.online_sessions() if account is not None else ():
            session.participant.notice(text)
        return account is not None

    def notice(self, text: str) -> int:
        """Send a server notice to everyone online; how many users got it."""
        accounts = [a for a in self._sessions.values() if a.online]
        for account in accounts:
            for session in account.online_sessions():
                session.participant.notice(text)
        self._emit(NoticeSent(text, len(accounts)))
        return len(accounts)

    # -- routing ---------------------------------------------------------

    # The User of a login calls these with its session: none looks a user up.

    def send(
        self, sender: Session, names: Sequence[str], text: str, queue: bool = True
    ) -> Report | Deferred[Report]:
        """Unicast (one name) or multicast (several) ``text`` from ``sender``.

        ``names`` must be distinct case-insensitively.  Names not online,
        known or not, are reported back as offline.  Each recipient is told
        the whole group (see :attr:`Message.recipients`), so it can reply to all.
        Every online session of a recipient gets it, and so do the sender's
        other sessions (each session once); the report counts users.
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

        A multicast to a group (three names or more in the log, the sender's
        with them) that has a protected one and that the sender did not send
        to lately waits for the history to let it through
        (:meth:`~msgsvc.hub.history.History.open_group`): then the report
        comes as a Deferred, which fails with Refused(TOO_MANY_NEW_GROUPS)
        if the group is new and the sender opened ``--new-groups-per-day``
        groups in the last day: nobody gets it.
        """
        if len(names) > 1:
            opening = self._opening(sender, names)
            if opening is not None:

                def opened(_: None) -> Report | Deferred[Report]:
                    return self._send(sender, names, text, queue)

                return opening.addCallback(opened)
        return self._send(sender, names, text, queue)

    def _opening(self, sender: Session, names: Sequence[str]) -> Deferred[None] | None:
        """What ``sender``'s multicast to ``names`` waits for: the history's leave to send to its group
        (:meth:`~msgsvc.hub.history.History.open_group`), if the group (the name keys of the sender and of
        the names online here or elsewhere or in the log, as :meth:`_send` finds them) has a protected
        name, as this node knows; else None (its history is not kept)."""
        log = self._log
        own = username_key(sender.record.name)
        record = log.get(own)
        protected = record is not None and record.protected
        keys = {own}
        for name in names:
            key = username_key(name)
            record = log.get(key)
            if record is not None:
                protected = protected or record.protected
            elif self._online_account(key) is None and self.nodes.elsewhere(key) is None:
                continue
            keys.add(key)
        return self.history.open_group(own, keys, sender.host) if protected else None

    def _send(self, sender: Session, names: Sequence[str], text: str, queue: bool) -> Report | Deferred[Report]:
        """:meth:`send`, the group let through."""
        targets: list[Account] = []
        elsewhere: dict[str, list[str]] = {}  # keys of recipients on other nodes, by node
        group: list[str] = []  # the names in the log, as it spells them
        offline: list[str] = []
        absent: list[UserRecord] = []  # offline protected recipients: their messages wait
        on_nodes = self._remote  # read here, not through Nodes.nodes_of: a call into interpreted code
        for name in names:
            key = username_key(name)
            account = self._online_account(key)
            for node in on_nodes.get(key, ()):  # its sessions on other nodes (an account's too)
                elsewhere.setdefault(node, []).append(key)
            if account is not None:
                targets.append(account)
                group.append(account.record.name)
                continue
            remote = self.nodes.elsewhere(key)
            if remote is not None:
                group.append(remote.name)
                continue
            record = self._log.get(key)
            if record is not None:
                group.append(record.name)
                if record.protected and queue:
                    absent.append(record)
            offline.append(record.name if record is not None else name)
        own = username_key(sender.record.name)
        for node in on_nodes.get(own, ()):  # the sender's sessions elsewhere see what it sent
            if own not in elsewhere.get(node, ()):
                elsewhere.setdefault(node, []).append(own)
        kind = Kind.UNICAST if len(names) == 1 else Kind.MULTICAST
        message_id, at = self._ids.make()
        message = Message(sender.record.name, kind, tuple(group), text, message_id, at)
        if elsewhere or sender.outgoing:
            return self.nodes.route(sender, message, targets, elsewhere, offline, absent, queue)
        deliver(message, targets, sender)
        report = Report(message.id, message.at, len(targets), tuple(offline))
        return self._settle(message, report, absent)

    def _settle(
        self, message: Message, report: Report, absent: list[UserRecord]
    ) -> Report | Deferred[Report]:
        """Keep ``message``, delivered as ``report`` says, and queue it for ``absent`` (on its way here or
        through :meth:`Nodes.route`): its history goes to the store first, so what SENT calls queued is in
        the history after a crash (in the same group commit as its queueing, or an earlier one).  A direct
        conversation with no protected participant is not kept: nobody may ever read it."""
        if message.kind is Kind.ROOM or self._protected_among(message):
            self.history.keep(message)
        if not absent:
            return report
        self.history.write_now()
        return self._queue.enqueue(message, absent, report)

    def _protected_among(self, message: Message) -> bool:
        """Whether a participant of ``message`` (a unicast or multicast) is protected, as this node knows:
        only such a name may read a direct conversation's history, and only from its protection on
        (docs/protocol.rst "History"), so without one the history would keep what nobody may read."""
        log = self._log
        for name in (message.sender, *message.recipients):
            record = log.get(username_key(name))
            if record is not None and record.protected:
                return True
        return False

    def broadcast(self, sender: Session, text: str) -> Report | Deferred[Report]:
        """Send ``text`` to everyone online but the sender (and to the sender's other sessions).

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

    # -- read positions --------------------------------------------------

    def mark_read(self, session: Session, conversation: str, position: str) -> Deferred[str]:
        """Keep ``session``'s account's read position in ``conversation`` (see
        :meth:`~msgsvc.hub.history.History.mark_read`); once kept, and if it is ``position`` (or the
        conversation's newest entry, for a later one), its other sessions online are told, here and on the nodes
        that have some."""
        name = session.record.name

        def kept(kept: str) -> str:
            if kept <= position:  # this one moved it (or set it again), not a later one kept
                for other in session.account.online_sessions():
                    if other is not session:
                        other.participant.read_moved(conversation, kept)
                if self.nodes.nodes_of(username_key(name)):
                    self._network.read_moved(name, conversation, kept)
            return kept

        rooms = self.rooms.rooms_of(name)
        return self.history.mark_read(name, conversation, position, rooms).addCallback(kept)

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
