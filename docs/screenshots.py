"""Remake the client screenshots in docs/images/: a real server and real windows on loopback.

Run it on a display (``xvfb-run -s '-screen 0 1280x800x24' python docs/screenshots.py``);
it needs ImageMagick's ``import``.  Bounded: it exits after about 15 seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tkinter
from collections.abc import Sequence

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater

from msgsvc.auth.accounts import Accounts
from msgsvc.auth.hashing import Hasher
from msgsvc.client.connect import endpoint_connector
from msgsvc.client.gui import ChatWindow
from msgsvc.client.presenter import ChatPresenter
from msgsvc.fronts.clients import Clients
from msgsvc.fronts.lines import ServerFactory
from msgsvc.fronts.presence import Presence
from msgsvc.hub.contracts import HistoryPolicy, Kind
from msgsvc.hub.core import Hub
from msgsvc.hub.history import History
from msgsvc.servergui.presenter import ServerPresenter
from msgsvc.servergui.window import ServerWindow
from msgsvc.state.sqlite import SqliteStore
from msgsvc.wire import Limits

IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images")


async def settle(windows: Sequence[ChatWindow | ServerWindow], seconds: float = 0.4) -> None:
    """Let the reactor and these windows run for ``seconds``."""
    for _ in range(int(seconds / 0.02)):
        for window in windows:
            window.root.update()
        await deferLater(reactor, 0.02, lambda: None)


async def shoot(windows: list[ChatWindow], window: ChatWindow | ServerWindow, name: str) -> None:
    for other in windows:
        if other is not window:
            other.root.withdraw()  # no window manager under Xvfb: keep only this one on screen
    window.root.deiconify()
    window.root.lift()
    await settle([*windows, window])
    # The window's area of the screen: its frame (at +0+0, there being no window manager)
    # holds the menu bar above the root window, and ``import -window`` of either leaves it out.
    root = window.root
    area = f"{root.winfo_width()}x{root.winfo_rooty() + root.winfo_height()}+0+0"
    subprocess.run(["import", "-window", "root", "-crop", area, os.path.join(IMAGES, name)], check=True)
    for other in windows:
        other.root.deiconify()
    print("wrote", os.path.join(IMAGES, name))


async def main() -> None:
    usernames = SqliteStore(reactor, os.path.join(tempfile.mkdtemp(), "names.sqlite3"), reactor)
    usernames.startService()
    history = History(reactor, usernames, HistoryPolicy())  # kept: the clients show it
    hub = Hub(reactor, usernames, [], max_clients=50, history=history)
    hasher = Hasher(reactor, threads=1)
    hasher.startService()
    accounts = Accounts(hub, usernames, hasher, reactor, require_password=False)
    clients = Clients(hub, accounts, reactor, Limits())
    factory = ServerFactory(clients, Presence(hub, reactor))
    port = await TCP4ServerEndpoint(reactor, 8123, interface="127.0.0.1").listen(factory)
    windows: list[ChatWindow] = []
    server_window = ServerWindow(tkinter.Tk())
    server_window.root.geometry("1090x640+0+0")
    server_presenter = ServerPresenter(server_window, hub, accounts, reactor, ["tcp:8123"])
    server_window.bind(server_presenter)
    server_presenter.start()
    server_window.root.withdraw()

    def window(name: str) -> ChatWindow:
        w = ChatWindow(tkinter.Tk())
        w.root.geometry("900x560+0+0")
        presenter = ChatPresenter(w, endpoint_connector(reactor), reactor, name, "tcp:localhost:8123")
        w.bind(presenter, lambda: None)
        presenter.start()
        windows.append(w)
        return w

    async def log_in(name: str, password: str = "") -> ChatWindow:
        w = window(name)
        w.password.insert(0, password)
        w.connect_button.invoke()
        await settle(windows)
        return w

    def send(w: ChatWindow, mode: Kind, names: tuple[str, ...], text: str) -> None:
        assert w.presenter is not None
        w.presenter.choose_mode(mode)
        w.presenter.choose_recipients(names)
        w.message.insert(0, text)
        w.send_button.invoke()

    login = window("alice")
    await settle(windows)
    await shoot(windows, login, "client-login.png")
    login.root.destroy()
    windows.remove(login)

    dave = await log_in("dave", "dave's passphrase")  # protected: what is sent to him waits
    alice = await log_in("alice", "correct horse battery")  # claims the name
    bob = await log_in("bob")
    carol = await log_in("carol")
    assert dave.presenter is not None
    await dave.presenter.quit()
    await settle(windows)
    send(bob, Kind.UNICAST, ("alice",), "Morning! Did the build go green?")
    await settle(windows)
    send(alice, Kind.UNICAST, ("bob",), "Yes, all 164 tests, under Xvfb too.")
    await settle(windows)
    send(carol, Kind.MULTICAST, ("alice", "bob", "dave"), "Retro at 3pm in the small room — café on me ☕")
    await settle(windows)
    alice.reply_button.invoke()  # to carol, bob and dave
    alice.message.insert(0, "Works for me. Dave is out today, I think.")
    alice.send_button.invoke()
    await settle(windows)
    send(bob, Kind.BROADCAST, (), "Deploying the new server in 10 minutes; you may see a short disconnect.")
    await settle(windows)
    alice.presenter.choose_mode(Kind.MULTICAST)  # type: ignore[union-attr]
    alice.presenter.choose_recipients(("bob", "carol", "dave"))  # type: ignore[union-attr]
    alice.message.insert(0, "See you all there")
    await settle(windows)
    await shoot(windows, alice, "client-chat.png")
    alice.account_menu.invoke(1)  # Change password…
    alice.new_password.insert(0, "a new passphrase")
    alice.new_password_again.insert(0, "a new passphrase!")
    alice.set_password_button.invoke()  # they differ: said by the panel
    await shoot(windows, alice, "client-password.png")
    alice.password_panel.pack_forget()
    alice.password_problem.pack_forget()

    laptop = await log_in("alice", "correct horse battery")  # alice's second device: another session
    assert laptop.presenter is not None
    laptop.presenter.choose_mode(Kind.BROADCAST)
    await settle(windows)
    alice.message.delete(0, "end")
    send(alice, Kind.UNICAST, ("bob",), "Heading to the retro now.")  # on the laptop: as hers
    await settle(windows)
    send(bob, Kind.UNICAST, ("alice",), "Can you bring the laptop charger?")  # on the laptop: unread
    await settle(windows)
    await shoot(windows, laptop, "client-devices.png")

    # Rooms: alice creates #release (its operator), bob and carol join, they talk; alice's window shows it.
    for w, room in ((alice, "#release"), (bob, "#release"), (carol, "#Release")):
        assert w.presenter is not None
        w.presenter.join(room)
        await settle(windows)
    alice.presenter.set_topic("1.4 ships Friday: blockers here")  # type: ignore[union-attr]
    await settle(windows)
    alice.presenter.set_mode("+v", ("carol",))  # type: ignore[union-attr]
    await settle(windows)
    for w, text in ((bob, "The migration needs one more review."), (carol, "I'll take it after lunch.")):
        w.message.insert(0, text)
        w.send_button.invoke()
        await settle(windows)
    alice.message.insert(0, "Thanks both — let's cut the branch at 4.")
    await shoot(windows, alice, "client-rooms.png")
    alice.message.delete(0, "end")
    alice.presenter.set_mode("+b", ("mallory",))  # type: ignore[union-attr]  # the Rooms tab shows the ban

    await settle([*windows, server_window], 2.2)
    server_window.table.selection_set("bob")
    server_window.reason.insert(0, "please reconnect after the upgrade")
    await shoot(windows, server_window, "server.png")
    assert alice.presenter is not None  # a second room, hers, a private one; none of her later windows is shot
    alice.presenter.join("#design")
    await settle(windows)
    alice.presenter.set_topic("New login page: mock-ups by Thursday")
    alice.presenter.set_mode("+is", ())
    await settle([*windows, server_window])
    server_window.tabs.select(1)  # Rooms
    server_window.rooms.selection_set("#release/bob")
    server_window.reason.delete(0, "end")
    server_window.reason.insert(0, "flooding the room")
    await shoot(windows, server_window, "server-rooms.png")
    server_presenter.stop()
    server_window.root.destroy()

    dave.reconnect_button.invoke()  # the next morning, say
    await settle(windows, 0.8)
    await shoot(windows, dave, "client-delayed.png")

    refused = window("bob")
    refused.connect_button.invoke()
    await settle(windows, 0.8)
    await shoot(windows, refused, "client-refused.png")

    assert alice.presenter is not None
    await alice.presenter.quit()  # alice is away: her name needs its password
    guess = window("alice")
    guess.password.insert(0, "wrong horse")
    guess.connect_button.invoke()
    await settle(windows, 0.8)
    await shoot(windows, guess, "client-wrong-password.png")

    await port.stopListening()
    await clients.disconnect_all("server shutting down")
    await settle(windows, 0.8)
    await shoot(windows, carol, "client-disconnected.png")
    carol.reconnect_button.invoke()
    await settle(windows, 0.8)
    await shoot(windows, carol, "client-unreachable.png")

    for w in windows:
        if w.presenter is not None:
            await w.presenter.quit()
    hasher.stopService()
    usernames.stopService()


def run() -> None:
    def done(result: object) -> None:
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(
        lambda: ensureDeferred(main()).addErrback(lambda f: f.printTraceback()).addBoth(done)
    )  # type: ignore[attr-defined]
    reactor.callLater(60, reactor.stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(run())
