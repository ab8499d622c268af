"""``python -m msgsvc.state.migrate --db FILE --redis URL``: copy an SQLite state into Redis.

Copies the username log, the accounts (with when each name was protected),
the operator's resets, the offline queues, the history, the read positions and the rooms (with their
members and bans), keeping ids,
spellings and times, in one Lua script (all or nothing). Redis must hold
no msgsvc state yet. Stop the server first: what it writes meanwhile would
not be copied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import react

from msgsvc.hub.contracts import Queued, RoomRecord
from msgsvc.hub.rules import room_key, username_key
from msgsvc.state import StoreError
from msgsvc.state.redis import (
    ACCOUNTS,
    ACCOUNTS_CHANGED,
    ACCOUNTS_SINCE,
    HISTORY_SIZE,
    INDEX,
    LAYOUT,
    LOG_FIRST,
    LOG_LAST,
    LOG_NAME,
    PLACES,
    PURGED,
    QUEUE_COUNT,
    QUEUE_ID,
    QUEUE_SENDERS,
    QUEUES,
    RESET_ID,
    RESETS,
    ROOM_SETTINGS,
    ROOMS,
    SENDER_OF,
    ban_entry,
    history_entry,
    member_entry,
    queue_entry,
    reset_member,
    room_entry,
    room_settings,
)
from msgsvc.state.redislink import REPLY_TIMEOUT, Commands, Script
from msgsvc.state.redisurl import RedisURL
from msgsvc.state.sqlite import Database

# KEYS: log name, first, last, accounts, changed, resets, reset id, queue id, queues, senders' counts, total,
# since, the history's size, the keys' layout, the rooms, their settings, the purged names
# ARGV: JSON {users: [[key, name, first, last]], accounts: [[key, hash, changed, since]],
#             resets: [[id, member]], queue: [[key, id, member]], history: [[conversation, member]],
#             purged: [[key, at]],
#             reads: [[key, conversation, position]],
#             rooms: [[room key, room, settings, [[name key, member]...], [[mask key, ban]...]]]},
#       every number as a string
IMPORT = Script(
    SENDER_OF
    + INDEX
    + PLACES
    + """
if redis.call('HLEN', KEYS[1]) > 0 then
  return redis.error_reply('this Redis database already holds a msgsvc username log')
end
local data = cjson.decode(ARGV[1])
for _, u in ipairs(data.users) do
  redis.call('HSET', KEYS[1], u[1], u[2])
  redis.call('HSET', KEYS[2], u[1], u[3])
  redis.call('HSET', KEYS[3], u[1], u[4])
end
for _, a in ipairs(data.accounts) do
  redis.call('HSET', KEYS[4], a[1], a[2])
  redis.call('HSET', KEYS[5], a[1], a[3])
  redis.call('HSET', KEYS[12], a[1], a[4])
end
local last = 0
for _, r in ipairs(data.resets) do
  redis.call('ZADD', KEYS[6], r[1], r[2])
  last = math.max(last, tonumber(r[1]))
end
redis.call('SET', KEYS[7], last)
last = 0
for _, q in ipairs(data.queue) do
  redis.call('ZADD', 'msgsvc:queue:' .. q[1], q[2], q[3])
  redis.call('SADD', KEYS[9], q[1])
  redis.call('HINCRBY', KEYS[10], sender_of(q[3]), 1)
  last = math.max(last, tonumber(q[2]))
