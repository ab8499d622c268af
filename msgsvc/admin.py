"""``python -m msgsvc.admin``: the operator's accounts, history and rooms tools, without a window.

Works on the server's SQLite file directly, or on its Redis (``--redis``),
also while the server runs: a running server (every node, with Redis) picks
a reset or a removal up within :attr:`msgsvc.auth.accounts.Accounts.WATCH_INTERVAL`
seconds, and tells the owner of a reset name, if online, why.  With Redis, a
name online on a node is not removed; an SQLite file does not know who is
online on a server using it: a name online there stays in its log.

``history export`` writes a conversation (``#all``, a room, or its
participants' names, comma-separated), or every conversation a name takes part
in (``--user``: its direct conversations and the rooms it is a member of, each
whole; not ``#all``, nor rooms it has left: export those by name), as JSON
Lines: one message a line, oldest first; on the SQLite
file it first reads the whole history once (to build the index a server keeps
in memory: 1 to 3 seconds a million entries).  ``history purge --user`` drops
every message a name sent, in every conversation (a scan of the history); a
server running on the SQLite file builds its index again at its next
transaction (a scan), so that it answers without them at once.

``rooms list`` prints a line for each room: its name, modes (with the key and
the limit), members (``@`` an operator, ``+`` voiced; ``-`` none), bans and
topic, tab-separated.  ``rooms delete ROOM --reason R`` deletes a room with its
members and bans.  With Redis every node learns it at once (published on
``msgsvc:presence``): its members are told ``ROOMGONE``.  A server on the
SQLite file learns it only when it starts again (until then it keeps the room
in memory, and what it writes of it is not kept): stop it first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, ensureDeferred, succeed

from msgsvc.auth.store import Reset, StillOnline
from msgsvc.hub.contracts import RoomGone, RoomRecord, Stored
from msgsvc.hub.rules import is_valid_room, is_valid_username, room_key, username_key
from msgsvc.options import DEFAULT_DB
from msgsvc.state import StoreError
from msgsvc.state.sqlite import Database

if TYPE_CHECKING:
    from msgsvc.state.redis import RedisState

#: The node the operator's command speaks as, when it tells the nodes of a change: none of them.
OPERATOR = "msgsvc.admin"


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
    history = commands.add_parser(
        "history", help="export the history as JSON Lines, or purge what a name sent"
    )
    actions = history.add_subparsers(dest="action", required=True)
    export = actions.add_parser(
        "export", help="a conversation, or a name's conversations, one message a line"
    )
    export.add_argument(
        "conversation", nargs="?", help="#all, a room (#dev), or the participants' names: alice,bob"
    )
    export.add_argument(
        "--user", help="its direct conversations and the rooms it is a member of (not #all, nor rooms left)"
    )
    purge = actions.add_parser("purge", help="drop every message a name sent, in every conversation")
    purge.add_argument("--user", required=True)
    rooms = commands.add_parser("rooms", help="list the rooms, or delete one")
    room_actions = rooms.add_subparsers(dest="action", required=True)
    room_actions.add_parser("list", help="each room: modes, members and operators, bans, topic")
    delete = room_actions.add_parser("delete", help="delete a room, with its members and bans")
    delete.add_argument("room")
    delete.add_argument("--reason", required=True, help="why; its members are told")
    return parser


class _History(Protocol):
    """What the history commands read and drop, as RedisState and :class:`_Now` have it."""

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]: ...

    def latest(self, member: str, since: float, limit: int) -> Deferred[list[Stored]]: ...

    def purge_history(self, sender: str, at: float) -> Deferred[int]: ...

    def rooms(self) -> Deferred[list[RoomRecord]]: ...


class _Now:
    """A :class:`Database`'s history, as :class:`_History`: each Deferred has fired."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        return succeed(self._database.page_after(conversation, after, limit, since))

    def latest(self, member: str, since: float, limit: int) -> Deferred[list[Stored]]:
        return succeed(self._database.latest(member, since, limit))

    def purge_history(self, sender: str, at: float) -> Deferred[int]:
        # One transaction: the rows, the purge's time and the count of purges a server on the file looks
        # at go together.
        [dropped] = self._database.batch([lambda db: db.purge_history(sender, at)])
        assert isinstance(dropped, int)
        return succeed(dropped)

    def rooms(self) -> Deferred[list[RoomRecord]]:
        return succeed(self._database.rooms())


