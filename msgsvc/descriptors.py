"""Running out of file descriptors: a raised limit at start, and a listener that pauses.

Every connection holds a descriptor.  A process starts with the soft
``RLIMIT_NOFILE`` of its parent (1024 on many systems); :func:`raise_limit`
lifts it to the hard limit.  Once the descriptors run out all the same,
``accept()`` fails with ``EMFILE`` (or ``ENFILE`` for the whole system)
and the connection stays queued, so the listening socket stays readable:
Twisted would try again on every reactor pass, spinning a core, or shed it
unannounced through its reserve descriptor.  :class:`PausingEndpoint`
instead stops reading the listening socket for a moment, logs the episode
once, and tries again: registered clients are served all along, and the
queued connections are accepted as soon as descriptors are free.
"""

from __future__ import annotations

import errno
import resource
import socket
from dataclasses import dataclass
from typing import Any

from twisted.internet import tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProtocolFactory,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from zope.interface import implementer

from msgsvc.fronts.clients import describe_peer

#: Descriptors the server needs besides its clients: listeners, the database, logs, threads.
RESERVE = 64
#: Seconds between attempts to accept while descriptors are short.
PAUSE = 0.5
#: An episode is over once accepting has worked this long after its last shortage.
QUIET = 5.0
#: accept() errors that mean "no descriptor (or buffer) for the new connection now".
_SHORT = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

log = Logger()


@dataclass(frozen=True)
class Limit:
    before: int  # the soft limit the process started with
    soft: int
    hard: int


def raise_limit() -> Limit:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows, and say what it is."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = before
    target = hard if hard != resource.RLIM_INFINITY else _kernel_maximum()
    if target > before:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return Limit(before, soft, hard)


def _kernel_maximum() -> int:
    """The most descriptors a process may have when the hard limit is unlimited."""
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as nr_open:
            return int(nr_open.read())
    except (OSError, ValueError):
        return 1024 * 1024


def check_limit(limit: Limit, max_clients: int) -> None:
    """Log the limit; warn if ``max_clients`` connections could not all be had."""
    log.info(
        "file descriptors: soft limit {soft} (started at {before}), hard limit {hard}",
        soft=limit.soft,
        before=limit.before,
        hard="unlimited" if limit.hard == resource.RLIM_INFINITY else limit.hard,
    )
    if max_clients + RESERVE > limit.soft:
        log.warn(
            "--max-clients {max_clients} needs about {need} file descriptors, but the limit is {soft}:"
            " past about {fit} clients new connections wait (raise the hard limit, e.g. LimitNOFILE=)",
            max_clients=max_clients,
            need=max_clients + RESERVE,
            soft=limit.soft,
            fit=max(limit.soft - RESERVE, 0),
        )


class _Listener:
    """A listening socket whose ``accept`` reports a shortage to its guard rather than raising."""

    def __init__(self, wrapped: socket.socket, guard: AcceptGuard) -> None:
        self._wrapped = wrapped
        self._guard = guard

    def accept(self) -> tuple[socket.socket, Any]:
        try:
            accepted = self._wrapped.accept()
        except OSError as e:
            if e.errno not in _SHORT:
                raise
            self._guard.short(e.errno)
            raise BlockingIOError(errno.EAGAIN, "paused") from None  # Twisted: "no more clients"
        self._guard.accepted()
        return accepted

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class AcceptGuard:
    """Watches one listening port's accepts; pauses it while descriptors are short."""

    def __init__(self, port: Any, clock: IReactorTime, pause: float = PAUSE) -> None:
        self._port = port
        self._clock = clock
        self._pause = pause
        self._since: float | None = None  # when this episode began
        self._last = 0.0  # when an accept last failed
        self._refused = 0  # accepts that failed in it
        self._retry: IDelayedCall | None = None
        port.socket = _Listener(port.socket, self)

    @property
    def paused(self) -> bool:
        return self._retry is not None  # cleared when it fires

    def short(self, error: int) -> None:
        """accept() failed for want of descriptors: stop reading the listener for a while."""
        self._refused += 1
        self._last = self._clock.seconds()
        if self._since is None:
            self._since = self._last
            log.warn(
                "cannot accept connections on {port}: {error}; pausing accepts, retrying every {pause:g} s"
                " (registered clients are served as before)",
                port=describe_peer(self._port.getHost()),
                error=f"{errno.errorcode[error]} ({'too many open files' if error == errno.EMFILE else 'out of resources'})",
                pause=self._pause,
            )
        if not self.paused:
            self._port.stopReading()
            self._retry = self._clock.callLater(self._pause, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if self._port.connected:  # not stopped meanwhile
            self._port.startReading()

    def accepted(self) -> None:
        if self._since is not None and self._clock.seconds() - self._last >= QUIET:
            log.info(
                "accepting connections again: descriptors were short for {seconds:.1f} s ({tries} accepts waited)",
                seconds=self._last - self._since,
                tries=self._refused,
            )
            self._since, self._refused = None, 0


@implementer(IStreamServerEndpoint)
class PausingEndpoint:
    """An endpoint whose TCP (and TLS) ports pause accepting while descriptors are short."""

    def __init__(self, endpoint: IStreamServerEndpoint, clock: IReactorTime) -> None:
        self._endpoint = endpoint
        self._clock = clock

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        def guard(port: IListeningPort) -> IListeningPort:
            if isinstance(port, tcp.Port):
                AcceptGuard(port, self._clock)
            return port

        return self._endpoint.listen(protocolFactory).addCallback(guard)
