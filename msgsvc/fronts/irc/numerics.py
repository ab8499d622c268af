"""The hub's refusals of room operations in IRC's numerics: one table (docs/irc.rst "Channels")."""

from __future__ import annotations

from twisted.words.protocols import irc as rfc

from msgsvc.hub.contracts import Refusal

ERR_BADCHANMASK = "476"
ERR_UNAVAILRESOURCE = "437"

#: A room refusal's numeric, whether the nick it is about comes before the channel (441, 443), and
#: its text.  ``NOT_IN_ROOM``, ``BANNED`` and ``MODERATED`` on a message are 404 (:data:`SEND_REFUSED`).
ROOM_REFUSALS: dict[Refusal, tuple[str, bool, str]] = {
    Refusal.ROOM_INVALID: (ERR_BADCHANMASK, False, "Bad Channel Mask"),
    Refusal.NO_SUCH_ROOM: (rfc.ERR_NOSUCHCHANNEL, False, "No such channel"),
    Refusal.NOT_IN_ROOM: (rfc.ERR_NOTONCHANNEL, False, "You're not on that channel"),
    Refusal.USER_NOT_IN_ROOM: (rfc.ERR_USERNOTINCHANNEL, True, "They aren't on that channel"),
    Refusal.ALREADY_IN_ROOM: (rfc.ERR_USERONCHANNEL, True, "is already on channel"),
    Refusal.NOT_ROOM_OPERATOR: (rfc.ERR_CHANOPRIVSNEEDED, False, "You're not channel operator"),
    Refusal.INVITE_ONLY: (rfc.ERR_INVITEONLYCHAN, False, "Cannot join channel (+i)"),
    Refusal.BANNED: (rfc.ERR_BANNEDFROMCHAN, False, "Cannot join channel (+b)"),
    Refusal.BAD_KEY: (rfc.ERR_BADCHANNELKEY, False, "Cannot join channel (+k)"),
    Refusal.ROOM_FULL: (rfc.ERR_CHANNELISFULL, False, "Cannot join channel (+l)"),
    Refusal.TOO_MANY_ROOMS: (rfc.ERR_TOOMANYCHANNELS, False, "You have joined too many channels"),
    Refusal.RATE_LIMITED: (ERR_UNAVAILRESOURCE, False, "Too many new channels from your address: try later"),
    Refusal.UNAVAILABLE: (ERR_UNAVAILRESOURCE, False, "Channel is temporarily unavailable"),
}
#: The refusals of a message to a room that are 404 (cannot send to channel): +n, +b, +m.
SEND_REFUSED = {Refusal.NOT_IN_ROOM, Refusal.BANNED, Refusal.MODERATED}


def room_refusal(refusal: Refusal, room: str, nick: str | None, text: str) -> tuple[str, ...] | None:
    """The numeric and parameters (after the client's nick) that say ``refusal`` of an operation on
    ``room`` (about ``nick``, for a KICK, INVITE or MODE o/v); None if the table has none (the front
    says it as a notice).  The hub's ``text`` follows the IRC one."""
    entry = ROOM_REFUSALS.get(refusal)
    if entry is None:
        return None
    numeric, about_nick, reason = entry
    said = f"{reason}: {text}" if text else reason
    return (numeric, nick or "*", room, said) if about_nick else (numeric, room, said)
