"""One measured run: a fresh server, load processes, and the figures they report."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from msgsvc.bench import cload, servers
from msgsvc.bench.scrape import Scraper
from msgsvc.bench.stats import LatencyHistogram
from msgsvc.bench.worker import GROUP, WORKLOADS, Plan


#: the variants ``bench run`` measures side by side (``--history on --history off``): a :class:`Scenario` field,
#: its default, and the servers that have it
VARIANTS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "history": (True, servers.HISTORIES),
    "metrics": (False, servers.MSGSVCS),
    "accounts": (False, servers.ACCOUNTS),
}
#: seconds a load process may take to log a client in to its account (argon2id: ~50 ms of the server's core)
LOGIN_SECONDS = 0.5


@dataclass(frozen=True)
class Scenario:
    server: str
    workload: str
    clients: int  # connect: clients registering at once
    duration: float = 5.0
    rate: float | None = None  # messages/s offered in all; None: as fast as the window allows
    window: int = 10000  # deliveries in flight at most, when rate is None
    recipients: int = 3
    size: int = 32
    count: int | None = None
    workers: int = 2
    warmup: float = 2.0  # seconds of the same load before the measured run (not for connect, idle)
    load: str = "c"  # "c": the C load process where it does the job (msgsvc.bench.cload), else Python
    nodes: int = 1  # msgsvc-redis: the nodes, each client on one of them in turn
    history: bool = True  # msgsvc (Ergo) keeps its history (False: ``--history-days 0``; Ergo's off)
    metrics: bool = False  # msgsvc serves ``--metrics``, scraped during the measured load (msgsvc.bench.scrape)
    accounts: bool = False  # every client's name protected (seeded), logged in to with its password

    def varied(self) -> list[str]:
        """The variants not at their default: ``["history off", "metrics on"]``."""
        values = {name: getattr(self, name) for name in VARIANTS}
        return [
            f"{name} {'on' if value else 'off'}" for name, value in values.items() if value != VARIANTS[name][0]
        ]

    @property
    def label(self) -> str:
        """The server, its nodes if several, and its variants not at their default:
        ``msgsvc-redis x2 history off metrics on``."""
        label = self.server if self.nodes == 1 else f"{self.server} x{self.nodes}"
        return " ".join([label, *self.varied()])

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}")
        if self.load not in ("c", "python"):
            raise ValueError("load must be c or python")
        if self.server not in servers.SERVERS:
            raise ValueError(f"server must be one of {', '.join(servers.SERVERS)}")
        if self.nodes < 1 or (self.nodes > 1 and self.server != servers.MSGSVC_REDIS):
            raise ValueError(f"nodes: 1, or several for {servers.MSGSVC_REDIS}")
        for name, (default, having) in VARIANTS.items():
            if getattr(self, name) != default and self.server not in having:
                raise ValueError(f"{name} {'on' if not default else 'off'} is for {', '.join(having)}")
        if self.accounts and self.workload == "connect":
            raise ValueError("accounts on is for the workloads that log in once, not connect")
        if self.workload in ("unicast", "multicast", *GROUP) and self.clients < self.workers * (
            self.recipients + 1
        ):
            raise ValueError("too few clients for the workers and recipients")


@dataclass
class Measurement:
    scenario: Scenario
    connected: int = 0
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    seconds: float = 0.0  # from go to the last delivery
    ramp_seconds: float = 0.0  # for every client to connect and register
    server_cpu: float = 0.0  # seconds, every node
    store_cpu: float = 0.0  # seconds: the Redis server's, for msgsvc-redis
    load_cpu: float = 0.0  # seconds, all load processes
    load_cores: int = 1  # the cores the load processes had between them
    load: str = "python"  # what the load processes were: c or python
    baseline_rss_kib: int = 0  # the server's, before any client
    ready_rss_kib: int = 0  # with every client registered
    peak_rss_kib: int = 0
    lost_connections: int = 0
    scrapes: int = 0  # of /metrics during the measured load (``metrics`` on)
    refusals: list[str] = field(default_factory=list)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def delivered_rate(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0

    @property
    def server_cores(self) -> float:
        """The server's CPU time over the run's time: 1.0 is one core busy throughout."""
        return self.server_cpu / self.seconds if self.seconds else 0.0

    @property
    def store_cores(self) -> float:
        return self.store_cpu / self.seconds if self.seconds else 0.0

    @property
    def load_share(self) -> float:
        """How busy the load processes kept their cores over the run: near 1.0, they were the limit."""
        return self.load_cpu / (self.seconds * self.load_cores) if self.seconds else 0.0

    @property
    def rss_per_client_kib(self) -> float:
        return (self.ready_rss_kib - self.baseline_rss_kib) / self.connected if self.connected else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = self.latency.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        data = dict(data)
        data["scenario"] = Scenario(**data["scenario"])
        data["latency"] = LatencyHistogram.from_json(data["latency"])
        return cls(**data)


class WorkerProcess:
    """A load process and the JSON lines it answers with."""

    def __init__(self, plan: Plan, cpus: set[int] | None, python: str, c_load: str | None = None) -> None:
        """Run ``plan`` in the Python worker, or in the C load program ``c_load`` (which takes it as arguments)."""
        affinity = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        command = [c_load, *cload.arguments(plan)] if c_load else [python, "-m", "msgsvc.bench.worker"]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            preexec_fn=affinity,
            env=servers.child_environment(),
        )
        self._buffer = b""
        if not c_load:
            self.tell(json.dumps(plan.__dict__))

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def answer(self, key: str, timeout: float) -> Any:
        """The value of the next message, which must hold ``key``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise TimeoutError(f"a load process said nothing for {timeout:g} s (waiting for {key})")
                chunk = os.read(self.process.stdout.fileno(), 1 << 20)
                if not chunk:
                    raise RuntimeError(f"a load process exited with {self.process.wait()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        message = json.loads(line)
        if key not in message:
            raise RuntimeError(f"a load process failed: {message.get('error', message)}")
        return message[key]

    def quit(self) -> None:
        try:
            self.tell("quit")
            self.process.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


def _cpus(nodes: int = 1) -> tuple[list[int | None], set[int] | None]:
    """A core for each node (and then for Redis, if there is one to spare), and the load's cores.

    The load keeps at least one core of its own; where that leaves too few, nodes share.  Redis
    gets a core of its own only if one is left after the load's; else it runs on the load's.
    """
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return [None] * nodes, None
    if len(available) <= nodes:  # a node a core, the load and Redis on any
        return [available[i] for i in range(nodes)], None
    mine = available[: min(nodes, len(available) - 1)]
    cores: list[int | None] = [mine[i % len(mine)] for i in range(nodes)]
    rest = available[len(mine) :]
    if len(rest) >= 2:
        cores.append(rest.pop(0))
    return cores, set(rest)


def plans(scenario: Scenario, ports: list[int]) -> list[Plan]:
    """What each load process does: its share of the clients (by name), of the rate and of the window."""
    s = scenario
    per = [s.clients // s.workers + (1 if w < s.clients % s.workers else 0) for w in range(s.workers)]
    plans = []
    for w, share in enumerate(per):
        pool = share * 2 if s.workload == "connect" else share  # churn: a name rests before reuse
        group = s.workload in GROUP
        rate = s.rate
        if rate is not None and not group:
            rate = rate / s.workers
        plans.append(
            Plan(
                server=s.server,
                ports=ports,
                names=[f"b{w}u{i}" for i in range(pool)],
                workload=s.workload,
                duration=s.duration,
                rate=rate,
                window=s.window if group else max(1, s.window // s.workers),
                count=None if s.count is None else (s.count if group else -(-s.count // s.workers)),
                recipients=s.recipients,
                size=s.size,
                broadcast_sender=group and w == 0,
                receivers=s.clients - 1,
                warmup=s.warmup,
                password=servers.ACCOUNT_PASSWORD if s.accounts else None,
            )
        )
    return plans


def measure(scenario: Scenario, load_python: str = sys.executable, ready_timeout: float = 240) -> Measurement:
    """Start a fresh server, load it as ``scenario`` says, and stop it.

    ``load_python`` runs the load processes: PyPy, with Twisted installed,
    loads a server about three times as hard as CPython from one core.
    """
    server_cpus, load_cpus = _cpus(scenario.nodes)
    result = Measurement(scenario, load_cores=len(load_cpus) if load_cpus else os.cpu_count() or 1)
    with tempfile.TemporaryDirectory(prefix="msgsvc-bench-") as tmp:
        names = [n for p in plans(scenario, [0]) for n in p.names]
        server = servers.deploy(
            scenario.server,
            Path(tmp),
            names,
            server_cpus,
            scenario.nodes,
            scenario.history,
            scenario.metrics,
            scenario.accounts,
        )
        workers: list[WorkerProcess] = []
        try:
            result.baseline_rss_kib = server.rss_kib()
            port_plans = plans(scenario, server.ports)
            c_load = cload.build() if scenario.load == "c" and all(map(cload.handles, port_plans)) else None
            result.load = "c" if c_load else "python"

            def registered(worker: WorkerProcess, plan: Plan) -> int:
                """How many of the worker's clients registered, once all have (else RuntimeError)."""
                logins = len(plan.names) * LOGIN_SECONDS if plan.password else 0
                connected, refusals = worker.answer("ready", ready_timeout + logins)
                if scenario.workload != "connect" and connected < len(plan.names):
                    raise RuntimeError(
                        f"only {connected} of {len(plan.names)} clients of a load process registered "
                        f"on {scenario.server}: {'; '.join(refusals)}\n{server.output()}"
                    )
                return int(connected)

            ramp_start = time.monotonic()
            for plan in port_plans:
                workers.append(WorkerProcess(plan, load_cpus, load_python, c_load))
                if scenario.accounts:  # one process at a time (worker.LOGINS_AT_ONCE): no login waits
                    result.connected += registered(workers[-1], plan)
            if not scenario.accounts:
                result.connected += sum(map(registered, workers, port_plans))
            result.ramp_seconds = time.monotonic() - ramp_start
            time.sleep(0.5)  # let the server settle after the registrations
            result.ready_rss_kib = server.rss_kib()
            for worker in workers:
                worker.tell("warm")
            for worker in workers:
                worker.answer("warm", scenario.warmup + 120)
            cpu_before, store_before = server.cpu_seconds(), server.store_cpu_seconds()
            scraper = Scraper(server.metrics_urls)  # none, with metrics off
            scraper.start()
            go = time.monotonic_ns()
            for worker in workers:
                worker.tell("go")
            reports = [w.answer("result", scenario.duration + 120) for w in workers]
            result.scrapes = scraper.stop()
            result.server_cpu = server.cpu_seconds() - cpu_before
            result.store_cpu = server.store_cpu_seconds() - store_before
            result.peak_rss_kib = server.peak_rss_kib()
        finally:
            for worker in workers:
                worker.quit()
            server.stop()
    for report in reports:
        result.sent += report["sent"]
        result.expected += report["expected"]
        result.delivered += report["delivered"]
        result.load_cpu += report["cpu"]
        result.lost_connections += report["lost_connections"]
        result.refusals += report["refusals"]
        result.latency.merge(LatencyHistogram.from_json(report["latency"]))
    if scenario.workload == "connect":
        result.connected = scenario.clients
    last = max((r["last_delivery_ns"] for r in reports), default=0)
    result.seconds = (last - go) / 1e9 if last > go else scenario.duration
    return result
