"""The msgsvc wire protocol: framing, parsing and formatting of lines.

Pure functions and small value classes; nothing here touches a transport.
Server and client share it.  ``docs/protocol.rst`` is the normative text.
The classes made for every line (:class:`Line` and the commands) are
slotted, not frozen, dataclasses: a frozen one costs three times as much
to build, and every routed message builds several.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field
from enum import Enum

from msgsvc.hub.contracts import ROOM_FLAGS, ROOM_LIMIT_MAX, HistoryPolicy, ModeChange, Refusal, Refused
from msgsvc.hub.ids import message_id, message_id_floor
from msgsvc.hub.rules import (
    USERNAME_PATTERN,
    ban_mask,
    check_password_rules,
    is_valid_username,
    message_text,
    recipient_names,
    room_name,
)

#: The byte that ends a line; a CR just before it is dropped.
LF = b"\n"
#: What the server (and our client) end their own lines with.
CRLF = b"\r\n"

# C0 controls and DEL; TAB is allowed in a trailing parameter (message text).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_OR_TAB = re.compile(r"[\x00-\x1f\x7f]")


class Code(str, Enum):
    """The stable error codes of ``ERROR <CODE> :<text>``."""

    USERNAME_TAKEN = "USERNAME_TAKEN"
    USERNAME_INVALID = "USERNAME_INVALID"
    NOT_REGISTERED = "NOT_REGISTERED"
    ALREADY_REGISTERED = "ALREADY_REGISTERED"
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
    BAD_SYNTAX = "BAD_SYNTAX"
    BAD_ENCODING = "BAD_ENCODING"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    TEXT_TOO_LONG = "TEXT_TOO_LONG"
    TOO_MANY_RECIPIENTS = "TOO_MANY_RECIPIENTS"
    SERVER_FULL = "SERVER_FULL"
    SERVER_ERROR = "SERVER_ERROR"
    AUTH_REQUIRED = "AUTH_REQUIRED"
    AUTH_FAILED = "AUTH_FAILED"
    PASSWORD_INVALID = "PASSWORD_INVALID"
    RATE_LIMITED = "RATE_LIMITED"
    HISTORY_FORBIDDEN = "HISTORY_FORBIDDEN"
    HISTORY_OFF = "HISTORY_OFF"
    SESSIONS_FULL = "SESSIONS_FULL"
    TOO_MANY_NEW_GROUPS = "TOO_MANY_NEW_GROUPS"
    ROOM_INVALID = "ROOM_INVALID"
    NO_SUCH_ROOM = "NO_SUCH_ROOM"
    NOT_IN_ROOM = "NOT_IN_ROOM"
    USER_NOT_IN_ROOM = "USER_NOT_IN_ROOM"
    ALREADY_IN_ROOM = "ALREADY_IN_ROOM"
    NOT_ROOM_OPERATOR = "NOT_ROOM_OPERATOR"
    INVITE_ONLY = "INVITE_ONLY"
    BANNED = "BANNED"
    BAD_KEY = "BAD_KEY"
    ROOM_FULL = "ROOM_FULL"
    MODERATED = "MODERATED"
    TOO_MANY_ROOMS = "TOO_MANY_ROOMS"
    CANNOT_LEAVE = "CANNOT_LEAVE"
    BAN_LIST_FULL = "BAN_LIST_FULL"


#: The code that says each of the hub's refusals.
REFUSAL_CODES = {
    Refusal.ALREADY_REGISTERED: Code.ALREADY_REGISTERED,
    Refusal.NOT_REGISTERED: Code.NOT_REGISTERED,
    Refusal.USERNAME_INVALID: Code.USERNAME_INVALID,
    Refusal.USERNAME_TAKEN: Code.USERNAME_TAKEN,
    Refusal.SERVER_FULL: Code.SERVER_FULL,
    Refusal.UNAVAILABLE: Code.SERVER_ERROR,
    Refusal.AUTH_REQUIRED: Code.AUTH_REQUIRED,
    Refusal.AUTH_FAILED: Code.AUTH_FAILED,
    Refusal.PASSWORD_INVALID: Code.PASSWORD_INVALID,
    Refusal.RATE_LIMITED: Code.RATE_LIMITED,
    Refusal.TEXT_EMPTY: Code.BAD_SYNTAX,
    Refusal.TEXT_TOO_LONG: Code.TEXT_TOO_LONG,
    Refusal.RECIPIENT_INVALID: Code.BAD_SYNTAX,
    Refusal.TOO_MANY_RECIPIENTS: Code.TOO_MANY_RECIPIENTS,
    Refusal.HISTORY_OFF: Code.HISTORY_OFF,
    Refusal.HISTORY_FORBIDDEN: Code.HISTORY_FORBIDDEN,
    Refusal.SESSIONS_FULL: Code.SESSIONS_FULL,
    Refusal.TOO_MANY_NEW_GROUPS: Code.TOO_MANY_NEW_GROUPS,
    Refusal.ROOM_INVALID: Code.ROOM_INVALID,
    Refusal.NO_SUCH_ROOM: Code.NO_SUCH_ROOM,
    Refusal.NOT_IN_ROOM: Code.NOT_IN_ROOM,
    Refusal.USER_NOT_IN_ROOM: Code.USER_NOT_IN_ROOM,
    Refusal.ALREADY_IN_ROOM: Code.ALREADY_IN_ROOM,
    Refusal.NOT_ROOM_OPERATOR: Code.NOT_ROOM_OPERATOR,
    Refusal.INVITE_ONLY: Code.INVITE_ONLY,
    Refusal.BANNED: Code.BANNED,
    Refusal.BAD_KEY: Code.BAD_KEY,
    Refusal.ROOM_FULL: Code.ROOM_FULL,
    Refusal.MODERATED: Code.MODERATED,
    Refusal.TOO_MANY_ROOMS: Code.TOO_MANY_ROOMS,
    Refusal.CANNOT_LEAVE: Code.CANNOT_LEAVE,
    Refusal.MODE_INVALID: Code.BAD_SYNTAX,
    Refusal.BAN_LIST_FULL: Code.BAN_LIST_FULL,
}


class ProtocolError(Exception):
    """A line that breaks the protocol; becomes ``ERROR <code> :<text>``."""

    def __init__(self, code: Code, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


@dataclass(frozen=True)
class Limits:
    """Sizes a server enforces; the defaults are the documented ones."""

    max_line: int = 8192
    max_text: int = 4096
    max_recipients: int = 32
    #: Bytes a client may leave unread (beyond the transport's own buffer) before it is dropped.
    max_send_queue: int = 1024 * 1024
    #: Lines per second a client may send, sustained, and in a burst; past them it waits.
    line_rate: float = 20.0
    line_burst: int = 100
    #: Seconds a client may keep sending faster than ``line_rate`` before it is disconnected.
    flood_timeout: float = 60.0
    #: Bytes of lines per second all the connections from one IP address may send together, sustained,
    #: and at once: what one address can aim at one reader stays well within ``max_send_queue``.
    address_byte_rate: float = 64 * 1024
    address_byte_burst: int = 256 * 1024
    #: Messages the users of one IP address may leave waiting for offline users (one a recipient), at
    #: once and then a minute: past it ``SENT`` says they will not wait.
    queue_burst: int = 500
    queue_per_minute: float = 30.0
    #: Connections (registered or not) from one IP address.
    max_per_ip: int = 20
    #: Seconds a new connection has to say HELLO.
    hello_timeout: float = 30.0
    #: Seconds of silence from a registered client before the server PINGs it.
    ping_interval: float = 60.0
    #: Seconds a PINGed client has to send anything back.
    ping_timeout: float = 30.0


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """``text`` as a number if it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit`` also takes ``²``, ``①`` and ``١٢``, which ``int`` refuses or reads as another number.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def format_time(when: float) -> str:
    """A moment as DELAYED lines give it: ISO 8601 in UTC, to the second (``2026-12-02T17:02:05Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def parse_time(text: str) -> float:
    """The moment :func:`format_time` wrote, as seconds since the epoch; ValueError if it is not one."""
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def format_millis(when: float) -> str:
    """A message's time as version 9 gives it: ISO 8601 in UTC, to the millisecond
    (``2026-12-02T17:02:05.123Z``)."""
    millis = round(when * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000)) + f".{millis % 1000:03d}Z"


_MILLIS_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]{3}))?Z")


def parse_millis(text: str) -> float:
    """A time as HISTORY takes it (to the second or to the millisecond), as seconds since the epoch;
    ValueError if it is not one."""
    match = _MILLIS_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"not a time: {text!r}")
    seconds = calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S"))
    return seconds + int(match[2] or 0) / 1000


# -- framing -------------------------------------------------------------


class _TooLong:
    def __repr__(self) -> str:
        return "TOO_LONG"


#: Returned by :meth:`LineFramer.next_line` in place of a line over the limit.
TOO_LONG = _TooLong()


class _LineQueue:
    """Lines waiting to be taken, in order.

    A plain list and a read position rather than a deque: an idle client's
    queue is empty, and an empty list costs 56 bytes where a deque holds a
    640-byte block.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self._lines: list[bytes | _TooLong] = []
        self._taken = 0  # how many of _lines next_line has given out

    def too_long(self) -> None:
        """Report a line over the limit, in turn."""
        self._lines.append(TOO_LONG)

    def next_line(self) -> bytes | _TooLong | None:
        """The next line, TOO_LONG, or None for none yet."""
        lines = self._lines
        if not lines:
            return None
        line = lines[self._taken]
        self._taken += 1
        if self._taken == len(lines):  # all given out: free the list's storage
            lines.clear()
            self._taken = 0
        return line


