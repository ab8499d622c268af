"""The server's log file: twistd's lines, written once a reactor pass rather than once a line.

Twistd's own observer formats each event with :func:`twisted.logger.formatEvent` (``string.Formatter``,
in Python), works out its time stamp, and writes and flushes the file, for every line: on registration
churn (two lines a connection) that was about a third of the server's time.  :class:`PassLog` writes
the same lines (``<time> [<system>] <text>``, what ``twistd`` writes) but formats a plain event's text
with ``str.format_map`` (in C), its time stamp once a second, and gathers a reactor pass's lines into
one write and one flush after the pass.  A clean stop loses nothing: once the reactor has stopped,
each line is written at once, after what waits.  A ``kill -9`` loses the lines of the pass it stops
(they are in memory only), as an unflushed buffer would.
"""

from __future__ import annotations

import signal
import sys
from threading import Lock
from typing import Any, Protocol

from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorCore, IReactorThreads
from twisted.logger import ILogObserver, LogEvent, formatEventAsClassicLogText, formatTime
from twisted.python.components import Componentized
from twisted.python.logfile import LogFile
from zope.interface import implementer


class Output(Protocol):
    """Where the lines go: a text file, standard output or twistd's rotating ``LogFile``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> None: ...


@implementer(ILogObserver)
class PassLog:
    """Writes log events to ``out`` as twistd's text lines, a reactor pass's lines together after it."""

    def __init__(self, out: Output, reactor: Any) -> None:
        """``reactor``: an :class:`IReactorThreads` (its ``callFromThread``, which may be called from any
        thread, runs the write after the pass) and :class:`IReactorCore` (before it runs and once it has
        stopped, lines are written at once)."""
        self._out = out
        self._reactor: IReactorThreads = reactor
        self._core: IReactorCore = reactor
        self._lines: list[str] = []
        self._lock = Lock()  # events may come from other threads (a store's, the hashing's)
        self._stamped = (-1, "")  # a second, and its time stamp
        reactor.addSystemEventTrigger("after", "shutdown", self.flush)

    def __call__(self, event: LogEvent) -> None:
        line = self._line(event)
        if line is None:
            return
        with self._lock:
            self._lines.append(line)
            first = len(self._lines) == 1
        if not self._core.running:  # not started, or stopped: nothing would write it later
            self.flush()
        elif first:
            self._reactor.callFromThread(self.flush)

    def flush(self) -> None:
        """Write what waits, in one write."""
        with self._lock:
            lines, self._lines = self._lines, []
        if lines:
            self._out.write("".join(lines))
            self._out.flush()

    def _line(self, event: LogEvent) -> str | None:
        """The event as twistd writes it: with Twisted's own formatting for what is not a plain format
        (a failure's traceback, a call in a field, a field that is missing)."""
        if "log_failure" in event:
            return formatEventAsClassicLogText(event, self._time)
        try:
            text = event["log_format"].format_map(event).replace("\n", "\n\t")
        except Exception:
            return formatEventAsClassicLogText(event, self._time)
        if not text:
            return None
        system = event.get("log_system")
        if system is None:
            level = event.get("log_level")
            system = f"{event.get('log_namespace', '-')}#{'-' if level is None else level.name}"
        return f"{self._time(event.get('log_time'))} [{system}] {text}\n"

    def _time(self, when: float | None) -> str:
        """:func:`formatTime` of ``when``, worked out once a second."""
        if when is None:
            return "-"
        second = int(when)
        stamped = self._stamped
        if stamped[0] != second:
            stamped = self._stamped = (second, formatTime(second))
        return stamped[1]


class LoggedService(MultiService):
    """The server's services; given to twistd, it logs through a :class:`PassLog` to twistd's
    ``--logfile`` (or standard output with ``-n`` and none, or ``-``), unless twistd is told
    ``--syslog`` or ``--logger``, which it then keeps."""

    def __init__(self, reactor: Any, twistd: dict[str, Any] | None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._reactor = reactor
        self._twistd = twistd

    def setServiceParent(self, parent: Any) -> None:
        if isinstance(parent, Componentized) and self._twistd is not None:
            out = _log_file(self._twistd, self._reactor)
            if out is not None:
                parent.setComponent(ILogObserver, PassLog(out, self._reactor))
        super().setServiceParent(parent)  # type: ignore[no-untyped-call]


def _log_file(twistd: dict[str, Any], reactor: Any) -> Output | None:
    """Where twistd would log, as its options say; None where it logs otherwise (syslog, a logger)."""
    name = twistd.get("logfile") or ""
    if twistd.get("logger") or twistd.get("syslog") or (name == "-" and not twistd.get("nodaemon")):
        return None  # twistd's own (it refuses a daemon logging to standard output)
    if name == "-" or not name and twistd.get("nodaemon"):
        return sys.stdout
    log: LogFile = LogFile.fromFullPath(name or "twistd.log")
    _rotate_on_usr1(log, reactor)
    return log


def _rotate_on_usr1(log: LogFile, reactor: Any) -> None:
    """``kill -USR1`` rotates the log file, as twistd's own observer does."""
    signal.signal(signal.SIGUSR1, lambda *_: reactor.callFromThread(log.rotate))

