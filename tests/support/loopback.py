"""A raw line client, and a whole server, for end-to-end tests over real sockets."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IReactorTCP, IReactorTime
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from msgsvc.auth.accounts import Accounts
from msgsvc.auth.hashing import Hasher
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.lines import ServerFactory
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.receiver import LineProtocol
from msgsvc.hub.contracts import HistoryPolicy
from msgsvc.hub.core import Hub
from msgsvc.hub.history import History
from msgsvc.state.sqlite import SqliteStore
from msgsvc.wire import Limits


class LineTestClient(LineProtocol):
    """Queues every line it gets; ``closed`` fires when the connection ends."""

    MAX_LENGTH = 65536

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._lines: DeferredQueue[str] = DeferredQueue()
        self.closed: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        self._lines.put(line.decode("utf-8"))

    def lineTooLong(self) -> None:
        raise AssertionError("the server sent an over-long line")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(None)

    def send(self, line: str) -> None:
        self.transport.write(line.encode("utf-8") + b"\r\n")

    async def line(self, timeout: float = 10) -> str:
        """The next line; fails after ``timeout`` seconds of silence."""
        d = self._lines.get()
        d.addTimeout(timeout, self._clock)
        return await d

    async def lines(self, count: int) -> list[str]:
        return [await self.line() for _ in range(count)]

    async def until(self, prefix: str) -> list[str]:
        """Lines up to and including the first that starts with ``prefix``."""
        got = [await self.line()]
        while not got[-1].startswith(prefix):
            got.append(await self.line())
        return got

    def pending(self) -> list[str]:
        """Lines already received and not yet read."""
        waiting = list(self._lines.pending)
        self._lines.pending.clear()
        return waiting


async def connect(reactor: IReactorTCP, port: int) -> LineTestClient:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return await connectProtocol(endpoint, LineTestClient(reactor))  # type: ignore[arg-type]


class LoopbackServer:
    """A whole server (SQLite log, hub, factory) listening on 127.0.0.1, for one test."""

    def __init__(
        self,
        db_path: str,
        limits: Limits = Limits(),  # noqa: B008 - frozen
        require_password: bool = False,
        history: bool = False,
    ) -> None:
        """``history``: keep it (by the default policy); else none, as with ``--history-days 0``."""
        self.db_path = db_path
        self._usernames = SqliteStore(reactor, db_path, reactor)
        kept = History(reactor, self._usernames, HistoryPolicy()) if history else None
        self.hub = Hub(reactor, self._usernames, None, max_clients=100, history=kept)
        self._hasher = Hasher(reactor, threads=1)
        self.accounts = Accounts(self.hub, self._usernames, self._hasher, reactor, require_password)
        self.clients = Clients(self.hub, self.accounts, reactor, limits)
        self.factory = ServerFactory(self.clients, Presence(self.hub, reactor))
        self.port_number = 0

    async def start(self, test: TestCase) -> LoopbackServer:
        """Listen; stop when ``test`` ends (after the cleanups it adds later)."""
        self._usernames.startService()
        self._hasher.startService()
        self.accounts.startService()
        snapshot = await self._usernames.read_log()
        self.hub.load(snapshot.records, snapshot.rooms)
        self.accounts.watch_resets(snapshot.last_reset)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.factory)
        self.port_number = port.getHost().port

        self._port = port
        test.addCleanup(self.stop)
        return self

    async def stop(self) -> None:
        """Stop listening, say BYE to everyone, and close the store (again is harmless)."""
        if not self._usernames.running:
            return
        await self._port.stopListening()
        await self.clients.disconnect_all("server shutting down")
        self.accounts.stopService()
        self._hasher.stopService()
        self._usernames.stopService()

    async def client(self) -> LineTestClient:
        return await connect(reactor, self.port_number)
