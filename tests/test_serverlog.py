"""The server's log file: twistd's lines, a reactor pass's together."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger, LogLevel, formatEventAsClassicLogText
from twisted.python.failure import Failure
from twisted.python.logfile import LogFile
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.serverlog import LoggedService, PassLog


class Output(io.StringIO):
    """A text file that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


class FakeReactor:
    """Runs what ``callFromThread`` is given when told: the end of a reactor pass."""

    def __init__(self) -> None:
        self.running = True
        self.later: list[Callable[[], None]] = []
        self.triggers: list[tuple[str, str, Callable[[], None]]] = []

    def callFromThread(self, f: Callable[[], None]) -> None:
        self.later.append(f)

    def addSystemEventTrigger(self, phase: str, event: str, f: Callable[[], None]) -> None:
        self.triggers.append((phase, event, f))

    def end_of_pass(self) -> None:
        later, self.later = self.later, []
        for f in later:
            f()


class PassLogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.out = Output()
        self.reactor = FakeReactor()
        self.observer = PassLog(self.out, self.reactor)
        self.log = Logger(namespace="msgsvc.test", observer=self.observer)

    def test_a_pass_is_written_once_after_it(self) -> None:
        self.log.info("{peer} registered as {name}", peer="127.0.0.1:5", name="alice")
        self.log.info("{name} ({peer}) left: {why}", peer="127.0.0.1:5", name="alice", why="quit")
        self.assertEqual(self.out.getvalue(), "")
        self.reactor.end_of_pass()
        self.assertEqual(self.out.writes, 1)
        lines = self.out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].endswith(" [msgsvc.test#info] 127.0.0.1:5 registered as alice"), lines)
        self.assertTrue(lines[1].endswith(" [msgsvc.test#info] alice (127.0.0.1:5) left: quit"), lines)
        self.assertEqual(len(self.reactor.later), 0)
        self.log.info("next pass")
        self.assertEqual(len(self.reactor.later), 1)  # one write asked for a pass, however many lines

    def test_the_lines_twistd_writes(self) -> None:
        """The same text as twistd's own observer, whatever the event."""
        events: list[dict[str, Any]] = []
        log = Logger(namespace="msgsvc.test", observer=events.append)
        log.info("plain {a} and {b!r}", a=1, b="two")
        log.warn("two\nlines")
        log.debug("a call: {f()}", f=lambda: "called")
        log.info("missing {nothing}")
        log.info("")
        log.failure("it failed: {why}", Failure(ValueError("boom")), why="no reason")
        events.append({"log_format": "system {x}", "x": 3, "log_system": "custom", "log_time": 1.5})
        events.append({"log_format": "no time, no level"})
        events.append({"message": "no format at all"})
        for event in events:
            self.observer(event)
            expected = formatEventAsClassicLogText(event)
            self.reactor.end_of_pass()
            self.assertEqual(self.out.getvalue(), expected or "", event)
            self.out.seek(0)
            self.out.truncate()

    def test_written_at_once_when_the_reactor_is_not_running(self) -> None:
        """Before it starts and once it has stopped ("Server Shut Down."), after what waits."""
        self.log.info("during the last pass")
        self.reactor.running = False
        self.log.info("Server Shut Down.")
        self.assertEqual(
            [line.split("] ")[1] for line in self.out.getvalue().splitlines()],
            ["during the last pass", "Server Shut Down."],
        )

    def test_flushed_after_shutdown(self) -> None:
        self.log.info("while stopping")
        [(phase, event, flush)] = self.reactor.triggers
        self.assertEqual((phase, event), ("after", "shutdown"))
        flush()
        self.assertIn("while stopping", self.out.getvalue())

    def test_levels_are_all_kept(self) -> None:
        for level in LogLevel.iterconstants():
            self.log.emit(level, "at {level.name}")
        self.reactor.end_of_pass()
        self.assertEqual(len(self.out.getvalue().splitlines()), 5)


class LoggedServiceTests(SynchronousTestCase):
    def observer(self, **twistd: Any) -> object:
        application = Application("msgsvc")
        self.reactor = FakeReactor()
        LoggedService(self.reactor, twistd).setServiceParent(application)
        return application.getComponent(ILogObserver, None)

    def test_twistd_logs_through_it(self) -> None:
        self.assertIsInstance(self.observer(nodaemon=True, logfile=None), PassLog)
        self.assertIsInstance(self.observer(nodaemon=True, logfile="-"), PassLog)
        path = self.mktemp()
        self.addCleanup(signal.signal, signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))
        observer = self.observer(nodaemon=False, logfile=path)
        assert isinstance(observer, PassLog)
        observer({"log_format": "to the file", "log_time": 0.0})
        self.reactor.end_of_pass()
        self.assertIn("to the file", open(path).read())
        self.assertIsInstance(observer._out, LogFile)  # twistd's: it rotates
        self.addCleanup(observer._out.close)

    def test_twistd_keeps_its_own(self) -> None:
        self.assertIsNone(self.observer(syslog=True))
        self.assertIsNone(self.observer(logger="some.observer"))
        self.assertIsNone(self.observer(nodaemon=False, logfile="-"))  # twistd refuses it, as before

    def test_not_under_twistd(self) -> None:
        application = Application("msgsvc")
        LoggedService(FakeReactor(), None).setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver, None))
        self.assertFalse(os.path.exists("twistd.log"))
