"""An IRC client's session, assembled from its concerns over :class:`~msgsvc.fronts.session.Session`;
what is left here is the connection's life and IRC's way of saying what every front says."""

from __future__ import annotations

from collections import deque

from twisted.python.failure import Failure
from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.away import Away
from msgsvc.fronts.irc.history import History
from msgsvc.fronts.irc.markers import ReadMarker
from msgsvc.fronts.irc.messaging import Messaging
from msgsvc.fronts.irc.queries import Queries
from msgsvc.fronts.irc.registration import Registration
from msgsvc.fronts.irc.rooms import Rooms
from msgsvc.fronts.irc.wire import Command, line, parse, printable
from msgsvc.fronts.session import Limit
from msgsvc.hub.contracts import Refusal
from msgsvc.hub.events import ClientError
from msgsvc.wire import Code, ProtocolError, ascii_int


class IrcSession(Registration, Rooms, Messaging, Away, ReadMarker, Queries, History):
    """One IRC client."""

    front = "irc"

    def connectionMade(self) -> None:
        self.caps = set()
        self.monitoring = {}
        self.rooms = {}
        self._early = []
        self._listings = deque()
        super().connectionMade()
        if not self.transport.disconnecting:
            limit = self.clients.limits.hello_timeout
            self._deadline = self.clients.clock.callLater(limit, self._registration_expired)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        super().connectionLost(reason)  # #all hears it quit, under the mask it joined with
        self.factory.forget(self)

    def command(self, raw: bytes) -> None:
        try:
            parsed = parse(raw)
        except ProtocolError as e:
            if e.code is Code.LINE_TOO_LONG:  # its tags
                self.refuse(Limit.LINE_TOO_LONG, e.text)
            else:  # not UTF-8
                self.clients.hub.announce(ClientError(self.peer, e.code.value, e.text))
                self._write(line("FAIL", "*", "INVALID_UTF8", e.text, prefix=self.factory.server_name))
            return
        if parsed is None:
            return
        self.line_tags = parsed.tags
        self._reply_to(parsed.tags.get("label") if self._registered else None, lambda: self._run(parsed))

    def _run(self, parsed: Command) -> None:
        handler = getattr(self, f"irc_{parsed.command}", None)
        if handler is None and self._registered:
            self.numeric(rfc.ERR_UNKNOWNCOMMAND, parsed.command, "Unknown command")
            return
        if handler is None or not self._registered and parsed.command not in _BEFORE_REGISTRATION:
            self.numeric(rfc.ERR_NOTREGISTERED, "You have not registered")
            return
        handler(parsed.params)

    def refuse(self, reason: Refusal | Limit, text: str) -> None:
        self.clients.hub.announce(ClientError(self.peer, reason.name, text))
        self.say_refused(reason, text)

    def farewell(self, reason: str) -> bytes:
        return line("ERROR", f"Closing Link: {self.peer} ({reason})")

    def ping(self, token: str) -> bytes:
        return line("PING", token)

    def irc_PING(self, params: list[str]) -> None:
        if not params:
            self.numeric(rfc.ERR_NEEDMOREPARAMS, "PING", "Not enough parameters")
            return
        server = self.factory.server_name
        self._write(line("PONG", server, params[-1], prefix=server))

    def irc_PONG(self, params: list[str]) -> None:
        token = params[-1] if params else ""
        up_to = ascii_int(token[4:]) if token.startswith("ack-") else None
        if up_to is not None and self._registered:
            self.user.acknowledge(up_to)

    def irc_QUIT(self, params: list[str]) -> None:
        reason = printable(params[0]) if params else ""
        self.quit(reason, f"Quit: {reason}" if reason else "Quit")


#: What a client may send before it is registered.
_BEFORE_REGISTRATION = {"CAP", "AUTHENTICATE", "PASS", "NICK", "USER", "PING", "PONG", "QUIT"}