class LineFramer(_LineQueue):
    """Split a byte stream into LF-terminated lines, in linear time.

    Each chunk fed is split at its LFs at once (in C); the lines wait in a
    queue until taken.  A line longer than ``max_length`` bytes (CR and LF
    not counted) is reported once as :data:`TOO_LONG` and the rest of it,
    up to its LF, is dropped; the stream goes on with the next line.
    """

    def __init__(self, max_length: int) -> None:
        super().__init__(max_length)
        self._partial: list[bytes] = []  # the start of a line whose LF has not come
        self._partial_size = 0
        self._discarding = False

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        if LF not in data:
            self._keep(data)
            return
        if self._partial:
            self._partial.append(data)
            data = b"".join(self._partial)
            self._partial.clear()
            self._partial_size = 0
        pieces = data.split(LF)
        rest = pieces.pop()
        limit = self.max_length
        lines = self._lines
        for piece in pieces:
            if self._discarding:  # the end of an over-long line
                self._discarding = False
                continue
            if piece.endswith(b"\r"):
                piece = piece[:-1]
            lines.append(piece if len(piece) <= limit else TOO_LONG)
        self._keep(rest)

    def _keep(self, start: bytes) -> None:
        """Hold ``start`` of a line until its LF comes, unless the line is already too long."""
        if self._discarding or not start:
            return
        self._partial.append(start)
        self._partial_size += len(start)
        if self._partial_size > self.max_length + 1:  # room for a CR
            self._partial.clear()
            self._partial_size = 0
            self._discarding = True
            self.too_long()


