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

from functools import lru_cache

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from msgsvc import wire
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.session import Session
from msgsvc.hub.contracts import Kind, Message, Queued, Refused, Report
from msgsvc.hub.user import UNREGISTERED, not_registered
from msgsvc.wire import Code

WELCOME_TEXT = "welcome to msgsvc"


def encode_message(message: Message) -> bytes:
    """The ``MSG`` line for ``message``.

    Its parts need no checking: the names are registered usernames and the
    text came in as (part of) one line.
    """
    recipients = ",".join(message.recipients) or "*"
    return f"MSG {message.sender} {message.kind.value} {recipients} :{message.text}\r\n".encode()


#: A message to several is encoded once, however many receive it.
encode_shared_message = lru_cache(maxsize=64)(encode_message)


@lru_cache(maxsize=256)
def sent_line(delivered: int, offline: tuple[str, ...], queued: tuple[str, ...]) -> bytes:
    """``SENT``: the same few lines over and over ("SENT 1 - -" for every unicast)."""
    return wire.format_line("SENT", str(delivered), ",".join(offline) or "-", ",".join(queued) or "-")


def encode_delayed(message: Queued) -> bytes:
    """The ``DELAYED`` line for a message that waited: its id and when it was sent, then as ``MSG``."""
    recipients = ",".join(message.recipients)
    return (
        f"DELAYED {message.id} {wire.format_time(message.sent_at)} {message.sender} {message.kind}"
        f" {recipients} :{message.text}\r\n"
    ).encode()


class ServerProtocol(Session):
    """One client of the line protocol: reads commands, hands them to the hub, writes replies."""

    def __init__(self, clients: Clients, presence: Presence) -> None:
        super().__init__(clients)
        self.presence = presence

    # -- Session: the line protocol's way of saying things ----------------

    def command(self, line: bytes) -> None:
        parsed = wire.parse_line(line)
        if parsed is not None:
            self._dispatch(wire.parse_command(parsed, self.clients.limits))

    def pipelined(self, line: bytes) -> bool:
        return line.startswith((b"SEND ", b"BROADCAST "))  # answered by SENT or ERROR, in turn

    def send_error(self, code: Code, text: str) -> None:
        self._write(wire.format_line("ERROR", code.value, trailing=text))

    def farewell(self, reason: str) -> bytes:
        return wire.format_line("BYE", trailing=reason)

    def ping(self, token: str) -> bytes:
        return wire.format_line("PING", trailing=token)

    def welcome(self, name: str) -> None:
        self._write(wire.format_line("WELCOME", name, trailing=WELCOME_TEXT))
        self._write(self.presence.join(self))
        self.user.deliver_backlog()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
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
                    self.log_in(username, password)
            case wire.Password(password):
                self._set_password(self.user.name, password)
            case wire.Users():
                if self.user is UNREGISTERED:
                    not_registered()
                self._write(self.presence.user_log())
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
                self._refused(failure.value)
                return
            self.log.failure("could not set the password of {name}", failure, name=name)
            self.send_error(Code.SERVER_ERROR, "the server could not store the password; it is unchanged")

        done = self.clients.accounts.set_password(name, password, self.host)
        done.addCallbacks(protected, failed)
        done.addBoth(lambda _: self._release("password"))

    # -- output ----------------------------------------------------------

    def _sent(self, report: Report) -> None:
        self.presence.catch_up(self)
        self._write(sent_line(report.delivered, report.offline, report.queued))

    # -- hub.Participant -------------------------------------------------

    def receive(self, message: Message) -> None:
        self.presence.catch_up(self)
        one = message.kind is Kind.UNICAST  # no other receiver to share the line with
        self._write(encode_message(message) if one else encode_shared_message(message))

    def notice(self, text: str) -> None:
        self.presence.catch_up(self)
        self._write(wire.format_line("NOTICE", trailing=text))

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        self.presence.catch_up(self)
        self._write(
            b"".join(encode_delayed(m) for m in backlog) + wire.format_line("ENDDELAYED", str(waiting))
        )


class ServerFactory(Factory[ServerProtocol]):
    """Builds a :class:`ServerProtocol` for each connection to a ``--listen`` endpoint."""

    noisy = False

    def __init__(self, clients: Clients, presence: Presence) -> None:
        self.clients = clients
        self.presence = presence

    def buildProtocol(self, addr: IAddress | None) -> ServerProtocol:
        return ServerProtocol(self.clients, self.presence)
