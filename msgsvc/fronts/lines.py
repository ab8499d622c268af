"""The line front: the protocol and factory between the wire and the hub.

Twisted serves every connection from one thread: each connection gets its
own :class:`ServerProtocol` instance, which is what "fork a thread per
client" becomes on a reactor.  What every front's connection does alike
(limits, timers, logging in) is :class:`msgsvc.fronts.session.Session`.
The web front (:mod:`msgsvc.fronts.web`) speaks the same protocol over
WebSocket with the same :class:`ServerProtocol`, and shares its
:class:`~msgsvc.fronts.presence.Presence`: TCP and web clients hear of each
other in the same batches.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from msgsvc import wire
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.session import Limit, Session
from msgsvc.fronts.tally import ROOM
from msgsvc.fronts.roomlines import (
    encode_bans,
    encode_event,
    encode_joined,
    encode_members,
    encode_mode_query,
    encode_rooms,
)
from msgsvc.fronts.userlog import LogSending
from msgsvc.hub.contracts import (
    Kind,
    Message,
    Page,
    Queued,
    Refusal,
    Refused,
    Report,
    RoomEvent,
    RoomView,
    Stored,
    Summary,
)
from msgsvc.hub.conversations import ALL, conversation_named
from msgsvc.hub.events import ClientError
from msgsvc.hub.user import UNREGISTERED, not_registered
from msgsvc.wire import REFUSAL_CODES, Code, ProtocolError

T = TypeVar("T")

WELCOME_TEXT = "welcome to msgsvc"
#: The protocol version this server speaks (docs/protocol.rst); a connection that does not say
#: ``VERSION`` (or says less) speaks :data:`VERSION_8`'s lines.
VERSION = 13
VERSION_13 = 13  # TOO_MANY_NEW_GROUPS (an older client gets RATE_LIMITED)
VERSION_12 = 12  # room bans shown as masks
VERSION_11 = 11  # rooms
VERSION_10 = 10  # several sessions: read positions
VERSION_9 = 9  # history: ids and times
VERSION_8 = 8

#: The code that says each refusal: the hub's and the accounts' (:data:`~msgsvc.wire.REFUSAL_CODES`),
#: and the session's own limits.
CODES: dict[Refusal | Limit, Code] = {
    Limit.TOO_MANY_CONNECTIONS: Code.SERVER_FULL,
    Limit.LINE_TOO_LONG: Code.LINE_TOO_LONG,
}
CODES.update(REFUSAL_CODES.items())

#: Each kind's word on the wire: a look-up, where ``kind.value`` (an Enum's property) is two calls in Python.
KIND_WORDS: dict[Kind, str] = {kind: kind.value for kind in Kind}


def encode_message(message: Message) -> bytes:
    """The ``MSG`` line for ``message``.

    Its parts need no checking: the names are registered usernames and the
    text came in as (part of) one line.
    """
    recipients = ",".join(message.recipients) or "*"
    return f"MSG {message.sender} {KIND_WORDS[message.kind]} {recipients} :{message.text}\r\n".encode()


#: A message to several is encoded once, however many receive it.
encode_shared_message = lru_cache(maxsize=64)(encode_message)


def encode_message_9(message: Message) -> bytes:
    """The version 9 ``MSG`` line for ``message``: with its id and time before the text."""
    recipients = ",".join(message.recipients) or "*"
    return (
        f"MSG {message.sender} {KIND_WORDS[message.kind]} {recipients} {message.id}"
        f" {wire.format_millis(message.at)} :{message.text}\r\n"
    ).encode()


encode_shared_message_9 = lru_cache(maxsize=64)(encode_message_9)


def encode_history(entry: Stored) -> bytes:
    """The ``HISTMSG`` line for an entry of the history."""
    recipients = ",".join(entry.recipients) or "*"
    return (
        f"HISTMSG {entry.conversation} {entry.sender} {KIND_WORDS[entry.kind]} {recipients} {entry.id}"
        f" {wire.format_millis(entry.at)} :{entry.text}\r\n"
    ).encode()


def encode_page(page: Page) -> bytes:
    """A page of history: its ``HISTMSG`` lines, then ``ENDHISTORY``."""
    end = wire.format_line(
        "ENDHISTORY", page.conversation, str(len(page.entries)), "more" if page.more else "start"
    )
    return b"".join(map(encode_history, page.entries)) + end


@lru_cache(maxsize=256)
def sent_line(delivered: int, offline: tuple[str, ...], queued: tuple[str, ...]) -> bytes:
    """``SENT``: the same few lines over and over ("SENT 1 - -" for every unicast)."""
    return wire.format_line("SENT", str(delivered), ",".join(offline) or "-", ",".join(queued) or "-")


def encode_delayed(message: Queued, version: int) -> bytes:
    """The ``DELAYED`` line for a message that waited: its id and when it was sent, then as ``MSG``
    (from version 9 with the message's own id, ``-`` if it was queued before ids were kept)."""
    recipients = ",".join(message.recipients)
    own = f" {message.message_id or '-'}" if version >= VERSION_9 else ""
    return (
        f"DELAYED {message.id} {wire.format_time(message.sent_at)} {message.sender} {message.kind}"
        f" {recipients}{own} :{message.text}\r\n"
    ).encode()


def is_room(conversation: str) -> bool:
    """Whether ``conversation`` (a key) is a room's: what a client before version 11 is not told of."""
    return conversation.startswith("#") and conversation != ALL


def encode_conversations(summaries: list[Summary], version: int) -> bytes:
    """The answer to ``CONVERSATIONS``: a ``CONVERSATION`` line each (from version 10 with its unread count
    and read position; from version 11 rooms too), then ``ENDCONVERSATIONS``."""
    if version < VERSION_11:
        summaries = [s for s in summaries if not is_room(s.latest.conversation)]
    lines = []
    for summary in summaries:
        e = summary.latest
        counts = (str(summary.unread), summary.read or "-") if version >= VERSION_10 else ()
        lines.append(wire.format_line("CONVERSATION", e.conversation, e.id, wire.format_millis(e.at), *counts))
    return b"".join(lines) + wire.format_line("ENDCONVERSATIONS", str(len(summaries)))


def encode_read(conversation: str, position: str) -> bytes:
    """``READ``: the account's read position in a conversation."""
    return wire.format_line("READ", conversation, position)


class ServerProtocol(Session):
    """One client of the line protocol: reads commands, hands them to the hub, writes replies."""

    version = VERSION_8  # the version its lines are in: VERSION 9 (or 10) before HELLO asks for its own
    front = "tcp"  # "web" under WebSocket
    registration = "HELLO"
    _hello: str  # the name of its latest HELLO
    _own: str  # its name once logged in, as the log spells it
    _sending: LogSending | None = None  # the username log, being sent
    #: A long answer's parts not yet written; meanwhile what else is written waits (held, its bytes).
    _awaited: tuple[str, ...] = ()
    _held: list[bytes]
    _held_size = 0
    _then: Callable[[], None] | None = None  # what follows the long answer

    def __init__(self, clients: Clients, presence: Presence) -> None:
        super().__init__(clients)
        self.presence = presence
        self._hello = self._own = ""  # set here, as Session's (Session.__init__ says why)

    # -- Session: the line protocol's way of saying things ----------------

    def command(self, line: bytes) -> None:
        unicast = wire.parse_send(line, self.clients.limits.max_text)
        if unicast is not None:  # the commonest line, read without the general parser
            self.send_to(unicast[:1], unicast[1], self._sent)
            return
        try:
            command = self._parse(line)
        except ProtocolError as e:
            code, text = e.code, e.text
            self._answer(lambda: self._error(code, text))
            return
        if command is not None:
            self._dispatch(command)

    def _parse(self, line: bytes) -> wire.Command | None:
        """``line`` as a command of this connection's version (a room's verb is unknown before 11)."""
        parsed = wire.parse_line(line)
        if parsed is None:
            return None
        if parsed.verb in wire.ROOM_VERBS and self.version < VERSION_11:
            raise ProtocolError(Code.UNKNOWN_COMMAND, f"unknown command {parsed.verb}")
        return wire.parse_command(parsed, self.clients.limits)

    def pipelined(self, line: bytes) -> bool:
        return line.startswith((b"SEND ", b"BROADCAST "))  # answered by SENT or ERROR, in turn (a room's too)

    def refuse(self, reason: Refusal | Limit, text: str) -> None:
        code = CODES[reason]
        if code is Code.TOO_MANY_NEW_GROUPS and self.version < VERSION_13:
            code = Code.RATE_LIMITED  # a code it knows; the text says why
        self._error(code, self._in_words(reason, text))

    def login_refused(self, refused: Refused) -> None:
        """Say why; then close, unless the server failed (UNAVAILABLE): the client may say HELLO again."""
        text = self._in_words(refused.refusal, refused.text)
        self.send_error(CODES[refused.refusal], text)
        if refused.refusal is Refusal.UNAVAILABLE:
            self._watch(self.clients.limits.hello_timeout)  # it may say HELLO again, in time
        else:
            self.bye(text)

    def _in_words(self, reason: Refusal | Limit, text: str) -> str:
        """The text of a refusal in the line protocol's words, where they name its commands or syntax."""
        if reason is Refusal.NOT_REGISTERED:
            return "say HELLO <username> first"
        if reason is Refusal.USERNAME_INVALID and " " in self._hello:  # "HELLO al ice"
            return f"{text} (a password goes after ' :')"
        return text

    def _error(self, code: Code, text: str) -> None:
        """A line refused, as the log and the client are told."""
        self.clients.hub.announce(ClientError(self.peer, code.value, text))
        self.send_error(code, text)

    def send_error(self, code: Code, text: str) -> None:
        """``ERROR <code> :<text>``."""
        self._write(wire.format_line("ERROR", code.value, trailing=text))

    def farewell(self, reason: str) -> bytes:
        return wire.format_line("BYE", trailing=reason)

    def ping(self, token: str) -> bytes:
        return wire.format_line("PING", trailing=token)

    def welcome(self, name: str) -> None:
        self._own = name
        self._write(wire.format_line("WELCOME", name, trailing=WELCOME_TEXT))
        self.presence.join(self)
        parts: tuple[str, ...] = () if self._send_log() else ("log",)
        if self.version >= VERSION_9 and self.clients.hub.history.policy.kept:
            parts += ("catch-up",)
        if not parts:
            self.user.deliver_backlog()
            return
        self._answer_at_length(parts, self.user.deliver_backlog)
        if "catch-up" in parts:
            self._catch_up()

    def _answer_at_length(self, parts: tuple[str, ...], then: Callable[[], None] | None) -> None:
        """Answer in ``parts`` written over several reactor passes (the username log, the catch-up), then
        call ``then``.  Meanwhile the client's next lines wait, and what comes for it (messages, presence
        news, DELAYED) waits too and comes after.  What waits is unread, and counts against
        ``--max-send-queue``: past it, the client is dropped (send queue exceeded), as one that does not
        read."""
        self._hold("answering at length")
        self._awaited = parts
        self._then = then
        self._held = []
        self._held_size = 0
        # Meanwhile this connection's writes are held: on the instance, so the others' cost nothing.
        self._write = self._keep  # type: ignore[method-assign]

    def _keep(self, data: bytes) -> None:
        self._held_size += len(data)
        limit = self.clients.limits.max_send_queue
        if self._held_size <= limit:
            self._held.append(data)
        else:
            self._held.clear()
            self._drop(f"send queue exceeded: over {limit} bytes unread", "send queue exceeded", abort=True)

    def _written(self, part: str, data: bytes = b"") -> None:
        """``part`` of the long answer is written, or is ``data``, which goes before what waited."""
        if data:
            self._held.insert(0, data)
        self._awaited = tuple(awaited for awaited in self._awaited if awaited != part)
        if self._awaited or self._gone or self._dropped:
            return
        del self._write
        held, self._held = self._held, []
        if held:
            self._write(b"".join(held))
        self._release("answering at length")
        then, self._then = self._then, None
        if then is not None:
            then()

    def _send_log(self) -> bool:
        """Send the username log: its first piece now, the rest a piece a reactor pass (past the writes
        that wait for it); whether the first was the whole log."""
        clock = self.clients.clock
        sending = LogSending(self.presence, clock, self._send_queue, self._log_piece, self._log_sent)
        if sending.start():
            return True
        self._sending = sending
        return False

    def _log_piece(self, data: bytes) -> bool:
        type(self)._write(self, data)
        return not (self._gone or self._dropped or self.transport.disconnecting)

    def _log_sent(self) -> None:
        self._sending = None
        self._written("log")

    def _catch_up(self) -> None:
        """Version 9: what was said to everyone while this client was away, as part of HELLO's answer
        (after the log)."""

        def failed(failure: Failure) -> list[Page]:
            if not failure.check(Refused):  # the hub logged why it refused (the store failing)
                self.log.failure("could not read the catch-up of {peer}", failure, peer=self.peer)
            return [Page(ALL, (), True)]  # none, and older may exist: it may ask HISTORY later

        def write(pages: list[Page]) -> None:
            if self.version < VERSION_11:
                pages = [page for page in pages if not is_room(page.conversation)]
            self._written("catch-up", b"".join(map(encode_page, pages)))

        self.user.catch_up(self.version >= VERSION_10).addErrback(failed).addCallback(write)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._sending is not None:
            self._sending.stop()
            self._sending = None
        if self._awaited:
            self._held.clear()
        self.presence.leave(self)
        super().connectionLost(reason)

    # -- commands --------------------------------------------------------

    def _dispatch(self, command: wire.Command) -> None:
        match command:  # the commonest first: each case that fails to match costs a check
            case wire.Send(recipients, text):
                self.send_to(recipients, text, self._sent)
            case wire.Broadcast(text):
                self.send_to(None, text, self._sent)
            case wire.Hello(username, password):
                if self._welcomed:
                    self.send_error(Code.ALREADY_REGISTERED, f"already registered as {self.user.name}")
                else:
                    self._hello = username
                    self.log_in(username, password)
            case wire.SendRoom(room, text):
                if self.version < VERSION_11:  # as version 10 refused it
                    raise Refused(Refusal.RECIPIENT_INVALID, f"not a valid recipient name: {room!r}")
                self.answer_report(self.tally.count(ROOM, self.user.send_room(room, text)), self._sent)
            case wire.History(conversation, before, count):
                key = self._conversation(conversation)
                limit = self.clients.hub.history.policy.default_page if count is None else count
                self._read_history(self.user.history(key, before, limit), encode_page)
            case wire.Conversations():
                limit = self.clients.hub.history.policy.conversations
                found = self.user.conversations(limit, self.version >= VERSION_10)  # version 9 shows no counts
                self._read_history(found, lambda summaries: encode_conversations(summaries, self.version))
            case wire.Read(conversation, position):
                if self.version < VERSION_10:
                    self._error(Code.UNKNOWN_COMMAND, "unknown command READ")  # as version 9 said it
                    return
                key = self._conversation(conversation)
                self._read_history(self.user.mark_read(key, position), lambda kept: encode_read(key, kept))
            case wire.Join(room, key):
                self._room_answer(self.user.join(room, key), encode_joined)
            case wire.Part(room, reason):
                self._room_answer(self.user.part(room, reason), self._event)
            case wire.Topic(room, text):
                self._room_answer(self.user.topic(room, text), self._event)
            case wire.Invite(room, name):
                self._room_answer(self.user.invite(room, name), self._event)
            case wire.Kick(room, name, reason):
                self._room_answer(self.user.kick(room, name, reason), self._event)
            case wire.Mode(room, None, bans):
                self._room_answer(self.user.members(room), self._bans if bans else encode_mode_query)
            case wire.Mode(room, changes):
                self._room_answer(self.user.mode(room, changes or ()), self._event)
            case wire.Members(room):
                self._room_answer(self.user.members(room), encode_members)
            case wire.Rooms(mine):
                self._room_answer(self.user.rooms(mine), encode_rooms)
            case wire.Version(version):
                if self._welcomed:
                    self.send_error(Code.ALREADY_REGISTERED, "VERSION comes before HELLO")
                else:
                    self.version = min(version, VERSION)
                    days = self.clients.hub.history.policy.days
                    self._write(wire.format_line("VERSION", str(self.version), f"{days:g}"))
            case wire.Password(password):
                self._set_password(self.user.name, password)
            case wire.Users():
                if self.user is UNREGISTERED:
                    not_registered()
                if not self._send_log():
                    self._answer_at_length(("log",), None)
            case wire.Ack(up_to):
                self.user.acknowledge(up_to)
            case wire.Ping(token):
                self._write(wire.format_line("PONG", trailing=token))
            case wire.Pong():
                pass  # the answer to our PING; any line already counted as a sign of life
            case wire.Quit(reason):
                self.quit(reason, "goodbye")

    def _set_password(self, name: str, password: str) -> None:
        self._hold("password")  # its next lines wait for the answer

        def protected(_: None) -> None:
            self._write(wire.format_line("PROTECTED", name, trailing=f"{name} is protected by your password"))

        def failed(failure: Failure) -> None:
            if isinstance(failure.value, Refused):
                self.refuse(failure.value.refusal, failure.value.text)
                return
            self.log.failure("could not set the password of {name}", failure, name=name)
            self.send_error(Code.SERVER_ERROR, "the server could not store the password; it is unchanged")

        done = self.clients.accounts.set_password(name, password, self.host)
        done.addCallbacks(protected, failed)
        done.addBoth(lambda _: self._release("password"))

    def _conversation(self, named: str) -> str:
        """The key of the conversation a client names (a room's from version 11)."""
        limit = self.clients.limits.max_recipients
        return conversation_named(named, self.user.name, limit, rooms=self.version >= VERSION_11)

    def _read_history(self, read: Deferred[T], encode: Callable[[T], bytes]) -> None:
        """Answer with what ``read`` reads, as ``encode`` writes it; the client's next lines wait."""
        self._await(read, encode, "history", "the history cannot be read now; try again later")

    def _room_answer(self, asked: Deferred[T], encode: Callable[[T], bytes]) -> None:
        """Answer a room command with what ``asked`` answers, as ``encode`` writes it; the client's next
        lines wait."""
        self._await(asked, encode, "rooms", "the server could not do that now; try again later")

    def _await(self, asked: Deferred[T], encode: Callable[[T], bytes], why: str, trouble: str) -> None:
        """Answer with what ``asked`` fires with, as ``encode`` writes it, or its refusal (``trouble``
        for a failure that is none); the client's next lines wait, held for ``why``."""
        self._hold(why)

        def failed(failure: Failure) -> None:
            refused = failure.value
            if not isinstance(refused, Refused):
                self.log.failure("could not answer {peer}: {why}", failure, peer=self.peer, why=why)
                refused = Refused(Refusal.UNAVAILABLE, trouble)
            self.refuse(refused.refusal, refused.text)

        asked.addCallback(encode).addCallbacks(self._answer_paced, failed)
        asked.addBoth(lambda _: self._release(why))

    def _answer_paced(self, data: bytes, at: int = 0) -> None:
        """Write the answer ``data`` from ``at`` on, as far as this pass's room for listings goes (the
        :class:`~msgsvc.fronts.pacing.Pacer`), and the rest at later passes, meanwhile holding the
        client's next lines and what else comes for it (:meth:`_answer_at_length`)."""
        end = at + self._pacer.room
        if at == 0 and end >= len(data):  # the common case: it fits
            self._pacer.spend(len(data))
            self._write(data)
            return
        if at == 0:
            self._answer_at_length(("listing",), None)
        if end > at:
            self._pacer.spend(min(end, len(data)) - at)
            type(self)._write(self, data[at:end])
        if end >= len(data):
            self._written("listing")
        elif not (self._gone or self._dropped or self.transport.disconnecting):
            self._pacer.go_on(lambda: self._answer_paced(data, end))

    def _event(self, event: RoomEvent) -> bytes:
        return encode_event(event, self._own, self.version >= VERSION_12)

    def _bans(self, view: RoomView) -> bytes:
        """``MODE <room> b``'s answer: a member's."""
        if not any(m.name == self._own for m in view.members):
            raise Refused(Refusal.NOT_IN_ROOM, f"you are not in {view.name}")
        return encode_bans(view.name, view.bans, self.version >= VERSION_12)

    # -- output ----------------------------------------------------------

    def _sent(self, report: Report) -> None:
        if self.presence.batch:
            self.presence.catch_up(self)
        line = sent_line(report.delivered, report.offline, report.queued)
        if self.version >= VERSION_9:
            line = line[:-2] + f" {report.id} {wire.format_millis(report.at)}\r\n".encode()
        self._write(line)

    # -- hub.Participant -------------------------------------------------

    def receive(self, message: Message) -> None:
        if message.kind is Kind.ROOM and self.version < VERSION_11:
            return  # an older client knows no rooms
        if message.sender == self._own and self.version < VERSION_10 and not self._addressed(message):
            return  # its account's own message, sent from another session: version 10 shows those
        if self.presence.batch:
            self.presence.catch_up(self)
        one = message.kind is Kind.UNICAST  # no other receiver to share the line with
        if self.version < VERSION_9:
            self._write(encode_message(message) if one else encode_shared_message(message))
        else:
            self._write(encode_message_9(message) if one else encode_shared_message_9(message))

    def _addressed(self, message: Message) -> bool:
        """Whether ``message`` from this client's own name names it among its recipients."""
        return message.kind is not Kind.BROADCAST and self._own in message.recipients

    def notice(self, text: str) -> None:
        if self.presence.batch:
            self.presence.catch_up(self)
        self._write(wire.format_line("NOTICE", trailing=text))

    def drop(self, reason: str) -> None:
        """hub.Participant: this pass's presence news first (``ACCOUNT <name> unprotected``, when the
        operator removed its password: so the client forgets it), then ``BYE``."""
        if self.presence.batch:
            self.presence.catch_up(self)
        super().drop(reason)

    def read_moved(self, conversation: str, position: str) -> None:
        if self.version >= VERSION_10:
            if self.presence.batch:
                self.presence.catch_up(self)
            self._write(encode_read(conversation, position))

    def room_event(self, event: RoomEvent) -> None:
        if self.version >= VERSION_11:  # an older client knows no rooms
            if self.presence.batch:
                self.presence.catch_up(self)
            self._write(encode_event(event, self._own, self.version >= VERSION_12))

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        if self.presence.batch:
            self.presence.catch_up(self)
        version = self.version
        lines = b"".join(encode_delayed(m, version) for m in backlog)
        self._write(lines + wire.format_line("ENDDELAYED", str(waiting)))


class ServerFactory(Factory[ServerProtocol]):
    """Builds a :class:`ServerProtocol` for each connection to a ``--listen`` endpoint."""

    noisy = False

    def __init__(self, clients: Clients, presence: Presence) -> None:
        self.clients = clients
        self.presence = presence

    def buildProtocol(self, addr: IAddress | None) -> ServerProtocol:
        return ServerProtocol(self.clients, self.presence)