class FrameFramer(_LineQueue):
    """Lines that arrive whole, one a message (a WebSocket text frame): never split, never joined.

    A line holding CR or LF is kept whole, so :func:`parse_line` refuses it
    (control characters) rather than running it as two commands.  Messages
    over ``max_length`` bytes are dropped before they are read
    (:class:`msgsvc.fronts.web.websocket.FrameGuard`), which reports each as
    :meth:`too_long`.
    """

    def feed(self, data: bytes) -> None:
        """Add one whole line (empty data adds nothing: it only asks for the queue to be read)."""
        if data:
            self._lines.append(data if len(data) <= self.max_length else TOO_LONG)


# -- lines ---------------------------------------------------------------


@dataclass(slots=True)
class Line:
    """A parsed line: an upper-cased verb and its parameters (trailing last)."""

    verb: str
    params: tuple[str, ...]
    trailing: bool = field(default=False, compare=False)  # the last parameter came after " :"


def parse_line(raw: bytes) -> Line | None:
    """Decode and split one line; ``None`` for a blank line.

    Grammar: ``VERB *( SP param ) [ SP ":" trailing ]``.  Runs of spaces
    separate parameters; the trailing parameter is taken verbatim and may be
    empty or hold spaces.  A TAB may appear only in the trailing parameter.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(Code.BAD_ENCODING, f"line is not valid UTF-8 (byte {e.start})") from None
    head, sep, trailing = text.partition(" :")
    if text.startswith(":"):
        raise ProtocolError(Code.BAD_SYNTAX, "line starts with ':'; a verb must come first")
    if _CONTROL_OR_TAB.search(head) or (sep and _CONTROL.search(trailing)):
        raise ProtocolError(Code.BAD_SYNTAX, "line holds control characters")
    words = [w for w in head.split(" ") if w]
    if not words:
        if sep:
            raise ProtocolError(Code.BAD_SYNTAX, "line has no verb")
        return None
    if sep:
        return Line(words[0].upper(), (*words[1:], trailing), True)
    return Line(words[0].upper(), tuple(words[1:]))


#: The commonest line, a unicast: ``SEND <name> :<text>``, the text without controls (TAB aside).
_SEND_ONE = re.compile(b"SEND (" + USERNAME_PATTERN.encode() + rb") :([^\x00-\x08\x0a-\x1f\x7f]*)")


def parse_send(raw: bytes, max_text: int) -> tuple[str, str] | None:
    """The recipient and text of ``raw`` if it is ``SEND <name> :<text>`` to one valid name, with a
    text the hub takes (at most ``max_text`` bytes, not blank), as :func:`parse_command` reads it;
    else None, and the general parser reads it (and refuses what it refuses).

    The fast path of the commonest line: one match in C, no :class:`Line`, no dispatch on the verb.
    In UTF-8 a byte below 0x80 is always the character it looks like, so the controls are checked on
    the bytes; the byte count is the text's size as :func:`message_text` counts it.
    """
    match = _SEND_ONE.fullmatch(raw)
    if match is None or len(match[2]) > max_text:
        return None
    try:
        text = match[2].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or text.isspace():
        return None
    return match[1].decode("ascii"), text


def _check_param(param: str) -> None:
    if not param or " " in param or param.startswith(":") or _CONTROL_OR_TAB.search(param):
        raise ValueError(f"not a middle parameter: {param!r}")


def format_line(verb: str, *params: str, trailing: str | None = None) -> bytes:
    """Encode one line, CR LF included.

    Middle parameters must be non-empty and free of spaces, a leading ':'
    and control characters; ``trailing`` may hold anything but CR and LF.
    """
    for param in params:
        _check_param(param)
    parts = [verb, *params]
    if trailing is not None:
        if "\r" in trailing or "\n" in trailing:
            raise ValueError("trailing parameter holds a line break")
        parts.append(":" + trailing)
    return " ".join(parts).encode("utf-8") + CRLF


# -- client commands, as the server reads them ---------------------------


@dataclass(slots=True)
class Hello:
    username: str
    password: str | None = field(default=None, repr=False)  # None when not given (or empty)


@dataclass(slots=True)
class Password:
    password: str = field(repr=False)


@dataclass(slots=True)
class Send:
    recipients: tuple[str, ...]
    text: str


@dataclass(slots=True)
class Broadcast:
    text: str


@dataclass(slots=True)
class Users:
    pass


@dataclass(slots=True)
class Version:
    version: int  # the client's: 1 or more


@dataclass(slots=True)
class History:
    conversation: str  # as the client named it: conversation_named() makes it a key
    before: str | None  # an id, or a time as message_id_floor() makes it; None: up to the newest
    count: int | None  # None: the server's default page (HistoryPolicy.default_page)


@dataclass(slots=True)
class Conversations:
    pass


@dataclass(slots=True)
class Read:
    conversation: str  # as the client named it, as for History
    position: str  # a message id


@dataclass(slots=True)
class SendRoom:
    room: str
    text: str


@dataclass(slots=True)
class Join:
    room: str
    key: str | None


@dataclass(slots=True)
class Part:
    room: str
    reason: str


@dataclass(slots=True)
class Topic:
    room: str
    text: str | None  # None: asked


@dataclass(slots=True)
class Invite:
    room: str
    name: str


@dataclass(slots=True)
class Kick:
    room: str
    name: str
    reason: str


@dataclass(slots=True)
class Mode:
    room: str
    changes: tuple[ModeChange, ...] | None  # None: asked (or, with ``bans``, its bans listed)
    bans: bool = False


@dataclass(slots=True)
class Members:
    room: str


@dataclass(slots=True)
class Rooms:
    mine: bool


@dataclass(slots=True)
class Ack:
    up_to: int  # the id of the last delayed message the client has


@dataclass(slots=True)
class Ping:
    token: str | None


@dataclass(slots=True)
class Pong:
    token: str | None


@dataclass(slots=True)
class Quit:
    reason: str | None


Command = (
    Hello
    | Password
    | Send
    | Broadcast
    | Users
    | Version
    | History
    | Conversations
    | Read
    | SendRoom
    | Join
    | Part
    | Topic
    | Invite
    | Kick
    | Mode
    | Members
    | Rooms
    | Ack
    | Ping
    | Pong
    | Quit
)

#: The verbs of rooms (version 11).
ROOM_VERBS = frozenset({"JOIN", "PART", "TOPIC", "INVITE", "KICK", "MODE", "MEMBERS", "ROOMS"})
#: Changes one MODE may make.
MODE_CHANGES = 12
_MODE_USAGE = "usage: MODE <room> [<changes> [<arg>...]] (changes of i m n s t k l o v b)"

_HISTORY = HistoryPolicy()  # a HISTORY's count: at most its page (the server's default when none)
_HISTORY_USAGE = "usage: HISTORY <conversation> [<before: * | id | time> [<count: 1-100>]]"


def _arity(line: Line, least: int, most: int, usage: str) -> None:
    if not least <= len(line.params) <= most:
        raise ProtocolError(Code.BAD_SYNTAX, f"usage: {usage}")


def parse_command(line: Line, limits: Limits) -> Command:
    """Turn a client's line into a command, or raise :class:`ProtocolError`; a message's text and
    recipients against the hub's rules, or :class:`~msgsvc.hub.contracts.Refused`."""
    verb = line.verb
    if verb == "HELLO":
        _arity(line, 1, 2, "HELLO <username> [:<password>]")
        if len(line.params) == 1:
            return Hello(line.params[0])
        name, password = line.params
        if not line.trailing:  # "HELLO al ice": a name with a space in it, unless "ice" can be a password
            try:
                check_password_rules(password)
            except Refused:
                return Hello(f"{name} {password}")
        return Hello(name, password or None)
    if verb == "PASSWORD":
        _arity(line, 1, 1, "PASSWORD :<password>")
        return Password(line.params[0])
    if verb == "SEND":
        _arity(line, 2, 2, "SEND <name>[,<name>...] :<text>")
        if line.params[0].startswith("#"):  # a room (version 11): the front checks the version
            return SendRoom(line.params[0], message_text(line.params[1], limits.max_text))
        return Send(
            recipient_names(line.params[0].split(","), limits.max_recipients),
            message_text(line.params[1], limits.max_text),
        )
    if verb == "BROADCAST":
        _arity(line, 1, 1, "BROADCAST :<text>")
        return Broadcast(message_text(line.params[0], limits.max_text))
    if verb == "USERS":
        _arity(line, 0, 0, "USERS")
        return Users()
    if verb == "HISTORY":
        return _history(line)
    if verb == "CONVERSATIONS":
        _arity(line, 0, 0, "CONVERSATIONS")
        return Conversations()
    if verb == "READ":
        _arity(line, 2, 2, "READ <conversation> <position: id>")
        position = message_id(line.params[1])
        if position is None:
            raise ProtocolError(Code.BAD_SYNTAX, "usage: READ <conversation> <position: id>")
        return Read(line.params[0], position)
    if verb in ROOM_VERBS:
        return _room_command(line)
    if verb == "VERSION":
        _arity(line, 1, 1, "VERSION <version>")
        version = ascii_int(line.params[0], 9)
        if not version:
            raise ProtocolError(Code.BAD_SYNTAX, "usage: VERSION <version> (a positive integer)")
        return Version(version)
    if verb == "ACK":
        _arity(line, 1, 1, "ACK <id>")
        up_to = ascii_int(line.params[0])
        if up_to is None:
            raise ProtocolError(Code.BAD_SYNTAX, "usage: ACK <id> (the id of a DELAYED line)")
        return Ack(up_to)
    if verb == "PING":
        _arity(line, 0, 1, "PING [:<token>]")
        return Ping(line.params[0] if line.params else None)
    if verb == "PONG":
        _arity(line, 0, 1, "PONG [:<token>]")
        return Pong(line.params[0] if line.params else None)
    if verb == "QUIT":
        _arity(line, 0, 1, "QUIT [:<reason>]")
        return Quit(line.params[0] if line.params else None)
    raise ProtocolError(Code.UNKNOWN_COMMAND, f"unknown command {verb}")


