"""The standard set of runs behind docs/performance.rst, its target checks, and its plot."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from msgsvc.bench import report
from msgsvc.bench.report import Row, rows
from msgsvc.bench.run import VARIANTS, Measurement, Scenario, measure

#: clients of the unicast runs whose rate and p99 are plotted
SWEEP = (10, 100, 1000, 5000)
BROADCAST_RECEIVERS = 1000
#: the members of the room workload's room
ROOM_MEMBERS = 100
IDLE_CLIENTS = 10_000
CHURN_CLIENTS = 50
#: runs of each scenario on each server: figures are their median and range
REPEAT = 5
#: msgsvc's variants run in turn with it (history on, unprotected names) and its peers at the peaks of unicast
#: (:data:`HISTORY_CLIENTS`) and broadcast: history's cost, its direct conversations kept for accounts only
HISTORY_CLIENTS = 1000
UNICAST_VARIANTS: tuple[dict[str, bool], ...] = (
    {"history": False},
    {"accounts": True},
    {"accounts": True, "history": False},
)
BROADCAST_VARIANTS: tuple[dict[str, bool], ...] = ({"history": False},)
#: history on must deliver at least this share of history off's rate
HISTORY_SHARE = 0.8
#: connections a second a peer accepts, where it throttles them (ngIRCd 26.1 here: about 12, from any address)
ACCEPT_RATES = {"ngircd": 12}
#: a peer whose ramp would take longer than this (s) at its accept rate is left out of a row, unless a target
#: compares with it there
RAMP_BUDGET = 60


def standard(
    servers: Sequence[str],
    duration: float,
    load_python: str,
    progress: Callable[[Measurement], None] = lambda m: None,
    latency_python: str = sys.executable,
    repeat: int = REPEAT,
    run: Callable[[Scenario, str], Measurement] = measure,
    load: str = "c",
) -> list[Measurement]:
    """Every workload on every server, ``repeat`` times, the servers in turn for each run.

    Taking turns (msgsvc, words, ngircd, msgsvc, words, ...) spreads what
    the machine does meanwhile over all of them alike.  At the peaks of
    unicast with :data:`HISTORY_CLIENTS` clients and of broadcast, msgsvc's
    variants take their turns after msgsvc's own (:data:`UNICAST_VARIANTS`:
    history off, and accounts on with history on and off;
    :data:`BROADCAST_VARIANTS`), for :func:`targets`' history checks.  The latency runs
    go at half of each server's own median peak.  The runs at a set rate
    use ``latency_python`` for their load: a PyPy load stalls now and
    then, which shows in every server's p99 (seen: 5 ms, after a warm-up,
    where CPython measured 1 ms), so the peaks may use PyPy and the
    latencies do not.
    """
    results: list[Measurement] = []

    def in_turn(
        variants: Sequence[dict[str, bool]] = (), target: bool = False, **scenario: object
    ) -> dict[str, Row]:
        """Each server's runs of ``scenario``, and msgsvc's with each of ``variants`` after its own; a
        callable value is that server's own (its rate, or None to leave that server out).  A peer that would
        take longer than :data:`RAMP_BUDGET` to accept the row's clients is left out, saying so, unless the
        row is a ``target``'s.  A run that fails (a peer stalled) is told and left out.  The rows returned are
        the servers' without variants."""
        runs: dict[str, Row] = {server: Row([]) for server in servers}
        turns: list[tuple[str, dict[str, bool]]] = [(server, {}) for server in servers]
        if "msgsvc" in servers:
            at = servers.index("msgsvc") + 1
            turns[at:at] = [("msgsvc", variant) for variant in variants]
        clients = scenario["clients"]
        assert isinstance(clients, int)
        for server, rate in ACCEPT_RATES.items():
            if server in runs and clients / rate > RAMP_BUDGET and not target:
                said = f"{server} left out of {scenario}: it accepts about {rate} connections a second"
                print(said, file=sys.stderr)
                turns = [turn for turn in turns if turn[0] != server]
        for _ in range(repeat):
            for server, variant in turns:
                fields = {k: v(server) if callable(v) else v for k, v in scenario.items()}
                if any(v is None for v in fields.values()):
                    continue
                python = load_python if fields.get("rate") is None else latency_python
                scenario_ = Scenario(
                    server=server, duration=duration, load=load, **fields, **variant  # type: ignore[arg-type]
                )
                try:
                    measurement = run(scenario_, python)
                except Exception as e:
                    print(f"{scenario_}: the run failed, left out: {e}", file=sys.stderr)
                    continue
                results.append(measurement)
                if not variant:
                    runs[server].runs.append(measurement)
                progress(measurement)
        return runs

    def half(peaks: dict[str, Row], per: int = 1) -> Callable[[str], int | None]:
        def rate(server: str) -> int | None:
            row = peaks[server]
            return round(row.median(lambda m: m.delivered_rate) / per / 2) if row.runs else None

        return rate

    for clients in SWEEP:
        variants = UNICAST_VARIANTS if clients == HISTORY_CLIENTS else ()
        peaks = in_turn(variants, workload="unicast", clients=clients)
        in_turn(workload="unicast", clients=clients, rate=half(peaks))
    in_turn(workload="multicast", clients=1000, recipients=5)
    receivers = BROADCAST_RECEIVERS
    peaks = in_turn(BROADCAST_VARIANTS, target=True, workload="broadcast", clients=receivers + 1)
    in_turn(workload="broadcast", clients=receivers + 1, rate=half(peaks, receivers))
    peaks = in_turn(workload="room", clients=ROOM_MEMBERS)
    in_turn(workload="room", clients=ROOM_MEMBERS, rate=half(peaks, ROOM_MEMBERS - 1))
    in_turn(workload="connect", clients=CHURN_CLIENTS)
    in_turn(workload="idle", clients=IDLE_CLIENTS)
    return results


