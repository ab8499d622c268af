"""What the hostile-input suites share: limits and lines to meet them, attackers over loopback, a bystander's
clock, and the log's failures."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol as Connection
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.logger import LogEvent, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase as TestCase
from zope.interface import implementer

from msgsvc import wire
from msgsvc.fronts.lines import ServerProtocol
from msgsvc.hub.contracts import HistoryPolicy, Kind, Stored, UserRecord
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.history import History
from msgsvc.hub.ids import MessageIds
from msgsvc.wire import Limits

from .fakes import MemoryStore, to_keep
from .harness import ServerHarness

#: The attackers' addresses; the bystanders connect from 127.0.0.1, so --max-per-ip keeps them apart.
ATTACKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")

#: The line front's limits in the hostile suites: small, so that input meets them.
LIMITS = Limits(max_line=200, max_text=100, max_recipients=4, line_burst=10, max_send_queue=4096)
VERBS = ["HELLO", "PASSWORD", "SEND", "BROADCAST", "USERS", "ACK", "PING", "PONG", "QUIT"]
VERBS += ["VERSION", "HISTORY", "CONVERSATIONS"]  # version 9
VERBS += ["READ"]  # version 10
VERBS += ["JOIN", "PART", "TOPIC", "INVITE", "KICK", "MODE", "MEMBERS", "ROOMS"]  # version 11
#: The history the line suites keep: small pages, so that a page of them is within a line's bound.
HISTORY = HistoryPolicy(page=5, default_page=3, catch_up=4, conversations=6)

# Parameters a hostile client might try: names good and bad, numbers in any script, controls, long ones.
DIGITS = st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=20)
_PARAM = st.one_of(
    st.sampled_from(["bob", "BOB", "alice", "zed", "a" * 40, "1x", "bob,bob,BOB", "bob,zed,x,y,z", ":", "-1"]),
    st.sampled_from(["#all", "#ALL", "#All", "#al", "#all,bob", "bob,mallory", "MALLORY", "b.o.b", "*", "9", "0"]),
    st.sampled_from(["#vault", "#VAULT", "#open", "#9", "#", "##", "#a,#b", "+i-m", "+o", "+kl", "b", "-o+v", "+s"]),
    st.sampled_from(["01M8TYR19J1HB1YED1Z05M91H8", "00000000000000000000000000", "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"]),
    st.sampled_from(["7ZZZZZZZZZZZZZZZZZZZZZZZZZ", "01m8tyr19j1hb1yed1z05m91h8", "01M8TYR19J1HB1YED1Z05M91H"]),
    st.sampled_from(["1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "2026-12-02T08:20:41.554Z", "99999"]),
    DIGITS,
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
    st.integers(0, 10**30).map(str),
)
_TRAILING = st.one_of(
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
    st.integers(90, 300).map(lambda n: "t" * n),  # around --max-text
    st.sampled_from(["", " ", "\t", "\x1b[31mred", "\x00", "é" * 60]),
)


@st.composite
def any_line(draw: st.DrawFn) -> bytes:
    """A line a hostile client might send: verbs known and not, odd parameters, a trailing one or none."""
    verb = draw(st.one_of(st.sampled_from(VERBS), st.sampled_from(VERBS).map(str.lower), st.text(max_size=6)))
    params = draw(st.lists(_PARAM, max_size=4))
    trailing = draw(st.one_of(st.none(), _TRAILING))
    text = " ".join([verb, *params]) + ("" if trailing is None else " :" + trailing)
    return text.encode("utf-8", "surrogatepass")


#: What a client that never took part in ``alice,bob`` must never read, whatever it sends.
SECRET = "the secret of alice and bob"
#: How the attacker may begin: not registered, registered (version 8, 9 or 10; protected or not).
OPENINGS = st.sampled_from(
    [
        "",
        "HELLO mallory",
        "VERSION 9\nHELLO mallory",
        "VERSION 9\nHELLO mallory :password1",
        "VERSION 10\nHELLO mallory :password1",
        "VERSION 10\nHELLO mallory",
        "VERSION 11\nHELLO mallory",
        "VERSION 11\nHELLO mallory :password1",
    ]
)
#: The attacker's account: an opening that claims it has another session, its phone.
ACCOUNT = "password1"


def big_room() -> ServerHarness:
    """A server whose room #big has 300 members (user000 to user299, each from its own address) and 96
    bans of long masks (the rest of its line burst), beside 60 rooms with a 390-character topic each,
    and a 64 KiB send queue: listings that a burst asks for make megabytes unless they are held
    (attack35); "mallory" is in the log, not yet connected."""
    names = [f"user{i:03d}" for i in range(300)]
    records = tuple(UserRecord(name, 1.0, 1.0) for name in [*names, "mallory"])
    limits = Limits(max_send_queue=64 * 1024, max_per_ip=400)
    harness = ServerHarness(limits, max_clients=400, records=records)
    for i, name in enumerate(names):
        protocol, _ = harness.register(name, host=f"10.0.{i}.1", version=12)
        protocol.dataReceived(b"JOIN #big\r\n")
        if i < 60:
            protocol.dataReceived(f"JOIN #r{i}\r\nTOPIC #r{i} :{'t' * 390}\r\n".encode())
        if i == 0:
            protocol.dataReceived(b"".join(b"MODE #big +b %03d%s!*@*\r\n" % (n, b"x" * 120) for n in range(100)))
        harness.end_of_pass()
    return harness


def with_history(harness: ServerHarness) -> None:
    """Keep :data:`HISTORY` on ``harness``, holding ``#all`` and a conversation of alice and bob
    (both protected long ago) that only they may read."""
    harness.hub.history = History(harness.clock, harness.store, HISTORY)
    ids = MessageIds(harness.clock)
    entries: list[Stored] = []
    for n in range(12):
        message_id, at = ids.make()
        if n % 2:
            entry = Stored(message_id, at - 1000, ALL, "bob", Kind.BROADCAST, (), f"old {n}")
        else:
            entry = Stored(message_id, at - 1000, "alice,bob", "alice", Kind.UNICAST, ("bob",), SECRET)
        entries.append(entry)
    harness.store.append(to_keep(entries), HISTORY.keep)
    harness.store.since["alice"] = harness.store.since["bob"] = 0.0


#: bob's secret, invite-only room with a key: nothing a stranger sends reaches it.
VAULT = "#vault"


def with_vault(harness: ServerHarness, bob: ServerProtocol) -> None:
    """``bob`` (registered) creates :data:`VAULT`, makes it secret, invite-only and keyed, and says
    :data:`SECRET` there."""
    bob.user.join(VAULT, None)
    bob.user.mode(VAULT, [("+s", None), ("+i", None), ("+k", "k3y")])
    bob.user.send_room(VAULT, SECRET)
    harness.end_of_pass()


def assert_vault_untouched(case: TestCase, harness: ServerHarness) -> None:
    """:data:`VAULT` is as bob left it: his alone, its modes, no topic, only his messages."""
    vault = harness.hub.rooms.find(VAULT)
    assert vault is not None
    case.assertEqual([m.name for m in vault.members], ["bob"])
    case.assertEqual((vault.modes, vault.key, vault.topic, vault.bans), ("inst", "k3y", "", ()))
    case.assertEqual({e.sender for e in harness.store.history.get(VAULT, [])}, {"bob"})


def assert_reads_bounded(case: TestCase, store: MemoryStore) -> None:
    """Every read position kept is in a conversation of the history (a direct one: its reader's), no
    later than its newest entry: READ and MARKREAD of made-up conversations keep nothing."""
    for name, positions in store.reads.items():
        for conversation, position in positions.items():
            entries = store.history.get(conversation, [])
            case.assertTrue(entries, (name, conversation))
            case.assertLessEqual(position, max(e.id for e in entries))
            if not conversation.startswith("#"):
                case.assertIn(name, participants(conversation))


#: A READ storm's made-up conversations: valid names, none in the log or the history (issue 31's attack).
MADE_UP = [f"x{n:04},y{n:04}" for n in range(150)]


def per_line_bound(harness: ServerHarness) -> int:
    """The most one line may make the server write, to everyone: a reply as long as a line, the message
    to each recipient, the username log."""
    log = len(harness.factory.presence.log_piece(None, sys.maxsize)[0]) + len("ENDUSERS 1000000\r\n")
    page = (HISTORY.page + 1) * (LIMITS.max_line + 200)  # a page of history, the catch-up, CONVERSATIONS
    return (LIMITS.max_recipients + 2) * (LIMITS.max_line + 100) + log + page


@contextmanager
def failures_logged() -> Iterator[list[LogEvent]]:
    """The log events that carry a failure (a traceback), logged within the block."""
    failures: list[LogEvent] = []
    with capturedLogs() as events:
        yield failures
    failures.extend(e for e in events if "log_failure" in e)


def assert_well_formed(case: TestCase, out: list[str]) -> None:
    """Every line the server wrote parses."""
    for line in out:
        case.assertIsNotNone(wire.parse_line(line.encode()), line)


def assert_still_served(case: TestCase, bystander: ServerProtocol, transport: StringTransport) -> None:
    """A bystander on a StringTransport was not disconnected, and its PING is still answered."""
    case.assertFalse(transport.disconnecting)
    transport.clear()
    bystander.dataReceived(b"PING :still\r\n")
    case.assertEqual(transport.value(), b"PONG :still\r\n")


@implementer(IPushProducer)
class Attacker(Connection):
    """Sends ``first``, then what ``next_data`` gives as fast as its connection takes it, and never reads.

    With ``upgrade``, ``first`` is a WebSocket handshake, and it reads the
    server's answer before it goes on (a client that sends frames before it
    is not yet speaking WebSocket); after that it stops reading, so that
    what the server writes to it piles up on the server's side.  It stops
    writing while its own buffer is full (the test's memory stays bounded).
    """

    def __init__(self, next_data: Callable[[], bytes], first: bytes = b"", upgrade: bytes = b"") -> None:
        self._next_data = next_data
        self._first = first
        self._upgrade = upgrade  # sent once the handshake is answered
        self._answer = b""
        self._paused = False
        self._stopped = False
        self.sent = 0
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        if self._first:
            self.transport.write(self._first)  # type: ignore[union-attr]
        if not self._upgrade:
            self._start()

    def dataReceived(self, data: bytes) -> None:
        self._answer += data
        if b"\r\n\r\n" in self._answer and self._upgrade:
            assert self._answer.startswith(b"HTTP/1.1 101 "), self._answer[:100]
            self.transport.write(self._upgrade)  # type: ignore[union-attr]
            self._upgrade = b""
            self._start()

    def _start(self) -> None:
        self.transport.pauseProducing()  # type: ignore[union-attr]  # reads no more
        self._write_more()

    def _write_more(self) -> None:
        if self._paused or self._stopped:
            return
        data = self._next_data()
        if data:
            self.sent += len(data)
            self.transport.write(data)  # type: ignore[union-attr]
            reactor.callLater(0.001, self._write_more)  # type: ignore[attr-defined]

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._write_more()

    def stopProducing(self) -> None:
        self._stopped = True

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._stopped = True
        self.closed.callback(None)

    def stop(self) -> None:
        self._stopped = True
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]


async def attack(port: int, attackers: list[Attacker]) -> None:
    """Connect ``attackers`` to ``port``, from the attackers' addresses in turn."""
    for n, attacker in enumerate(attackers):
        address = ATTACKERS[n % len(ATTACKERS)]
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(address, 0)), attacker)


class Bystander(Protocol):
    """A client whose PING is timed: a line or a WebSocket one."""

    def send(self, line: str) -> None: ...

    async def until(self, prefix: str) -> list[str]: ...


async def answered_throughout(bystander: Bystander, seconds: float, every: float = 0.1) -> float:
    """Ping for ``seconds`` (the line protocol's PING, awaiting each PONG): the longest wait for an answer."""
    longest = 0.0
    started = reactor.seconds()  # type: ignore[attr-defined]
    n = 0
    while reactor.seconds() - started < seconds:  # type: ignore[attr-defined]
        n += 1
        asked = reactor.seconds()  # type: ignore[attr-defined]
        bystander.send(f"PING :{n}")
        answer = await Deferred.fromCoroutine(bystander.until("PONG")).addTimeout(10, reactor)
        longest = max(longest, reactor.seconds() - asked)  # type: ignore[attr-defined]
        assert answer[-1] == f"PONG :{n}", answer
        await deferLater(reactor, every)
    return longest
