"""The terminal client's logic: what it prints, what it prompts, what Tab completes.

No terminal library here: :mod:`msgsvc.client.terminal` runs this view on
prompt_toolkit, and the tests drive it line by line.  Sending walks the
specification's steps (a messaging option, the recipient(s), the message);
commands work at every prompt and send in one line.
"""

from __future__ import annotations

import re
import time
import unicodedata
import zlib
from collections.abc import Callable

from msgsvc.client.presenter import (
    members_of,
    ROOM_MODES,
    ChatPresenter,
    ConversationItem,
    Entry,
    Field,
    Phase,
    RoomItem,
    UserItem,
)
from msgsvc.hub.contracts import Kind

#: A printed line as (style, text) pieces, the shape of prompt_toolkit's FormattedText.
Fragments = list[tuple[str, str]]

COMMANDS = {
    "/msg": "/msg NAME[,NAME...] TEXT  send to one name or several",
    "/all": "/all TEXT                 send to everyone connected",
    "/reply": "/reply [TEXT]             reply to the sender and the group of the last message",
    "/password": "/password                 protect your name, or change its password",
    "/history": "/history [NAME|#all] [N]  N earlier messages of a conversation (the current one)",
    "/conversations": "/conversations [N]        your conversations; N opens the Nth",
    "/to": "/to #ROOM|NAME[,NAME...]  write to a room or to people from now on (/to #all: everyone)",
    "/join": "/join #ROOM [KEY]         join a room (creates it, and you are its operator)",
    "/part": "/part [REASON]            leave the room you write to",
    "/rooms": "/rooms                    the rooms you may join",
    "/members": "/members                  who is in the room you write to",
    "/topic": "/topic [TEXT]             the room's topic, or set it",
    "/invite": "/invite NAME              invite NAME to the room (operators, in an invite-only room)",
    "/kick": "/kick NAME [REASON]       remove NAME from the room (operators)",
    "/mode": "/mode [+i|-m|+k KEY|+l N|+o NAME|+v NAME|+b MASK]  the room's modes, or change them",
    "/who": "/who                      who is online",
    "/users": "/users                    the whole username log",
    "/reconnect": "/reconnect                after a disconnect",
    "/help": "/help                     this text",
    "/quit": "/quit                     leave (Ctrl-D too)",
}
HELP = (
    "To send, answer the prompts: u (unicast), m (multicast) or b (broadcast), the recipient(s), "
    "then the message; an empty answer goes back. Tab completes names and commands; Up and Down "
    "recall earlier lines; Ctrl-C clears the line and goes back."
)
#: Where a command's description starts in :data:`COMMANDS`: wrapped lines start there too.
_COMMAND_INDENT = 26

_ROOM_COMMANDS = ("/to", "/join", "/part", "/rooms", "/members", "/topic", "/invite", "/kick", "/mode")
_MODES = {"u": Kind.UNICAST, "m": Kind.MULTICAST, "b": Kind.BROADCAST}
#: The steps whose input is a password: not echoed, not kept in the history, never a command.
_SECRET_STEPS = ("password", "new-password", "new-password-again")
#: The steps whose lines Up and Down may recall.
_KEPT_STEPS = ("mode", "recipients", "message", "disconnected")
_MARKS = {"sent": "->", "warning": "!!", "error": "!!", "info": "--", "notice": "**"}
#: How many recent conversations the summary at login names.
_SUMMARY = 3
#: How many colours senders are spread over (styles ``sender.0`` ...).
SENDER_COLOURS = 6


def _unread(item: ConversationItem) -> str:
    """``, 3 unread`` ('' if none), after a conversation's time."""
    return f", {item.unread} unread" if item.unread else ""


def _described(item: ConversationItem) -> str:
    """``bob (today 08:43, 3 unread)``; a room with no message known: ``#dev``."""
    said = f"{item.when}{_unread(item)}".lstrip(", ")
    return f"{item.who} ({said})" if said else item.who


def _clean(text: str) -> str:
    """Text safe for a terminal: control characters shown, never obeyed."""
    return "".join(ch if ch.isprintable() or ch == "\t" else ascii(ch)[1:-1] for ch in text)


def cells(text: str) -> int:
    """The columns ``text`` takes on a terminal: two for a wide character (CJK, most emoji),
    none for a combining mark."""
    return sum(map(_cell, text))


def _cell(ch: str) -> int:
    return 0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def _fitting(token: str, room: int) -> int:
    """How many of ``token``'s first characters fit in ``room`` columns: at least one."""
    used = 0
    for n, ch in enumerate(token):
        used += _cell(ch)
        if used > room:
            return max(n, 1)
    return len(token)