def _find(
    results: Sequence[Measurement], server: str, workload: str, clients: int, peak: bool, **variant: bool
) -> Row | None:
    """The row of ``server``'s runs of ``workload`` (at its peak, or at a set rate) with ``variant`` (each
    other variant at its default)."""
    wanted = {name: variant.get(name, default) for name, (default, _) in VARIANTS.items()}
    for row in rows(results):
        s = row.scenario
        found = (s.server, s.workload, s.clients, s.rate is None) == (server, workload, clients, peak)
        if found and {name: getattr(s, name) for name in VARIANTS} == wanted:
            return row
    return None


def targets(results: Sequence[Measurement]) -> list[str]:
    """The targets for msgsvc, each with the median figure measured and whether it is met.

    A target against a peer is decided only where the load settles it: a
    ratio whose msgsvc row was load-bound is a floor (met if the floor
    is), one whose peer row was load-bound a ceiling (missed if the
    ceiling is); otherwise it is undecided, marked ``?``.
    """
    lines = []

    def check(what: str, figure: str, met: bool | None) -> None:
        verdict = {True: "met   ", False: "MISSED", None: "?     "}[met]
        lines.append(f"{verdict}  {what}: {figure}")

    def compare(mine: Row | None, theirs: Row | None, at_least: float, what: str, names: str) -> None:
        if mine is None or theirs is None:
            return
        met: bool | None = report.paired(mine, theirs)[0] >= at_least
        if mine.load_bound and not met or theirs.load_bound and met:
            met = None
        check(what, f"{names} = {report.ratio(mine, theirs)}", met)

    def against(peer: str, workload: str, clients: int, at_least: float, what: str) -> None:
        mine, theirs = (_find(results, server, workload, clients, True) for server in ("msgsvc", peer))
        compare(mine, theirs, at_least, what, f"msgsvc/{peer}")

    def history(workload: str, clients: int, what: str, accounts: bool = False) -> None:
        on, off = (
            _find(results, "msgsvc", workload, clients, True, history=kept, accounts=accounts)
            for kept in (True, False)
        )
        compare(on, off, HISTORY_SHARE, f"{what} with history on >= {HISTORY_SHARE}x off", "on/off")

    idle = _find(results, "msgsvc", "idle", IDLE_CLIENTS, True)
    if idle is not None:
        held = idle.median(lambda m: m.connected)
        dropped = max(m.lost_connections for m in idle.runs)
        check(
            f"{IDLE_CLIENTS:,} clients held",
            f"{held:,.0f} registered, {dropped} lost",
            held == IDLE_CLIENTS and not dropped,
        )
        per_client = idle.median(lambda m: m.rss_per_client_kib)
        check("<= 4 KiB per idle client", f"{per_client:.1f} KiB", per_client <= 4)
    unicast = _find(results, "msgsvc", "unicast", 1000, True)
    if unicast is not None:
        rate = unicast.median(lambda m: m.delivered_rate)
        check("unicast >= 50,000 msg/s (1,000 clients)", f"{rate:,.0f}", rate >= 50_000)
    for clients in (100, 1000):
        against("words", "unicast", clients, 1.5, f"unicast >= 1.5x words ({clients:,} clients)")
        against("ergo", "unicast", clients, 1.0, f"unicast >= 1.0x Ergo ({clients:,} clients)")
    against("words", "connect", CHURN_CLIENTS, 1.0, "registration churn >= 1.0x words")
    broadcast = _find(results, "msgsvc", "broadcast", BROADCAST_RECEIVERS + 1, True)
    if broadcast is not None:
        rate = broadcast.median(lambda m: m.delivered_rate)
        check("broadcast to 1,000 >= 300,000 deliveries/s", f"{rate:,.0f}", rate >= 300_000)
    against("ngircd", "broadcast", BROADCAST_RECEIVERS + 1, 1.0, "broadcast to 1,000 >= ngIRCd")
    history("unicast", HISTORY_CLIENTS, f"unicast ({HISTORY_CLIENTS:,} clients, unprotected names)")
    history("unicast", HISTORY_CLIENTS, f"unicast ({HISTORY_CLIENTS:,} clients, accounts)", accounts=True)
    history("broadcast", BROADCAST_RECEIVERS + 1, "broadcast to 1,000")
    half = _find(results, "msgsvc", "unicast", 1000, False)
    if half is not None:
        p99 = half.median(lambda m: m.latency.percentile(99) / 1000)
        offered = half.scenario.rate or 0.0
        check(
            "unicast p99 < 5 ms at half the peak rate (1,000 clients)",
            f"{p99:.2f} ms at {offered:,.0f}/s",
            p99 < 5,
        )
    for m in results:
        if m.lost:
            check("no message lost", f"{m.lost} lost in {m.scenario}", False)
    return lines


def plot(results: Sequence[Measurement], path: str) -> None:
    """Delivered unicast rate, and p99 at half of it, against clients: one line a server, its median,
    with bars from the least to the greatest run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (rate_axes, p99_axes) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server in dict.fromkeys(m.scenario.server for m in results):
        for axes, peak, value in (
            (rate_axes, True, lambda m: m.delivered_rate),
            (p99_axes, False, lambda m: m.latency.percentile(99) / 1000),
        ):
            found = [(n, _find(results, server, "unicast", n, peak)) for n in SWEEP]
            points = [(n, row.spread(value)) for n, row in found if row is not None]
            if not points:
                continue
            xs = [n for n, _ in points]
            medians = [median for _, (median, _, _) in points]
            below = [median - low for _, (median, low, _) in points]
            above = [high - median for _, (median, _, high) in points]
            axes.errorbar(xs, medians, yerr=[below, above], marker="o", capsize=3, label=server)
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
