"""Accounts: who may use a protected name, checked in one place with twisted.cred.

Every front logs a client in the same way, with
:meth:`~msgsvc.auth.accounts.Accounts.login` (``accounts.py``).  It asks a
:class:`~twisted.cred.portal.Portal` (``cred.py``): the
:class:`~msgsvc.auth.cred.AccountChecker` looks the name's password hash up
in the store (``store.py`` says what it needs of it) and checks the
password with argon2id on a thread pool (``hashing.py``; a name nobody
protected needs none, and is claimed by the first password given with it);
the :class:`~msgsvc.auth.cred.HubRealm` then brings the client online in
the hub, and its avatar, the hub's :class:`~msgsvc.hub.user.User`, is what
the front acts through afterwards.
:class:`~msgsvc.auth.throttle.LoginThrottle` (``throttle.py``) slows
guessing; rates per address (:class:`~msgsvc.ratelimit.AddressRate`) bound
the new names, the new accounts and the password hashes one address makes.
"""
