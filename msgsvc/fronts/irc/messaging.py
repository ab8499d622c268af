"""Messages on IRC: PRIVMSG and NOTICE sent, and messages and the backlog delivered."""

from __future__ import annotations

from collections.abc import Callable

from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase, run_now
from msgsvc.fronts.irc.numerics import SEND_REFUSED
from msgsvc.fronts.irc.tags import client_tags
from msgsvc.fronts.tally import ROOM
from msgsvc.fronts.irc.wire import addressed, clean_text, line, sent_when, text_lines
from msgsvc.hub.contracts import Kind, Message, Queued, Refused, Report
from msgsvc.hub.rules import is_valid_username, message_text, room_key, username_key
from msgsvc.wire import Code, ProtocolError


class Messaging(IrcBase):
    """PRIVMSG and NOTICE to nicks (a unicast or a multicast), #all (a broadcast) or a room, and their
    delivery."""

    def receive(self, message: Message) -> None:
        tags = self.message_tags(message.id, message.at, self.factory.relayed(message), message.sender)
        sender, me = self.factory.mask(message.sender), self._me()
        # An IRC user's line (of this server: others' fronts are not known here) comes as one line.
        whole = username_key(message.sender) in self.factory.idents
        if message.kind is not Kind.BROADCAST and username_key(message.sender) == username_key(me):
            # Sent by another session of this account: to its recipients, as its echo shows it there.
            self._send(text_lines("PRIVMSG", ",".join(message.recipients), message.text, sender, tags, whole))
        elif message.kind is Kind.ROOM:
            room = message.recipients[0]
            shown = self.rooms.get(room_key(room), room)
            self._send(text_lines("PRIVMSG", shown, message.text, sender, tags, whole))
        elif message.kind is Kind.UNICAST:
            self._send(text_lines("PRIVMSG", me, message.text, sender, tags, whole))
        elif message.kind is not Kind.BROADCAST:  # the group before the text: split, never cut
            self._send(text_lines("PRIVMSG", me, addressed(message, me), sender, tags))
        elif self in self.factory.members:
            self._send(text_lines("PRIVMSG", self.channel, message.text, sender, tags, whole))
        else:  # not in #all: a broadcast still reaches it, as it reaches every msgsvc user
            self._send(text_lines("NOTICE", me, f"(to everyone) {message.text}", sender, tags))

    def notice(self, text: str) -> None:
        self._send(line("NOTICE", self._me(), f"Server notice: {text}", prefix=self.factory.server_name))

    def deliver(self, backlog: list[Queued], waiting: int) -> None:
        stamped, now = "server-time" in self.caps, self.clients.clock.seconds()
        out = []
        for message in backlog:
            text = addressed(message, self.nick)
            tags = self.message_tags(message.message_id, message.sent_at)
            if not stamped:
                text = f"{sent_when(message.sent_at, now)} {text}"
            out.append(text_lines("PRIVMSG", self.nick, text, self.factory.mask(message.sender), tags))
        out.append(line("PING", f"ack-{backlog[-1].id}"))  # its PONG acknowledges the page
        self._send(b"".join(out))

    def irc_PRIVMSG(self, params: list[str]) -> None:
        self._message("PRIVMSG", params)

    def irc_NOTICE(self, params: list[str]) -> None:
        self._message("NOTICE", params)

    def _message(self, verb: str, params: list[str]) -> None:
        """PRIVMSG or NOTICE: to nicks (a unicast or a multicast), or to #all (a broadcast).

        A NOTICE is never answered with an error, as RFC 2812 asks.
        """
        quiet = verb == "NOTICE"
        if not params or not params[0]:
            if not quiet:
                self.numeric(rfc.ERR_NORECIPIENT, f"No recipient given ({verb})")
            return
        try:
            text = message_text(
                clean_text(self._ctcp(params[1])) if len(params) > 1 else "", self.clients.limits.max_text
            )
        except ProtocolError as e:
            if not quiet:
                self.server_notice(f"not sent: {e.text}")
            return
        except Refused as e:
            if not quiet:
                self.say_refused(e.refusal, e.text)
            return
        targets = self._targets(params[0], self.clients.limits.max_recipients, quiet)
        if targets is None:
            return
        if not targets:  # commas only
            if not quiet:
                self.numeric(rfc.ERR_NORECIPIENT, f"No recipient given ({verb})")
            return
        names: list[str] = []
        client = client_tags(self.line_tags) if self.line_tags else ""
        for target in targets:
            if self._is_channel(target):
                if self not in self.factory.members:
                    if not quiet:
                        self._not_joined()
                    continue
                echo = self._echo(verb, self.channel, text, client)
                with self.factory.relay(self.nick_key, client):
                    self._send_message(None, text, echo or _unanswered, quiet)
            elif target.startswith("#"):
                self._to_room(verb, target, text, client, quiet)
            elif not is_valid_username(target):
                if not quiet:
                    self.numeric(rfc.ERR_NOSUCHNICK, target, "No such nick/channel")
            else:
                names.append(target)
        if not names:
            return
        if not quiet:
            for name in names:
                away = self.factory.away_message(name)
                if away is not None:
                    self.numeric(rfc.RPL_AWAY, name, away)
        answer: Callable[[Report], None] = _unanswered if quiet else self._sent
        echo = self._echo(verb, ",".join(names), text, client)
        if echo is not None:
            answer = _echoed(echo, answer)
        with self.factory.relay(self.nick_key, client):
            self._send_message(names, text, answer, quiet)

    def _send_message(
        self, names: list[str] | None, text: str, answer: Callable[[Report], None], quiet: bool
    ) -> None:
        """Send through the session (None: to everyone); ``answer`` its report, or say its refusal (not a
        NOTICE's), either way as a part of the line's reply (labeled-response) when it comes."""
        finish: Callable[[Callable[[], None]], None] = self._later(run_now)

        def refused(no: Refused) -> None:
            finish((lambda: None) if quiet else lambda: self.refuse(no.refusal, no.text))

        self.send_to(names, text, lambda report: finish(lambda: answer(report)), refused)

    def _to_room(self, verb: str, target: str, text: str, client: str, quiet: bool) -> None:
        """A message to a room: the hub sends it to its members; 404 if +n, a ban or +m keeps it out."""
        echo = self._echo(verb, self.rooms.get(room_key(target), target), text, client)

        def refused(no: Refused) -> None:
            if quiet:
                return
            if no.refusal in SEND_REFUSED:
                self.numeric(rfc.ERR_CANNOTSENDTOCHAN, target, f"Cannot send to channel: {no.text}")
            else:
                self._refused(target)(no)

        with self.factory.relay(self.nick_key, client):
            self._ask(
                lambda: self.tally.count(ROOM, self.user.send_room(target, text)), echo or _unanswered, refused
            )

    def _echo(self, verb: str, target: str, text: str, client: str) -> Callable[[Report], None] | None:
        """With ``echo-message``: what shows the client its message as its recipients got it (with its
        time, id and client-only tags, as it asked for them); None without."""
        if "echo-message" not in self.caps:
            return None

        def echo(report: Report) -> None:
            tags = self.message_tags(report.id, report.at, client)
            self._write(text_lines(verb, target, text, self.factory.mask(self.nick), tags, whole=True))

        return echo

    def irc_TAGMSG(self, params: list[str]) -> None:
        """IRCv3 message-tags: tags alone, to nicks or #all, for those of this server's IRC clients
        that asked for ``message-tags`` (the hub carries text, and no other front takes tags); to one's
        own nick, delivered to the sending session too."""
        if not params or not params[0]:
            self.numeric(rfc.ERR_NORECIPIENT, "No recipient given (TAGMSG)")
            return
        targets = self._targets(params[0], self.clients.limits.max_recipients)
        client = client_tags(self.line_tags)
        message_id, at = self.factory.ids.make()
        for target in targets or ():
            if self._is_channel(target):
                if self not in self.factory.members:
                    self._not_joined()
                    continue
                receivers = [m for m in self.factory.members if m is not self]
            else:
                sessions = self.factory.sessions_of(username_key(target))
                if not sessions:
                    self.numeric(
                        rfc.ERR_NOSUCHNICK, target, "No such nick/channel (no IRC client of that name here)"
                    )
                    continue
                target = sessions[0].nick
                # Each IRC session of the nick (the sender's own too, if it is the sender's: a delivery as
                # well as the echo, as a PRIVMSG), and of the sender's (as a PRIVMSG reaches them).
                mine = [s for s in self.factory.sessions_of(self.nick_key) if s not in sessions and s is not self]
                receivers = sessions + mine
            sender = self.factory.mask(self.nick)
            for receiver in receivers:
                if "message-tags" in receiver.caps:
                    tags = receiver.message_tags(message_id, at, client)
                    receiver._send(line("TAGMSG", target, prefix=sender, tags=tags))
            if "echo-message" in self.caps:
                tags = self.message_tags(message_id, at, client)
                self._write(line("TAGMSG", target, prefix=sender, tags=tags))

    def _not_joined(self) -> None:
        self.numeric(
            rfc.ERR_CANNOTSENDTOCHAN, self.channel, f"Cannot send to channel: JOIN {self.channel} first"
        )

    def _ctcp(self, text: str) -> str:
        """A CTCP ACTION (``/me waves``) as the text "* nick waves"; other CTCP is not carried."""
        if not text.startswith("\x01"):
            return text
        command, _, argument = text.strip("\x01").partition(" ")
        if command.upper() != "ACTION":
            raise ProtocolError(Code.BAD_SYNTAX, f"msgsvc does not carry CTCP {command.upper()}")
        return f"* {self.nick} {argument}"

    def _sent(self, report: Report) -> None:
        for name in report.offline:
            if name in report.queued:
                self.server_notice(f"{name} is away: the message waits for them")
            else:
                self.numeric(rfc.ERR_NOSUCHNICK, name, "No such nick/channel (not online)")


def _echoed(echo: Callable[[Report], None], answer: Callable[[Report], None]) -> Callable[[Report], None]:
    """``answer``, after ``echo`` if anyone got the message or will (else it is only answered)."""

    def both(report: Report) -> None:
        if report.delivered or report.queued:
            echo(report)
        answer(report)

    return both


def _unanswered(report: Report) -> None:
    """A NOTICE's report: never answered, as RFC 2812 asks."""
