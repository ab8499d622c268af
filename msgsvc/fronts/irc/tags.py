"""IRCv3 message tags as the IRC front reads and writes them (``message-tags``), and the reply to a
labeled command (``labeled-response``, in a ``batch`` when it is more than one line)."""

from __future__ import annotations

import re

#: Bytes of tags a client may send (without the ``@`` and the space after them), as message-tags has it:
#: past it the line is refused with 417.
TAG_DATA_MAX = 4094
_KEY = re.compile(r"\+?([A-Za-z0-9.-]+/)?[A-Za-z0-9-]+")
_UNESCAPE = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


def parse_tags(data: str) -> dict[str, str]:
    """The tags of a line (``data``: what is between ``@`` and the first space), their values
    unescaped; a key that is not one is left out, and of a key given twice the last counts."""
    tags: dict[str, str] = {}
    for item in data.split(";"):
        key, _, value = item.partition("=")
        if _KEY.fullmatch(key):
            tags[key] = _unescape(value) if "\\" in value else value
    return tags


def _unescape(value: str) -> str:
    out, chars = [], iter(value)
    for char in chars:
        if char == "\\":
            escaped = next(chars, "")  # a lone backslash at the end is dropped
            out.append(_UNESCAPE.get(escaped, escaped))
        else:
            out.append(char)
    return "".join(out)


def tag(key: str, value: str) -> str:
    """``key=value`` as a line carries it (``value`` escaped; none: the key alone)."""
    return f"{key}={value.translate(_ESCAPE)}" if value else key


def client_tags(tags: dict[str, str]) -> str:
    """The client-only tags (``+name``) of a line, as relayed with its message; others' are not."""
    return ";".join(tag(key, value) for key, value in tags.items() if key.startswith("+"))


def joined(*tags: str) -> str:
    """Tags (``key=value``, or several joined by ``;``) joined, the empty left out."""
    return ";".join(t for t in tags if t)


def tagged(data: bytes, tags: str) -> bytes:
    """Each line of ``data`` with ``tags`` too (before the tags it has)."""
    out = []
    for row in data.split(b"\r\n")[:-1]:
        if row.startswith(b"@"):
            out.append(b"@" + tags.encode() + b";" + row[1:] + b"\r\n")
        else:
            out.append(b"@" + tags.encode() + b" " + row + b"\r\n")
    return b"".join(out)


class Response:
    """The reply to one labeled command: held until it is known to be none (``ACK``), one line
    (labeled itself) or more (a ``labeled-response`` batch); a reply that goes on past the command
    (a listing, an answer awaited) opens its batch at once, and its lines are written as they come.

    ``pending`` counts what may still add to it: the command itself, and each part of its reply
    that comes later; the reply ends when it comes to 0.
    """

    def __init__(self, label: str, batch: str, server: str) -> None:
        self.label = tag("label", label)
        self.batch = batch
        self.server = server
        self.pending = 1
        self._held: list[bytes] = []
        self._opened = False

    def add(self, data: bytes) -> bytes:
        """What to write now of ``data``, lines of the reply."""
        if self._opened:
            return self._in_batch(data)
        self._held.append(data)
        return b""

    def _in_batch(self, data: bytes) -> bytes:
        """``data`` in the reply's batch; lines of a batch within it (chathistory) stay in theirs."""
        out = []
        for row in data.split(b"\r\n")[:-1]:
            row += b"\r\n"
            out.append(row if row.startswith(b"@batch=") else tagged(row, f"batch={self.batch}"))
        return b"".join(out)

    def open(self) -> bytes:
        """The batch's start and the lines held so far (nothing if it is open already)."""
        if self._opened:
            return b""
        self._opened = True
        held, self._held = b"".join(self._held), []
        start = f"@{self.label} :{self.server} BATCH +{self.batch} labeled-response\r\n".encode()
        return start + self._in_batch(held)

    def end(self) -> bytes:
        """The end of the reply: the batch's end, ``ACK``, the one line labeled, or the whole batch."""
        if self._opened:
            return f":{self.server} BATCH -{self.batch}\r\n".encode()
        held = b"".join(self._held)
        lines = held.count(b"\r\n")
        if lines == 0:
            return f"@{self.label} :{self.server} ACK\r\n".encode()
        if lines == 1:
            return tagged(held, self.label)
        return self.open() + self.end()
