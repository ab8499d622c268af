"""The username log and who is online, in name order, as the IRC front lists them.

``NAMES``, ``WHO``, ``LIST``, ``ISON`` and the MOTD go through the log or
through the users online; :meth:`msgsvc.hub.core.Hub.users` sorts the whole log
on each call.  A :class:`Directory` instead keeps both in order, changed one
name at a time from the hub's events (as :mod:`msgsvc.fronts.presence` keeps the
line front's ``USER`` lines), and is walked one step at a time, so that a
session can send a long listing a few entries a reactor pass.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterator

from msgsvc.hub.core import Hub
from msgsvc.hub.events import Event, LogLoaded, UserJoined, UserLeft, UserRemoved
from msgsvc.hub.rules import username_key


class Directory:
    """The keys of the log's names and of those online, each list sorted; the names as the log spells them."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._read_log()
        hub.subscribe(self._event)

    def _read_log(self) -> None:
        users = self._hub.users()  # once, when the log is (re)read: sorted, as the lists must be
        self.names = {username_key(u.name): u.name for u in users}
        self.log = list(self.names)
        self.online = [username_key(u.name) for u in users if u.online]
        self._online = set(self.online)

    def _event(self, event: Event) -> None:
        match event:
            case UserJoined(name):
                key = username_key(name)
                if key not in self.names:
                    insort(self.log, key)
                self.names[key] = name
                if key not in self._online:
                    self._online.add(key)
                    insort(self.online, key)
            case UserLeft(name):
                key = username_key(name)
                if key in self._online:
                    self._online.discard(key)
                    del self.online[bisect_right(self.online, key) - 1]
            case UserRemoved(name):  # the operator removed it: an offline name (the hub keeps one held)
                key = username_key(name)
                if self.names.pop(key, None) is not None:
                    del self.log[bisect_right(self.log, key) - 1]
            case LogLoaded():
                self._read_log()

    def is_online(self, key: str) -> bool:
        return key in self._online

    def walk(self, keys: list[str]) -> Iterator[str]:
        """The keys of ``keys`` (:attr:`log` or :attr:`online`) in order, one bisection a step: what
        comes and goes between two steps is seen, or not, but nothing is given twice or skipped over."""
        last = ""
        while True:
            at = bisect_right(keys, last)
            if at == len(keys):
                return
            last = keys[at]
            yield last
