"""The offline queue: messages waiting for protected users who are away, and their delivery."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    RETRY_MOST,
    Enqueue,
    Message,
    Network,
    Outage,
    Queued,
    QueuePolicy,
    Report,
    Store,
    UserRecord,
    retry_after,
)
from msgsvc.hub.events import Event, QueueChanged
from msgsvc.hub.rules import username_key
from msgsvc.hub.session import Account, Session


class OfflineQueue:
    """What waits for whom, within ``policy``, in ``store``; the hub's log (by name key) says who is
    known.  An account's backlog goes to one of its sessions at a time: its ``receiver`` here, which
    ``network`` makes the one in the whole service (:meth:`~msgsvc.hub.contracts.Network.take_backlog`)
    while it has a page to deliver."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        store: Store,
        network: Network,
        policy: QueuePolicy,
        users: dict[str, UserRecord],
        emit: Callable[[Event], None],
    ) -> None:
        self._clock = clock
        self._store = store
        self._network = network
        self.policy = policy
        self._users = users
        self._emit = emit
        self.waiting: dict[str, int] = {}  # queued messages by recipient key
        self._queueing = Outage(self.log, clock, "queue a message", "its sender is told it did not wait")
        again = f"asked again, at most every {RETRY_MOST:g} s, while its session is online"
        self._reading = Outage(self.log, clock, "read an offline queue", again)
        self._dropping = Outage(self.log, clock, "drop what a session received", again)

    def enqueue(self, message: Message, absent: list[UserRecord], report: Report) -> Deferred[Report]:
        """Queue ``message`` for ``absent``; ``report`` comes back naming those it was queued for."""
        now = self._clock.seconds()
        keys = tuple(username_key(r.name) for r in absent)
        policy = self.policy
        request = Enqueue(
            keys,
            message.sender,
            message.kind.value,
            message.recipients,
            message.text,
            now,
            policy.limit,
            now - policy.age,
            policy.per_sender,
            policy.total,
            message.id,
        )

        def queued(done: tuple[str, ...]) -> Report:
            for record in absent:
                key = username_key(record.name)
                if key in done:
                    self.set_waiting(record.name, self.waiting.get(key, 0) + 1)
            report.queued = tuple(r.name for r in absent if username_key(r.name) in done)
            self._queueing.over()
            return report

        def failed(failure: Failure) -> Report:
            self._queueing.failed(failure)
            return report

        return self._store.enqueue(request).addCallbacks(queued, failed)

    def deliver_backlog(self, session: Session, waited: float = 0.0) -> None:
        """Send the online ``session`` the next page of what waited for its name (none: nothing, and it
        lets the backlog go), unless another session of the name, here or on another node, receives it.
        If the store cannot read it, asked again (``waited``: the wait before this try) while it is online."""
        account = session.account
        if session.gone or session.reading or session.unacknowledged or not account.record.protected:
            return
        if account.receiver not in (None, session):
            return
        account.receiver = session
        session.reading = True
        now = self._clock.seconds()
        name = session.record.name

        def got(page: tuple[list[Queued], int]) -> Deferred[None] | None:
            self._reading.over()
            if not page[0] or session.gone:
                session.reading = False
                self._let_go(session)
                return None
            return self._network.take_backlog(name, session.id).addCallback(taken, page)

        def taken(mine: bool, page: tuple[list[Queued], int]) -> None:
            session.reading = False
            if session.gone:  # its unregister let the backlog go, after this claim
                return
            if not mine:  # a session on another node has it: this one is offered it when that one leaves
                account.receiver = None
                return
            backlog, waiting = page
            session.delivered_through = backlog[-1].id
            session.unacknowledged = True
            session.participant.deliver(backlog, waiting)

        def failed(failure: Failure) -> None:
            session.reading = False
            if account.receiver is session:
                account.receiver = None
            self._reading.failed(failure)
            wait = retry_after(waited)
            self._clock.callLater(wait, self.deliver_backlog, session, wait)

        read = self._store.backlog(name, session.delivered_through, now - self.policy.age, self.policy.page)
        read.addCallback(got).addErrback(failed)

    def _let_go(self, session: Session) -> None:
        """``session`` receives its account's backlog no more (it has it all, or left)."""
        account = session.account
        if account.receiver is not session:
            return
        account.receiver = None
        if session.delivered_through or session.reading:  # it took the backlog in the service, or may
            self._network.drop_backlog(session.record.name, session.id)

    def leave(self, session: Session) -> None:
        """``session`` left: if it was receiving its account's backlog, what is left goes to another
        session of the account (here at once; on other nodes once the network tells them)."""
        account = session.account
        if account.receiver is session:
            self._let_go(session)
            self.hand_over(account)

    def hand_over(self, account: Account) -> None:
        """Offer what waits for ``account`` to its first online session here (none receiving it)."""
        for session in account.online_sessions():
            self.deliver_backlog(session)
            return

    def acknowledge(self, session: Session, up_to: int) -> None:
        """``session`` has the queued messages up to id ``up_to``: drop them; send the next page.  If the
        store cannot drop them, asked again while the session is online."""
        name = session.record.name
        whole_page = session.unacknowledged and up_to >= session.delivered_through
        if whole_page:
            session.unacknowledged = False  # a second ACK of it brings nothing more
        through = min(up_to, session.delivered_through)

        def drop(waited: float) -> None:
            if waited and session.gone:  # its next login gets what was not dropped, again
                return

            def dropped(left: int) -> None:
                self._dropping.over()
                self.set_waiting(name, left)
                if whole_page:
                    self.deliver_backlog(session)

            def failed(failure: Failure) -> None:
                self._dropping.failed(failure)
                wait = retry_after(waited)
                self._clock.callLater(wait, drop, wait)

            self._store.acknowledge(name, through).addCallbacks(dropped, failed)

        drop(0.0)

    def set_waiting(self, name: str, count: int) -> None:
        """Note that ``count`` messages wait for ``name``, telling the observers if that changed."""
        key = username_key(name)
        if self.waiting.get(key, 0) == count:
            return
        if count:
            self.waiting[key] = count
        else:
            del self.waiting[key]
        self._emit(QueueChanged(name, count))

    def expire(self) -> Deferred[None]:
        """Drop messages older than the policy allows; count what waits for each user."""

        def counted(waiting: dict[str, int]) -> None:
            for key in set(self.waiting) | set(waiting):
                record = self._users.get(key)
                if record is not None:  # messages are queued only for names in the log
                    self.set_waiting(record.name, waiting.get(key, 0))

        return self._store.expire(self._clock.seconds() - self.policy.age).addCallback(counted)
