"""What the server's window shows, decided with no toolkit in it.

The presenter follows the hub's events (no polling): each event updates one
row of the username log or adds one line to the event pane.  A one-second
tick moves only the clocks: uptime and how long online users have been on.
"""

from __future__ import annotations

import time
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from msgsvc.auth.accounts import Accounts
from msgsvc.auth.store import Reset
from msgsvc.hub.contracts import SessionView, UserView
from msgsvc.hub.core import Hub
from msgsvc.hub.events import (
    ClientDropped,
    ClientError,
    Connected,
    Disconnected,
    Event,
    LogLoaded,
    NoticeSent,
    ProtectionChanged,
    QueueChanged,
    RegistrationRefused,
    RoomChanged,
    SessionClosed,
    SessionsElsewhere,
    SessionOpened,
    UserJoined,
    UserKicked,
    UserLeft,
    UserRemoved,
)
from msgsvc.hub.rules import username_key
from msgsvc.servergui.rooms import RoomsPresenter, RoomsView
from msgsvc.servergui.times import duration, stamp
from msgsvc.wire import REFUSAL_CODES

COLUMNS = (
    "name",
    "state",
    "front",
    "node",
    "password",
    "queued",
    "first_seen",
    "last_seen",
    "address",
    "connected",
    "sessions",
)
#: The order the columns are shown in (the cells come in COLUMNS' order).
_SHOWN = ("name", "state", "sessions", *(c for c in COLUMNS if c not in ("name", "state", "sessions")))

_SORT_KEYS: dict[str, Callable[[UserView], Any]] = {
    "name": lambda u: u.name.casefold(),
    "state": lambda u: (not u.online, u.name.casefold()),
    "front": lambda u: (u.front is None, u.front or "", u.name.casefold()),
    "node": lambda u: (u.node is None, u.node or "", u.name.casefold()),
    "password": lambda u: (not u.protected, u.name.casefold()),
    "queued": lambda u: (-u.queued, u.name.casefold()),
    "first_seen": lambda u: (u.first_seen, u.name.casefold()),
    "last_seen": lambda u: (u.last_seen, u.name.casefold()),
    "address": lambda u: (u.peer is None, u.peer or "", u.name.casefold()),
    "connected": lambda u: (u.since is None, u.since or 0.0, u.name.casefold()),
    "sessions": lambda u: (-len(u.sessions), u.name.casefold()),
}


