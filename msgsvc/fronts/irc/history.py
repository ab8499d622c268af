"""IRCv3 ``draft/chathistory``: a conversation's history, on the hub's (:class:`~msgsvc.hub.contracts.IUser`'s
``history``, ``history_after`` and ``conversations``), which decides what this user may read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.python.failure import Failure
from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase, T
from msgsvc.fronts.irc.tags import tagged
from msgsvc.fronts.irc.wire import addressed, line, read_server_time, server_time, text_lines
from msgsvc.hub.contracts import Kind, Page, Refusal, Refused, Stored, Summary
from msgsvc.hub.conversations import ALL, participants
from msgsvc.hub.ids import message_id, message_id_below, message_id_floor
from msgsvc.hub.rules import username_key
from msgsvc.wire import ascii_int

#: How many parameters each subcommand takes after it.
SUBCOMMANDS = {"LATEST": 3, "BEFORE": 3, "AFTER": 3, "AROUND": 3, "BETWEEN": 4, "TARGETS": 3}


@dataclass(frozen=True)
class Reference:
    """A ``msgid=`` or ``timestamp=`` of CHATHISTORY, as two positions among the ids: what is
    before it is below ``before``; what is after it, above ``after``."""

    before: str
    after: str

    @classmethod
    def read(cls, text: str) -> Reference | None:
        kind, _, value = text.partition("=")
        if kind == "msgid":
            found = message_id(value)
            return None if found is None else cls(found, found)
        when = read_server_time(value) if kind == "timestamp" else None
        if when is None:
            return None
        # A time is its millisecond: before it, earlier ones; after it, later ones.
        return cls(message_id_floor(when), message_id_below(message_id_floor(when + 0.001)))


class History(IrcBase):
    """CHATHISTORY LATEST, BEFORE, AFTER, AROUND, BETWEEN and TARGETS."""

    def irc_CHATHISTORY(self, params: list[str]) -> None:
        if not self.factory.history.kept:
            self.numeric(
                rfc.ERR_UNKNOWNCOMMAND, "CHATHISTORY", "Unknown command: the server keeps no history"
            )
            return
        sub = params[0].upper() if params else ""
        if sub not in SUBCOMMANDS:
            self._fail("INVALID_PARAMS", sub or "*", "LATEST, BEFORE, AFTER, AROUND, BETWEEN or TARGETS")
            return
        if len(params) < 1 + SUBCOMMANDS[sub]:
            self._fail("NEED_MORE_PARAMS", sub, "Missing parameters")
            return
        limit = ascii_int(params[-1])
        if limit is None or limit < 1:
            self._fail("INVALID_PARAMS", sub, params[-1], "The limit must be a positive number")
            return
        limit = min(limit, self.factory.history.page)
        if sub == "TARGETS":
            self._targets_between(params[1:3], limit)
            return
        target = params[1]
        try:
            conversation = self._conversation(target)
        except Refused as e:
            self._fail("INVALID_TARGET", sub, target, e.text)
            return
        refs: list[Reference] = []
        for text in params[2:-1]:
            if text == "*" and sub == "LATEST":  # the newest
                continue
            ref = Reference.read(text)
            if ref is None:
                self._fail("INVALID_PARAMS", sub, text, "A reference is msgid=<id> or timestamp=<time>")
                return
            refs.append(ref)
        if conversation == ALL:
            target = self.channel
        found = self._query(sub, conversation, refs, limit)
        self._answer_with(found, sub, target, lambda entries: self._batch(target, entries))

    def _query(
        self, sub: str, conversation: str, refs: list[Reference], limit: int
    ) -> Deferred[list[Stored]]:
        """The entries a subcommand asks for, oldest first."""
        user = self.user
        if sub == "LATEST":
            newer = refs[0].after if refs else ""
            return _entries(user.history(conversation, None, limit), lambda e: e.id > newer)
        ref = refs[0]
        if sub == "BEFORE":
            return _entries(user.history(conversation, ref.before, limit))
        if sub == "AFTER":
            return _entries(user.history_after(conversation, ref.after, limit))
        if sub == "AROUND":  # as many before it as after it, and the message itself
            pages = [user.history_after(conversation, message_id_below(ref.before), limit - limit // 2)]
            if limit // 2:
                pages.insert(0, user.history(conversation, ref.before, limit // 2))
            both = gatherResults(pages, consumeErrors=True)
            both.addErrback(_first_failure)
            return both.addCallback(lambda got: [e for page in got for e in page.entries])
        end = refs[1]  # BETWEEN, either way, both ends left out
        if ref.before <= end.before:
            return _entries(user.history_after(conversation, ref.after, limit), lambda e: e.id < end.before)
        return _entries(user.history(conversation, ref.before, limit), lambda e: e.id > end.after)

    def _targets_between(self, bounds: list[str], limit: int) -> None:
        """TARGETS: the conversations with a message between two times, the one whose latest is the
        earliest first; only #all and two-person ones have an IRC target (docs/irc.rst)."""
        refs = [Reference.read(bound) for bound in bounds]
        if refs[0] is None or refs[1] is None:
            self._fail("INVALID_PARAMS", "TARGETS", bounds[0], "A bound is timestamp=<time>")
            return
        low, high = sorted([refs[0], refs[1]], key=lambda r: r.before)

        def listed(summaries: list[Summary]) -> None:
            rows: list[bytes] = []
            for entry in sorted((s.latest for s in summaries), key=lambda e: e.id):
                target = self._target_of(entry)
                if low.after < entry.id < high.before and target is not None and len(rows) < limit:
                    rows.append(line("CHATHISTORY", "TARGETS", target, server_time(entry.at)))
            self._in_batch(["draft/chathistory-targets"], iter(rows))

        found = self.user.conversations(self.factory.history.conversations, False)  # TARGETS says no counts
        self._answer_with(found, "TARGETS", "*", listed)

    def _target_of(self, entry: Stored) -> str | None:
        """The IRC target a conversation is read with: #all, the room, the other person's nick (or one's
        own)."""
        if entry.conversation == ALL:
            return self.channel
        if entry.kind is Kind.ROOM:
            return entry.recipients[0]
        people = participants(entry.conversation)
        if len(people) > 2:
            return None
        other = next((p for p in people if p != self.nick_key), self.nick_key)
        return next((n for n in (entry.sender, *entry.recipients) if username_key(n) == other), other)

    def _answer_with(self, found: Deferred[T], sub: str, target: str, then: Callable[[T], None]) -> None:
        """Answer with ``then`` once ``found`` has come, or FAIL; the client's next lines wait."""
        self._hold("history")

        def answer(result: T | Failure) -> None:
            if not isinstance(result, Failure):
                then(result)
            elif isinstance(result.value, Refused) and result.value.refusal is Refusal.HISTORY_FORBIDDEN:
                self._fail("INVALID_TARGET", sub, target, result.value.text)
            elif isinstance(result.value, Refused):  # UNAVAILABLE (the store), HISTORY_OFF
                self._fail("MESSAGE_ERROR", sub, result.value.text)
            else:
                self.log.failure("could not read the history for {peer}", result, peer=self.peer)
                self._fail("MESSAGE_ERROR", sub, "the history cannot be read now; try again later")
            self._release("history")

        found.addBoth(self._later(answer))

    def _batch(self, target: str, entries: list[Stored]) -> None:
        self._in_batch(["chathistory", target], (self._entry(e) for e in entries))

    def _in_batch(self, kind: list[str], rows: Iterator[bytes]) -> None:
        """``rows`` (a step each: an entry's lines) in a batch of ``kind``, with ``batch`` (else bare),
        a few steps a reactor pass, as listings go."""
        if "batch" not in self.caps:
            self._list(rows)
            return
        batch = self.batch_id()
        server = self.factory.server_name

        def steps() -> Iterator[bytes]:
            yield line("BATCH", f"+{batch}", *kind, prefix=server)
            for row in rows:
                yield tagged(row, f"batch={batch}")
            yield f":{server} BATCH -{batch}\r\n".encode()

        self._list(steps())

    def _entry(self, entry: Stored) -> bytes:
        """An entry as the PRIVMSG it was (its time and id as tags, for who asked for them)."""
        tags = self.message_tags(entry.id, entry.at)
        sender = self.factory.mask(entry.sender)
        if entry.kind is Kind.BROADCAST:
            return text_lines("PRIVMSG", self.channel, entry.text, sender, tags)
        if entry.kind is Kind.ROOM:
            return text_lines("PRIVMSG", entry.recipients[0], entry.text, sender, tags)
        if entry.kind is Kind.UNICAST and username_key(entry.sender) == self.nick_key:
            return text_lines("PRIVMSG", entry.recipients[0], entry.text, sender, tags)
        return text_lines("PRIVMSG", self.nick, addressed(entry, self.nick), sender, tags)

    def _fail(self, code: str, *params: str) -> None:
        self._write(line("FAIL", "CHATHISTORY", code, *params, prefix=self.factory.server_name))


def _entries(page: Deferred[Page], keep: Callable[[Stored], bool] | None = None) -> Deferred[list[Stored]]:
    """The entries of ``page`` (those ``keep`` keeps)."""
    return page.addCallback(lambda got: [e for e in got.entries if keep is None or keep(e)])


def _first_failure(failure: Failure) -> Failure:
    """What made the first of several Deferreds fail (gatherResults' FirstError)."""
    error = failure.value
    return error.subFailure if isinstance(error, FirstError) else failure
