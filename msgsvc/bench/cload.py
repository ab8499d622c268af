"""The C load process (``loadc.c`` beside this module), built with the machine's C compiler on first use.

It does what :mod:`msgsvc.bench.worker` does for every workload over TCP,
for a fraction of the CPU, so that a row measures the server rather than
its load.  WebSocket clients stay with the Python worker, as does every
run on a machine without a compiler.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from msgsvc.bench.worker import LOGINS_AT_ONCE, Plan

SOURCE = Path(__file__).with_name("loadc.c")
SERVERS = ("msgsvc", "words", "ngircd", "ergo", "msgsvc-irc", "msgsvc-redis")
#: the servers that take another's lines (:func:`msgsvc.bench.dialects.make`)
SAME_LINES = {"msgsvc-redis": "msgsvc", "ergo": "words"}


def handles(plan: Plan) -> bool:
    """Whether the C load does this plan's job."""
    return plan.server in SERVERS  # every workload; not the WebSocket clients of msgsvc-web


def build() -> str | None:
    """The path of the built program, built now if this source was not yet; None without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"msgsvc-loadc-{digest}"
    if not binary.exists():
        partial = binary.with_suffix(f".{os.getpid()}")
        subprocess.run([compiler, "-O2", "-o", str(partial), str(SOURCE)], check=True)
        partial.replace(binary)  # atomic: a concurrent build leaves one whole program
    return str(binary)


def arguments(plan: Plan) -> list[str]:
    """The program's command line for ``plan`` (its names are PREFIX0, PREFIX1, ...)."""
    prefix = plan.names[0].rstrip("0123456789")
    assert plan.names == [f"{prefix}{i}" for i in range(len(plan.names))], "names the C load can make"
    return [
        SAME_LINES.get(plan.server, plan.server),
        plan.host,
        ",".join(map(str, plan.ports)),
        prefix,
        str(len(plan.names)),
        plan.workload,
        str(plan.rate or 0),
        str(plan.window),
        str(plan.count or 0),
        str(plan.recipients),
        str(plan.size),
        str(plan.duration),
        str(plan.warmup),
        str(int(plan.broadcast_sender)),
        str(plan.receivers),
        str(plan.drain),
        plan.password or "",
        str(LOGINS_AT_ONCE if plan.password else len(plan.names)),
    ]
