"""The line front: the protocol and factory between the wire and the hub.

Twisted serves every connection from one thread: each connection gets its
own :class:`ServerProtocol` instance, which is what "fork a thread per
client" becomes on a reactor.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msgsvc import wire
from msgsvc.auth import Accounts
from msgsvc.hub import ClientDropped, ClientError, Connected, Disconnected, Hub, Message, Queued, Report
from msgsvc.lines import LineProtocol
from msgsvc.outbox import Outbox
from msgsvc.presence import Presence
from msgsvc.ratelimit import TokenBucket
from msgsvc.wire import Code, Kind, ProtocolError

WELCOME_TEXT = "welcome to msgsvc"


def encode_message(message: Message) -> bytes:
    """The ``MSG`` line for ``message``.

    Its parts need no checking: the names are registered usernames and the
    text came in as (part of) one line.
    """
    recipients = ",".join(message.recipients) or "*"
    return f"MSG {message.sender} {message.kind.value} {recipients} :{message.text}\r\n".encode()


#: A message to several is encoded once, however many receive it.
encode_shared_message = lru_cache(maxsize=64)(encode_message)


@lru_cache(maxsize=256)
def sent_line(delivered: int, offline: tuple[str, ...], queued: tuple[str, ...]) -> bytes:
    """``SENT``: the same few lines over and over ("SENT 1 - -" for every unicast)."""
    return wire.format_line("SENT", str(delivered), ",".join(offline) or "-", ",".join(queued) or "-")


def encode_delayed(message: Queued) -> bytes:
    """The ``DELAYED`` line for a message that waited: its id and when it was sent, then as ``MSG``."""
    recipients = ",".join(message.recipients)
    return (
        f"DELAYED {message.id} {wire.format_time(message.sent_at)} {message.sender} {message.kind}"
        f" {recipients} :{message.text}\r\n"
    ).encode()


def _host(address: IAddress) -> str:
    """The host part of a peer address, for counting connections per address."""
    return address.host if isinstance(address, IPv4Address | IPv6Address) else str(address)


def describe_peer(address: IAddress) -> str:
    """``host:port`` (``[host]:port`` for IPv6), or the address as it prints."""
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    return str(address)


@implementer(IPushProducer)
class SendQueue:
    """Counts what is written to a transport while its buffer is full.

    Registered as the transport's producer: the transport pauses it when
    its own buffer is past its high-water mark and resumes it once the
    buffer has drained, so ``add`` tells how far a client lags behind.
    """

    def __init__(self) -> None:
        self._full = False
        self._behind = 0

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

    def stopProducing(self) -> None:
        self._full = False


class ServerProtocol(LineProtocol):
    """One client connection: reads commands, hands them to the hub, writes replies.

    One timer watches it: a client must say HELLO within ``hello_timeout``;
    once registered, after ``ping_interval`` of silence it is sent a PING,
    and if nothing at all comes back within ``ping_timeout`` it is dropped.
    """

    log = Logger()
    factory: ServerFactory
    peer = "?"
    _gone = False
    _dropped = False
    _pinged = 0  # the token of an unanswered PING, or 0
    _quit = ""  # why the client said it quits
    _welcomed = False
    _flooding_since: float | None = None
    _unthrottle: IDelayedCall | None = None
    _timer: IDelayedCall | None = None  # the one timer: HELLO's deadline, or the PING's
    _timer_seconds = 0.0
    _login: Deferred[str | None] | None = None  # a HELLO being checked

    def connectionMade(self) -> None:
        self.peer = describe_peer(self.transport.getPeer())
        self._holds: set[str] = set()
        limits = self.factory.limits
        self._bucket = TokenBucket(limits.line_rate, limits.line_burst, self.factory.clock.seconds())
        self._send_queue = SendQueue()
        self.transport.registerProducer(self._send_queue, True)
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)  # TCP, also under TLS
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:  # a UNIX socket
                pass
        self.factory.hub.announce(Connected(self.peer))
        if not self.factory.connection_made(self):
            limit = self.factory.limits.max_per_ip
            self._refuse(Code.SERVER_FULL, f"at most {limit} connections from one address")
            self.bye("too many connections from your address")
            return
        self._watch(self.factory.limits.hello_timeout)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._gone = True
        if self._login is not None:
            self._login.cancel()  # a throttled login is not checked for a client that left
        self.factory.outbox.discard(self.transport)
        self.factory.presence.leave(self)
        self._watch(None)
        if self._unthrottle is not None and self._unthrottle.active():
            self._unthrottle.cancel()
        self.factory.hub.unregister(self)
        self.factory.connection_lost(self)
        self.factory.hub.announce(Disconnected(self.peer, self._quit or reason.getErrorMessage()))

    # -- input -----------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if data:  # anything read shows the client is alive (checked once a read, not once a line)
            if self._pinged:
                self._pinged = 0
                self._watch(self.factory.limits.ping_interval)
            elif self._welcomed and self._timer is not None:  # HELLO's deadline stands until WELCOME
                self._timer.reset(self._timer_seconds)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        self._throttle()
        try:
            parsed = wire.parse_line(line)
            if parsed is not None:
                self._dispatch(wire.parse_command(parsed, self.factory.limits))
        except ProtocolError as e:
            self._refuse(e.code, e.text)

    def _watch(self, seconds: float | None) -> None:
        """Call :meth:`_timed_out` after ``seconds`` (each read restarts it, once welcomed); None stops it."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if seconds is not None:
            self._timer_seconds = seconds
            self._timer = self.factory.clock.callLater(seconds, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        limits = self.factory.limits
        if self.factory.hub.name_of(self) is None:
            self._drop(f"no HELLO within {limits.hello_timeout:g} s", "registration timed out")
        elif not self._pinged:
            self._pinged = self._next_ping_token()
            self._write(wire.format_line("PING", trailing=str(self._pinged)))
            self._watch(limits.ping_timeout)
        else:
            self._drop(f"no answer to PING within {limits.ping_timeout:g} s", "ping timeout")

    def _next_ping_token(self) -> int:
        self.factory.pings += 1
        return self.factory.pings

    def _drop(self, why: str, bye: str, abort: bool = False) -> None:
        """Cut off a client that is not doing its part, saying ``bye``.

        ``abort`` for one that reads nothing: what is queued for it is thrown
        away rather than left to wait.
        """
        if self._dropped:
            return
        self._dropped = True
        self.factory.hub.announce(ClientDropped(self.peer, why))
        self._close(bye, abort)
        self.factory.hub.unregister(self)  # the others hear LEFT now, not at the close

    def lineTooLong(self) -> None:
        self._refuse(Code.LINE_TOO_LONG, f"a line may hold at most {self.MAX_LENGTH} bytes")

    def _refuse(self, code: Code, text: str) -> None:
        self.factory.hub.announce(ClientError(self.peer, code, text))
        self.send_error(code, text)

    def _dispatch(self, command: wire.Command) -> None:
        hub = self.factory.hub
        match command:  # the commonest first: each case that fails to match costs a check
            case wire.Send(recipients, text):
                report = hub.send(self, recipients, text)
                if isinstance(report, Report):
                    self._sent(report)
                else:  # queued for someone away: its next lines wait for the queue to be on disk
                    self._hold("queueing")
                    report.addCallback(self._sent).addBoth(lambda _: self._release("queueing"))
            case wire.Broadcast(text):
                self._sent(hub.broadcast(self, text))
            case wire.Hello(username, password):
                self._register(username, password)
            case wire.Password(password):
                self._set_password(hub.registered_name(self), password)
            case wire.Users():
                hub.registered_name(self)
                self._write(self.factory.presence.user_log())
            case wire.Ack(up_to):
                hub.acknowledge(self, up_to)
            case wire.Ping(token):
                self._write(wire.format_line("PONG", trailing=token))
            case wire.Pong():
                pass  # the answer to our PING; any line already counted as a sign of life
            case wire.Quit(reason):
                self._quit = f"quit: {reason}" if reason else "quit"
                self.bye("goodbye")

    def _register(self, username: str, password: str | None) -> None:
        if self._welcomed:
            self.send_error(
                Code.ALREADY_REGISTERED, f"already registered as {self.factory.hub.name_of(self)}"
            )
            return
        self._hold("registering")  # its next lines wait for the answer
        self._watch(None)  # HELLO came in time: the check (and a throttled wait) may take longer
        host = _host(self.transport.getPeer())
        self._login = self.factory.accounts.login(self, username, password, self.peer, host)
        self._login.addCallbacks(self._welcome, self._not_registered)
        self._login.addBoth(self._registered)

    def _registered(self, _: None) -> None:
        self._login = None
        self._release("registering")

    def _welcome(self, name: str | None) -> None:
        if name is None or self._gone:
            return
        self._welcomed = True
        self._watch(self.factory.limits.ping_interval)
        self._write(wire.format_line("WELCOME", name, trailing=WELCOME_TEXT))
        self._write(self.factory.presence.join(self))
        self.factory.hub.deliver_backlog(self)

    def _not_registered(self, failure: Failure) -> None:
        if failure.check(CancelledError):  # the client left
            return
        if isinstance(failure.value, ProtocolError):
            self.send_error(failure.value.code, failure.value.text)
            self.bye(failure.value.text)
            return
        self.log.failure("could not register {peer}", failure, peer=self.peer)
        self.send_error(Code.SERVER_ERROR, "the server could not record the username; try again later")
        self.bye("server error")

    def _set_password(self, name: str, password: str) -> None:
        self._hold("password")  # its next lines wait for the answer

        def protected(_: None) -> None:
            self._write(wire.format_line("PROTECTED", name, trailing=f"{name} is protected by your password"))

        def failed(failure: Failure) -> None:
            if isinstance(failure.value, ProtocolError):
                self._refuse(failure.value.code, failure.value.text)
                return
            self.log.failure("could not set the password of {name}", failure, name=name)
            self.send_error(Code.SERVER_ERROR, "the server could not store the password; it is unchanged")

        done = self.factory.accounts.set_password(name, password)
        done.addCallbacks(protected, failed)
        done.addBoth(lambda _: self._release("password"))

    def _hold(self, reason: str) -> None:
        """Stop reading this client's lines (they wait in its socket) until released."""
        if not self._holds:
            self.pauseProducing()
        self._holds.add(reason)

    def _release(self, reason: str) -> None:
        self._holds.discard(reason)
        if not self._holds and not (self._gone or self.transport.disconnecting):
            self.resumeProducing()

    def _throttle(self) -> None:
        """Make a client that sends faster than its rate wait ("fake lag"), and drop one that keeps on."""
        limits = self.factory.limits
        now = self.factory.clock.seconds()
        wait = self._bucket.take(now)
        if not wait:
            self._flooding_since = None
            return
        if self._flooding_since is None:
            self._flooding_since = now
        elif now - self._flooding_since > limits.flood_timeout:
            self._drop(f"flooding for over {limits.flood_timeout:g} s", "flooding")
            return
        self._hold("throttled")
        self._unthrottle = self.factory.clock.callLater(wait, self._release, "throttled")

    # -- output ----------------------------------------------------------

    def send_error(self, code: Code, text: str) -> None:
        self._write(wire.format_line("ERROR", code.value, trailing=text))

    def bye(self, reason: str) -> None:
        """Say why, then close the connection once what is queued is written."""
        if self._dropped or self.transport.disconnecting:
            return
        self._close(reason)

    def _close(self, reason: str, abort: bool = False) -> None:
        """Write ``BYE :reason`` after what is pending (or instead of it, if ``abort``), and close."""
        if abort:
            self.factory.outbox.discard(self.transport)
        else:
            self.factory.outbox.flush(self.transport)
        self.transport.write(wire.format_line("BYE", trailing=reason))
        if abort:
            self.transport.abortConnection()
        else:
            # TLS holds back its close while a producer is registered: unregister the send queue first.
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def _write(self, data: bytes) -> None:
        """Write, unless this client has stopped reading: past the limit it is dropped."""
        if self._dropped:
            return
        self.factory.outbox.write(self.transport, data)
        limit = self.factory.limits.max_send_queue
        if self._send_queue.add(len(data)) > limit:
            # What is queued would never be read: abort, and the others hear LEFT now.
            self._drop(f"send queue exceeded: over {limit} bytes unread", "send queue exceeded", abort=True)

    def _sent(self, report: Report) -> None:
        self.factory.presence.catch_up(self)
        self._write(sent_line(report.delivered, report.offline, report.queued))

    # -- hub.Participant -------------------------------------------------

    def tell(self, data: bytes) -> None:
        """Presence news (``JOINED``, ``LEFT``), unless this client is on its way out."""
        if not self.transport.disconnecting:
            self._write(data)

    def receive(self, message: Message) -> None:
        self.factory.presence.catch_up(self)
        one = message.kind is Kind.UNICAST  # no other receiver to share the line with
        self._write(encode_message(message) if one else encode_shared_message(message))

    def notice(self, text: str) -> None:
        self.factory.presence.catch_up(self)
        self._write(wire.format_line("NOTICE", trailing=text))

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        self.factory.presence.catch_up(self)
        self._write(
            b"".join(encode_delayed(m) for m in backlog) + wire.format_line("ENDDELAYED", str(waiting))
        )

    def kick(self, reason: str) -> None:
        self.bye(f"disconnected by the operator: {reason}" if reason else "disconnected by the operator")


class ServerFactory(Factory[ServerProtocol]):
    """Builds :class:`ServerProtocol` instances over one hub and keeps track of them."""

    noisy = False

    def __init__(self, hub: Hub, accounts: Accounts, clock: IReactorTime, limits: wire.Limits) -> None:
        self.hub = hub
        self.accounts = accounts
        self.limits = limits
        self.clock = clock
        self.outbox = Outbox(clock)
        self.presence = Presence(hub, clock)
        self.connections: set[ServerProtocol] = set()
        self._per_host: Counter[str] = Counter()
        self.pings = 0  # the last PING token handed out
        self._all_gone: Deferred[None] | None = None

    def buildProtocol(self, addr: IAddress | None) -> ServerProtocol:
        protocol = ServerProtocol()
        protocol.factory = self
        protocol.MAX_LENGTH = self.limits.max_line
        return protocol

    def connection_made(self, protocol: ServerProtocol) -> bool:
        """Count ``protocol``'s connection; False if its address already has its share."""
        self.connections.add(protocol)
        host = _host(protocol.transport.getPeer())
        self._per_host[host] += 1
        return self._per_host[host] <= self.limits.max_per_ip

    def connection_lost(self, protocol: ServerProtocol) -> None:
        if protocol in self.connections:
            host = _host(protocol.transport.getPeer())
            self._per_host[host] -= 1
            if not self._per_host[host]:
                del self._per_host[host]
        self.connections.discard(protocol)
        if not self.connections and self._all_gone is not None:
            all_gone, self._all_gone = self._all_gone, None
            all_gone.callback(None)

    def disconnect_all(self, reason: str, grace: float = 5.0) -> Deferred[None]:
        """Say ``BYE :reason`` to every client and close; abort any still open after ``grace`` s."""
        done: Deferred[None] = Deferred()
        if not self.connections:
            done.callback(None)
            return done
        self._all_gone = done
        for protocol in list(self.connections):
            protocol.bye(reason)
        deadline = self.clock.callLater(grace, self._abort_all)

        def in_time(result: None) -> None:
            if deadline.active():
                deadline.cancel()

        return done.addCallback(in_time)

    def _abort_all(self) -> None:
        for protocol in list(self.connections):
            protocol.transport.abortConnection()
