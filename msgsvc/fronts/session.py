"""What every front's connection shares, whatever its client protocol.

A :class:`Session` is one client's connection to the hub: it counts the
connection against its address, gives it a deadline to register and
then a PING when it falls silent, slows a flooder and drops one that keeps
on, drops a client that stops reading, holds a client's lines while its
login is checked, and logs in through the accounts' portal.  A front
subclasses it with its own parsing and its own way of saying each thing:
:mod:`msgsvc.fronts.lines` (the line protocol, also under WebSocket) and
:mod:`msgsvc.fronts.irc`.  What the sessions of every front share
(the hub, the limits, the count by address) is their
:class:`~msgsvc.fronts.clients.Clients`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from enum import Enum, auto
from typing import ClassVar

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msgsvc.auth.accounts import LoggedIn
from msgsvc.fronts.clients import Clients, describe_peer, host_of
from msgsvc.fronts.pacing import Pacer
from msgsvc.fronts.receiver import LineProtocol
from msgsvc.fronts.tally import BROADCAST, MULTICAST, UNICAST, Tally
from msgsvc.hub.contracts import IUser, Message, Queued, Refusal, Refused, Report, RoomEvent
from msgsvc.hub.events import ClientDropped, Connected, Disconnected
from msgsvc.hub.user import UNREGISTERED
from msgsvc.ratelimit import TokenBucket


class Limit(Enum):
    """A limit of the session's own that a client went past, whatever its front (what the hub or the
    accounts refuse is their :class:`Refusal`)."""

    TOO_MANY_CONNECTIONS = auto()  # from its address
    LINE_TOO_LONG = auto()


@implementer(IPushProducer)
class SendQueue:
    """Counts what is written to a transport while its buffer is full.

    Registered as the transport's producer: the transport pauses it when
    its own buffer is past its high-water mark and resumes it once the
    buffer has drained, so ``add`` tells how far a client lags behind, and
    a long answer (the username log, a listing) waits for :meth:`when_drained`.
    """

    __slots__ = ("_full", "_behind", "_drained")  # one a connection

    def __init__(self) -> None:
        self._full = False
        self._behind = 0
        self._drained: Callable[[], None] | None = None

    @property
    def full(self) -> bool:
        """The transport's buffer is past its high-water mark: the client is not reading it fast."""
        return self._full

    def when_drained(self, then: Callable[[], None] | None) -> None:
        """Call ``then`` once the buffer has drained (None: call nothing)."""
        self._drained = then

    def add(self, size: int) -> int:
        """Note ``size`` bytes written; how many were written since the buffer filled."""
        if self._full:
            self._behind += size
        return self._behind

    def pauseProducing(self) -> None:
        self._full = True

    def resumeProducing(self) -> None:
        self._full = False
        self._behind = 0
        drained, self._drained = self._drained, None
        if drained is not None:
            drained()

    def stopProducing(self) -> None:
        self._full = False
        self._drained = None


