"""What every concern of an IRC session builds on: its state, its output (numerics, long
listings a few entries a reactor pass, every refusal), the one channel's name, and a command's
targets."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.numerics import room_refusal
from msgsvc.fronts.irc.tags import Response, joined
from msgsvc.fronts.irc.wire import ERR_INPUTTOOLONG, ERR_SASLFAIL, line, server_time
from msgsvc.fronts.session import Limit, Session
from msgsvc.hub.contracts import Refusal, Refused
from msgsvc.hub.conversations import ALL, conversation_named

if TYPE_CHECKING:
    from msgsvc.fronts.irc.factory import IrcFactory

#: Entries of the username log (or of who is online) a listing goes through in one reactor pass.
LISTING_STEP = 100
T = TypeVar("T")


class IrcBase(Session):
    """An IRC client's session, short of what it answers: the state and output its concerns share."""

    factory: IrcFactory
    nick = "*"
    nick_key = ""
    username = ""  # from USER
    realname = ""
    caps: set[str]  # the capabilities the client asked for
    rooms: dict[str, str]  # the rooms it shows as joined (#all aside): by key, as spelled (IrcFactory.show_room)
    _account: str | None = None  # the name SASL logged in as
    _registered = False  # 001 was sent
    _sasl = False  # AUTHENTICATE PLAIN came: its payload is being read, or checked
    _early: list[bytes]  # what came for a logged-in user before registration completed
    _early_size = 0  # its bytes
    #: Long replies being sent, a few entries a reactor pass, each with what to do after it.
    _listings: deque[tuple[Iterator[bytes], Callable[[], None] | None]]
    #: The tags of the line being run (what a client sends with a message is relayed with it).
    line_tags: dict[str, str] = {}  # noqa: RUF012 - replaced, never changed
    #: The reply to a labeled line (labeled-response), from the line until its last part is written.
    _response: Response | None = None
    _batches = 0  # batches opened: each has its own id

    @property
    def channel(self) -> str:
        """The one channel, everyone online: #all unless the operator named it otherwise."""
        return self.factory.channel

    def _is_channel(self, target: str) -> bool:
        """Whether ``target`` is #all: its name here (``--irc-channel``), or the hub's for it."""
        folded = target.casefold()
        return folded in (self.factory.channel.casefold(), ALL)

    def _conversation(self, target: str) -> str:
        """The conversation an IRC target names: #all's, a room's, or this user's with nicks (``a,b``);
        Refused (ROOM_INVALID, RECIPIENT_INVALID, TOO_MANY_RECIPIENTS) if it names none."""
        if self._is_channel(target):
            return ALL
        return conversation_named(target, self.nick, self.clients.limits.max_recipients, rooms=True)

    def _me(self) -> str:
        """Whom a message to this client is to: its name, once logged in (by SASL, before 001 too)."""
        return self._account or self.nick

    def _write(self, data: bytes) -> None:
        """Write a reply: as a part of the labeled line's reply, if one is being made."""
        if self._response is not None:
            data = self._response.add(data)
            if not data:
                return
        super()._write(data)

    def _send(self, data: bytes) -> None:
        """Write what came for the client (never a part of a reply: a message, a server PING), or keep
        until 001 what comes for a SASL-logged-in client before it (within the send queue's limit)."""
        if self._registered:
            super()._write(data)
            return
        self._early.append(data)
        self._early_size += len(data)
        limit = self.clients.limits.max_send_queue
        if self._early_size > limit:
            self._drop(
                f"over {limit} bytes waiting for it to finish registering", "registration not finished"
            )

    def rejoin(self) -> None:
        """Show the rooms this user is in already (a protected one's, or its other sessions')."""
        raise NotImplementedError

    def room_burst(self, room: str, head: bytes, names: bytes, asked: bool) -> None:
        """Show a room joined: ``head`` (JOIN, its topic), then ``names`` (353, 366); ``asked``: the
        answer to this session's JOIN (:class:`~msgsvc.fronts.irc.markers.ReadMarker` puts MARKREAD
        between them)."""
        (self._write if asked else self._send)(head + names)

    def who_room(self, target: str) -> None:
        """WHO #room (:class:`~msgsvc.fronts.irc.rooms.Rooms`)."""
        raise NotImplementedError

    def enter(self, asked: bool) -> None:
        """Join #all (:class:`~msgsvc.fronts.irc.channel.Channel`); ``asked``: by this session's JOIN."""
        raise NotImplementedError

    def batch_id(self) -> str:
        """A new batch's id, unique on this connection."""
        self._batches += 1
        return str(self._batches)

    def _reply_to(self, label: str | None, run: Callable[[], None]) -> None:
        """Run a line; ``label``: its reply is labeled, a batch if more than a line (with ``batch``).

        A reply still being made when the next line is read (an answer that failed) ends then."""
        self._end_reply()
        if label is not None and "labeled-response" in self.caps and "batch" in self.caps:
            self._response = Response(label, self.batch_id(), self.factory.server_name)
        try:
            run()
        finally:
            response = self._response
            if response is not None:
                self._response = None  # what is written here is the reply's end, or its batch's start
                response.pending -= 1
                super()._write(response.end() if not response.pending else response.open())
                if response.pending:
                    self._response = response

    def _ask(
        self,
        call: Callable[[], T | Deferred[T]],
        then: Callable[[T], None],
        refused: Callable[[Refused], None],
    ) -> None:
        """Ask the hub (``call``), and answer with ``then`` or ``refused`` in the order of the client's
        lines: now if the hub answers at once and nothing earlier awaits, else when it comes (the
        client's next lines wait for it)."""
        try:
            result = call()
        except Refused as e:
            refusal = e
            self._answer(lambda: refused(refusal))
            return
        if not isinstance(result, Deferred):
            value = result
            self._answer(lambda: then(value))
            return
        finish: Callable[[Callable[[], None]], None] = self._later(run_now)
        slot: list[Callable[[], None]] = []
        if self._answers is None:
            self._answers = deque()
        self._answers.append(slot)

        def done(value: T) -> None:
            slot.append(lambda: finish(lambda: then(value)))
            self._answered()

        def failed(failure: Failure) -> None:
            error = failure.value
            if not isinstance(error, Refused):
                self.log.failure("the hub failed to answer {peer}", failure, peer=self.peer)
                error = Refused(Refusal.UNAVAILABLE, "the server could not do it")
            no = error
            slot.append(lambda: finish(lambda: refused(no)))
            self._answered()

        result.addCallbacks(done, failed)

    def _refused(self, room: str, nick: str | None = None) -> Callable[[Refused], None]:
        """What says a refusal of an operation on ``room`` (about ``nick``)."""

        def say(refused: Refused) -> None:
            said = room_refusal(refused.refusal, room, nick, refused.text)
            if said is None:
                self.server_notice(f"{room}: {refused.text}")
            else:
                self.numeric(*said)

        return say

    def _later(self, then: Callable[[T], None]) -> Callable[[T], None]:
        """``then``, a part of the reply being made that is written later (an answer awaited)."""
        response = self._response
        if response is None:
            return then
        response.pending += 1

        def part(value: T) -> None:
            then(value)
            response.pending -= 1
            if not response.pending and self._response is response:
                self._end_reply()

        return part

    def _end_reply(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            super()._write(response.end())

    def message_tags(self, message_id: str, at: float, client: str = "", sender: str = "") -> str:
        """A message's tags for this client: its time (``server-time``); its id and its sender's
        client-only tags (``message-tags``); its sender's account (``account-tag``)."""
        if not self.caps:
            return ""
        tagged = "message-tags" in self.caps
        return joined(
            f"time={server_time(at)}" if "server-time" in self.caps else "",
            f"msgid={message_id}" if tagged and message_id else "",
            client if tagged else "",
            self.account_tags(sender) if sender else "",
        )

    def account_tags(self, name: str) -> str:
        """``account-tag``: ``account=<name>`` on what ``name`` does, if it is an account (protected)."""
        if "account-tag" not in self.caps:
            return ""
        account = self.factory.account(name)
        return f"account={account}" if account else ""

    def join_line(self, name: str, room: str) -> bytes:
        """``name`` joins ``room``: with ``extended-join``, its account (``*``: none) and real name too."""
        prefix, tags = self.factory.mask(name), self.account_tags(name)
        if "extended-join" in self.caps:
            account = self.factory.account(name) or "*"
            return line("JOIN", room, account, self.factory.realname(name), prefix=prefix, tags=tags)
        return line("JOIN", room, prefix=prefix, tags=tags)

    def numeric(self, code: str, *params: str) -> None:
        self._write(self._numeric(code, *params))

    def _numeric(self, code: str, *params: str) -> bytes:
        return line(code, self.nick, *params, prefix=self.factory.server_name)

    def _list(self, entries: Iterator[bytes], then: Callable[[], None] | None = None) -> None:
        """Send a reply that goes through the username log, the users online or a room's members, or
        lists the rooms (``entries`` gives one step of it at a time: a line, or nothing),
        :data:`LISTING_STEP` steps a reactor pass at most, and no more bytes than the session's
        :class:`~msgsvc.fronts.pacing.Pacer` has room for (whatever the listings asked in one read),
        none while the client's buffer is full; then call ``then``.  The client's next lines wait
        until it is sent."""
        if self._response is not None:
            after = then
            done = self._later(lambda _: after() if after is not None else None)
            then = lambda: done(None)  # noqa: E731
        self._listings.append((entries, then))
        if len(self._listings) == 1:
            self._list_some()

    def _list_some(self) -> None:
        out: list[bytes] = []
        steps = LISTING_STEP
        room = self._pacer.room
        while self._listings and steps and room > 0:
            entries, then = self._listings[0]
            data = next(entries, None)
            if data is not None:
                out.append(data)
                steps -= 1
                room -= len(data)
                continue
            self._listings.popleft()
            if then is not None:
                self._write_listed(out)
                out = []
                then()
                room = self._pacer.room
        self._write_listed(out)
        if not self._listings:
            if "listing" in self._holds:
                self._release("listing")
        elif not (self._gone or self._dropped or self.transport.disconnecting):
            self._hold("listing")
            self._pacer.go_on(self._list_some)

    def _write_listed(self, out: list[bytes]) -> None:
        if out:
            data = b"".join(out)
            self._pacer.spend(len(data))
            self._write(data)

    def say_refused(self, refusal: Refusal | Limit, text: str) -> None:
        """Every refusal in IRC's words: the session's limits, a message's text, a send the hub could
        not make, a login."""
        if refusal is Limit.LINE_TOO_LONG:
            self.numeric(ERR_INPUTTOOLONG, "Input line was too long")
        elif refusal is Refusal.TEXT_EMPTY:  # white space (or formatting) alone, as the other fronts refuse it
            self.numeric(rfc.ERR_NOTEXTTOSEND, "No text to send")
        elif refusal is Refusal.TEXT_TOO_LONG:
            self.server_notice(f"not sent: a message may hold at most {self.clients.limits.max_text} bytes")
        elif refusal is Refusal.TOO_MANY_NEW_GROUPS:  # a PRIVMSG to nicks opening a group
            self._write(line("FAIL", "PRIVMSG", "TOO_MANY_NEW_GROUPS", text, prefix=self.factory.server_name))
        elif refusal is Limit.TOO_MANY_CONNECTIONS or self._registered:  # a send (only sends once registered)
            self.server_notice(text)
        elif self._sasl:
            self._sasl = False
            self.numeric(ERR_SASLFAIL, f"SASL authentication failed: {text}")
        elif refusal in (Refusal.USERNAME_TAKEN, Refusal.AUTH_REQUIRED, Refusal.SESSIONS_FULL):
            self.numeric(rfc.ERR_NICKNAMEINUSE, self.nick, text)
        elif refusal is Refusal.USERNAME_INVALID:
            self.numeric(rfc.ERR_ERRONEUSNICKNAME, self.nick, text)
        elif refusal is Refusal.AUTH_FAILED:
            self.numeric(rfc.ERR_PASSWDMISMATCH, "Password incorrect")
            self.bye(text)
        elif refusal in (Refusal.UNAVAILABLE, Refusal.RATE_LIMITED):
            # The state is unreachable, or too many new names or passwords came from this address:
            # the same nick may work later, and (rate limited) a name already in the log now.
            self.numeric(rfc.ERR_UNAVAILRESOURCE, self.nick, text)
        else:
            self.bye(text)

    def server_notice(self, text: str) -> None:
        self._write(line("NOTICE", self.nick, text, prefix=self.factory.server_name))

    def _targets(self, field: str, limit: int, quiet: bool = False) -> list[str] | None:
        """The targets of ``field`` (``a,b,#all``), each once however it is spelled; None (answered
        407 unless ``quiet``) if there are more than ``limit``: nothing is done for any of them."""
        targets: dict[str, str] = {}
        for target in field.split(","):
            if target:
                targets.setdefault(target.casefold(), target)
                if len(targets) > limit:
                    if not quiet:
                        self.numeric(rfc.ERR_TOOMANYTARGETS, target, f"Too many targets: at most {limit}")
                    return None
        return list(targets.values())


def run_now(answer: Callable[[], None]) -> None:
    """Give ``answer``, a part of a reply whose value has come."""
    answer()
