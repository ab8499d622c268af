"""``python -m msgsvc.client``: the msgsvc client in a Tk window."""

from __future__ import annotations

import argparse
import os
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.environ.get("DISPLAY") and sys.platform.startswith("linux"):
        print("msgsvc client: no display (DISPLAY is not set); the window needs one.", file=sys.stderr)
        return 2
    from twisted.internet import reactor

    from msgsvc.client import tkreactor
    from msgsvc.client.connect import endpoint_connector
    from msgsvc.client.gui import ChatWindow
    from msgsvc.client.presenter import ChatPresenter

    root = tkinter.Tk()
    window = ChatWindow(root)
    presenter = ChatPresenter(window, endpoint_connector(reactor), reactor, args.username, args.server)
    window.bind(presenter)

    def close() -> None:
        gone = presenter.quit()
        gone.addTimeout(2, reactor)
        gone.addBoth(lambda _: reactor.stop())

    root.protocol("WM_DELETE_WINDOW", close)
    tkreactor.attach(root, reactor)
    presenter.start()
    reactor.run()
    tkreactor.detach()
    root.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