def wrap(fragments: Fragments, width: int, indent: int = 0) -> list[Fragments]:
    """``fragments`` as lines of at most ``width`` columns, broken at spaces (a longer word
    where it must be); lines after the first start with ``indent`` spaces."""
    indent = min(indent, width // 2)
    lines: list[Fragments] = [[]]
    column = 0
    for style, text in fragments:
        for token in re.findall(r"\S+|\s+", text):
            if token.isspace():
                if column > indent or len(lines) == 1:  # not at the start of a wrapped line
                    _add(lines[-1], style, token)
                    column += cells(token)
                continue
            while token:
                room = width - column
                if cells(token) > room and column > indent:
                    _strip_end(lines[-1])
                    lines.append([("", " " * indent)] if indent else [])
                    column = indent
                    continue
                fits = _fitting(token, room)
                piece, token = token[:fits], token[fits:]
                _add(lines[-1], style, piece)
                column += cells(piece)
    _strip_end(lines[-1])
    return lines


def _add(line: Fragments, style: str, text: str) -> None:
    """Add ``text`` to the line's last fragment if it has the same style, else as a new one."""
    if line and line[-1][0] == style:
        line[-1] = (style, line[-1][1] + text)
    else:
        line.append((style, text))


def _strip_end(line: Fragments) -> None:
    """Drop the spaces a line ends with."""
    while line and line[-1][1].isspace():
        line.pop()
    if line:
        line[-1] = (line[-1][0], line[-1][1].rstrip(" "))


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
        width: Callable[[], int] = lambda: 80,
    ) -> None:
        self._output_line = output
        self._refresh = refresh
        self._width = width  # the terminal's, in columns
        self._password_prompt = password_prompt  # ask for a password with every login
        self._name = ""  # the username typed, while its password is asked for
        self._new_password = ""  # the first of the two /password answers
        self.presenter: ChatPresenter | None = None
        self._on_quit: Callable[[], None] = lambda: None
        self._step = "username"
        self._users: list[UserItem] = []
        self._typed_ahead: list[str] = []
        self._day = ""  # the day the last message of the history printed was of
        self._conversations: list[ConversationItem] = []
        self._summary_due = False  # the list of this connection is yet to come
        self._room: RoomItem | None = None  # the room the prompt writes to

    def bind(self, presenter: ChatPresenter, on_quit: Callable[[], None]) -> None:
        """Take input for ``presenter``; ``on_quit`` runs on /quit or end of input.  What is printed
        is read: the user looks at the terminal (``presenter`` shows everything)."""
        self.presenter = presenter
        self._on_quit = on_quit
        presenter.look(True)

    # -- View --------------------------------------------------------------

    def show_login(self, username: str, server: str, problem: str, field: Field = "username") -> None:
        self._typed_ahead.clear()
        if problem:
            self._say("error", f"!! {problem}")
        if field == "server":
            self._say(
                "info",
                "-- Press Enter to try again. For another server, /quit and start the client with "
                "--server tcp:HOST:PORT (or tls:HOST:PORT).",
            )
        self._name = username
        self._step = "password" if field == "password" else "username"
        self._refresh()

    def show_title(self, text: str) -> None:
        """Nothing to show: the terminal's title is the user's."""

    def show_account(self, protected: bool) -> None:
        """Nothing to show: /password protects a name or changes its password."""

    def show_password_problem(self, text: str) -> None:
        self._say("error", f"!! {text}")

    def hides_input(self) -> bool:
        """Whether the line being typed is masked: a password, or typed while connecting, when the
        server may yet answer that the name needs one."""
        connecting = self.presenter is not None and self.presenter.phase is Phase.CONNECTING
        return self._step in _SECRET_STEPS or connecting

    def keeps_input(self) -> bool:
        """Whether the line being typed may be recalled with Up: never a password, nor what was
        typed before the chat began."""
        return self._step in _KEPT_STEPS and not self.hides_input()

    def show_chat(self) -> None:
        self._say("info", "-- Type /help for help.")
        self._summary_due = True
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

    def show_conversations(self, items: list[ConversationItem]) -> None:
        """Say the newest few, at login (not as messages move them): /conversations lists them all,
        with their unread counts."""
        self._conversations = items
        due, self._summary_due = self._summary_due, False
        told = [item for item in items if item.when or item.unread]  # not #all nor a room without messages
        if not (due and told):
            return
        newest = ", ".join(_described(item) for item in told[:_SUMMARY])
        more = f" and {len(told) - _SUMMARY} more" if len(told) > _SUMMARY else ""
        self._say("info", f"-- Your recent conversations: {newest}{more}. /conversations N opens one.")

    def show_room(self, room: RoomItem | None) -> None:
        """Kept for /members; the prompt writes to the room opened."""
        self._room = room
        if room is not None and self._step in ("mode", "recipients"):
            self._step = "message"
        self._refresh()

    def append(self, entry: Entry) -> None:
        self._day = ""  # a page of history printed after this says its day again
        self._print(entry)

    def insert(self, index: int, entry: Entry) -> None:
        """Printed as it comes (a terminal cannot go back): a message of the history under its day."""
        if entry.style == "day":
            return  # each message of the history has its day
        if entry.day != self._day:
            self._day = entry.day
            self._say("day", f"--- {entry.day} ---")
        self._print(entry)

    def _print(self, entry: Entry) -> None:
        stamp = (entry.label or time.strftime("%H:%M", time.localtime(entry.when))) + " "
        text = _clean(entry.text)
        line: Fragments = [("class:time", stamp)]
        if entry.style in _MARKS:
            line.append((f"class:{entry.style}", f"{_MARKS[entry.style]} {text}"))
        else:
            sender, _, rest = text.partition(" ")
            line += [(sender_style(sender), sender), (f"class:{entry.style}", f" {rest}")]
        self._output(line, len(stamp))

    # -- what the terminal asks --------------------------------------------

    def prompt(self) -> str:
        """The text before the input line."""
        presenter = self.presenter
        if presenter is not None and presenter.phase is Phase.CONNECTING:
            return "(connecting) "
        if self._step == "password":
            return f"Password for {self._name} (empty for none): "
        if self._step == "new-password":
            return "New password (empty to go back): "
        if self._step == "new-password-again":
            return "The new password again: "
        if presenter is None or self._step == "username":
            suggestion = f" [{presenter.username}]" if presenter is not None and presenter.username else ""
            return f"Username{suggestion}: "
        if presenter.phase is Phase.CONNECTED and not self._users:
            return "(connecting) "
        if self._step == "disconnected":
            return "(disconnected: /reconnect or /quit) "
        if self._step == "mode":
            return "Send [u]nicast, [m]ulticast or [b]roadcast? "
        if self._step == "message" and self._room is not None:
            return f"Message to {self._room.name} (empty to go back): "
        if self._step == "recipients":
            count = "one name" if presenter.mode is Kind.UNICAST else "names, comma-separated"
            return f"To ({count}; empty to go back): "
        return f"Message to {presenter.addressees()} (empty to go back): "

    def completions(self, before_cursor: str) -> list[str]:
        """What the word before the cursor may be completed to (commands, usernames), each
        with the space that ends it."""
        word = word_before(before_cursor)
        if self.hides_input():
            return []
        if word.startswith("/") and word == before_cursor:
            return [f"{c} " for c in COMMANDS if c.startswith(word.lower())]
        if self._step in ("username", "mode") and not before_cursor.startswith("/"):
            return []
        key = word.casefold()
        if key.startswith("#"):  # a room of this user's conversations (and #all)
            rooms = [item.who if item.conversation != "#all" else "#all" for item in self._conversations]
            return [f"{room} " for room in rooms if room.startswith("#") and room.casefold().startswith(key)]
        users = sorted(self._users, key=lambda u: (not u.online, u.name.casefold()))
        return [f"{u.name} " for u in users if u.name.casefold().startswith(key) and not u.me]

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
        if self._step in _SECRET_STEPS:
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
            for usage in COMMANDS.values():
                self._output([("class:info", usage)], _COMMAND_INDENT)
        elif command == "/users":
            self._say("info", f"-- all users ({len(self._users)}):")
            self._print_users(self._users)
        elif command == "/who":
            online = [u for u in self._users if u.online]
            self._say("info", f"-- online ({len(online)}):")
            self._print_users(online)
        elif command == "/reconnect":
            self.presenter.reconnect()
        elif self.presenter.phase is not Phase.CONNECTED:
            self._say("error", "!! Not connected: /reconnect or /quit.")
        elif command == "/history":
            self._history(argument.split())
        elif command == "/conversations":
            self._open_conversation(argument)
        elif command == "/password":
            self._step = "new-password"
        elif command == "/reply":
            if self.presenter.reply_all():
                self._step = "message"
                if argument:
                    self._send(argument)
        elif command in _ROOM_COMMANDS:
            self._room_command(command, argument)
        elif command == "/all":
            self._send_now(Kind.BROADCAST, (), argument, "/all TEXT")
        elif command == "/msg":
            names, _, message = argument.partition(" ")
            recipients = self._names(names)
            mode = Kind.UNICAST if len(recipients) == 1 else Kind.MULTICAST
            self._send_now(mode, recipients, message.strip(), "/msg NAME[,NAME...] TEXT")
        else:
            self._say("error", f"!! Unknown command {command}: /help lists them.")

    def _room_command(self, command: str, argument: str) -> None:
        """/to, /join, /part, /rooms, /members, /topic, /invite, /kick, /mode."""
        assert self.presenter is not None
        presenter = self.presenter
        words = argument.split()
        if command == "/to" and words:
            self._write_to(words[0])
        elif command == "/join" and words:
            presenter.join(words[0], " ".join(words[1:]))
        elif command == "/part":
            presenter.part(argument)
        elif command == "/rooms":
            presenter.list_rooms()
        elif command == "/members":
            self._print_members()
        elif command == "/topic":
            presenter.set_topic(argument or None)
        elif command == "/invite" and len(words) == 1:
            presenter.invite(words[0])
        elif command == "/kick" and words:
            presenter.kick(words[0], argument[len(words[0]) :].strip())
        elif command == "/mode":
            presenter.set_mode(words[0] if words else "", tuple(words[1:]))
        else:
            self._say("error", f"!! Usage: {COMMANDS[command]}")

    def _write_to(self, target: str) -> None:
        """The prompt writes to ``target`` from now on: a room, #all, or names."""
        assert self.presenter is not None
        if target.startswith("#"):
            self.presenter.open_conversation(target.lower())
        else:
            names = self._names(target)
            self.presenter.choose_mode(Kind.UNICAST if len(names) == 1 else Kind.MULTICAST)
            self.presenter.choose_recipients(names)
        if self.presenter.conversation():
            self._step = "message"

    def _print_members(self) -> None:
        room = self._room
        if room is None:
            self._say("error", "!! Open a room first: /to #ROOM, or /join #ROOM.")
            return
        modes = ", ".join(ROOM_MODES.get(letter, letter) for letter in room.modes)
        self._say("info", f"-- {room.name} ({members_of(len(room.members))}){f'; {modes}' if modes else ''}:")
        if room.topic:
            self._say("info", f"   topic: {_clean(room.topic)}")
        for member in room.members:
            mark = "@" if member.op else "+" if member.voice else " "
            self._output(
                [
                    ("class:online" if member.online else "class:offline", "   * " if member.online else "     "),
                    ("", mark),
                    (sender_style(member.name), member.name),
                    ("", "  online" if member.online else "  offline"),
                ],
                5,
            )

    def _history(self, words: list[str]) -> None:
        assert self.presenter is not None
        counts = [int(word) for word in words if word.isdigit()]
        targets = [word for word in words if not word.isdigit()]
        if len(counts) > 1 or len(targets) > 1 or any(not 1 <= n <= 100 for n in counts):
            self._say("error", "!! Usage: /history [NAME[,NAME...]|#all] [N], N from 1 to 100")
            return
        everyone = targets and targets[0].lower() == "#all"
        target = "#all" if everyone else ",".join(self._names(targets[0])) if targets else ""
        self.presenter.history(target, counts[0] if counts else None)

    def _open_conversation(self, argument: str) -> None:
        """List the recent conversations (no argument), or open the one numbered ``argument``."""
        assert self.presenter is not None
        items = self._conversations
        if not argument:
            self._say("info", f"-- your recent conversations ({len(items)}):")
            for number, item in enumerate(items, 1):
                line = [
                    ("class:info", f"   {number:>3} "),
                    ("", f"{item.who}  "),
                    ("class:time", item.when),
                    ("class:warning", _unread(item)),
                ]
                self._output(line, 8)
        elif argument.isdigit() and 1 <= int(argument) <= len(items):
            self.presenter.open_conversation(items[int(argument) - 1].conversation)
            self._step = "message"
        else:
            self._say("error", f"!! Usage: /conversations [N], N from 1 to {len(items)}")

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
            if not self.presenter.set_password(first, text) and self.presenter.phase is Phase.CONNECTED:
                self._step = "new-password"  # asked again (an empty answer goes back)

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
                ],
                5,
            )

    def _say(self, style: str, text: str) -> None:
        self._output([(f"class:{style}", text)])

    def _output(self, fragments: Fragments, indent: int = 0) -> None:
        """Print ``fragments`` wrapped at word boundaries to the terminal's width."""
        for line in wrap(fragments, max(self._width() - 1, 20), indent):
            self._output_line(line)
