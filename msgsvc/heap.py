"""The heap a burst of logins leaves: handed back to the system once the burst is over.

Registering clients makes many short-lived objects (the pieces of each registrant's username log, its login's
Deferreds) among the long-lived ones (its connection), and glibc keeps the pages they freed: it
returns only the free top of the heap on its own.  ``malloc_trim(0)`` returns every free page;
:class:`QuietTrim` calls it once registrations have stopped for a moment (docs/performance.rst,
"Idle memory").  Where the C library has no ``malloc_trim`` (not glibc), nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from msgsvc.hub.events import Event, UserJoined


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return None
    return lambda: trim(0)


class QuietTrim:
    """A hub subscriber: ``trim`` once no client has registered for ``quiet`` seconds (after some did)."""

    def __init__(self, clock: IReactorTime, trim: Callable[[], object], quiet: float = 1.0) -> None:
        self._clock = clock
        self._trim = trim
        self._quiet = quiet
        self._call: IDelayedCall | None = None

    def __call__(self, event: Event) -> None:
        if not isinstance(event, UserJoined):
            return
        if self._call is None:
            self._call = self._clock.callLater(self._quiet, self._trimmed)
        else:
            self._call.reset(self._quiet)

    def _trimmed(self) -> None:
        self._call = None
        self._trim()
