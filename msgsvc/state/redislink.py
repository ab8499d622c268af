"""Connections to Redis: commands, and a subscription.

txredisapi speaks the protocol (its ``RedisProtocol``: pipelined commands,
``AUTH`` and ``SELECT`` on connect, ``EVALSHA`` with a fallback to
``EVAL``; hiredis parses the replies, every reply of a read in one pass);
Twisted's ``ClientService`` keeps the connection up, backing off between
attempts, over an endpoint (TLS for ``rediss://``).  While there is
no connection a command fails at once with :class:`RedisUnavailable`
rather than waiting: the server answers its client ``SERVER_ERROR`` and
the client may try again.  A command unanswered for :data:`REPLY_TIMEOUT`
seconds fails the same way and drops the connection, which is then made
again; the time counts only while Redis is silent and the node listens
(:class:`_Overdue`), so a busy node fails nothing Redis answered.

txredisapi imports Twisted's global reactor when it is imported; only the
plugin's ``makeService``, the Redis commands and the tests import this
module (URLs are read with :mod:`msgsvc.state.redisurl`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import txredisapi
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from msgsvc.state import StoreError
from msgsvc.state.redisurl import RedisURL

#: seconds a command may wait for its answer before the connection is given up
REPLY_TIMEOUT = 5.0
#: seconds between attempts to connect, at most
MAX_RETRY_DELAY = 5.0
#: bytes a connection to Redis may hand the kernel in one reactor pass (as much as it takes): a busy pass's
#: history and routed messages go at once.  Twisted's own limit, 128 KiB a pass, left the rest of a pass
#: bigger than that to later passes, and at a few passes a second the writes fell behind without bound.
SEND_LIMIT = 1 << 30


class RedisUnavailable(StoreError):
    """Redis cannot be reached now; the message says where and why."""


@implementer(IStreamClientEndpoint)
class _Reporting:
    """An endpoint that tells ``failed`` why each attempt to connect failed."""

    def __init__(self, endpoint: IStreamClientEndpoint, failed: Callable[[Failure], None]) -> None:
        self._endpoint = endpoint
        self._failed = failed

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        def failed(failure: Failure) -> Failure:
            self._failed(failure)
            return failure

        return self._endpoint.connect(factory).addErrback(failed)


class _Protocol(txredisapi.RedisProtocol):  # type: ignore[misc]
    """txredisapi's protocol, told who owns it and on which clock its replies time out.

    It tells its owner once usable: after ``AUTH`` and ``SELECT``, and a ``PING`` answered (over
    TLS, only the answer shows that the handshake succeeded).  A ``PING`` answered with an error
    (``-LOADING``: Redis reads its file after a restart) closes the connection, which is made again.
    """

    owner: _Connection
    clock: IReactorTime
    reads = 0  # how many times the connection was read (:class:`_Overdue`)

    def callLater(self, delay: float, f: Callable[..., object], *args: object) -> IDelayedCall | _Overdue:
        """txredisapi's clock, the owner's reactor; its reply timeout (the one call with a delay) counts
        Redis's silence only."""
        return _Overdue(self, delay, f, *args) if delay > 0 else self.clock.callLater(delay, f, *args)

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        self.reads += 1
        super().dataReceived(data, unpause)

    def connectionMade(self) -> Deferred[None]:
        transports: tuple[Any, ...] = (self.transport, getattr(self.transport, "transport", None))
        for transport in transports:  # TCP, or TLS and the TCP under it
            if hasattr(transport, "SEND_LIMIT"):
                transport.SEND_LIMIT = SEND_LIMIT
        made: Deferred[None] = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.ping()).addCallbacks(
            lambda _: self.owner.usable(self),
            lambda why: self.owner.not_ready(self, why) if self.connected else None,  # lost: connectionLost tells
        )
        return made

    def connectionLost(self, why: Failure) -> None:
        super().connectionLost(why)
        self.owner.lost(self, why)

    def run(self, script: Script, keys: list[str], args: list[str]) -> Deferred[Any]:
        """txredisapi's ``eval`` (by the script's hash once Redis knows it, else its source), with the
        hash made once for the script, not at every call."""
        if script.sha in self.script_hashes:
            ran: Deferred[Any] = self.evalsha(script.sha, keys, args)
            return ran.addErrback(self._evalsha_failed, script.code, script.sha, keys, args)
        source: Deferred[Any] = self._eval(script.code, script.sha, keys, args)
        return source


