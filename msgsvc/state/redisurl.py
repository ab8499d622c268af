"""Where a Redis server is: a ``redis://`` or ``rediss://`` URL.

Apart from the connections (:mod:`msgsvc.state.redislink`, which imports
txredisapi and with it Twisted's global reactor), so that reading a URL (the
server's ``--redis`` option, the tools' arguments) imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTCP, IStreamClientEndpoint


@dataclass(frozen=True)
class RedisURL:
    """Where a Redis server is: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, ``rediss://`` for TLS."""

    host: str
    port: int = 6379
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisURL:
        """Read ``url``; ValueError says what is wrong with it."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"{url!r} is not a redis:// or rediss:// URL")
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"{url!r}: the database is a number, not {path!r}")
        try:
            port = parts.port or 6379
        except ValueError as e:
            raise ValueError(f"{url!r}: {e}") from None
        return cls(
            parts.hostname,
            port,
            int(path or 0),
            parts.scheme == "rediss",
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password is not None else None,
        )

    def __str__(self) -> str:
        """The URL without its password: fit for a log."""
        user = f"{self.username or ''}:***@" if self.password is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{user}{host}:{self.port}/{self.db}"

    def endpoint(self, reactor: IReactorTCP, timeout: float) -> IStreamClientEndpoint:
        """Where to connect, giving up an attempt after ``timeout`` seconds."""
        plain = HostnameEndpoint(reactor, self.host, self.port, timeout=timeout)
        if not self.tls:
            return plain
        from twisted.internet.ssl import optionsForClientTLS

        return wrapClientTLS(optionsForClientTLS(self.host), plain)
