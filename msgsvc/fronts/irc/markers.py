"""IRCv3 ``draft/read-marker``: ``MARKREAD``, the account's read positions (kept by the hub per account and
conversation, as message ids) said as times, and moved from any of its sessions."""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.channel import Channel
from msgsvc.fronts.irc.wire import line, read_server_time, server_time
from msgsvc.hub.contracts import Refusal, Refused
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.ids import message_id_below, message_id_floor, message_id_time
from msgsvc.hub.rules import room_key

READ_MARKER = "draft/read-marker"


def position_at(text: str) -> str | None:
    """The position a ``timestamp=`` names: the greatest id of its millisecond (every message of that
    millisecond and before counts as read); None if ``text`` is not one."""
    kind, _, value = text.partition("=")
    when = read_server_time(value) if kind == "timestamp" else None
    return None if when is None else message_id_below(message_id_floor(when + 0.001))


def marker(position: str | None) -> str:
    """A read position as MARKREAD says it: ``timestamp=`` its millisecond, or ``*`` (none)."""
    return "*" if position is None else f"timestamp={server_time(message_id_time(position))}"


class ReadMarker(Channel):
    """MARKREAD get and set, MARKREAD after JOIN, and MARKREAD when another session moved a position."""

    def irc_MARKREAD(self, params: list[str]) -> None:
        if not self.factory.history.kept:
            self.numeric(rfc.ERR_UNKNOWNCOMMAND, "MARKREAD", "Unknown command: the server keeps no history")
            return
        if not params or not params[0]:
            self._fail_mark("NEED_MORE_PARAMS", "Missing parameters")
            return
        target = params[0]
        try:
            conversation = self._conversation(target)
        except Refused as e:
            self._fail_mark("INVALID_PARAMS", target, e.text)
            return
        if len(params) == 1:
            self._hold("marker")
            released = self._later(lambda _: self._release("marker"))
            self._read_marker(conversation, target, self._write, released)
            return
        position = position_at(params[1])
        if position is None:
            self._fail_mark("INVALID_PARAMS", target, "A read marker is timestamp=<time>")
            return
        self._hold("marker")
        self._answer_marker(self.user.mark_read(conversation, position), target)

    def _read_marker(
        self, conversation: str, target: str, out: Callable[[bytes], None], then: Callable[[None], None]
    ) -> None:
        """``out`` ``MARKREAD target`` with the account's position there (``*`` for none, and for a name
        that keeps none: an unprotected one), then ``then``."""

        def write(position: str | None | Failure) -> None:
            if isinstance(position, Failure):
                refused = position.value
                if not isinstance(refused, Refused) or refused.refusal is not Refusal.HISTORY_FORBIDDEN:
                    self._failed_mark(position, target)
                    then(None)
                    return
                position = None
            out(line("MARKREAD", target, marker(position), prefix=self.factory.server_name))
            then(None)

        self.user.read_position(conversation).addBoth(write)

    def _answer_marker(self, kept: Deferred[str], target: str) -> None:
        def answer(position: str | Failure) -> None:
            if isinstance(position, Failure):
                self._failed_mark(position, target)
            else:
                self._write(line("MARKREAD", target, marker(position), prefix=self.factory.server_name))
            self._release("marker")

        kept.addBoth(self._later(answer))

    def _failed_mark(self, failure: Failure, target: str) -> None:
        """FAIL MARKREAD: ACCOUNT_REQUIRED for a name without an account (it keeps no read positions);
        INVALID_PARAMS for an account's target it may not read (a room it is not in) or where no
        message is kept for it to read (the spec's timestamp is a message's)."""
        refused = failure.value
        if isinstance(refused, Refused) and refused.refusal is Refusal.HISTORY_FORBIDDEN:
            code = "ACCOUNT_REQUIRED" if self.factory.account(self.nick) is None else "INVALID_PARAMS"
            self._fail_mark(code, target, refused.text)
        elif isinstance(refused, Refused):  # UNAVAILABLE: the store
            self._fail_mark("INTERNAL_ERROR", target, refused.text)
        else:
            self.log.failure("could not read or move a read marker for {peer}", failure, peer=self.peer)
            self._fail_mark("INTERNAL_ERROR", target, "the read marker cannot be kept now; try again later")

    def _fail_mark(self, code: str, *params: str) -> None:
        self._write(line("FAIL", "MARKREAD", code, *params, prefix=self.factory.server_name))

    def enter(self, asked: bool) -> None:
        """Join #all; with ``draft/read-marker``, its MARKREAD before its names."""
        if READ_MARKER not in self.caps:
            super().enter(asked)
            return
        self._join_burst(asked)
        if asked:
            self._hold("marker")
        names = self._later(lambda _: self._list(self._names())) if asked else None

        def then(_: None) -> None:
            if names is not None:
                names(None)
                self._release("marker")
            else:
                self._list(self._names())

        self._read_marker(ALL, self.channel, self._write if asked else self._send, then)

    def room_burst(self, room: str, head: bytes, names: bytes, asked: bool) -> None:
        """A room joined; with ``draft/read-marker``, its MARKREAD before its names, all written at once
        when the position has been read."""
        if READ_MARKER not in self.caps:
            super().room_burst(room, head, names, asked)
            return
        out = self._write if asked else self._send
        held = [head]
        if asked:
            self._hold("marker")
        finish = self._later(lambda _: out(b"".join(held) + names)) if asked else None

        def then(_: None) -> None:
            if finish is not None:
                finish(None)
                self._release("marker")
            else:
                out(b"".join(held) + names)

        self._read_marker(room_key(room), room, held.append, then)

    def read_moved(self, conversation: str, position: str) -> None:
        """hub.Participant: another session of the account read ``conversation`` up to ``position``:
        MARKREAD, for a client that asked for ``draft/read-marker`` (a conversation of three or more
        has no IRC target: nothing)."""
        target = self._target_named(conversation)
        if READ_MARKER in self.caps and target is not None:
            self._send(line("MARKREAD", target, marker(position), prefix=self.factory.server_name))

    def _target_named(self, conversation: str) -> str | None:
        """The IRC target of a conversation key: #all, a room (as spelled, if shown here), the other
        person's nick (or one's own)."""
        if conversation == ALL:
            return self.channel
        if conversation.startswith("#"):
            return self.rooms.get(conversation, conversation)
        people = participants(conversation)
        if len(people) > 2:
            return None
        other = next((p for p in people if p != self.nick_key), self.nick_key)
        return self.factory.directory.names.get(other, other)
