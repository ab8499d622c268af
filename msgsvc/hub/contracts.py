"""What the hub and its users agree on: records, events, the ports, its refusals, and the rules for
usernames, passwords and a message's text and recipients (every front checks them here).

The hub knows no sockets and no wire format.  Fronts (:mod:`msgsvc.fronts`) adapt it to the
network as :class:`Participant`; persistence goes through a :class:`Store` that answers with
Deferreds, so disk work never blocks routing; the other nodes of a service are a
:class:`Network`.  Observers (the log, a GUI, :mod:`msgsvc.fronts.presence`) subscribe to its
:data:`Event`.  What it refuses, it refuses with :class:`Refused`, in no front's words: each
front says it its own way.

History (docs/protocol.rst "History"): every message gets an id and a time from :class:`MessageIds`
as the hub takes it; it is kept, as :class:`Stored`, in its conversation (:func:`conversation_key`)
in a :class:`HistoryStore`.  The hub decides who may read what (:class:`IUser`'s history methods);
the store only answers ranges.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
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
    HISTORY_OFF = auto()  # the server keeps no history (--history-days 0)
    HISTORY_FORBIDDEN = auto()  # a direct conversation's history, asked by an unprotected name or an outsider


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


# -- history: ids, conversations (docs/protocol.rst "History") -----------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MESSAGE_ID = re.compile("[0-7][0-9A-HJKMNP-TV-Z]{25}")
_RANDOM_BITS = 80


def _encode_id(value: int) -> str:
    """``value`` (128 bits) as 26 characters of Crockford's base 32, the most significant first."""
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def message_id(text: str) -> str | None:
    """``text`` as a message id (upper case), or None if it is not one."""
    text = text.upper()
    return text if _MESSAGE_ID.fullmatch(text) else None


def message_id_time(message_id: str) -> float:
    """The time (seconds since the epoch, to the millisecond) in a valid message id."""
    millis = 0
    for char in message_id[:10]:  # 50 bits: 2 zero bits, then the 48 of the time
        millis = millis * 32 + _CROCKFORD.index(char)
    return millis / 1000


def _millis(when: float) -> int:
    """The millisecond ``when`` falls in (a microsecond's grace: 0.116 s times 1000 may be 115.99...)."""
    return max(int(when * 1000 + 0.001), 0)


def message_id_floor(when: float) -> str:
    """The least id of the millisecond ``when`` falls in: every message of an earlier millisecond has
    a smaller id, every one of it or later one at least this (how a time becomes a position)."""
    return _encode_id(_millis(when) << _RANDOM_BITS)


def message_id_below(position: str) -> str:
    """The greatest id below ``position`` (an id, or :func:`message_id_floor`): what is above it is
    ``position`` and what is above that ("" below the least)."""
    digits = [_CROCKFORD.index(char) for char in position]
    for at in range(len(digits) - 1, -1, -1):
        if digits[at]:
            digits[at] -= 1
            return "".join(_CROCKFORD[d] for d in digits)
        digits[at] = 31
    return ""


