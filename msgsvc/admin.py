"""``python -m msgsvc.admin``: the operator's accounts tools, without a window.

Works on the server's SQLite file directly, or on its Redis (``--redis``),
also while the server runs: a running server (every node, with Redis) picks
a reset or a removal up within :attr:`msgsvc.auth.accounts.Accounts.WATCH_INTERVAL`
seconds, and tells the owner of a reset name, if online, why.  With Redis, a
name online on a node is not removed; an SQLite file does not know who is
online on a server using it: a name online there stays in its log.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import ensureDeferred

from msgsvc.auth.store import Reset, StillOnline
from msgsvc.options import DEFAULT_DB
from msgsvc.state import StoreError
from msgsvc.state.sqlite import Database


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m msgsvc.admin", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=DEFAULT_DB, help=f"the server's SQLite file (default {DEFAULT_DB})")
    parser.add_argument("--redis", help="the servers' Redis URL instead of --db (as their --redis)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the protected names, and when each password was set")
    reset = commands.add_parser("reset", help="remove a name's protection (a forgotten password)")
    reset.add_argument("name")
    reset.add_argument("--reason", required=True, help="why; the owner is told if online, and it is logged")
    remove = commands.add_parser(
        "remove", help="remove offline names from the username log, with their passwords and waiting messages"
    )
    remove.add_argument("names", nargs="+", metavar="name")
    remove.add_argument("--reason", required=True, help="why; it is logged")
    return parser


def _show(protected: list[tuple[str, float]]) -> None:
    for name, changed in protected:
        print(f"{name}\tprotected since {time.strftime('%Y-%m-%d %H:%M', time.localtime(changed))}")


def _removed(name: str, removal: Reset | None) -> int:
    """Say what became of the removal of ``name``; the exit status."""
    if removal is None:
        print(f"msgsvc.admin: {name} is not in the username log", file=sys.stderr)
        return 1
    print(f"{removal.name} removed from the username log ({removal.reason})")
    return 0


def _on_redis(args: argparse.Namespace, reason: str) -> int:
    """The command, on the Redis at ``args.redis``."""
    from twisted.internet.task import react

    from msgsvc.state.redis import RedisState
    from msgsvc.state.redislink import REPLY_TIMEOUT
    from msgsvc.state.redisurl import RedisURL

    try:
        url = RedisURL.usable(args.redis)
    except ValueError as e:
        print(f"msgsvc.admin: {e}", file=sys.stderr)
        return 2
    status = 0

    async def run(reactor: Any) -> None:
        nonlocal status
        state = RedisState(reactor, url)
        state.startService()
        try:
            await state.redis.ready(REPLY_TIMEOUT)
            if args.command == "list":
                _show(await state.protected())
                return
            if args.command == "remove":
                for name in args.names:
                    try:
                        status = max(status, _removed(name, await state.remove(name, reason, time.time())))
                    except StillOnline as e:
                        print(f"msgsvc.admin: {e}", file=sys.stderr)
                        status = max(status, 1)
                return
            reset = await state.reset(args.name, reason, time.time())
            if reset is None:
                print(f"msgsvc.admin: {args.name} is not protected", file=sys.stderr)
                status = 1
            else:
                print(f"{reset.name} is no longer protected ({reason})")
        except Exception as e:
            print(f"msgsvc.admin: {url}: {e or type(e).__name__}", file=sys.stderr)
            status = 2
        finally:
            await state.stopService()

    try:
        react(lambda reactor: ensureDeferred(run(reactor)))
    except SystemExit:
        pass
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reason = args.reason.strip() if args.command != "list" else ""
    if args.command != "list" and not reason:
        print("msgsvc.admin: give a reason", file=sys.stderr)
        return 2
    if args.redis:
        return _on_redis(args, reason)
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
            _show(database.protected())
            return 0
        if args.command == "remove":
            return max(_removed(name, database.remove(name, reason, time.time())) for name in args.names)
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
