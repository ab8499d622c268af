"""Password hashes made and checked with argon2id, off the reactor's thread."""

from __future__ import annotations

from typing import Protocol

import argon2
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

#: OWASP's first argon2id profile (19 MiB, 2 passes, 1 lane): about 50 ms a check here.
HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=argon2.Type.ID)


class Hashing(Protocol):
    """Makes and checks password hashes without blocking the caller."""

    def hash(self, password: str) -> Deferred[str]: ...
    def verify(self, password_hash: str, password: str) -> Deferred[bool]: ...
    def needs_rehash(self, password_hash: str) -> bool: ...


class Hasher(Service):
    """argon2id on a pool of its own threads: a burst of logins never runs on the reactor's."""

    def __init__(self, reactor: IReactorFromThreads, threads: int, hasher: argon2.PasswordHasher = HASHER):
        self._reactor = reactor
        self._hasher = hasher
        self._pool = ThreadPool(minthreads=threads, maxthreads=threads, name="msgsvc-argon2")

    def startService(self) -> None:
        Service.startService(self)
        self._pool.start()

    def stopService(self) -> None:
        Service.stopService(self)
        self._pool.stop()

    def hash(self, password: str) -> Deferred[str]:
        return deferToThreadPool(self._reactor, self._pool, self._hasher.hash, password)

    def verify(self, password_hash: str, password: str) -> Deferred[bool]:
        return deferToThreadPool(self._reactor, self._pool, self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except argon2.exceptions.VerifyMismatchError:
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