class MessageIds:
    """Makes this node's message ids: ULID-like, time-ordered, unique across nodes with no round trip.

    An id is 48 bits of milliseconds since the epoch, then 80 bits: random for the node's first id of a
    millisecond, one more for each further one, so this node's ids always grow in the order made.  A
    clock that goes back leaves the ids at the latest millisecond (counting on) until it catches up.
    """

    def __init__(self, clock: IReactorTime, random: Callable[[int], bytes] = os.urandom) -> None:
        self._clock = clock
        self._random = random
        self._millis = -1
        self._low = 0

    def make(self) -> tuple[str, float]:
        """A new id, and its time (seconds since the epoch, to the millisecond): the message's."""
        millis = _millis(self._clock.seconds())
        if millis > self._millis:
            self._millis = millis
            self._low = self._fresh()
        else:
            self._low += 1
            if self._low >> _RANDOM_BITS:  # 2**79 ids in one millisecond: never, but stay unique
                self._millis += 1
                self._low = self._fresh()
        return _encode_id(self._millis << _RANDOM_BITS | self._low), self._millis / 1000

    def _fresh(self) -> int:
        """80 random bits with the top one clear: room to count on within the millisecond."""
        return int.from_bytes(self._random(_RANDOM_BITS // 8), "big") >> 1


#: The conversation of broadcasts.
ALL = "#all"


def conversation_key(sender: str, kind: Kind, recipients: Sequence[str]) -> str | None:
    """The conversation a message is kept in: :data:`ALL` for a broadcast, else the name keys of its
    ``recipients`` (as :attr:`Message.recipients`: names in the log) and its ``sender``, each once,
    sorted and joined by commas; None for a unicast or multicast that named nobody in the log."""
    if kind is Kind.BROADCAST:
        return ALL
    if not recipients:
        return None
    return ",".join(sorted({username_key(name) for name in (sender, *recipients)}))


def conversation_named(text: str, reader: str, limit: int) -> str:
    """The conversation a client names (``#all``, or names joined by commas in any case and order, its
    own included or not), as :func:`conversation_key` makes it, ``reader`` a participant; or Refused:
    RECIPIENT_INVALID for a name that is no username, TOO_MANY_RECIPIENTS past ``limit`` names besides
    the reader's."""
    if text.casefold() == ALL:
        return ALL
    others = {username_key(n) for n in recipient_names(text.split(","), limit + 1)} - {username_key(reader)}
    if len(others) > limit:
        raise Refused(Refusal.TOO_MANY_RECIPIENTS, f"{len(others)} names besides yours; the limit is {limit}")
    return ",".join(sorted({*others, username_key(reader)}))


def participants(conversation: str) -> tuple[str, ...]:
    """The name keys of a direct conversation's participants; none for :data:`ALL`."""
    return () if conversation == ALL else tuple(conversation.split(","))


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
    #: Its id and time (:meth:`MessageIds.make`), made by the node that took it from its sender, before
    #: anyone gets it; other nodes get them with the message.
    id: str
    at: float


@dataclass(slots=True)
class Report:
    """What a sender is told: its message's id and time, how many got it, which named users are
    offline, which of those get it later."""

    id: str  # Message.id
    at: float  # Message.at
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
    message_id: str = ""  # the message's own id (Message.id); "" if queued before ids were kept


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
    message_id: str  # the message's own id (Message.id)


@dataclass(frozen=True, slots=True)
class Stored:
    """A message as the history keeps it (a :class:`Message` with its conversation)."""

    id: str  # Message.id: orders the history
    at: float  # Message.at, the id's time
    conversation: str  # conversation_key()
    sender: str  # as the log spelled it
    kind: Kind
    recipients: tuple[str, ...]  # Message.recipients: empty for a broadcast
    text: str


@dataclass(frozen=True)
class Page:
    """A page of one conversation's history, as a reader may read it: ``entries`` oldest first;
    ``more``: readable entries exist beyond them, in the direction asked (older, or newer)."""

    conversation: str
    entries: tuple[Stored, ...]
    more: bool


@dataclass(frozen=True)
class HistoryPolicy:
    """What the history keeps and serves (the documented defaults)."""

    days: float = 90.0  # --history-days: entries older are dropped; 0: no history at all, nothing written
    keep: int = 10_000  # --history-max: entries per conversation
    page: int = 100  # most entries one HISTORY (or CHATHISTORY) gets
    default_page: int = 50  # a HISTORY without a count
    catch_up: int = 50  # most entries per conversation at login
    conversations: int = 100  # most conversations CONVERSATIONS lists
    expire_every: float = 3600.0  # seconds between expiries

    @property
    def kept(self) -> bool:
        return self.days > 0

    @property
    def age(self) -> float:
        """Seconds an entry is kept."""
        return self.days * 86400.0


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

    # History: each fails with Refused: HISTORY_OFF (none kept), HISTORY_FORBIDDEN (a direct
    # conversation and this user not protected now, or not a participant), UNAVAILABLE (the store).
    # ``conversation`` is a key (conversation_named()); what this user may read is decided here, by the
    # hub: ALL whole; a direct conversation from the time its name was last protected.

    def history(conversation: str, before: str | None, limit: int) -> Deferred[Page]:
        """Up to ``limit`` of the readable entries of ``conversation`` with ids before ``before`` (an
        id or message_id_floor() of a time; None: the newest), oldest first; ``more``: older exist."""

    def history_after(conversation: str, after: str, limit: int) -> Deferred[Page]:
        """Up to ``limit`` of the readable entries with ids after ``after``, oldest first; ``more``:
        newer exist."""

    def conversations(limit: int) -> Deferred[list[Stored]]:
        """The latest readable entry of each conversation this user may read, newest first: ALL (if it
        holds any) and the direct ones it takes part in."""

    def catch_up() -> Deferred[list[Page]]:
        """The login's catch-up: for ALL, the latest ``HistoryPolicy.catch_up`` entries sent since this
        name last logged out (a name new to the log: the latest), ``more`` if older exist.  Direct
        conversations are not in it: what came while away is the offline queue's (DELAYED)."""


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


class HistoryStore(Protocol):
    """Where the history persists (with ``--history-days 0`` nothing calls it).

    It answers ranges of ids in a conversation; who may read what is the hub's to decide, and it says
    so with ``since``: only entries whose ``at`` is at least ``since`` are answered or counted (0: all).
    Ids are :class:`MessageIds` ids; ``before``/``after`` need not be ids of that conversation: any id
    (or :func:`message_id_floor`) is a position.  Names (``member``, ``sender``, ``name``) are name keys
    or names, as in :class:`Store`; conversations are :func:`conversation_key` keys.
    """

    def append(self, entries: Sequence[Stored], keep: int) -> Deferred[None]:
        """Keep ``entries`` (one reactor pass's, in order) each in its conversation, in the next group
        commit; each conversation keeps its newest ``keep`` entries (trimmed at once, or in steps of a
        few percent at most until the next :meth:`expire_history`).  Fires once all are durable; the hub
        does not wait for it to deliver."""

    def page_before(
        self, conversation: str, before: str | None, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        """Up to ``limit`` entries of ``conversation`` with ids below ``before`` (None: the newest), the
        newest such, oldest first; and whether older ones exist (at or after ``since``)."""

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        """Up to ``limit`` entries of ``conversation`` with ids above ``after`` ("" : from the first),
        the oldest such, oldest first; and whether newer ones exist."""

    def latest(self, member: str, since: float, limit: int) -> Deferred[list[Stored]]:
        """The latest entry of each direct conversation ``member`` takes part in (ALL is not one), if at
        or after ``since``: the ``limit`` newest, newest first."""

    def protected_since(self, name: str) -> Deferred[float | None]:
        """When ``name`` was last protected (its password set while it had none), None if it is not
        protected now: kept by :meth:`~msgsvc.auth.store.AccountStore.set_password_hash` (a new
        password of a protected name leaves it), dropped by ``reset`` and ``remove``."""

    def expire_history(self, oldest: float, keep: int) -> Deferred[int]:
        """Drop the entries sent before ``oldest``, and each conversation's past its newest ``keep``;
        how many were dropped."""

    def purge_history(self, sender: str) -> Deferred[int]:
        """Drop every entry ``sender`` sent, in every conversation (``#all`` too); how many."""

    def history_size(self) -> Deferred[int]:
        """How many entries are kept, in all."""


class Network(Protocol):
    """Where this node's users' names are held, and the other nodes of its service.

    A server alone is a network of one node (:class:`msgsvc.hub.nodes.Alone`);
    :mod:`msgsvc.state.cluster` joins several.  The cluster calls the hub back with what
    happens elsewhere through its :class:`NetworkListener`.
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


class NetworkListener(Protocol):
    """What a :class:`Network` of several nodes tells the hub of what happens elsewhere, and asks of
    it (:class:`msgsvc.hub.nodes.Nodes`)."""

    def remote_message(self, message: Message, keys: Sequence[str]) -> None:
        """Deliver a message from another node's user to these users here (a broadcast: to all)."""

    def remote_joined(self, user: RemoteUser, first_seen: float, protected: bool, first_time: bool) -> None:
        """``user`` came online on another node."""

    def remote_left(self, key: str, node: str, when: float) -> None:
        """The user holding name ``key`` on ``node`` left it (or the node died) at ``when``."""

    def remote_protected(self, key: str) -> None:
        """A password was set for the name ``key`` (on any node)."""

    def resync(self, records: Iterable[UserRecord], online: Iterable[RemoteUser]) -> None:
        """Take the log and who is online elsewhere as the network has them now (after it reconnected)."""

    def local_users(self) -> list[tuple[str, str, str, float]]:
        """This node's online users: name, peer, front, since (to claim again after a reconnection)."""

    def drop_local(self, name: str | None, reason: str) -> None:
        """Disconnect this node's user ``name`` (None: every one), whose claim the network lost."""


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

