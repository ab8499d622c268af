"""The server under test, driven by hand: a hub, accounts and the line front over fakes, on a Clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from msgsvc.auth.accounts import Accounts
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.lines import ServerFactory, ServerProtocol
from msgsvc.fronts.presence import Presence
from msgsvc.hub.contracts import HistoryPolicy, ModeChange, ModesKept, QueuePolicy, Refusal, Report, UserRecord
from msgsvc.hub.core import Hub
from msgsvc.hub.history import History
from msgsvc.hub.ids import MessageIds
from msgsvc.hub.rules import username_key
from msgsvc.options import NEW_ROOMS_PER_HOUR, hourly_rate
from msgsvc.ratelimit import AddressRate
from msgsvc.wire import Limits

from .fakes import FakeHashing, FakeNetwork, MemoryStore, RecordingParticipant

#: What a store answers a change of a room's modes (:meth:`~msgsvc.hub.contracts.RoomStore.set_modes`).
Kept = ModesKept | Refusal | None
#: The password of every protected record a ServerHarness starts with.
PASSWORD = "correct horse"


def admitted(hub: Hub, participant: RecordingParticipant, name: str, peer: str) -> Deferred[str | None]:
    """Register ``participant`` as ``name`` with no password check: hold the name, then admit it.

    Fires with the name as the log spells it (None: it logged out first); ``participant`` keeps its
    user from the start, to log out even before it is online."""
    user = participant.user = hub.register(participant, name, peer)
    return hub.admit(user).addCallback(lambda online: None if online is None else online.name)


def held_modes(store: MemoryStore) -> list[Callable[[], object]]:
    """From now on, each of ``store``'s set_modes is written at once and answered when the test calls the
    function it added to the list returned (in whatever order the test calls them)."""
    set_modes = store.set_modes
    answers: list[Callable[[], object]] = []

    def holding(
        room: str, changes: Sequence[ModeChange], by: str, at: float, memberships: Mapping[str, int]
    ) -> Deferred[Kept]:
        kept, answer = set_modes(room, changes, by, at, memberships), Deferred[Kept]()
        answers.append(partial(kept.chainDeferred, answer))
        return answer

    store.set_modes = holding  # type: ignore[method-assign]
    return answers


def outcome(report: Report | Deferred[Report]) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """What a (fired) report says of whom a message reached: delivered, offline, queued."""
    assert isinstance(report, Report), report
    return report.delivered, report.offline, report.queued


class ServerHarness:
    """The line front over a hub and memory store, with StringTransport clients."""

    def __init__(
        self,
        limits: Limits = Limits(),  # noqa: B008 - frozen, so shared safely
        max_clients: int = 100,
        records: tuple[UserRecord, ...] | None = (),  # None: the hub waits for load()
        require_password: bool = False,
        queue: QueuePolicy = QueuePolicy(),  # noqa: B008 - frozen
        network: FakeNetwork | None = None,
        history: HistoryPolicy | None = None,  # None: the server keeps no history
        random: Callable[[int], bytes] | None = None,  # what the ids' random bits come from
        start: float = 1_000_000,  # the clock's time
        max_sessions: int = 10,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(start)
        self.store = MemoryStore(records or ())
        for record in records or ():
            if record.protected:
                self.store.hashes[username_key(record.name)] = "fake$" + PASSWORD
                self.store.since[username_key(record.name)] = 0.0
        self.hashing = FakeHashing()
        self.history = None if history is None else History(self.clock, self.store, history)
        ids = None if random is None else MessageIds(self.clock, random)
        creations = AddressRate(hourly_rate(NEW_ROOMS_PER_HOUR), self.clock).take  # the server's default
        self.hub = Hub(
            self.clock,
            self.store,
            records,
            max_clients,
            queue,
            network,
            ids,
            self.history,
            max_sessions,
            room_creations=creations,
        )
        self.accounts = Accounts(self.hub, self.store, self.hashing, self.clock, require_password)
        self.clients = Clients(self.hub, self.accounts, self.clock, limits)
        self.presence = Presence(self.hub, self.clock)
        self.factory = ServerFactory(self.clients, self.presence)
        self._port = 40000

    def connect(self, host: str = "127.0.0.1") -> tuple[ServerProtocol, StringTransport]:
        self._port += 1
        transport = StringTransport(peerAddress=IPv4Address("TCP", host, self._port))
        protocol = self.factory.buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        return protocol, transport

    def register(
        self, name: str, password: str | None = None, host: str = "127.0.0.1", version: int | None = None
    ) -> tuple[ServerProtocol, StringTransport]:
        """A client registered as ``name`` (after ``VERSION version``, if given), once the others have
        been told (the reactor pass is over)."""
        protocol, transport = self.connect(host)
        hello = f"HELLO {name}" if password is None else f"HELLO {name} :{password}"
        said = "" if version is None else f"VERSION {version}\r\n"
        protocol.dataReceived(f"{said}{hello}\r\n".encode())
        assert b"\r\nWELCOME " in b"\r\n" + transport.value(), transport.value()
        transport.clear()
        self.end_of_pass()
        return protocol, transport

    def end_of_pass(self) -> None:
        """Run what waits for the end of the reactor pass: presence news goes out."""
        self.clock.advance(0)


def lines(transport: StringTransport) -> list[str]:
    """What the server wrote, as text lines; clears the transport."""
    data = transport.value()
    transport.clear()
    assert data == b"" or data.endswith(b"\r\n"), data
    return data.decode("utf-8").split("\r\n")[:-1]


def one_pass(clock: Clock) -> None:
    """Run what is due now, but not what that schedules in turn: one reactor pass."""
    due = [call for call in clock.getDelayedCalls() if call.getTime() <= clock.seconds()]
    for call in due:
        if call.active():
            clock.calls.remove(call)
            call.called = 1
            call.func(*call.args, **call.kw)
