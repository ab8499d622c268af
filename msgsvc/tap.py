"""``twistd msgsvc``: command-line options and the service tree."""

from __future__ import annotations

import gc
import os
from ipaddress import ip_address
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService, Service
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
from twisted.python import usage

from msgsvc import descriptors
from msgsvc.auth import NEW_ACCOUNTS, NEW_NAMES, PASSWORD_HASHES, Accounts, Hasher
from msgsvc.eventlog import HubEventLogger
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.irc.channel import CHANNEL_NAME
from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.lines import ServerFactory
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.web import normalize_host, normalize_origin, web_site
from msgsvc.hub.contracts import QueuePolicy
from msgsvc.hub.core import Hub
from msgsvc.ratelimit import Rate
from msgsvc.state import Snapshot, State, StoreError
from msgsvc.state.redisurl import RedisURL
from msgsvc.state.sqlite import SqliteStore
from msgsvc.wire import Limits

DEFAULT_LISTEN = "tcp:8123"
DEFAULT_DB = "msgsvc.sqlite3"
DEFAULT_MAX_CLIENTS = 1000
_DEFAULTS = Limits()


def _seconds(value: str) -> float:
    """A positive number (of seconds, or lines per second)."""
    number = float(value)
    if not number > 0:
        raise ValueError(f"{value} is not a positive number")
    return number


_seconds.coerceDoc = "A positive number."  # type: ignore[attr-defined]


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value} is not a positive whole number")
    return number


_positive.coerceDoc = "A positive whole number."  # type: ignore[attr-defined]


def _redis_url(value: str) -> str:
    RedisURL.usable(value)
    return value


_redis_url.coerceDoc = "A redis:// or rediss:// URL."  # type: ignore[attr-defined]


def _lease(value: str) -> float:
    seconds = float(value)
    if not seconds >= 1:
        raise ValueError(f"{value} is less than 1 second")
    return seconds


