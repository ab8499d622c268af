"""What the IRC front's suites share: an IRC client on a StringTransport, and a count of the work one
line costs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.irc.session import IrcSession
from msgsvc.hub.contracts import UserRecord, UserView
from msgsvc.hub.core import Hub

from .harness import ServerHarness, lines

SERVER = "irc.test"


class Irc:
    """An IRC client of a :class:`ServerHarness`'s hub."""

    def __init__(self, harness: ServerHarness, factory: IrcFactory) -> None:
        self.harness = harness
        harness._port += 1
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", harness._port))
        self.session: IrcSession = factory.buildProtocol(self.transport.getPeer())
        self.session.makeConnection(self.transport)

    def send(self, *lines_: str) -> list[str]:
        """Send lines; what came back, once the reactor pass is over."""
        for text in lines_:
            self.session.dataReceived(text.encode() + b"\r\n")
        return self.read()

    def read(self) -> list[str]:
        self.harness.end_of_pass()
        return lines(self.transport)

    def register(self, nick: str, *before: str) -> list[str]:
        got = self.send(*before, f"NICK {nick}", f"USER {nick} 0 * :{nick} real")
        assert any(f" 001 {nick} " in g for g in got), got
        return got


def numerics(got: list[str]) -> list[str]:
    """The numeric (or command) of each server line, its tags aside."""
    return [g.split(" ")[2 if g.startswith("@") else 1] for g in got]


class IrcTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.harness = ServerHarness(records=(UserRecord("dave", 1.0, 1.0, protected=True),))
        self.factory = IrcFactory(self.harness.clients, SERVER)

    def irc(self) -> Irc:
        return Irc(self.harness, self.factory)



class _CountedHub:
    """The hub as the IRC front reaches it, counting calls to ``users``: the hub's own methods cannot be
    patched in the compiled build (msgsvc/build.py)."""

    def __init__(self, hub: Hub, work: Work) -> None:
        self._hub = hub
        self._work = work

    def __getattr__(self, name: str) -> Any:
        return getattr(self._hub, name)

    def users(self) -> list[UserView]:
        self._work.sorted_logs += 1
        return self._hub.users()


class Work:
    """Counts what one line costs: log entries walked through, and calls to ``Hub.users`` (which sorts
    the whole log)."""

    def __init__(self, factory: IrcFactory) -> None:
        self.walked = 0
        self.sorted_logs = 0
        walk = factory.directory.walk

        def counted_walk(keys: list[str]) -> Iterator[str]:
            for key in walk(keys):
                self.walked += 1
                yield key

        factory.directory.walk = counted_walk  # type: ignore[method-assign]
        counted = cast(Hub, _CountedHub(factory.clients.hub, self))
        factory.clients.hub = factory.directory._hub = counted

    def take(self) -> int:
        walked, self.walked = self.walked, 0
        return walked
