"""The bench's table and its msgsvc/peer ratios: each scenario's runs as a median and its range.

A *row* is every run of one scenario on one server (``bench suite`` runs
each several times, the servers in turn).  A row whose load processes
kept their cores more than :data:`LOAD_BOUND` busy measured the load
generator as much as the server: the table marks it, and a ratio that
involves it is shown as the bound it is, not as a result.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from msgsvc.bench.run import VARIANTS, Measurement, Scenario

#: a load process busier than this (its share of the load cores) makes a row load-bound
LOAD_BOUND = 0.9


@dataclass
class Row:
    """The runs of one scenario on one server."""

    runs: list[Measurement]

    @property
    def scenario(self) -> Scenario:
        return self.runs[0].scenario

    @property
    def server(self) -> str:
        """The server, and its nodes if several (:attr:`Scenario.label`)."""
        return self.runs[0].scenario.label

    def spread(self, figure: Callable[[Measurement], float]) -> tuple[float, float, float]:
        """The median of ``figure`` over the runs, and its least and greatest."""
        values = [figure(m) for m in self.runs]
        return statistics.median(values), min(values), max(values)

    def median(self, figure: Callable[[Measurement], float]) -> float:
        return self.spread(figure)[0]

    @property
    def load_share(self) -> float:
        return self.median(lambda m: m.load_share)

    @property
    def load_bound(self) -> bool:
        return self.load_share > LOAD_BOUND


def key(m: Measurement) -> tuple[object, ...]:
    """What makes two runs the same workload on different servers."""
    s = m.scenario
    return (s.workload, s.clients, s.rate, s.recipients, s.size)


def rows(measurements: Sequence[Measurement]) -> list[Row]:
    """The runs grouped by server and scenario, in the order each first ran."""
    grouped: dict[tuple[object, ...], Row] = {}
    for m in measurements:
        grouped.setdefault((m.scenario.label, *key(m)), Row([])).runs.append(m)
    return list(grouped.values())


def _p(percent: float) -> Callable[[Measurement], float]:
    return lambda m: m.latency.percentile(percent) / 1000


#: the table's figures: (title, figure, format)
FIGURES: tuple[tuple[str, Callable[[Measurement], float], str], ...] = (
    ("ramp s", lambda m: m.ramp_seconds, "{:.1f}"),
    ("delivered/s", lambda m: m.delivered_rate, "{:,.0f}"),
    ("p50 ms", _p(50), "{:.2f}"),
    ("p99 ms", _p(99), "{:.2f}"),
    ("max ms", lambda m: m.latency.maximum / 1000, "{:.1f}"),
    ("srv CPU s", lambda m: m.server_cpu, "{:.1f}"),
    ("srv cores", lambda m: m.server_cores, "{:.2f}"),
    ("load CPU s", lambda m: m.load_cpu, "{:.1f}"),
    ("load share", lambda m: m.load_share, "{:.0%}"),
    ("peak RSS MiB", lambda m: m.peak_rss_kib / 1024, "{:.1f}"),
    ("KiB/client", lambda m: m.rss_per_client_kib, "{:.1f}"),
    ("lost", lambda m: m.lost, "{:.0f}"),
)


def cell(row: Row, figure: Callable[[Measurement], float], form: str) -> str:
    """One run's figure; for several, the median and the range: ``170,322 (168,100-172,000)``."""
    median, low, high = (form.format(value) for value in row.spread(figure))
    return median if low == high else f"{median} ({low}-{high})"


def row_cells(row: Row) -> list[str]:
    s = row.scenario
    offered = "max" if s.rate is None else f"{s.rate:,.0f}"
    if s.workload in ("idle", "connect"):
        offered = "-"
    figures = [cell(row, figure, form) for _, figure, form in FIGURES]
    mark = "LOAD-BOUND" if row.load_bound else ""
    return [
        s.label,
        s.workload,
        str(s.clients),
        str(len(row.runs)),
        row.runs[0].load,
        offered,
        *figures,
        mark,
    ]


def table(measurements: Sequence[Measurement]) -> str:
    """An RST simple table, one row a scenario and server."""
    titles = [
        "server",
        "workload",
        "clients",
        "runs",
        "load",
        "offered/s",
        *(t for t, _, _ in FIGURES),
        "note",
    ]
    body = [row_cells(r) for r in rows(measurements)]
    return rst_table(titles, body, {0, 1, titles.index("load"), len(titles) - 1})


def rst_table(titles: list[str], body: list[list[str]], words: set[int]) -> str:
    """An RST simple table; the columns in ``words`` left-aligned, the figures right-aligned."""
    widths = [max(len(r[i]) for r in [titles, *body]) for i in range(len(titles))]
    rule = "  ".join("=" * w for w in widths)

    def line(r: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i in words else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    return "\n".join([rule, line(titles), rule, *(line(r) for r in body), rule])


def paired(mine: Row, theirs: Row) -> tuple[float, float, float]:
    """msgsvc's delivered rate over a peer's, run by run as they took turns: the median, least and greatest."""
    pairs = [
        a.delivered_rate / b.delivered_rate if b.delivered_rate else float("inf")
        for a, b in zip(mine.runs, theirs.runs, strict=False)
    ]
    return statistics.median(pairs), min(pairs), max(pairs)


def ratio(mine: Row, theirs: Row) -> str:
    """msgsvc's delivered rate over a peer's: the median of the runs paired in turn, its range, and
    whether a load-bound row makes it a bound rather than a result."""
    median, low, high = paired(mine, theirs)
    figure = f"{median:.2f}" if low == high else f"{median:.2f} ({low:.2f}-{high:.2f})"
    if mine.load_bound and theirs.load_bound:
        return f"? (both load-bound; measured {figure})"
    if theirs.load_bound:  # the peer could have done more: msgsvc's lead is at most this
        return f"<= {figure} ({theirs.server} load-bound)"
    if mine.load_bound:
        return f">= {figure} (msgsvc load-bound)"
    return figure


def ratios(measurements: Sequence[Measurement]) -> list[str]:
    """msgsvc's delivered rate (registrations for ``connect``) over each peer's, workload by workload;
    then each server's with each variant on over off (``run --history on --history off``), beside the row
    that differs from it only there."""
    all_rows = rows(measurements)
    ours = {key(r.runs[0]): r for r in all_rows if r.server == "msgsvc"}
    lines = []
    for row in all_rows:
        mine = ours.get(key(row.runs[0]))
        s = row.scenario
        if row.server == "msgsvc" or mine is None or s.workload == "idle" or s.varied():
            continue
        lines.append(f"{s.workload} ({s.clients} clients): msgsvc/{s.server} = {ratio(mine, row)}")
    found = {(r.scenario.label, *key(r.runs[0])): r for r in all_rows}
    for row in all_rows:
        s = row.scenario
        for name, (default, _) in VARIANTS.items():
            if getattr(s, name) == default:
                continue
            changes: dict[str, Any] = {name: default}
            plain = found.get((replace(s, **changes).label, *key(row.runs[0])))
            if plain is not None:
                on, off = (plain, row) if default else (row, plain)
                figure = ratio(on, off)
                lines.append(f"{s.workload} ({s.clients} clients): {plain.server} {name} on/off = {figure}")
    return lines
