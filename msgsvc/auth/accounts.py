"""The accounts every front logs in through: logins, passwords and the operator's resets."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from twisted.application.service import Service
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from msgsvc.auth.cred import Abandoned, AccountChecker, AuthRequired, HubRealm, Login, Mind, NotHeld
from msgsvc.auth.hashing import Hashing
from msgsvc.auth.store import AccountStore, Reset, StillOnline
from msgsvc.auth.throttle import LoginThrottle
from msgsvc.hub.contracts import IUser, Participant, Refusal, Refused, UserView
from msgsvc.hub.core import Hub
from msgsvc.hub.events import RegistrationRefused
from msgsvc.hub.rules import check_password_rules, username_key
from msgsvc.ratelimit import AddressRate, Rate
from msgsvc.state import StoreError

_T = TypeVar("_T")

#: A login's user, which its front acts through, and cred's logout for it, which the front calls
#: when the connection ends.
LoggedIn = tuple[IUser, Callable[[], None]]

#: The defaults for new names and new accounts: an office behind one address registering on its
#: first day does not meet them; a script making names does (28,800 a day, not 3.5 million).
NEW_NAMES = NEW_ACCOUNTS = Rate(per_minute=6.0, burst=20)
#: Password hashes (a login to a protected name, PASSWORD) one address may cost: each holds a hashing
#: thread ~20 ms, and an argon2 hash made on every line would keep every login waiting.
PASSWORD_HASHES = Rate(per_minute=60.0, burst=100)


def _shielded(work: Deferred[_T]) -> Deferred[_T]:
    """A Deferred for ``work``'s result whose cancelling leaves ``work`` to finish."""
    result: Deferred[_T] = Deferred()
    work.chainDeferred(result)
    return result


