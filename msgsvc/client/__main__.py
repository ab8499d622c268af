"""``python -m msgsvc.client``: the msgsvc client, in a Tk window or a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys

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
        "--password-prompt",
        action="store_true",
        help="terminal client: ask for a password with the username (it is asked anyway when the name needs one)",
    )
    parser.add_argument(
        "--text", action="store_true", help="run in the terminal (the default when no display can be opened)"
    )
    return parser.parse_args(argv)


def run_in_terminal(args: argparse.Namespace) -> int:
    """The terminal client: prompt_toolkit on Twisted's asyncio reactor."""
    from twisted.internet import asyncioreactor

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure

    from msgsvc.client.connect import endpoint_connector
    from msgsvc.client.presenter import ChatPresenter
    from msgsvc.client.terminal import Terminal, columns, refresh, show
    from msgsvc.client.text import TextView

    view = TextView(show, refresh, password_prompt=args.password_prompt, width=columns)
    presenter = ChatPresenter(
        view, endpoint_connector(reactor), reactor, args.username, args.server, shows_everything=True
    )
    terminal = Terminal(view)

    def quit() -> None:
        terminal.stop()
        presenter.close(reactor.stop)

    view.bind(presenter, quit)
    presenter.start()
    failed: list[Failure] = []

    def broken(failure: Failure) -> None:  # the terminal failed: say why, and leave
        failed.append(failure)
        reactor.stop()

    Deferred.fromFuture(loop.create_task(terminal.run())).addErrback(broken)
    reactor.run()
    for failure in failed:
        print(f"msgsvc client: the terminal failed: {failure.getErrorMessage()}", file=sys.stderr)
    return 1 if failed else 0


def run_in_window(args: argparse.Namespace) -> int:
    import tkinter

    from twisted.internet import reactor

    from msgsvc import tkreactor
    from msgsvc.client.connect import endpoint_connector
    from msgsvc.client.gui import ChatWindow
    from msgsvc.client.presenter import ChatPresenter

    root = tkinter.Tk()
    window = ChatWindow(root)
    presenter = ChatPresenter(window, endpoint_connector(reactor), reactor, args.username, args.server)
    window.bind(presenter, lambda: presenter.close(reactor.stop))
    tkreactor.attach(root, reactor)
    presenter.start()
    reactor.run()
    tkreactor.detach()
    root.destroy()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from msgsvc import tkreactor

    if args.text or tkreactor.display_problem():
        return run_in_terminal(args)
    return run_in_window(args)


if __name__ == "__main__":
    sys.exit(main())