def _history(line: Line) -> History:
    """``HISTORY <conversation> [<before> [<count>]]``: the conversation is checked by the front, which
    knows the reader; the position and the count here."""
    _arity(line, 1, 3, _HISTORY_USAGE)
    conversation, position, count_text = (*line.params, *("*", "")[len(line.params) - 1 :])
    if position == "*":
        before = None
    elif (before := message_id(position)) is None:
        try:
            before = message_id_floor(parse_millis(position))
        except ValueError:
            raise ProtocolError(Code.BAD_SYNTAX, _HISTORY_USAGE) from None
    if not count_text:
        return History(conversation, before, None)
    count = ascii_int(count_text, 3)
    if count is None or not 1 <= count <= _HISTORY.page:
        raise ProtocolError(Code.BAD_SYNTAX, _HISTORY_USAGE)
    return History(conversation, before, count)


def _room_command(line: Line) -> Command:
    """A room command (version 11); its room name against the rules, or Refused(ROOM_INVALID)."""
    verb, params = line.verb, line.params
    if verb == "ROOMS":
        _arity(line, 0, 1, "ROOMS [mine]")
        if params and params[0].lower() != "mine":
            raise ProtocolError(Code.BAD_SYNTAX, "usage: ROOMS [mine]")
        return Rooms(bool(params))
    usages = {
        "JOIN": (1, 2, "JOIN <room> [:<key>]"),
        "PART": (1, 2, "PART <room> [:<reason>]"),
        "TOPIC": (1, 2, "TOPIC <room> [:<text>]"),
        "INVITE": (2, 2, "INVITE <room> <name>"),
        "KICK": (2, 3, "KICK <room> <name> [:<reason>]"),
        "MEMBERS": (1, 1, "MEMBERS <room>"),
        "MODE": (1, 2 + MODE_CHANGES, _MODE_USAGE[len("usage: ") :]),
    }
    least, most, usage = usages[verb]
    _arity(line, least, most, usage)
    room = room_name(params[0])
    rest = params[1:]
    if verb == "JOIN":
        return Join(room, rest[0] if rest and rest[0] else None)
    if verb == "PART":
        return Part(room, rest[0] if rest else "")
    if verb == "TOPIC":
        return Topic(room, rest[0] if rest else None)
    if verb in ("INVITE", "KICK"):
        if not is_valid_username(rest[0]):
            raise ProtocolError(Code.BAD_SYNTAX, f"not a username: {rest[0]!r}")
        if verb == "INVITE":
            return Invite(room, rest[0])
        return Kick(room, rest[0], rest[1] if len(rest) > 1 else "")
    if verb == "MEMBERS":
        return Members(room)
    if not rest:
        return Mode(room, None)
    if rest[0] in ("b", "+b") and len(rest) == 1:
        return Mode(room, None, bans=True)
    return Mode(room, _mode_changes(rest[0], list(rest[1:])))


