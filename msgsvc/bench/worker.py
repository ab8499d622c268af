"""A load process: ``python -m msgsvc.bench.worker``, steered by JSON lines on stdin.

The parent (:mod:`msgsvc.bench.run`) writes the :class:`Plan` as one JSON
line; the worker connects and registers its clients and answers
``{"ready": ...}``; on ``warm`` it drives the workload unmeasured for the
plan's warm-up time and answers ``{"warm": true}``; on ``go`` it drives
the workload, then drains and answers ``{"result": ...}``; on ``quit`` it
closes its connections and exits.
Messages go between this worker's own clients (the server cannot tell),
so each worker knows how many deliveries to expect; a broadcast's sender
is in worker 0 and reaches every worker's clients.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITransport
from twisted.internet.task import LoopingCall, deferLater
from twisted.protocols.basic import LineReceiver

from msgsvc.auth.throttle import LoginThrottle
from msgsvc.bench import dialects, servers
from msgsvc.bench.loadclient import LoadClient, Tally
from msgsvc.bench.stats import LatencyHistogram
from msgsvc.bench.websocket import WebSocketLines

WORKLOADS = ("unicast", "multicast", "broadcast", "room", "connect", "idle")
#: the workloads of a group: each message goes to every client but its sender, from the first worker
GROUP = ("broadcast", "room")
TICK = 0.001  # seconds between sending rounds
MAX_PER_TICK = 5000  # messages in one sending round, at most
CONNECTING_AT_ONCE = 25  # a few, so that no server's accept queue overflows (ngIRCd's is short)
#: logins with a password under way at once, from all the load processes (they log in one after another): the
#: server's throttle counts an address's logins being checked as failures, and past these a login waits
LOGINS_AT_ONCE = LoginThrottle.FREE
QUIET = 1.0  # seconds without a delivery after which a drain with nothing left to expect ends


@dataclass
class Plan:
    """What one worker does."""

    server: str  # msgsvc, msgsvc-web (over WebSocket), words or ngircd: the dialect
    ports: list[int]  # the server's, or its nodes': name i connects to ports[i % len(ports)]
    names: list[str]
    workload: str
    duration: float  # seconds of sending
    host: str = "127.0.0.1"
    rate: float | None = None  # messages/s from this worker; None: as fast as the window allows
    window: int = 10000  # deliveries in flight at most, when rate is None
    count: int | None = None  # messages to send, at most
    recipients: int = 3  # of a multicast
    size: int = 32  # bytes of message text
    broadcast_sender: bool = False  # this worker sends the broadcast (its first name) or to the room (each name)
    receivers: int = 0  # all clients that get a broadcast or a message to the room, in every worker
    drain: float = 15.0  # seconds to wait for what is still in flight
    warmup: float = 0.0  # seconds of load before the measured run, not counted
    password: str | None = None  # msgsvc: every name's account password (its load logs in with it)


@dataclass
class Result:
    connected: int = 0
    sent: int = 0  # messages (connect: registrations started)
    expected: int = 0  # deliveries that the messages sent call for
    delivered: int = 0  # deliveries received (connect: registrations completed)
    start_ns: int = 0
    last_delivery_ns: int = 0
    cpu: float = 0.0  # this process's CPU seconds from go to the end of the drain
    lost_connections: int = 0
    refusals: list[str] = field(default_factory=list)
    latency: dict[str, Any] = field(default_factory=dict)


class Worker:
    def __init__(self, reactor: Any, plan: Plan, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._reactor = reactor
        self.plan = plan
        self._clock = clock
        self._dialect = dialects.make(plan.server, rooms=plan.workload == "room", account=plan.password)
        self.tally = Tally()
        self.clients: list[LoadClient] = []
        self.result = Result()
        self._random = random.Random(os.getpid())
        self._sending: LoopingCall | None = None
        self._stopped: Deferred[None] = Deferred()
        self._duration = plan.duration
        self._cpu_at_go = 0.0
        self._ports = {name: plan.ports[i % len(plan.ports)] for i, name in enumerate(plan.names)}

    # -- setting up --------------------------------------------------------

    async def _client(self, name: str) -> LoadClient:
        client = LoadClient(name, self._dialect, self.tally, self._clock)
        port = self._ports[name]
        endpoint = TCP4ClientEndpoint(self._reactor, self.plan.host, port, timeout=60)
        if self.plan.server == servers.MSGSVC_WEB:
            await connectProtocol(endpoint, WebSocketLines(client, f"{self.plan.host}:{port}"))
        else:
            await connectProtocol(endpoint, client)
        await client.registered
        if self.plan.workload == "broadcast":
            await client.join(self._dialect.join_group())
        elif self.plan.workload == "room":
            await client.join(self._dialect.join_room())
        return client

    async def connect_all(self) -> int:
        """Connect and register every name (a few at a time); how many made it."""
        if self.plan.workload == "connect":
            return 0
        limit = DeferredSemaphore(LOGINS_AT_ONCE if self.plan.password else CONNECTING_AT_ONCE)
        attempts = [limit.run(self._client, name) for name in self.plan.names]
        outcomes = await gatherResults([d.addErrback(lambda f: f.value) for d in attempts])
        self.clients = [c for c in outcomes if isinstance(c, LoadClient)]
        failures = [o for o in outcomes if not isinstance(o, LoadClient)]
        self.tally.refusals.extend(str(e) for e in failures[:5])
        self.result.connected = len(self.clients)
        return len(self.clients)

    # -- the measured phase -------------------------------------------------

    async def run(self) -> Result:
        """Drive the workload for the plan's duration, then wait for what is in flight."""
        self._cpu_at_go = _cpu()
        self.tally.delivered = 0
        self.result.start_ns = self._clock()
        if self.plan.workload == "connect":
            await self._churn()
        elif self.plan.workload == "idle":
            await deferLater(self._reactor, self.plan.duration)
        else:
            await self._drive(self.plan.duration)
        result = self.result
        result.delivered = self.tally.delivered
        result.last_delivery_ns = self.tally.last_delivery_ns
        result.cpu = _cpu() - self._cpu_at_go
        result.lost_connections = self.tally.lost_connections
        result.refusals = self.tally.refusals[:5]
        result.latency = self.tally.latency.to_json()
        return result

    async def warm_up(self) -> None:
        """Drive the workload for the plan's warm-up time, then forget it: caches and JITs are warm."""
        if self.plan.workload in ("connect", "idle") or not self.plan.warmup:
            return
        await self._drive(self.plan.warmup)
        self.result = Result(connected=self.result.connected)
        self.tally.delivered = self.tally.last_delivery_ns = 0
        self.tally.latency = LatencyHistogram()

    async def _drive(self, duration: float) -> None:
        """Send for ``duration`` seconds, then wait for what is in flight."""
        self.result.start_ns = self._clock()
        self._duration = duration
        self._stopped = Deferred()
        self._sending = LoopingCall(self._tick)
        self._sending.clock = self._reactor
        self._sending.start(TICK).addErrback(self._stopped.errback)
        await self._stopped
        await self._drain()

    def _tick(self) -> None:
        plan, result = self.plan, self.result
        now = self._clock()
        elapsed = (now - result.start_ns) / 1e9
        left = plan.count - result.sent if plan.count is not None else MAX_PER_TICK
        if elapsed >= self._duration or left <= 0:
            assert self._sending is not None
            self._sending.stop()
            self._stopped.callback(None)
            return
        if plan.rate is None:
            due = plan.window - self._in_flight()
            if plan.workload != "unicast":  # in messages, not deliveries
                due //= plan.receivers if plan.workload in GROUP else plan.recipients
        else:
            due = int(plan.rate * elapsed) - result.sent
        due = min(due, MAX_PER_TICK, left)
        if due > 0:
            self._send(due, dialects.stamp(now, plan.size))

    def _in_flight(self) -> int:
        if self.plan.workload in GROUP:
            local = len(self.clients) - 1  # the sender gets no copy
            behind = self.result.sent - (self.tally.delivered // local if local else self.result.sent)
            return behind * self.plan.receivers
        return self.result.expected - self.tally.delivered

    def _send(self, count: int, text: bytes) -> None:
        plan, clients, dialect = self.plan, self.clients, self._dialect
        if plan.workload == "broadcast":
            if plan.broadcast_sender:
                clients[0].transport.write(dialect.broadcast(text) * count)
                self.result.sent += count
                self.result.expected += count * plan.receivers
            return
        if plan.workload == "room":
            if plan.broadcast_sender:
                by: defaultdict[LoadClient, int] = defaultdict(int)
                for _ in range(count):
                    by[clients[self._random.randrange(len(clients))]] += 1
                for client, n in by.items():
                    client.transport.write(dialect.to_room(text) * n)
                self.result.sent += count
                self.result.expected += count * plan.receivers
            return
        batches: defaultdict[LoadClient, list[bytes]] = defaultdict(list)
        others = len(clients) - 1
        k = 1 if plan.workload == "unicast" else plan.recipients
        randrange, sample = self._random.randrange, self._random.sample
        for _ in range(count):
            sender = randrange(len(clients))
            if k == 1:
                picks = [randrange(others)]
            else:
                picks = sample(range(others), k)
            names = [clients[i + (i >= sender)].name for i in picks]  # anyone but the sender
            batches[clients[sender]].append(dialect.send(names, text))
        for client, lines in batches.items():
            client.transport.write(b"".join(lines))
        self.result.sent += count
        self.result.expected += count * k

    async def _drain(self) -> None:
        """Wait until every expected delivery came, or none came for a while, or the drain time is up."""
        deadline = self._clock() + int(self.plan.drain * 1e9)
        seen, quiet_since = -1, self._clock()
        while self._clock() < deadline:
            if self.result.expected and self.tally.delivered >= self._local_expected():
                return
            if self.tally.delivered != seen:
                seen, quiet_since = self.tally.delivered, self._clock()
            elif not self._local_expected() and self._clock() - quiet_since > QUIET * 1e9:
                return
            await deferLater(self._reactor, 0.01)

    def _local_expected(self) -> int:
        """Deliveries this worker's own clients should receive."""
        if self.plan.workload in GROUP:
            return self.result.sent * (len(self.clients) - 1) if self.plan.broadcast_sender else 0
        return self.result.expected

    async def _churn(self) -> None:
        """Registration churn: a few clients at a time connect, register, quit, and again."""
        free = deque(self.plan.names)
        end = self.result.start_ns + int(self.plan.duration * 1e9)
        loops = [Deferred.fromCoroutine(self._churn_loop(free, end)) for _ in range(max(1, len(free) // 2))]
        await gatherResults(loops)

    async def _churn_loop(self, free: deque[str], end: int) -> None:
        while self._clock() < end and free:
            name = free.popleft()
            self.result.sent += 1
            self.result.expected += 1
            began = self._clock()
            try:
                client = await self._client(name)
            except Exception as e:  # refused or cut off: counted as lost
                self.tally.refusals.append(str(e))
                free.append(name)
                continue
            self.tally.latency.record((self._clock() - began) // 1000)
            self.tally.delivered += 1
            self.tally.last_delivery_ns = self._clock()
            client.quit()
            await client.closed  # the server has let the name go
            free.append(name)

    def close(self) -> None:
        for client in self.clients:
            client.quitting = True
            client.transport.abortConnection()


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


class Control(LineReceiver):
    """The worker's side of the conversation with its parent, on stdin and stdout."""

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024 * 1024
    transport: ITransport

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self.worker: Worker | None = None

    def say(self, **message: Any) -> None:
        self.transport.write(json.dumps(message).encode() + b"\n")

    def lineReceived(self, line: bytes) -> None:
        if self.worker is None:
            self.worker = Worker(self._reactor, Plan(**json.loads(line)))
            Deferred.fromCoroutine(self.worker.connect_all()).addCallbacks(
                lambda n: self.say(ready=[n, self.worker.tally.refusals[:5]]), self._failed
            )
        elif line == b"warm":
            Deferred.fromCoroutine(self.worker.warm_up()).addCallbacks(
                lambda _: self.say(warm=True), self._failed
            )
        elif line == b"go":
            Deferred.fromCoroutine(self.worker.run()).addCallbacks(
                lambda result: self.say(result=asdict(result)), self._failed
            )
        elif line == b"quit":
            self.worker.close()
            self._reactor.callLater(0.2, self._reactor.stop)

    def _failed(self, failure: Any) -> None:
        self.say(error=failure.getTraceback())

    def connectionLost(self, reason: Any = None) -> None:
        if self._reactor.running:
            self._reactor.stop()


def main() -> None:
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO

    StandardIO(Control(reactor), reactor=reactor)
    reactor.run()


if __name__ == "__main__":
    main()
