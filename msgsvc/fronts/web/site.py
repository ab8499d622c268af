"""The web front's HTTP side: its connections, the host names it serves, the page's files, and the site
that puts them together with the WebSocket."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Sequence
from ipaddress import ip_address
from typing import cast
from urllib.parse import urlsplit

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.web import http, pages
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File

from msgsvc.fronts.clients import Clients
from msgsvc.fronts.presence import Presence
from msgsvc.fronts.receiver import IConnection
from msgsvc.fronts.web.origins import normalize_origin
from msgsvc.fronts.web.websocket import LineSocketFactory, LineSocketResource

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: A ``Host`` header: a name or an IP address (IPv6 in brackets), and maybe a port.
_HOST = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?")


class WebChannel(HTTPChannel):
    """One connection to the web port, as HTTP (until it is a WebSocket's, if it becomes one).

    It counts against its address's share (``--max-per-ip``, with every
    front's connections) from its accept on: past it, it is answered 503
    and closed; a WebSocket it becomes keeps the count.  Each request must
    be read whole within ``timeOut`` (``--web-request-timeout``) of the
    connection or of the previous response: unlike Twisted's idle timeout,
    data that trickles in does not put it off, so a slowloris holds no
    connection long.  A request may have no body (413).  And the request
    read after a response waits for the next reactor pass, so that one
    read of pipelined requests is one answer, not a thousand.
    """

    site: GuardedSite
    transport: IConnection
    _next: IDelayedCall | None = None

    # HTTPChannel is not annotated: its methods are called through "untyped" ignores.

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]
        clients = self.site.clients
        if not clients.admit(self.transport.getPeer()):
            limit = clients.limits.max_per_ip
            self._refuse(b"503 Service Unavailable", f"at most {limit} connections from one address")

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        # Not called once it is a WebSocket's: then the session releases its count.
        self.site.clients.release(self.transport.getPeer())
        if self._next is not None and self._next.active():
            self._next.cancel()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        LineReceiver.dataReceived(self, data)  # without HTTPChannel's resetTimeout

    def allHeadersReceived(self) -> None:
        if self.length != 0:  # None: chunked
            self._refuse(b"413 Content Too Large", "this server takes no request body")
            return
        super().allHeadersReceived()  # type: ignore[no-untyped-call]

    def requestDone(self, request: http.Request) -> None:
        self.paused = True  # LineReceiver: the next request, if it came, waits
        super().requestDone(request)  # type: ignore[no-untyped-call]
        if not self.transport.disconnecting:
            self.transport.pauseProducing()  # and no more is read meanwhile
            self._next = self.callLater(0, self._read_on)  # type: ignore[no-untyped-call]

    def _read_on(self) -> None:
        self._next = None
        self.paused = False
        if not self._waitingForTransport:  # else HTTPChannel resumes reading once the answers are sent
            self.transport.resumeProducing()
        LineReceiver.dataReceived(self, b"")

    def _refuse(self, status: bytes, text: str) -> None:
        """Answer ``status`` with ``text`` before any request is read whole, and close."""
        body = status + b": " + text.encode() + b"\n"
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.loseConnection()  # type: ignore[no-untyped-call]


class Misdirected(Resource):
    """421 Misdirected Request, to any request for a host the site does not serve."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setResponseCode(421, b"Misdirected Request")
        request.setHeader("content-type", "text/plain; charset=utf-8")
        request.setHeader("x-content-type-options", "nosniff")
        return b"421 Misdirected Request: this server does not serve its page under that name\n"


class GuardedSite(Site):
    """A site whose connections are :class:`WebChannel`'s (an address's share, a deadline for each whole
    request, no body, one request a reactor pass), on ``clients``' clock; requests are not logged."""

    noisy = False
    protocol = WebChannel  # type: ignore[assignment]

    def __init__(self, resource: Resource, clients: Clients, timeout: float) -> None:
        super().__init__(resource, timeout=timeout, reactor=clients.clock)  # type: ignore[no-untyped-call]
        self.clients = clients

    def log(self, request: http.Request) -> None:
        pass


class WebSite(GuardedSite):
    """The page and the WebSocket, under the host names it serves, with security headers on every response.

    A request whose ``Host`` is not one of them (nor an IP address) is
    refused 421: a page of another site whose name an attacker points at
    this server (DNS rebinding) is the same origin as that site's page, so
    the WebSocket's origin check alone would let it through.  The page's
    scripts and styles come from this server only (no inline script, no
    other host), it may connect only to this host's WebSocket, and no
    other site may frame it.  Requests are not logged: a connection is
    logged by the line front, as a TCP one is.
    """

    log_refusal = Logger()

    def __init__(self, resource: Resource, clients: Clients, hosts: Iterable[str], timeout: float) -> None:
        super().__init__(resource, clients, timeout)
        self.hosts = frozenset(hosts)

    def getResourceFor(self, request: Request) -> Resource:
        host = request.getHeader("host") or ""
        if not self.serves(host):
            self.log_refusal.info(
                "refused a request from {peer} for host {host!r}", peer=request.getClientAddress(), host=host
            )
            return Misdirected()  # type: ignore[no-untyped-call]
        request.setHeader(
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
            f"connect-src 'self' ws://{host} wss://{host}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        )
        request.setHeader("x-content-type-options", "nosniff")
        request.setHeader("referrer-policy", "no-referrer")
        request.setHeader("x-frame-options", "DENY")
        request.setHeader("cache-control", "no-cache")  # a new msgsvc's page is used at once
        return cast(Resource, Site.getResourceFor(self, request))

    def serves(self, host: str) -> bool:
        """Whether a request with this ``Host`` header is for this site: one of its names, or an IP address."""
        match = _HOST.fullmatch(host)
        if match is None:
            return False
        name = match["name"].lower().removesuffix(".")
        try:
            ip_address(name.strip("[]"))
        except ValueError:
            return name in self.hosts
        return name.startswith("[") == (":" in name)  # IPv6 in brackets, IPv4 without


class StaticFiles(File):
    """The page's files, with their types named here rather than guessed from the machine's MIME table.

    Only the files named in :attr:`files` are looked up: any other name
    from a request (with a NUL, not UTF-8, ``..``, under a file) is 404
    without reaching the file system or the log.
    """

    contentTypes = {
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }
    indexNames = ["index.html"]
    # twisted.web.pages' error pages, which File's annotations predate.
    childNotFound = pages.notFound()  # type: ignore[assignment]
    forbidden = pages.forbidden()  # type: ignore[assignment]
    files: frozenset[bytes] = frozenset()  # a file's own (made by createSimilarFile): none

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path and path not in self.files:
            return cast(Resource, self.childNotFound)
        return cast(Resource, super().getChild(path, request))  # type: ignore[no-untyped-call]


def web_site(
    clients: Clients,
    presence: Presence,
    origins: Sequence[str] = (),
    hosts: Sequence[str] = (),
    request_timeout: float = 10.0,
) -> WebSite:
    """The web front over the server's ``clients``, its users hearing the line protocol's ``presence``.

    ``origins``: other pages' origins allowed to connect; ``hosts``: more names the page is served under, beside
    ``localhost``, this machine's name, the origins' and any IP address; ``request_timeout``: seconds a
    connection has to send a whole request (the WebSocket's has the line protocol's own deadline and PING).
    """
    root = StaticFiles(STATIC, defaultType="application/octet-stream")
    root.files = frozenset(os.fsencode(name) for name in os.listdir(STATIC))
    origins = [normalize_origin(o) for o in origins]
    root.putChild(b"ws", LineSocketResource(LineSocketFactory(clients, presence), origins))
    names = {"localhost", socket.gethostname(), *hosts, *(urlsplit(o).hostname or "" for o in origins)}
    return WebSite(root, clients, {name.lower().removesuffix(".") for name in names}, request_timeout)
