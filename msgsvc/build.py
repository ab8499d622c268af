"""Which build of msgsvc runs: its hot path compiled with mypyc, or the same code as pure Python.

``setup.py`` compiles :data:`COMPILED` where a C compiler is present (``MSGSVC_COMPILE=1`` insists, and
the build fails without one; ``MSGSVC_COMPILE=0`` builds pure Python).  A compiled module is an extension
module beside its ``.py``, which Python's import prefers.  This module is never compiled: it only reads
what the setup chose, and what runs (``python -m msgsvc.bench`` and the server's start-up log say it).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sysconfig
from collections.abc import Mapping
from importlib.machinery import EXTENSION_SUFFIXES

#: The modules compiled with mypyc: the codec, the hub's routing and what it calls a message, a message's
#: conversation and what the history is handed of it, the outbox, the rate limits and the SQLite
#: history's index and records (which every message kept goes through).  Their classes are native: no
#: attribute set from outside that the class does not declare, no method patched on an instance or a
#: class, no subclass outside them.
COMPILED = (
    "msgsvc.wire",
    "msgsvc.hub.rules",
    "msgsvc.hub.ids",
    "msgsvc.hub.conversations",
    "msgsvc.hub.kept",
    "msgsvc.hub.session",
    "msgsvc.hub.core",
    "msgsvc.fronts.outbox",
    "msgsvc.ratelimit",
    "msgsvc.state.historyindex",
)

#: What :func:`running` says of each build.
MYPYC = "compiled (mypyc)"
PURE = "pure Python"


def compile_wanted(environ: Mapping[str, str], include: str = sysconfig.get_paths()["include"]) -> bool:
    """Whether ``setup.py`` compiles :data:`COMPILED`: as ``MSGSVC_COMPILE`` says (``1`` or ``0``), or,
    unset, when the C compiler Python was built with (or ``$CC``) is on the ``PATH`` and Python's
    headers are in ``include`` (Debian's ``python3-dev``)."""
    choice = environ.get("MSGSVC_COMPILE", "")
    if choice not in ("", "0", "1"):
        raise ValueError(f"MSGSVC_COMPILE is 1 (compiled), 0 (pure Python) or unset, not {choice!r}")
    if choice:
        return choice == "1"
    compiler = environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    found = shutil.which(compiler.split()[0], path=environ.get("PATH", os.defpath)) is not None
    return found and os.path.exists(os.path.join(include, "Python.h"))


def is_compiled(module: str) -> bool:
    """Whether ``module`` (imported here) runs as an extension module, not from its ``.py``."""
    path = importlib.import_module(module).__file__ or ""
    return path.endswith(tuple(EXTENSION_SUFFIXES))


def _stale(module: str) -> bool:
    """Whether the ``.py`` beside ``module``'s extension was written after it (edited since the build;
    an install writes the two within a second, in either order)."""
    extension = importlib.import_module(module).__file__ or ""
    source = os.path.join(os.path.dirname(extension), module.rpartition(".")[2] + ".py")
    return os.path.exists(source) and os.path.getmtime(source) > os.path.getmtime(extension) + 1


def running() -> str:
    """:data:`MYPYC` when every module of :data:`COMPILED` runs compiled, :data:`PURE` when none does,
    else which do: a build out of step with the sources (the extensions of an older list, or of
    sources edited since: build again)."""
    compiled = [m for m in COMPILED if is_compiled(m)]
    if len(compiled) == len(COMPILED):
        stale = [m for m in compiled if _stale(m)]
        return f"{MYPYC}, stale: {', '.join(stale)} edited since the build" if stale else MYPYC
    if not compiled:
        return PURE
    return f"mixed: compiled {', '.join(compiled)}; the rest pure Python"
