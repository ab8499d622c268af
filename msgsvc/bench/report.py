"""The bench's table, its msgsvc/peer ratios, and its plot."""

from __future__ import annotations

from collections.abc import Sequence

from msgsvc.bench.run import Measurement

COLUMNS = (
    ("server", "{m.scenario.server}"),
    ("workload", "{m.scenario.workload}"),
    ("clients", "{m.scenario.clients}"),
    ("ramp s", "{m.ramp_seconds:.1f}"),
    ("offered/s", "{offered}"),
    ("delivered/s", "{m.delivered_rate:,.0f}"),
    ("p50 ms", "{p50:.2f}"),
    ("p99 ms", "{p99:.2f}"),
    ("max ms", "{mx:.1f}"),
    ("srv CPU s", "{m.server_cpu:.1f}"),
    ("srv cores", "{m.server_cores:.2f}"),
    ("load CPU s", "{m.load_cpu:.1f}"),
    ("peak RSS MiB", "{peak:.1f}"),
    ("KiB/client", "{m.rss_per_client_kib:.1f}"),
    ("lost", "{m.lost}"),
)


def row(m: Measurement) -> list[str]:
    offered = "max" if m.scenario.rate is None else f"{m.scenario.rate:,.0f}"
    if m.scenario.workload in ("idle", "connect"):
        offered = "-"
    values = {
        "m": m,
        "offered": offered,
        "p50": m.latency.percentile(50) / 1000,
        "p99": m.latency.percentile(99) / 1000,
        "mx": m.latency.maximum / 1000,
        "peak": m.peak_rss_kib / 1024,
    }
    return [template.format(**values) for _, template in COLUMNS]


def table(measurements: Sequence[Measurement]) -> str:
    """An RST simple table, one row a run."""
    rows = [[title for title, _ in COLUMNS]] + [row(m) for m in measurements]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    rule = "  ".join("=" * w for w in widths)

    def line(r: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i > 1 else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([rule, line(rows[0]), rule, *(line(r) for r in rows[1:]), rule])


def key(m: Measurement) -> tuple[object, ...]:
    """What makes two runs the same workload on different servers."""
    s = m.scenario
    return (s.workload, s.clients, s.rate, s.recipients, s.size)


def ratios(measurements: Sequence[Measurement]) -> list[str]:
    """msgsvc's delivered rate (registrations for ``connect``) over each peer's, workload by workload."""
    ours = {key(m): m for m in measurements if m.scenario.server == "msgsvc"}
    lines = []
    for m in measurements:
        mine = ours.get(key(m))
        if m.scenario.server == "msgsvc" or mine is None or m.scenario.workload == "idle":
            continue
        ratio = mine.delivered_rate / m.delivered_rate if m.delivered_rate else float("inf")
        lines.append(
            f"{m.scenario.workload} ({m.scenario.clients} clients): msgsvc/{m.scenario.server} = {ratio:.2f}"
        )
    return lines
