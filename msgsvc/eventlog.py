"""The server's log: what happens on the hub, a line or two per connection."""

from __future__ import annotations

from twisted.logger import Logger

from msgsvc.hub.events import (
    ClientDropped,
    ClientError,
    Connected,
    Disconnected,
    Event,
    LogLoaded,
    NoticeSent,
    ProtectionChanged,
    RegistrationRefused,
    SessionClosed,
    SessionOpened,
    UserJoined,
    UserKicked,
    UserLeft,
    UserRemoved,
)
from msgsvc.wire import REFUSAL_CODES


class HubEventLogger:
    """Logs what happens on a server: registrations, refusals, departures, disconnections.

    A connection costs two lines at most: one when it registers, one when
    it ends (which names the user, if it registered, and says why).
    """

    log = Logger()

    def __init__(self) -> None:
        self._names: dict[str, str] = {}  # the registered name of each connection, by peer

    def __call__(self, event: Event) -> None:
        match event:
            case Connected():
                pass  # logged when it ends
            case Disconnected(peer, why):
                name = self._names.pop(peer, None)
                if name is None:
                    self.log.info("{peer} disconnected: {why}", peer=peer, why=why)
                else:
                    self.log.info("{name} ({peer}) left: {why}", name=name, peer=peer, why=why)
            case ClientDropped(peer, why, limit):
                self.log.warn("{peer} dropped: {why}", peer=peer, why=why, limit=limit)
            case ClientError(peer, code, text):
                self.log.debug("{peer}: {code}: {text}", peer=peer, code=code, text=text)
            case UserKicked(name, reason):
                self.log.info("the operator disconnected {name}: {reason}", name=name, reason=reason)
            case NoticeSent(text, delivered):
                self.log.info("server notice to {n} users: {text}", n=delivered, text=text)
            case UserJoined(name, peer, first_time, node) if node is not None:
                self.log.info("{name} came online on node {node} ({peer})", name=name, node=node, peer=peer)
            case UserJoined(name, peer, first_time):
                self._names[peer] = name
                self.log.info(
                    "{peer} registered as {name}{new}",
                    peer=peer,
                    name=name,
                    new=" (new name)" if first_time else "",
                )
            case RegistrationRefused(name, peer, refusal, reason):
                self.log.info(
                    "{peer} refused as {name!r}: {code}: {reason}",
                    peer=peer,
                    name=name,
                    code=REFUSAL_CODES[refusal].value,
                    reason=reason,
                )
            case SessionOpened(name, peer, front, sessions) if sessions > 1:
                self._names[peer] = name
                self.log.info(
                    "{peer} opened another session of {name} ({front}): {sessions} online",
                    peer=peer,
                    name=name,
                    front=front,
                    sessions=sessions,
                )
            case SessionOpened() | SessionClosed():
                pass  # the first is UserJoined's; each logged when its connection ends
            case UserLeft(name, peer, node) if node is not None:
                self.log.info("{name} left node {node} ({peer})", name=name, node=node, peer=peer)
            case UserLeft():
                pass  # logged when the connection ends
            case ProtectionChanged(name, True, reason):
                self.log.info("{name} is protected: {reason}", name=name, reason=reason)
            case ProtectionChanged(name, False, reason):
                self.log.info(
                    "the operator removed the protection of {name}: {reason}", name=name, reason=reason
                )
            case UserRemoved(name, reason):
                self.log.info(
                    "the operator removed {name} from the username log: {reason}", name=name, reason=reason
                )
            case LogLoaded(names, True):  # a node of several, subscribed: it hears the others from now on
                self.log.info(
                    "who is online on the other nodes read from Redis; {names} names in the log", names=names
                )
