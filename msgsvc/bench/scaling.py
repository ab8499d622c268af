"""``python -m msgsvc.bench scaling``: one server, one node on Redis, and two nodes, on the same loads.

Each load runs on msgsvc alone (SQLite), on one node of a service on
Redis, and on two nodes with the clients spread over them in turn (so
about half of all unicasts cross from one node to the other through
Redis, and a broadcast reaches both nodes' users through one publish).
The deployments take turns, as ``bench suite``'s servers do.  Besides
the rates, the table gives what each delivery cost the nodes and Redis
in CPU time: with a core for every node and one for Redis, that cost,
not this machine's cores, is what bounds the service.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence

from msgsvc.bench import report
from msgsvc.bench.report import Row
from msgsvc.bench.run import Measurement, Scenario, measure
from msgsvc.bench.servers import MSGSVC_REDIS

#: (server, nodes) in the order they take turns
DEPLOYMENTS = (("msgsvc", 1), (MSGSVC_REDIS, 1), (MSGSVC_REDIS, 2))


def run(
    duration: float,
    repeat: int,
    clients: int = 1000,
    rate: float | None = None,
    progress: Callable[[Measurement], None] = lambda m: None,
    measure_: Callable[[Scenario], Measurement] = measure,
) -> list[Measurement]:
    """Unicast between ``clients`` and broadcast to as many, on every deployment, ``repeat`` times in
    turn, at ``rate`` messages/s (None: as fast as it goes); a failed run is told and left out."""
    results = []
    for workload, size in (("unicast", clients), ("broadcast", clients + 1)):
        for _ in range(repeat):
            for server, nodes in DEPLOYMENTS:
                scenario = Scenario(server, workload, size, duration, rate, nodes=nodes)
                try:
                    measurement = measure_(scenario)
                except Exception as e:
                    print(f"{scenario}: the run failed, left out: {e}", file=sys.stderr)
                    continue
                results.append(measurement)
                progress(measurement)
    return results


def _per_delivery(cpu: Callable[[Measurement], float]) -> Callable[[Measurement], float]:
    """CPU microseconds a delivery."""
    return lambda m: cpu(m) / m.delivered * 1e6 if m.delivered else 0.0


#: the table's figures: (title, figure, format)
FIGURES: tuple[tuple[str, Callable[[Measurement], float], str], ...] = (
    ("delivered/s", lambda m: m.delivered_rate, "{:,.0f}"),
    ("p50 ms", lambda m: m.latency.percentile(50) / 1000, "{:.2f}"),
    ("p99 ms", lambda m: m.latency.percentile(99) / 1000, "{:.1f}"),
    ("node cores", lambda m: m.server_cores, "{:.2f}"),
    ("Redis cores", lambda m: m.store_cores, "{:.2f}"),
    ("node us/dlv", _per_delivery(lambda m: m.server_cpu), "{:.2f}"),
    ("Redis us/dlv", _per_delivery(lambda m: m.store_cpu), "{:.2f}"),
    ("load share", lambda m: m.load_share, "{:.0%}"),
    ("lost", lambda m: m.lost, "{:.0f}"),
)


def table(results: Sequence[Measurement]) -> str:
    """An RST simple table: a row a deployment and load, each figure's median and range."""
    titles = ["deployment", "workload", "clients", "runs", *(t for t, _, _ in FIGURES)]
    body = [
        [row.server, row.scenario.workload, str(row.scenario.clients), str(len(row.runs))]
        + [report.cell(row, figure, form) for _, figure, form in FIGURES]
        for row in report.rows(results)
    ]
    return report.rst_table(titles, body, {0, 1})


def comparisons(results: Sequence[Measurement]) -> list[str]:
    """Each deployment's delivered rate over msgsvc alone's, load by load (medians of runs paired in turn)."""
    lines = []
    by_load: dict[tuple[str, int], dict[str, Row]] = {}
    for row in report.rows(results):
        by_load.setdefault((row.scenario.workload, row.scenario.clients), {})[row.server] = row
    for (workload, clients), deployments in by_load.items():
        alone = deployments.get("msgsvc")
        if alone is None:
            continue
        for name, row in deployments.items():
            if name != "msgsvc":
                pairs = [
                    a.delivered_rate / b.delivered_rate
                    for a, b in zip(row.runs, alone.runs, strict=False)
                    if b.delivered_rate
                ]
                if pairs:
                    lines.append(
                        f"{workload} ({clients} clients): {name}/msgsvc = {statistics.median(pairs):.2f}"
                        f" ({min(pairs):.2f}-{max(pairs):.2f})"
                    )
    return lines
