"""The standard set of runs behind docs/performance.rst, its target checks, and its plot."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from msgsvc.bench.run import Measurement, Scenario, measure

#: clients of the unicast runs whose rate and p99 are plotted
SWEEP = (10, 100, 1000, 5000)
BROADCAST_RECEIVERS = 1000
IDLE_CLIENTS = 10_000


def standard(
    servers: Sequence[str],
    duration: float,
    load_python: str,
    progress: Callable[[Measurement], None] = lambda m: None,
    latency_python: str = sys.executable,
) -> list[Measurement]:
    """Every workload on every server; the latency runs at half that server's own peak.

    The runs at a set rate use ``latency_python`` for their load: a PyPy
    load stalls now and then, which shows in every server's p99 (seen:
    5 ms, after a warm-up, where CPython measured 1 ms), so the peaks may
    use PyPy and the latencies do not.
    """
    results: list[Measurement] = []

    def run(server: str, **scenario: object) -> Measurement:
        python = load_python if scenario.get("rate") is None else latency_python
        measurement = measure(Scenario(server=server, duration=duration, **scenario), python)  # type: ignore[arg-type]
        results.append(measurement)
        progress(measurement)
        return measurement

    for server in servers:
        for clients in SWEEP:
            peak = run(server, workload="unicast", clients=clients)
            run(server, workload="unicast", clients=clients, rate=round(peak.delivered_rate / 2))
        run(server, workload="multicast", clients=1000, recipients=5)
        receivers = BROADCAST_RECEIVERS
        peak = run(server, workload="broadcast", clients=receivers + 1)
        run(
            server,
            workload="broadcast",
            clients=receivers + 1,
            rate=round(peak.delivered_rate / receivers / 2),
        )
        run(server, workload="connect", clients=50)
        run(server, workload="idle", clients=IDLE_CLIENTS)
    return results


def _find(
    results: Sequence[Measurement], server: str, workload: str, clients: int, peak: bool
) -> Measurement | None:
    for m in results:
        s = m.scenario
        if (s.server, s.workload, s.clients, s.rate is None) == (server, workload, clients, peak):
            return m
    return None


def targets(results: Sequence[Measurement]) -> list[str]:
    """The issue's targets for msgsvc, each with the figure measured and whether it is met."""
    lines = []

    def check(what: str, figure: str, met: bool) -> None:
        lines.append(f"{'met   ' if met else 'MISSED'}  {what}: {figure}")

    idle = _find(results, "msgsvc", "idle", IDLE_CLIENTS, True)
    if idle is not None:
        check(
            f"{IDLE_CLIENTS:,} clients held",
            f"{idle.connected:,} registered, {idle.lost_connections} lost",
            idle.connected == IDLE_CLIENTS and not idle.lost_connections,
        )
        check("< 10 KiB per idle client", f"{idle.rss_per_client_kib:.1f} KiB", idle.rss_per_client_kib < 10)
    unicast = _find(results, "msgsvc", "unicast", 1000, True)
    if unicast is not None:
        check(
            "unicast >= 50,000 msg/s (1,000 clients)",
            f"{unicast.delivered_rate:,.0f}",
            unicast.delivered_rate >= 50_000,
        )
    broadcast = _find(results, "msgsvc", "broadcast", BROADCAST_RECEIVERS + 1, True)
    if broadcast is not None:
        check(
            "broadcast to 1,000 >= 300,000 deliveries/s",
            f"{broadcast.delivered_rate:,.0f}",
            broadcast.delivered_rate >= 300_000,
        )
    half = _find(results, "msgsvc", "unicast", 1000, False)
    if half is not None:
        p99 = half.latency.percentile(99) / 1000
        check(
            "unicast p99 < 5 ms at half the peak rate",
            f"{p99:.2f} ms at {half.scenario.rate:,.0f}/s",
            p99 < 5,
        )
    for m in results:
        if m.lost:
            check("no message lost", f"{m.lost} lost in {m.scenario}", False)
    return lines


def plot(results: Sequence[Measurement], path: str) -> None:
    """Delivered unicast rate, and p99 at half of it, against clients: one line a server."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axes, p99_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server in dict.fromkeys(m.scenario.server for m in results):
        peaks = [_find(results, server, "unicast", n, True) for n in SWEEP]
        halves = [_find(results, server, "unicast", n, False) for n in SWEEP]
        xs = [n for n, m in zip(SWEEP, peaks, strict=True) if m is not None]
        rate_axes.plot(xs, [m.delivered_rate for m in peaks if m is not None], marker="o", label=server)
        xs = [n for n, m in zip(SWEEP, halves, strict=True) if m is not None]
        p99_axes.plot(
            xs, [m.latency.percentile(99) / 1000 for m in halves if m is not None], marker="o", label=server
        )
    rate_axes.set(
        xscale="log", xlabel="clients", ylabel="messages delivered / s", title="unicast, as fast as it goes"
    )
    p99_axes.set(
        xscale="log",
        yscale="log",
        xlabel="clients",
        ylabel="p99 latency (ms)",
        title="unicast, each server at half its own peak rate",
    )
    rate_axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y / 1000:,.0f}k"))
    p99_axes.axhline(5, color="grey", linestyle=":", linewidth=1)
    for axes in (rate_axes, p99_axes):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
