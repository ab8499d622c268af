"""What the hub tells its observers (:meth:`msgsvc.hub.core.Hub.subscribe`: the event log, the
server window, the line protocol's presence): each :data:`Event`, and the connection-level ones a
front announces through it."""

from __future__ import annotations

from dataclasses import dataclass

from msgsvc.hub.contracts import Refusal

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
class SessionOpened:
    """A session of ``name`` came online here (its first too: after its :class:`UserJoined`);
    ``sessions``: how many of the name's are online here now."""

    name: str
    peer: str
    front: str
    sessions: int


@dataclass(frozen=True)
class SessionClosed:
    """A session of ``name`` left (its last too: before its :class:`UserLeft`); ``sessions`` remain."""

    name: str
    peer: str
    front: str
    sessions: int


@dataclass(frozen=True)
class SessionsElsewhere:
    """``name``, online, gained its first session on another node or lost its last there (``--redis``): its
    :attr:`~msgsvc.hub.contracts.UserView.sessions` changed, not its presence."""

    name: str


@dataclass(frozen=True)
class AwayChanged:
    """``name``, online, is away with ``message`` now (None: back), as set here or on another node
    (:meth:`msgsvc.hub.core.Hub.set_away`)."""

    name: str
    message: str | None


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
class RoomChanged:
    """Something changed in ``room`` (a name): it was created, joined, left, set, or removed (then
    :meth:`msgsvc.hub.rooms.Rooms.view` has it no more)."""

    room: str


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
    """The server cut a client off to protect the others; ``limit`` says which of its limits, in a few
    fixed words (what it is told: ``flooding``, ``send queue exceeded``, ``ping timeout``, ...)."""

    peer: str
    reason: str
    limit: str


Event = (
    UserJoined
    | UserLeft
    | SessionOpened
    | SessionClosed
    | SessionsElsewhere
    | AwayChanged
    | RegistrationRefused
    | UserKicked
    | ProtectionChanged
    | UserRemoved
    | QueueChanged
    | LogLoaded
    | NoticeSent
    | RoomChanged
    | Connected
    | Disconnected
    | ClientError
    | ClientDropped
)
