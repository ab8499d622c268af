"""A participant's session and its name's account, as the hub's core, queue and routing between nodes
share them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from msgsvc.hub.contracts import Message, Participant, Report, UserRecord


@dataclass(eq=False)
class Session:
    """One login of a name (a connection), pending until its account is online."""

    participant: Participant
    account: Account
    peer: str
    host: str  # what the per-address bounds count it by (msgsvc.fronts.clients.host_of)
    since: float
    id: int  # names it to the operator (SessionView)
    online: bool = False  # False while the store write is pending
    gone: bool = False  # logged out (unregistered): its User is refused from then on
    delivered_through: int = 0  # the id of the last queued message sent to it
    reading: bool = False  # a page of its backlog is being read
    unacknowledged: bool = False  # a page was sent and not yet acknowledged
    outgoing: deque[Outgoing] | None = None  # its messages waiting for the network, oldest first

    @property
    def record(self) -> UserRecord:
        return self.account.record


@dataclass(eq=False)
class Account:
    """A name held on this node, and its sessions here (pending and online) in login order: one for an
    unprotected name, up to ``--max-sessions`` for a protected one."""

    record: UserRecord
    sessions: list[Session] = field(default_factory=list)
    online: bool = False  # its name is claimed: its sessions come online at once
    claiming: bool = False  # its first session's claim is in flight
    seen_before: float = 0.0  # when its name was last seen before it came online (0: new to the log)
    receiver: Session | None = None  # the session its backlog goes to, one at a time

    def online_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.online]


def deliver(message: Message, accounts: Iterable[Account], sender: Session) -> None:
    """Give ``message`` to every online session of ``accounts``, and to the sending account's other
    sessions if it is not among them: each session once."""
    own: Account | None = sender.account
    for account in accounts:
        if account is own:
            own = None
        for session in account.sessions:
            if session.online:
                session.participant.receive(message)
    if own is not None and len(own.sessions) > 1:
        for session in own.sessions:
            if session.online and session is not sender:
                session.participant.receive(message)


class Outgoing:
    """A message of ``sender``'s waiting for the network's answer (:meth:`answer`), and then for its
    earlier messages: in turn, ``routed`` (or ``failed``) makes its :attr:`report`."""

    __slots__ = ("sender", "routed", "failed", "report", "outcome")

    def __init__(
        self,
        sender: Session,
        routed: Callable[[set[str]], Report | Deferred[Report]],
        failed: Callable[[Failure], Failure | Report],
    ) -> None:
        self.sender = sender
        self.routed = routed
        self.failed = failed
        self.report: Deferred[Report] = Deferred()
        self.outcome: set[str] | Failure | None = None  # the answer: the nodes the network reached
        if sender.outgoing is None:
            sender.outgoing = deque()
        sender.outgoing.append(self)

    def answer(self, outcome: set[str] | Failure) -> None:
        """The network's answer: the reports of the sender's messages answered so far are made, in order."""
        self.outcome = outcome
        waiting = self.sender.outgoing
        assert waiting is not None
        while waiting and waiting[0].outcome is not None:
            waiting.popleft()._settle()
        if not waiting:
            self.sender.outgoing = None

    def _settle(self) -> None:
        outcome = self.outcome
        assert outcome is not None
        try:
            result = self.failed(outcome) if isinstance(outcome, Failure) else self.routed(outcome)
        except Exception:
            result = Failure()
        if isinstance(result, Report):  # the common case first: Deferred's check is an ABC's, slower
            self.report.callback(result)
        elif isinstance(result, Failure):
            self.report.errback(result)
        else:
            result.chainDeferred(self.report)
