"""A display for the window tests: $DISPLAY, or an Xvfb started for the run."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest


def need_display() -> None:
    """Use $DISPLAY, or start one Xvfb for the whole run; skip (fail under CI) if neither can be had."""
    if os.environ.get("DISPLAY"):
        return
    if shutil.which("Xvfb"):
        read, write = os.pipe()
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
            pass_fds=[write],
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as displayfd:
            number = displayfd.readline().strip()
        if number:
            atexit.register(xvfb.terminate)
            os.environ["DISPLAY"] = f":{number}"
            return
        xvfb.kill()
    if os.environ.get("CI"):
        raise AssertionError("GUI tests need a display or Xvfb; .ci/run installs xvfb")
    raise SkipTest("no DISPLAY and no Xvfb (apt-get install xvfb) to test the windows on")


def collect_windows(windows: list[object]) -> None:
    """Forget ``windows`` (destroyed) and collect what Tk leaves in cycles now, on the main thread.

    Left to a later collection, a Tcl interpreter may be freed on whatever thread runs it (the SQLite
    store's, say), and Tcl aborts the whole run: "Tcl_AsyncDelete: async handler deleted by the wrong
    thread".
    """
    windows.clear()
    gc.collect()
