"""What the IRC front's suites share: a count of the work one line costs."""

from __future__ import annotations

from collections.abc import Iterator

from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.hub.contracts import UserView


class Work:
    """Counts what one line costs: log entries walked through, and calls to ``Hub.users`` (which sorts
    the whole log)."""

    def __init__(self, factory: IrcFactory) -> None:
        self.walked = 0
        self.sorted_logs = 0
        walk, hub = factory.directory.walk, factory.clients.hub
        users = hub.users

        def counted_walk(keys: list[str]) -> Iterator[str]:
            for key in walk(keys):
                self.walked += 1
                yield key

        def counted_users() -> list[UserView]:
            self.sorted_logs += 1
            return users()

        factory.directory.walk = counted_walk  # type: ignore[method-assign]
        hub.users = counted_users  # type: ignore[method-assign]

    def take(self) -> int:
        walked, self.walked = self.walked, 0
        return walked
