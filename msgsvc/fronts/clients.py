"""The registry every front of one server shares: :class:`Clients`.

It holds what the fronts (the line front over TCP, the WebSocket page,
IRC) use alike: the hub, the accounts, the limits, the clock, the outbox
and the per-address budgets; and it counts every connection of all of
them by address, so ``--max-per-ip`` counts them together, and says
goodbye to them all when the server stops.  It is built once (by
:mod:`msgsvc.tap`) and handed to each front.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Protocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime

from msgsvc import wire
from msgsvc.auth.accounts import Accounts
from msgsvc.fronts.outbox import Outbox
from msgsvc.fronts.receiver import IConnection
from msgsvc.fronts.tally import Tally
from msgsvc.hub.core import Hub
from msgsvc.ratelimit import AddressRate, Rate


def host_of(address: IAddress) -> str:
    """What the per-address limits count a peer by: its IPv4 address, or its IPv6 /64 (one host is
    given a whole /64, and would otherwise get each limit once per address in it)."""
    if isinstance(address, IPv4Address):
        return address.host
    if isinstance(address, IPv6Address):
        ip = ipaddress.IPv6Address(address.host.partition("%")[0])
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(address)


def describe_peer(address: IAddress) -> str:
    """``host:port`` (``[host]:port`` for IPv6), or the address as it prints."""
    if isinstance(address, IPv6Address):
        return f"[{address.host}]:{address.port}"
    if isinstance(address, IPv4Address):
        return f"{address.host}:{address.port}"
    return str(address)


class Connection(Protocol):
    """What the registry uses of a front's connection (a :class:`msgsvc.fronts.session.Session`)."""

    #: Its connection was counted against its address before it began (a WebSocket's, since its HTTP request).
    counted: bool
    front: str  # tcp, web or irc
    transport: IConnection

    def bye(self, reason: str) -> None:
        """Say why, then close the connection once what is queued is written."""


class Clients:
    """What the fronts of one server share, and every connection of all of them, counted by address."""

    def __init__(self, hub: Hub, accounts: Accounts, clock: IReactorTime, limits: wire.Limits) -> None:
        self.hub = hub
        self.accounts = accounts
        self.limits = limits
        self.clock = clock
        self.outbox = Outbox(clock)
        self.connections: set[Connection] = set()
        self._per_host: Counter[str] = Counter()
        #: bytes of lines read, by address: every connection from one address draws on one budget
        self.bytes_in = AddressRate(Rate(limits.address_byte_rate * 60, limits.address_byte_burst), clock)
        #: messages left waiting for offline users, by the sender's address
        self.queued_from = AddressRate(Rate(limits.queue_per_minute, limits.queue_burst), clock)
        self.pings = 0  # the last PING token handed out
        #: each front's counts, by its name (tcp, web, irc), made as its first connection comes
        self.tallies: dict[str, Tally] = {}
        self._all_gone: Deferred[None] | None = None

    def tally(self, front: str) -> Tally:
        """The counts of ``front`` (tcp, web or irc): made on its first call."""
        tally = self.tallies.get(front)
        if tally is None:
            tally = self.tallies[front] = Tally()
        return tally

    def connection_made(self, connection: Connection) -> bool:
        """Count ``connection`` (unless it is :attr:`~Connection.counted`); False if its address
        already has its share."""
        self.connections.add(connection)
        return connection.counted or self.admit(connection.transport.getPeer())

    def admit(self, address: IAddress) -> bool:
        """Count a connection from ``address``; False if the address already has its share.

        It is counted either way, until :meth:`release` (a session's, at :meth:`connection_lost`).
        """
        host = host_of(address)
        self._per_host[host] += 1
        return self._per_host[host] <= self.limits.max_per_ip

    def release(self, address: IAddress) -> None:
        """A connection from ``address`` that :meth:`admit` counted has closed."""
        host = host_of(address)
        self._per_host[host] -= 1
        if not self._per_host[host]:
            del self._per_host[host]

    def connection_lost(self, connection: Connection) -> None:
        if connection in self.connections:
            self.release(connection.transport.getPeer())
        self.connections.discard(connection)
        if not self.connections and self._all_gone is not None:
            all_gone, self._all_gone = self._all_gone, None
            all_gone.callback(None)

    def disconnect_all(self, reason: str, grace: float = 5.0) -> Deferred[None]:
        """Say goodbye with ``reason`` to every client and close; abort any still open after ``grace`` s."""
        done: Deferred[None] = Deferred()
        if not self.connections:
            done.callback(None)
            return done
        self._all_gone = done
        for connection in list(self.connections):
            connection.bye(reason)
        deadline = self.clock.callLater(grace, self._abort_all)

        def in_time(result: None) -> None:
            if deadline.active():
                deadline.cancel()

        return done.addCallback(in_time)

    def _abort_all(self) -> None:
        for connection in list(self.connections):
            connection.transport.abortConnection()
