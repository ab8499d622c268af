"""IRC as msgsvc's IRC front reads and writes it: lines, text, the numerics Twisted lacks.

Pure functions, like :mod:`msgsvc.wire` for the line protocol, for the
session of :mod:`msgsvc.fronts.irc`.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass

from msgsvc.fronts.irc.tags import TAG_DATA_MAX, parse_tags
from msgsvc.hub.contracts import Kind, Message, Queued, Stored
from msgsvc.hub.rules import username_key
from msgsvc.times import describe_time
from msgsvc.wire import Code, ProtocolError

NICK = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")  # a msgsvc name that is also an IRC nick
# IRC's formatting codes (bold, colour and its digits, reset, reverse, italic, strike, underline,
# monospace): dropped from text, which msgsvc keeps plain.
FORMATTING = re.compile(r"\x03(\d{1,2}(,\d{1,2})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]")
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # what msgsvc text may not hold (TAB it may)
BREAKS = re.compile(r"[\x00\r\n]")  # what would end or cut short a line the server writes
#: An ident (USER's first parameter): what RFC 2812 servers take, bounded by USERLEN.
USERLEN = 32
IDENT = re.compile(r"[A-Za-z0-9_.~\-\[\]\\^`{|}]+")
REALLEN = 128  # bytes of a real name (USER's last parameter), and of a QUIT reason
#: The room a text line always has (the longest UTF-8 character fits, with some text).
MIN_ROOM = 64
#: The longest text an IRC client can send in one line (``NOTICE x word``): a text up to this
#: is relayed in one line, cut to IRC's 512 bytes if it must be, as IRC servers do.
ONE_LINE = 510 - len("NOTICE x ")
# Numerics Twisted's table (twisted.words.protocols.irc) lacks: IRCv3 SASL and MONITOR, 302, 329, 333, 417 and 696.
RPL_USERHOST = "302"
RPL_CREATIONTIME = "329"
RPL_TOPICWHOTIME = "333"
ERR_INPUTTOOLONG = "417"
ERR_ALREADYREGISTERED = "462"
ERR_INVALIDUSERNAME = "468"  # as Ergo says it
ERR_INVALIDMODEPARAM = "696"
RPL_LOGGEDIN = "900"
RPL_SASLSUCCESS = "903"
ERR_SASLFAIL = "904"
ERR_SASLTOOLONG = "905"
ERR_SASLABORTED = "906"
ERR_SASLALREADY = "907"
RPL_SASLMECHS = "908"
RPL_MONONLINE = "730"
RPL_MONOFFLINE = "731"
RPL_MONLIST = "732"
RPL_ENDOFMONLIST = "733"
ERR_MONLISTFULL = "734"


@dataclass
class Command:
    """One IRC line: its command (upper case), its parameters (the trailing one last), its tags."""

    command: str
    params: list[str]
    tags: dict[str, str]


def parse(line: bytes) -> Command | None:
    """An IRC line (without CR LF); None for a blank one; ProtocolError: BAD_ENCODING if it is not
    UTF-8, LINE_TOO_LONG (417) past :data:`~msgsvc.fronts.irc.tags.TAG_DATA_MAX` bytes of tags."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(Code.BAD_ENCODING, "lines must be UTF-8") from None
    text = text.lstrip(" ")
    tags: dict[str, str] = {}
    if text.startswith("@"):
        data, _, text = text[1:].partition(" ")
        if len(data.encode()) > TAG_DATA_MAX:
            raise ProtocolError(Code.LINE_TOO_LONG, f"tags may hold at most {TAG_DATA_MAX} bytes")
        tags = parse_tags(data)
        text = text.lstrip(" ")
    if text.startswith(":"):  # a client's own prefix: ignored, as servers do
        text = text.partition(" ")[2].lstrip(" ")
    trailing = None
    if " :" in text:
        text, trailing = text.split(" :", 1)
    params = [p for p in text.split(" ") if p]  # IRC separates with spaces, and only them
    if not params:
        return None
    command = params.pop(0).upper()
    if trailing is not None:
        params.append(trailing)
    return Command(command, params, tags)


def line(*params: str, prefix: str = "", tags: str = "") -> bytes:
    """An IRC line; the last parameter goes after `` :`` (always, as clients expect of text).

    What a client sent may come back in it (a target that is not one): a middle parameter that
    would not read as one becomes ``*``, CR, LF and NUL are left out, and a line over IRC's 512
    bytes (tags aside: escaped, they hold none of these) is cut short (between two characters), as
    servers do.
    """
    *middle, last = params
    head = f":{prefix} " if prefix else ""
    middle = [p if p and p[0] != ":" and " " not in p else "*" for p in middle]
    text = f"{head}{' '.join(middle)} :{last}"
    if BREAKS.search(text):
        text = BREAKS.sub("", text)
    data = text.encode()
    if len(data) > 510:
        data = data[:510].decode("utf-8", "ignore").encode()
    return (f"@{tags} ".encode() if tags else b"") + data + b"\r\n"


