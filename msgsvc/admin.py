"""``python -m msgsvc.admin``: the operator's accounts tools, without a window.

Works on the server's SQLite file directly, also while the server runs: a
running server picks a reset up within :attr:`msgsvc.auth.Accounts.WATCH_INTERVAL`
seconds and tells the owner, if online, why.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from msgsvc.state import StoreError
from msgsvc.state.sqlite import Database
from msgsvc.tap import DEFAULT_DB


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m msgsvc.admin", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the server's SQLite file (default {DEFAULT_DB})")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the protected names, and when each password was set")
    reset = commands.add_parser("reset", help="remove a name's protection (a forgotten password)")
    reset.add_argument("name")
    reset.add_argument("--reason", required=True, help="why; the owner is told if online, and it is logged")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not os.path.exists(args.db):
        print(f"msgsvc.admin: no such file: {args.db}", file=sys.stderr)
        return 2
    try:
        database = Database(args.db)
    except StoreError as e:
        print(f"msgsvc.admin: {e}", file=sys.stderr)
        return 2
    try:
        if args.command == "list":
            for name, changed in database.protected():
                print(f"{name}\tprotected since {time.strftime('%Y-%m-%d %H:%M', time.localtime(changed))}")
            return 0
        reason = args.reason.strip()
        if not reason:
            print("msgsvc.admin: give a reason", file=sys.stderr)
            return 2
        reset = database.reset(args.name, reason, time.time())
        if reset is None:
            print(f"msgsvc.admin: {args.name} is not protected", file=sys.stderr)
            return 1
        print(f"{reset.name} is no longer protected ({reason})")
        return 0
    except StoreError as e:
        print(f"msgsvc.admin: {e}", file=sys.stderr)
        return 2
    finally:
        database.close()


if __name__ == "__main__":
    sys.exit(main())
