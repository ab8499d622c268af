"""The server's window as a service of the ``twistd`` application."""

from __future__ import annotations

import tkinter

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorCore, IReactorTime

from msgsvc import tkreactor
from msgsvc.auth.accounts import Accounts
from msgsvc.hub.core import Hub
from msgsvc.servergui.presenter import ServerPresenter
from msgsvc.servergui.window import ServerWindow


class ServerWindowService(Service):
    """Opens the window when the server starts; closing it stops the server."""

    def __init__(self, reactor: IReactorCore, hub: Hub, accounts: Accounts, endpoints: list[str]) -> None:
        self._reactor = reactor
        self._hub = hub
        self._accounts = accounts
        self._endpoints = endpoints
        self.window: ServerWindow | None = None
        self._presenter: ServerPresenter | None = None

    def startService(self) -> None:
        Service.startService(self)
        clock = IReactorTime(self._reactor)
        self.window = ServerWindow(tkinter.Tk())
        self._presenter = ServerPresenter(self.window, self._hub, self._accounts, clock, self._endpoints)
        self.window.bind(self._presenter)
        self.window.root.protocol("WM_DELETE_WINDOW", self._reactor.stop)
        tkreactor.attach(self.window.root, clock)
        self._presenter.start()

    def stopService(self) -> None:
        Service.stopService(self)
        if self._presenter is not None and self.window is not None:
            self._presenter.stop()
            tkreactor.detach()
            self.window.root.destroy()
        self._presenter = self.window = None
