"""The lines a load client writes and reads: msgsvc's protocol, and IRC for the peers.

A message's text starts with :data:`STAMP`, then the sending time in
nanoseconds of ``time.monotonic_ns`` (one clock for every process on the
machine), a dot, and padding: both protocols deliver it as the line's
trailing parameter, so a load client finds it without parsing the line.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

STAMP = b" :@"
#: where the stamp stands in a multicast from msgsvc's IRC front, after whom it went to: "(to you and b) @..."
GROUP_STAMP = b") @"
#: the room of the room workload: every client a member, the messages to it
ROOM = b"#bench"


class Signal(enum.Enum):
    """What a line that is not a message means to a load client."""

    NOTHING = "nothing"
    REGISTERED = "registered"  # ready to send and receive
    IN_GROUP = "in group"  # joined the broadcast group, or the room
    REFUSED = "refused"  # the server said no or is closing the connection


def stamp(now_ns: int, size: int) -> bytes:
    """A message text of ``size`` bytes (or longer, if the stamp needs it) sent at ``now_ns``."""
    text = b"@%d." % now_ns
    return text + b"x" * (size - len(text))


def sent_at(line: bytes) -> int | None:
    """The sending time stamped in a delivered message line, or None if it holds none."""
    start = line.find(STAMP)
    if start < 0:
        start = line.find(GROUP_STAMP)
        if start < 0:
            return None
    start += len(STAMP)  # as long as GROUP_STAMP
    end = line.find(b".", start)
    try:
        return int(line[start:end])
    except ValueError:
        return None


def pong(ping: bytes) -> bytes:
    """The answer to a ``PING`` line, in both protocols: ``PONG`` and the same parameters."""
    return b"PONG" + ping[4:].rstrip(b"\r") + b"\r\n"


class Dialect:
    """What to write to a server for each step, and what its lines mean."""

    name: str
    #: whether a multicast is one line with every recipient, not one line each
    multi_target = True

    def register(self, name: str) -> bytes:
        raise NotImplementedError

    def join_group(self) -> bytes:
        """The lines that make this client a broadcast recipient (none if it already is)."""
        raise NotImplementedError

    def send(self, recipients: Sequence[str], text: bytes) -> bytes:
        raise NotImplementedError

    def broadcast(self, text: bytes) -> bytes:
        raise NotImplementedError

    def join_room(self) -> bytes:
        """The lines that make this client a member of :data:`ROOM`."""
        raise NotImplementedError

    def to_room(self, text: bytes) -> bytes:
        raise NotImplementedError

    def quit(self) -> bytes:
        raise NotImplementedError

    def control(self, line: bytes) -> tuple[Signal, bytes]:
        """What a line that is not a message means, and what to answer (``b""``: nothing)."""
        raise NotImplementedError


class Msgsvc(Dialect):
    """docs/protocol.rst: HELLO, then SEND / BROADCAST; registered once the user log has come.

    Version 8's lines, but for ``rooms``: version 11's, which has them (JOIN, SEND to a room).  With an
    ``account`` password, each name logs in to its account with it.
    """

    name = "msgsvc"

    def __init__(self, rooms: bool = False, account: str | None = None) -> None:
        self._version = b"VERSION 11\r\n" if rooms else b""
        self._password = b" :%s" % account.encode() if account else b""

    def register(self, name: str) -> bytes:
        return self._version + b"HELLO %s%s\r\n" % (name.encode(), self._password)

    def join_group(self) -> bytes:
        return b""

    def send(self, recipients: Sequence[str], text: bytes) -> bytes:
        return b"SEND %s :%s\r\n" % (",".join(recipients).encode(), text)

    def broadcast(self, text: bytes) -> bytes:
        return b"BROADCAST :%s\r\n" % text

    def join_room(self) -> bytes:
        return b"JOIN %s\r\n" % ROOM

    def to_room(self, text: bytes) -> bytes:
        return b"SEND %s :%s\r\n" % (ROOM, text)

    def quit(self) -> bytes:
        return b"QUIT\r\n"

    def control(self, line: bytes) -> tuple[Signal, bytes]:
        if line.startswith(b"ENDUSERS"):
            return Signal.REGISTERED, b""
        if line.startswith(b"ENDMEMBERS"):  # the end of JOIN's answer
            return Signal.IN_GROUP, b""
        if line.startswith(b"PING"):
            return Signal.NOTHING, pong(line)
        if line.startswith((b"BYE", b"ERROR")):
            return Signal.REFUSED, b""
        return Signal.NOTHING, b""


class Irc(Dialect):
    """RFC 2812 as a plain client speaks it: PASS, NICK and USER, PRIVMSG, a channel for broadcast."""

    def __init__(self, name: str, password: str, multi_target: bool, channel: bytes = b"#bench") -> None:
        self.name = name
        self._password = password.encode()
        self.multi_target = multi_target
        self.channel = channel

    def register(self, name: str) -> bytes:
        nick = name.encode()
        password = b"PASS %s\r\n" % self._password if self._password else b""
        return password + b"NICK %s\r\nUSER %s 0 * :%s\r\n" % (nick, nick, nick)

    def join_group(self) -> bytes:
        return b"JOIN %s\r\n" % self.channel

    def send(self, recipients: Sequence[str], text: bytes) -> bytes:
        if self.multi_target:
            return b"PRIVMSG %s :%s\r\n" % (",".join(recipients).encode(), text)
        return b"".join(b"PRIVMSG %s :%s\r\n" % (r.encode(), text) for r in recipients)

    def broadcast(self, text: bytes) -> bytes:
        return b"PRIVMSG %s :%s\r\n" % (self.channel, text)

    def join_room(self) -> bytes:
        return b"JOIN %s\r\n" % ROOM

    def to_room(self, text: bytes) -> bytes:
        return b"PRIVMSG %s :%s\r\n" % (ROOM, text)

    def quit(self) -> bytes:
        return b"QUIT :done\r\n"

    def control(self, line: bytes) -> tuple[Signal, bytes]:
        if line.startswith(b"PING"):
            return Signal.NOTHING, pong(line)
        if line.startswith(b"ERROR"):
            return Signal.REFUSED, b""
        words = line.split(None, 3)
        numeric = words[1] if len(words) > 1 and line.startswith(b":") else b""
        if numeric == b"001":
            return Signal.REGISTERED, b""
        if numeric == b"366":
            return Signal.IN_GROUP, b""
        if (
            numeric in (b"432", b"433", b"464", b"465")
            or b"Login failed" in line
            or b"Already logged" in line
        ):
            return Signal.REFUSED, b""
        return Signal.NOTHING, b""


def make(server: str, password: str = "bench", rooms: bool = False, account: str | None = None) -> Dialect:
    """The dialect that speaks to ``server``: ``msgsvc`` (``-web``, ``-redis``, ``-irc``), ``words``, ``ergo`` or ``ngircd``;
    with ``rooms``, one that joins and speaks to a room (msgsvc's lines of version 11); with ``account``,
    msgsvc's lines log in to each name's account with that password (``password`` is the IRC servers')."""
    if server in ("msgsvc", "msgsvc-web", "msgsvc-redis"):  # the same lines, over TCP or WebSocket
        return Msgsvc(rooms, account)
    if account is not None:
        raise ValueError(f"accounts are for msgsvc's lines, not {server!r}")
    if server == "words":  # twisted.words looks a PRIVMSG target up as one name
        return Irc("words", password, multi_target=False)
    if server == "ergo":  # Ergo takes at most 4 targets a PRIVMSG (MAXTARGETS=4), a multicast 5: words' lines
        return Irc("ergo", password, multi_target=False)
    if server == "ngircd":
        return Irc("ngircd", password, multi_target=True)
    if server == "msgsvc-irc":  # no PASS: on msgsvc a password claims the name
        return Irc("msgsvc-irc", "", multi_target=True, channel=b"#all")
    raise ValueError(f"unknown server {server!r}")