class _Overdue:
    """txredisapi's reply timeout: due after ``delay`` of silence from Redis, as this node could hear it.

    Due, it waits ``delay`` more if the connection was read meanwhile (Redis answers in order: a long
    reply, or many, ahead of the command's), or, once, if the reactor came to it late.  A reactor runs
    its timed calls at the start of a pass, before it reads or writes its sockets: after a pass that held
    it past the timeout (a busy or starved node), every command waiting was failed and the connection
    dropped though Redis had answered them (lease38, the bench's login ramp on a loaded core: the logins
    under way refused, and the lease's renewal sent in that pass failed with them, leaving 9 s of the
    lease); and a command behind a reply that took the node longer than ``delay`` to read (a username log
    of 300,000 names) failed with the connection.  A silent Redis is still found out.
    """

    def __init__(self, protocol: _Protocol, delay: float, f: Callable[..., object], *args: object) -> None:
        self._protocol = protocol
        self._clock = protocol.clock
        self._delay = delay
        self._f = f
        self._args = args
        self._reads = protocol.reads
        self._waited_late = False
        self._at = self._clock.seconds() + delay
        self._call = self._clock.callLater(delay, self._due)

    def _due(self) -> None:
        now = self._clock.seconds()
        late = now - self._at >= self._delay / 50 and not self._waited_late
        if self._protocol.reads == self._reads and not late:
            self._f(*self._args)
            return
        self._waited_late = self._waited_late or late
        self._reads = self._protocol.reads
        self._at = now + self._delay
        self._call = self._clock.callLater(self._delay, self._due)

    def active(self) -> bool:
        return bool(self._call.active())

    def cancel(self) -> None:
        self._call.cancel()


class _Subscriber(_Protocol, txredisapi.SubscriberProtocol):  # type: ignore[misc]
    """txredisapi's subscriber protocol, told who owns it as :class:`_Protocol` is."""

    def messageReceived(self, pattern: str | None, channel: str, message: str) -> None:
        assert isinstance(self.owner, Subscription)
        self.owner.message(channel, message)


class _Factory(Factory):
    """Builds the protocol; txredisapi's protocol calls back into its factory if AUTH or SELECT fails."""

    isLazy = True
    noisy = False  # no "Starting factory" at every attempt

    def __init__(self, owner: _Connection) -> None:
        self._owner = owner

    def buildProtocol(self, addr: object) -> Any:
        owner = self._owner
        url = owner.url
        protocol = owner.protocol_class(
            charset="utf-8",
            replyTimeout=REPLY_TIMEOUT,
            password=url.password,
            dbid=url.db or None,
            convertNumbers=False,  # a text of digits stays text
            username=url.username,
        )
        protocol.clock = owner.clock
        protocol.owner = owner
        protocol.factory = self
        return protocol

    def stopTrying(self) -> None:
        """AUTH or SELECT failed: say so; the service keeps trying (the password may be set meanwhile)."""

    def connectionError(self, why: str) -> None:
        self._owner.refused(why)


