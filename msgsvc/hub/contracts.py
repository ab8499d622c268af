"""What the hub and its users agree on: records, events, the ports, its refusals, and the rules for
usernames, passwords and a message's text and recipients (every front checks them here).

The hub knows no sockets and no wire format.  Fronts (:mod:`msgsvc.fronts`) adapt it to the
network as :class:`Participant`; persistence goes through a :class:`Store` that answers with
Deferreds, so disk work never blocks routing; the other nodes of a service are a
:class:`Network`.  Observers (the log, a GUI, :mod:`msgsvc.fronts.presence`) subscribe to its
:data:`Event`.  What it refuses, it refuses with :class:`Refused`, in no front's words: each
front says it its own way.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface


class Refusal(Enum):
    """Why the hub, the accounts or the service's state refused what a client asked."""

    ALREADY_REGISTERED = auto()
    NOT_REGISTERED = auto()
    USERNAME_INVALID = auto()
    USERNAME_TAKEN = auto()
    SERVER_FULL = auto()
    UNAVAILABLE = auto()  # the state is unreachable, or not read yet: it may work later
    AUTH_REQUIRED = auto()
    AUTH_FAILED = auto()
    PASSWORD_INVALID = auto()
    RATE_LIMITED = auto()
    TEXT_EMPTY = auto()  # empty, or white space only
    TEXT_TOO_LONG = auto()
    RECIPIENT_INVALID = auto()
    TOO_MANY_RECIPIENTS = auto()


class Refused(Exception):
    """A refusal, and the human text that says why."""

    def __init__(self, refusal: Refusal, text: str) -> None:
        super().__init__(refusal, text)
        self.refusal = refusal
        self.text = text


USERNAME_MAX = 32
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 256
_USERNAME = re.compile(rf"[A-Za-z][A-Za-z0-9_.-]{{0,{USERNAME_MAX - 1}}}")


def username_key(name: str) -> str:
    """The case-insensitive identity of a username."""
    return name.casefold()


def is_valid_username(name: str) -> bool:
    """Whether ``name`` may be registered: 1-32 of ``A-Z a-z 0-9 _ . -``, a letter first."""
    return _USERNAME.fullmatch(name) is not None


