"""``python -m msgsvc.client``: the msgsvc client in a Tk window."""

from __future__ import annotations

import argparse
import sys
import tkinter

from msgsvc.client.presenter import DEFAULT_SERVER


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m msgsvc.client", description="The msgsvc chat client.")
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        help=f"server endpoint: tcp:HOST:PORT or tls:HOST:PORT (default {DEFAULT_SERVER})",
    )
    parser.add_argument("--username", default="", help="prefill the username")
    parser.add_argument(
        "--text", action="store_true", help="run in the terminal (the default when no display can be opened)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor

    from msgsvc import tkreactor
    from msgsvc.client.connect import endpoint_connector
    from msgsvc.client.presenter import ChatPresenter

    connect = endpoint_connector(reactor)
    if args.text or tkreactor.display_problem():
        from twisted.internet.stdio import StandardIO

        from msgsvc.client.text import TerminalInput, TextView

        terminal = TerminalInput()
        view = TextView(lambda text: terminal.transport.write(text.encode("utf-8")))
        presenter = ChatPresenter(view, connect, reactor, args.username, args.server)
        # Quitting flushes what is left to print, then the reactor stops.
        view.bind(presenter, lambda: presenter.close(terminal.transport.loseConnection))
        terminal.view = view
        terminal.closed.addCallback(lambda _: reactor.stop())
        StandardIO(terminal, reactor=reactor)
        presenter.start()
        reactor.run()
        return 0

    from msgsvc.client.gui import ChatWindow

    root = tkinter.Tk()
    window = ChatWindow(root)
    presenter = ChatPresenter(window, connect, reactor, args.username, args.server)
    window.bind(presenter)
    root.protocol("WM_DELETE_WINDOW", lambda: presenter.close(reactor.stop))
    tkreactor.attach(root, reactor)
    presenter.start()
    reactor.run()
    tkreactor.detach()
    root.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
