"""AWAY (RFC 2812, 305 and 306) and IRCv3 ``away-notify``: an IRC nick's away message, which its
channels' members hear of, and whoever writes to it or asks WHOIS (301).  It is the IRC front's own:
the hub and other fronts know only who is online."""

from __future__ import annotations

from twisted.words.protocols import irc as rfc

from msgsvc.fronts.irc.base import IrcBase
from msgsvc.fronts.irc.wire import printable


class Away(IrcBase):
    """AWAY :message, and AWAY alone to come back."""

    def irc_AWAY(self, params: list[str]) -> None:
        message = printable(params[0]) if params else ""
        if message:
            self.factory.away[self.nick_key] = message
            self.numeric(rfc.RPL_NOWAWAY, "You have been marked as being away")
        else:
            self.factory.away.pop(self.nick_key, None)
            self.numeric(rfc.RPL_UNAWAY, "You are no longer marked as being away")
        notice = self.factory.away_notice(self.nick, message)
        for session in self.factory.neighbours(self.nick_key):
            if "away-notify" in session.caps:
                session._send(notice)
