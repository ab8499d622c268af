"""The client's state and decisions, with no toolkit in it.

A view (the Tk window, or a test's recorder) shows what the presenter tells
it and calls the presenter's methods for what its user does.  The presenter
is the :class:`~msgsvc.client.protocol.ClientListener` of the connection.
"""

from __future__ import annotations

import ipaddress
import re
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from msgsvc.client.protocol import (
    MAX_CONVERSATIONS,
    ClientListener,
    ClientProtocol,
    Listed,
    Member,
    RoomInfo,
    Stamp,
)
from msgsvc.hub.contracts import Kind, Refused
from msgsvc.hub.rules import check_password_rules, is_valid_room, is_valid_username
from msgsvc.times import describe_day, describe_time, start_of_day
from msgsvc.wire import Limits

DEFAULT_SERVER = "tcp:localhost:8123"

#: Opens a connection to ``server`` as ``username`` (with a password, or None), reporting to the listener.
Connector = Callable[[str, str, "str | None", ClientListener], "Deferred[ClientProtocol]"]


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
    protected: bool = False


@dataclass(frozen=True)
class _PasswordChange:
    """A ``PASSWORD`` waiting for its answer."""

    password: str


@dataclass(frozen=True)
class _HistoryAsked:
    """A ``HISTORY`` waiting for its page; ``explicit``: the user asked (not the opening of a
    conversation), so an empty page is told."""

    conversation: str
    explicit: bool


@dataclass(frozen=True)
class _ConversationsAsked:
    """A ``CONVERSATIONS`` waiting for its answer."""


@dataclass(frozen=True)
class _ReadAsked:
    """A ``READ`` waiting for its answer."""


@dataclass(frozen=True)
class _RoomAsked:
    """A room command (``verb``: JOIN, PART, TOPIC, INVITE, KICK, MODE, MEMBERS, ROOMS) waiting
    for its answer; ``query``: it asks (a topic, the list of this user's rooms at login), changes nothing."""

    verb: str
    room: str = ""
    query: bool = False


@dataclass
class _Room:
    """A room this user is in, as known on this connection."""

    name: str  # as spelled by the server
    topic: str = ""
    modes: str = ""  # the letters: 'nt'
    members: dict[str, Member] | None = None  # by key; None until the server listed them


@dataclass(frozen=True)
class RoomItem:
    """The open room, as the view shows it: its topic, modes, and members (operators first)."""

    name: str
    topic: str
    modes: str
    members: list[Member]
    operator: bool  # this user is one of its operators


@dataclass(frozen=True)
class ConversationItem:
    """One of this user's recent conversations, as the list of them shows it."""

    conversation: str  # as the server names it: '#all', or the participants' names in lower case
    who: str  # 'everyone', '#dev', 'bob', 'bob and carol', 'yourself'
    when: str  # when its newest message was sent: 'today 08:43', 'yesterday 17:02' ('': none known)
    unread: int = 0  # messages of others after this account's read position (version 10)


@dataclass
class _Pages:
    """How far back a conversation's history is shown."""

    oldest: str = "*"  # the id the next page ends before ('*': none shown yet)
    more: bool = True  # older messages may be read


#: A command waiting for its answer: a message (option, recipients, text), a password change, a page of history.
_Pending = (
    tuple[Kind, tuple[str, ...], str]
    | _PasswordChange
    | _HistoryAsked
    | _ConversationsAsked
    | _ReadAsked
    | _RoomAsked
)

#: Why a name that is not protected has no history of its direct conversations.
UNPROTECTED_HISTORY = (
    "No history of your direct conversations: your name is not protected, and whoever takes it next "
    "could read them. Set a password to keep them from now on."
)
NO_HISTORY = "This server keeps no history."
#: Seconds between two ``READ`` of this client at least (a few conversations read at once share one).
READ_EVERY = 1.0
#: How a refused room command is said: "Cannot join #dev: ...".
_ROOM_VERBS = {
    "JOIN": "Cannot join",
    "PART": "Cannot leave",
    "TOPIC": "No topic for",
    "INVITE": "Cannot invite to",
    "KICK": "Cannot kick from",
    "MODE": "Cannot change the modes of",
    "MEMBERS": "Cannot list the members of",
    "ROOMS": "Cannot list",
}
#: What each mode letter means, as the view says it.
ROOM_MODES = {
    "i": "invite only",
    "k": "key needed",
    "l": "member limit",
    "m": "moderated",
    "n": "no messages from outside",
    "s": "secret",
    "t": "topic locked",
}
#: Why a login was refused ``SESSIONS_FULL``.
SESSIONS_FULL = (
    "{name} is connected on as many devices as this server allows at once. Log out on one of them "
    "(or close it), then connect again."
)


@dataclass(frozen=True)
class Entry:
    """One line of the conversation.  ``style`` is one of
    direct, group, broadcast, notice, sent, warning, error, info, and day: the heading over a day's
    lines, once the conversation spans several days."""

    when: float
    style: str
    text: str
    label: str = ""  # shown in place of the time of day: when a delayed message was sent
    day: str = ""  # a message of the history: its day, as its heading says it


#: The login form's field a problem is about: the one to select for editing.
Field = Literal["username", "password", "server"]


class View(Protocol):
    def show_login(self, username: str, server: str, problem: str, field: Field = "username") -> None:
        """Show the login form, prefilled, with ``problem`` (if any) and ``field`` selected: the
        password when the name needs one, the server when it could not be reached."""

    def show_title(self, text: str) -> None:
        """Name the window: who is connected where."""

    def show_account(self, protected: bool) -> None:
        """Say whether this user's name is protected (offer to protect it, or to change its password)."""

    def show_password_problem(self, text: str) -> None:
        """Say, by the new password's fields, why it was not set."""

    def show_chat(self) -> None:
        """Show the conversation, the user list and the message box."""

    def show_status(self, text: str, connected: bool) -> None:
        """Say how the connection stands; offer to reconnect when not ``connected``."""

    def show_users(self, users: list[UserItem]) -> None: ...

    def show_mode(self, mode: Kind, selected: tuple[str, ...]) -> None:
        """Show the messaging option and the recipients chosen for it."""

    def show_reply(self, target: str) -> None:
        """Say whom "reply all" would answer ('' while there is nothing to reply to)."""

    def show_conversations(self, items: list[ConversationItem]) -> None:
        """Show this user's conversations (``#all``, its rooms, the people it talks with), newest
        first: picking one opens it."""

    def show_room(self, room: RoomItem | None) -> None:
        """Show the open room's topic and members, and (``room.operator``) an operator's actions;
        None: the open conversation is no room."""

    def append(self, entry: Entry) -> None: ...

    def insert(self, index: int, entry: Entry) -> None:
        """Put ``entry`` at ``index`` of the conversation (0: the top; counting every entry given):
        a message of the history, or a day's heading, where its time puts it.  A view that cannot
        insert shows it as it comes."""


