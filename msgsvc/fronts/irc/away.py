"""AWAY (RFC 2812, 305 and 306): an IRC nick's away message, which the hub keeps for the whole service
(:meth:`msgsvc.hub.core.Hub.set_away`, on every node) until it comes back or its last session on this
node leaves; its channels' members hear of it (IRCv3 ``away-notify``, :class:`~msgsvc.hub.events.AwayChanged`
in :mod:`msgsvc.fronts.irc.factory`), and whoever writes to it or asks WHOIS (301)."""

from __future__ import annotations

from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.wire import printable


class Away(IrcBase):
    """AWAY :message, and AWAY alone to come back."""

    def irc_AWAY(self, params: list[str]) -> None:
        message = printable(params[0]) if params else ""
        self.clients.hub.set_away(self.nick, message or None)
        if message:
            self.numeric(rfc.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self.numeric(rfc.RPL_UNAWAY, "You are no longer marked as being away")