end
redis.call('SET', KEYS[8], last)
redis.call('SET', KEYS[11], #data.queue)
local conversations = {}
for _, h in ipairs(data.history) do
  redis.call('ZADD', 'msgsvc:history:' .. h[1], 0, h[2])
  redis.call('ZADD', 'msgsvc:sent', 0, sent_of(h[1], h[2]))
  conversations[h[1]] = true
end
for conv in pairs(conversations) do settle(conv) end
redis.call('SET', KEYS[13], #data.history)
for _, p in ipairs(data.purged) do redis.call('HSET', KEYS[17], p[1], p[2]) end
redis.call('SET', KEYS[14], 4)
for _, r in ipairs(data.reads) do redis.call('HSET', 'msgsvc:reads:' .. r[1], r[2], r[3]) end
for _, r in ipairs(data.rooms) do
  redis.call('HSET', KEYS[15], r[1], r[2])
  redis.call('HSET', KEYS[16], r[1], r[3])
  for _, m in ipairs(r[4]) do
    redis.call('HSET', 'msgsvc:members:' .. r[1], m[1], m[2])
    redis.call('SADD', 'msgsvc:memberships:' .. m[1], r[1])
  end
  for _, b in ipairs(r[5]) do redis.call('HSET', 'msgsvc:bans:' .. r[1], b[1], b[2]) end
end
return {#data.users, #data.accounts, #data.queue, #data.history, #data.reads, #data.rooms}
"""
)


def _queued_entry(q: Queued) -> str:
    return queue_entry(q.sender, q.kind, q.recipients, q.text, q.sent_at, q.message_id)


def _room(record: RoomRecord) -> list[Any]:
    members = [[key, member_entry(m)] for key, m in record.members.items()]
    bans = [[key, ban_entry(b)] for key, b in record.bans.items()]
    return [room_key(record.name), room_entry(record), room_settings(record), members, bans]


def export(database: Database) -> dict[str, list[list[Any]]]:
    """What the SQLite file holds, as :data:`IMPORT` takes it."""
    return {
        "users": [
            [username_key(r.name), r.name, repr(r.first_seen), repr(r.last_seen)] for r in database.load()
        ],
        "accounts": [
            [key, hashed, repr(changed), repr(database.protected_since(key) or changed)]
            for key, hashed, changed in database.accounts()
        ],
        "resets": [[str(r.id), reset_member(r)] for r in database.resets_after(0) or ()],
        "queue": [[key, str(q.id), f"{q.id}|{_queued_entry(q)}"] for key, q in database.queued()],
        "history": [[e.conversation, history_entry(e)] for e in database.history()],
        "purged": [[key, repr(at)] for key, at in database.purged()],
        "reads": [list(read) for read in database.reads()],
        "rooms": [_room(record) for record in database.rooms()],
    }


async def _copy(reactor: Any, data: dict[str, list[list[Any]]], url: RedisURL) -> list[int]:
    redis = Commands(reactor, url, "migration")
    redis.start()
    try:
        await redis.ready(REPLY_TIMEOUT)
        keys = [LOG_NAME, LOG_FIRST, LOG_LAST, ACCOUNTS, ACCOUNTS_CHANGED, RESETS, RESET_ID, QUEUE_ID, QUEUES]
        keys += [QUEUE_SENDERS, QUEUE_COUNT, ACCOUNTS_SINCE, HISTORY_SIZE, LAYOUT, ROOMS, ROOM_SETTINGS]
        keys += [PURGED]
        counts: list[int] = await redis.script(IMPORT, keys, [json.dumps(data)])
        return counts
    finally:
        await redis.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m msgsvc.state.migrate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--db", required=True, help="the server's SQLite file")
    parser.add_argument(
        "--redis", required=True, help="redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        url = RedisURL.usable(args.redis)
    except ValueError as e:
        print(f"msgsvc.state.migrate: {e}", file=sys.stderr)
        return 2
    if not os.path.exists(args.db):
        print(f"msgsvc.state.migrate: no such file: {args.db}", file=sys.stderr)
        return 2
    try:
        database = Database(args.db)
        try:
            data = export(database)
        finally:
            database.close()
    except StoreError as e:
        print(f"msgsvc.state.migrate: {e}", file=sys.stderr)
        return 2
    status = 0

    def run(reactor: Any) -> Deferred[None]:
        def done(counts: list[int]) -> None:
            names, accounts, messages, entries, reads, rooms = counts
            print(
                f"copied {names} names, {accounts} passwords, {messages} waiting messages,"
                f" {entries} history entries, {reads} read positions and {rooms} rooms to {url}"
            )

        def failed(failure: Any) -> None:
            nonlocal status
            status = 1
            print(f"msgsvc.state.migrate: {url}: {failure.getErrorMessage()}", file=sys.stderr)

        return ensureDeferred(_copy(reactor, data, url)).addCallbacks(done, failed)

    try:
        react(run)
    except SystemExit as e:
        if e.code:
            return int(e.code)
    return status


if __name__ == "__main__":
    sys.exit(main())