_lease.coerceDoc = "Seconds, at least 1."  # type: ignore[attr-defined]


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the msgsvc message server.  Clients register a unique username and "
        "exchange unicast, multicast and broadcast text messages; every username "
        "ever used is kept in an SQLite file.  The wire protocol is in docs/protocol.rst."
    )
    optFlags = [
        ["gui", None, "Show the server's window: the username log, who is online, events (needs twistd -n)."],
        [
            "require-password",
            None,
            "Every name must be protected: a name nobody protected is claimed by the first HELLO with a password.",
        ],
    ]
    optParameters = [
        [
            "irc-channel",
            None,
            "#all",
            "The one IRC channel: everyone online, and what is said there is a broadcast.",
        ],
        [
            "irc-server-name",
            None,
            None,
            "The server's name to IRC clients (001-004, PONG, WHOIS); default: this machine's host name.",
        ],
        ["db", None, DEFAULT_DB, "The SQLite file that holds the username log (made if missing)."],
        [
            "redis",
            None,
            None,
            "Keep the username log, accounts and offline queues in Redis instead of --db, and be one "
            "node of the service every server with the same URL makes: "
            # No full stop: usage adds ". " and the coerceDoc.
            "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS",
            _redis_url,
        ],
        [
            "redis-lease",
            None,
            30.0,
            "Seconds within which a node that stops (killed, cut off) loses its users' names.",
            _lease,
        ],
        [
            "redis-inbox",
            None,
            64 * 1024 * 1024,
            "Bytes of messages from other nodes that may wait in Redis for this node to deliver; "
            "past it, their senders are told its users did not get them.",
            _positive,
        ],
        ["max-line", None, _DEFAULTS.max_line, "Longest accepted line, in bytes.", _positive],
        ["max-text", None, _DEFAULTS.max_text, "Longest message text, in UTF-8 bytes.", _positive],
        ["max-recipients", None, _DEFAULTS.max_recipients, "Most recipients of one SEND.", _positive],
        [
            "max-send-queue",
            None,
            _DEFAULTS.max_send_queue,
            "Bytes a client may leave unread before it is disconnected (a slow reader).",
            _positive,
        ],
        ["line-rate", None, _DEFAULTS.line_rate, "Lines per second a client may send, sustained.", _seconds],
        [
            "line-burst",
            None,
            _DEFAULTS.line_burst,
            "Lines a client may send at once before it must wait.",
            _positive,
        ],
        [
            "address-byte-rate",
            None,
            _DEFAULTS.address_byte_rate,
            "Bytes per second all the connections from one IP address may send together, sustained.",
            _seconds,
        ],
        [
            "address-byte-burst",
            None,
            _DEFAULTS.address_byte_burst,
            "Bytes all the connections from one IP address may send at once before they must wait.",
            _positive,
        ],
        [
            "flood-timeout",
            None,
            _DEFAULTS.flood_timeout,
            "Seconds a client may keep sending faster than --line-rate before it is disconnected.",
            _seconds,
        ],
        [
            "max-per-ip",
            None,
            _DEFAULTS.max_per_ip,
            "Most connections from one IP address, of every front together (a web one from its accept).",
            _positive,
        ],
        [
            "web-request-timeout",
            None,
            10.0,
            "Seconds a connection to --web has to send a whole request, from its start or the last answer.",
            _seconds,
        ],
        [
            "hello-timeout",
            None,
            _DEFAULTS.hello_timeout,
            "Seconds a new connection has to say HELLO.",
            _seconds,
        ],
        [
            "ping-interval",
            None,
            _DEFAULTS.ping_interval,
            "Seconds of silence from a client before the server sends it a PING.",
            _seconds,
        ],
        [
            "ping-timeout",
            None,
            _DEFAULTS.ping_timeout,
            "Seconds a client has to answer a PING before it is disconnected.",
            _seconds,
        ],
        ["max-clients", None, DEFAULT_MAX_CLIENTS, "Most users registered at once.", _positive],
        [
            "queue-max",
            None,
            QueuePolicy.limit,
            "Messages that may wait for one offline protected user.",
            _positive,
        ],
        [
            "queue-days",
            None,
            QueuePolicy.age / 86400,
            "Days a message waits for an offline protected user before it is dropped.",
            _seconds,
        ],
        [
            "queue-per-sender",
            None,
            QueuePolicy.per_sender,
            "Messages that may wait from one sender, for all its offline recipients together.",
            _positive,
        ],
        [
            "queue-total",
            None,
            QueuePolicy.total,
            "Messages that may wait for offline users in all, from everyone.",
            _positive,
        ],
        [
            "queue-address-burst",
            None,
            _DEFAULTS.queue_burst,
            "Messages the users of one IP address may leave waiting for offline users at once.",
            _positive,
        ],
        [
            "queue-address-per-minute",
            None,
            _DEFAULTS.queue_per_minute,
            "Messages the users of one IP address may leave waiting a minute, after --queue-address-burst.",
            _seconds,
        ],
        [
            "new-names-per-minute",
            None,
            NEW_NAMES.per_minute,
            "Names one address may add to the username log a minute, after --new-names-burst.",
            _seconds,
        ],
        [
            "new-names-burst",
            None,
            NEW_NAMES.burst,
            "Names one address may add to the username log at once.",
            _positive,
        ],
        [
            "new-accounts-per-minute",
            None,
            NEW_ACCOUNTS.per_minute,
            "Names one address may give a first password a minute, after --new-accounts-burst.",
            _seconds,
        ],
        [
            "new-accounts-burst",
            None,
            NEW_ACCOUNTS.burst,
            "Names one address may give a first password at once.",
            _positive,
        ],
        [
            "password-hashes-per-minute",
            None,
            PASSWORD_HASHES.per_minute,
            "Passwords one address may have checked or set a minute (argon2id), after --password-hashes-burst.",
            _seconds,
        ],
        [
            "password-hashes-burst",
            None,
            PASSWORD_HASHES.burst,
            "Passwords one address may have checked or set at once.",
            _positive,
        ],
        [
            "hash-threads",
            None,
            max(1, (os.cpu_count() or 1) - 1),
            "Threads that check passwords (argon2id); the default leaves one core to the reactor.",
            _positive,
        ],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["web"] = []
        self["web-origin"] = []
        self["web-host"] = []
        self["irc"] = []

    def opt_listen(self, description: str) -> None:
        """An endpoint to listen on (repeatable; default tcp:8123), e.g. ssl:8124:privateKey=key.pem."""
        self["listen"].append(description)

    def opt_web(self, description: str) -> None:
        """An endpoint to serve the browser page and its WebSocket on (repeatable; none by default), e.g. tcp:8080."""
        self["web"].append(description)

    def opt_irc(self, description: str) -> None:
        """An endpoint to serve IRC clients on (repeatable; none by default), e.g. tcp:6667 or ssl:6697:..."""
        self["irc"].append(description)

    def opt_web_origin(self, origin: str) -> None:
        """Another origin whose pages may use the WebSocket (repeatable), e.g. https://chat.example.org."""
        try:
            self["web-origin"].append(normalize_origin(origin))
        except ValueError as e:
            raise usage.UsageError(f"--web-origin: {e}") from None

    def opt_web_host(self, name: str) -> None:
        """Another host name the page is served under (repeatable; besides localhost, this machine's name, the --web-origin hosts and any IP address), e.g. chat.example.org; a request for any other is refused."""
        try:
            self["web-host"].append(normalize_host(name))
        except ValueError as e:
            raise usage.UsageError(f"--web-host: {e}") from None

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        if CHANNEL_NAME.fullmatch(self["irc-channel"]) is None:
            raise usage.UsageError("--irc-channel: '#' and 1 to 31 characters, no spaces, commas or colons")
        if self["web-origin"] and not self["web"]:
            raise usage.UsageError("--web-origin needs --web")
        if self["web-host"] and not self["web"]:
            raise usage.UsageError("--web-host needs --web")
        if self["max-text"] >= self["max-line"]:
            raise usage.UsageError("--max-text must be smaller than --max-line")

    def limits(self) -> Limits:
        return Limits(
            max_line=self["max-line"],
            max_text=self["max-text"],
            max_recipients=self["max-recipients"],
            max_send_queue=self["max-send-queue"],
            max_per_ip=self["max-per-ip"],
            line_rate=self["line-rate"],
            line_burst=self["line-burst"],
            address_byte_rate=self["address-byte-rate"],
            address_byte_burst=self["address-byte-burst"],
            queue_burst=self["queue-address-burst"],
            queue_per_minute=self["queue-address-per-minute"],
            flood_timeout=self["flood-timeout"],
            hello_timeout=self["hello-timeout"],
            ping_interval=self["ping-interval"],
            ping_timeout=self["ping-timeout"],
        )


class _Listener(StreamServerEndpointService):
    """Listens on one ``--listen``, ``--web`` or ``--irc`` endpoint, and logs where; if it cannot,
    start-up stops with one clear line."""

    log = Logger()
    _raiseSynchronously = True

    def __init__(
        self, option: str, description: str, endpoint: IStreamServerEndpoint, factory: IProtocolFactory
    ) -> None:
        StreamServerEndpointService.__init__(self, endpoint, factory)
        self._option = option
        self._description = description

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
        if self._description.split(":", 1)[0].lower() != "ssl" and not (ip is not None and ip.is_loopback):
            self.log.warn(
                "{option} {description} is not encrypted and can be reached from other machines: passwords "
                "and messages sent to it cross the network in the clear. Use an ssl: endpoint, or listen on "
                "loopback only (tcp:{port}:interface=127.0.0.1)",
                option=self._option,
                description=self._description,
                port=address.port,
            )
        return port


class _InOrder(MultiService):
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
    """Raises the file descriptor limit, and logs it, as the server starts."""

    def __init__(self, max_clients: int) -> None:
        self._max_clients = max_clients

    def startService(self) -> None:
        Service.startService(self)
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
        Service.startService(self)
        self._state.read_log().addCallback(self._loaded)

    def _loaded(self, snapshot: Snapshot) -> None:
        if not self.running:
            return
        records = snapshot.records
        self._hub.load(records)
        self._accounts.watch_resets(snapshot.last_reset)
        names = [r.name for r in records]
        self.log.info(
            "username log {path}: {count} names: {names}",
            path=self._state.where,
            count=len(names),
            names=", ".join(names) or "(none yet)",
        )
        self._sweep.start(self.INTERVAL)

    def _expire(self) -> Deferred[None]:
        return self._hub.expire_queued().addErrback(
            lambda f: self.log.failure("could not expire offline messages", f)
        )

    def stopService(self) -> None:
        Service.stopService(self)
        if self._sweep.running:
            self._sweep.stop()


class _Settle(Service):
    """Started last: moves what start-up made out of the garbage collector's way.

    ``gc.freeze()`` puts every object alive now (Twisted, the username log,
    a window) in the permanent generation, which a full collection skips:
    without it, a full collection during a burst of logins stalled the
    reactor for 60 ms (docs/performance.rst).
    """

    def startService(self) -> None:
        Service.startService(self)
        gc.collect()
        gc.freeze()


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    state: State
    nodes: list[IService] = []  # with --redis: this node of the service
    queue = QueuePolicy(
        limit=options["queue-max"],
        age=options["queue-days"] * 86400,
        per_sender=options["queue-per-sender"],
        total=options["queue-total"],
    )
    if options["redis"]:
        from msgsvc.state.cluster import RedisCluster
        from msgsvc.state.redis import RedisState

        state = redis = RedisState(reactor, RedisURL.parse(options["redis"]))
        cluster = RedisCluster(reactor, redis, options["redis-lease"], options["redis-inbox"])
        hub = Hub(reactor, state, None, options["max-clients"], queue, cluster)
        cluster.attach(hub.nodes)
        nodes.append(cluster)
    else:
        try:
            state = SqliteStore(IReactorFromThreads(reactor), options["db"])
        except StoreError as e:
            raise SystemExit(f"msgsvc: {e}") from None
        hub = Hub(reactor, state, None, options["max-clients"], queue)
    hub.subscribe(HubEventLogger())
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
    presence = Presence(hub, reactor)  # the line protocol's, over TCP and WebSocket alike

    services: list[IService] = [
        IService(state),
        *nodes,
        hasher,
        accounts,
        _Loader(state, hub, accounts, reactor),
        _Startup(options["max-clients"]),
    ]
    if options["gui"]:
        from msgsvc.servergui.service import ServerWindowService
        from msgsvc.tkreactor import display_problem

        if options.parent is not None and not options.parent["nodaemon"]:
            raise SystemExit("msgsvc: --gui needs twistd -n (a daemon has no screen to show a window on)")
        problem = display_problem()
        if problem:
            raise SystemExit(f"msgsvc: --gui cannot open a window: {problem}")
        shown = options["listen"] + [f"{web} (web)" for web in options["web"]]
        shown += [f"{irc} (IRC)" for irc in options["irc"]]
        services.append(ServerWindowService(reactor, hub, accounts, shown))
    services.append(_Disconnector(clients))
    lines = ServerFactory(clients, presence)
    fronts: list[tuple[str, str, IProtocolFactory]] = [("--listen", d, lines) for d in options["listen"]]
    if options["web"]:
        site = web_site(clients, presence, options["web-origin"], options["web-host"], options["web-request-timeout"])
        fronts += [("--web", d, site) for d in options["web"]]
    if options["irc"]:
        irc = IrcFactory(clients, options["irc-server-name"], channel=options["irc-channel"])
        fronts += [("--irc", d, irc) for d in options["irc"]]
    for option, description, front in fronts:
        try:
            endpoint = descriptors.PausingEndpoint(serverFromString(reactor, description), reactor)
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"msgsvc: bad {option} endpoint {description!r}: {e}") from None
        services.append(_Listener(option, description, endpoint, front))
    services.append(_Settle())
    top = _InOrder()
    for service in services:
        service.setServiceParent(top)
    return top