class Accounts(Service):
    """Logins, passwords and resets for every front, over one :class:`Portal`.

    As a service it also picks up resets made by another process
    (``python -m msgsvc.admin``) within :attr:`WATCH_INTERVAL` seconds.
    """

    log = Logger()
    WATCH_INTERVAL = 2.0

    def __init__(
        self,
        hub: Hub,
        store: AccountStore,
        hashing: Hashing,
        clock: IReactorTime,
        require_password: bool,
        new_names: Rate = NEW_NAMES,
        new_accounts: Rate = NEW_ACCOUNTS,
        password_hashes: Rate = PASSWORD_HASHES,
    ) -> None:
        self._hub = hub
        self._store = store
        self._hashing = hashing
        self._clock = clock
        checker = AccountChecker(store, hashing, clock, require_password)
        self.portal = Portal(HubRealm(hub, checker), [checker])
        self.throttle = LoginThrottle(clock)
        self.waits = 0  # logins made to wait (LoginThrottle), since the server started
        self.new_names = AddressRate(new_names, clock)  # names added to the log, by address
        self.new_accounts = AddressRate(new_accounts, clock)  # names given their first password
        self.password_hashes = AddressRate(password_hashes, clock)  # passwords hashed or checked
        self._last_reset = 0  # the latest reset seen
        self._watching_failed = False  # logged once until the store answers again
        self._watch = LoopingCall(self._pick_up_resets)
        self._watch.clock = clock

    def watch_resets(self, last_reset: int) -> None:
        """Pick up the resets after ``last_reset`` (as the state was read), from now on."""
        self._last_reset = max(last_reset, self._last_reset)
        if self.running and not self._watch.running:
            self._watch.start(self.WATCH_INTERVAL, now=False)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._watch.running:
            self._watch.stop()

    # -- login ---------------------------------------------------------------

    def login(
        self, participant: Participant, name: str, password: str | None, peer: str, host: str
    ) -> Deferred[LoggedIn | None]:
        """Register ``participant`` as ``name``, checking ``password`` if the name is protected.

        Fires with the user online (its name as the log spells it), which the
        front acts through from then on, and its logout, or None if the client left;
        fails with :class:`Refused` (the name is invalid or taken, the
        password missing, wrong or against the rules; UNAVAILABLE if the
        name could not be recorded, which is logged here).
        Cancelling it (the client left) stops a throttled attempt from being checked.
        """
        known = self._hub.user(name)
        # A name known to be protected is held only once its password has been checked (by the realm),
        # online or not: a login without its password, or with a wrong one, never holds it, and so can
        # never turn its owner away (USERNAME_TAKEN) while it is checked; with it, it attaches one more
        # session to the name if online.  Any other name is held first: a password given with it claims
        # it, and nobody else may meanwhile.
        owned = known is not None and known.protected
        if owned and password is not None:  # a password that may be guessed: throttled
            login = Deferred.fromCoroutine(self._throttled(participant, name, password, peer, host, known))
        else:  # every other login (registration churn): callbacks, no coroutine
            login = self._hold_and_check(participant, name, password, peer, host, known, owned, False)
        return login.addErrback(self._unavailable, peer)

    def _unavailable(self, failure: Failure, peer: str) -> Failure:
        """A login that failed for want of the state (or of the server): Refused(UNAVAILABLE), logged."""
        if failure.check(Refused, CancelledError):
            return failure
        if failure.check(StoreError):  # its disk or its Redis failing or away: it is logged there
            self.log.warn("could not register {peer}: {why}", peer=peer, why=failure.value)
        else:
            self.log.failure("could not register {peer}", failure, peer=peer)
        raise Refused(Refusal.UNAVAILABLE, "the server could not record the username; try again later")

    async def _throttled(
        self, participant: Participant, name: str, password: str, peer: str, host: str, known: UserView | None
    ) -> LoggedIn | None:
        """A login with the password of a protected name, within the address's rate of password checks,
        after the throttle's wait for the name and the address."""
        key = username_key(name)
        try:
            self._allow(self.password_hashes, host, "password checks")
        except Refused as e:
            raise self._refused(name, peer, e) from None
        wait = self.throttle.wait(key, host)
        self.throttle.begin(key, host)  # until it is answered it counts as a failure for the next
        try:
            if wait:
                self.waits += 1
                self.log.info(
                    "login for {name} from {peer} waits {wait:g} s", name=name, peer=peer, wait=wait
                )
                await deferLater(self._clock, wait)
            return await self._hold_and_check(participant, name, password, peer, host, known, True, True)
        finally:
            self.throttle.end(key, host)

    def _hold_and_check(
        self,
        participant: Participant,
        name: str,
        password: str | None,
        peer: str,
        host: str,
        known: UserView | None,
        owned: bool,
        guessable: bool,
    ) -> Deferred[LoggedIn | None]:
        mind = Mind(participant, peer, host, Login(name, password))
        counted: list[AddressRate] = []

        def undo(failure: Failure) -> Failure:
            mind.gone = True
            if mind.user is not None:  # refused or failed: the name is not held for it
                mind.user.log_out()
            if not failure.check(CancelledError):  # a client gone may leave its name being written
                for rate in counted:  # nothing was made: a retry after SERVER_ERROR must not run out
                    rate.give_back(host)
            return failure

        try:
            if not owned:
                mind.user = self._hub.register(participant, name, peer, host=host)
            if mind.user is not None:
                counted = self._count_new(name, known, password, peer, host)
        except Exception:  # refused (or failed) as the login's Deferred, as everything after
            return fail().addErrback(undo)
        return _shielded(self._check(mind, name, password, host, guessable)).addErrback(undo)

    def _check(
        self, mind: Mind, name: str, password: str | None, host: str, guessable: bool
    ) -> Deferred[LoggedIn | None]:
        """Log ``mind`` in through the portal: the user and its logout, None if the client left, or
        :class:`Refused`.  Callbacks, not a coroutine: every registration comes this way."""
        return self.portal.login(mind.login, mind, IUser).addCallbacks(
            self._checked,
            self._check_failed,
            callbackArgs=(name, password, guessable),
            errbackArgs=(mind, name, password, host, guessable),
        )

    def _checked(
        self,
        login: tuple[type[Interface], object, Callable[[], None]],
        name: str,
        password: str | None,
        guessable: bool,
    ) -> LoggedIn:
        _, avatar, logout = login
        user = IUser(avatar)
        if guessable:
            self.throttle.succeeded(username_key(name))
        if password is not None:
            self._mark_protected(user.name)
        return user, logout

    def _check_failed(
        self, failure: Failure, mind: Mind, name: str, password: str | None, host: str, guessable: bool
    ) -> Failure | None:
        peer = mind.peer
        e = failure.value
        if isinstance(e, Abandoned):
            # The checker passed before the client left: with a password the name had already,
            # it is protected on disk, and the log must say so (a first password was not stored).
            if password is not None and mind.login.first is None:
                self._mark_protected(name)
            return None
        if isinstance(e, NotHeld):
            raise e.error  # the hub has said so
        if isinstance(e, Refused):
            self._refused(name, peer, e)
            return failure
        if isinstance(e, AuthRequired):
            raise self._refused(name, peer, Refused(Refusal.AUTH_REQUIRED, str(e)))
        if isinstance(e, UnauthorizedLogin):
            if guessable:
                by_name, by_address = self.throttle.failed(username_key(name), host)
                self.log.warn(
                    "failed login for {name} from {peer}: {by_name} failures for the name and "
                    "{by_address} from the address in the last {window:g} min",
                    name=name,
                    peer=peer,
                    by_name=by_name,
                    by_address=by_address,
                    window=LoginThrottle.WINDOW / 60,
                )
            raise self._refused(name, peer, Refused(Refusal.AUTH_FAILED, str(e)))
        return failure

    def _count_new(
        self, name: str, known: UserView | None, password: str | None, peer: str, host: str
    ) -> list[AddressRate]:
        """Count a name new to the log (``known`` None), and a first password, against ``host``'s rates
        (those counted, returned); past either, refuse (RATE_LIMITED) the login that holds ``name``,
        counting nothing."""
        counted = []
        try:
            if known is None:
                self._allow(self.new_names, host, "new names")
                counted.append(self.new_names)
            if password is not None and (known is None or not known.protected):
                self._allow(self.new_accounts, host, "new passwords")
                counted.append(self.new_accounts)
        except Refused as e:
            for rate in counted:
                rate.give_back(host)
            raise self._refused(name, peer, e) from None
        return counted

    @staticmethod
    def _allow(rate: AddressRate, host: str, what: str) -> None:
        wait = rate.take(host)
        if wait:
            raise Refused(
                Refusal.RATE_LIMITED, f"too many {what} from your address; try again in {math.ceil(wait)} s"
            )

    def _mark_protected(self, name: str) -> None:
        known = self._hub.user(name)
        if known is not None and not known.protected:
            self._hub.set_protected(name, True, "claimed with a password at login")

    def _refused(self, name: str, peer: str, error: Refused) -> Refused:
        self._hub.announce(RegistrationRefused(name, peer, error.refusal, error.text))
        return error

    # -- passwords and resets -------------------------------------------------------

    def set_password(self, name: str, password: str, host: str) -> Deferred[None]:
        """Protect the online user ``name`` (connected from ``host``) with ``password``, or change it.

        Fails with Refused: PASSWORD_INVALID for a password against the
        rules, RATE_LIMITED past the address's rate of new accounts.
        """
        return Deferred.fromCoroutine(self._set_password(name, password, host))

    async def _set_password(self, name: str, password: str, host: str) -> None:
        password = check_password_rules(password)
        before = self._hub.user(name)
        first = before is None or not before.protected
        self._allow(self.password_hashes, host, "password changes")
        if first:
            try:
                self._allow(self.new_accounts, host, "new passwords")
            except Refused:
                self.password_hashes.give_back(host)
                raise
        try:
            await self._store.set_password_hash(name, await self._hashing.hash(password), self._clock.seconds())
        except BaseException:
            if first:  # nothing was made: a retry after SERVER_ERROR must not run out, as at login
                self.new_accounts.give_back(host)
            raise
        known = self._hub.user(name)
        self._hub.set_protected(
            name,
            True,
            "password changed by its owner" if known and known.protected else "protected by its owner",
        )

    def reset(self, name: str, reason: str) -> Deferred[bool]:
        """Remove the protection of ``name`` (the operator's doing); False if it had none."""
        return Deferred.fromCoroutine(self._reset(name, reason))

    async def _reset(self, name: str, reason: str) -> bool:
        reset = await self._store.reset(name, reason, self._clock.seconds())
        if reset is None:
            return False
        self._last_reset = max(self._last_reset, reset.id)
        self._apply(reset)
        return True

    def remove(self, name: str, reason: str) -> Deferred[Reset | None]:
        """Remove the offline ``name`` from the log, with its password and what waited for it (the
        operator's doing); None if it is not in the log.  Fails with :class:`StillOnline` if it is
        online (here, or on another node)."""
        return Deferred.fromCoroutine(self._remove(name, reason))

    async def _remove(self, name: str, reason: str) -> Reset | None:
        known = self._hub.user(name)
        if known is not None and known.online:
            raise StillOnline(f"{known.name} is online: disconnect it first")
        removal = await self._store.remove(name, reason, self._clock.seconds())
        if removal is not None:
            self._last_reset = max(self._last_reset, removal.id)
            self._apply(removal)
        return removal

    def _apply(self, reset: Reset) -> None:
        if reset.removed:
            if not self._hub.remove(reset.name, reset.reason):
                self.log.warn(
                    "{name} was removed from the log but is online here: it stays, and is written back",
                    name=reset.name,
                )
                # Its password went with the removal, unless one was set since: protected as stored,
                # or a name shown protected would be anyone's to claim.
                self._store.password_hash(reset.name).addCallback(self._protected_as_stored, reset).addErrback(
                    lambda failure: self.log.failure("cannot read {name}'s password", failure, name=reset.name)
                )
            return
        self._hub.set_protected(reset.name, False, reset.reason)  # its sessions are disconnected

    def _protected_as_stored(self, password_hash: str | None, reset: Reset) -> None:
        user = self._hub.user(reset.name)
        if password_hash is None and user is not None and user.protected:
            self._hub.set_protected(reset.name, False, reset.reason)

    def _pick_up_resets(self) -> Deferred[None]:
        def apply(resets: list[Reset] | None) -> None:
            for reset in resets or ():
                if reset.id > self._last_reset:
                    self._last_reset = reset.id
                    self._apply(reset)

        def answered(_: None) -> None:
            self._watching_failed = False

        def failed(failure: Failure) -> None:
            if not self._watching_failed:  # a store away (Redis) fails every few seconds: say it once
                self._watching_failed = True
                self.log.warn("cannot read the accounts' resets: {why}; trying again", why=failure.value)

        return self._store.resets_after(self._last_reset).addCallback(apply).addCallbacks(answered, failed)