class _Connection:
    """One connection to Redis kept up by a ClientService; ``ready`` fires each time it is usable."""

    log = Logger()
    protocol_class: type[Any] = _Protocol

    def __init__(self, reactor: Any, url: RedisURL, what: str) -> None:
        self.url = url
        self.clock: IReactorTime = reactor
        self._what = what
        self._protocol: Any = None
        self._problem = "not connected yet"
        self._waiting: list[Deferred[None]] = []
        self._failed_attempts = 0  # since the last usable connection
        self.connections = 0  # usable connections made: the first, then each reconnection
        backoff = backoffPolicy(initialDelay=0.2, maxDelay=MAX_RETRY_DELAY)
        # Not the service's count, which a connection that fails its TLS handshake or AUTH resets.
        self._service = ClientService(
            _Reporting(url.endpoint(reactor, REPLY_TIMEOUT), self._attempt_failed),
            _Factory(self),
            retryPolicy=lambda _: backoff(self._failed_attempts),
            clock=reactor,
        )

    def start(self) -> None:
        self._service.startService()

    def stop(self) -> Deferred[None]:
        return self._service.stopService()

    @property
    def connected(self) -> bool:
        return self._protocol is not None

    def ready(self, timeout: float | None = None) -> Deferred[None]:
        """Fires once connected (at once if connected now); fails with TimeoutError after ``timeout``."""
        if self._protocol is not None:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting.append(waiting)
        if timeout is not None:
            waiting.addTimeout(timeout, self.clock)
        return waiting

    def usable(self, protocol: Any) -> None:
        """``protocol`` answers commands now."""
        if not protocol.connected:
            return
        self._protocol = protocol
        self._failed_attempts = 0
        self.connections += 1
        self._problem = ""
        self.log.info("{what}: connected to Redis at {url}", what=self._what, url=str(self.url))
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:  # not timed out
                d.callback(None)
        self.up()

    def not_ready(self, protocol: Any, why: Failure) -> None:
        """``protocol``'s ``PING`` was answered with an error (``-LOADING``: Redis reads its file after a
        restart): say so, and close it, to be made again."""
        self._report(why.getErrorMessage())
        protocol.transport.loseConnection()  # lost() counts the attempt

    def up(self) -> None:
        """The connection is usable (again)."""

    def lost(self, protocol: Any, why: Failure) -> None:
        if protocol is self._protocol:
            self._protocol = None
            self._problem = "the connection was lost"
            self.log.warn("{what}: lost Redis at {url}; reconnecting", what=self._what, url=str(self.url))
            self.down()
        elif why.check(ConnectionDone):  # closed here, AUTH or SELECT refused: refused() said so
            self._failed_attempts += 1
        else:  # connected, never usable: a failed TLS handshake, say
            self._attempt_failed(why)

    def down(self) -> None:
        """The connection went away; the service is making another."""

    def _attempt_failed(self, failure: Failure) -> None:
        self._failed_attempts += 1
        self._report(failure.getErrorMessage())

    def _report(self, problem: str) -> None:
        """Log why Redis cannot be used: the first time, and when the reason changes."""
        if problem != self._problem:
            self._problem = problem
            self.log.warn(
                "{what}: cannot reach Redis at {url}: {why}; trying again",
                what=self._what,
                url=str(self.url),
                why=problem,
            )

    def refused(self, why: str) -> None:
        self._problem = why
        self.log.error(
            "{what}: Redis at {url} refused us: {why}", what=self._what, url=str(self.url), why=why
        )

    def unavailable(self) -> RedisUnavailable:
        return RedisUnavailable(f"Redis at {self.url} is unreachable ({self._problem})")


class Commands(_Connection):
    """Commands and scripts on one pipelined connection."""

    def execute(self, *args: object) -> Deferred[Any]:
        """Run one command; fails with :class:`RedisUnavailable` at once while there is no connection."""
        if self._protocol is None:
            return fail(self.unavailable())
        return self._checked(self._protocol.execute_command(*args))

    def script(self, script: Script, keys: Sequence[str], args: Sequence[object]) -> Deferred[Any]:
        """Run a Lua script (by its hash once Redis knows it)."""
        if self._protocol is None:
            return fail(self.unavailable())
        return self._checked(self._protocol.run(script, list(keys), [_arg(a) for a in args]))

    def _checked(self, reply: Deferred[Any]) -> Deferred[Any]:
        def failed(failure: Failure) -> Failure:
            if failure.check(txredisapi.ConnectionError):  # includes the reply timeout
                return Failure(self.unavailable())
            return failure

        return reply.addErrback(failed)


class Subscription(_Connection):
    """The channels subscribed to, again on every reconnection; ``on_message`` gets what they carry."""

    protocol_class = _Subscriber

    def __init__(
        self,
        reactor: Any,
        url: RedisURL,
        channels: Sequence[str],
        on_message: Callable[[str, str], None],
        on_up: Callable[[], None],
        on_down: Callable[[], None],
    ) -> None:
        super().__init__(reactor, url, "subscription")
        self._channels = list(channels)
        self._on_message = on_message
        self._on_up = on_up
        self._on_down = on_down

    def usable(self, protocol: Any) -> None:
        """Subscribe first: the connection is up once the subscriptions are."""

        def subscribed(_: object) -> None:
            if protocol.connected:
                super(Subscription, self).usable(protocol)

        def failed(failure: Failure) -> None:
            if protocol.connected:  # refused (an ACL, say): said once, and tried again later
                self._attempt_failed(failure)
                protocol.transport.loseConnection()

        protocol.subscribe(self._channels).addCallbacks(subscribed, failed)

    def up(self) -> None:
        self._on_up()

    def message(self, channel: str, data: str) -> None:
        self._on_message(channel, data)

    def down(self) -> None:
        self._on_down()


@dataclass(frozen=True)
class Script:
    """A Lua script run atomically in Redis."""

    source: str
    #: the source as sent, and its SHA-1, by which Redis runs it once it knows it: made once, not at
    #: each call (txredisapi's ``eval`` hashes the source every time)
    code: bytes = field(init=False, repr=False)
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        code = self.source.encode()
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "sha", hashlib.sha1(code).hexdigest())


def _arg(value: object) -> str:
    """A script argument as Redis takes it: floats exactly (txredisapi rounds them to 6 places)."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)
