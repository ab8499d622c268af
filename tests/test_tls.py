"""TLS: an ssl: listener beside tcp:, and the client's tls: endpoint trusting a given CA."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from msgsvc.auth.accounts import Accounts
from msgsvc.client.connect import endpoint_connector
from msgsvc.client.presenter import ChatPresenter, Phase
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.lines import ServerFactory
from msgsvc.fronts.presence import Presence
from msgsvc.hub.core import Hub
from msgsvc.wire import Limits

from .support.fakes import FakeHashing, MemoryStore, Recorder
from .support.tls import CRYPTOGRAPHY, make_certificate


class TLSTests(TestCase):
    async def setUp(self) -> None:
        if not CRYPTOGRAPHY:
            self.fail("TLS tests need the tls extra (pip install '.[tls]')")
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.folder, "trusted"))
        self.cert, self.key = make_certificate(os.path.join(self.folder, "trusted"))
        store = MemoryStore()
        self.hub = Hub(reactor, store, [], max_clients=10)
        accounts = Accounts(self.hub, store, FakeHashing(), reactor, require_password=False)
        self.clients = Clients(self.hub, accounts, reactor, Limits())
        self.factory = ServerFactory(self.clients, Presence(self.hub, reactor))
        endpoint = serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={self.key}:certKey={self.cert}"
        )
        self.port = await endpoint.listen(self.factory)
        self.addCleanup(self.stop)

    async def stop(self) -> None:
        await self.port.stopListening()
        await self.clients.disconnect_all("server shutting down")

    def client(self, server: str) -> tuple[ChatPresenter, Recorder]:
        view = Recorder()
        presenter = ChatPresenter(view, endpoint_connector(reactor), reactor, "", server)  # type: ignore[arg-type]
        return presenter, view

    async def wait_for(self, condition) -> None:  # type: ignore[no-untyped-def]
        from twisted.internet.task import deferLater

        for _ in range(1000):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail("timed out")

    async def test_two_clients_talk_over_tls(self) -> None:
        server = f"tls:localhost:{self.port.getHost().port}:trustRoots={os.path.dirname(self.cert)}"
        alice, alice_view = self.client(server)
        bob, bob_view = self.client(server)
        alice.login("alice", server)
        bob.login("bob", server)
        await self.wait_for(lambda: alice.phase is Phase.CONNECTED and bob.phase is Phase.CONNECTED)
        self.assertEqual(
            alice_view.last("show_status"),
            (f"Connected to localhost:{self.port.getHost().port} as alice", True),
        )
        alice.choose_mode(alice.mode)
        alice.choose_recipients(("bob",))
        self.assertTrue(alice.send("secret hello"))
        await self.wait_for(lambda: ("direct", "alice to you: secret hello") in bob_view.entries())
        for presenter in (alice, bob):
            await presenter.quit()

    async def test_an_untrusted_certificate_is_refused(self) -> None:
        other = os.path.join(self.folder, "other")
        os.makedirs(other)
        make_certificate(other)  # a different CA: the server's certificate is not trusted
        server = f"tls:localhost:{self.port.getHost().port}:trustRoots={other}"
        alice, view = self.client(server)
        alice.login("alice", server)
        await self.wait_for(lambda: view.calls and view.calls[-1][0] == "show_login")
        self.assertNotEqual(alice.phase, Phase.CONNECTED)
        self.assertEqual(self.hub.users(), [])
