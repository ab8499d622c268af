"""The client's state and decisions, with no toolkit in it.

A view (the Tk window, or a test's recorder) shows what the presenter tells
it and calls the presenter's methods for what its user does.  The presenter
is the :class:`~msgsvc.client.protocol.ClientListener` of the connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from msgsvc.client.protocol import ClientListener, ClientProtocol
from msgsvc.wire import Kind, Limits, is_valid_username

DEFAULT_SERVER = "tcp:localhost:8123"

#: Opens a connection to ``server`` as ``username``, reporting to the listener.
Connector = Callable[[str, str, ClientListener], "Deferred[ClientProtocol]"]


class Phase(Enum):
    LOGIN = "login"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class UserItem:
    name: str
    online: bool
    me: bool


@dataclass(frozen=True)
class Entry:
    """One line of the conversation.  ``style`` is one of
    direct, group, broadcast, notice, sent, warning, error, info."""

    when: float
    style: str
    text: str


class View(Protocol):
    def show_login(self, username: str, server: str, problem: str) -> None:
        """Show the login form, prefilled, with ``problem`` (if any) and the name selected."""

    def show_chat(self) -> None:
        """Show the conversation, the user list and the message box."""

    def show_status(self, text: str, connected: bool) -> None:
        """Say how the connection stands; offer to reconnect when not ``connected``."""

    def show_users(self, users: list[UserItem]) -> None: ...

    def show_mode(self, mode: Kind, selected: tuple[str, ...]) -> None:
        """Show the messaging option and the recipients chosen for it."""

    def show_reply(self, target: str) -> None:
        """Say whom "reply all" would answer ('' while there is nothing to reply to)."""

    def append(self, entry: Entry) -> None: ...


def and_list(names: list[str] | tuple[str, ...]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def describe_server(server: str) -> str:
    """``host:port`` for ``tcp:host:port`` and ``tls:host:port``, else the endpoint itself."""
    for prefix in ("tcp:", "tls:"):
        if server.startswith(prefix):
            rest = server[len(prefix) :].split(":")
            if len(rest) >= 2 and "=" not in rest[0] and "=" not in rest[1]:
                return f"{rest[0]}:{rest[1]}"
    return server


class ChatPresenter:
    """What the client shows and does, from login to quit."""

    def __init__(
        self,
        view: View,
        connect: Connector,
        clock: IReactorTime,
        username: str = "",
        server: str = DEFAULT_SERVER,
        limits: Limits = Limits(),  # noqa: B008 - frozen
    ) -> None:
        self._view = view
        self._connect = connect
        self._clock = clock
        self._limits = limits
        self.username = username
        self.server = server
        self.phase = Phase.LOGIN
        self.me = ""
        self.users: dict[str, bool] = {}
        self.mode = Kind.UNICAST
        self.selected: tuple[str, ...] = ()
        self._protocol: ClientProtocol | None = None
        self._refusal = ""
        self._bye = ""
        self._outbox: deque[tuple[Kind, tuple[str, ...], str]] = deque()
        self._reply: tuple[Kind, tuple[str, ...]] | None = None  # what "reply all" answers
        self._waiting_to_go: list[Deferred[None]] = []
        self._closing = False

    # -- what the user does ----------------------------------------------

    def start(self) -> None:
        self._view.show_login(self.username, self.server, "")

    def login(self, username: str, server: str) -> None:
        username, server = username.strip(), server.strip() or DEFAULT_SERVER
        self.username, self.server = username, server
        if not is_valid_username(username):
            problem = "A username is 1-32 letters, digits, _ . or -, starting with a letter."
            self._view.show_login(username, server, problem)
            return
        self.phase = Phase.CONNECTING
        self._refusal = self._bye = ""
        self._view.show_status(f"Connecting to {describe_server(server)} as {username}…", False)
        self._connect(server, username, self).addCallbacks(self._connected, self._connect_failed)

    def reconnect(self) -> None:
        if self.phase is Phase.DISCONNECTED:
            self.login(self.me or self.username, self.server)

    def choose_mode(self, mode: Kind) -> None:
        self.mode = mode
        if mode is Kind.BROADCAST:
            self.selected = ()
        elif mode is Kind.UNICAST:
            self.selected = self.selected[:1]
        self._view.show_mode(self.mode, self.selected)

    def choose_recipients(self, names: tuple[str, ...]) -> None:
        if self.mode is Kind.BROADCAST:
            names = ()
        elif self.mode is Kind.UNICAST:
            names = names[-1:]
        self.selected = names
        self._view.show_mode(self.mode, self.selected)

    def reply_all(self) -> bool:
        """Address the sender and the rest of the group of the last message received; False if none."""
        if self._reply is None:
            self._say("error", "Nothing to reply to yet.")
            return False
        mode, names = self._reply
        self.mode, self.selected = mode, names
        self._view.show_mode(mode, names)
        return True

    def send(self, text: str) -> bool:
        """Send ``text`` as the chosen option; False (and a reason shown) if it cannot go."""
        problem = self._send_problem(text)
        if problem:
            self._say("error", problem)
            return False
        assert self._protocol is not None
        if self.mode is Kind.BROADCAST:
            self._protocol.broadcast(text)
        else:
            self._protocol.send(self.selected, text)
        self._outbox.append((self.mode, self.selected, text))
        return True

    def _send_problem(self, text: str) -> str:
        if self.phase is not Phase.CONNECTED or self._protocol is None:
            return "Not connected."
        if not text.strip():
            return "Type a message first."
        if any(ch in text for ch in "\r\n"):
            return "A message is one line."
        size = len(text.encode("utf-8"))
        if size > self._limits.max_text:
            return f"The message is {size} bytes; the limit is {self._limits.max_text}."
        if self.mode is Kind.UNICAST and len(self.selected) != 1:
            return "Unicast: pick one recipient."
        if self.mode is Kind.MULTICAST and len(self.selected) < 2:
            return "Multicast: pick two or more recipients (or use Unicast for one)."
        return ""

    def quit(self) -> Deferred[None]:
        """Say goodbye to the server; fires once disconnected (at once if not connected)."""
        gone: Deferred[None] = Deferred()
        if self._protocol is None:
            gone.callback(None)
            return gone
        self._waiting_to_go.append(gone)
        if self.phase is Phase.CONNECTED:
            self._protocol.quit()
        else:
            self._protocol.transport.loseConnection()
        return gone

    def close(self, then: Callable[[], None], grace: float = 2.0) -> None:
        """Quit, wait at most ``grace`` seconds for the server to close, then call ``then`` once."""
        if self._closing:
            return
        self._closing = True
        gone = self.quit()
        gone.addTimeout(grace, self._clock)
        gone.addBoth(lambda _: then())

    # -- the connection ----------------------------------------------------

    def _connected(self, protocol: ClientProtocol) -> None:
        self._protocol = protocol

    def _connect_failed(self, failure: Failure) -> None:
        self.phase = Phase.LOGIN
        self._view.show_login(
            self.username, self.server, f"Could not connect to {self.server}: {failure.getErrorMessage()}"
        )

    def welcomed(self, name: str) -> None:
        self.phase = Phase.CONNECTED
        self.me = name
        self._outbox.clear()
        self._view.show_chat()
        status = f"Connected to {describe_server(self.server)} as {name}"
        self._view.show_status(status, True)
        self._say("info", status)

    def user_log(self, users: list[tuple[str, bool]]) -> None:
        self.users = dict(users)
        self._show_users()

    def joined(self, name: str) -> None:
        self.users[name] = True
        self._show_users()
        self._say("info", f"{name} is online")

    def left(self, name: str) -> None:
        self.users[name] = False
        self._show_users()
        self._say("info", f"{name} went offline")

    def message(self, sender: str, kind: Kind, recipients: tuple[str, ...], text: str) -> None:
        if kind is Kind.BROADCAST:
            self._set_reply(Kind.BROADCAST, ())
            self._say("broadcast", f"{sender} to everyone: {text}")
            return
        me, by = self.me.casefold(), sender.casefold()
        others = [r for r in recipients if r.casefold() not in (me, by)]
        if kind is Kind.MULTICAST and others:
            self._say("group", f"{sender} to {and_list(['you', *others])}: {text}")
        else:
            self._say("group" if kind is Kind.MULTICAST else "direct", f"{sender} to you: {text}")
        everyone = ([sender] if by != me else []) + others
        if everyone:
            self._set_reply(Kind.UNICAST if len(everyone) == 1 else Kind.MULTICAST, tuple(everyone))

    def _set_reply(self, mode: Kind, names: tuple[str, ...]) -> None:
        self._reply = (mode, names)
        self._view.show_reply("everyone" if mode is Kind.BROADCAST else and_list(names))

    def sent(self, delivered: int, offline: tuple[str, ...]) -> None:
        if not self._outbox:
            return
        mode, recipients, text = self._outbox.popleft()
        to = "everyone" if mode is Kind.BROADCAST else ", ".join(recipients)
        self._say("sent", f"you to {to}: {text}")
        if offline:
            self._say("warning", f"not connected, did not get it: {', '.join(offline)}")
        elif mode is Kind.BROADCAST and delivered == 0:
            self._say("warning", "nobody else is connected")

    def error(self, code: str, text: str) -> None:
        if self.phase is Phase.CONNECTING:
            self._refusal = f"The server refused {self.username}: {text}"
            return
        if self._outbox:
            self._outbox.popleft()
        self._say("error", f"{code}: {text}")

    def notice(self, text: str) -> None:
        self._say("notice", f"server notice: {text}")

    def bye(self, reason: str) -> None:
        self._bye = reason

    def disconnected(self, reason: str) -> None:
        self._protocol = None
        if self.phase is Phase.CONNECTING:
            self.phase = Phase.LOGIN
            problem = self._refusal or f"The connection closed before registration: {self._bye or reason}"
            self._view.show_login(self.username, self.server, problem)
        elif self.phase is Phase.CONNECTED:
            self.phase = Phase.DISCONNECTED
            why = self._bye or reason
            self._view.show_status(f"Disconnected: {why}", False)
            self._say("info", f"Disconnected: {why}")
        # Last: whoever waits may close the view at once.
        waiting, self._waiting_to_go = self._waiting_to_go, []
        for gone in waiting:
            gone.callback(None)

    # -- helpers -----------------------------------------------------------

    def _show_users(self) -> None:
        names = sorted(self.users, key=str.casefold)
        self._view.show_users([UserItem(name, self.users[name], name == self.me) for name in names])

    def _say(self, style: str, text: str) -> None:
        self._view.append(Entry(self._clock.seconds(), style, text))
