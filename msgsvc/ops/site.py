"""``--metrics``: ``/metrics`` (Prometheus's text format), ``/healthz`` and ``/readyz`` over twisted.web;
any other path is 404, any method but GET and HEAD 405.  Its connections are guarded as the web front's
(:class:`~msgsvc.fronts.web.site.GuardedSite`)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.logger import Logger
from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from msgsvc.fronts.clients import Clients
from msgsvc.fronts.web.site import GuardedSite
from msgsvc.ops.metrics import Metrics


def _text(request: Request, code: int, text: str) -> None:
    """Finish ``request`` with ``code`` and one line of ``text``, unless the client left."""
    if request.finished or request.channel is None:
        return
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.write(f"{text}\n".encode())
    request.finish()


class _Page(Resource):
    """One page at one path: a path below it is 404, a method but GET and HEAD 405."""

    isLeaf = True

    def render(self, request: Request) -> object:
        if request.postpath:
            return notFound().render(request)
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"405 Method Not Allowed: GET or HEAD\n"
        return super().render(request)  # type: ignore[no-untyped-call]


class MetricsPage(_Page):
    """``/metrics``: every metric, read when asked (the history's size read first)."""

    log = Logger()

    def __init__(self, metrics: Metrics, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._metrics = metrics
        self._registry = registry

    def render_GET(self, request: Request) -> object:
        def render(_: None) -> None:
            if request.finished or request.channel is None:
                return
            request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
            request.setHeader(b"cache-control", b"no-store")
            request.write(generate_latest(self._registry))
            request.finish()

        def failed(failure: Failure) -> None:
            self.log.failure("could not collect the metrics", failure)
            _text(request, 500, "could not collect the metrics")

        self._metrics.refresh().addCallback(render).addErrback(failed)
        return NOT_DONE_YET


class Health(_Page):
    """``/healthz``: 200 while the reactor turns (it answers this); Prometheus's and systemd's liveness."""

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return b"ok\n"


class Readiness(_Page):
    """``/readyz``: 200 when ``check`` fires (the state reachable: the SQLite file writable, or Redis
    connected and this node's lease held); 503 with the reason when it fails."""

    def __init__(self, check: Callable[[], Deferred[None]]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._check = check

    def render_GET(self, request: Request) -> object:
        def failed(failure: Failure) -> None:
            _text(request, 503, f"not ready: {failure.getErrorMessage()}")

        self._check().addCallbacks(lambda _: _text(request, 200, "ready"), failed)
        return NOT_DONE_YET


def ops_site(
    metrics: Metrics,
    registry: CollectorRegistry,
    check: Callable[[], Deferred[None]],
    clients: Clients,
    request_timeout: float,
) -> GuardedSite:
    """The ``--metrics`` site: its three pages and nothing else; its connections count against their
    address's share of ``clients``' (``--max-per-ip``) and have ``request_timeout`` seconds for each request."""
    root = Resource()
    root.putChild(b"metrics", MetricsPage(metrics, registry))
    root.putChild(b"healthz", Health())  # type: ignore[no-untyped-call]
    root.putChild(b"readyz", Readiness(check))
    site = GuardedSite(root, clients, request_timeout)
    site.displayTracebacks = False
    return site
