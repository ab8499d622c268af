"""A participant's session, as the hub's core, queue and routing between nodes share it."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from msgsvc.hub.contracts import Participant, UserRecord


@dataclass
class Session:
    participant: Participant
    record: UserRecord
    peer: str
    since: float
    online: bool = False  # False while the store write is pending
    seen_before: float = 0.0  # when its name was last seen before this login (0: new to the log)
    gone: bool = False  # logged out (unregistered): its User is refused from then on
    delivered_through: int = 0  # the id of the last queued message sent to it
    reading: bool = False  # a page of its backlog is being read
    unacknowledged: bool = False  # a page was sent and not yet acknowledged
    outgoing: deque[Outgoing] | None = None  # its messages waiting for the network, oldest first


class Outgoing:
    """A message waiting for the network's answer, and then for its sender's earlier messages."""

    __slots__ = ("done", "outcome")

    def __init__(self, done: Deferred[set[str]]) -> None:
        self.done = done  # fired with the answer, to deliver the message here
        self.outcome: set[str] | Failure | None = None  # the answer: the nodes the network reached