def check_password_rules(password: str) -> str:
    """``password`` in Unicode normal form C, or Refused(PASSWORD_INVALID) saying what is wrong."""
    password = unicodedata.normalize("NFC", password)
    if len(password) < PASSWORD_MIN_CHARS:
        raise Refused(Refusal.PASSWORD_INVALID, f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise Refused(
            Refusal.PASSWORD_INVALID, f"a password may hold at most {PASSWORD_MAX_BYTES} bytes of UTF-8"
        )
    return password


def message_text(text: str, limit: int) -> str:
    """``text`` if it may be sent, or Refused: TEXT_EMPTY (nothing but white space), TEXT_TOO_LONG
    (over ``limit`` bytes of UTF-8)."""
    if not text or text.isspace():
        raise Refused(Refusal.TEXT_EMPTY, "empty message text")
    size = len(text.encode("utf-8"))
    if size > limit:
        raise Refused(Refusal.TEXT_TOO_LONG, f"message text is {size} bytes; the limit is {limit}")
    return text


def recipient_names(names: Sequence[str], limit: int) -> tuple[str, ...]:
    """``names``, each once however it is spelled (as first spelled), or Refused: RECIPIENT_INVALID
    for the first that is no username, TOO_MANY_RECIPIENTS past ``limit`` of them."""
    if len(names) == 1 and is_valid_username(names[0]):  # a unicast
        return (names[0],)
    distinct: dict[str, str] = {}
    for name in names:
        if not is_valid_username(name):
            raise Refused(Refusal.RECIPIENT_INVALID, f"not a valid recipient name: {name!r}")
        distinct.setdefault(username_key(name), name)
    if len(distinct) > limit:
        raise Refused(Refusal.TOO_MANY_RECIPIENTS, f"{len(distinct)} recipients; the limit is {limit}")
    return tuple(distinct.values())


class Kind(str, Enum):
    """How a message was addressed."""

    UNICAST = "unicast"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"


@dataclass
class UserRecord:
    """One entry of the cumulative username log."""

    name: str
    first_seen: float
    last_seen: float
    protected: bool = False  # its owner set a password


@dataclass(slots=True, eq=False)
class Message:
    """A routed text message.  Compared and hashed by identity; slotted for speed, not to be changed."""

    sender: str
    kind: Kind
    #: Who it was addressed to: every named user in the log (online or not), in the log's
    #: spelling; names never registered are left out.  Empty for a broadcast.
    recipients: tuple[str, ...]
    text: str


@dataclass(slots=True)
class Report:
    """What a sender is told: how many got it, which named users are offline, which of those get it later."""

    delivered: int
    offline: tuple[str, ...]
    queued: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserView:
    """A username log entry with its presence, as observers and clients see it."""

    name: str
    online: bool
    first_seen: float
    last_seen: float
    peer: str | None  # the address of an online user
    front: str | None  # the client protocol of an online user: tcp, web or irc
    since: float | None  # when an online user registered
    protected: bool
    queued: int  # messages waiting for it
    node: str | None = None  # the node an online user is on, with --redis


@dataclass(frozen=True)
class RemoteUser:
    """A user online on another node of the service (``--redis``)."""

    name: str
    node: str
    peer: str
    front: str
    since: float


@dataclass(frozen=True)
class Queued:
    """A message waiting for its recipient: ``id`` grows with every message queued."""

    id: int
    sender: str
    kind: str
    recipients: tuple[str, ...]
    text: str
    sent_at: float


@dataclass(frozen=True)
class Enqueue:
    """Queue one message for each of ``recipients`` (name keys) that has room, in order, while the
    sender's quota and the total have room too."""

    recipients: tuple[str, ...]
    sender: str
    kind: str
    group: tuple[str, ...]  # whom it was addressed to, as MSG names them
    text: str
    sent_at: float
    limit: int  # messages a recipient may have waiting
    oldest: float  # messages sent before this have expired
    sender_limit: int  # messages that may wait from one sender, for all its recipients together
    total_limit: int  # messages that may wait in all the queues together


class Participant(Protocol):
    """A client connection as the hub sees it."""

    #: the client protocol it came by: "tcp" (the line protocol), "web" or "irc"
    front: str

    def receive(self, message: Message) -> None:
        """Deliver ``message``; the same object goes to every recipient."""

    def notice(self, text: str) -> None:
        """Deliver a notice from the server's operator."""

    def kick(self, reason: str) -> None:
        """The operator disconnects it, telling the client ``reason``."""

    def drop(self, reason: str) -> None:
        """The server disconnects it (its name could not be kept), telling the client ``reason``."""

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        """Deliver messages that waited for this user; ``waiting`` more are queued after them."""


class IUser(Interface):
    """A user logged in to the hub: what a front does on its behalf (as ``twisted.words``'s ``IUser``).

    The accounts' realm makes one at login (:class:`msgsvc.hub.user.User`); the front keeps it, and
    acts through it until it logs out.  Each of its calls refuses NOT_REGISTERED before a login
    (:class:`msgsvc.hub.user.Unregistered`).
    """

    name = Attribute("The name as the username log spells it.")

    def send(names: Sequence[str], text: str, queue: bool = True) -> Report | Deferred[Report]:
        """Unicast (one name) or multicast (several) ``text``: see :meth:`msgsvc.hub.core.Hub.send`."""

    def broadcast(text: str) -> Report | Deferred[Report]:
        """Send ``text`` to everyone online but this user: see :meth:`msgsvc.hub.core.Hub.broadcast`."""

    def acknowledge(up_to: int) -> None:
        """The user has the queued messages up to id ``up_to``: drop them; send the next page."""

    def deliver_backlog() -> None:
        """Send the user the next page of what waited for it (none: nothing)."""

    def log_out() -> None:
        """The user leaves (or its login ends unfinished): its name is free again.  Harmless twice."""


class Store(Protocol):
    """Where the username log and the offline queue persist; each fires once durable."""

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        """Add ``name`` to the log or move its last-seen time."""

    def enqueue(self, message: Enqueue) -> Deferred[tuple[str, ...]]:
        """Queue a message; the recipient keys it was queued for.

        The counts it checks (each recipient's, the sender's, the total) and
        the messages it adds change together, atomically.
        """

    def backlog(self, name: str, after: int, oldest: float, limit: int) -> Deferred[tuple[list[Queued], int]]:
        """A page of what waits for ``name`` after id ``after``, and how many wait after that page."""

    def acknowledge(self, name: str, up_to: int) -> Deferred[int]:
        """Drop what waited for ``name`` up to id ``up_to``; how many are left."""

    def expire(self, oldest: float) -> Deferred[dict[str, int]]:
        """Drop what was sent before ``oldest``; how many wait for each recipient key."""


class Network(Protocol):
    """Where this node's users' names are held, and the other nodes of its service.

    A server alone is a network of one node (:class:`msgsvc.hub.nodes.Alone`);
    :mod:`msgsvc.state.cluster` joins several.  The cluster calls the hub back with what
    happens elsewhere through :class:`msgsvc.hub.nodes.Nodes`.
    """

    @property
    def node(self) -> str | None:
        """This node's name, as the server window shows it; None for a server alone."""

    def claim(
        self, name: str, peer: str, front: str, since: float, known: bool
    ) -> Deferred[tuple[str, bool]]:
        """Hold ``name`` for a user of this node in the whole service, and put it in the log.

        Fires with the name as the log spells it and whether it is new to the
        log (``known``: this node's log has it); fails with
        Refused(USERNAME_TAKEN) if another node holds it, or with a
        StoreError if that cannot be known now.
        """

    def release(self, name: str, when: float) -> None:
        """The user of this node holding ``name`` left at ``when``."""

    def route(self, message: Message, keys_by_node: dict[str, list[str]]) -> Deferred[set[str]]:
        """Send ``message`` to these users of other nodes; fires with the nodes that took it, to deliver
        to those of its users still connected when it reads it.  A node not alive within its lease,
        or too far behind to take more, is left out.
        """

    def broadcast(self, message: Message) -> Deferred[set[str]] | None:
        """Send a broadcast to every other node, as :meth:`route` does; None if none can take it now."""

    def reachable(self) -> bool:
        """Whether the service's state is reachable now: without it, only this node's users are."""


@dataclass(frozen=True)
class QueuePolicy:
    """How much may wait for an offline protected user (the documented defaults)."""

    limit: int = 1000  # messages per recipient
    age: float = 30 * 86400.0  # seconds before a waiting message expires
    page: int = 100  # messages delivered before the client must acknowledge
    per_sender: int = 2000  # messages waiting from one sender, for all its recipients together
    total: int = 100_000  # messages waiting in all the queues together


@dataclass(frozen=True)
class UserJoined:
    name: str
    peer: str
    first_time: bool
    node: str | None = None  # another node's user


@dataclass(frozen=True)
class UserLeft:
    name: str
    peer: str
    node: str | None = None


@dataclass(frozen=True)
class RegistrationRefused:
    name: str
    peer: str
    refusal: Refusal
    reason: str


@dataclass(frozen=True)
class UserKicked:
    name: str
    reason: str


@dataclass(frozen=True)
class ProtectionChanged:
    """A name was protected, got a new password, or lost its protection (``reason`` says why)."""

    name: str
    protected: bool
    reason: str


@dataclass(frozen=True)
class UserRemoved:
    """The operator removed ``name`` from the username log (with its password and what waited for it)."""

    name: str
    reason: str


@dataclass(frozen=True)
class QueueChanged:
    """How many messages wait for ``name`` now."""

    name: str
    waiting: int


@dataclass(frozen=True)
class LogLoaded:
    """The username log was read from the state: at start-up, or (``resync``) from Redis with who is
    online on the other nodes, once this node's subscription is up (again)."""

    names: int
    resync: bool = False


@dataclass(frozen=True)
class NoticeSent:
    text: str
    delivered: int


@dataclass(frozen=True)
class Connected:
    """A connection opened (announced by the server, not the hub)."""

    peer: str


@dataclass(frozen=True)
class Disconnected:
    peer: str
    reason: str


@dataclass(frozen=True)
class ClientError:
    """A client's line was refused; ``code`` names why, as its front does (an error code)."""

    peer: str
    code: str
    text: str


@dataclass(frozen=True)
class ClientDropped:
    """The server cut a client off to protect the others."""

    peer: str
    reason: str


Event = (
    UserJoined
    | UserLeft
    | RegistrationRefused
    | UserKicked
    | ProtectionChanged
    | UserRemoved
    | QueueChanged
    | LogLoaded
    | NoticeSent
    | Connected
    | Disconnected
    | ClientError
    | ClientDropped
)

