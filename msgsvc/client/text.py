"""The terminal client's logic: what it prints, what it prompts, what Tab completes.

No terminal library here: :mod:`msgsvc.client.terminal` runs this view on
prompt_toolkit, and the tests drive it line by line.  Sending walks the
specification's steps (a messaging option, the recipient(s), the message);
commands work at every prompt and send in one line.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable

from msgsvc.client.presenter import ChatPresenter, Entry, Phase, UserItem
from msgsvc.wire import Kind

#: A printed line as (style, text) pieces, the shape of prompt_toolkit's FormattedText.
Fragments = list[tuple[str, str]]

COMMANDS = {
    "/msg": "/msg NAME[,NAME...] TEXT  send to one name or several",
    "/all": "/all TEXT                 send to everyone connected",
    "/reply": "/reply [TEXT]             reply to the sender and the group of the last message",
    "/password": "/password                 protect your name, or change its password",
    "/who": "/who                      who is online",
    "/users": "/users                    the whole username log",
    "/reconnect": "/reconnect                after a disconnect",
    "/help": "/help                     this text",
    "/quit": "/quit                     leave (Ctrl-D too)",
}
HELP = (
    "To send, answer the prompts: u (unicast), m (multicast) or b (broadcast), the recipient(s),\n"
    "then the message; an empty answer goes back. Tab completes names and commands; Up and Down\n"
    "recall earlier lines; Ctrl-C clears the line and goes back.\n" + "\n".join(COMMANDS.values())
)

_MODES = {"u": Kind.UNICAST, "m": Kind.MULTICAST, "b": Kind.BROADCAST}
#: The steps whose input is a password: not echoed, not kept in the history, never a command.
_SECRET_STEPS = ("password", "new-password", "new-password-again")
_MARKS = {"sent": "->", "warning": "!!", "error": "!!", "info": "--", "notice": "**"}
#: How many colours senders are spread over (styles ``sender.0`` ...).
SENDER_COLOURS = 6


def _clean(text: str) -> str:
    """Text safe for a terminal: control characters shown, never obeyed."""
    return "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in text)


def word_before(before_cursor: str) -> str:
    """The word Tab completes: what follows the last space or comma."""
    return before_cursor.replace(",", " ").split(" ")[-1]


def sender_style(name: str) -> str:
    """The same colour for a name every time, on every client."""
    return f"class:sender.{zlib.crc32(name.casefold().encode()) % SENDER_COLOURS}"


class TextView:
    """A :class:`~msgsvc.client.presenter.View` for a terminal.

    ``output`` prints one line above the input line; ``refresh`` is called
    when :meth:`prompt` has changed.
    """

    def __init__(
        self,
        output: Callable[[Fragments], None],
        refresh: Callable[[], None] = lambda: None,
        password_prompt: bool = False,
    ) -> None:
        self._output = output
        self._refresh = refresh
        self._password_prompt = password_prompt  # ask for a password with every login
        self._name = ""  # the username typed, while its password is asked for
        self._new_password = ""  # the first of the two /password answers
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

    def show_login(self, username: str, server: str, problem: str, ask_password: bool = False) -> None:
        self._typed_ahead.clear()
        if problem:
            self._say("error", f"!! {problem}")
        self._name = username
        self._step = "password" if ask_password else "username"
        self._refresh()

    def show_account(self, protected: bool) -> None:
        """Nothing to show: /password protects a name or changes its password."""

    def hides_input(self) -> bool:
        """Whether the line being typed is a password."""
        return self._step in _SECRET_STEPS

    def show_chat(self) -> None:
        self._say("info", "-- Type /help for help.")
        self._step = "mode"

    def show_users(self, users: list[UserItem]) -> None:
        first = not self._users
        self._users = users
        if first:
            self._print_users(users)
        self._refresh()
        typed, self._typed_ahead = self._typed_ahead, []
        for line in typed:
            self.line(line)

    def show_status(self, text: str, connected: bool) -> None:
        if self.presenter is not None and self.presenter.phase is Phase.CONNECTING:
            self._say("info", f"-- {text}")
        if self.presenter is not None and self.presenter.phase is Phase.DISCONNECTED:
            self._step = "disconnected"
        self._refresh()

    def show_mode(self, mode: Kind, selected: tuple[str, ...]) -> None:
        self._refresh()

    def show_reply(self, target: str) -> None:
        """Nothing to show: /reply says whom it answers."""

    def append(self, entry: Entry) -> None:
        stamp = (entry.label or time.strftime("%H:%M", time.localtime(entry.when))) + " "
        text = _clean(entry.text)
        line: Fragments = [("class:time", stamp)]
        if entry.style in _MARKS:
            line.append((f"class:{entry.style}", f"{_MARKS[entry.style]} {text}"))
        else:
            sender, _, rest = text.partition(" ")
            line += [(sender_style(sender), sender), (f"class:{entry.style}", f" {rest}")]
        self._output(line)

    # -- what the terminal asks --------------------------------------------

    def prompt(self) -> str:
        """The text before the input line."""
        presenter = self.presenter
        if self._step == "password":
            return f"Password for {self._name} (empty for none): "
        if self._step == "new-password":
            return "New password (empty to go back): "
        if self._step == "new-password-again":
            return "The new password again: "
        if presenter is None or self._step == "username":
            suggestion = f" [{presenter.username}]" if presenter is not None and presenter.username else ""
            return f"Username{suggestion}: "
        if presenter.phase is Phase.CONNECTING or (presenter.phase is Phase.CONNECTED and not self._users):
            return "(connecting) "
        if self._step == "disconnected":
            return "(disconnected: /reconnect or /quit) "
        if self._step == "mode":
            return "Send [u]nicast, [m]ulticast or [b]roadcast? "
        if self._step == "recipients":
            count = "one name" if presenter.mode is Kind.UNICAST else "names, comma-separated"
            return f"To ({count}; empty to go back): "
        to = "everyone" if presenter.mode is Kind.BROADCAST else ", ".join(presenter.selected)
        return f"Message to {to} (empty to go back): "

    def completions(self, before_cursor: str) -> list[str]:
        """What the word before the cursor may be completed to (commands, usernames)."""
        word = word_before(before_cursor)
        if self.hides_input():
            return []
        if word.startswith("/") and word == before_cursor:
            return [c for c in COMMANDS if c.startswith(word.lower())]
        if self._step in ("username", "mode") and not before_cursor.startswith("/"):
            return []
        key = word.casefold()
        users = sorted(self._users, key=lambda u: (not u.online, u.name.casefold()))
        return [u.name for u in users if u.name.casefold().startswith(key) and not u.me]

    def interrupt(self) -> None:
        """Ctrl-C: the line is dropped and sending (or the password) starts over."""
        if self._step in ("recipients", "message", "new-password", "new-password-again"):
            self._step = "mode"
        elif self._step == "password":
            self._step = "username"
        self._refresh()

    # -- input -------------------------------------------------------------

    def line(self, text: str) -> None:
        """One line the user typed."""
        assert self.presenter is not None
        if self.hides_input():
            self._secret(text)  # as typed: spaces count in a password
            self._refresh()
            return
        text = text.strip()
        if self.presenter.phase is Phase.CONNECTING and text.lower() not in ("/quit", "/exit"):
            self._typed_ahead.append(text)  # answered once connected
            return
        if text.startswith("/"):
            self._command(*text.split(" ", 1))
        elif self._step == "username":
            self._name = text or self.presenter.username
            if self._password_prompt:
                self._step = "password"
            else:
                self.presenter.login(self._name, self.presenter.server)
        elif self._step == "mode":
            self._choose_mode(text.lower())
        elif self._step == "recipients":
            self._choose_recipients(text)
        elif self._step == "message":
            self._send(text)
        else:
            self._say("info", "-- Not connected: /reconnect or /quit.")
        self._refresh()

    def _command(self, command: str, argument: str = "") -> None:
        assert self.presenter is not None
        command, argument = command.lower(), argument.strip()
        if command in ("/quit", "/exit"):
            self._on_quit()
        elif command == "/help":
            self._say("info", HELP)
        elif command == "/users":
            self._print_users(self._users)
        elif command == "/who":
            online = [u for u in self._users if u.online]
            self._say("info", f"-- online ({len(online)}):")
            self._print_users(online)
        elif command == "/reconnect":
            self.presenter.reconnect()
        elif self.presenter.phase is not Phase.CONNECTED:
            self._say("error", "!! Not connected: /reconnect or /quit.")
        elif command == "/password":
            self._step = "new-password"
        elif command == "/reply":
            if self.presenter.reply_all():
                self._step = "message"
                if argument:
                    self._send(argument)
        elif command == "/all":
            self._send_now(Kind.BROADCAST, (), argument, "/all TEXT")
        elif command == "/msg":
            names, _, message = argument.partition(" ")
            recipients = self._names(names)
            mode = Kind.UNICAST if len(recipients) == 1 else Kind.MULTICAST
            self._send_now(mode, recipients, message.strip(), "/msg NAME[,NAME...] TEXT")
        else:
            self._say("error", f"!! Unknown command {command}: /help lists them.")

    def _secret(self, text: str) -> None:
        """A password typed at one of the :data:`_SECRET_STEPS`."""
        assert self.presenter is not None
        if self._step == "password":
            self._step = "username"  # until the server answers
            self.presenter.login(self._name, self.presenter.server, text)
        elif self._step == "new-password":
            self._new_password = text
            self._step = "new-password-again" if text else "mode"
        else:
            first, self._new_password = self._new_password, ""
            self._step = "mode"
            self.presenter.set_password(first, text)

    def _send_now(self, mode: Kind, names: tuple[str, ...], text: str, usage: str) -> None:
        assert self.presenter is not None
        if not text or (mode is not Kind.BROADCAST and not names):
            self._say("error", f"!! Usage: {usage}")
            return
        self.presenter.choose_mode(mode)
        self.presenter.choose_recipients(names)
        if self.presenter.send(text):
            self._step = "mode"

    def _choose_mode(self, answer: str) -> None:
        assert self.presenter is not None
        mode = _MODES.get(answer[:1])
        if mode is None:
            if answer:
                self._say("error", "!! Answer u, m or b (or /help).")
            return
        self.presenter.choose_mode(mode)
        self._step = "message" if mode is Kind.BROADCAST else "recipients"

    def _names(self, answer: str) -> tuple[str, ...]:
        """Names typed with commas or spaces between, in the log's spelling where known."""
        known = {u.name.casefold(): u.name for u in self._users}
        typed = (n.strip() for n in answer.replace(" ", ",").split(","))
        return tuple(known.get(n.casefold(), n) for n in typed if n)

    def _choose_recipients(self, answer: str) -> None:
        assert self.presenter is not None
        if not answer:
            self._step = "mode"
            return
        names = self._names(answer)
        mode = self.presenter.mode
        if mode is Kind.UNICAST and len(names) != 1:
            self._say("error", "!! Unicast goes to one name.")
        elif mode is Kind.MULTICAST and len(names) < 2:
            self._say("error", "!! Multicast goes to two or more names.")
        else:
            self.presenter.choose_recipients(names)
            self._step = "message"

    def _send(self, text: str) -> None:
        assert self.presenter is not None
        if not text or self.presenter.send(text):
            self._step = "mode"

    # -- helpers -----------------------------------------------------------

    def _print_users(self, users: list[UserItem]) -> None:
        for user in users:
            state = "online" if user.online else "offline"
            you = " (you)" if user.me else ""
            self._output(
                [
                    (
                        "class:online" if user.online else "class:offline",
                        f"   {'*' if user.online else ' '} ",
                    ),
                    (sender_style(user.name), user.name),
                    ("", f"{you}  {state}{'  protected' if user.protected else ''}"),
                ]
            )

    def _say(self, style: str, text: str) -> None:
        self._output([(f"class:{style}", text)])