def _mode_changes(word: str, args: list[str]) -> tuple[ModeChange, ...]:
    """``+i-m+k key``'s changes, each with its argument, or ProtocolError (BAD_SYNTAX)."""
    changes: list[ModeChange] = []
    sign = ""
    for letter in word:
        if letter in "+-":
            sign = letter
            continue
        on = sign == "+"
        if not sign or letter not in ROOM_FLAGS + "klovb":
            raise ProtocolError(Code.BAD_SYNTAX, _MODE_USAGE)
        arg = None
        if letter in "ovb" or (on and letter in "kl"):
            if not args:
                raise ProtocolError(Code.BAD_SYNTAX, f"{sign}{letter} needs an argument; {_MODE_USAGE}")
            arg = args.pop(0)
            if letter in "ov" and not is_valid_username(arg):
                raise ProtocolError(Code.BAD_SYNTAX, f"not a username: {arg!r}")
            if letter == "b" and ban_mask(arg) is None:
                raise ProtocolError(Code.BAD_SYNTAX, f"not a ban mask: {arg!r}")
            if letter == "l":
                limit = ascii_int(arg, 7) or 0
                if not 1 <= limit <= ROOM_LIMIT_MAX:
                    raise ProtocolError(Code.BAD_SYNTAX, f"+l takes a limit from 1 to {ROOM_LIMIT_MAX}")
                arg = str(limit)
        changes.append((sign + letter, arg))
    if args or not changes or len(changes) > MODE_CHANGES:
        raise ProtocolError(Code.BAD_SYNTAX, f"at most {MODE_CHANGES} changes, each with its argument; {_MODE_USAGE}")
    return tuple(changes)
