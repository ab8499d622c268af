"""twisted.cred's parts for a login: the credentials, the checker and the realm."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import cast

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ICredentials
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.cred.portal import IRealm
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, Interface, implementer

from msgsvc.auth.hashing import Hashing
from msgsvc.auth.store import AccountStore
from msgsvc.hub.contracts import IUser, Participant, Refused
from msgsvc.hub.core import Hub
from msgsvc.hub.rules import check_password_rules
from msgsvc.hub.user import User


class ILogin(ICredentials):
    """A username, with its password or without, as the client gave them (text, not bytes)."""

    name = Attribute("The username.")
    password = Attribute("The password, or None.")


@dataclass(frozen=True)
class FirstPassword:
    """A password given for a name that had none, as the rules made it, and its hash."""

    password: str
    hash: str


@implementer(ILogin)
@dataclass
class Login:
    """``first``: set by the checker for a name without a password, stored once the name is claimed
    for the login (None again then)."""

    name: str
    password: str | None
    first: FirstPassword | None = None


class AuthRequired(UnauthorizedLogin):
    """The name needs a password and none was given."""


class Abandoned(LoginFailed):
    """The client left before it could be brought online."""


class NotHeld(LoginFailed):
    """The hub would not hold the name (taken, or the server full): ``error`` says why, and the hub
    has told its observers."""

    def __init__(self, error: Refused) -> None:
        super().__init__(error.text)
        self.error = error


@dataclass
class Mind:
    """Whom the realm brings online: ``participant``, connected from ``peer`` (counted by the per-address
    bounds as ``host``), logging in with ``login``.

    ``user``: the name is held for it already, by this user; else the realm
    holds it once the checker has passed, unless the login has ended
    (``gone``) meanwhile.
    """

    participant: Participant
    peer: str
    host: str
    login: Login
    user: User | None = None
    gone: bool = False


@implementer(ICredentialsChecker)
class AccountChecker:
    """Checks a name's password against its argon2id hash in the store.

    A name without a hash needs no password, unless ``require_password``;
    given one, it is hashed into the login's ``first``, which the realm has
    stored (:meth:`store_first`) once the name is claimed in the whole
    service: a login that loses the claim stores nothing.  The avatar id is
    the name as given, in UTF-8 (cred's avatar ids are bytes).
    """

    credentialInterfaces = (ILogin,)

    def __init__(self, store: AccountStore, hashing: Hashing, clock: IReactorTime, require_password: bool):
        self._store = store
        self._hashing = hashing
        self._clock = clock
        self._require_password = require_password

    def requestAvatarId(self, credentials: Login) -> Deferred[bytes | tuple[()]]:
        if credentials.password is None:  # the commonest login: a callback, no coroutine
            name = credentials.name
            return self._store.password_hash(name).addCallback(self._unprotected, name)
        return Deferred.fromCoroutine(self._check(credentials))

    def _unprotected(self, stored: str | None, name: str) -> bytes:
        """A login without a password: the name must have none either, nor the server require one."""
        if stored is not None:
            raise AuthRequired(f"{name} is protected: give its password")
        if self._require_password:
            raise AuthRequired("this server needs a password with every name")
        return name.encode("utf-8")

    async def _check(self, credentials: Login) -> bytes | tuple[()]:
        name, given = credentials.name, credentials.password
        assert given is not None  # requestAvatarId checks a login without a password
        stored = await self._store.password_hash(name)
        password = check_password_rules(given)
        if stored is None:
            credentials.first = FirstPassword(password, await self._hashing.hash(password))
        elif not await self._hashing.verify(stored, password):
            raise UnauthorizedLogin(f"wrong password for {name}")
        elif self._hashing.needs_rehash(stored):  # made with older parameters
            await self._store.set_password_hash(
                name, await self._hashing.hash(password), self._clock.seconds()
            )
        return name.encode("utf-8")

    def store_first(self, login: Login, first: FirstPassword) -> Deferred[None]:
        """Store ``login``'s ``first`` password, its name claimed now, unless the name has one already
        (someone claimed it and left since it was read): then it must be that one (else
        UnauthorizedLogin)."""
        return Deferred.fromCoroutine(self._store_first(login, first))

    async def _store_first(self, login: Login, first: FirstPassword) -> None:
        held = await self._store.set_first_password_hash(login.name, first.hash, self._clock.seconds())
        if held is not None and not await self._hashing.verify(held, first.password):
            raise UnauthorizedLogin(f"wrong password for {login.name}")
        login.first = None


@implementer(IRealm)
class HubRealm:
    """Brings the mind (a :class:`Mind`) online in the hub, holding its name first if need be; a first
    password is stored by the checker once the name is claimed, before it is online (a login with one
    never attaches to sessions online).  Its avatar is the hub's :class:`~msgsvc.hub.user.User`, and
    logging out is the user's."""

    def __init__(self, hub: Hub, checker: AccountChecker) -> None:
        self._hub = hub
        self._checker = checker

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: type[Interface]
    ) -> Deferred[tuple[type[Interface], object, Callable[[], None]]]:
        if IUser not in interfaces or not isinstance(avatarId, bytes):
            raise NotImplementedError("msgsvc's realm only has IUser avatars, for named users")
        # Called as a callback of the checker's result: what it raises fails the login.
        held = cast(Mind, mind)
        user = self._hold(avatarId, held)
        first = held.login.first
        ready = None if first is None else partial(self._checker.store_first, held.login, first)
        return self._hub.admit(user, ready).addCallback(self._admitted, user)

    @staticmethod
    def _admitted(admitted: User | None, user: User) -> tuple[type[Interface], object, Callable[[], None]]:
        if admitted is None:
            raise Abandoned(f"the client holding {user.name} left")
        return IUser, user, user.log_out

    def _hold(self, avatarId: bytes, mind: Mind) -> User:
        """The user holding the name for ``mind``: held already, or held now."""
        user = mind.user
        if user is None:  # a protected name, held (or attached to) now that its password is checked
            name = avatarId.decode("utf-8")
            if mind.gone:
                raise Abandoned(f"the client logging in as {name} left")
            try:
                attach = mind.login.first is None  # a name without a password is one session's
                user = mind.user = self._hub.register(
                    mind.participant, name, mind.peer, attach=attach, host=mind.host
                )
            except Refused as e:
                raise NotHeld(e) from None
        return user