def members_of(count: int) -> str:
    """``1 member``, ``3 members``."""
    return f"{count} member{'' if count == 1 else 's'}"


def and_list(names: list[str] | tuple[str, ...]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def plain_remote_host(server: str) -> str:
    """The host a ``tcp:`` endpoint reaches without encryption, unless it is loopback; else ''."""
    if not server.startswith("tcp:"):
        return ""
    parts = [p.replace("\\:", ":") for p in re.split(r"(?<!\\):", server[len("tcp:") :])]
    named = [p[len("host=") :] for p in parts if p.startswith("host=")]
    host = named[0] if named else ("" if "=" in parts[0] else parts[0])
    if host.casefold() == "localhost":
        return ""
    try:
        return "" if ipaddress.ip_address(host).is_loopback else host
    except ValueError:
        return host


def describe_failure(server: str, failure: Failure) -> str:
    """Why ``server`` could not be reached, in words."""
    where = describe_server(server)
    if failure.check(ConnectionRefusedError):
        return f"Cannot reach {where}: connection refused — is the server running?"
    if failure.check(DNSLookupError):
        return f"Cannot reach {where}: no such host"
    if failure.check(TimeoutError):
        return f"Cannot reach {where}: no answer (timed out)"
    return f"Cannot reach {where}: {failure.getErrorMessage()}"


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
        shows_everything: bool = False,
    ) -> None:
        """``shows_everything``: the view shows every message as it comes, of every conversation (a
        terminal prints them), so what it holds is read while the user looks at it; else only the
        open conversation (the one the option and recipients make) is read."""
        self._view = view
        self._connect = connect
        self._clock = clock
        self._limits = limits
        self.username = username
        self.server = server
        self.phase = Phase.LOGIN
        self.me = ""
        self.users: dict[str, bool] = {}
        self._protected_names: set[str] = set()
        self.mode = Kind.UNICAST
        self.selected: tuple[str, ...] = ()
        self._protocol: ClientProtocol | None = None
        self._refusal = ""
        self._ask_password = False  # the refusal was for the password
        self._bye = ""
        self._password = ""  # kept to reconnect with
        self._warned = ""  # the server the user chose to send a password to over plain TCP
        self._outbox: deque[_Pending] = deque()
        self._reply: tuple[Kind, tuple[str, ...]] | None = None  # what "reply all" answers
        self._talking: set[str] = set()  # the names (casefolded) messages went to or came from
        self._logging_out = False
        self._shown_through = 0  # the id of the last delayed message shown (ids only grow)
        self._away_said = False  # "while you were away" was said for this connection
        self._waiting_to_go: list[Deferred[None]] = []
        self._closing = False
        self._history_days = 0  # how long the server keeps history (0: none, or a version 8 server)
        self._catching_up = False  # the catch-up of #all is coming
        self._seen: set[str] = set()  # the ids of the messages shown (of this user)
        self._pages: dict[str, _Pages] = {}  # the conversations opened on this connection
        self._asking: set[str] = set()  # conversations with a page asked for
        self._page_oldest = ""  # the first id of the page of history coming
        self._unprotected_said = False  # UNPROTECTED_HISTORY was said on this connection
        self._recent: dict[str, float] | None = None  # the conversations listed, and their newest times
        self._order: list[tuple[float, str]] = []  # each entry the view holds, in its order: (time, id)
        self._days: set[float] = set()  # the days (their midnights) the entries are of
        self._version = 0  # the version the server speaks with this client
        self._shows_everything = shows_everything
        self._looking = False  # the user looks at the view (see look)
        self._newest: dict[str, str] = {}  # the newest id known, per conversation (listed or shown)
        self._unread: dict[str, int] = {}  # version 10: messages of others not read, per conversation
        self._read: dict[str, str] = {}  # version 10: this account's read positions known
        self._newest_other: dict[str, str] = {}  # the newest id known of a message of others, per conversation
        self._shown: dict[str, str] = {}  # the newest id of a message of others the view holds, per conversation
        self._told: dict[str, str] = {}  # the read positions the server knows (said, or told by it)
        self._read_at = float("-inf")  # when READ was last said
        self._read_due: IDelayedCall | None = None  # READ to say, READ_EVERY after the last
        self._rooms: dict[str, _Room] = {}  # version 11: the rooms this user is in, by key

    @property
    def name_protected(self) -> bool:
        """Whether this user's name has a password."""
        return self.me in self._protected_names

    # -- what the user does ----------------------------------------------

    def start(self) -> None:
        self._view.show_title("msgsvc")
        self._view.show_login(self.username, self.server, "")

    def look(self, looking: bool) -> None:
        """The user looks at the view now (its window has the focus), or no longer: what it shows
        of a conversation while the user looks is read (``READ``), and its unread count cleared."""
        self._looking = looking
        self._mark_read()

    def login(self, username: str, server: str, password: str = "") -> None:
        """Connect as ``username``, with ``password`` if not empty.

        A password for a plain ``tcp:`` server that is not on this machine is
        not sent at the first try: the user is warned, and a second try sends it.
        """
        username, server = username.strip(), server.strip() or DEFAULT_SERVER
        self.username, self.server = username, server
        if not is_valid_username(username):
            problem = "A username is 1-32 letters, digits, _ . or -, starting with a letter."
            self._view.show_login(username, server, problem)
            return
        warning = self._plain_text_warning(password, "connect again")
        if warning:
            self._view.show_login(username, server, warning, "password")
            return
        self.phase = Phase.CONNECTING
        self._history_days = 0
        self._password = password
        self._refusal = self._bye = ""
        self._ask_password = False
        self._view.show_status(f"Connecting to {describe_server(server)} as {username}…", False)
        self._connect(server, username, password or None, self).addCallbacks(
            self._connected, self._connect_failed
        )

    def _plain_text_warning(self, password: str, again: str) -> str:
        """A warning, the first time only, before ``password`` crosses the network unencrypted."""
        host = plain_remote_host(self.server)
        if not password or not host or self._warned == self.server:
            return ""
        self._warned = self.server
        return (
            f"{host} is not this machine and tcp: is not encrypted: your password would cross the "
            f"network as you typed it. Use tls:{describe_server(self.server)} if the server offers "
            f"TLS, or {again} to send it anyway."
        )

    def reconnect(self) -> None:
        if self.phase is Phase.DISCONNECTED:
            self.login(self.me or self.username, self.server, self._password)
        elif self.phase is Phase.CONNECTED:
            self._say("info", f"Already connected to {describe_server(self.server)} as {self.me}.")
        elif self.phase is Phase.CONNECTING:
            self._say("info", f"Connecting to {describe_server(self.server)} already.")

    def log_out(self) -> None:
        """Leave the server and go back to the login form (the password is forgotten)."""
        self._password = ""
        if self.phase is Phase.CONNECTED:
            self._logging_out = True
            self.quit()
        elif self.phase is Phase.DISCONNECTED:
            self._to_login()

    def _to_login(self) -> None:
        self.phase = Phase.LOGIN
        self._view.show_title("msgsvc")
        self._view.show_login(self.me or self.username, self.server, "")

    def set_password(self, password: str, again: str) -> bool:
        """Protect this user's name with ``password`` (typed twice), or change its password.

        False (and a reason shown) if it cannot be sent yet.
        """
        if self.phase is not Phase.CONNECTED or self._protocol is None:
            problem = "Not connected."
        elif password != again:
            problem = "The two passwords differ."
        else:
            try:
                check_password_rules(password)
                problem = self._plain_text_warning(password, "set it again")
            except Refused as e:
                problem = e.text[0].upper() + e.text[1:] + "."
        if problem:
            self._view.show_password_problem(problem)
            return False
        assert self._protocol is not None
        self._protocol.set_password(password)
        self._outbox.append(_PasswordChange(password))
        return True

    def choose_mode(self, mode: Kind) -> None:
        """The seed's first step: unicast, multicast or broadcast (a room is opened, not chosen here)."""
        self.mode = mode
        if mode is Kind.BROADCAST:
            self.selected = ()
        self.selected = tuple(name for name in self.selected if not is_valid_room(name))
        if mode is Kind.UNICAST:
            self.selected = self.selected[:1]
        self._view.show_mode(self.mode, self.selected)
        self._open()

    def choose_recipients(self, names: tuple[str, ...]) -> None:
        """The seed's second step: the recipients (picking one in a room leaves it, for unicast)."""
        if self.mode is Kind.ROOM:
            self.mode = Kind.UNICAST
        if self.mode is Kind.BROADCAST:
            names = ()
        elif self.mode is Kind.UNICAST:
            names = names[-1:]
        self.selected = names
        self._view.show_mode(self.mode, self.selected)
        self._open()

    def reply_all(self) -> bool:
        """Address the sender and the rest of the group of the last message received; False if none."""
        if self._reply is None:
            self._say("error", "Nothing to reply to yet.")
            return False
        self._choose(*self._reply)
        return True

    def open_conversation(self, conversation: str) -> None:
        """Address ``conversation`` (as :class:`ConversationItem` names it) and show its history."""
        if conversation == "#all":
            self._choose(Kind.BROADCAST, ())
            return
        if is_valid_room(conversation):
            room = self._rooms.get(conversation.lower())
            if room is None:
                self._say("error", f"You are not in {conversation}: join it first.")
                return
            self._choose(Kind.ROOM, (room.name,))
            if room.members is None and self._protocol is not None:
                self._ask_members(room.name)
            return
        others = self._spelled(conversation) or (self.me,)
        self._choose(Kind.UNICAST if len(others) == 1 else Kind.MULTICAST, others)

    def _spelled(self, conversation: str) -> tuple[str, ...]:
        """The participants of a direct ``conversation`` but this user, as the log spells them."""
        known = {name.casefold(): name for name in self.users}
        me = self.me.casefold()
        return tuple(known.get(key, key) for key in conversation.split(",") if key != me)

    def _choose(self, mode: Kind, names: tuple[str, ...]) -> None:
        self.mode, self.selected = mode, names
        self._view.show_mode(mode, names)
        self._open()

    # -- history -------------------------------------------------------------

    def conversation(self) -> str:
        """The conversation the chosen option and recipients make ('' while they make none):
        ``#all``, or the participants' names in lower case, sorted, comma-separated, as the server
        names it."""
        if self.mode is Kind.BROADCAST:
            return "#all"
        if self.mode is Kind.ROOM:
            return self.selected[0].lower() if self.selected else ""
        if len(self.selected) != (1 if self.mode is Kind.UNICAST else max(len(self.selected), 2)):
            return ""
        return self._direct(self.selected)

    def _direct(self, names: tuple[str, ...]) -> str:
        return ",".join(sorted({name.lower() for name in (*names, self.me)}))

    def load_earlier(self) -> None:
        """Show the page of the chosen conversation's history before what is shown (the view was
        scrolled to its top); nothing if there is none, or it is being asked for."""
        conversation = self.conversation()
        if conversation and not self._history_problem(conversation):
            self._ask(conversation, None, explicit=False)

    def history(self, target: str = "", count: int | None = None) -> None:
        """Show ``count`` (the server's default if None) more messages of the history of ``target``:
        ``#all``, names (comma-separated), or '' for the chosen conversation (else ``#all``)."""
        if target == "#all" or not (target or self.conversation()):
            conversation = "#all"
        elif target:
            conversation = self._direct(tuple(name for name in target.split(",") if name))
        else:
            conversation = self.conversation()
        problem = self._history_problem(conversation)
        if problem:
            self._say("warning", problem)
        else:
            self._ask(conversation, count, explicit=True)

    def _history_problem(self, conversation: str) -> str:
        """Why ``conversation``'s history cannot be asked for now ('' if it can)."""
        if self.phase is not Phase.CONNECTED or self._protocol is None:
            return "Not connected."
        if not self._history_days:
            return NO_HISTORY
        if not is_valid_room(conversation) and not self.name_protected:
            return UNPROTECTED_HISTORY
        return ""

    def _open(self) -> None:
        """Show the latest history of the conversation just chosen, once a connection; tell a name
        that is not protected, once, why it has none of its direct conversations; read what it
        shows of it."""
        self._mark_read()
        self._show_room()
        conversation = self.conversation()
        if not conversation or conversation in self._pages or self._catching_up:
            return
        problem = self._history_problem(conversation)
        if problem == UNPROTECTED_HISTORY and not self._unprotected_said:
            self._unprotected_said = True
            self._say("info", problem)
        elif not problem:
            self._ask(conversation, None, explicit=False)

    def _ask(self, conversation: str, count: int | None, explicit: bool) -> None:
        assert self._protocol is not None
        pages = self._pages.setdefault(conversation, _Pages())
        if conversation in self._asking:
            return
        if not pages.more:
            if explicit:
                self._say("info", f"No earlier messages {self._in(conversation)}.")
            return
        self._asking.add(conversation)
        self._protocol.history(conversation, pages.oldest, count)
        self._outbox.append(_HistoryAsked(conversation, explicit))

    def _in(self, conversation: str) -> str:
        """``conversation`` as a reader says it: 'to everyone', 'with bob', 'with bob and carol'."""
        if conversation == "#all":
            return "to everyone"
        if is_valid_room(conversation):
            return f"in {self._who(conversation)}"
        others = [name for name in conversation.split(",") if name != self.me.lower()]
        return "with " + and_list(others or ["yourself"])

    def history_message(
        self, conversation: str, sender: str, kind: Kind, recipients: tuple[str, ...], stamp: Stamp, text: str
    ) -> None:
        if not self._page_oldest:
            self._page_oldest = stamp.id
        if stamp.id in self._seen:
            return
        self._seen.add(stamp.id)
        if self._mine(sender):
            style, said = "sent", self._from_me(kind, recipients, text)
        else:
            style, said = self._said(sender, kind, recipients, text)
        day = describe_day(stamp.at, self._clock.seconds())
        self._add(Entry(stamp.at, style, said, day=day), stamp.id)
        if self._readable(conversation):
            self._arrived(conversation, stamp, self._mine(sender), live=False)

    def history_end(self, conversation: str, more: bool) -> None:
        oldest, self._page_oldest = self._page_oldest, ""
        pending = self._outbox[0] if self._outbox else None
        if self._catching_up and not isinstance(pending, _HistoryAsked):
            # A page of the catch-up (version 9: only #all's; 10: #all's, then the unread of others,
            # up to the answer to CONVERSATIONS): paging goes on before it.
            if oldest and self._readable(conversation):
                self._pages[conversation] = _Pages(oldest, more)
            if self._version < 10:
                self._caught_up()
            return
        if not isinstance(pending, _HistoryAsked):
            return
        self._outbox.popleft()
        self._asking.discard(pending.conversation)
        pages = self._pages[pending.conversation]
        pages.more = more
        if oldest:
            pages.oldest = oldest
        elif pending.explicit and not more:
            self._say("info", f"No earlier messages {self._in(pending.conversation)}.")

    def addressees(self) -> str:
        """Whom a message would go to, saying of each name offline whether it would wait for it
        (while connected: who is online is not known otherwise)."""
        if self.mode is Kind.BROADCAST:
            return "everyone connected"
        if self.mode is Kind.ROOM:
            return f"everyone in {and_list(self.selected)}"
        connected = self.phase is Phase.CONNECTED
        offline = [name for name in self.selected if connected and not self.users.get(name, True)]
        waits = [name for name in offline if name in self._protected_names]
        lost = [name for name in offline if name not in waits]
        notes = [f"offline, gets it when back: {and_list(waits)}"] if waits else []
        notes += [f"offline, will not get it: {and_list(lost)}"] if lost else []
        return ", ".join(self.selected) + (f" ({'; '.join(notes)})" if notes else "")

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
            self._talking.update(name.casefold() for name in self.selected)
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
        if self.mode is Kind.ROOM and self.conversation() not in self._rooms:
            return f"You are no longer in {and_list(self.selected)}."
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

    def version(self, version: int, history_days: int) -> None:
        self._version = version
        self._history_days = history_days if version >= 9 else 0

    def _connect_failed(self, failure: Failure) -> None:
        self.phase = Phase.LOGIN
        self._view.show_title("msgsvc")
        self._view.show_login(self.username, self.server, describe_failure(self.server, failure), "server")

    def welcomed(self, name: str) -> None:
        if name != self.me:
            self._shown_through = 0  # another user's queue
            self._reply = None
            self._talking.clear()
            self._seen.clear()
        self._away_said = False
        self._unprotected_said = False
        self._catching_up = self._history_days > 0
        self._pages.clear()
        self._asking.clear()
        self._recent = None  # until this connection's list comes
        self._page_oldest = ""
        self._rooms.clear()
        for kept in (self._newest, self._unread, self._read, self._newest_other, self._shown, self._told):
            kept.clear()
        self.phase = Phase.CONNECTED
        self.me = name
        self._outbox.clear()
        self._view.show_chat()
        where = describe_server(self.server)
        self._view.show_title(f"{name} on {where} — msgsvc")
        status = f"Connected to {where} as {name}"
        self._view.show_status(status, True)
        self._say("info", status)
        if self._reply is not None:
            self._set_reply(*self._reply)
        if self._history_days and self._protocol is not None:
            self._protocol.conversations()
            self._outbox.append(_ConversationsAsked())
        if self._version >= 11 and self._protocol is not None:
            self._protocol.rooms(mine=True)
            self._outbox.append(_RoomAsked("ROOMS", query=True))

    def conversations(self, found: list[Listed]) -> None:
        pending = self._outbox[0] if self._outbox else None
        if not isinstance(pending, _ConversationsAsked):
            return  # not asked for
        self._outbox.popleft()
        self._recent = {}
        for listed in found:
            conversation = listed.conversation
            if conversation in self._recent or not self._readable(conversation):
                continue
            self._recent[conversation] = listed.newest.at
            self._newest[conversation] = max(listed.newest.id, self._newest.get(conversation, ""))
            if self._version >= 10:
                self._count(conversation, listed)
        self._caught_up()
        self._show_recent()

    def _heard(self, conversation: str, at: float) -> None:
        """A message of ``conversation`` at ``at``: it goes to the top of the list, once the list
        came (or a room made one), unless it is a direct one of a name that keeps none."""
        unkept = self._history_problem(conversation) == UNPROTECTED_HISTORY  # not to be read again
        if self._recent is None or unkept or not self._readable(conversation):
            return
        self._recent[conversation] = max(at, self._recent.get(conversation, at))
        if len(self._recent) > MAX_CONVERSATIONS:
            del self._recent[min(self._recent, key=self._recent.__getitem__)]
        self._show_recent()

    def _show_recent(self) -> None:
        assert self._recent is not None
        now = self._clock.seconds()
        newest = sorted(self._recent.items(), key=lambda item: -item[1])  # stable: the server's order
        self._view.show_conversations(
            [
                ConversationItem(c, self._who(c), describe_time(at, now) if at else "", self._unread.get(c, 0))
                for c, at in newest  # a room with no message known: at 0
            ]
        )

    def _caught_up(self) -> None:
        """The catch-up at login is over: open the conversation chosen meanwhile."""
        if self._catching_up:
            self._catching_up = False
            self._open()

    # -- rooms (version 11) ---------------------------------------------------

    def join(self, room: str, key: str = "") -> None:
        """Join ``room`` (the server creates it if there is none, with this user as its operator),
        with its ``key`` if it has one; it opens once joined."""
        room = room.strip()
        if not room.startswith("#"):
            room = "#" + room
        if not is_valid_room(room):
            self._say("error", "A room's name is # and 1-32 letters, digits, _ . or -, a letter first.")
        elif room.lower() == "#all":
            self.open_conversation("#all")  # everyone's: everyone is in it
        elif self._room_problem() == "":
            assert self._protocol is not None
            self._protocol.join(room, key)
            self._outbox.append(_RoomAsked("JOIN", room))

    def part(self, reason: str = "") -> None:
        """Leave the open room."""
        room = self._open_room()
        if room:
            assert self._protocol is not None
            self._protocol.part(room, reason)
            self._outbox.append(_RoomAsked("PART", room))

    def set_topic(self, text: str | None = None) -> None:
        """Say the open room's topic (``text`` None), or set it ('' clears it)."""
        room = self._open_room()
        if room:
            assert self._protocol is not None
            self._protocol.topic(room, text)
            self._outbox.append(_RoomAsked("TOPIC", room, query=text is None))

    def invite(self, name: str) -> None:
        room = self._open_room()
        if room and self._valid_name(name):
            assert self._protocol is not None
            self._protocol.invite(room, name)
            self._outbox.append(_RoomAsked("INVITE", room))

    def kick(self, name: str, reason: str = "") -> None:
        room = self._open_room()
        if room and self._valid_name(name):
            assert self._protocol is not None
            self._protocol.kick(room, name, reason)
            self._outbox.append(_RoomAsked("KICK", room))

    def set_mode(self, changes: str = "", args: tuple[str, ...] = ()) -> None:
        """Say the open room's modes (no ``changes``), or change them: ``+i``, ``+o`` with a name."""
        room = self._open_room()
        if not room:
            return
        well_formed = not changes or re.fullmatch(r"[+-]?[a-z]+([+-][a-z]+)*", changes) is not None
        if not well_formed or any(" " in a or not a for a in args):
            self._say("error", "Modes: +i, -m, +k KEY, +l 20, +o NAME, -v NAME, +b MASK (none: see them).")
            return
        assert self._protocol is not None
        self._protocol.mode(room, *([changes, *args] if changes else []))
        self._outbox.append(_RoomAsked("MODE", room))

    def list_rooms(self) -> None:
        """List the rooms this user may see (public ones, and its own)."""
        if self._room_problem() == "":
            assert self._protocol is not None
            self._protocol.rooms()
            self._outbox.append(_RoomAsked("ROOMS"))

    def _room_problem(self) -> str:
        """Why rooms cannot be used now, said ('' if they can)."""
        problem = ""
        if self.phase is not Phase.CONNECTED or self._protocol is None:
            problem = "Not connected."
        elif self._version < 11:
            problem = "This server has no rooms (it speaks an older version of the protocol)."
        if problem:
            self._say("error", problem)
        return problem

    def _open_room(self) -> str:
        """The open room's name, or '' (said why)."""
        if self._room_problem():
            return ""
        if self.mode is not Kind.ROOM or self.conversation() not in self._rooms:
            self._say("error", "Open a room first (join one, or pick it among your conversations).")
            return ""
        return self._rooms[self.conversation()].name

    def _valid_name(self, name: str) -> bool:
        if is_valid_username(name):
            return True
        self._say("error", f"No such user: {name!r}.")
        return False

    def _ask_members(self, room: str) -> None:
        assert self._protocol is not None
        self._protocol.members(room)
        self._outbox.append(_RoomAsked("MEMBERS", room))

    def _answered(self, *verbs: str, room: str = "") -> _RoomAsked | None:
        """The room command waiting first, taken if its answer is one of ``verbs`` about ``room``."""
        pending = self._outbox[0] if self._outbox else None
        if isinstance(pending, _RoomAsked) and pending.verb in verbs and pending.room.lower() == room.lower():
            self._outbox.popleft()
            return pending
        return None

    def _entered_room(self, name: str) -> _Room:
        """The room ``name`` this user is in, known from now on, in the list of conversations."""
        key = name.lower()
        room = self._rooms.setdefault(key, _Room(name))
        if self._recent is None:
            self._recent = {}
        self._recent.setdefault(key, 0.0)
        self._show_recent()
        return room

    def _left_room(self, key: str, said: str) -> None:
        """This user is no longer in the room ``key``: forgotten, and left if open."""
        if self._rooms.pop(key, None) is None:
            return
        self._say("info", said)
        if self._recent is not None and self._recent.pop(key, None) is not None:
            self._show_recent()
        if self.mode is Kind.ROOM and self.conversation() == key:
            self._choose(Kind.BROADCAST, ())

    def _show_room(self) -> None:
        room = self._rooms.get(self.conversation()) if self.mode is Kind.ROOM else None
        if room is None:
            self._view.show_room(None)
            return
        listed = (room.members or {}).values()
        members = sorted(listed, key=lambda m: (not m.op, not m.voice, m.name.casefold()))
        me = (room.members or {}).get(self.me.casefold())
        self._view.show_room(RoomItem(room.name, room.topic, room.modes, members, me is not None and me.op))

    def _room_changed(self, key: str) -> None:
        if self.mode is Kind.ROOM and self.conversation() == key:
            self._show_room()

    def _presence_in_rooms(self, name: str, online: bool) -> None:
        key = name.casefold()
        for room_key, room in self._rooms.items():
            member = (room.members or {}).get(key)
            if member is not None and room.members is not None:
                room.members[key] = Member(member.name, online, member.op, member.voice)
                self._room_changed(room_key)

    def room(self, room: str, modes: str, topic: str) -> None:
        if room.lower() == "#all":
            return  # everyone's: a broadcast
        known = self._entered_room(room)
        known.modes, known.topic = modes.lstrip("+"), topic

    def room_members(self, room: str, members: list[Member]) -> None:
        key = room.lower()
        asked = self._answered("JOIN", "MEMBERS", room=room)
        if key == "#all" or key not in self._rooms and (asked is None or asked.verb != "JOIN"):
            return  # everyone's (a broadcast), or not this user's room
        known = self._entered_room(room)
        known.members = {member.name.casefold(): member for member in members}
        if asked is not None and asked.verb == "JOIN":
            topic = f" Topic: {known.topic}" if known.topic else ""
            self._say("info", f"You are in {known.name} ({members_of(len(members))}).{topic}")
            self._choose(Kind.ROOM, (known.name,))
        else:
            self._room_changed(key)

    def entered(self, room: str, member: Member) -> None:
        key, name = room.lower(), member.name
        if key == "#all":
            return  # everyone is in it: JOINED says who came
        if self._mine(name):
            if key not in self._rooms:  # joined from another session of this account
                self._entered_room(room)
                self._ask_members(room)
            return
        known = self._rooms.get(key)
        if known is None:
            return
        if known.members is not None:
            known.members[name.casefold()] = member
        self._say("info", f"{name} joined {known.name}")
        self._room_changed(key)

    def parted(self, room: str, name: str, reason: str) -> None:
        key = room.lower()
        why = f" ({reason})" if reason else ""
        if self._mine(name):
            self._answered("PART", room=room)
            self._left_room(key, f"You left {room}{why}")
        elif key in self._rooms:
            self._member_gone(key, name, f"{name} left {self._rooms[key].name}{why}")

    def kicked(self, room: str, name: str, by: str, reason: str) -> None:
        key = room.lower()
        why = f": {reason}" if reason else ""
        if self._mine(by):
            self._answered("KICK", room=room)
        if self._mine(name):
            self._left_room(key, f"{by} removed you from {room}{why}")
        elif key in self._rooms:
            self._member_gone(key, name, f"{by} removed {name} from {self._rooms[key].name}{why}")

    def _member_gone(self, key: str, name: str, said: str) -> None:
        known = self._rooms[key]
        if known.members is not None:
            known.members.pop(name.casefold(), None)
        self._say("info", said)
        self._room_changed(key)

    def room_topic(self, room: str, by: str, topic: str) -> None:
        key = room.lower()
        asked = self._answered("TOPIC", room=room)
        known = self._rooms.get(key)
        if known is None:
            return
        known.topic = topic
        if asked is not None and asked.query:
            set_by = f" (set by {by})" if by else ""
            said = f"Topic of {known.name}: {topic}{set_by}" if topic else f"{known.name} has no topic."
            self._say("info", said)
        elif topic:
            self._say("info", f"{by} set the topic of {known.name}: {topic}")
        else:
            self._say("info", f"{by} cleared the topic of {known.name}")
        self._room_changed(key)

    def room_mode(self, room: str, by: str, changes: str, args: tuple[str, ...]) -> None:
        key = room.lower()
        self._answered("MODE", room=room)
        known = self._rooms.get(key)
        if known is None:
            return
        if not by:  # the answer to a query: the modes it has
            known.modes = changes.lstrip("+")
            said = ", ".join(ROOM_MODES.get(letter, letter) for letter in known.modes) or "none"
            self._say("info", f"Modes of {known.name}: +{known.modes} ({said})")
        else:
            self._apply_modes(known, changes, list(args))
            self._say("info", f"{by} set {' '.join([changes, *args])} in {known.name}")
        self._room_changed(key)

    @staticmethod
    def _apply_modes(room: _Room, changes: str, args: list[str]) -> None:
        """Apply ``+i-m``, ``+o bob``... to what is known of ``room`` (bans are not kept here)."""
        adding = True
        for letter in changes:
            if letter in "+-":
                adding = letter == "+"
                continue
            takes = letter in "ovb" or (adding and letter in "kl")
            arg = args.pop(0) if takes and args else ""
            if letter in "ov" and room.members is not None and arg.casefold() in room.members:
                member = room.members[arg.casefold()]
                op = adding if letter == "o" else member.op
                voice = adding if letter == "v" else member.voice
                room.members[arg.casefold()] = Member(member.name, member.online, op, voice)
            elif letter in ROOM_MODES:
                modes = set(room.modes) | {letter} if adding else set(room.modes) - {letter}
                room.modes = "".join(sorted(modes))

    def bans(self, room: str, bans: list[tuple[str, str]]) -> None:
        self._answered("MODE", room=room)
        listed = ", ".join(f"{mask} (by {by})" for mask, by in bans)
        self._say("info", f"Banned from {room}: {listed}" if bans else f"Nobody is banned from {room}.")

    def invited(self, room: str, name: str) -> None:
        self._answered("INVITE", room=room)
        self._say("info", f"You invited {name} to {room}.")

    def invitation(self, room: str, by: str) -> None:
        self._say("notice", f"{by} invites you to {room}: join it to accept.")

    def room_gone(self, room: str, reason: str) -> None:
        self._left_room(room.lower(), f"{room} is no longer yours" + (f": {reason}" if reason else "."))

    def rooms_listed(self, found: list[RoomInfo]) -> None:
        asked = self._answered("ROOMS")
        if asked is None:
            return
        if asked.query:  # at login: the list of conversations holds #all and this user's rooms
            if self._recent is None:
                self._recent = {}
            self._recent.setdefault("#all", 0.0)
            for info in found:
                if info.room.lower() != "#all":
                    self._entered_room(info.room).topic = info.topic
            self._show_recent()
            return
        self._say("info", f"Rooms ({len(found)}):" if found else "No rooms yet: join one to create it.")
        for info in found:
            topic = f": {info.topic}" if info.topic else ""
            self._say("info", f"{info.room}, {members_of(info.members)}{topic}")

    # -- read positions (version 10) ----------------------------------------

    def _keeps_reads(self) -> bool:
        """Whether this connection says ``READ``: a version 10 server keeping history, and a protected name."""
        return self._version >= 10 and self._history_days > 0 and self.name_protected

    def _arrived(self, conversation: str, stamp: Stamp, mine: bool, live: bool) -> None:
        """A message of ``conversation`` is shown (``live``: not of the history): count it unread if
        live, of others and newer than what the server counted, and read it if in view."""
        if stamp.id > self._newest.get(conversation, ""):
            self._newest[conversation] = stamp.id
            if not mine and live and self._keeps_reads() and stamp.id > self._read.get(conversation, ""):
                self._unread[conversation] = self._unread.get(conversation, 0) + 1
        if not mine:
            if stamp.id > self._newest_other.get(conversation, ""):
                self._newest_other[conversation] = stamp.id
            if stamp.id > self._shown.get(conversation, ""):
                self._shown[conversation] = stamp.id
        self._mark_read()
        if self._recent is not None:
            self._show_recent()

    def _mark_read(self) -> None:
        """Read each conversation in view up to its newest message of others shown, and tell the server."""
        if self.phase is not Phase.CONNECTED or self._protocol is None or not self._keeps_reads():
            return
        moved = False
        for conversation, newest in self._shown.items():
            in_view = self._shows_everything or conversation == self.conversation()
            if self._looking and in_view and newest > self._read.get(conversation, ""):
                self._moved(conversation, newest)
                moved = True
        if moved:
            if self._recent is not None:
                self._show_recent()
            self._tell_reads()

    def _tell_reads(self) -> None:
        """Say ``READ`` for each conversation read further than the server knows: at once, or (one was
        said less than READ_EVERY ago) once that much time has passed, so messages that come fast do
        not make the client flood the server."""
        if self._read_due is not None:
            return
        wait = self._read_at + READ_EVERY - self._clock.seconds()
        if wait > 0:
            self._read_due = self._clock.callLater(wait, self._told_reads)
            return
        self._told_reads()

    def _told_reads(self) -> None:
        self._read_due = None
        if self._protocol is None:
            return
        self._read_at = self._clock.seconds()
        for conversation, position in self._read.items():
            if position > self._told.get(conversation, ""):
                self._told[conversation] = position
                self._protocol.read(conversation, position)
                self._outbox.append(_ReadAsked())

    def read(self, conversation: str, position: str) -> None:
        if self._outbox and isinstance(self._outbox[0], _ReadAsked):
            self._outbox.popleft()  # the answer (or another session's READ, the same to this client)
        if self._readable(conversation) and self._keeps_reads():
            self._told[conversation] = max(position, self._told.get(conversation, ""))
            self._moved(conversation, position)
            if self._recent is not None:
                self._show_recent()

    def _count(self, conversation: str, listed: Listed) -> None:
        """Take the server's unread count and read position, unless this client read further since
        (the answer was written before its ``READ``)."""
        kept, read = self._read.get(conversation, ""), listed.read or ""
        ahead = kept > read and kept >= self._newest_other.get(conversation, "")
        self._unread[conversation] = 0 if ahead else listed.unread
        self._read[conversation] = max(kept, read)
        self._told[conversation] = max(read, self._told.get(conversation, ""))

    def _moved(self, conversation: str, position: str) -> None:
        """The account has read ``conversation`` up to ``position``: no message of others after it known, nothing unread."""
        if position > self._read.get(conversation, ""):
            self._read[conversation] = position
        if self._read.get(conversation, "") >= self._newest_other.get(conversation, ""):
            self._unread[conversation] = 0

    def _readable(self, conversation: str) -> bool:
        """Whether ``conversation`` is one this user can be in, as the server names it (a hostile
        server's odd names are left out)."""
        if is_valid_room(conversation):
            return conversation == conversation.lower()
        keys = conversation.split(",")
        return (
            len(keys) <= self._limits.max_recipients + 1
            and all(is_valid_username(key) and key == key.lower() for key in keys)
            and self.me.lower() in keys
        )

    def _who(self, conversation: str) -> str:
        """With whom ``conversation`` is: 'everyone', 'bob and carol', 'yourself'."""
        if conversation == "#all":
            return "everyone"
        if is_valid_room(conversation):
            room = self._rooms.get(conversation)
            return room.name if room is not None else conversation
        return and_list(list(self._spelled(conversation))) or "yourself"

    def user_log(self, users: list[tuple[str, bool, bool]]) -> None:
        self.users = {name: online for name, online, _ in users}
        self._protected_names = {name for name, _, protected in users if protected}
        self._view.show_account(self.name_protected)
        self._show_users()

    def protected(self, name: str) -> None:
        pending = self._outbox[0] if self._outbox else None
        if isinstance(pending, _PasswordChange):
            self._outbox.popleft()
            self._password = pending.password
        was = self.name_protected
        self._set_protected(self.me, True)
        self._say(
            "info",
            "Password changed." if was else f"{name} is protected: log in with your password from now on.",
        )

    def account(self, name: str, protected: bool) -> None:
        name = next((known for known in self.users if known.casefold() == name.casefold()), name)
        answer_due = name == self.me and any(isinstance(p, _PasswordChange) for p in self._outbox)
        if answer_due or protected == (name in self._protected_names):
            return  # nothing new, or this client's own password change, told by its answer
        self._set_protected(name, protected)
        if name == self.me and not protected:
            self._password = ""
            self._say("warning", f"{name} is no longer protected: set a password again to keep it yours.")

    def _set_protected(self, name: str, protected: bool) -> None:
        if protected:
            self._protected_names.add(name)
        else:
            self._protected_names.discard(name)
        if name == self.me:
            self._view.show_account(protected)
        self._show_users()

    def joined(self, name: str) -> None:
        self.users[name] = True
        self._show_users()
        self._presence_in_rooms(name, True)
        self._say_presence(name, f"{name} is online")

    def left(self, name: str) -> None:
        self.users[name] = False
        self._show_users()
        self._presence_in_rooms(name, False)
        self._say_presence(name, f"{name} went offline")

    def removed(self, name: str) -> None:
        name = next((known for known in self.users if known.casefold() == name.casefold()), name)
        if self.users.pop(name, None) is None:
            return
        self._protected_names.discard(name)
        self._say_presence(name, f"{name} was removed from the username log")
        if name in self.selected:
            self.choose_recipients(tuple(n for n in self.selected if n != name))
        self._show_users()

    def _say_presence(self, name: str, text: str) -> None:
        """Comings and goings show in the list; in the conversation only for those talked with."""
        key = name.casefold()
        if key in self._talking or key in (n.casefold() for n in self.selected):
            self._say("info", text)

    def message(
        self, sender: str, kind: Kind, recipients: tuple[str, ...], text: str, stamp: Stamp | None
    ) -> None:
        if stamp is not None:
            if stamp.id in self._seen:
                return  # in the catch-up too
            self._seen.add(stamp.id)
        if self._mine(sender) and self._version >= 10:
            self._say("sent", self._from_me(kind, recipients, text))  # sent from another session
        else:
            self._incoming(sender, kind, recipients, text, "")
        conversation = self._conversation_of(sender, kind, recipients)
        self._heard(conversation, stamp.at if stamp else self._clock.seconds())
        if stamp is not None:
            self._arrived(conversation, stamp, self._mine(sender), live=True)

    def _mine(self, sender: str) -> bool:
        return sender.casefold() == self.me.casefold()

    def _conversation_of(self, sender: str, kind: Kind, recipients: tuple[str, ...]) -> str:
        """The conversation a message is of, as the server names it."""
        if kind is Kind.ROOM:
            return recipients[0].lower()
        return "#all" if kind is Kind.BROADCAST else self._direct((sender, *recipients))

    @staticmethod
    def _from_me(kind: Kind, recipients: tuple[str, ...], text: str) -> str:
        """How a message this user sent reads."""
        return f"you to {'everyone' if kind is Kind.BROADCAST else ', '.join(recipients) or 'yourself'}: {text}"

    def delayed(
        self,
        message_id: int,
        sent_at: float,
        sender: str,
        kind: Kind,
        recipients: tuple[str, ...],
        text: str,
        stamp_id: str,
    ) -> None:
        if message_id <= self._shown_through or stamp_id in self._seen:
            return  # shown before the connection dropped, and not yet acknowledged then
        self._shown_through = message_id
        if stamp_id:
            self._seen.add(stamp_id)
        if not self._away_said:
            self._away_said = True
            self._say("info", "While you were away:")
        self._incoming(sender, kind, recipients, text, describe_time(sent_at, self._clock.seconds()))
        conversation = self._conversation_of(sender, kind, recipients)
        self._heard(conversation, sent_at)
        if stamp_id:
            self._arrived(conversation, Stamp(stamp_id, sent_at), self._mine(sender), live=True)

    def _said(self, sender: str, kind: Kind, recipients: tuple[str, ...], text: str) -> tuple[str, str]:
        """How a message to this user reads: its style and its words."""
        if kind is Kind.BROADCAST:
            return "broadcast", f"{sender} to everyone: {text}"
        if kind is Kind.ROOM:
            return "group", f"{sender} in {and_list(recipients)}: {text}"
        me, by = self.me.casefold(), sender.casefold()
        others = [r for r in recipients if r.casefold() not in (me, by)]
        if kind is Kind.MULTICAST and others:
            return "group", f"{sender} to {and_list(['you', *others])}: {text}"
        return "group" if kind is Kind.MULTICAST else "direct", f"{sender} to you: {text}"

    def _incoming(self, sender: str, kind: Kind, recipients: tuple[str, ...], text: str, label: str) -> None:
        self._say(*self._said(sender, kind, recipients, text), label)
        if kind in (Kind.BROADCAST, Kind.ROOM):
            self._set_reply(kind, recipients[:1] if kind is Kind.ROOM else ())
            return
        me, by = self.me.casefold(), sender.casefold()
        others = [r for r in recipients if r.casefold() not in (me, by)]
        everyone = ([sender] if by != me else []) + others
        self._talking.update(name.casefold() for name in everyone)
        if everyone:
            self._set_reply(Kind.UNICAST if len(everyone) == 1 else Kind.MULTICAST, tuple(everyone))

    def _set_reply(self, mode: Kind, names: tuple[str, ...]) -> None:
        self._reply = (mode, names)
        self._view.show_reply("everyone" if mode is Kind.BROADCAST else and_list(names))

    def sent(
        self, delivered: int, offline: tuple[str, ...], queued: tuple[str, ...], stamp: Stamp | None
    ) -> None:
        pending = self._outbox[0] if self._outbox else None
        if not isinstance(pending, tuple):
            return
        self._outbox.popleft()
        mode, recipients, text = pending
        self._say("sent", self._from_me(mode, recipients, text))
        conversation = self._conversation_of(self.me, mode, recipients)
        self._heard(conversation, stamp.at if stamp else self._clock.seconds())
        if stamp is not None:
            self._seen.add(stamp.id)
            self._arrived(conversation, stamp, mine=True, live=True)
        known = {name.casefold() for name in self.users}
        unknown = [name for name in offline if name.casefold() not in known]
        lost = [name for name in offline if name not in queued and name not in unknown]
        if queued:
            self._say("info", f"not connected, will get it when back: {', '.join(queued)}")
        if lost:
            self._say("warning", f"not connected, did not get it: {', '.join(lost)}")
        if unknown:
            self._say("warning", f"no such user: {', '.join(unknown)}")
        if not (lost or unknown) and mode in (Kind.BROADCAST, Kind.ROOM) and delivered == 0:
            self._say("warning", "nobody else is connected")

    def error(self, code: str, text: str) -> None:
        if self.phase is Phase.CONNECTING:
            self._ask_password = code in ("AUTH_REQUIRED", "AUTH_FAILED")
            self._refusal = f"The server refused {self.username}: {text}"
            if self._ask_password:
                self._password = ""
                self._refusal += ". Enter the password and connect again."
            elif code == "SESSIONS_FULL":
                self._refusal = SESSIONS_FULL.format(name=self.username)
            if code == "SERVER_ERROR" and self._protocol is not None:
                # The server keeps the connection for another HELLO; the user retries from the form.
                self._protocol.transport.loseConnection()
            return
        pending = self._outbox.popleft() if self._outbox else None
        if isinstance(pending, _PasswordChange):
            self._view.show_password_problem(f"Password not changed: {text}")
        elif isinstance(pending, _HistoryAsked):
            self._history_refused(pending.conversation, code, text)
        elif isinstance(pending, _ConversationsAsked) and code == "HISTORY_OFF":
            self._history_days = 0
            self._say("warning", NO_HISTORY)
            self._caught_up()
        elif isinstance(pending, _ConversationsAsked):
            self._say("warning", f"Your conversations cannot be listed now: {text}")
            self._caught_up()
        elif isinstance(pending, _ReadAsked):
            pass  # the position stays this client's; the server keeps the next one said
        elif isinstance(pending, _RoomAsked):
            self._say("error", f"{_ROOM_VERBS[pending.verb]} {pending.room or 'the rooms'}: {text} ({code})")
        else:
            self._say("error", f"{code}: {text}")

    def _history_refused(self, conversation: str, code: str, text: str) -> None:
        self._asking.discard(conversation)
        del self._pages[conversation]  # asked again on opening it, once it may be read
        if code == "HISTORY_OFF":
            self._history_days = 0
            self._say("warning", NO_HISTORY)
        elif code == "HISTORY_FORBIDDEN":
            self._say("warning", UNPROTECTED_HISTORY)
        else:
            self._say("error", f"No history {self._in(conversation)} now: {text}")

    def notice(self, text: str) -> None:
        self._say("notice", f"server notice: {text}")

    def bye(self, reason: str) -> None:
        self._bye = reason

    def disconnected(self, reason: str) -> None:
        self._protocol = None
        if self._read_due is not None:
            self._read_due.cancel()
            self._read_due = None
        if self.phase is Phase.CONNECTING:
            self.phase = Phase.LOGIN
            problem = self._refusal or f"The connection closed before registration: {self._bye or reason}"
            self._view.show_login(
                self.username, self.server, problem, "password" if self._ask_password else "username"
            )
        elif self._logging_out:
            self._logging_out = False
            self._to_login()
        elif self.phase is Phase.CONNECTED:
            self.phase = Phase.DISCONNECTED
            why = self._bye or reason
            self.users = dict.fromkeys(self.users, False)  # nobody is known to be online any more
            self._show_users()
            self._view.show_reply("")
            self._view.show_title(f"{self.me} on {describe_server(self.server)} (disconnected) — msgsvc")
            self._view.show_status(f"Disconnected: {why}", False)
            self._say("info", f"Disconnected: {why}")
        # Last: whoever waits may close the view at once.
        waiting, self._waiting_to_go = self._waiting_to_go, []
        for gone in waiting:
            gone.callback(None)

    # -- helpers -----------------------------------------------------------

    def _show_users(self) -> None:
        names = sorted(self.users, key=str.casefold)
        self._view.show_users(
            [
                UserItem(name, self.users[name], name == self.me, name in self._protected_names)
                for name in names
            ]
        )
        if self.selected:
            self._view.show_mode(self.mode, self.selected)  # whether a message would wait may have changed

    def _say(self, style: str, text: str, label: str = "") -> None:
        self._add(Entry(self._clock.seconds(), style, text, label))

    def _add(self, entry: Entry, message_id: str = "") -> None:
        """Show ``entry``: at the end, or (a message of the history, ``message_id``) where its time
        and id put it; under a heading of its day once the conversation spans several days."""
        day = start_of_day(entry.when)
        if day not in self._days:
            if len(self._days) == 1:  # a second day: the first gets its heading too
                self._place(self._heading(*self._days))
            if self._days:
                self._place(self._heading(day))
            self._days.add(day)
        if message_id:
            self._place(entry, message_id)
        else:
            self._order.append((entry.when, ""))
            self._view.append(entry)

    def _heading(self, day: float) -> Entry:
        return Entry(day, "day", describe_day(day, self._clock.seconds()))

    def _place(self, entry: Entry, message_id: str = "") -> None:
        key = (entry.when, message_id)  # ids order the messages of one millisecond
        index = bisect_right(self._order, key)
        self._order.insert(index, key)
        self._view.insert(index, entry)
