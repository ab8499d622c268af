"""The server's state behind one interface, :class:`State`, with two implementations.

* :mod:`msgsvc.state.sqlite`: an SQLite file in process, the default;
  nothing else to start.
* :mod:`msgsvc.state.redis`: a Redis server, which several msgsvc nodes
  share to act as one service.

The hub (:class:`msgsvc.hub.contracts.Store`,
:class:`~msgsvc.hub.contracts.HistoryStore` and :class:`~msgsvc.hub.contracts.RoomStore`) and the accounts
(:class:`msgsvc.auth.store.AccountStore`) each say what they need of it; a
state is all four, a service, and reads the username log for the hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred

from msgsvc.auth.store import AccountStore
from msgsvc.hub.contracts import HistoryStore, RoomRecord, RoomStore, Store, UserRecord


@dataclass(frozen=True)
class Snapshot:
    """What the server starts from: the username log, the latest of the operator's resets, and the rooms
    (read with the log, so that the rooms are there as soon as anyone may register).

    The reset id is read before the log, so a reset between the two is seen
    in both (applied again, harmlessly), never in neither.
    """

    records: list[UserRecord]
    last_reset: int
    rooms: list[RoomRecord]


class StoreError(Exception):
    """The state cannot be opened or used; the message names where it is."""


class State(Store, HistoryStore, RoomStore, AccountStore, Protocol):
    """What the server keeps: a service, started before any client is served and stopped after the last."""

    def read_log(self) -> Deferred[Snapshot]:
        """Every name ever registered (oldest first, marked if protected), the latest reset and the rooms;
        once the state is reachable."""

    @property
    def where(self) -> str:
        """Where it is, for the log: a file, or a Redis URL without its password."""

    def startService(self) -> None: ...
    def stopService(self) -> object: ...
