"""Every count and gauge of a server, read from where it is kept when Prometheus scrapes:
:class:`Metrics`, a prometheus_client collector, and :func:`registry`.

Nothing here runs on a message's path: the fronts add to plain integers
(:class:`msgsvc.fronts.tally.Tally`), the hub's events are counted by
:class:`~msgsvc.ops.counts.EventCounts`, and the rest (who is online, the
log's size, Redis's link) is read from the state the server keeps anyway.
No metric carries a name or a message's text: labels are fronts, kinds,
codes, outcomes and links, all from fixed sets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred

from msgsvc.fronts.clients import Clients
from msgsvc.fronts.tally import KINDS
from msgsvc.ops.counts import EventCounts
from msgsvc.ops.lag import ReactorLag
from msgsvc.state import State

if TYPE_CHECKING:
    from msgsvc.state.cluster import RedisCluster

#: A front's label, by its name in the hub (tcp: the line protocol, over TCP or TLS).
FRONTS = {"tcp": "line", "web": "web", "irc": "irc"}


class Metrics(Collector):
    """msgsvc's metrics, read from the server's own state each time they are collected."""

    def __init__(
        self, clients: Clients, events: EventCounts, lag: ReactorLag, state: State, node: RedisCluster | None
    ) -> None:
        self._clients = clients
        self._events = events
        self._lag = lag
        self._state = state
        self._node = node
        self._history: int | None = None  # messages in the history, as last read

    def refresh(self) -> Deferred[None]:
        """Read what the state must be asked (the history's size) before a scrape; a failure leaves it out."""

        def read(size: int) -> None:
            self._history = size

        def failed(_: object) -> None:
            self._history = None

        return self._state.history_size().addCallbacks(read, failed)

    def collect(self) -> Iterator[Metric]:
        yield from self._connections()
        yield from self._messages()
        yield from self._limits()
        yield from self._lag.histogram.collect()
        if self._node is not None:
            yield from self._redis(self._node)

    def _connections(self) -> Iterator[Metric]:
        clients, hub = self._clients, self._clients.hub
        tallies = {FRONTS[front]: tally for front, tally in clients.tallies.items()}
        open_now = Counter(FRONTS[c.front] for c in clients.connections)
        accepted = CounterMetricFamily(
            "msgsvc_connections_accepted", "Client connections accepted, by front.", labels=["front"]
        )
        current = GaugeMetricFamily("msgsvc_connections_open", "Client connections open now.", labels=["front"])
        received = CounterMetricFamily(
            "msgsvc_received_bytes", "Bytes read from clients (a WebSocket's: its payloads).", labels=["front"]
        )
        sent = CounterMetricFamily(
            "msgsvc_sent_bytes", "Bytes written to clients, before TLS or WebSocket framing.", labels=["front"]
        )
        for front in FRONTS.values():
            tally = tallies.get(front)
            accepted.add_metric([front], tally.accepted if tally else 0)
            current.add_metric([front], open_now[front])
            received.add_metric([front], tally.bytes_in if tally else 0)
            sent.add_metric([front], tally.bytes_out if tally else 0)
        yield from (accepted, current, received, sent)
        yield GaugeMetricFamily("msgsvc_users_online", "Users online, on every node.", hub.online_count())
        yield GaugeMetricFamily("msgsvc_names", "Names in the username log.", hub.log_size())
        if self._history is not None:
            yield GaugeMetricFamily("msgsvc_history_messages", "Messages the history keeps.", self._history)

    def _messages(self) -> Iterator[Metric]:
        tallies = {FRONTS[front]: tally for front, tally in self._clients.tallies.items()}
        messages = CounterMetricFamily(
            "msgsvc_messages", "Messages sent by this node's clients.", labels=["front", "kind"]
        )
        deliveries = CounterMetricFamily(
            "msgsvc_deliveries", "Users the messages reached, as their senders were told.", labels=["front", "kind"]
        )
        offline = CounterMetricFamily(
            "msgsvc_offline_recipients",
            "Named recipients reported offline: queued (the message waits for them) or not.",
            labels=["front", "kind", "outcome"],
        )
        for front in FRONTS.values():
            tally = tallies.get(front)
            for index, kind in enumerate(KINDS):
                labels = [front, kind.value]
                messages.add_metric(labels, tally.sent[index] if tally else 0)
                deliveries.add_metric(labels, tally.delivered[index] if tally else 0)
                queued = tally.queued[index] if tally else 0
                offline.add_metric([*labels, "queued"], queued)
                offline.add_metric([*labels, "not_queued"], (tally.offline[index] - queued) if tally else 0)
        yield from (messages, deliveries, offline)

    def _limits(self) -> Iterator[Metric]:
        events = self._events
        refusals = CounterMetricFamily("msgsvc_refusals", "Client lines refused, by error code.", labels=["code"])
        for code, count in sorted(events.refusals.items()):
            refusals.add_metric([code], count)
        logins = CounterMetricFamily(
            "msgsvc_logins", "Logins (sessions opened: ok) and logins refused, by refusal.", labels=["outcome"]
        )
        logins.add_metric(["ok"], events.logins["ok"])
        for outcome, count in sorted(events.logins.items()):
            if outcome != "ok":
                logins.add_metric([outcome], count)
        dropped = CounterMetricFamily(
            "msgsvc_clients_dropped", "Clients cut off to protect the others, by the limit passed.", labels=["limit"]
        )
        for limit, count in sorted(events.dropped.items()):
            dropped.add_metric([limit], count)
        slowed = CounterMetricFamily(
            "msgsvc_lines_slowed", "Lines held back for their sender's rate (flood slow-downs).", labels=["front"]
        )
        tallies = {FRONTS[front]: tally for front, tally in self._clients.tallies.items()}
        for front in FRONTS.values():
            tally = tallies.get(front)
            slowed.add_metric([front], tally.slowed if tally else 0)
        waits = CounterMetricFamily(
            "msgsvc_login_waits", "Logins made to wait after failed passwords.", self._clients.accounts.waits
        )
        yield from (refusals, logins, dropped, slowed, waits)

    @staticmethod
    def _redis(node: RedisCluster) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "msgsvc_redis_connected", "1 while this connection to Redis is usable.", labels=["link"]
        )
        connections = CounterMetricFamily(
            "msgsvc_redis_connections",
            "Usable connections made to Redis: the first, then one each reconnection.",
            labels=["link"],
        )
        for link, connection in node.links().items():
            connected.add_metric([link], int(connection.connected))
            connections.add_metric([link], connection.connections)
        yield from (connected, connections)
        yield GaugeMetricFamily("msgsvc_redis_lease_held", "1 while this node holds its lease.", int(node.holds_lease()))
        if node.rtt is not None:
            yield GaugeMetricFamily(
                "msgsvc_redis_rtt_seconds", "Round-trip time of the last renewal of the lease.", node.rtt
            )


def registry(metrics: Metrics) -> CollectorRegistry:
    """A registry of ``metrics`` and the process's own (CPU, memory, descriptors, garbage collection)."""
    collected = CollectorRegistry()
    collected.register(metrics)
    ProcessCollector(registry=collected)
    PlatformCollector(registry=collected)
    GCCollector(registry=collected)
    return collected