def _at_once(work: Coroutine[Any, Any, int]) -> int:
    """What ``work`` returns (or raises), when all it awaits has fired already (:class:`_Now`'s)."""
    try:
        work.send(None)
    except StopIteration as done:
        return int(done.value)
    raise AssertionError("a Database's history answers at once")


_PAGE = 1000  # entries read at a time
_ALL_CONVERSATIONS = 1_000_000_000


def _conversation(text: str) -> str:
    """The key of the conversation the operator named (``#all`` is a room's), or ValueError."""
    if text.startswith("#"):
        if not is_valid_room(text):
            raise ValueError(f"not a room name: {text!r}")
        return room_key(text)
    names = text.split(",")
    bad = [name for name in names if not is_valid_username(name)]
    if bad:
        raise ValueError(f"not a username: {bad[0]!r}")
    return ",".join(sorted({username_key(name) for name in names}))


async def _history(store: _History, args: argparse.Namespace) -> int:
    """``history export`` or ``history purge``, on ``store``; the exit status."""
    if args.action == "purge":
        dropped = await store.purge_history(args.user, time.time())
        print(f"purged {dropped} messages sent by {args.user}")
        return 0
    if (args.conversation is None) == (args.user is None):
        print("msgsvc.admin: history export: give a conversation or --user NAME", file=sys.stderr)
        return 2
    try:
        conversations = [_conversation(args.conversation)] if args.user is None else []
    except ValueError as e:
        print(f"msgsvc.admin: {e}", file=sys.stderr)
        return 2
    if args.user is not None:
        conversations = [e.conversation for e in await store.latest(args.user, 0.0, _ALL_CONVERSATIONS)]
        member = username_key(args.user)
        conversations += [room_key(r.name) for r in await store.rooms() if member in r.members]
    for conversation in conversations:
        after, more = "", True
        while more:
            entries, more = await store.page_after(conversation, after, _PAGE, 0.0)
            for entry in entries:
                print(json.dumps(dataclasses.asdict(entry), ensure_ascii=False))
            if entries:
                after = entries[-1].id
    return 0


def _show_rooms(records: list[RoomRecord]) -> None:
    """``rooms list``: a line for each room."""
    for record in records:
        modes = "+" + "".join(sorted(record.modes + ("k" if record.key else "") + ("l" if record.limit else "")))
        arguments = [str(value) for value in (record.key, record.limit) if value]
        members = sorted(record.members.values(), key=lambda m: username_key(m.name))
        marked = [("@" if m.op else "+" if m.voice else "") + m.name for m in members]
        bans = " ".join(sorted(ban.mask for ban in record.bans.values())) or "-"
        print("\t".join([record.name, " ".join([modes, *arguments]), " ".join(marked) or "-", bans, record.topic]))


def _room_to_delete(records: list[RoomRecord], name: str) -> RoomRecord | None:
    """The room ``name`` among ``records``; None (said) if there is none."""
    found = [r for r in records if room_key(r.name) == room_key(name)]
    if not found:
        print(f"msgsvc.admin: there is no room {name}", file=sys.stderr)
        return None
    return found[0]


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


async def _rooms_on_redis(state: RedisState, args: argparse.Namespace, reason: str) -> int:
    """``rooms list`` or ``rooms delete`` on Redis: a deletion published to every node; the exit status."""
    from msgsvc.state.cluster import publish_room_event

    records = await state.rooms()
    if args.action == "list":
        _show_rooms(records)
        return 0
    record = _room_to_delete(records, args.room)
    if record is None:
        return 1
    await state.delete_room(room_key(record.name))
    await publish_room_event(state.redis, RoomGone(record.name, reason), OPERATOR)
    print(f"{record.name} deleted ({reason})")
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
            await state.upgrade()  # what an older msgsvc kept where a name's keys go
            if args.command == "list":
                _show(await state.protected())
                return
            if args.command == "history":
                status = await _history(state, args)
                return
            if args.command == "rooms":
                status = await _rooms_on_redis(state, args, reason)
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
    reason = (getattr(args, "reason", None) or "").strip()
    if hasattr(args, "reason") and not reason:
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
        if args.command == "history":
            return _at_once(_history(_Now(database), args))
        if args.command == "rooms" and args.action == "list":
            _show_rooms(database.rooms())
            return 0
        if args.command == "rooms":
            record = _room_to_delete(database.rooms(), args.room)
            if record is None:
                return 1
            database.batch([lambda db: db.delete_room(room_key(record.name))])
            print(f"{record.name} deleted ({reason}); a server running on {args.db} keeps it until it restarts")
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