class Session(LineProtocol):
    """One client connection, whatever its front; the front says how each thing is said.

    One timer watches it: a client must register within ``hello_timeout``;
    once registered, after ``ping_interval`` of silence it is sent a PING,
    and if nothing at all comes back within ``ping_timeout`` it is dropped.
    """

    log = Logger()
    front: str  # hub.Participant: the client protocol, as the server window shows it
    #: what a client sends to register, as the log names it ("no HELLO within 30 s")
    registration: ClassVar[str]
    #: Its connection was counted against its address before it began (a WebSocket's, since its HTTP request).
    counted = False
    peer = "?"
    host = ""  # the peer's address, which the per-address limits count by
    ident = ""  # hub.Participant: no user part of its own (IRC's is its USER name)
    _gone = False
    _dropped = False
    _pinged = 0  # the token of an unanswered PING, or 0
    _quit = ""  # why the client said it quits
    _welcomed: bool
    # Why reading is paused (empty: it is not): a tuple, which costs an idle client nothing.
    _holds: tuple[str, ...]
    _flooding_since: float | None = None
    _unthrottle: IDelayedCall | None = None
    _timer: IDelayedCall | None = None  # the one timer: the registration's deadline, or the PING's
    _timer_seconds = 0.0
    #: its handle on the hub once logged in: sends, acknowledgements and its name go through it
    user: IUser
    tally: Tally  # its front's counts (:meth:`Clients.tally`), from connectionMade on
    _pacer: Pacer  # its listings' bytes a reactor pass, from connectionMade on
    _login: Deferred[LoggedIn | None] | None  # a login being checked
    _logout: Callable[[], None] | None  # cred's logout of :attr:`user`, once logged in
    #: answers in the order of the lines they answer: each a list, empty until its answer has come
    _answers: deque[list[Callable[[], None]]] | None = None
    _held_line: bytes | None = None  # a line that waits until every earlier one is answered
    #: sends read ahead while the answers of earlier ones are awaited (the network's, the offline queue's)
    IN_FLIGHT = 64

    def __init__(self, clients: Clients) -> None:
        """``clients``: what the sessions of every front share; a line is at most its ``limits.max_line``.

        What a logged-in client comes to hold is set here, not first at its login: CPython 3.11 keeps a
        class's instance attributes in one shared key table, which stops taking names once thousands of
        instances exist, and a name set first then gives every instance a dict of its own
        (docs/performance.rst, "Idle memory")."""
        self.clients = clients
        self.MAX_LENGTH = clients.limits.max_line
        self.user = UNREGISTERED
        self._welcomed = False
        self._holds = ()
        self._login = None
        self._logout = None

    # -- what each front says its own way --------------------------------

    def command(self, line: bytes) -> None:
        """Parse and run one line.  The hub's :class:`Refused` is answered with :meth:`refuse`, in turn;
        a line the front cannot parse, it answers itself (with :meth:`_answer`, to answer in turn)."""
        raise NotImplementedError

    def pipelined(self, line: bytes) -> bool:
        """Whether ``line`` may run while earlier lines await their answers: a send, answered through
        :meth:`send_to` (or refused), and so in turn.  Any other line waits for them."""
        return False

    def refuse(self, reason: Refusal | Limit, text: str) -> None:
        """Tell the client (and the log, with :class:`~msgsvc.hub.events.ClientError`) that what it
        sent, or its connection, was refused: by the hub or the accounts, or past a :class:`Limit`."""
        raise NotImplementedError

    def login_refused(self, refused: Refused) -> None:
        """The name or password was refused: say why; the client may try again, or is sent away."""
        raise NotImplementedError

    def farewell(self, reason: str) -> bytes:
        """The last line before the server closes the connection."""
        raise NotImplementedError

    def ping(self, token: str) -> bytes:
        """The PING that asks a silent client whether it is there."""
        raise NotImplementedError

    def welcome(self, name: str) -> None:
        """The login succeeded as ``name``: greet the client and tell it who is there."""
        raise NotImplementedError

    def receive(self, message: Message) -> None:
        """hub.Participant: a message for this client."""
        raise NotImplementedError

    def notice(self, text: str) -> None:
        """hub.Participant: a notice from the operator."""
        raise NotImplementedError

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        """hub.Participant: messages that waited for this client; ``waiting`` more after them."""
        raise NotImplementedError

    def read_moved(self, conversation: str, position: str) -> None:
        """hub.Participant: the account's read position moved (another session read up to there); a
        front that shows no read positions leaves it."""

    def room_event(self, event: RoomEvent) -> None:
        """hub.Participant: what happened in a room of this client's account."""
        raise NotImplementedError

    # -- the connection ---------------------------------------------------

    def connectionMade(self) -> None:
        self.tally = self.clients.tally(self.front)
        self.tally.accepted += 1
        self.peer = describe_peer(self.transport.getPeer())
        self.host = host_of(self.transport.getPeer())
        limits = self.clients.limits
        self._bucket = TokenBucket(limits.line_rate, limits.line_burst, self.clients.clock.seconds())
        self._send_queue = SendQueue()
        self._pacer = Pacer(self.clients.clock, self._send_queue)
        self.transport.registerProducer(self._send_queue, True)
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)  # TCP, also under TLS
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:  # a UNIX socket
                pass
        self.clients.hub.announce(Connected(self.peer))
        if not self.clients.connection_made(self):
            limit = self.clients.limits.max_per_ip
            self.refuse(Limit.TOO_MANY_CONNECTIONS, f"at most {limit} connections from one address")
            self.bye("too many connections from your address")
            return
        self._watch(self.clients.limits.hello_timeout)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._gone = True
        if self._login is not None:
            self._login.cancel()  # a throttled login is not checked for a client that left
        self.clients.outbox.discard(self.transport)
        self._pacer.stop()
        self._watch(None)
        if self._unthrottle is not None and self._unthrottle.active():
            self._unthrottle.cancel()
        self._log_out()
        self.clients.connection_lost(self)
        self.clients.hub.announce(Disconnected(self.peer, self._quit or reason.getErrorMessage()))

    # -- input -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if data:  # anything read shows the client is alive (checked once a read, not once a line)
            self.tally.bytes_in += len(data)
            if self._pinged:
                self._pinged = 0
                self._watch(self.clients.limits.ping_interval)
            elif self._welcomed and self._timer is not None:  # registration's deadline stands until welcomed
                self._timer.reset(self._timer_seconds)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._answers and not self.pipelined(line):
            self._held_line = line
            self._hold("answering")
            return
        self._throttle(len(line))
        try:
            self.command(line)
        except Refused as e:
            refusal, text = e.refusal, e.text
            self._answer(lambda: self.refuse(refusal, text))

    def not_a_line(self) -> None:
        """Input that costs what a line does but is none (a WebSocket ping, fragment or empty message):
        it counts against the line rate as a line does."""
        self._throttle()

    def lineTooLong(self) -> None:
        self._answer(
            lambda: self.refuse(Limit.LINE_TOO_LONG, f"a line may hold at most {self.MAX_LENGTH} bytes")
        )

    def send_to(
        self,
        names: Sequence[str] | None,
        text: str,
        answer: Callable[[Report], None],
        refused: Callable[[Refused], None] | None = None,
    ) -> None:
        """Send ``text`` to ``names`` (None: to everyone) through the hub, and ``answer`` with its report:
        at once when it is there and no earlier line awaits its answer (the common case), else in turn
        (:meth:`_report_later`).  ``refused`` is told a refusal, at once or later, after the answers to
        earlier lines (None: :meth:`refuse`; the IRC front's own: a NOTICE's is told nothing).  What
        waits for offline users counts against this client's address, and once past its rate, nothing
        more waits (the report says so)."""
        tell = refused or self._tell_refused
        try:
            if names is None:
                report = self.tally.count(BROADCAST, self.user.broadcast(text))
            else:
                report = self.user.send(names, text, self.clients.queued_from.allows(self.host))
                self.tally.count(UNICAST if len(names) == 1 else MULTICAST, report)
                if not isinstance(report, Report):
                    report.addCallback(self._count_queued)
        except Refused as e:
            no = e
            self._answer(lambda: tell(no))
            return
        self.answer_report(report, answer, tell)

    def answer_report(
        self,
        report: Report | Deferred[Report],
        answer: Callable[[Report], None],
        refused: Callable[[Refused], None] | None = None,
    ) -> None:
        """``answer`` with a send's ``report``: at once when it is there and no earlier line awaits its
        answer, else in turn (:meth:`_report_later`)."""
        if self._answers is None and type(report) is Report:
            answer(report)
        else:
            self._report_later(report, answer, refused or self._tell_refused)

    def _tell_refused(self, no: Refused) -> None:
        """Tell the client ``no``, a refusal of what it sent (the default of :meth:`send_to`)."""
        self.refuse(no.refusal, no.text)

    def _count_queued(self, report: Report) -> Report:
        if report.queued:
            self.clients.queued_from.spend(self.host, len(report.queued))
        return report

    def _report_later(
        self, report: Report | Deferred[Report], sent: Callable[[Report], None], refused: Callable[[Refused], None]
    ) -> None:
        """Call ``sent`` with ``report`` once it comes, after the answers to the client's earlier lines.

        Meanwhile the client's next sends run (up to :attr:`IN_FLIGHT`); its other lines wait.
        ``report`` fails with Refused (UNAVAILABLE: the other nodes unreachable or the state; or
        TOO_MANY_NEW_GROUPS) when nobody got the message: ``refused`` is told.
        """
        if isinstance(report, Report):
            report = succeed(report)
        slot: list[Callable[[], None]] = []
        if self._answers is None:
            self._answers = deque()
        self._answers.append(slot)
        if len(self._answers) >= self.IN_FLIGHT:
            self._hold("sending")

        def done(report: Report) -> None:
            slot.append(lambda: sent(report))
            self._answered()

        def failed(failure: Failure) -> None:
            no = failure.value
            if not isinstance(no, Refused):
                self.log.failure("could not send for {peer}", failure, peer=self.peer)
                no = Refused(Refusal.UNAVAILABLE, "the server could not send it")
            slot.append(lambda: refused(no))
            self._answered()

        report.addCallbacks(done, failed)

    def _answer(self, answer: Callable[[], None]) -> None:
        """Give ``answer`` now, or after the answers still awaited for earlier lines."""
        if self._answers:
            self._answers.append([answer])
        else:
            answer()

    def _answered(self) -> None:
        """Give the answers that have come, in order; then read on (once all have, the line that waited
        first).  Reading on may run lines, and so this, again: nothing is done here after it."""
        answers = self._answers
        assert answers is not None
        while answers and answers[0]:
            answers.popleft()[0]()
        if answers:
            if len(answers) < self.IN_FLIGHT and "sending" in self._holds:
                self._release("sending")
            return
        self._answers = None
        line, self._held_line = self._held_line, None
        if "sending" in self._holds:  # with a line waiting, "answering" holds the rest still
            self._release("sending")
        if line is not None and not self._gone:  # the client may have left while it waited
            self.lineReceived(line)
            self._release("answering")

    def _watch(self, seconds: float | None) -> None:
        """Call :meth:`_timed_out` after ``seconds`` (each read restarts it, once welcomed); None stops it.

        A running timer is reset, not replaced: the reactor keeps a cancelled call until cancelled ones
        are half its calls, so replacing it left one such call an idle client (docs/performance.rst,
        "Idle memory")."""
        timer = self._timer if self._timer is not None and self._timer.active() else None
        if seconds is None:
            if timer is not None:
                timer.cancel()
            self._timer = None
            return
        self._timer_seconds = seconds
        if timer is not None:
            timer.reset(seconds)
        else:
            self._timer = self.clients.clock.callLater(seconds, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        limits = self.clients.limits
        if self._login is not None:  # it came in time: the check (and a throttled wait) may take longer
            return
        if self.user is UNREGISTERED:
            self._drop(f"no {self.registration} within {limits.hello_timeout:g} s", "registration timed out")
        elif not self._pinged:
            self.clients.pings += 1
            self._pinged = self.clients.pings
            self._send(self.ping(str(self._pinged)))
            self._watch(limits.ping_timeout)
        else:
            self._drop(f"no answer to PING within {limits.ping_timeout:g} s", "ping timeout")

    def _drop(self, why: str, bye: str, abort: bool = False) -> None:
        """Cut off a client that is not doing its part, saying ``bye``.

        ``abort`` for one that reads nothing: what is queued for it is thrown
        away rather than left to wait.
        """
        if self._dropped:
            return
        self._dropped = True
        self.clients.hub.announce(ClientDropped(self.peer, why, bye))
        self._close(bye, abort)

    # -- logging in --------------------------------------------------------

    def log_in(self, username: str, password: str | None) -> None:
        """Check ``username`` and ``password`` through the accounts; the client's lines wait for the answer."""
        self._hold("registering")
        self._login = self.clients.accounts.login(self, username, password, self.peer, self.host)
        self._login.addCallbacks(self._logged_in, self._not_logged_in)
        self._login.addBoth(self._login_done)

    def _login_done(self, _: None) -> None:
        self._login = None
        self._release("registering")

    def _logged_in(self, login: LoggedIn | None) -> None:
        if login is None or self._gone:
            return
        user, logout = login
        if self.transport.disconnecting:  # told BYE meanwhile: it reads nothing more
            logout()
            return
        self._logout = logout
        self.user = user
        self._welcomed = True
        self._watch(self.clients.limits.ping_interval)
        self.welcome(user.name)

    def _log_out(self) -> None:
        """Leave the hub (if logged in): later lines are refused as a client's that never logged in."""
        logout, self._logout = self._logout, None
        self.user = UNREGISTERED
        if logout is not None:
            logout()

    def _not_logged_in(self, failure: Failure) -> None:
        if failure.check(CancelledError):  # the client left
            return
        refused = failure.value
        if not isinstance(refused, Refused):  # the accounts say any other failure as Refused(UNAVAILABLE)
            failure.raiseException()
        self.login_refused(refused)

    # -- flow ----------------------------------------------------------------

    def _hold(self, reason: str) -> None:
        """Stop reading this client's lines (they wait in its socket) until released."""
        if not self._holds:
            self.pauseProducing()
        if reason not in self._holds:
            self._holds += (reason,)

    def _release(self, reason: str) -> None:
        self._holds = tuple(held for held in self._holds if held != reason)
        if not self._holds and not (self._gone or self.transport.disconnecting):
            self.resumeProducing()

    def _throttle(self, size: int = 0) -> None:
        """Make a client that sends faster than its rate, in lines or in its address's bytes (``size``
        this line), wait ("fake lag"); drop one that keeps on."""
        limits = self.clients.limits
        now = self.clients.clock.seconds()
        wait = max(self._bucket.take(now), self.clients.bytes_in.spend(self.host, size))
        if not wait:
            if self._flooding_since is not None:  # written only on a change, as most lines change nothing
                self._flooding_since = None
            return
        self.tally.slowed += 1
        if self._flooding_since is None:
            self._flooding_since = now
        elif now - self._flooding_since > limits.flood_timeout:
            self._drop(f"flooding for over {limits.flood_timeout:g} s", "flooding")
            return
        self._hold("throttled")
        self._unthrottle = self.clients.clock.callLater(wait, self._release, "throttled")

    # -- output ----------------------------------------------------------

    def bye(self, reason: str) -> None:
        """Say why, then close the connection once what is queued is written."""
        if self._dropped or self.transport.disconnecting:
            return
        self._close(reason)

    def _close(self, reason: str, abort: bool = False) -> None:
        """Write the farewell after what is pending (or instead of it, if ``abort``), close, and leave
        the hub: no deadline is watched from then on, and the client, which reads nothing after its
        farewell, is offline to the others from it (a message for it is queued or not delivered, never
        counted as delivered), not from the close."""
        self._watch(None)
        if abort:
            self.clients.outbox.discard(self.transport)
        else:
            self.clients.outbox.flush(self.transport)
        farewell = self.farewell(reason)
        self.tally.bytes_out += len(farewell)
        self.transport.write(farewell)
        if abort:
            self.transport.abortConnection()
        else:
            # TLS holds back its close while a producer is registered: unregister the send queue first.
            self.transport.unregisterProducer()
            self.transport.loseConnection()
        self._log_out()

    def _write(self, data: bytes) -> None:
        """Write, unless this client has stopped reading: past the limit it is dropped."""
        if self._dropped:
            return
        self.written(len(data))  # before: a write that fills the buffer is not itself past it
        if not self._dropped:
            self.clients.outbox.write(self.transport, data)

    def _send(self, data: bytes) -> None:
        """Write what comes for the client unasked (a server PING), never as a part of the reply to a
        line (IRC's labeled-response batch)."""
        self._write(data)

    def written(self, size: int) -> None:
        """Count ``size`` bytes about to be written to this client (by :meth:`_write`, or beside it: a
        WebSocket's pongs); past ``--max-send-queue`` written since its buffer filled, it is dropped."""
        self.tally.bytes_out += size
        limit = self.clients.limits.max_send_queue
        if self._send_queue.add(size) > limit:
            # What is queued would never be read: abort, and the others hear it left now.
            self._drop(f"send queue exceeded: over {limit} bytes unread", "send queue exceeded", abort=True)

    def tell(self, data: bytes) -> None:
        """Presence news (the line protocol's ``JOINED`` and ``LEFT``, IRC's ``JOIN`` and ``QUIT`` on #all),
        unless this client is on its way out."""
        if not self.transport.disconnecting:
            self._write(data)

    def closing(self) -> None:
        """The client closes its connection (a WebSocket's Close frame) and reads nothing more: it leaves
        the hub now, not once the connection is lost."""
        self._log_out()

    def quit(self, reason: str | None, farewell: str) -> None:
        """The client quits, saying ``reason`` (maybe nothing), which the log shows; it is told ``farewell``."""
        self._quit = f"quit: {reason}" if reason else "quit"
        self.bye(farewell)

    def kick(self, reason: str) -> None:
        """hub.Participant: the operator disconnects this client."""
        self.bye(f"disconnected by the operator: {reason}" if reason else "disconnected by the operator")

    def drop(self, reason: str) -> None:
        """hub.Participant: the server disconnects this client, its name lost (the service's state away)."""
        self.bye(reason)