class ServerView(RoomsView, Protocol):
    def show_header(self, text: str) -> None: ...

    def show_rows(self, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        """Replace the table with these (row id, cells) in order."""

    def put_row(self, row_id: str, cells: tuple[str, ...], index: int) -> None:
        """Insert the row, or update it in place, and put it at ``index``."""

    def set_cell(self, row_id: str, column: str, text: str) -> None:
        """Change one cell of an existing row; the row keeps its place."""

    def show_sessions(self, row_id: str, rows: list[tuple[str, tuple[str, ...]]]) -> None:
        """Show ``rows`` (row id, cells), one a session, under the user's row ``row_id``, in place of
        those shown there (none: the user has one session, or none)."""

    def delete_row(self, row_id: str) -> None:
        """Take a row out of the table."""

    def add_event(self, text: str, keep: int) -> None:
        """Add a line to the event pane, keeping at most ``keep`` lines."""


def removal_question(names: list[str], shown: int = 10) -> str:
    """What the window asks before removing ``names`` from the log (the first ``shown`` of them named)."""
    named = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")
    return (
        f"Remove {named} from the username log, with their passwords and the messages waiting for them?"
        " Anyone may then take these names. This cannot be undone."
    )


class ServerPresenter:
    """Drives a :class:`ServerView` from a hub; carries out the operator's actions."""

    def __init__(
        self,
        view: ServerView,
        hub: Hub,
        accounts: Accounts,
        clock: IReactorTime,
        endpoints: list[str],
        keep_events: int = 500,
    ) -> None:
        self._view = view
        self._hub = hub
        #: the columns to show: the Node column only for a node of a service of several (--redis)
        self.columns = tuple(c for c in _SHOWN if c != "node" or hub.node is not None)
        self._accounts = accounts
        self._clock = clock
        self._endpoints = endpoints
        self._keep = keep_events
        self._started = clock.seconds()
        self.sort_column = "name"
        self.descending = False
        self._order: list[tuple[Any, str]] = []  # ascending (sort key, row id)
        self._keys: dict[str, Any] = {}  # row id -> its sort key
        self._online: dict[str, UserView] = {}
        self._sessions: dict[str, tuple[SessionView, ...]] = {}  # row id -> the sessions shown under it
        self._history_size: int | None = None  # as last read; None: not yet, or no history kept
        self._reading_size = False
        self._tick = LoopingCall(self._tick_clocks)
        self._tick.clock = clock
        #: the Rooms view, and the operator's actions on rooms
        self.rooms = RoomsPresenter(view, hub.rooms, self._event, clock)

    def start(self) -> None:
        self._hub.subscribe(self._on_event)
        self._show_all()
        self.rooms.show_all()
        self._tick.start(1.0)

    def stop(self) -> None:
        """Stop following the hub (again is harmless)."""
        if self._tick.running:
            self._hub.unsubscribe(self._on_event)
            self._tick.stop()
            self.rooms.stop()

    # -- the operator's actions -------------------------------------------

    def sort(self, column: str) -> None:
        """Sort by ``column``; the same column again reverses the order."""
        self.descending = not self.descending if column == self.sort_column else False
        self.sort_column = column
        self._show_all()

    def kick(self, name: str, reason: str) -> bool:
        """Disconnect ``name``, telling it ``reason``; whether it was done."""
        if not name:
            self._event("pick an online user to disconnect")
            return False
        if not self._hub.kick(name, reason.strip()):
            self._event(f"{name} is not online")
            return False
        return True

    def kick_row(self, name: str, row: str, reason: str) -> bool:
        """Disconnect what the selected ``row`` shows: ``name`` (a user's row: every session here) or one
        of its sessions (a session's row, :meth:`session_row`); whether it was done."""
        _, _, session = row.partition("#")
        if not session:
            return self.kick(name, reason)
        if session.startswith("@"):
            self._event(f"that session of {name} is on node {session[1:]}: disconnect it there")
            return False
        return self.kick_session(name, int(session), reason)

    def kick_session(self, name: str, session: int, reason: str) -> bool:
        """Disconnect one session of ``name`` (its :attr:`SessionView.id`), telling it ``reason``; whether it was done."""
        if not self._hub.kick_session(name, session, reason.strip()):
            self._event(f"that session of {name} is no longer online")
            return False
        return True

    def reset(self, name: str, reason: str) -> bool:
        """Remove the protection of ``name`` (a forgotten password); the owner, if online, is told ``reason``.

        Whether it was asked of the accounts (the events say how that ends).
        """
        reason = reason.strip()
        if not name:
            self._event("pick a protected user to remove its password")
            return False
        if not reason:
            self._event(f"give a reason to remove the password of {name}")
            return False

        def done(removed: bool) -> None:
            if not removed:
                self._event(f"{name} is not protected")

        def failed(failure: Failure) -> None:
            self._event(f"could not remove the password of {name}: {failure.getErrorMessage()}")

        self._accounts.reset(name, reason).addCallbacks(done, failed)
        return True

    def remove(self, names: list[str], reason: str) -> bool:
        """Remove the offline ``names`` from the username log, with their passwords and what waited for
        them; an online one is refused, saying so.  Whether it was asked of the accounts."""
        reason = reason.strip()
        if not names:
            self._event("pick the offline names to remove from the log")
            return False
        if not reason:
            self._event(f"give a reason to remove {', '.join(names)} from the log")
            return False
        for name in names:

            def done(removal: Reset | None, name: str = name) -> None:
                if removal is None:
                    self._event(f"{name} is not in the log")

            def failed(failure: Failure, name: str = name) -> None:
                self._event(f"could not remove {name}: {failure.getErrorMessage()}")

            self._accounts.remove(name, reason).addCallbacks(done, failed)
        return True

    def notice(self, text: str) -> bool:
        text = text.strip()
        if not text:
            return False
        self._hub.notice(text)
        return True

    # -- the table ----------------------------------------------------------

    def cells(self, user: UserView) -> tuple[str, ...]:
        now = self._clock.seconds()
        fronts = sorted({session.front for session in user.sessions})
        return (
            user.name,
            "● online" if user.online else "○ offline",
            ", ".join(fronts) or user.front or "",
            user.node or "",  # with --redis: the server it is connected to
            "protected" if user.protected else "",
            str(user.queued) if user.queued else "",
            stamp(user.first_seen),
            "now" if user.online else stamp(user.last_seen),
            user.peer or "",
            duration(now - user.since) if user.since is not None else "",
            str(len(user.sessions)) if user.sessions else "",
        )

    def session_cells(self, user: UserView, session: SessionView) -> tuple[str, ...]:
        """A row under the user's, for one of its sessions (when it has several)."""
        since = duration(self._clock.seconds() - session.since)
        return (user.name, "● session", session.front, session.node or "", "", "", "", "", session.peer, since, "")

    def _show_sessions(self, user: UserView) -> None:
        """The rows of ``user``'s sessions under its own, while it has several."""
        row_id = username_key(user.name)
        sessions = user.sessions if user.online and len(user.sessions) > 1 else ()
        if sessions or self._sessions.pop(row_id, ()):
            if sessions:
                self._sessions[row_id] = sessions
            rows = [(session_row(row_id, session), self.session_cells(user, session)) for session in sessions]
            self._view.show_sessions(row_id, rows)

    def _show_all(self) -> None:
        users = self._hub.users()
        key = _SORT_KEYS[self.sort_column]
        self._keys = {username_key(u.name): key(u) for u in users}
        self._order = sorted((k, row_id) for row_id, k in self._keys.items())
        self._online = {username_key(u.name): u for u in users if u.online}
        by_id = {username_key(u.name): u for u in users}
        ordered = self._order[::-1] if self.descending else self._order
        self._view.show_rows([(row_id, self.cells(by_id[row_id])) for _, row_id in ordered])
        self._sessions.clear()
        for user in self._online.values():
            self._show_sessions(user)
        self._show_header()

    def _update(self, name: str) -> None:
        user = self._hub.user(name)
        if user is None:
            return
        row_id = username_key(user.name)
        old = self._keys.get(row_id)
        if old is not None:
            del self._order[bisect_left(self._order, (old, row_id))]
        key = _SORT_KEYS[self.sort_column](user)
        self._keys[row_id] = key
        insort(self._order, (key, row_id))
        index = bisect_left(self._order, (key, row_id))
        if self.descending:
            index = len(self._order) - 1 - index
        if user.online:
            self._online[row_id] = user
        else:
            self._online.pop(row_id, None)
        self._view.put_row(row_id, self.cells(user), index)
        self._show_sessions(user)
        self._show_header()

    def _forget(self, name: str) -> None:
        row_id = username_key(name)
        old = self._keys.pop(row_id, None)
        if old is not None:
            del self._order[bisect_left(self._order, (old, row_id))]
            self._online.pop(row_id, None)
            self._sessions.pop(row_id, None)
            self._view.delete_row(row_id)
        self._show_header()

    def _tick_clocks(self) -> None:
        """Move the clocks only: uptime, and how long each online user has been on; and read the
        history's size again, for the next tick."""
        self._show_header()
        self._read_history_size()
        now = self._clock.seconds()
        for row_id, user in self._online.items():
            if user.since is not None:
                self._view.set_cell(row_id, "connected", duration(now - user.since))
        for row_id, sessions in self._sessions.items():
            for session in sessions:
                self._view.set_cell(session_row(row_id, session), "connected", duration(now - session.since))

    def _show_header(self) -> None:
        node = f"Node {self._hub.node}   ·   " if self._hub.node else ""
        size = self._history_size
        history = "" if size is None else f"   ·   {size} messages in the history"
        self._view.show_header(
            f"{node}Listening on {', '.join(self._endpoints)}   ·   {len(self._online)} online"
            f"   ·   {self._hub.log_size()} names in the log{history}"
            f"   ·   up {duration(self._clock.seconds() - self._started)}"
        )

    def _read_history_size(self) -> None:
        """Ask the history's size (one question at a time); a failure leaves the last size shown."""
        history = self._hub.history
        if not history.policy.kept or self._reading_size:
            return
        self._reading_size = True

        def read(size: int) -> None:
            self._history_size = size

        def done(_: object) -> None:
            self._reading_size = False

        history.size().addCallbacks(read, lambda failure: None).addBoth(done)

    # -- the event pane -------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        match event:
            case Connected(peer):
                self._event(f"{peer} connected")
            case UserJoined(name, peer, first_time, node):
                where = f"on node {node} from {peer}" if node is not None else f"from {peer}"
                self._event(f"{name} registered {where}" + (" (new name)" if first_time else ""))
                self._update(name)
                self.rooms.user_changed(name)
            case RegistrationRefused(name, peer, refusal, reason):
                self._event(f"refused {name!r} from {peer}: {REFUSAL_CODES[refusal].value}: {reason}")
            case UserLeft(name, peer, node):
                self._event(f"{name} left ({peer}" + (f" on node {node})" if node is not None else ")"))
                self._update(name)
                self.rooms.user_changed(name)
            case Disconnected(peer, why):
                self._event(f"{peer} disconnected: {why}")
            case ClientDropped(peer, why):
                self._event(f"dropped {peer}: {why}")
            case ClientError(peer, code, text):
                self._event(f"error from {peer}: {code}: {text}")
            case SessionOpened(name, peer, front, sessions) if sessions > 1:
                self._event(f"{name} opened another session from {peer} ({front}): {sessions} sessions")
                self._update(name)
            case SessionClosed(name, peer, front, sessions) if sessions > 0:
                self._event(f"a session of {name} closed ({peer}, {front}): {sessions} left")
                self._update(name)
            case SessionsElsewhere(name):
                self._update(name)
            case UserKicked(name, reason):
                self._event(f"operator disconnected {name}" + (f": {reason}" if reason else ""))
            case NoticeSent(text, delivered):
                self._event(f"notice to {delivered} online: {text}")
            case QueueChanged(name):
                self._update(name)
            case UserRemoved(name, reason):
                self._event(f"{name} removed from the log: {reason}")
                self._forget(name)
            case ProtectionChanged(name, protected, reason):
                self._event(f"{name} {'protected' if protected else 'no longer protected'}: {reason}")
                self._update(name)
            case LogLoaded(names, resync):
                if resync:
                    self._event(f"who is online on the other nodes read from Redis; {names} names in the log")
                else:
                    self._event(f"username log read: {names} names")
                self._show_all()
                self.rooms.show_all()
            case RoomChanged(room):
                self.rooms.changed(room)

    def _event(self, text: str) -> None:
        at = time.strftime("%H:%M:%S", time.localtime(self._clock.seconds()))
        self._view.add_event(f"{at}  {text}", self._keep)


def session_row(row_id: str, session: SessionView) -> str:
    """The row of a session under its user's ``row_id``: by its id here, by its node for another node's."""
    return f"{row_id}#{session.id}" if session.id else f"{row_id}#@{session.node}"
