"""What the hub and its users agree on: the records that cross its ports, the ports themselves, and its
refusals (as twisted.words' iwords holds its interfaces).

The hub knows no sockets and no wire format.  Fronts (:mod:`msgsvc.fronts`) adapt it to the
network as :class:`Participant`; persistence goes through a :class:`Store` that answers with
Deferreds, so disk work never blocks routing; the other nodes of a service are a
:class:`Network`.  Observers (the log, a GUI, :mod:`msgsvc.fronts.presence`) subscribe to its
events (:mod:`msgsvc.hub.events`).  What it refuses, it refuses with :class:`Refused`, in no
front's words: each front says it its own way; the rules every front checks are
:mod:`msgsvc.hub.rules`.

History (docs/protocol.rst "History"): every message gets an id and a time (:mod:`msgsvc.hub.ids`)
as the hub takes it; it is kept, as :class:`Stored`, in its conversation
(:mod:`msgsvc.hub.conversations`) in a :class:`HistoryStore`.  The hub decides who may read what
(:class:`IUser`'s history methods); the store only answers ranges.

Rooms (docs/protocol.rst "Rooms"; :mod:`msgsvc.hub.rooms`): a :class:`RoomRecord` each, kept in a
:class:`RoomStore`; what happens in one is a :data:`RoomEvent`, which its members' sessions are told
(:meth:`Participant.room_event`) and the other nodes too (:meth:`Network.room_changed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import TYPE_CHECKING, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from msgsvc.hub.kept import Kept


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
    SESSIONS_FULL = auto()  # an account with --max-sessions sessions open
    TOO_MANY_NEW_GROUPS = auto()  # a multicast opening a group past --new-groups-per-day of its sender's
    # Rooms (docs/protocol.rst "Rooms"):
    ROOM_INVALID = auto()  # not a room name
    NO_SUCH_ROOM = auto()  # no such room (or a secret one, asked by an outsider)
    NOT_IN_ROOM = auto()  # the asker is no member (PART, TOPIC, MODE, KICK, INVITE; SEND with +n)
    USER_NOT_IN_ROOM = auto()  # the name a KICK or a MODE o/v names is no member
    ALREADY_IN_ROOM = auto()  # an INVITE of a member
    NOT_ROOM_OPERATOR = auto()
    INVITE_ONLY = auto()  # +i and not invited
    BANNED = auto()
    BAD_KEY = auto()  # +k and not its key
    ROOM_FULL = auto()  # +l, or --max-room-members
    MODERATED = auto()  # +m and neither operator nor voiced
    TOO_MANY_ROOMS = auto()  # --max-rooms-per-user
    CANNOT_LEAVE = auto()  # #all
    MODE_INVALID = auto()  # a mode change of no mode, or without its argument
    BAN_LIST_FULL = auto()  # a +b past ROOM_BANS_MAX


class Refused(Exception):
    """A refusal, and the human text that says why."""

    def __init__(self, refusal: Refusal, text: str) -> None:
        super().__init__(refusal, text)
        self.refusal = refusal
        self.text = text


class Kind(str, Enum):
    """How a message was addressed."""

    UNICAST = "unicast"
    MULTICAST = "multicast"
    BROADCAST = "broadcast"
    ROOM = "room"  # recipients: the room's name (as created)


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
    #: Its id and time (:meth:`msgsvc.hub.ids.MessageIds.make`), made by the node that took it from its
    #: sender, before anyone gets it; other nodes get them with the message.
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
class SessionView:
    """One session of an online account, as the operator sees it: ``id`` names it to
    :meth:`~msgsvc.hub.core.Hub.kick_session` (0: the first session of another node, which only that node's
    operator can disconnect)."""

    id: int
    front: str  # tcp, web or irc
    peer: str
    since: float
    node: str | None = None  # with --redis


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
    sessions: tuple[SessionView, ...] = ()  # an online user's sessions here, oldest first, then other nodes'


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


@dataclass(slots=True)
class Stored:
    """A message as the history keeps it (a :class:`Message` with its conversation).  Slotted for speed
    (one is made for every message kept), not to be changed."""

    id: str  # Message.id: orders the history
    at: float  # Message.at, the id's time
    conversation: str  # conversation_key()
    sender: str  # as the log spelled it
    kind: Kind
    recipients: tuple[str, ...]  # Message.recipients: empty for a broadcast
    text: str


@dataclass(frozen=True, slots=True)
class Summary:
    """A conversation as its reader's list shows it: its latest entry the reader may read, how many
    entries after the reader's read position others sent (up to a cap), and that position (None:
    none kept); both None if the lister did not ask for them."""

    latest: Stored
    unread: int | None
    read: str | None


@dataclass(frozen=True)
class Page:
    """A page of one conversation's history, as a reader may read it: ``entries`` oldest first;
    ``more``: readable entries exist beyond them, in the direction asked (older, or newer)."""

    conversation: str
    entries: tuple[Stored, ...]
    more: bool


#: The store's failed write or read that the hub asks again: after RETRY_FIRST seconds, then after twice as
#: long each time it fails, up to RETRY_MOST (:func:`retry_after`).
RETRY_FIRST, RETRY_MOST = 0.2, 5.0


def retry_after(waited: float) -> float:
    """Seconds before the next try of what failed again after ``waited`` seconds (0: at its first try)."""
    return min(2 * waited, RETRY_MOST) if waited else RETRY_FIRST


#: seconds between the counts an :class:`Outage` logs while it goes on
OUTAGE_EVERY = 60.0


class Outage:
    """The failures of one kind of work (``what``, as in 'could not *route a message*'), and what each
    gave up (``lost``: said with each line), logged on ``log`` by ``clock``'s time, a few lines an
    outage rather than a line (or a traceback) each: while the store refuses (Redis away, out of memory,
    a replica's READONLY; SQLite locked) every message may fail the same way (attack38 F3: 13,051 lines
    in 5 s from 6 senders).  The first is logged with its traceback, then how many failed since: once
    the work succeeds again, and every :data:`OUTAGE_EVERY` seconds while failures go on."""

    def __init__(self, log: Logger, clock: IReactorTime, what: str, lost: str) -> None:
        self._log = log
        self._clock = clock
        self._what = what
        self._lost = lost
        self._began: float | None = None  # when the first failure came; None: no outage
        self._said = 0.0  # when the last line was logged
        self._count = 0  # failures since that line

    def failed(self, failure: Failure) -> None:
        """One more failure: the first of an outage is logged whole; the others counted, said each minute."""
        now = self._clock.seconds()
        if self._began is None:
            self._began = self._said = now
            self._log.failure(
                "could not {what}: {why} ({lost}; until it works again, the failures are counted)",
                failure,
                level=LogLevel.warn,
                what=self._what,
                why=failure.getErrorMessage(),
                lost=self._lost,
            )
            return
        self._count += 1
        if now - self._said >= OUTAGE_EVERY:
            self._log.warn(
                "could not {what} {count} more times in {seconds:.0f} s: {why} ({lost})",
                what=self._what,
                count=self._count,
                seconds=now - self._said,
                why=failure.getErrorMessage(),
                lost=self._lost,
            )
            self._said, self._count = now, 0

    def over(self) -> None:
        """The work succeeded: an outage under way ends, with how many failed since its last line."""
        if self._began is None:
            return
        self._log.info(
            "{what}: works again after {seconds:.1f} s; {count} more failed since the last line ({lost})",
            what=self._what,
            seconds=self._clock.seconds() - self._began,
            count=self._count,
            lost=self._lost,
        )
        self._began, self._count = None, 0


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
    backlog: int = 10_000  # entries the store failed to take, kept to ask again (the newest)
    retry_for: float = 60.0  # seconds after its sending an entry the store failed to take is asked again
    new_groups: int = 100  # --new-groups-per-day: group conversations one name may open in a day
    address_groups: int = 500  # --new-groups-per-address: those the names of one address may open in a day

    @property
    def kept(self) -> bool:
        return self.days > 0

    @property
    def age(self) -> float:
        """Seconds an entry is kept."""
        return self.days * 86400.0


@dataclass(slots=True)
class Member:
    """A member of a room."""

    name: str  # as the log spells it
    op: bool = False  # a room operator
    voice: bool = False  # may speak in a moderated room
    since: float = 0.0  # when it joined
    #: The room's version (RoomRecord.version) its op and voice were last set at; 0: never
    version: int = 0
    #: Which of the name's memberships of the room this is: the version the store gave its entry, later
    #: than any the room had (RoomStore.enter); 0: its creator's, or entered before entries were numbered
    joined: int = 0


@dataclass(frozen=True, slots=True)
class Ban:
    """A mask banned from a room, by whom and when: ``nick!user@host`` with ``*`` and ``?`` (a name
    alone is ``name!*@*``; :func:`~msgsvc.hub.rules.ban_mask`), case-insensitive."""

    mask: str
    by: str
    at: float


#: The modes a room may have, each a letter (docs/protocol.rst "Rooms"): invite-only, moderated, no
#: messages from outside, secret, topic lock; a key (``k``) and a limit (``l``) are a record's own fields.
ROOM_FLAGS = "imnst"
#: The modes of a new room.
ROOM_DEFAULT_MODES = "nt"
#: The greatest member limit (``+l``).
ROOM_LIMIT_MAX = 1_000_000
#: The most invitations pending in a room, as its store keeps them: past it, a new one ends the oldest.
ROOM_INVITES_MAX = 100
#: The most bans a room holds (IRC's ``MAXLIST=b:100``): past it, ``+b`` is refused (``BAN_LIST_FULL``).
ROOM_BANS_MAX = 100


@dataclass
class RoomRecord:
    """A room as the hub (:mod:`msgsvc.hub.rooms`) and its :class:`RoomStore` keep it; its key is
    :func:`~msgsvc.hub.rules.room_key` of its ``name``."""

    name: str  # "#" and the name, as created
    created: float
    founder: str | None  # the name that created it; None: unknown
    topic: str = ""
    topic_by: str | None = None
    topic_at: float | None = None
    modes: str = ROOM_DEFAULT_MODES  # letters of ROOM_FLAGS, in alphabetical order
    key: str | None = None  # +k
    limit: int | None = None  # +l
    #: The version its store gave the last change of its modes, key, limit and bans (RoomStore.set_modes)
    #: or entry of a member (RoomStore.enter)
    version: int = 0
    members: dict[str, Member] = field(default_factory=dict)  # by name key
    bans: dict[str, Ban] = field(default_factory=dict)  # by mask key (msgsvc.hub.rules.mask_key)


def topic_stamp(at: float | None, by: str | None) -> tuple[float, str]:
    """What orders two topics of a room set at once on two nodes: the later stands (its time, then the
    setter's name in code-point order), on every node and in the store alike."""
    return at or 0.0, by or ""


def changed_modes(
    modes: str, key: str | None, limit: int | None, changes: Iterable[ModeChange]
) -> tuple[str, str | None, int | None]:
    """A room's flags, key and limit once ``changes`` are made in turn (o, v and b passed over): as each
    store and node computes them."""
    for change, arg in changes:
        on, letter = change[0] == "+", change[1]
        if letter in ROOM_FLAGS:
            modes = "".join(sorted(set(modes) | {letter} if on else set(modes) - {letter}))
        elif letter == "k":
            key = arg if on else None
        elif letter == "l":
            limit = int(arg) if on and arg is not None else None
    return modes, key, limit


@dataclass(frozen=True)
class Joining:
    """A name asking to enter a room, as its node knows it: what :meth:`RoomStore.enter` decides by,
    with what the store keeps (:func:`~msgsvc.hub.rules.admission`)."""

    name: str  # as the log spells it
    since: float  # when it asked: its membership's start
    key: str | None = None  # the key it gave
    #: What a ban may match: ``nick!user@host`` (:func:`~msgsvc.hub.rules.mask_key`), a host each
    masks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModesKept:
    """A room's modes as its store keeps them once a change of them is written (:meth:`RoomStore.set_modes`):
    its flags, key, limit and bans (every one, oldest first) and their version, and the members the change
    named (op, voice, version)."""

    modes: str
    key: str | None
    limit: int | None
    version: int
    members: tuple[Member, ...] = ()
    bans: tuple[Ban, ...] = ()


@dataclass(frozen=True)
class MemberView:
    """A member as a client sees it."""

    name: str
    online: bool  # on any node
    op: bool
    voice: bool


@dataclass(frozen=True)
class RoomView:
    """A room as a client sees it (JOIN's answer, MEMBERS, MODE's query: ``key`` and ``bans`` only for
    members), or the operator (everything)."""

    name: str
    created: float
    founder: str | None
    topic: str
    topic_by: str | None
    topic_at: float | None
    modes: str
    key: str | None
    limit: int | None
    members: tuple[MemberView, ...]  # by name, case-insensitively
    bans: tuple[Ban, ...]  # oldest first


@dataclass(frozen=True)
class RoomInfo:
    """A room as ROOMS lists it."""

    name: str
    members: int
    topic: str


# What happens in a room (RoomEvent): each is told to the sessions of the room's members (Invited: the
# invitee's) and to the other nodes, which apply it to their view of the room and tell theirs.


@dataclass(frozen=True)
class Entered:
    """``member`` joined ``room``; ``created``: its JOIN created the room (founder ``member``, modes
    :data:`ROOM_DEFAULT_MODES`, created at ``member.since``)."""

    room: str
    member: Member
    created: bool = False


@dataclass(frozen=True)
class Parted:
    """``name`` left ``room`` saying ``reason``; ``quit``: its last session left the service (an
    unprotected name's memberships end then)."""

    room: str
    name: str
    reason: str
    quit: bool = False


@dataclass(frozen=True)
class Kicked:
    room: str
    name: str
    by: str
    reason: str


@dataclass(frozen=True)
class TopicSet:
    """The topic of ``room`` (set by ``by`` at ``at``; None: never set)."""

    room: str
    topic: str
    by: str | None
    at: float | None


#: A mode change: "+i", "-m", "+k" with the key, "+l" with the limit, "+o"/"-o"/"+v"/"-v"/"+b"/"-b"
#: with a name (as the log spells it); the argument None for the others (and "-k", "-l").
ModeChange = tuple[str, str | None]


@dataclass(frozen=True)
class ModeSet:
    """``by`` changed ``room``'s modes: ``changes`` in order, each applied.  Between nodes, ``kept`` is
    what the store kept of the flags, key, limit, bans, ops and voices, taken where newer than a node
    holds (docs/scaling.rst "How it works"); a node hears a change once it is kept, with it."""

    room: str
    by: str
    changes: tuple[ModeChange, ...]
    kept: ModesKept | None = None


@dataclass(frozen=True)
class Invited:
    """``by`` invited ``name`` to ``room`` (told to ``name``'s sessions)."""

    room: str
    name: str
    by: str


@dataclass(frozen=True)
class RoomGone:
    """The operator deleted ``room`` (``name`` None), or ended the membership of ``name`` in it; the
    members are told (a front tells the others of ``name`` that it parted)."""

    room: str
    reason: str
    name: str | None = None


RoomEvent = Entered | Parted | Kicked | TopicSet | ModeSet | Invited | RoomGone


class Participant(Protocol):
    """A client connection as the hub sees it."""

    #: the client protocol it came by: "tcp" (the line protocol), "web" or "irc"
    front: str
    #: the address the per-address limits count it by (a new room's, here), and a ban's host matches
    host: str
    #: the user part of its mask (an IRC client's USER name); empty on fronts without one: the name then
    ident: str

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

    def read_moved(self, conversation: str, position: str) -> None:
        """The account's read position in ``conversation`` (a key) is now ``position``: another of its
        sessions read up to there."""

    def room_event(self, event: RoomEvent) -> None:
        """What happened in a room this user is in (or, :class:`Invited`, was invited to): every
        session of every member is told, except the session whose request it answers."""


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
    # conversation and this user not protected now, or not a participant; a room it is not in),
    # UNAVAILABLE (the store).
    # ``conversation`` is a key (conversation_named()); what this user may read is decided here, by the
    # hub: ALL whole; a direct conversation from the time its name was last protected.

    def history(conversation: str, before: str | None, limit: int) -> Deferred[Page]:
        """Up to ``limit`` of the readable entries of ``conversation`` with ids before ``before`` (an
        id or message_id_floor() of a time; None: the newest), oldest first; ``more``: older exist."""

    def history_after(conversation: str, after: str, limit: int) -> Deferred[Page]:
        """Up to ``limit`` of the readable entries with ids after ``after``, oldest first; ``more``:
        newer exist."""

    def conversations(limit: int, counts: bool) -> Deferred[list[Summary]]:
        """Each conversation this user may read, by its latest readable entry, newest first: ALL (if it
        holds any), the rooms it is in, and the direct ones it takes part in; with ``counts``, its unread
        count and read position (a store read each: ask only if shown), else None for both."""

    def catch_up(from_reads: bool) -> Deferred[list[Page]]:
        """The login's catch-up: for ALL, the latest ``HistoryPolicy.catch_up`` entries sent since this
        name last logged out (a name new to the log: the latest), ``more`` if older exist.  Direct
        conversations are not in it: what came while away is the offline queue's (DELAYED).
        ``from_reads`` (a protected name's version 10 login): ALL from its read position there if it
        has one, then its rooms and direct conversations with others' entries after their read positions
        (the ``CATCH_UP_CONVERSATIONS`` newest), each its latest ``HistoryPolicy.catch_up`` such."""

    # Read positions (a protected name's): each fails as the history methods do.

    def mark_read(conversation: str, position: str) -> Deferred[str]:
        """This user has read ``conversation`` (a key) up to ``position`` (an id; one past the newest
        message it may read there is taken as that message's): kept if later than what is kept, the
        account's other sessions told (:meth:`Participant.read_moved`); fires with the position kept.
        HISTORY_FORBIDDEN too where no message it may read is kept (nothing is stored)."""

    def read_position(conversation: str) -> Deferred[str | None]:
        """This user's read position in ``conversation`` (a key); None: none kept."""

    # Rooms (docs/protocol.rst "Rooms"): ``room`` is a name as the client wrote it (any case); each
    # fails with Refused (a room Refusal, RATE_LIMITED for a creation past the address's rate, or
    # UNAVAILABLE: the state failed, the change is not kept).  A change is told at once to the other
    # sessions of the members (Participant.room_event); the Deferred fires once it is kept, with the
    # event the asking session is told instead.  ``#all`` is the room of everyone: its state may be
    # asked, it cannot be left, nor changed.

    def join(room: str, key: str | None) -> Deferred[RoomView]:
        """Enter ``room`` (creating it, as its operator, if it does not exist), giving its ``key`` if it
        has one: the room as it is now, with this user in it; a member already: the room as it is."""

    def part(room: str, reason: str) -> Deferred[Parted]:
        """Leave ``room``."""

    def send_room(room: str, text: str) -> Report | Deferred[Report]:
        """Send ``text`` to the members of ``room`` (``#all``: a broadcast): ``delivered`` counts the
        members it reached but this user; ``offline`` and ``queued`` are empty (an offline member reads
        the room's history)."""

    def topic(room: str, text: str | None) -> Deferred[TopicSet]:
        """Set ``room``'s topic to ``text`` (an operator's, under +t); None: ask it (a member, or
        anyone for a room that is not secret)."""

    def invite(room: str, name: str) -> Deferred[Invited]:
        """Invite ``name`` to ``room``, which lets it in past +i (an operator's, under +i)."""

    def kick(room: str, name: str, reason: str) -> Deferred[Kicked]:
        """Put ``name`` out of ``room`` (an operator's)."""

    def mode(room: str, changes: Sequence[ModeChange]) -> Deferred[ModeSet]:
        """Change ``room``'s modes (an operator's): each of ``changes`` in turn, all or none; those that
        change nothing are left out of the answer."""

    def members(room: str) -> Deferred[RoomView]:
        """``room`` as it is (MEMBERS, MODE's query): a member's, or anyone's if it is not secret."""

    def rooms(mine: bool) -> Deferred[list[RoomInfo]]:
        """The rooms this user is in (``mine``), or every room but the secret ones it is not in; by name."""


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
    Ids are :class:`~msgsvc.hub.ids.MessageIds` ids; ``before``/``after`` need not be ids of that
    conversation: any id (or :func:`~msgsvc.hub.ids.message_id_floor`) is a position.  Names
    (``member``, ``sender``, ``name``) are name keys or names, as in :class:`Store`; conversations
    are :func:`~msgsvc.hub.conversations.conversation_key` keys.
    """

    def append(self, kept: Kept, keep: int) -> Deferred[None]:
        """Keep the messages of ``kept`` (a reactor pass's, or more, in order) each in its conversation
        (as ``kept`` has it), in the next group commit; each conversation keeps its newest ``keep``
        entries (trimmed at once, or in steps of a few percent at most until the next
        :meth:`expire_history`).  Fires once all are durable; the hub does not wait for it to deliver.
        An entry whose id is kept already is kept once: a failed append is asked again, whatever of it
        was written.  ``kept`` is the store's to read until then (SQLite's worker thread makes its
        records): the hub changes it no more."""

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

    def purge_history(self, sender: str, at: float) -> Deferred[int]:
        """Drop every entry ``sender`` sent, in every conversation (``#all`` too); how many.  The purge
        holds against late writes: an entry of ``sender`` dated at or before the purge's time that is
        appended after it (a retry, another node's slow append) is not kept.  The purge's time is ``at``
        (the caller's clock) in a store on the server's machine; a store shared by nodes dates it by the
        clock it judges their entries by (Redis: its own)."""

    def history_size(self) -> Deferred[int]:
        """How many entries are kept, in all."""

    def open_group(self, conversation: str, opener: str, at: float, since: float, most: int) -> Deferred[bool]:
        """Whether the name key ``opener`` may send to the group ``conversation`` (a direct conversation
        of three or more): True if it has a history, or was opened by ``opener`` at or after ``since``,
        or ``opener`` opened fewer than ``most`` others since: then it counts as opened by ``opener`` at
        ``at``; else False.  Opened groups are counted where every node sees them (they need not survive
        a restart of the store); what was opened before ``since`` may be forgotten."""

    # Read positions: how far a protected name has read each conversation (an id, or any position); kept
    # until its password is dropped (``reset``) or the name is (``remove``), with the rest of its account.

    def set_read(self, name: str, conversation: str, position: str) -> Deferred[str]:
        """Keep max(kept, position) as ``name``'s read position in ``conversation``; fires with what is
        kept."""

    def read_positions(self, name: str, conversations: Sequence[str]) -> Deferred[dict[str, str]]:
        """``name``'s read positions in those conversations (missing: none kept)."""

    def unread(self, conversation: str, after: str, reader: str, cap: int) -> Deferred[int]:
        """How many entries of ``conversation`` with id > ``after`` were sent by others than ``reader``, up
        to ``cap``: it reads ``cap`` of them and the reader's own among them, not the whole conversation."""


class RoomStore(Protocol):
    """Where the rooms persist: each fires once durable.  ``room`` is a room key, ``name`` a name key;
    a member's or a ban's record is whole in each write (insert or replace).  An account's memberships
    go with its password (``reset``) or its name (``remove``), as its read positions do."""

    def rooms(self) -> Deferred[list[RoomRecord]]:
        """Every room, with its members and bans."""

    def room(self, room: str) -> Deferred[RoomRecord | None]:
        """The room ``room`` as :meth:`rooms` reads it; None if none is kept."""

    def create_room(self, record: RoomRecord, most: int) -> Deferred[Refusal | bool]:
        """Keep a new room, with its members (its founder) and settings, unless one of them is in ``most``
        rooms already, as kept (the rooms created and joined on every node counted): True, or
        TOO_MANY_ROOMS (nothing kept).  False: a room of that key is kept already (created at the same
        moment on another node, or one this node has not read): nothing written, its joiner is no member
        of it; the node reads it (:meth:`room`) and joins it as any room (:meth:`enter`)."""

    def delete_room(self, room: str) -> Deferred[None]:
        """Forget a room, its members, its bans and its invitations."""

    def vacate_room(self, room: str) -> Deferred[bool]:
        """Forget ``room`` as :meth:`delete_room` does if it has no member kept: its last member left on
        this node, but another may have joined it on another node meanwhile.  True: it stays, with such
        a member."""

    def set_room(self, record: RoomRecord) -> Deferred[None]:
        """Keep ``record``'s topic (topic, topic_by, topic_at) and its founder (None once the name is free:
        :meth:`msgsvc.hub.rooms.Rooms.left`); not its modes and bans (:meth:`set_modes`), members or
        invitations.  A topic kept that is later (:func:`topic_stamp`: set at once on another node) stays."""

    def set_modes(
        self, room: str, changes: Sequence[ModeChange], by: str, at: float, memberships: Mapping[str, int]
    ) -> Deferred[ModesKept | Refusal | None]:
        """Make ``changes`` to the flags, key and limit (:func:`changed_modes`), to the bans (+b keeps
        ``Ban(mask, by, at)`` in place of any of its mask's key, -b forgets that key's) and to the op
        and voice of members (o, v: of the membership ``memberships`` gives by name key, its
        :attr:`Member.joined`, as the asker saw it; a member not kept, or kept by another membership,
        passed over: it left and entered again meanwhile) of ``room`` as kept, in turn, as one write
        given a version greater than any the room had; the room's modes and bans then, with the members
        named, as kept.  None: the room is not kept; BAN_LIST_FULL: a ``+b`` would ban past
        :data:`ROOM_BANS_MAX` (:func:`~msgsvc.hub.rules.bans_overflow`, as kept: bans set at once on
        another node count); nothing written either way.  Made at once on several nodes,
        the changes are ordered by their versions: a node takes what is newer than it holds, and all end
        alike."""

    def invite(self, room: str, name: str, op: bool, at: float) -> Deferred[bool | None]:
        """Keep an invitation of the name key ``name`` to ``room``, made at ``at`` by an operator
        (``op``: it lets the name past +i and the bans, once) or another member, unless one is pending
        already that does as much: True if kept (new, or an operator's in place of a member's), False
        (nothing written) if not, None if the room is not kept.  A room keeps
        :data:`ROOM_INVITES_MAX` pending: a new one past them ends the oldest.  An invitation ends when
        its name enters the room (:meth:`enter`), when the name is free (:meth:`uninvite`) or with the
        room."""

    def uninvite(self, name: str) -> Deferred[None]:
        """The name key ``name`` is free (an unprotected name gone, or its password or itself removed):
        its invitations to every room end, so that whoever takes the name next has none."""

    def enter(self, room: str, joining: Joining, limit: int, most: int) -> Deferred[Refusal | Member]:
        """Keep ``joining`` a member of ``room`` if it may enter it, as :func:`~msgsvc.hub.rules.admission`
        decides from what is kept at that moment (the room's bans, flags, key, +l and founder, an operator's
        invitation of the name pending, whether the name is protected, its members and the name's rooms, as
        every node wrote them; ``limit``: members a room may have, ``most``: rooms a name may be in): the
        member kept (its room's protected founder an operator; :attr:`Member.joined` a version later than
        any the room had), its invitation to the room ended in the same write (used up), or the refusal
        (nothing written).  A room no longer kept (emptied or deleted
        meanwhile on another node) is not made again: NO_SUCH_ROOM.  A member kept already (joined on another
        node) stays as kept: that member, nothing written."""

    def remove_member(self, room: str, name: str) -> Deferred[None]:
        """Forget a member of ``room``."""


class HubStore(Store, RoomStore, Protocol):
    """What the hub keeps in the state: the username log, the offline queue and the rooms."""


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
        self, name: str, peer: str, front: str, since: float, known: bool, session: int, sessions: int
    ) -> Deferred[tuple[str, bool]]:
        """Hold ``name`` for one session (``session``: its id on this node) in the whole service, and put
        it in the log.  ``sessions``: the name's allowance, 1 for an unprotected name (held by no other
        node), more for an account (its sessions on every node together).

        Fires with the name as the log spells it and whether it is new to the
        log (``known``: this node's log has it); fails with
        Refused(USERNAME_TAKEN) if another node holds it and the allowance is 1,
        Refused(SESSIONS_FULL) if the account has its allowance of sessions, or with a
        StoreError if that cannot be known now.
        """

    def release(self, name: str, session: int, when: float) -> None:
        """The session ``session`` of this node holding ``name`` left at ``when``."""

    def take_backlog(self, name: str, session: int) -> Deferred[bool]:
        """Make ``session`` (its id on this node) the one session of the account ``name`` that its offline
        queue goes to, in the whole service: True if it is now (none was, or the one that was has left or
        its node's lease lapsed), False if a session alive elsewhere has it."""

    def drop_backlog(self, name: str, session: int) -> None:
        """``session`` lets ``name``'s offline queue go (it left, or has it all): if it had it, the nodes
        with sessions of ``name`` hear so (:meth:`NetworkListener.remote_backlog`), one of which takes it."""

    def read_moved(self, name: str, conversation: str, position: str) -> None:
        """Tell the other nodes that ``name``'s read position in ``conversation`` moved to ``position``."""

    def away_changed(self, name: str, message: str | None) -> None:
        """Tell the other nodes that ``name``, online here, is away with ``message`` (None: back); the
        service keeps it (for a node that starts later or reconnects) until it changes or ``name``'s last
        session here leaves."""

    def room_changed(self, event: RoomEvent) -> None:
        """Tell the other nodes what happened in a room here (they apply it to their view of it, and tell
        its members' sessions there); the store has it, or will, from this node.  A ModeSet comes with
        what the store kept: a network whose store told the others as it kept it (Redis's ``SET_MODES``,
        before its answer) tells them nothing more."""

    def route(
        self, message: Message, keys_by_node: dict[str, list[str]], answer: Callable[[set[str] | Failure], None]
    ) -> None:
        """Send ``message`` to these users of other nodes; ``answer`` is called once, with the nodes that
        took it (to deliver to those of its users still connected when it reads it), or the failure.  A
        node not alive within its lease, or too far behind to take more, is left out.  No Deferred: a
        pass's messages are answered together, each by a plain call.
        """

    def broadcast(self, message: Message, answer: Callable[[set[str] | Failure], None]) -> bool:
        """Send a broadcast to every other node, as :meth:`route` does; False (and no answer) if none can
        take it now."""

    def reachable(self) -> bool:
        """Whether the service's state is reachable now: without it, only this node's users are."""

    def rereading(self) -> bool:
        """Whether this node is reading the service's state again (its subscription or lease back, or a
        write of its own the state did not take), or its last such read failed: until one is taken, what it
        holds (the rooms, who is online elsewhere) may be behind the other nodes."""


class NetworkListener(Protocol):
    """What a :class:`Network` of several nodes tells the hub of what happens elsewhere, and asks of
    it (:class:`msgsvc.hub.nodes.Nodes`)."""

    def remote_message(self, message: Message, keys: Sequence[str]) -> None:
        """Deliver a message from another node's user to these users here (a broadcast: to all)."""

    def remote_joined(self, user: RemoteUser, first_seen: float, protected: bool, first_time: bool) -> None:
        """``user`` came online on another node (its first session there)."""

    def remote_left(self, key: str, node: str, when: float, dead: bool = False) -> None:
        """The last session of name ``key`` on ``node`` left it at ``when``; ``dead``: the node died (its
        lease ended), so it could not end the name's memberships of rooms itself."""

    def remote_protected(self, key: str) -> None:
        """A password was set for the name ``key`` (on any node)."""

    def remote_away(self, key: str, node: str, message: str | None) -> None:
        """The name ``key`` on ``node`` is away with ``message`` now (None: back)."""

    def resync(
        self,
        records: Iterable[UserRecord],
        online: Iterable[RemoteUser],
        rooms: Iterable[RoomRecord],
        away: Iterable[tuple[str, str, str]],
    ) -> None:
        """Take the log, who is online elsewhere, the rooms and who is away elsewhere (name key, node,
        message) as the network has them now (after it reconnected: what the other nodes said meanwhile
        was not heard)."""

    def remote_backlog(self, key: str) -> None:
        """The session receiving the offline queue of the name ``key`` on another node let it go: a
        session of it here may take what is left."""

    def remote_read(self, key: str, conversation: str, position: str) -> None:
        """The read position of the name ``key`` in ``conversation`` moved on another node."""

    def remote_room(self, event: RoomEvent) -> None:
        """What happened in a room on another node (or by the operator's command)."""

    def local_users(self) -> list[tuple[str, int, int, str, str, float]]:
        """This node's online sessions: name, session, the name's allowance (as :meth:`Network.claim`
        takes them), peer, front, since (to claim again after a reconnection)."""

    def local_away(self) -> dict[str, str]:
        """This node's away names: name key -> message (to keep again after a reconnection)."""

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