def text_lines(verb: str, target: str, text: str, prefix: str, tags: str = "", whole: bool = False) -> bytes:
    """``verb`` lines carrying ``text`` to ``target``, each within IRC's 512 bytes, tags aside.

    ``whole``: ``text`` is what an IRC client sent in one line (up to :data:`ONE_LINE` bytes), and
    stays one line, cut between two characters if the sender's mask makes it longer, as IRC
    servers do.  Any other text (msgsvc's may be longer than IRC's lines, and a user of another
    front never agreed to IRC's cut) is split, and nothing of it is lost: a line is cut at its
    last space when that keeps at least three quarters of the room, else between two characters;
    each line holds at least one whole character, so this always ends, with at most
    ``ceil(len / (3 * room // 4)) + 1`` lines.  The room is never under :data:`MIN_ROOM`: a head
    longer than that leaves (which the front's bounded nicks, idents and channel never make)
    gives lines over 512 bytes rather than empty ones.
    """
    command = f":{prefix} {verb} {target} :".encode()
    head = (f"@{tags} " if tags else "").encode() + command
    room = max(510 - len(command), MIN_ROOM)
    data = text.encode("utf-8")
    if whole and len(data) <= ONE_LINE:
        return head + data[: _char_cut(data, room)] + b"\r\n"
    out = []
    while len(data) > room:
        cut = data.rfind(b" ", room * 3 // 4, room + 1)
        if cut < 0:
            cut = _char_cut(data, room)
        out.append(head + data[:cut] + b"\r\n")
        data = data[cut:].lstrip(b" ")  # a cut inside a word leaves no space to strip
    if data:  # spaces alone after a cut are not a line of their own
        out.append(head + data + b"\r\n")
    return b"".join(out)


def _char_cut(data: bytes, at: int) -> int:
    """Where to cut UTF-8 ``data`` at ``at`` bytes or before, not inside a character."""
    if at >= len(data):
        return len(data)
    while data[at] & 0xC0 == 0x80:
        at -= 1
    return at


def addressed(message: Message | Queued | Stored, me: str) -> str:
    """A message's text, for a multicast preceded by whom it went to (IRC has no word for a group)."""
    if message.kind not in (Kind.MULTICAST, Kind.MULTICAST.value):
        return message.text
    others = [n for n in message.recipients if username_key(n) != username_key(me)]
    group = ", ".join(["you", *others[:-1]]) + f" and {others[-1]}" if others else "you"
    return f"(to {group}) {message.text}"


def clean_text(text: str) -> str:
    """``text`` without IRC formatting; ProtocolError if other control characters remain."""
    if text.isprintable():  # the common case, checked in C
        return text
    text = FORMATTING.sub("", text)
    if CONTROL.search(text):
        raise ProtocolError(Code.BAD_SYNTAX, "control characters are not allowed in text")
    return text


def is_ident(ident: str) -> bool:
    """Whether ``ident`` may be a USER name (it is cut to :data:`USERLEN`): no ``@``, ``!``, space or
    control character, which would change the ``nick!user@host`` others see."""
    return IDENT.fullmatch(ident) is not None


def printable(text: str, limit: int = REALLEN) -> str:
    """``text`` (a real name, a QUIT reason) as others may see it: without IRC formatting or any
    other character that does not print (control characters, line and format marks), cut to
    ``limit`` bytes of UTF-8 between two characters."""
    if not text.isprintable():
        text = "".join(c for c in FORMATTING.sub("", text) if c.isprintable())
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def sent_when(when: float, now: float) -> str:
    """A delayed message's "[sent ...]" for a client without ``server-time`` (which would show the
    time it arrived): as msgsvc's clients say it, ``today 09:12``, ``yesterday 17:02`` or a date,
    in the server's time zone, named."""
    return f"[sent {describe_time(when, now)} {time.strftime('%Z', time.localtime(when))}]"


def server_time(when: float) -> str:
    """The ``time`` tag's value: ISO 8601 in UTC, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when * 1000) % 1000:03d}Z"


_SERVER_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z")


def read_server_time(text: str) -> float | None:
    """A ``time`` tag's value (what :func:`server_time` writes; any fraction of a second, or none) as
    seconds since the epoch; None if it is not one."""
    found = _SERVER_TIME.fullmatch(text)
    if found is None:
        return None
    try:
        whole = calendar.timegm(time.strptime(found[1], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:  # 2026-13-45T...
        return None
    return whole + float(found[2] or 0)
