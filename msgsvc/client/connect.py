"""Connecting the client to a server named by an endpoint string."""

from __future__ import annotations

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import clientFromString

from msgsvc.client.presenter import Connector
from msgsvc.client.protocol import ClientFactory, ClientListener, ClientProtocol


def endpoint_connector(reactor: object) -> Connector:
    """A connector for ``tcp:HOST:PORT``, ``tls:HOST:PORT`` and any other client endpoint string."""

    def connect(
        server: str, username: str, password: str | None, listener: ClientListener
    ) -> Deferred[ClientProtocol]:
        return maybeDeferred(
            lambda: clientFromString(reactor, server).connect(ClientFactory(username, password, listener))
        )

    return connect
