"""The client side of the wire protocol: lines in, events out."""

from __future__ import annotations

from typing import Protocol

from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc import wire
from msgsvc.fronts.receiver import LineProtocol
from msgsvc.hub.contracts import Kind
from msgsvc.wire import ProtocolError


class ClientListener(Protocol):
    """What a :class:`ClientProtocol` reports, one method per event."""

    def welcomed(self, name: str) -> None: ...
    def user_log(self, users: list[tuple[str, bool, bool]]) -> None:
        """The username log: (name, online, protected) for each name."""

    def protected(self, name: str) -> None:
        """The server stored the password given with ``PASSWORD``."""

    def account(self, name: str, protected: bool) -> None:
        """``name`` gained a password, or lost it (the operator removed it)."""

    def joined(self, name: str) -> None: ...
    def left(self, name: str) -> None: ...

    def removed(self, name: str) -> None:
        """The operator removed ``name`` from the username log."""

    def message(self, sender: str, kind: Kind, recipients: tuple[str, ...], text: str) -> None: ...
    def delayed(
        self, message_id: int, sent_at: float, sender: str, kind: Kind, recipients: tuple[str, ...], text: str
    ) -> None:
        """A message that waited for this user while it was away (the same id may come again)."""

    def sent(self, delivered: int, offline: tuple[str, ...], queued: tuple[str, ...]) -> None:
        """The answer to a send: how many got it, who is offline, which of those get it later."""

    def error(self, code: str, text: str) -> None: ...
    def notice(self, text: str) -> None: ...
    def bye(self, reason: str) -> None: ...
    def disconnected(self, reason: str) -> None: ...


def _names(field: str) -> tuple[str, ...]:
    return () if field in ("-", "*") else tuple(field.split(","))


class ClientProtocol(LineProtocol):
    """Registers as ``username`` (with ``password``, if any) on connect, then reports server lines to ``listener``.

    Lines it cannot read are logged and skipped: a newer server may send
    verbs or parameters this client does not know.
    """

    log = Logger()
    MAX_LENGTH = 65536  # the server's lines can be longer than the ones it accepts

    def __init__(self, username: str, listener: ClientListener, password: str | None = None) -> None:
        self.username = username
        self.listener = listener
        self._password = password
        self._users: list[tuple[str, bool, bool]] = []
        self._last_delayed = 0  # the id of the last DELAYED line of the page

    def connectionMade(self) -> None:
        self._write("HELLO", self.username, trailing=self._password or None)
        self._password = None  # not kept longer than needed

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.listener.disconnected(reason.getErrorMessage())

    def lineTooLong(self) -> None:
        self.log.warn("skipped a line over {max} bytes from the server", max=self.MAX_LENGTH)

    def lineReceived(self, raw: bytes) -> None:
        try:
            line = wire.parse_line(raw)
            if line is not None:
                self._dispatch(line.verb, line.params)
        except (ProtocolError, ValueError, IndexError) as e:
            self.log.warn("skipped a line from the server ({error}): {line!r}", error=e, line=raw)

    def _dispatch(self, verb: str, params: tuple[str, ...]) -> None:
        listener = self.listener
        match verb:
            case "WELCOME":
                self._users = []
                listener.welcomed(params[0])
            case "USER":
                self._users.append((params[0], params[1] == "online", "protected" in params[2:]))
            case "ENDUSERS":
                users, self._users = self._users, []
                listener.user_log(users)
            case "JOINED":
                listener.joined(params[0])
            case "LEFT":
                listener.left(params[0])
            case "REMOVED":
                listener.removed(params[0])
            case "MSG":
                sender, kind, recipients, text = params[:4]
                listener.message(sender, Kind(kind), _names(recipients), text)
            case "PROTECTED":
                listener.protected(params[0])
            case "ACCOUNT":
                listener.account(params[0], params[1] == "protected")
            case "SENT":
                listener.sent(int(params[0]), _names(params[1]), _names(params[2]) if len(params) > 2 else ())
            case "DELAYED":
                message_id, when, sender, kind, recipients, text = params[:6]
                self._last_delayed = int(message_id)
                listener.delayed(
                    int(message_id), wire.parse_time(when), sender, Kind(kind), _names(recipients), text
                )
            case "ENDDELAYED":
                # Shown (listeners show at once): the server may drop them, and send the next page.
                if self._last_delayed:
                    self._write("ACK", str(self._last_delayed))
            case "ERROR":
                listener.error(params[0], params[-1] if len(params) > 1 else "")
            case "NOTICE":
                listener.notice(params[0])
            case "BYE":
                listener.bye(params[0] if params else "")
            case "PING":
                self._write("PONG", trailing=params[0] if params else None)

    def _write(self, verb: str, *params: str, trailing: str | None = None) -> None:
        self.transport.write(wire.format_line(verb, *params, trailing=trailing))

    # -- commands --------------------------------------------------------

    def send(self, recipients: tuple[str, ...], text: str) -> None:
        """Unicast (one name) or multicast (several)."""
        self._write("SEND", ",".join(recipients), trailing=text)

    def broadcast(self, text: str) -> None:
        self._write("BROADCAST", trailing=text)

    def set_password(self, password: str) -> None:
        """Protect this connection's name with ``password``, or change its password."""
        self._write("PASSWORD", trailing=password)

    def quit(self, reason: str = "") -> None:
        self._write("QUIT", trailing=reason or None)


class ClientFactory(Factory):
    """Builds the one :class:`ClientProtocol` of a connection attempt."""

    noisy = False

    def __init__(self, username: str, password: str | None, listener: ClientListener) -> None:
        self.username = username
        self.password = password
        self.listener = listener

    def buildProtocol(self, addr: object) -> ClientProtocol:
        protocol = ClientProtocol(self.username, self.listener, self.password)
        protocol.factory = self
        return protocol
