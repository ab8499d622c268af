"""``twistd msgsvc``: the service tree, from the options (:mod:`msgsvc.options`).

:func:`makeService` builds the state, the hub, the accounts and the
registry every front shares (:class:`~msgsvc.fronts.clients.Clients`),
then listens with each front the options name: the line protocol
(``--listen``), the web page (``--web``), IRC (``--irc``).
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from ipaddress import ip_address
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, Service
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorFromThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from msgsvc import __version__, build, descriptors
from msgsvc.auth.accounts import Accounts
from msgsvc.auth.hashing import Hasher
from msgsvc.eventlog import HubEventLogger
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.lines import ServerFactory
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.web.site import web_site
from msgsvc.heap import QuietTrim, malloc_trim
from msgsvc.hub.core import Hub
from msgsvc.hub.history import History, NoHistory
from msgsvc.ops.counts import EventCounts
from msgsvc.ops.lag import ReactorLag
from msgsvc.ops.metrics import Metrics, registry
from msgsvc.ops.site import ops_site
from msgsvc.ops.watchdog import Watchdog
from msgsvc.options import Options
from msgsvc.ratelimit import AddressRate, Rate
from msgsvc.serverlog import LoggedService
from msgsvc.state import Snapshot, State, StoreError
from msgsvc.state.choice import open_state
from msgsvc.state.sqlite import SqliteStore


class _Listener(StreamServerEndpointService):
    """Listens on one ``--listen``, ``--web`` or ``--irc`` endpoint, and logs where; if it cannot,
    start-up stops with one clear line."""

    log = Logger()
    _raiseSynchronously = True

    def __init__(
        self,
        option: str,
        description: str,
        endpoint: IStreamServerEndpoint,
        factory: IProtocolFactory,
        clients: bool = True,
    ) -> None:
        """``clients``: it serves clients (else the operator's view), whose passwords and messages must
        not cross the network in the clear."""
        StreamServerEndpointService.__init__(self, endpoint, factory)
        self._option = option
        self._description = description
        self._clients = clients

    def privilegedStartService(self) -> None:
        try:
            StreamServerEndpointService.privilegedStartService(self)
        except CannotListenError as e:
            raise SystemExit(f"msgsvc: cannot listen on {self._description}: {e.socketError}") from None
        listening = self._waitingForPort
        assert listening is not None  # set by privilegedStartService, already fired
        listening.addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        """Log where it listens; warn when a password sent to it can cross the network in the clear."""
        address = port.getHost()
        if not isinstance(address, (IPv4Address, IPv6Address)):  # a UNIX socket: this machine only
            self.log.info(
                "{option} {description}: listening", option=self._option, description=self._description
            )
            return port
        try:
            ip = ip_address(address.host)
        except ValueError:  # not an address: taken for one beyond this machine
            ip = None
        everywhere = ip is not None and ip.is_unspecified
        self.log.info(
            "{option} {description}: listening on {where} port {port}",
            option=self._option,
            description=self._description,
            where="every interface," if everywhere else address.host,
            port=address.port,
        )
        if not self._clients or ip is not None and ip.is_loopback:
            return port
        if self._description.split(":", 1)[0].lower() != "ssl":
            self.log.warn(
                "{option} {description} is not encrypted and can be reached from other machines: passwords "
                "and messages sent to it cross the network in the clear. Use an ssl: endpoint, or listen on "
                "loopback only (tcp:{port}:interface=127.0.0.1)",
                option=self._option,
                description=self._description,
                port=address.port,
            )
        return port


class _InOrder(LoggedService):
    """Starts its children in order and stops them in reverse, one after another."""

    @inlineCallbacks
    def stopService(self) -> Any:
        Service.stopService(self)
        for service in reversed(list(self)):
            yield maybeDeferred(service.stopService)


class _Disconnector(Service):
    """Says BYE to every client when the server stops."""

    def __init__(self, clients: Clients) -> None:
        self._clients = clients

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return self._clients.disconnect_all("server shutting down")


class _Startup(Service):
    """Logs which build runs (:mod:`msgsvc.build`), and raises the file descriptor limit, and logs it,
    as the server starts."""

    log = Logger()

    def __init__(self, max_clients: int) -> None:
        self._max_clients = max_clients

    def startService(self) -> None:
        Service.startService(self)
        self.log.info("msgsvc {version}, {build} build", version=__version__, build=build.running())
        descriptors.check_limit(descriptors.raise_limit(), self._max_clients)


class _Loader(Service):
    """Reads the username log into the hub once the state answers (at once for SQLite), then drops
    expired offline messages and counts what waits for whom: then, and hourly."""

    log = Logger()
    INTERVAL = 3600.0

    def __init__(self, state: State, hub: Hub, accounts: Accounts, clock: IReactorTime) -> None:
        self._state = state
        self._hub = hub
        self._accounts = accounts
        self._sweep = LoopingCall(self._expire)
        self._sweep.clock = clock

    def startService(self) -> None:
        """Let clients register once the log and the rooms are read (at once for SQLite, before the
        server listens; on a node of several, its subscription's resync reads them again)."""
        Service.startService(self)
        self._state.read_log().addCallback(self._loaded)

    def _loaded(self, snapshot: Snapshot) -> None:
        if not self.running:
            return
        records = snapshot.records
        self._hub.load(records, snapshot.rooms)
        self._accounts.watch_resets(snapshot.last_reset)
        names = [r.name for r in records]
        self.log.info(
            "username log {path}: {count} names: {names}",
            path=self._state.where,
            count=len(names),
            names=", ".join(names) or "(none yet)",
        )
        self.log.info("rooms: {count}", count=len(snapshot.rooms))
        self._sweep.start(self.INTERVAL)

    def _expire(self) -> Deferred[None]:
        return self._hub.expire_queued().addErrback(
            lambda f: self.log.failure("could not expire offline messages", f)
        )

    def stopService(self) -> None:
        Service.stopService(self)
        if self._sweep.running:
            self._sweep.stop()


#: allocations between two collections of the garbage collector's young generation (Python's default: 700)
GC_YOUNG = 10_000


class _Settle(Service):
    """Started last: moves what start-up made out of the garbage collector's way.

    ``gc.freeze()`` puts every object alive now (Twisted, the username log,
    a window) in the permanent generation, which a full collection skips:
    without it, a full collection during a burst of logins stalled the
    reactor for 60 ms (docs/performance.rst).  The young generation is
    collected every :data:`GC_YOUNG` allocations: what a message holds while
    it waits for Redis (a pass or more, when it crosses nodes) is freed
    before a collection looks at it, rather than promoted and walked again by
    the older generations' (a tenth of a node's instructions on crossing
    messages at Python's 700).
    """

    def startService(self) -> None:
        Service.startService(self)
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG, *gc.get_threshold()[1:])


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    try:
        state, node = open_state(
            reactor, options["db"], options["redis"], options["redis-lease"], options["redis-inbox"]
        )
    except StoreError as e:
        raise SystemExit(f"msgsvc: {e}") from None
    policy = options.history()
    history = History(reactor, state, policy) if policy.kept else NoHistory()  # --history-days 0
    hub = Hub(
        reactor,
        state,
        None,
        options["max-clients"],
        options.queue(),
        node,
        history=history,
        max_sessions=options["max-sessions"],
        room_policy=options.rooms(),
        room_creations=AddressRate(options.new_rooms(), reactor).take,
    )
    hub.subscribe(HubEventLogger())
    trim = malloc_trim()
    if trim is not None:  # glibc: what a burst of logins freed goes back to the system after it
        hub.subscribe(QuietTrim(reactor, trim))
    events = EventCounts()
    if options["metrics"]:
        hub.subscribe(events)
    services: list[IService] = [IService(state)]
    if node is not None:  # --redis: this node of the service
        node.attach(hub.nodes)
        services.append(node)
    hasher = Hasher(IReactorFromThreads(reactor), options["hash-threads"])
    accounts = Accounts(
        hub,
        state,
        hasher,
        reactor,
        options["require-password"],
        Rate(options["new-names-per-minute"], options["new-names-burst"]),
        Rate(options["new-accounts-per-minute"], options["new-accounts-burst"]),
        Rate(options["password-hashes-per-minute"], options["password-hashes-burst"]),
    )
    clients = Clients(hub, accounts, reactor, options.limits())
    presence = Presence(hub, reactor)  # the line protocol's: TCP and web clients hear the same batches
    fronts: dict[str, Callable[[], IProtocolFactory]] = {
        "listen": lambda: ServerFactory(clients, presence),
        "web": lambda: web_site(
            clients, presence, options["web-origin"], options["web-host"], options["web-request-timeout"]
        ),
        "irc": lambda: IrcFactory(
            clients, options["irc-server-name"], channel=options["irc-channel"], history=policy
        ),
    }

    services += [hasher, accounts, _Loader(state, hub, accounts, reactor), _Startup(options["max-clients"])]
    if options["metrics"]:
        lag = ReactorLag(reactor)
        metrics = Metrics(clients, events, lag, state, node)
        check = node.check if node is not None else _writable(state)
        site = ops_site(metrics, registry(metrics), check, clients, options["web-request-timeout"])
        services += [lag, _listener(reactor, "--metrics", options["metrics"], site, clients=False)]
    services.append(history)  # expires the history now and hourly (if it keeps one)
    if options["gui"]:
        services.append(_window(options, reactor, hub, accounts))
    services += [Watchdog(reactor), _Disconnector(clients)]  # the listeners stop first, then these
    for option, build in fronts.items():
        if options[option]:
            factory = build()
            services += [_listener(reactor, f"--{option}", d, factory) for d in options[option]]
    services.append(_Settle())
    top = _InOrder(reactor, options.parent)
    for service in services:
        service.setServiceParent(top)
    return top


def _window(options: Options, reactor: Any, hub: Hub, accounts: Accounts) -> IService:
    """The server's window (``--gui``); SystemExit if it cannot be shown."""
    from msgsvc.servergui.service import ServerWindowService
    from msgsvc.tkreactor import display_problem

    if options.parent is not None and not options.parent["nodaemon"]:
        raise SystemExit("msgsvc: --gui needs twistd -n (a daemon has no screen to show a window on)")
    problem = display_problem()
    if problem:
        raise SystemExit(f"msgsvc: --gui cannot open a window: {problem}")
    shown = options["listen"] + [f"{web} (web)" for web in options["web"]]
    shown += [f"{irc} (IRC)" for irc in options["irc"]]
    return ServerWindowService(reactor, hub, accounts, shown)


def _writable(state: State) -> Callable[[], Deferred[None]]:
    """The readiness check of a server alone: its SQLite file writable."""
    assert isinstance(state, SqliteStore)  # open_state's, without --redis
    return state.check


def _listener(
    reactor: Any, option: str, description: str, factory: IProtocolFactory, clients: bool = True
) -> _Listener:
    """A listener for ``factory`` on the endpoint ``description`` (``clients``: see :class:`_Listener`);
    SystemExit if it is no endpoint."""
    try:
        endpoint = descriptors.PausingEndpoint(serverFromString(reactor, description), reactor)
    except (ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"msgsvc: bad {option} endpoint {description!r}: {e}") from None
    return _Listener(option, description, endpoint, factory, clients)
