"""Who is online, told to every client once a reactor pass, and the username log they are sent.

When ten thousand clients log in at once, telling every online client of
every login one line at a time is ten thousand Python calls a login:
fifty million for the lot.  :class:`Presence` instead gathers the
``JOINED``, ``LEFT``, ``ACCOUNT`` and ``REMOVED`` lines of a pass and, after it, hands each client
the whole batch in one write, built once.  A client that registered
during the pass gets only the lines that came after its registration:
the rest are already in the username log it was sent.

It also keeps the ``USER`` line of every name in the log in order, changed
one at a time as users come and go, so a registering client is sent the
log as joins of ready-made lines rather than one formatted line a name, a
piece a reactor pass (:mod:`msgsvc.fronts.userlog`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import lru_cache
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from msgsvc import wire
from msgsvc.hub.core import Hub
from msgsvc.hub.events import Event, LogLoaded, ProtectionChanged, UserJoined, UserLeft, UserRemoved
from msgsvc.hub.rules import username_key


class Listener(Protocol):
    def tell(self, data: bytes) -> None:
        """Write ``data`` (whole lines) to the client."""


@lru_cache(maxsize=65536)
def user_line(verb: str, name: str, *params: str) -> bytes:
    """``JOINED``, ``LEFT`` and ``USER`` lines, each made once."""
    return wire.format_line(verb, name, *params)


class Presence:
    """Publishes joins, departures and changes of protection to registered clients, a batch a pass."""

    def __init__(self, hub: Hub, clock: IReactorTime) -> None:
        self._clock = clock
        self._hub = hub
        self._read_log()
        self._listeners: dict[Listener, int] = {}  # each with the batch index its news start at
        #: This pass's news, not yet sent to all (empty: none): a listener's front checks it before
        #: :meth:`catch_up`, which is then never called for nothing.
        self.batch: list[bytes] = []
        self._publishing: IDelayedCall | None = None
        hub.subscribe(self._hub_event)

    def _read_log(self) -> None:
        self._keys: list[str] = []
        self._lines: list[bytes] = []
        self._protected: set[str] = set()  # the keys of protected names
        for user in self._hub.users():
            key = username_key(user.name)
            self._keys.append(key)
            if user.protected:
                self._protected.add(key)
            self._lines.append(self._user_line(user.name, key, "online" if user.online else "offline"))

    def join(self, listener: Listener) -> None:
        """Add a client that just registered: it hears the news from now on."""
        self._listeners[listener] = len(self.batch)

    def leave(self, listener: Listener) -> None:
        self._listeners.pop(listener, None)

    def catch_up(self, listener: Listener) -> None:
        """Tell ``listener`` the news of this pass now, before a message that may depend on it.

        A client that sends ``HELLO`` and a message together must not have
        its message arrive before the others hear that it joined.  Called
        only when :attr:`batch` holds some (usually none does).
        """
        start = self._listeners.get(listener)
        if start is not None and start < len(self.batch):
            self._listeners[listener] = len(self.batch)
            listener.tell(b"".join(self.batch[start:]))

    def log_piece(self, after: str | None, most: int) -> tuple[bytes, int, str | None]:
        """The ``USER`` lines of up to ``most`` names of the log after the key ``after`` (None: from the
        first), as they are now; with how many, and the key to go on after (None: no name is left)."""
        start = 0 if after is None else bisect_right(self._keys, after)
        end = start + most
        lines = self._lines[start:end]
        return b"".join(lines), len(lines), self._keys[end - 1] if end < len(self._keys) else None

    def _hub_event(self, event: Event) -> None:
        match event:
            case UserJoined(name):
                self._set(name, "online")
                self._publish(user_line("JOINED", name))
                user = self._hub.user(name)  # a name claimed with a password at login joins protected
                if user is not None:
                    self._protection(user.name, user.protected, "online")
            case UserLeft(name):
                self._set(name, "offline")
                self._publish(user_line("LEFT", name))
            case UserRemoved(name):
                key = username_key(name)
                at = bisect_left(self._keys, key)
                if at < len(self._keys) and self._keys[at] == key:
                    del self._keys[at], self._lines[at]
                self._protected.discard(key)
                self._publish(user_line("REMOVED", name))
            case ProtectionChanged(name, protected):
                user = self._hub.user(name)
                if user is not None:
                    self._protection(user.name, protected, "online" if user.online else "offline")
            case LogLoaded():
                self._read_log()

    def _protection(self, name: str, protected: bool, state: str) -> None:
        """Tell everyone ``ACCOUNT`` when ``name`` gained or lost its password (not for a new password)."""
        key = username_key(name)
        if protected == (key in self._protected):
            return
        (self._protected.add if protected else self._protected.discard)(key)
        self._set(name, state)
        self._publish(user_line("ACCOUNT", name, "protected" if protected else "unprotected"))

    def _user_line(self, name: str, key: str, state: str) -> bytes:
        return (
            user_line("USER", name, state, "protected")
            if key in self._protected
            else user_line("USER", name, state)
        )

    def _set(self, name: str, state: str) -> None:
        key = username_key(name)
        at = bisect_left(self._keys, key)
        line = self._user_line(name, key, state)
        if at < len(self._keys) and self._keys[at] == key:
            self._lines[at] = line
        else:
            self._keys.insert(at, key)
            self._lines.insert(at, line)

    def _publish(self, line: bytes) -> None:
        self.batch.append(line)
        if self._publishing is None:
            self._publishing = self._clock.callLater(0, self._send_batch)

    def _send_batch(self) -> None:
        self._publishing = None
        batch, self.batch = self.batch, []
        whole = b"".join(batch)
        listeners = list(self._listeners.items())  # telling may drop a client, and so change the dict
        self._listeners = dict.fromkeys(self._listeners, 0)
        for listener, start in listeners:
            if start == 0:
                listener.tell(whole)
            elif start < len(batch):
                listener.tell(b"".join(batch[start:]))
