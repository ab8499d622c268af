"""The client in a terminal: the same presenter, a line-by-line view.

Sending walks the specification's steps: pick a messaging option, pick the
recipient(s), type the message.  Commands work at every prompt: ``/users``,
``/reconnect``, ``/help``, ``/quit`` (or Ctrl-D).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, ITransport
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from msgsvc.client.presenter import ChatPresenter, Entry, Phase, UserItem
from msgsvc.wire import Kind

HELP = """\
To send: pick u (unicast), m (multicast) or b (broadcast), then the recipient(s), then type the message.
Commands: /users  the username log    /reconnect  after a disconnect
          /help   this text           /quit       leave (Ctrl-D too)"""

_MODES = {"u": Kind.UNICAST, "m": Kind.MULTICAST, "b": Kind.BROADCAST}
_MARKS = {"sent": "->", "warning": "!!", "error": "!!", "info": "--", "notice": "**"}


def _clean(text: str) -> str:
    """Text safe for a terminal: control characters shown, never obeyed."""
    return "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in text)


class TextView:
    """A :class:`~msgsvc.client.presenter.View` that prints lines and reads answers."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self.presenter: ChatPresenter | None = None
        self._on_quit: Callable[[], None] = lambda: None
        self._step = "username"
        self._users: list[UserItem] = []
        self._typed_ahead: list[str] = []

    def bind(self, presenter: ChatPresenter, on_quit: Callable[[], None]) -> None:
        """Take input for ``presenter``; ``on_quit`` runs on /quit or end of input."""
        self.presenter = presenter
        self._on_quit = on_quit

    # -- View --------------------------------------------------------------

    def show_login(self, username: str, server: str, problem: str) -> None:
        self._typed_ahead.clear()
        if problem:
            self._print(f"!! {problem}")
        self._step = "username"
        self._prompt()

    def show_chat(self) -> None:
        self._print("Type /help for help.")
        self._step = "mode"

    def show_users(self, users: list[UserItem]) -> None:
        first = not self._users
        self._users = users
        if first:
            self._print_users()
            self._prompt()
        typed, self._typed_ahead = self._typed_ahead, []
        for line in typed:
            self.line(line)

    def show_status(self, text: str, connected: bool) -> None:
        if self.presenter is not None and self.presenter.phase is Phase.CONNECTING:
            self._print(f"-- {text}")
        if self.presenter is not None and self.presenter.phase is Phase.DISCONNECTED:
            self._step = "disconnected"

    def show_mode(self, mode: Kind, selected: tuple[str, ...]) -> None:
        """Nothing to show: the prompts say it."""

    def show_reply(self, target: str) -> None:
        """Nothing to show."""

    def append(self, entry: Entry) -> None:
        stamp = time.strftime("%H:%M", time.localtime(entry.when))
        mark = _MARKS.get(entry.style, "<-")
        self._print(f"{stamp} {mark} {_clean(entry.text)}")
        self._prompt()

    # -- input -------------------------------------------------------------

    def line(self, text: str) -> None:
        """One line the user typed."""
        assert self.presenter is not None
        if self.presenter.phase is Phase.CONNECTING:
            self._typed_ahead.append(text)  # answered once connected
            return
        text = text.strip()
        command = text.lower()
        if command in ("/quit", "/exit"):
            self._on_quit()
        elif command == "/help":
            self._print(HELP)
            self._prompt()
        elif command == "/users":
            self._print_users()
            self._prompt()
        elif command == "/reconnect":
            self.presenter.reconnect()
        elif self._step == "username":
            self.presenter.login(text or self.presenter.username, self.presenter.server)
        elif self._step == "mode":
            self._choose_mode(command)
        elif self._step == "recipients":
            self._choose_recipients(text)
        elif self._step == "message":
            self._send(text)
        else:
            self._print("-- Not connected: /reconnect or /quit.")

    def _choose_mode(self, answer: str) -> None:
        assert self.presenter is not None
        mode = _MODES.get(answer[:1])
        if mode is None:
            if answer:
                self._print("!! Answer u, m or b.")
            self._prompt()
            return
        self.presenter.choose_mode(mode)
        self._step = "message" if mode is Kind.BROADCAST else "recipients"
        self._prompt()

    def _choose_recipients(self, answer: str) -> None:
        assert self.presenter is not None
        if not answer:
            self._step = "mode"
            self._prompt()
            return
        names = tuple(n.strip() for n in answer.replace(" ", ",").split(",") if n.strip())
        known = {u.name.casefold(): u.name for u in self._users}
        names = tuple(known.get(n.casefold(), n) for n in names)
        mode = self.presenter.mode
        if mode is Kind.UNICAST and len(names) != 1:
            self._print("!! Unicast goes to one name.")
        elif mode is Kind.MULTICAST and len(names) < 2:
            self._print("!! Multicast goes to two or more names.")
        else:
            self.presenter.choose_recipients(names)
            self._step = "message"
        self._prompt()

    def _send(self, text: str) -> None:
        assert self.presenter is not None
        if not text:
            self._step = "mode"
        elif self.presenter.send(text):
            self._step = "mode"
        self._prompt()

    # -- helpers -----------------------------------------------------------

    def _print_users(self) -> None:
        for user in self._users:
            state = "online" if user.online else "offline"
            self._print(f"   {'*' if user.online else ' '} {user.name}{' (you)' if user.me else ''}  {state}")

    def _prompt(self) -> None:
        presenter = self.presenter
        if presenter is None:
            return
        if self._step == "username":
            suggestion = f" [{presenter.username}]" if presenter.username else ""
            self._write(f"Username{suggestion}: ")
        elif presenter.phase is not Phase.CONNECTED or not self._users:
            return  # the prompt follows the username log
        elif self._step == "mode":
            self._write("Send [u]nicast, [m]ulticast or [b]roadcast? ")
        elif self._step == "recipients":
            count = "one name" if presenter.mode is Kind.UNICAST else "names, comma-separated"
            self._write(f"To ({count}; empty to go back): ")
        elif self._step == "message":
            to = "everyone" if presenter.mode is Kind.BROADCAST else ", ".join(presenter.selected)
            self._write(f"Message to {to} (empty to go back): ")

    def _print(self, text: str) -> None:
        self._write(text + "\n")


@implementer(IHalfCloseableProtocol)
class TerminalInput(LineReceiver):
    """Standard input, line by line, into its :class:`TextView`.

    End of input quits, and output goes on until then: replies to the last
    lines typed are still printed.  ``closed`` fires once stdio is closed.
    """

    delimiter = b"\n"
    view: TextView
    transport: ITransport

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def lineReceived(self, line: bytes) -> None:
        self.view.line(line.decode("utf-8", errors="replace").rstrip("\r"))

    def readConnectionLost(self) -> None:
        self.view.line("/quit")

    def writeConnectionLost(self) -> None:
        self.view.line("/quit")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed.callback(None)
