"""What the accounts need of the state: where password hashes persist, and the operator's resets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from twisted.internet.defer import Deferred


@dataclass(frozen=True)
class Reset:
    """The operator removed the protection of ``name`` at ``at``, saying ``reason``; or (``removed``) the
    name itself from the log, with its password and what waited for it."""

    id: int
    name: str
    at: float
    reason: str
    removed: bool = False


class StillOnline(Exception):
    """The name is online: it cannot be removed from the log."""


class AccountStore(Protocol):
    """Where password hashes persist (a :class:`msgsvc.state.State`)."""

    def password_hash(self, name: str) -> Deferred[str | None]: ...
    def set_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[None]: ...
    def set_first_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[str | None]:
        """Store ``password_hash`` only if ``name`` has no password (None), in one step; else the hash it has."""
    def reset(self, name: str, reason: str, when: float) -> Deferred[Reset | None]: ...
    def remove(self, name: str, reason: str, when: float) -> Deferred[Reset | None]: ...
    def resets_after(self, reset_id: int) -> Deferred[list[Reset] | None]: ...
