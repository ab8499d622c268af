"""``python -m msgsvc.bench``: measure msgsvc, and its peers on the same workloads.

    python -m msgsvc.bench run --server msgsvc --workload unicast --clients 1000
    python -m msgsvc.bench run --workload unicast --clients 1000 --history on --history off
    python -m msgsvc.bench run --workload unicast --clients 1000 --metrics on --metrics off --repeat 5
    python -m msgsvc.bench run --clients 1000 --history on --history off --accounts on --accounts off
    python -m msgsvc.bench run --workload room --clients 100 --server msgsvc --server words --repeat 5
    python -m msgsvc.bench run --server msgsvc --server ergo --ergo /path/to/ergo --history on --history off
    python -m msgsvc.bench suite --json bench.json --plot performance.png
    python -m msgsvc.bench show bench.json [--plot performance.png]
    python -m msgsvc.bench logins [--accounts 200]
    python -m msgsvc.bench offline [--sent 20000] [--away 20]
    python -m msgsvc.bench scaling [--repeat 3] [--clients 1000]

See docs/performance.rst.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Sequence

from msgsvc import build
from msgsvc.bench import logins, offline, report, scaling, suite
from msgsvc.bench.run import VARIANTS, Measurement, Scenario, measure
from msgsvc.bench.servers import ERGO_VARIABLE, SERVERS, SUITE, missing
from msgsvc.bench.worker import WORKLOADS


def _rate(value: str) -> float | None:
    return None if value == "max" else float(value)


def _available(names: Sequence[str]) -> list[str]:
    """The servers of ``names`` this machine can run; each other one is said, and left out."""
    chosen = []
    for server in names:
        problem = missing(server)
        if problem:
            print(f"{server}: not measured: {problem}", file=sys.stderr)
        else:
            chosen.append(server)
    return chosen


#: what each of :data:`VARIANTS` is on and off, for ``bench run --help``
VARIANT_HELP = {
    "history": "msgsvc (and Ergo) with its history (on) or without (off: --history-days 0)",
    "metrics": "msgsvc serving --metrics on a loopback port, /metrics scraped once a second during the measured "
    "load, far more often than Prometheus would be set to (its default is 60 s; 10-15 s is common), so that the "
    "cost of serving them shows (on), or without --metrics (off)",
    "accounts": "msgsvc with every load client's name protected by a password before it starts, the load "
    "logging in with it, a few at a time so that none waits for the login throttle, all before the measured "
    "load (on: a direct conversation's history is kept only with a protected participant), or the names "
    "unprotected (off)",
}


def _variants(args: argparse.Namespace) -> list[dict[str, bool]]:
    """Every combination of the variants asked for (each at its default unless given)."""
    asked = [
        [value == "on" for value in getattr(args, name) or []] or [default]
        for name, (default, _) in VARIANTS.items()
    ]
    return [dict(zip(VARIANTS, values, strict=True)) for values in itertools.product(*asked)]


def _run(args: argparse.Namespace) -> list[Measurement]:
    results = []
    variants = [
        (server, variant)
        for _ in range(args.repeat)
        for server in _available(args.server or ["msgsvc"])
        for variant in _variants(args)
    ]
    for server, variant in variants:  # in turn
        scenario = Scenario(
            server=server,
            workload=args.workload,
            clients=args.clients,
            duration=args.duration,
            rate=args.rate,
            window=args.window,
            recipients=args.recipients,
            size=args.size,
            count=args.count,
            workers=args.workers,
            warmup=args.warmup,
            load=args.load,
            **variant,
        )
        print(f"running {scenario}", file=sys.stderr, flush=True)
        results.append(measure(scenario, args.load_python))
    return results


def _print(results: Sequence[Measurement]) -> None:
    print(report.table(results))
    for line in report.ratios(results):
        print(line)
    for m in results:
        if m.scenario.metrics:
            print(f"{m.scenario.label}: /metrics scraped {m.scrapes} times in {m.seconds:.1f} s")
        if m.refusals or m.lost_connections:
            print(f"{m.scenario.server}: {m.lost_connections} connections lost; {m.refusals[:3]}")


def _progress(m: Measurement) -> None:
    print("  ".join(report.row_cells(report.Row([m]))), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m msgsvc.bench",
        description="Measure msgsvc, and its peers on the same workloads, over loopback (docs/performance.rst).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    load = argparse.ArgumentParser(add_help=False)
    load.add_argument("--duration", type=float, default=5.0, help="seconds of load a run (default 5)")
    load.add_argument(
        "--load-python",
        default=sys.executable,
        help="the Python that runs the load processes (PyPy with Twisted: a harder load)",
    )
    load.add_argument(
        "--load",
        choices=("c", "python"),
        default="c",
        help="the load processes: c (built with the machine's compiler; every workload over TCP) or python "
        "(every workload, over WebSocket too); default c, python where c cannot do the job",
    )
    load.add_argument(
        "--ergo",
        metavar="PATH",
        help="the Ergo binary to run as server ergo (default: ergo on the PATH if it is the IRC server; "
        "without one, Ergo's rows are skipped)",
    )
    load.add_argument("--json", help="write the figures here too")
    load.add_argument("--plot", help="draw the unicast sweep here (PNG; needs matplotlib)")
    run = commands.add_parser("run", parents=[load], help="one workload, on one or more servers")
    run.add_argument("--server", action="append", choices=SERVERS, help="repeatable; default msgsvc")
    for name, (default, _) in VARIANTS.items():
        run.add_argument(
            f"--{name}",
            action="append",
            choices=("on", "off"),
            help=f"{VARIANT_HELP[name]}; repeatable, side by side, taking turns; "
            f"default {'on' if default else 'off'}",
        )
    run.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="unicast",
        help="room: every client joins #bench and the messages go to it, each from a client of the first "
        "load process (default unicast)",
    )
    run.add_argument("--clients", type=int, default=100)
    run.add_argument("--rate", type=_rate, default=None, help="messages/s offered, or max (default)")
    run.add_argument("--window", type=int, default=10000, help="deliveries in flight at most, at max rate")
    run.add_argument("--recipients", type=int, default=3, help="of a multicast")
    run.add_argument("--size", type=int, default=32, help="bytes of text")
    run.add_argument("--count", type=int, default=None, help="messages to send at most")
    run.add_argument("--workers", type=int, default=2, help="load processes")
    run.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first (default 2)")
    run.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each server, taking turns; figures are medians (default 1)",
    )
    standard = commands.add_parser("suite", parents=[load], help="every workload on every server")
    standard.add_argument(
        "--servers",
        default=",".join(SUITE),
        help=f"comma-separated, of {', '.join(SERVERS)} (default {','.join(SUITE)})",
    )
    standard.add_argument(
        "--repeat",
        type=int,
        default=suite.REPEAT,
        help=f"runs of each row, the servers taking turns; figures are medians (default {suite.REPEAT})",
    )
    show = commands.add_parser("show", help="print (and plot) the figures of an earlier run")
    show.add_argument("json")
    show.add_argument("--plot")
    burst = commands.add_parser(
        "logins", help="a burst of logins to protected names, and a bystander's latency"
    )
    burst.add_argument(
        "--accounts", type=int, default=200, help="protected names logging in at once (default 200)"
    )
    burst.add_argument(
        "--rate", type=float, default=50.0, help="the bystander's unicasts a second (default 50)"
    )
    burst.add_argument("--hash-threads", type=int, help="the server's --hash-threads (default: its own)")
    away = commands.add_parser("offline", help="durable messages to an away user, and a backlog at login")
    away.add_argument(
        "--sent", type=int, default=20000, help="messages queued for the throughput (default 20000)"
    )
    away.add_argument("--window", type=int, default=1000, help="messages in flight (default 1000)")
    away.add_argument(
        "--away", type=int, default=20, help="protected users away, queued for in turn (default 20)"
    )
    nodes = commands.add_parser(
        "scaling", help="msgsvc alone, one node on Redis and two nodes, on unicast and broadcast"
    )
    nodes.add_argument("--duration", type=float, default=5.0, help="seconds of load a run (default 5)")
    nodes.add_argument("--repeat", type=int, default=3, help="runs of each deployment, in turn (default 3)")
    nodes.add_argument("--clients", type=int, default=1000, help="unicast's, and broadcast's receivers")
    nodes.add_argument("--rate", type=_rate, default=None, help="messages/s offered, or max (default)")
    nodes.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    if getattr(args, "ergo", None):
        os.environ[ERGO_VARIABLE] = args.ergo  # for the servers module, as for any child that starts one
    if args.command != "show":  # the servers it starts import the msgsvc this does
        print(f"build of msgsvc: {build.running()}", flush=True)
    if args.command == "scaling":
        measured = scaling.run(args.duration, args.repeat, args.clients, args.rate, _progress)
        print(scaling.table(measured))
        for line in scaling.comparisons(measured):
            print(line)
        if args.json:
            with open(args.json, "w") as out:
                json.dump([m.to_json() for m in measured], out)
        return 0
    if args.command == "offline":
        for line in offline.run(args.sent, args.window, args.away).lines():
            print(line)
        return 0
    if args.command == "logins":
        for line in logins.run(args.accounts, args.rate, hash_threads=args.hash_threads).lines():
            print(line)
        return 0
    if args.command == "run":
        results = _run(args)
    elif args.command == "suite":
        results = suite.standard(
            _available(args.servers.split(",")), args.duration, args.load_python, _progress, repeat=args.repeat, load=args.load
        )
    else:
        with open(args.json) as saved:
            results = [Measurement.from_json(m) for m in json.load(saved)]
    _print(results)
    for line in suite.targets(results):
        print(line)
    if getattr(args, "json", None) and args.command != "show":
        with open(args.json, "w") as out:
            json.dump([m.to_json() for m in results], out)
    if args.plot:
        suite.plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
