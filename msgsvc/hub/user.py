"""A user's handle on the hub: the avatar a login gives its front, which acts through it afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from twisted.internet.defer import Deferred
from zope.interface import implementer

from msgsvc.hub.contracts import IUser, Page, Refusal, Refused, Report, Summary
from msgsvc.hub.session import Session

if TYPE_CHECKING:
    from msgsvc.hub.core import Hub


@implementer(IUser)
class User:
    """The :class:`IUser` of one login: it holds the hub's session for it, so no call looks it up.

    :meth:`msgsvc.hub.core.Hub.register` makes it, holding the name; the accounts' realm brings it
    online (:meth:`~msgsvc.hub.core.Hub.admit`) and hands it to the front.  After :meth:`log_out`
    the front falls back to :data:`UNREGISTERED`; this user, if still used, is refused as it is
    (NOT_REGISTERED), at the cost of one check of its session.
    """

    __slots__ = ("_hub", "session")

    def __init__(self, hub: Hub, session: Session) -> None:
        self._hub = hub
        self.session = session

    @property
    def name(self) -> str:
        return self.session.record.name

    def send(self, names: Sequence[str], text: str, queue: bool = True) -> Report | Deferred[Report]:
        if self.session.gone:
            not_registered()
        return self._hub.send(self.session, names, text, queue)

    def broadcast(self, text: str) -> Report | Deferred[Report]:
        if self.session.gone:
            not_registered()
        return self._hub.broadcast(self.session, text)

    def acknowledge(self, up_to: int) -> None:
        if self.session.gone:
            not_registered()
        self._hub.acknowledge(self.session, up_to)

    def deliver_backlog(self) -> None:
        if not self.session.gone:  # nothing waits for nobody
            self._hub.deliver_backlog(self.session)

    def log_out(self) -> None:
        self._hub.unregister(self.session)

    def history(self, conversation: str, before: str | None, limit: int) -> Deferred[Page]:
        if self.session.gone:
            not_registered()
        return self._hub.history.page_before(self.name, conversation, before, limit)

    def history_after(self, conversation: str, after: str, limit: int) -> Deferred[Page]:
        if self.session.gone:
            not_registered()
        return self._hub.history.page_after(self.name, conversation, after, limit)

    def conversations(self, limit: int) -> Deferred[list[Summary]]:
        if self.session.gone:
            not_registered()
        return self._hub.history.conversations(self.name, limit)

    def catch_up(self, from_reads: bool) -> Deferred[list[Page]]:
        if self.session.gone:
            not_registered()
        return self._hub.history.catch_up(self.name, self.session.account.seen_before, from_reads)

    def mark_read(self, conversation: str, position: str) -> Deferred[str]:
        if self.session.gone:
            not_registered()
        return self._hub.mark_read(self.session, conversation, position)

    def read_position(self, conversation: str) -> Deferred[str | None]:
        if self.session.gone:
            not_registered()
        return self._hub.history.read_position(self.name, conversation)


@implementer(IUser)
class Unregistered:
    """The :class:`IUser` of a client not logged in: everything it asks is refused (NOT_REGISTERED)."""

    @property
    def name(self) -> NoReturn:
        not_registered()

    def send(self, names: Sequence[str], text: str, queue: bool = True) -> NoReturn:
        not_registered()

    def broadcast(self, text: str) -> NoReturn:
        not_registered()

    def acknowledge(self, up_to: int) -> NoReturn:
        not_registered()

    def deliver_backlog(self) -> None:
        """Nothing waits for nobody."""

    def log_out(self) -> None:
        """Nobody to log out."""

    def history(self, conversation: str, before: str | None, limit: int) -> NoReturn:
        not_registered()

    def history_after(self, conversation: str, after: str, limit: int) -> NoReturn:
        not_registered()

    def conversations(self, limit: int) -> NoReturn:
        not_registered()

    def catch_up(self, from_reads: bool) -> NoReturn:
        not_registered()

    def mark_read(self, conversation: str, position: str) -> NoReturn:
        not_registered()

    def read_position(self, conversation: str) -> NoReturn:
        not_registered()


def not_registered() -> NoReturn:
    """Refuse what a client asks before it logs in, as every call of :data:`UNREGISTERED` does."""
    raise Refused(Refusal.NOT_REGISTERED, "log in first")


#: The user of every client until it logs in, and after it logs out.
UNREGISTERED = Unregistered()
