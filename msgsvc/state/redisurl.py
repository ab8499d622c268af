"""Where a Redis server is: a ``redis://`` or ``rediss://`` URL.

Apart from the connections (:mod:`msgsvc.state.redislink`, which imports
txredisapi and with it Twisted's global reactor), so that reading a URL (the
server's ``--redis`` option, the tools' arguments) imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTCP, IStreamClientEndpoint

#: A ``rediss://`` URL's TLS files, by the names redis-py gives them (one URL serves both)
TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


@dataclass(frozen=True)
class RedisURL:
    """Where a Redis server is: ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``, ``rediss://`` for TLS.

    A ``rediss://`` URL checks the server's certificate against the system's trusted authorities, or
    against the PEM file ``?ssl_ca_certs=PATH``; ``&ssl_certfile=PATH`` (and ``&ssl_keyfile=PATH``, if
    the key is not in that file) give this server's own certificate, for a Redis that asks for one.
    """

    host: str
    port: int = 6379
    db: int = 0
    tls: bool = False
    username: str | None = None
    password: str | None = None
    ca: str | None = None  # ssl_ca_certs
    certificate: str | None = None  # ssl_certfile
    key: str | None = None  # ssl_keyfile

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
        query = parse_qs(parts.query, keep_blank_values=True)
        for name, values in query.items():
            if name not in TLS_FILES:
                raise ValueError(f"{url!r}: unknown parameter {name!r} (known: {', '.join(TLS_FILES)})")
            if parts.scheme != "rediss":
                raise ValueError(f"{url!r}: {name} is for rediss:// (TLS) only")
            if len(values) != 1 or not values[0]:
                raise ValueError(f"{url!r}: {name} takes one path")
        ca, certificate, key = (query.get(name, [None])[0] for name in TLS_FILES)
        if key and not certificate:
            raise ValueError(f"{url!r}: ssl_keyfile without ssl_certfile")
        return cls(
            parts.hostname,
            port,
            int(path or 0),
            parts.scheme == "rediss",
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password is not None else None,
            ca,
            certificate,
            key,
        )

    @classmethod
    def usable(cls, url: str) -> RedisURL:
        """Read ``url`` and its TLS files, if any (as the options are read, before anything starts);
        ValueError says what is wrong with either."""
        parsed = cls.parse(url)
        parsed.tls_options()
        return parsed

    def __str__(self) -> str:
        """The URL without its password: fit for a log."""
        user = f"{self.username or ''}:***@" if self.password is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        files = zip(TLS_FILES, (self.ca, self.certificate, self.key), strict=True)
        query = "&".join(f"{name}={quote(path)}" for name, path in files if path)
        return f"{'rediss' if self.tls else 'redis'}://{user}{host}:{self.port}/{self.db}" + (
            f"?{query}" if query else ""
        )

    def endpoint(self, reactor: IReactorTCP, timeout: float) -> IStreamClientEndpoint:
        """Where to connect, giving up an attempt after ``timeout`` seconds.

        ValueError: see :meth:`tls_options`.
        """
        plain = HostnameEndpoint(reactor, self.host, self.port, timeout=timeout)
        tls = self.tls_options()
        return plain if tls is None else wrapClientTLS(tls, plain)

    def tls_options(self) -> IOpenSSLClientConnectionCreator | None:
        """For ``rediss://``, TLS to this host with the URL's files, read now; ValueError says which
        one could not be read or used."""
        if not self.tls:
            return None
        from OpenSSL.crypto import Error as OpenSSLError
        from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS

        def read(name: str, path: str) -> bytes:
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise ValueError(f"{self}: cannot read {name} {path}: {e.strerror}") from None

        try:
            trust = Certificate.loadPEM(read("ssl_ca_certs", self.ca)) if self.ca else None
            mine = None
            if self.certificate:
                pem = read("ssl_certfile", self.certificate)
                pem += b"\n" + read("ssl_keyfile", self.key) if self.key else b""
                mine = PrivateCertificate.loadPEM(pem)
        except OpenSSLError as e:
            raise ValueError(f"{self}: a TLS file is not a PEM certificate or key: {e}") from None
        return optionsForClientTLS(self.host, trustRoot=trust, clientCertificate=mine)
