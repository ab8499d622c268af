"""The rules every front checks what a client says against (here, once): usernames and room names and
their case-insensitive keys, ban masks, passwords, a message's text and its recipients; and who enters a
room, which its store decides (:func:`admission`).  What breaks one is
:class:`~msgsvc.hub.contracts.Refused`, in no front's words."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from msgsvc.hub.contracts import (
    ROOM_BANS_MAX,
    Ban,
    Joining,
    Member,
    ModeChange,
    Refusal,
    Refused,
    RoomRecord,
)
from msgsvc.hub.globs import glob_match

USERNAME_MAX = 32
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_BYTES = 256
#: A username: 1-32 of ``A-Z a-z 0-9 _ . -``, a letter first (a regular expression, for the fast path too).
USERNAME_PATTERN = rf"[A-Za-z][A-Za-z0-9_.-]{{0,{USERNAME_MAX - 1}}}"
_USERNAME = re.compile(USERNAME_PATTERN)


def username_key(name: str) -> str:
    """The case-insensitive identity of a username."""
    return name.casefold()


def is_valid_username(name: str) -> bool:
    """Whether ``name`` may be registered: 1-32 of ``A-Z a-z 0-9 _ . -``, a letter first."""
    return _USERNAME.fullmatch(name) is not None


def room_key(name: str) -> str:
    """The case-insensitive identity of a room name (``#dev`` for ``#Dev``)."""
    return name.casefold()


def is_valid_room(name: str) -> bool:
    """Whether ``name`` is a room name: ``#`` and a valid username (1-32 of ``A-Z a-z 0-9 _ . -``, a
    letter first)."""
    return name[:1] == "#" and _USERNAME.fullmatch(name, 1) is not None


def room_name(name: str) -> str:
    """``name`` if it is a room name, or Refused(ROOM_INVALID)."""
    if not is_valid_room(name):
        raise Refused(
            Refusal.ROOM_INVALID,
            f"not a room name: {name!r} (# and 1-32 letters, digits, '_', '.' or '-', a letter first)",
        )
    return name


#: Characters a ban mask may be: at most, and (control characters, spaces, commas) never.
MASK_MAX = 128
_NOT_IN_MASK = re.compile(r"[\x00-\x20,\x7f]")
#: The host every user's mask shows (IRC shows no one's address); a ban's host matches it or the address.
SHOWN_HOST = "msgsvc"
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ban_mask(text: str) -> str | None:
    """``text`` as a whole ban mask ``nick!user@host``, as IRC servers complete one: ``bob`` is
    ``bob!*@*``, ``bob!b`` ``bob!b@*``, ``b@host`` ``*!b@host``, an empty part ``*``; None if it is
    none (too long, a space, a control character or a comma, a ``!`` or ``@`` too many)."""
    if not text or len(text) > MASK_MAX or _NOT_IN_MASK.search(text):
        return None
    nick, bang, rest = text.partition("!")
    if not bang:
        nick, rest = ("*", text) if "@" in text else (text, "")
    user, _, host = rest.partition("@")
    if "!" in rest or "@" in host:
        return None
    return f"{nick or '*'}!{user or '*'}@{host or '*'}"


def mask_key(mask: str) -> str:
    """The case-insensitive identity of a ban mask, as IRC's ``CASEMAPPING=ascii`` folds it."""
    return mask.translate(_ASCII_FOLD)


def oldest_first(bans: Iterable[Ban]) -> tuple[Ban, ...]:
    """``bans`` as a room shows them and its store answers them: oldest first, then by mask key."""
    return tuple(sorted(bans, key=lambda ban: (ban.at, mask_key(ban.mask))))


def mask_matches(key: str, identity: str) -> bool:
    """Whether the mask of ``key`` (:func:`mask_key`) matches ``identity`` (``nick!user@host``, folded
    by :func:`mask_key` too): ``*`` any characters, ``?`` one; in O(len(key) * len(identity)) steps."""
    return glob_match(key, identity)


def admission(
    joining: Joining,
    room: RoomRecord,
    invited: bool,
    protected: bool,
    members: int,
    rooms: int,
    limit: int,
    most: int,
) -> Refusal | Member:
    """Whether ``joining`` enters ``room`` (its founder, flags, key, +l and bans as its store keeps them; its
    ``members`` counted), ``invited`` telling whether an operator's invitation of the name to it is kept,
    ``protected`` whether the name has a password and ``rooms`` how many rooms it is in: the member to keep
    (an operator if it is the room's protected founder), or the refusal, in this order: BANNED (a ban matches
    one of its masks, unless it is invited), INVITE_ONLY (+i, unless invited or the protected founder),
    BAD_KEY (+k not given, unless the protected founder), ROOM_FULL (+l reached, unless the protected founder;
    or ``limit``), TOO_MANY_ROOMS (``most``).  What every store decides a join by (Redis's ``ENTER`` script
    says it in Lua)."""
    name = username_key(joining.name)
    founder = protected and room.founder is not None and username_key(room.founder) == name
    if not invited and any(mask_matches(key, mask) for key in room.bans for mask in joining.masks):
        return Refusal.BANNED
    if "i" in room.modes and not founder and not invited:
        return Refusal.INVITE_ONLY
    if room.key is not None and joining.key != room.key and not founder:
        return Refusal.BAD_KEY
    if members >= (limit if room.limit is None or founder else min(room.limit, limit)):
        return Refusal.ROOM_FULL
    if rooms >= most:
        return Refusal.TOO_MANY_ROOMS
    return Member(joining.name, op=founder, since=joining.since)


def invites_anew(pending: bool | None, op: bool) -> bool:
    """Whether a store keeps an invitation (``op``: an operator's) where ``pending`` is (whether an
    operator's; None: none): not where one that does as much is
    (:meth:`~msgsvc.hub.contracts.RoomStore.invite`)."""
    return pending is None or (op and not pending)


def bans_overflow(bans: Iterable[str], changes: Sequence[ModeChange]) -> bool:
    """Whether ``changes``, in turn, ban a mask past :data:`ROOM_BANS_MAX` in a room whose bans are the
    mask keys ``bans`` (a ``+b`` of a mask not banned while it holds that many; a room kept with more
    takes none till under it): what a store refuses a change of the modes for (BAN_LIST_FULL), as the hub
    does (Redis's ``SET_MODES`` says it in Lua)."""
    banned = set(bans)
    for change, arg in changes:
        if change[1] == "b" and arg is not None:
            key = mask_key(arg)
            if change[0] == "-":
                banned.discard(key)
            elif key not in banned:
                if len(banned) >= ROOM_BANS_MAX:
                    return True
                banned.add(key)
    return False


def check_password_rules(password: str) -> str:
    """``password`` in Unicode normal form C, or Refused(PASSWORD_INVALID) saying what is wrong."""
    password = unicodedata.normalize("NFC", password)
    if len(password) < PASSWORD_MIN_CHARS:
        raise Refused(Refusal.PASSWORD_INVALID, f"a password needs at least {PASSWORD_MIN_CHARS} characters")
    if len(password.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise Refused(
            Refusal.PASSWORD_INVALID, f"a password may hold at most {PASSWORD_MAX_BYTES} bytes of UTF-8"
        )
    return password


def message_text(text: str, limit: int) -> str:
    """``text`` if it may be sent, or Refused: TEXT_EMPTY (nothing but white space), TEXT_TOO_LONG
    (over ``limit`` bytes of UTF-8)."""
    if not text or text.isspace():
        raise Refused(Refusal.TEXT_EMPTY, "empty message text")
    size = len(text.encode("utf-8"))
    if size > limit:
        raise Refused(Refusal.TEXT_TOO_LONG, f"message text is {size} bytes; the limit is {limit}")
    return text


def recipient_names(names: Sequence[str], limit: int) -> tuple[str, ...]:
    """``names``, each once however it is spelled (as first spelled), or Refused: RECIPIENT_INVALID
    for the first that is no username, TOO_MANY_RECIPIENTS past ``limit`` of them."""
    if len(names) == 1 and is_valid_username(names[0]):  # a unicast
        return (names[0],)
    distinct: dict[str, str] = {}
    for name in names:
        if not is_valid_username(name):
            raise Refused(Refusal.RECIPIENT_INVALID, f"not a valid recipient name: {name!r}")
        distinct.setdefault(username_key(name), name)
    if len(distinct) > limit:
        raise Refused(Refusal.TOO_MANY_RECIPIENTS, f"{len(distinct)} recipients; the limit is {limit}")
    return tuple(distinct.values())
