"""The state in Redis: the username log, the accounts, the offline queue, the history and the rooms,
shared by every node.

Each change is one command or one Lua script, so it is atomic however many
nodes write at once; a Deferred fires once Redis has answered, which is as
durable as the server's persistence makes it (docs/scaling.rst: AOF with
``appendfsync always`` loses nothing acknowledged, ``everysec`` up to a
second).  The keys, all under ``msgsvc:``:

=========================  ======  =================================================
``msgsvc:log:name``        hash    name key -> the name as first registered
``msgsvc:log:first``       hash    name key -> first seen (seconds since the epoch)
``msgsvc:log:last``        hash    name key -> last seen
``msgsvc:accounts``        hash    name key -> password hash (argon2id, PHC string)
``msgsvc:accounts:changed``  hash  name key -> when the password was set
``msgsvc:accounts:since``  hash    name key -> when it was protected (kept by a new password)
``msgsvc:accounts:released``  hash  name key -> when (Redis's clock) it was last reset or removed
``msgsvc:resets``          zset    reset id -> JSON ``[id, name, at, reason]`` (``, true]``: a removal)
``msgsvc:resets:id``       string  the last reset id
``msgsvc:queue:KEY``       zset    message id -> ``ID|SENT_AT|JSON [sender, kind, group, text, MSGID]``
``msgsvc:queues``          set     the name keys that have messages waiting
``msgsvc:queues:id``       string  the last message id
``msgsvc:queues:senders``  hash    sender's name key -> messages waiting from it
``msgsvc:queues:count``    string  messages waiting in all the queues
``msgsvc:history:CONV``    zset    score 0, ``MSGID|JSON [at, sender, kind, recipients, text]``
``msgsvc:histories``       hash    conversation -> its newest message id
``msgsvc:histories:size``  string  entries in all the histories
``msgsvc:purged``          hash    name key -> when its history was last purged: :data:`APPEND` leaves out
                                   an entry it sent before then
``msgsvc:sent``            zset    score 0, ``KEY|CONV|MSGID``: each entry's place by its sender's name key,
                                   what an unread count counts the reader's own by
``msgsvc:conversations:KEY``  zset  conversation -> its newest id's time (:func:`id_time_score`):
                                   the direct conversations of a name that have a history
``msgsvc:reads:KEY``       hash    conversation -> the name's read position in it (a message id)
``msgsvc:opened:KEY``      zset    group conversation -> when the name opened it (:data:`OPEN_GROUP`), the
                                   last day's (the key expires a day after the last)
``msgsvc:layout``          string  the keys' layout (2: the names' conversations by newest time; 3: bans
                                   by mask; 4: ``msgsvc:sent``)
``msgsvc:rooms``           hash    room key -> JSON ``[name, created, founder]``: every room
``msgsvc:rooms:settings``  hash    room key -> JSON ``[topic, topic_by, topic_at, modes, key, limit, version]``
                                   (version: of the modes, key, limit and bans; 0 if absent)
``msgsvc:rooms:version``   string  the last version given a change of a room's modes and bans (:data:`SET_MODES`)
                                   or a member's entry (:data:`ENTER`: the room's version too)
``msgsvc:members:ROOM``    hash    name key -> JSON ``[name, op, voice, since, version, joined]``: the room's
                                   members (version: of the op and voice; joined: of the entry; 0 if absent)
``msgsvc:bans:ROOM``       hash    mask key -> JSON ``[mask, by, at]``: the room's bans
``msgsvc:verdicts:ROOM``   hash    JSON of a joiner's masks -> ``banned`` or ``in``: :data:`ENTER`'s verdicts
                                   of the room's bans, gone with any change of them (at most
                                   :data:`VERDICTS_MAX`)
``msgsvc:memberships:KEY``  set    the room keys the name is a member of (what a reset or a removal drops)
``msgsvc:invites:ROOM``    hash    name key -> JSON ``[op, at]``: the invitations pending (an operator's
                                   or not, made when), used up by :data:`ENTER` (at most
                                   :data:`~msgsvc.hub.contracts.ROOM_INVITES_MAX`: a new one ends the oldest)
``msgsvc:invited:KEY``     set     the room keys the name is invited to (what :data:`UNINVITE` ends)
=========================  ======  =================================================

A key made of a name (``KEY``), a conversation (``CONV``) or a room (``ROOM``: ``#`` and its name, lower
case) is under a prefix of its own that no other key shares (:data:`NAMED`): whatever a user is called,
its keys are its own.  An older msgsvc kept the queue's counters at ``msgsvc:queue:id``,
``msgsvc:queue:count`` and ``msgsvc:queue:senders``, the queues of users named so: :data:`UPGRADE` moves them, once, before a server reads the log; it kept a
name's conversations as a set, which :data:`UPGRADE_INDEX` indexes by newest time then, once.

The queue's two counts are kept by every script that adds or removes a queued message, in the same
script; the history's last three by every script that adds or removes entries (:data:`APPEND`,
:data:`TRIM`, :data:`PURGE`), so a listing of a name's conversations reads only those it lists
(:data:`LATEST`).  A history's members sort as their ids (26 characters, then ``|``), so
pages are ``ZRANGEBYLEX`` ranges, and a time is a position (:func:`message_id_floor`): messages come
from several nodes' clocks, out of order by a little, which a Stream (ids only growing) would refuse.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.auth.store import Reset, StillOnline
from msgsvc.hub.contracts import (
    ROOM_BANS_MAX,
    ROOM_INVITES_MAX,
    Ban,
    Enqueue,
    Joining,
    Kind,
    Member,
    ModeChange,
    ModesKept,
    Queued,
    Refusal,
    RoomRecord,
    Stored,
    UserRecord,
)
from msgsvc.hub.kept import Kept
from msgsvc.hub.ids import message_id_floor
from msgsvc.hub.rules import mask_key, oldest_first, room_key, username_key
from msgsvc.state import Snapshot
from msgsvc.state.redislink import Commands, Script
from msgsvc.state.redisurl import RedisURL

PREFIX = "msgsvc:"
LOG_NAME, LOG_FIRST, LOG_LAST = (f"{PREFIX}log:{field}" for field in ("name", "first", "last"))
ACCOUNTS, ACCOUNTS_CHANGED = f"{PREFIX}accounts", f"{PREFIX}accounts:changed"
ACCOUNTS_SINCE, ACCOUNTS_RELEASED = f"{PREFIX}accounts:since", f"{PREFIX}accounts:released"
RESETS, RESET_ID = f"{PREFIX}resets", f"{PREFIX}resets:id"
QUEUES = f"{PREFIX}queues"
QUEUE_ID, QUEUE_SENDERS, QUEUE_COUNT = (f"{QUEUES}:{field}" for field in ("id", "senders", "count"))
ONLINE = f"{PREFIX}online"  # each online name's holder, one of its sessions (msgsvc.state.cluster)
HISTORIES, HISTORY_SIZE = f"{PREFIX}histories", f"{PREFIX}histories:size"
SENT = f"{PREFIX}sent"  # each entry's place by its sender: what UNREAD counts the reader's own by
PURGED = f"{PREFIX}purged"  # when each name key's history was last purged
LAYOUT = f"{PREFIX}layout"


ROOMS, ROOM_SETTINGS, ROOMS_VERSION = f"{PREFIX}rooms", f"{PREFIX}rooms:settings", f"{PREFIX}rooms:version"

#: The prefixes of the keys made of a name, a conversation or a room: no other key starts with one.
NAMED = (
    QUEUE,
    HISTORY,
    CONVERSATIONS,
    READS,
    MEMBERS,
    BANS,
    VERDICTS,
    MEMBERSHIPS,
    INVITES,
    INVITED,
    SESSIONS,
    RECEIVER,
    OPENED,
) = (
    f"{PREFIX}{family}:"
    for family in (
        "queue",
        "history",
        "conversations",
        "reads",
        "members",
        "bans",
        "verdicts",
        "memberships",
        "invites",
        "invited",
        "sessions",
        "receiver",
        "opened",
    )
)
#: The most identities a room's ban verdicts are kept for (``msgsvc:verdicts:ROOM``): then they start again.
VERDICTS_MAX = 1024


def queue_key(key: str) -> str:
    return f"{QUEUE}{key}"


def history_key(conversation: str) -> str:
    return f"{HISTORY}{conversation}"


def sessions_key(key: str) -> str:
    """A name's sessions online (msgsvc.state.cluster): ``NODE/SESSION`` -> its holder (JSON: node, peer,
    front, since)."""
    return f"{SESSIONS}{key}"


def receiver_key(key: str) -> str:
    """The session an account's offline queue goes to (msgsvc.state.cluster): ``NODE/SESSION``."""
    return f"{RECEIVER}{key}"


def conversations_key(key: str) -> str:
    return f"{CONVERSATIONS}{key}"


def reads_key(key: str) -> str:
    return f"{READS}{key}"


def members_key(room: str) -> str:
    return f"{MEMBERS}{room}"


def bans_key(room: str) -> str:
    return f"{BANS}{room}"


def verdicts_key(room: str) -> str:
    return f"{VERDICTS}{room}"


def memberships_key(key: str) -> str:
    return f"{MEMBERSHIPS}{key}"


def invites_key(room: str) -> str:
    return f"{INVITES}{room}"


def invited_key(key: str) -> str:
    return f"{INVITED}{key}"


# sender_of(member): the name key of a queued message's sender (names are ASCII: lower case is the key).
SENDER_OF = """
local function sender_of(member)
  return string.lower(cjson.decode(string.match(member, '^%d+|[^|]+|(.*)$'))[1])
end
"""

# forget(members): uncounts queued messages being removed, from their senders' counts and the total.
_FORGET = (
    SENDER_OF
    + """
local function forget(members)
  for _, member in ipairs(members) do
    local sender = sender_of(member)
    if redis.call('HINCRBY', 'msgsvc:queues:senders', sender, -1) <= 0 then
      redis.call('HDEL', 'msgsvc:queues:senders', sender)
    end
  end
  if #members > 0 then redis.call('DECRBY', 'msgsvc:queues:count', #members) end
end
"""
)

# Drops the messages at the head of queue q (the oldest ids) sent before `oldest`.  Ids grow with
# time, so the expired ones are at the head: with the nodes' clocks apart, as exactly as they agree.
_DROP_EXPIRED = (
    _FORGET
    + """
local function drop_expired(q, oldest)
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)
    if #head == 0 then return end
    local at = tonumber(string.match(head[1], '^%d+|([^|]+)|'))
    if at >= oldest then return end
    forget(head)
    redis.call('ZREMRANGEBYRANK', q, 0, 0)
  end
end
"""
)

# The queue's counters as an older msgsvc kept them, among the queues: a counter is told from the queue
# of a user named as it by its type.  Moved in one script, however many nodes start at once; the counts are
# made again from the queues (what is under a counter's old key that is not a counter is a user's queue).
UPGRADE = Script(
    SENDER_OF
    + """
-- KEYS: the old id, count and senders, the new ones, the set of queues.  Returns the old keys moved.
local function is(key, kind) return redis.call('TYPE', key)['ok'] == kind end
local moved = {}
for i, kind in ipairs({'string', 'string', 'hash'}) do
  if is(KEYS[i], kind) then table.insert(moved, KEYS[i]) end
end
if #moved == 0 then return moved end
local last = tonumber(redis.call('GET', KEYS[4]) or 0)
if is(KEYS[1], 'string') then last = math.max(last, tonumber(redis.call('GET', KEYS[1]))) end
redis.call('DEL', KEYS[5], KEYS[6], unpack(moved))
local total = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local members = redis.call('ZRANGE', 'msgsvc:queue:' .. key, 0, -1, 'WITHSCORES')
  for i = 1, #members, 2 do
    redis.call('HINCRBY', KEYS[6], sender_of(members[i]), 1)
    last = math.max(last, tonumber(members[i + 1]))
    total = total + 1
  end
end
redis.call('SET', KEYS[4], last)
redis.call('SET', KEYS[5], total)
return moved
"""
)

RECORD_SEEN = Script(
    """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
return 1
"""
)

ENQUEUE = Script(
    _DROP_EXPIRED
    + """
-- KEYS: the id counter, the set of queues, the senders' counts, the total
-- ARGV: oldest, limit, sent_at|payload, the sender's key, its quota, the total's limit, recipient keys...
local oldest, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local sender_limit, total_limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local queued = {}
for i = 7, #ARGV do
  local q = 'msgsvc:queue:' .. ARGV[i]
  drop_expired(q, oldest)
  if tonumber(redis.call('HGET', KEYS[3], ARGV[4]) or 0) >= sender_limit
      or tonumber(redis.call('GET', KEYS[4]) or 0) >= total_limit then
    break
  end
  if redis.call('ZCARD', q) < limit then
    local id = redis.call('INCR', KEYS[1])
    redis.call('ZADD', q, id, id .. '|' .. ARGV[3])
    redis.call('SADD', KEYS[2], ARGV[i])
    redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
    redis.call('INCR', KEYS[4])
    table.insert(queued, ARGV[i])
  end
end
return queued
"""
)

BACKLOG = Script(
    _DROP_EXPIRED
    + """
-- KEYS: the queue; ARGV: after, oldest, limit
drop_expired(KEYS[1], tonumber(ARGV[2]))
local page = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'LIMIT', 0, tonumber(ARGV[3]))
local last = ARGV[1]
if #page > 0 then last = string.match(page[#page], '^(%d+)|') end
return {page, redis.call('ZCOUNT', KEYS[1], '(' .. last, '+inf')}
"""
)

ACKNOWLEDGE = Script(
    _FORGET
    + """
-- KEYS: the queue, the set of queues; ARGV: up to, the name key
forget(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local left = redis.call('ZCARD', KEYS[1])
if left == 0 then redis.call('SREM', KEYS[2], ARGV[2]) end
return left
"""
)

EXPIRE = Script(
    _DROP_EXPIRED
    + """
-- KEYS: the set of queues; ARGV: oldest.  Returns key, count, key, count...
local counts = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local q = 'msgsvc:queue:' .. key
  drop_expired(q, tonumber(ARGV[1]))
  local left = redis.call('ZCARD', q)
  if left == 0 then
    redis.call('SREM', KEYS[1], key)
  else
    table.insert(counts, key)
    table.insert(counts, left)
  end
end
return counts
"""
)

#: How far ahead of Redis's clock a node's may run (seconds): a history entry dated later is not kept
#: (:data:`APPEND`), and a name's history reads from this long after its last reset (:data:`SET_PASSWORD`),
#: so that no message taken before a reset can be dated after the next owner's protection
#: (docs/security.rst, "Clocks across nodes").
CLOCK_MARGIN = 1.0

# now(): Redis's clock, seconds since the epoch: the one clock every node's scripts share.
NOW = """
local function now()
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1e6
end
"""

# Tells every node (msgsvc.state.cluster) that the name is protected now.  A name that had no password is
# protected from now on (its history reads from then: msgsvc.hub.contracts.HistoryStore.protected_since):
# from the setting node's time, but not before Redis's own, nor before CLOCK_MARGIN after its last reset.
# With ARGV[6] '1' (a first password), a name that has one keeps it: its hash is returned, nothing written.
SET_PASSWORD = Script(
    NOW
    + """
-- KEYS: accounts, changed, since, released; ARGV: name key, hash, when, node, margin, first only
if ARGV[6] == '1' then
  local held = redis.call('HGET', KEYS[1], ARGV[1])
  if held then return {held} end
end
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  local since = math.max(tonumber(ARGV[3]), now())
  local released = redis.call('HGET', KEYS[4], ARGV[1])
  if released then since = math.max(since, tonumber(released) + tonumber(ARGV[5])) end
  redis.call('HSET', KEYS[3], ARGV[1], string.format('%.17g', since))
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PUBLISH', 'msgsvc:presence', cjson.encode({e = 'protected', key = ARGV[1], node = ARGV[4]}))
return 1
"""
)

# forget_memberships(key): the name's memberships of every room dropped (its reset or removal).
FORGET_MEMBERSHIPS = """
local function forget_memberships(key)
  local memberships = 'msgsvc:memberships:' .. key
  for _, room in ipairs(redis.call('SMEMBERS', memberships)) do
    redis.call('HDEL', 'msgsvc:members:' .. room, key)
  end
  redis.call('DEL', memberships)
end
"""

RESET = Script(
    _FORGET
    + NOW
    + FORGET_MEMBERSHIPS
    + """
-- KEYS: accounts, changed, the queue, the set of queues, log names, resets, reset id, since, released,
-- read positions.  ARGV: name key, name as asked, at, reason
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[8], ARGV[1])
redis.call('DEL', KEYS[10])
forget_memberships(ARGV[1])
redis.call('HSET', KEYS[9], ARGV[1], string.format('%.17g', now()))
-- Anyone may take the name now: what waited for its owner, its read positions, its memberships must not
-- stand for theirs.
forget(redis.call('ZRANGE', KEYS[3], 0, -1))
redis.call('DEL', KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
local name = redis.call('HGET', KEYS[5], ARGV[1]) or ARGV[2]
local id = redis.call('INCR', KEYS[7])
redis.call('ZADD', KEYS[6], id, cjson.encode({id, name, tonumber(ARGV[3]), ARGV[4]}))
return {id, name}
"""
)

# Removes a name from the log, with its password and what waited for it, unless it is online on a node
# alive; noted as a reset that says removed, which every node picks up (msgsvc.auth.accounts.Accounts).
REMOVE = Script(
    _FORGET
    + NOW
    + FORGET_MEMBERSHIPS
    + """
-- KEYS: log name, first, last, accounts, changed, the queue, the set of queues, resets, reset id, its
-- sessions, since, released, read positions.  ARGV: name key, at, reason
local name = redis.call('HGET', KEYS[1], ARGV[1])
if not name then return false end
for _, held in ipairs(redis.call('HVALS', KEYS[10])) do
  if redis.call('EXISTS', 'msgsvc:node:' .. cjson.decode(held).node) == 1 then return {'online', name} end
end
for _, i in ipairs({1, 2, 3, 4, 5, 11}) do redis.call('HDEL', KEYS[i], ARGV[1]) end
redis.call('HSET', KEYS[12], ARGV[1], string.format('%.17g', now()))
redis.call('DEL', KEYS[13])
forget_memberships(ARGV[1])
forget(redis.call('ZRANGE', KEYS[6], 0, -1))
redis.call('DEL', KEYS[6])
redis.call('SREM', KEYS[7], ARGV[1])
local id = redis.call('INCR', KEYS[9])
redis.call('ZADD', KEYS[8], id, cjson.encode({id, name, tonumber(ARGV[2]), ARGV[3], true}))
return {'removed', name, id}
"""
)


# index(conv, id): conv at its newest id `id`'s time in its participants' indexes
# (``msgsvc:conversations:NAME``), or out of them (id false; none for #all).
# settle(conv): its newest id in msgsvc:histories and those indexes as its history holds it now; an
# empty one is forgotten in both.
INDEX = """
local function index(conv, id)
  if conv == '#all' then return end
  for name in string.gmatch(conv, '[^,]+') do
    if id then
      redis.call('ZADD', 'msgsvc:conversations:' .. name, tonumber(string.sub(id, 1, 10), 36), conv)
    else
      redis.call('ZREM', 'msgsvc:conversations:' .. name, conv)
    end
  end
end
local function settle(conv)
  local newest = redis.call('ZREVRANGE', 'msgsvc:history:' .. conv, 0, 0)[1]
  newest = newest and string.sub(newest, 1, 26) or false
  if newest == redis.call('HGET', 'msgsvc:histories', conv) then return end
  if newest then
    redis.call('HSET', 'msgsvc:histories', conv, newest)
  else
    redis.call('HDEL', 'msgsvc:histories', conv)
  end
  index(conv, newest)
end
"""

# call(command, key, option, args): the command with `option` (unless false) and then `args`, a thousand at
# a time (unpack's bound); the sum of its answers.
# sender_key(member): the name key of a history entry's sender, from its member (``ID|[at, "sender", ...``:
# the first quote opens the sender's name).
# sent_of(conv, member): an entry's place in msgsvc:sent (its sender's name key, its conversation, its id).
# unsend(places): those places out of msgsvc:sent.
PLACES = """
local function call(command, key, option, args)
  local sum = 0
  for first = 1, #args, 1000 do
    local last = math.min(first + 999, #args)
    if option then
      sum = sum + redis.call(command, key, option, unpack(args, first, last))
    else
      sum = sum + redis.call(command, key, unpack(args, first, last))
    end
  end
  return sum
end
local function sender_key(member)
  local open = string.find(member, '"', 28, true)
  return string.lower(string.sub(member, open + 1, string.find(member, '"', open + 1, true) - 1))
end
local function sent_of(conv, member)
  return sender_key(member) .. '|' .. conv .. '|' .. string.sub(member, 1, 26)
end
local function unsend(places)
  call('ZREM', 'msgsvc:sent', false, places)
end
"""

# Appends the entries of one reactor pass, each trimmed to its conversation's newest `keep` at once;
# then moves each conversation's newest id in its participants' indexes.  An entry whose id is dated more
# than CLOCK_MARGIN ahead of Redis's clock is not kept: its node's clock is wrong.  Commands go by the
# pass, not by the entry: one ZADD a conversation (its entries together), the newest ids read and written
# in one HMGET and one HSET, one ZADD a participant's index; a ZCARD only where the conversation had
# entries before (a conversation not in msgsvc:histories has none) or got more than `keep` now.  An
# entry whose sender was purged at or after its time (msgsvc:purged, one HMGET of the pass's senders, none
# if nobody was ever purged) is left out: written late (a node's retry, a slow append), it would undo the
# purge.
APPEND = Script(
    NOW
    + PLACES
    + """
-- KEYS: the size, the purged; ARGV: the margin, keep, the entries (a line each: conversation, tab,
-- member).  Returns the change in entries, and how many were too new to keep.
local crockford = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
-- stamp(seconds): the first 10 characters of the ids of that time's millisecond (its time)
local function stamp(seconds)
  local millis, text = math.floor(seconds * 1000), ''
  for _ = 1, 10 do
    local digit = millis % 32
    text = string.sub(crockford, digit + 1, digit + 1) .. text
    millis = (millis - digit) / 32
  end
  return text
end
-- The greatest id of the millisecond CLOCK_MARGIN ahead of Redis's clock: a later one is too new.
local latest = stamp(now() + tonumber(ARGV[1])) .. 'ZZZZZZZZZZZZZZZZ'
local oldest = latest  -- the oldest kept entry's id
local find, sub, lower = string.find, string.sub, string.lower
local keep, added, too_new = tonumber(ARGV[2]), 0, 0
-- The conversations in order (nconvs), each one's ZADD arguments ('0', member...) and newest id; the
-- places of msgsvc:sent's ZADD arguments ('0', place...: nsent), the places of entries trimmed; the
-- senders' name keys, each once.  Counted as they grow: a table's # is a search.
local convs, nconvs, entries, newest_of = {}, 0, {}, {}
local sent, nsent, unsent = {}, 0, {}
local senders, seen = {}, {}
local lines, at, size = ARGV[3], 1, #ARGV[3]  -- read by plain finds: a pattern's classes go a character at a time
while at <= size do
  local tab = find(lines, '\\t', at, true)
  local stop = find(lines, '\\n', tab, true) or size + 1
  local member = sub(lines, tab + 1, stop - 1)
  local id = sub(member, 1, 26)
  if id > latest then
    too_new = too_new + 1
  else
    local conv = sub(lines, at, tab - 1)
    if id < oldest then oldest = id end
    local open = find(member, '"', 28, true)  -- the sender's name: the first quoted string
    local sender = lower(sub(member, open + 1, find(member, '"', open + 1, true) - 1))
    local own = entries[conv]
    if own then
      if id > newest_of[conv] then newest_of[conv] = id end
      own[#own + 1] = '0'  -- a string: Redis writes a number given it with sprintf
      own[#own + 1] = member
    else
      entries[conv] = {'0', member}
      nconvs = nconvs + 1
      convs[nconvs] = conv
      newest_of[conv] = id
    end
    sent[nsent + 1] = '0'
    sent[nsent + 2] = sender .. '|' .. conv .. '|' .. id
    nsent = nsent + 2
    if not seen[sender] then
      seen[sender] = true
      senders[#senders + 1] = sender
    end
  end
  at = stop + 1
end
-- Each sender's purge time, if at or after the pass's oldest entry's millisecond (and a millisecond's
-- grace: an id's millisecond is its time's, a microsecond rounded up).
-- None if nobody was ever purged (the key absent): one EXISTS, not an HMGET of every sender.
local purged, any, first_time = {}, false, sub(oldest, 1, 10)
for first = 1, redis.call('EXISTS', KEYS[2]) == 1 and #senders or 0, 1000 do
  local read = redis.call('HMGET', KEYS[2], unpack(senders, first, math.min(first + 999, #senders)))
  for i = 1, #read do
    if read[i] and stamp(tonumber(read[i]) + 0.001) >= first_time then
      purged[senders[first + i - 1]] = tonumber(read[i])
      any = true
    end
  end
end
if any then  -- again without the entries sent before their sender's purge
  local left_convs = {}
  sent = {}
  for _, conv in ipairs(convs) do
    local own, left, id = entries[conv], {}, ''
    for j = 2, #own, 2 do
      local sender = sender_key(own[j])
      local purge = purged[sender]
      if not purge or purge < tonumber(string.match(own[j], '^[^|]*|%[([^,]+),')) then
        left[#left + 1] = '0'
        left[#left + 1] = own[j]
        sent[#sent + 1] = '0'
        sent[#sent + 1] = sent_of(conv, own[j])
        if sub(own[j], 1, 26) > id then id = sub(own[j], 1, 26) end
      end
    end
    entries[conv], newest_of[conv] = left, id
    if #left > 0 then left_convs[#left_convs + 1] = conv end
  end
  convs = left_convs
end
local olds = {}
for first = 1, #convs, 1000 do
  local read = redis.call('HMGET', 'msgsvc:histories', unpack(convs, first, math.min(first + 999, #convs)))
  for i = 1, #read do olds[first + i - 1] = read[i] end
end
local newest, nnewest, indexes, names, nnames = {}, 0, {}, {}, 0  -- HSET's arguments; each name's ZADD
-- arguments, the names
local scores = {}  -- each time's score in the indexes (the time as a string, made once a pass)
for i, conv in ipairs(convs) do
  local own, history, old = entries[conv], 'msgsvc:history:' .. conv, olds[i]
  local new
  if #own == 2 then
    new = redis.call('ZADD', history, 'NX', '0', own[2])
  else
    new = call('ZADD', history, 'NX', own)
  end
  if new > 0 then
    added = added + new
    if old or #own > 2 * keep then
      local over = redis.call('ZCARD', history) - keep
      if over > 0 then
        for _, member in ipairs(redis.call('ZRANGE', history, 0, over - 1)) do
          unsent[#unsent + 1] = sent_of(conv, member)
        end
        added = added - redis.call('ZREMRANGEBYRANK', history, 0, over - 1)
      end
    end
    local id = newest_of[conv]
    if not old or id > old then
      newest[nnewest + 1] = conv
      newest[nnewest + 2] = id
      nnewest = nnewest + 2
      if conv ~= '#all' then
        local time = sub(id, 1, 10)
        local score = scores[time]
        if not score then
          score = tostring(tonumber(time, 36))
          scores[time] = score
        end
        local from = 1
        repeat  -- each participant's name key: conv is them joined by commas
          local comma = find(conv, ',', from, true)
          local name = sub(conv, from, (comma or 0) - 1)
          local index = indexes[name]
          if index then
            index[#index + 1] = score
            index[#index + 1] = conv
          else
            indexes[name] = {score, conv}
            nnames = nnames + 1
            names[nnames] = name
          end
          from = (comma or 0) + 1
        until not comma
      end
    end
  end
end
if #sent > 0 then call('ZADD', 'msgsvc:sent', false, sent) end
unsend(unsent)
if #newest > 0 then call('HSET', 'msgsvc:histories', false, newest) end
for i = 1, nnames do
  local name = names[i]
  local index = indexes[name]
  if #index == 2 then  -- the commonest: one conversation
    redis.call('ZADD', 'msgsvc:conversations:' .. name, index[1], index[2])
  else
    call('ZADD', 'msgsvc:conversations:' .. name, false, index)
  end
end
if added ~= 0 then redis.call('INCRBY', KEYS[1], added) end
return {added, too_new}
"""
)

# Each name's conversations as an older msgsvc kept them (a set, every one read by a listing): indexed by
# their newest times instead, from msgsvc:histories, in one script however many nodes start at once.
UPGRADE_INDEX = Script(
    INDEX
    + """
-- KEYS: the layout's version, the newest ids.  Returns the conversations indexed.
if tonumber(redis.call('GET', KEYS[1]) or 0) >= 2 then return 0 end
local indexed, newest = 0, redis.call('HGETALL', KEYS[2])
for i = 1, #newest, 2 do
  if newest[i] ~= '#all' then
    for name in string.gmatch(newest[i], '[^,]+') do
      local key = 'msgsvc:conversations:' .. name
      if redis.call('TYPE', key)['ok'] == 'set' then redis.call('DEL', key) end
    end
    index(newest[i], newest[i + 1])
    indexed = indexed + 1
  end
end
redis.call('SET', KEYS[1], 2)
return indexed
"""
)

# The bans as an older msgsvc kept them, by name (``KEY -> [name, by, at]``): by mask instead
# (``KEY!*@* -> [name!*@*, by, at]``), once, however many nodes start at once.
UPGRADE_BANS = Script(
    """
-- KEYS: the layout's version, the rooms.  Returns the bans rewritten.
if tonumber(redis.call('GET', KEYS[1]) or 0) >= 3 then return 0 end
local rewritten = 0
for _, room in ipairs(redis.call('HKEYS', KEYS[2])) do
  local bans = 'msgsvc:bans:' .. room
  local old = redis.call('HGETALL', bans)
  for i = 1, #old, 2 do
    if not string.find(old[i], '!', 1, true) then
      local name_end = string.find(old[i + 1], '"', 3, true)  -- ["name", ...]: a name holds no quote
      local entry = string.sub(old[i + 1], 1, name_end - 1) .. '!*@*' .. string.sub(old[i + 1], name_end)
      redis.call('HDEL', bans, old[i])
      redis.call('HSET', bans, old[i] .. '!*@*', entry)
      rewritten = rewritten + 1
    end
  end
end
redis.call('SET', KEYS[1], 3)
return rewritten
"""
)

# Each entry's place in msgsvc:sent, which an older msgsvc did not keep, from the histories: once,
# however many nodes start at once.
UPGRADE_SENT = Script(
    PLACES
    + """
-- KEYS: the layout's version, the newest ids, msgsvc:sent.  Returns the entries placed.
if tonumber(redis.call('GET', KEYS[1]) or 0) >= 4 then return 0 end
local placed = 0
for _, conv in ipairs(redis.call('HKEYS', KEYS[2])) do
  local places = {}
  for _, member in ipairs(redis.call('ZRANGE', 'msgsvc:history:' .. conv, 0, -1)) do
    places[#places + 1] = '0'
    places[#places + 1] = sent_of(conv, member)
  end
  call('ZADD', KEYS[3], false, places)
  placed = placed + #places / 2
end
redis.call('SET', KEYS[1], 4)
return placed
"""
)

# Drops a conversation's entries sent before `oldest` (by id up to its millisecond, then by time),
# and its oldest past `keep`.
TRIM = Script(
    INDEX
    + PLACES
    + """
-- KEYS: the history, the size; ARGV: conversation, message_id_floor(oldest), oldest, keep
local oldest, gone = tonumber(ARGV[3]), {}
for _, member in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[2])) do gone[#gone + 1] = member end
redis.call('ZREMRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[2])
while true do
  local head = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not head or tonumber(string.match(head, '^[^|]*|%[([^,]+),')) >= oldest then break end
  redis.call('ZREM', KEYS[1], head)
  gone[#gone + 1] = head
end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do gone[#gone + 1] = member end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
end
local dropped, places = #gone, {}
for i, member in ipairs(gone) do places[i] = sent_of(ARGV[1], member) end
unsend(places)
if dropped > 0 then
  redis.call('DECRBY', KEYS[2], dropped)
  settle(ARGV[1])
end
return dropped
"""
)

# Drops what one sender sent in one conversation: every entry read (the operator's command only).
PURGE = Script(
    INDEX
    + PLACES
    + """
-- KEYS: the history, the size; ARGV: conversation, the sender's name key
local dropped, places = 0, {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.lower(cjson.decode(string.match(member, '^[^|]*|(.*)$'))[2]) == ARGV[2] then
    redis.call('ZREM', KEYS[1], member)
    dropped = dropped + 1
    places[dropped] = sent_of(ARGV[1], member)
  end
end
unsend(places)
if dropped > 0 then
  redis.call('DECRBY', KEYS[2], dropped)
  settle(ARGV[1])
end
return dropped
"""
)

# Keeps when a name key's history was purged, by Redis's clock (the one APPEND judges entries by, not the
# operator's machine's): the latest of its purges' times.
PURGED_AT = Script(
    NOW
    + """
-- KEYS: the purged; ARGV: the name key
local kept, at = redis.call('HGET', KEYS[1], ARGV[1]), now()
if not kept or tonumber(kept) < at then redis.call('HSET', KEYS[1], ARGV[1], string.format('%.17g', at)) end
"""
)

# The newest entry of each of a name's direct conversations whose newest id is of a millisecond at least
# `floor`: the `limit` newest by time from the name's index, and those of the last one's millisecond
# (which may be newer by id), however many conversations it is in.  The caller sorts them and cuts.
LATEST = Script(
    """
-- KEYS: the name's conversations; ARGV: floor, limit.  Returns conversation, member...
local limit = tonumber(ARGV[2])
local listed = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, limit)
local found = {}
for i = 1, #listed, 2 do found[listed[i]] = true end
if limit > 0 and #listed == 2 * limit then
  for _, conv in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], listed[#listed], listed[#listed])) do
    found[conv] = true
  end
end
local out = {}
for conv in pairs(found) do
  table.insert(out, conv)
  table.insert(out, redis.call('ZREVRANGE', 'msgsvc:history:' .. conv, 0, 0)[1])
end
return out
"""
)


def id_time_score(message_id: str) -> int:
    """An index's score for ``message_id``: its time (the first 10 characters) read in base 36, which
    orders Crockford's digits as they sort, as the scripts read it (``tonumber(..., 36)``, one call)."""
    return int(message_id[:10], 36)


# A read position only moves forward: the greater of the kept one and the one given (ids compare as strings).
SET_READ = Script(
    """
-- KEYS: the name's read positions; ARGV: conversation, position.  Returns the position kept.
local kept = redis.call('HGET', KEYS[1], ARGV[1])
if kept and kept >= ARGV[2] then return kept end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""
)

# Counts the entries of a history after a position sent by others than the reader, up to a cap: those after
# it, less the reader's own after it (its places in msgsvc:sent, ``reader|conversation|id``), two counts
# of a range, however many either holds.
UNREAD = Script(
    """
-- KEYS: the history, msgsvc:sent; ARGV: after, the reader's name key, cap, conversation
local lower, own = '-', ARGV[2] .. '|' .. ARGV[4] .. '|'  -- own: the reader's places in the conversation
local first = '[' .. own
if ARGV[1] ~= '' then
  lower = '(' .. ARGV[1] .. '}'  -- the members of the id `after` are below
  first = '(' .. own .. ARGV[1]
end
local after = redis.call('ZLEXCOUNT', KEYS[1], lower, '+')
local mine = redis.call('ZLEXCOUNT', KEYS[2], first, '(' .. ARGV[2] .. '|' .. ARGV[4] .. '}')
return math.min(after - mine, tonumber(ARGV[3]))
"""
)


# Whether a name may send to a group (a direct conversation of three or more): yes if it has a history,
# or the name opened it in the window, or opened fewer than `most` others in it (then counted as opened).
OPEN_GROUP = Script(
    """
-- KEYS: the newest ids, the name's groups opened; ARGV: conversation, at, since, most, seconds to keep.
-- Returns 1 (may send) or 0.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""
)


# drop_room(room): a room forgotten, with its members (and their memberships of it), its bans and their
# verdicts, its invitations (and the names' of it).
DROP_ROOM = """
local function drop_room(room)
  local members, invites = 'msgsvc:members:' .. room, 'msgsvc:invites:' .. room
  for _, key in ipairs(redis.call('HKEYS', members)) do
    redis.call('SREM', 'msgsvc:memberships:' .. key, room)
  end
  for _, key in ipairs(redis.call('HKEYS', invites)) do
    redis.call('SREM', 'msgsvc:invited:' .. key, room)
  end
  redis.call('DEL', members, invites, 'msgsvc:bans:' .. room, 'msgsvc:verdicts:' .. room)
  redis.call('HDEL', 'msgsvc:rooms', room)
  redis.call('HDEL', 'msgsvc:rooms:settings', room)
end
"""

# Every room: key, what it is, its settings, its members (HGETALL), its bans (HGETALL).
ROOMS_ALL = Script(
    """
-- KEYS: the rooms, their settings.  Returns {room, room, settings, {key, member...}, {key, ban...}}...
local rooms, out = redis.call('HGETALL', KEYS[1]), {}
for i = 1, #rooms, 2 do
  local room = rooms[i]
  table.insert(out, {room, rooms[i + 1], redis.call('HGET', KEYS[2], room),
    redis.call('HGETALL', 'msgsvc:members:' .. room), redis.call('HGETALL', 'msgsvc:bans:' .. room)})
end
return out
"""
)

# One room, as ROOMS_ALL reads each.
ROOM = Script(
    """
-- KEYS: the rooms, their settings, the room's members, its bans; ARGV: room.
-- Returns {} (no such room) or {what it is, settings, {key, member...}, {key, ban...}}.
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return {} end
local settings = redis.call('HGET', KEYS[2], ARGV[1])
return {entry, settings, redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4])}
"""
)

CREATE_ROOM = Script(
    DROP_ROOM
    + """
-- KEYS: the rooms, their settings, the room's members, its bans.  ARGV: room, what it is, settings,
-- JSON [[name key, member]...], JSON [[name key, ban]...], most.  Returns 'ok', 'kept' (a room of that
-- key is kept: nothing written, its joiner enters it as any room) or 'many' (nothing kept: a member is
-- in `most` rooms).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'kept' end
local members = cjson.decode(ARGV[4])
for _, m in ipairs(members) do
  local memberships = 'msgsvc:memberships:' .. m[1]
  if redis.call('SISMEMBER', memberships, ARGV[1]) == 0
    and redis.call('SCARD', memberships) >= tonumber(ARGV[6]) then return 'many' end
end
drop_room(ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
for _, m in ipairs(members) do
  redis.call('HSET', KEYS[3], m[1], m[2])
  redis.call('SADD', 'msgsvc:memberships:' .. m[1], ARGV[1])
end
for _, b in ipairs(cjson.decode(ARGV[5])) do redis.call('HSET', KEYS[4], b[1], b[2]) end
return 'ok'
"""
)

DELETE_ROOM = Script(
    DROP_ROOM
    + """
-- KEYS: the rooms, their settings, the room's members, its bans (as drop_room names them); ARGV: room
drop_room(ARGV[1])
return 1
"""
)

VACATE_ROOM = Script(
    DROP_ROOM
    + """
-- KEYS: as DELETE_ROOM's; ARGV: room.  Not while a member is kept (joined on another node meanwhile):
-- 1 then, else 0.
if redis.call('HLEN', KEYS[3]) > 0 then return 1 end
drop_room(ARGV[1])
return 0
"""
)

# What writes a room's settings and members as their keys hold them, times exactly: with 17 digits, as
# Python reads them back (cjson's 14 would round them).
ENTRIES = """
local function number(x)
  if type(x) ~= 'number' then return 'null' end
  local text = string.format('%.17g', x)
  if not string.find(text, '[.e]') then text = text .. '.0' end
  return text
end
local function settings(s)
  return '[' .. cjson.encode(s[1]) .. ',' .. cjson.encode(s[2]) .. ',' .. number(s[3]) .. ','
    .. cjson.encode(s[4]) .. ',' .. cjson.encode(s[5]) .. ',' .. cjson.encode(s[6]) .. ','
    .. (s[7] or 0) .. ']'
end
local function member(m)
  return '[' .. cjson.encode(m[1]) .. ',' .. tostring(m[2]) .. ',' .. tostring(m[3]) .. ',' .. number(m[4])
    .. ',' .. (m[5] or 0) .. ',' .. (m[6] or 0) .. ']'
end
"""

# A room's settings, a member or a ban kept only while the room is: a write that comes after the room's
# deletion (from another node) does not make it again.
SET_ROOM = Script(
    ENTRIES
    + """
-- KEYS: the rooms, their settings; ARGV: room, settings, the room's entry (its founder changes).
-- The topic set unless a later one is kept (set at once on another node: its time, then its setter);
-- the modes, key, limit and their version as kept (SET_MODES writes them).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
local kept, new = cjson.decode(redis.call('HGET', KEYS[2], ARGV[1])), cjson.decode(ARGV[2])
local function stamp(s)
  return type(s[3]) == 'number' and s[3] or 0, type(s[2]) == 'string' and s[2] or ''
end
local old_at, old_by = stamp(kept)
local new_at, new_by = stamp(new)
if not (old_at > new_at or (old_at == new_at and old_by > new_by)) then
  kept[1], kept[2], kept[3] = new[1], new[2], new[3]
end
return redis.call('HSET', KEYS[2], ARGV[1], settings(kept))
"""
)

# A change of a room's flags, key, limit, bans and members' op and voice, given the next version of the
# rooms'; published to the other nodes (msgsvc.state.cluster) as the ModeSet with what was kept
# (msgsvc.state.roomevents), before the answer: by the time its node answers the asker, every node's
# subscription has it (docs/scaling.rst, "Rooms across nodes").
SET_MODES = Script(
    ENTRIES
    + """
-- KEYS: the rooms, their settings, the room's members, the rooms' version, the room's bans, their
-- verdicts (ENTER's: a b change drops them).  ARGV: room, JSON [[change, argument, name key (o, v) or
-- mask key (b), ban (+b) or the membership (o, v: its number, as the asker saw it)]...], the node, who,
-- JSON [[change, argument]...], the most bans a room holds.  An o or v of a member kept by another
-- membership (it left and entered again since) is passed over, as one not kept.
-- Returns false (no such room), 'full' (a +b of a mask not banned while the room holds the most, the
-- changes before it in turn: msgsvc.hub.rules.bans_overflow; nothing written), or {settings,
-- {member...}, {ban...}}: as kept now, the members named (those kept) once each, every ban.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return false end
local changes, count, banned = cjson.decode(ARGV[2]), redis.call('HLEN', KEYS[5]), {}
for _, c in ipairs(changes) do
  if string.sub(c[1], 2, 2) == 'b' then
    local on, was = string.sub(c[1], 1, 1) == '+', banned[c[3]]
    if was == nil then was = redis.call('HEXISTS', KEYS[5], c[3]) == 1 end
    if on and not was then
      if count >= tonumber(ARGV[6]) then return 'full' end
      count = count + 1
    elseif was and not on then
      count = count - 1
    end
    banned[c[3]] = on
  end
end
local s, named, order = cjson.decode(redis.call('HGET', KEYS[2], ARGV[1])), {}, {}
local version = redis.call('INCR', KEYS[4])
if version <= (s[7] or 0) then  -- a room copied in (msgsvc.state.migrate) with its own numbers
  version = s[7] + 1
  redis.call('SET', KEYS[4], version)
end
for _, c in ipairs(changes) do
  local on, letter = string.sub(c[1], 1, 1) == '+', string.sub(c[1], 2, 2)
  if letter == 'k' then
    s[5] = on and c[2] or cjson.null
  elseif letter == 'l' then
    s[6] = on and tonumber(c[2]) or cjson.null
  elseif letter == 'o' or letter == 'v' then
    local m = named[c[3]]
    if not m then
      local entry = redis.call('HGET', KEYS[3], c[3])
      m = entry and cjson.decode(entry)
      if m and (m[6] or 0) == c[4] then
        named[c[3]] = m
        table.insert(order, c[3])
      else
        m = nil
      end
    end
    if m and letter == 'o' then m[2] = on elseif m then m[3] = on end
  elseif letter == 'b' then
    if on then redis.call('HSET', KEYS[5], c[3], c[4]) else redis.call('HDEL', KEYS[5], c[3]) end
    redis.call('DEL', KEYS[6])
  elseif string.find('imnst', letter, 1, true) then
    local letters = {}
    for l in string.gmatch(string.gsub(s[4], letter, ''), '.') do table.insert(letters, l) end
    if on then table.insert(letters, letter) end
    table.sort(letters)
    s[4] = table.concat(letters)
  end
end
s[7] = version
local written = settings(s)
redis.call('HSET', KEYS[2], ARGV[1], written)
local members = {}
for _, key in ipairs(order) do
  named[key][5] = version
  local entry = member(named[key])
  redis.call('HSET', KEYS[3], key, entry)
  table.insert(members, entry)
end
local bans = redis.call('HVALS', KEYS[5])
local name = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1]))[1]
redis.call('PUBLISH', 'msgsvc:presence', '{"e":"room","node":' .. cjson.encode(ARGV[3])
  .. ',"event":{"kind":"ModeSet","room":' .. cjson.encode(name) .. ',"by":' .. cjson.encode(ARGV[4])
  .. ',"changes":' .. ARGV[5] .. ',"kept":[' .. cjson.encode(s[4]) .. ',' .. cjson.encode(s[5]) .. ','
  .. cjson.encode(s[6]) .. ',' .. version .. ',[' .. table.concat(members, ',') .. '],['
  .. table.concat(bans, ',') .. ']]}}')
return {written, members, bans}
"""
)

# banned(bans, identities): whether a ban matches an identity ('*' any run, '?' one character), as
# msgsvc.hub.globs.glob_match does, in C's steps and few of them.  A ban of more characters besides
# '*' than the identity has is out at once; a ban's parts between '*'s are its leading '?'s, skipped by
# count, then a Lua pattern of the rest (its characters '%'-escaped, '?' one UTF-8 character): the
# first tried at the start only, the last at its one place from the end, each between found in turn at
# its first place.  Each ban that may fit is parsed once a JOIN, whatever the identities.
GLOB = """
local ONE = '[^\\128-\\191][\\128-\\191]*'
local function length(text) return #(string.gsub(text, '[\\128-\\191]', '')) end
local function fixed(mask) return length(mask) - #(string.gsub(mask, '[^*]', '')) end
local function parse(mask)  -- its characters besides '*', its parts: {'?'s leading, characters, pattern}
  local ban = {fixed = fixed(mask), parts = {}}
  for part in string.gmatch(mask .. '*', '([^*]*)%*') do
    local skip, rest = string.match(part, '^(%?*)(.*)$')
    local escaped = string.gsub(rest, '[^%w?]', '%%%0')
    local pattern = string.gsub(escaped, '%?', ONE)
    ban.parts[#ban.parts + 1] = {skip = #skip, chars = length(part), pattern = pattern}
  end
  return ban
end
local function subject(name)  -- the name, the byte each character starts at, each such byte's character
  local s = {name = name, starts = {}, at = {}}
  for p in string.gmatch(name, '()[^\\128-\\191]') do
    s.starts[#s.starts + 1] = p
    s.at[p] = #s.starts
  end
  s.starts[#s.starts + 1] = #name + 1
  s.at[#name + 1] = #s.starts
  return s
end
local function glob(ban, s)
  local chars, parts = #s.starts - 1, ban.parts
  if ban.fixed > chars then return false end
  local p = parts[1]
  if #parts == 1 then
    return p.chars == chars and string.find(s.name, '^' .. p.pattern .. '$', s.starts[p.skip + 1]) ~= nil
  end
  local _, last = string.find(s.name, '^' .. p.pattern, s.starts[p.skip + 1])
  if not last then return false end
  for i = 2, #parts - 1 do
    p = parts[i]
    local from = s.starts[s.at[last + 1] + p.skip]
    if not from then return false end
    last = from - 1
    if p.pattern ~= '' then
      _, last = string.find(s.name, p.pattern, from)
      if not last then return false end
    end
  end
  p = parts[#parts]
  local from = s.starts[chars + 1 - p.chars]
  if not from or from <= last then return false end
  return string.find(s.name, '^' .. p.pattern .. '$', s.starts[s.at[from] + p.skip]) ~= nil
end
local function banned(bans, identities)
  local subjects, most = {}, 0
  for i, identity in ipairs(identities) do
    subjects[i] = subject(identity)
    most = math.max(most, #subjects[i].starts - 1)
  end
  for _, mask in ipairs(bans) do
    if fixed(mask) <= most then
      local ban = parse(mask)
      for _, s in ipairs(subjects) do
        if glob(ban, s) then return true end
      end
    end
  end
  return false
end
"""

# Keeps an invitation to a room, unless one that does as much is pending (msgsvc.hub.rules.invites_anew);
# past `most` of the room's, the oldest (by time, then name key) ends.
INVITE = Script(
    """
-- KEYS: the rooms, the room's invitations, the name's.  ARGV: room, name key, JSON [op, at], most.
-- Returns 1 (kept), 0 (pending already: nothing written) or -1 (no such room).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
local op, pending = cjson.decode(ARGV[3])[1], redis.call('HGET', KEYS[2], ARGV[2])
if pending and (cjson.decode(pending)[1] or not op) then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[4]) then
  local flat, oldest, at = redis.call('HGETALL', KEYS[2]), nil, nil
  for i = 1, #flat, 2 do
    local t = cjson.decode(flat[i + 1])[2]
    if not oldest or t < at or (t == at and flat[i] < oldest) then oldest, at = flat[i], t end
  end
  redis.call('HDEL', KEYS[2], oldest)
  redis.call('SREM', 'msgsvc:invited:' .. oldest, ARGV[1])
end
return 1
"""
)

# A name is free: its invitations to every room end.  KEYS: the name's invitations; ARGV: name key.
UNINVITE = Script(
    """
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('HDEL', 'msgsvc:invites:' .. room, ARGV[1])
end
return redis.call('DEL', KEYS[1])
"""
)

# Who enters a room, decided from what Redis keeps at that moment, as msgsvc.hub.rules.admission decides.
ENTER = Script(
    ENTRIES
    + GLOB
    + """
-- KEYS: the rooms, their settings, the room's members, its bans, the name's memberships, the accounts,
-- the bans' verdicts, the room's invitations, the name's, the rooms' version (the new membership's
-- number, Member.joined, and the room's version).  ARGV: room, name key, JSON [name, since, key
-- given, [mask...]], limit, most, the verdicts kept at most.  The bans' verdict on the masks is kept (a
-- JOIN/PART loop costs an HGET), until the bans change or the verdicts of as many identities are kept
-- (then they start again).  An operator's invitation pending lets the name past the bans and +i; any
-- invitation of the name ends as it enters.  Returns {member} (kept now, or already), or 'gone' /
-- 'banned' / 'invite' / 'key' / 'full' / 'many' (nothing kept).
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if not entry then return 'gone' end
local kept = redis.call('HGET', KEYS[3], ARGV[2])
if kept then return {kept} end
local j, s = cjson.decode(ARGV[3]), cjson.decode(redis.call('HGET', KEYS[2], ARGV[1]))
local founder = cjson.decode(entry)[3]
local founded = type(founder) == 'string' and string.lower(founder) == ARGV[2]
  and redis.call('HEXISTS', KEYS[6], ARGV[2]) == 1
local invite = redis.call('HGET', KEYS[8], ARGV[2])
local invited = invite and cjson.decode(invite)[1]
if not invited then
  local masks = cjson.encode(j[4])
  local verdict = redis.call('HGET', KEYS[7], masks)
  if not verdict then
    local bans = redis.call('HKEYS', KEYS[4])
    verdict = banned(bans, j[4]) and 'banned' or 'in'
    if #bans > 0 then
      if redis.call('HLEN', KEYS[7]) >= tonumber(ARGV[6]) then redis.call('DEL', KEYS[7]) end
      redis.call('HSET', KEYS[7], masks, verdict)
    end
  end
  if verdict == 'banned' then return 'banned' end
end
if not founded and string.find(s[4], 'i', 1, true) and not invited then return 'invite' end
if not founded and type(s[5]) == 'string' and s[5] ~= j[3] then return 'key' end
local limit = tonumber(ARGV[4])
if not founded and type(s[6]) == 'number' then limit = math.min(limit, s[6]) end
if redis.call('HLEN', KEYS[3]) >= limit then return 'full' end
if redis.call('SCARD', KEYS[5]) >= tonumber(ARGV[5]) then return 'many' end
local joined = redis.call('INCR', KEYS[10])
if joined <= (s[7] or 0) then  -- a room copied in (msgsvc.state.migrate) with its own numbers
  joined = s[7] + 1
  redis.call('SET', KEYS[10], joined)
end
s[7] = joined
redis.call('HSET', KEYS[2], ARGV[1], settings(s))
local m = member({j[1], founded, false, j[2], 0, joined})
redis.call('HSET', KEYS[3], ARGV[2], m)
redis.call('SADD', KEYS[5], ARGV[1])
if invite then
  redis.call('HDEL', KEYS[8], ARGV[2])
  redis.call('SREM', KEYS[9], ARGV[1])
end
return {m}
"""
)

REMOVE_MEMBER = Script(
    """
-- KEYS: the room's members, the name's memberships; ARGV: room, name key
redis.call('HDEL', KEYS[1], ARGV[2])
return redis.call('SREM', KEYS[2], ARGV[1])
"""
)

#: ENTER's refusals.
_REFUSED: dict[str, Refusal] = {
    "gone": Refusal.NO_SUCH_ROOM,
    "banned": Refusal.BANNED,
    "invite": Refusal.INVITE_ONLY,
    "key": Refusal.BAD_KEY,
    "full": Refusal.ROOM_FULL,
    "many": Refusal.TOO_MANY_ROOMS,
}

#: CREATE_ROOM's answers.
_CREATED: dict[str, Refusal | bool] = {"ok": True, "kept": False, "many": Refusal.TOO_MANY_ROOMS}


def room_entry(record: RoomRecord) -> str:
    """What a room is, as ``msgsvc:rooms`` holds it."""
    return json.dumps([record.name, record.created, record.founder])


def room_settings(record: RoomRecord) -> str:
    """A room's settings as ``msgsvc:rooms:settings`` holds them."""
    settings = [record.topic, record.topic_by, record.topic_at, record.modes, record.key, record.limit]
    return json.dumps([*settings, record.version])


def member_entry(member: Member) -> str:
    return json.dumps([member.name, member.op, member.voice, member.since, member.version, member.joined])


def ban_entry(ban: Ban) -> str:
    return json.dumps([ban.mask, ban.by, ban.at])


def _room(entry: str, settings: str, members: list[str], bans: list[str]) -> RoomRecord:
    record = RoomRecord(*json.loads(entry), *json.loads(settings))
    record.members = {key: Member(*json.loads(m)) for key, m in pairs(members).items()}
    record.bans = {key: Ban(*json.loads(b)) for key, b in pairs(bans).items()}
    return record


def queue_entry(
    sender: str, kind: str, group: tuple[str, ...], text: str, sent_at: float, message_id: str
) -> str:
    """A queued message as a queue's member holds it, without its id (``ID|`` goes before)."""
    return f"{sent_at!r}|{json.dumps([sender, kind, list(group), text, message_id])}"


#: A time as JSON writes it (``repr``), for the times of the last few passes: a pass's messages share a
#: few milliseconds, and ``repr`` of a float was a quarter of an entry's line.
_seconds: Callable[[float], str] = lru_cache(maxsize=256, typed=True)(repr)


def history_entry(entry: Stored) -> str:
    """An entry as its history's member holds it: its id first, so that members sort as ids; then the
    JSON of ``[at, sender, kind, recipients, text]``, written here as ``json.dumps`` writes it (one is
    made for every message kept: json.dumps made a list and an encoder for each, twice the time)."""
    return _history_member(entry.id, entry.at, entry.sender, entry.kind, entry.recipients, entry.text)


def _history_member(id: str, at: float, sender: str, kind: Kind, recipients: Iterable[str], text: str) -> str:
    s = _json_string
    names = ", ".join(map(s, recipients))
    return f'{id}|[{_seconds(at)}, {s(sender)}, "{kind._value_}", [{names}], {s(text)}]'


def _stored(conversation: str, member: str) -> Stored:
    message_id, payload = member.split("|", 1)
    at, sender, kind, recipients, text = json.loads(payload)
    return Stored(message_id, at, conversation, sender, Kind(kind), tuple(recipients), text)


def reset_member(reset: Reset) -> str:
    return json.dumps([reset.id, reset.name, reset.at, reset.reason, reset.removed])


def pairs(flat: list[str]) -> dict[str, str]:
    """A hash as HGETALL answers it (field, value, field, value...) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _queued(member: str) -> Queued:
    number, sent_at, payload = member.split("|", 2)
    sender, kind, group, text, *message_id = json.loads(payload)  # no id: queued before ids were kept
    return Queued(int(number), sender, kind, tuple(group), text, float(sent_at), "".join(message_id))


class RedisState(Service):
    """The state on a Redis server: :class:`msgsvc.state.State`, every answer from Redis itself."""

    log = Logger()

    #: seconds between attempts to read the log while Redis cannot be reached
    RETRY = 1.0

    def __init__(self, reactor: Any, url: RedisURL) -> None:
        self.url = url
        self._clock: IReactorTime = reactor
        self.redis = Commands(reactor, url, "state")
        self.node = ""  # this node's name (msgsvc.state.cluster sets it): what it publishes says so
        self._appending: set[Deferred[None]] = set()  # appends sent, not answered yet

    @property
    def where(self) -> str:
        return str(self.url)

    def startService(self) -> None:
        Service.startService(self)
        self.redis.start()

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        # The appends under way (the history's last pass among them) answered before it stops.
        under_way = DeferredList(list(self._appending), consumeErrors=True)
        return under_way.addBoth(lambda _: self.redis.stop())

    def read_log(self) -> Deferred[Snapshot]:
        """The log and the rooms, read as soon as Redis answers: until then, and if reading fails, try
        again."""
        done: Deferred[Snapshot] = Deferred()

        def read(_: None) -> Deferred[Snapshot]:
            # Pipelined on one connection, Redis answers them in order: the keys are upgraded before this
            # node can queue anything (nobody registers before the log is read), the reset id read before
            # the log, the rooms after it.
            upgraded, last, records, rooms = self.upgrade(), self.last_reset(), self.load(), self.rooms()
            return upgraded.addCallback(lambda _: records).addCallback(
                lambda loaded: last.addCallback(
                    lambda n: rooms.addCallback(lambda found: Snapshot(loaded, n, found))
                )
            )

        def attempt() -> None:
            if self.running:
                self.redis.ready().addCallback(read).addCallbacks(done.callback, failed)

        def failed(failure: Failure) -> None:
            self.log.warn(
                "could not read the username log from {where}: {why}; trying again",
                where=self.where,
                why=failure.getErrorMessage(),
            )
            self._clock.callLater(self.RETRY, attempt)

        attempt()
        return done

    def upgrade(self) -> Deferred[None]:
        """Move what an older msgsvc kept where a name's keys go (:data:`UPGRADE`), index the names'
        conversations by newest id (:data:`UPGRADE_INDEX`), keep bans by mask (:data:`UPGRADE_BANS`),
        and say so."""

        def moved(old: list[str]) -> None:
            if old:
                self.log.info(
                    "{where}: moved the offline queue's counters {old} to {new} (an older msgsvc's keys)",
                    where=self.where,
                    old=", ".join(old),
                    new=", ".join([QUEUE_ID, QUEUE_COUNT, QUEUE_SENDERS]),
                )

        def indexed(conversations: int) -> None:
            if conversations:
                self.log.info(
                    "{where}: indexed {conversations} conversations by their newest ids (keys layout 2)",
                    where=self.where,
                    conversations=conversations,
                )

        def masked(bans: int) -> None:
            if bans:
                self.log.info(
                    "{where}: {bans} bans of names kept as masks (keys layout 3)", where=self.where, bans=bans
                )

        def placed(entries: int) -> None:
            if entries:
                self.log.info(
                    "{where}: {entries} history entries placed by sender (keys layout 4)", where=self.where, entries=entries
                )

        def layout_3(_: object) -> Deferred[None]:
            return self.redis.script(UPGRADE_BANS, [LAYOUT, ROOMS], []).addCallback(masked)

        def layout_4(_: object) -> Deferred[None]:
            return self.redis.script(UPGRADE_SENT, [LAYOUT, HISTORIES, SENT], []).addCallback(placed)

        old = [queue_key(field) for field in ("id", "count", "senders")]
        counters = self.redis.script(UPGRADE, [*old, QUEUE_ID, QUEUE_COUNT, QUEUE_SENDERS, QUEUES], [])
        layout = self.redis.script(UPGRADE_INDEX, [LAYOUT, HISTORIES], []).addCallback(indexed)  # layout 2
        return gatherResults(
            [counters.addCallback(moved), layout.addCallback(layout_3).addCallback(layout_4)], consumeErrors=True
        ).addCallback(lambda _: None)

    def load(self) -> Deferred[list[UserRecord]]:
        """Every name ever registered, oldest first, marked if protected: read now (fails if Redis is away)."""

        def read(replies: list[Any]) -> list[UserRecord]:
            names, first, last = (pairs(reply) for reply in replies[:3])
            protected = set(replies[3])
            records = [
                UserRecord(name, float(first[key]), float(last[key]), key in protected)
                for key, name in names.items()
            ]
            records.sort(key=lambda r: (r.first_seen, username_key(r.name)))
            return records

        return gatherResults(
            [
                self.redis.execute("HGETALL", LOG_NAME),
                self.redis.execute("HGETALL", LOG_FIRST),
                self.redis.execute("HGETALL", LOG_LAST),
                self.redis.execute("HKEYS", ACCOUNTS),
            ],
            consumeErrors=True,
        ).addCallback(read)

    # -- the username log and the offline queue (msgsvc.hub.contracts.Store) ---------------

    def record_seen(self, name: str, when: float) -> Deferred[None]:
        return self.redis.script(
            RECORD_SEEN, [LOG_NAME, LOG_FIRST, LOG_LAST], [username_key(name), name, when]
        ).addCallback(lambda _: None)

    def enqueue(self, message: Enqueue) -> Deferred[tuple[str, ...]]:
        entry = queue_entry(
            message.sender, message.kind, message.group, message.text, message.sent_at, message.message_id
        )
        return self.redis.script(
            ENQUEUE,
            [QUEUE_ID, QUEUES, QUEUE_SENDERS, QUEUE_COUNT],
            [
                message.oldest,
                message.limit,
                entry,
                username_key(message.sender),
                message.sender_limit,
                message.total_limit,
                *message.recipients,
            ],
        ).addCallback(tuple)

    def backlog(self, name: str, after: int, oldest: float, limit: int) -> Deferred[tuple[list[Queued], int]]:
        def read(reply: list[Any]) -> tuple[list[Queued], int]:
            page, more = reply
            # A message behind a newer one yet expired (the nodes' clocks disagreeing) is left out.
            return [q for q in map(_queued, page) if q.sent_at >= oldest], int(more)

        return self.redis.script(
            BACKLOG, [queue_key(username_key(name))], [after, oldest, limit]
        ).addCallback(read)

    def acknowledge(self, name: str, up_to: int) -> Deferred[int]:
        key = username_key(name)
        return self.redis.script(ACKNOWLEDGE, [queue_key(key), QUEUES], [up_to, key]).addCallback(int)

    def expire(self, oldest: float) -> Deferred[dict[str, int]]:
        def counted(flat: list[Any]) -> dict[str, int]:
            return {key: int(count) for key, count in pairs(flat).items()}

        return self.redis.script(EXPIRE, [QUEUES], [oldest]).addCallback(counted)

    # -- accounts (msgsvc.auth.store.AccountStore) ---------------------------------

    def password_hash(self, name: str) -> Deferred[str | None]:
        return self.redis.execute("HGET", ACCOUNTS, username_key(name))

    def set_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[None]:
        return self._set_password(name, password_hash, when, False).addCallback(lambda _: None)

    def set_first_password_hash(self, name: str, password_hash: str, when: float) -> Deferred[str | None]:
        return self._set_password(name, password_hash, when, True)

    def _set_password(self, name: str, password_hash: str, when: float, first: bool) -> Deferred[str | None]:
        """Run :data:`SET_PASSWORD`: None once written, or (``first``) the hash the name has already."""

        def held(reply: object) -> str | None:
            return str(reply[0]) if isinstance(reply, list) else None

        return self.redis.script(
            SET_PASSWORD,
            [ACCOUNTS, ACCOUNTS_CHANGED, ACCOUNTS_SINCE, ACCOUNTS_RELEASED],
            [username_key(name), password_hash, when, self.node, CLOCK_MARGIN, int(first)],
        ).addCallback(held)

    def reset(self, name: str, reason: str, when: float) -> Deferred[Reset | None]:
        key = username_key(name)

        def made(reply: list[Any] | None) -> Reset | None:
            if not reply:
                return None
            number, spelled = reply
            return Reset(int(number), str(spelled), when, reason)

        return self.redis.script(
            RESET,
            [ACCOUNTS, ACCOUNTS_CHANGED, queue_key(key), QUEUES, LOG_NAME, RESETS, RESET_ID, ACCOUNTS_SINCE]
            + [ACCOUNTS_RELEASED, reads_key(key)],
            [key, name, when, reason],
        ).addCallback(made)

    def remove(self, name: str, reason: str, when: float) -> Deferred[Reset | None]:
        """Remove ``name`` from the log (:data:`REMOVE`); None if it is not in it; fails with
        :class:`msgsvc.auth.store.StillOnline` if a node alive holds it."""
        key = username_key(name)

        def made(reply: list[Any] | None) -> Reset | None:
            match reply:
                case ["removed", spelled, number]:
                    return Reset(int(number), str(spelled), when, reason, removed=True)
                case ["online", spelled]:
                    raise StillOnline(f"{spelled} is online: disconnect it first")
            return None

        return self.redis.script(
            REMOVE,
            [LOG_NAME, LOG_FIRST, LOG_LAST, ACCOUNTS, ACCOUNTS_CHANGED, queue_key(key), QUEUES, RESETS, RESET_ID]
            + [sessions_key(key), ACCOUNTS_SINCE, ACCOUNTS_RELEASED, reads_key(key)],
            [key, when, reason],
        ).addCallback(made)

    def protected(self) -> Deferred[list[tuple[str, float]]]:
        """Every protected name in the log (as it spells them) with when its password was set."""

        def read(replies: list[Any]) -> list[tuple[str, float]]:
            changed, names = (pairs(reply) for reply in replies)
            return [(names.get(key, key), float(changed[key])) for key in sorted(changed)]

        return gatherResults(
            [self.redis.execute("HGETALL", ACCOUNTS_CHANGED), self.redis.execute("HGETALL", LOG_NAME)],
            consumeErrors=True,
        ).addCallback(read)

    def last_reset(self) -> Deferred[int]:
        return self.redis.execute("GET", RESET_ID).addCallback(lambda n: int(n or 0))

    def resets_after(self, reset_id: int) -> Deferred[list[Reset] | None]:
        def read(members: list[str]) -> list[Reset] | None:
            return [Reset(*json.loads(m)) for m in members] or None

        return self.redis.execute("ZRANGEBYSCORE", RESETS, f"({reset_id}", "+inf").addCallback(read)

    # -- history (msgsvc.hub.contracts.HistoryStore) -----------------------------------------

    def append(self, kept: Kept, keep: int) -> Deferred[None]:
        """One script (:data:`APPEND`) for them all, in one argument (a line each, its conversation's key
        first: no conversation has a tab or a line break, nor has the JSON of an entry); those dated too
        far ahead of Redis's clock are not kept, and said so."""
        lines = "\n".join(
            [
                f"{conversation}\t{_history_member(id, at, sender, kind, to.split(',') if to else (), text)}"
                for conversation, id, at, sender, kind, to, text in zip(
                    kept.conversations,
                    kept.ids,
                    kept.ats,
                    kept.senders,
                    kept.kinds,
                    kept.recipients,
                    kept.texts,
                )
            ]
        )

        def told(reply: list[int]) -> None:
            _, too_new = reply
            if too_new:
                self.log.warn(
                    "{too_new} history entries not kept: their ids are dated over {margin} s ahead of the "
                    "clock of {where}; is this node's clock right?",
                    too_new=too_new,
                    margin=CLOCK_MARGIN,
                    where=self.where,
                )

        appended = self.redis.script(APPEND, [HISTORY_SIZE, PURGED], [CLOCK_MARGIN, keep, lines])
        appended.addCallback(told)
        self._appending.add(appended)

        def answered(result: object) -> object:
            self._appending.discard(appended)
            return result

        return appended.addBoth(answered)

    def page_before(
        self, conversation: str, before: str | None, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        def read(members: list[str]) -> tuple[list[Stored], bool]:
            # Ids from since's millisecond on; of that millisecond, those before since are left out.
            entries = [e for e in (_stored(conversation, m) for m in members) if e.at >= since]
            return entries[:limit][::-1], len(entries) > limit

        upper = "+" if before is None else f"({before}"
        lower = f"[{message_id_floor(since)}"
        return self.redis.execute(
            "ZREVRANGEBYLEX", history_key(conversation), upper, lower, "LIMIT", 0, limit + 1
        ).addCallback(read)

    def page_after(
        self, conversation: str, after: str, limit: int, since: float
    ) -> Deferred[tuple[list[Stored], bool]]:
        def read(members: list[str]) -> tuple[list[Stored], bool]:
            entries = [e for e in (_stored(conversation, m) for m in members) if e.at >= since]
            return entries[:limit], len(entries) > limit

        floor = message_id_floor(since)
        # Members of the id ``after`` are ``after|...``, below ``after}``: left out.
        lower = f"[{floor}" if floor > after else f"({after}}}"
        return self.redis.execute(
            "ZRANGEBYLEX", history_key(conversation), lower, "+", "LIMIT", 0, limit + 1
        ).addCallback(read)

    def latest(self, member: str, since: float, limit: int) -> Deferred[list[Stored]]:
        def read(flat: list[str]) -> list[Stored]:
            entries = (_stored(conversation, newest) for conversation, newest in zip(flat[::2], flat[1::2]))
            return sorted((e for e in entries if e.at >= since), key=lambda e: e.id, reverse=True)[:limit]

        floor = id_time_score(message_id_floor(since))
        key = conversations_key(username_key(member))
        return self.redis.script(LATEST, [key], [floor, limit]).addCallback(read)

    def protected_since(self, name: str) -> Deferred[float | None]:
        """From ``msgsvc:accounts:since``; a password set before it was kept (an older msgsvc) counts
        from when it was last set: later than the truth, so it only hides more."""
        key = username_key(name)

        def read(replies: list[str | None]) -> float | None:
            since, changed = replies
            when = since or changed
            return None if when is None else float(when)

        return gatherResults(
            [
                self.redis.execute("HGET", ACCOUNTS_SINCE, key),
                self.redis.execute("HGET", ACCOUNTS_CHANGED, key),
            ],
            consumeErrors=True,
        ).addCallback(read)

    def _each_history(self, script: Script, args: list[object]) -> Deferred[int]:
        """``script`` for every conversation with a history, one script each (pipelined, so Redis is
        not held for all at once); the entries dropped."""

        def run(conversations: list[str]) -> Deferred[int]:
            return gatherResults(
                [
                    self.redis.script(script, [history_key(c), HISTORY_SIZE], [c, *args])
                    for c in conversations
                ],
                consumeErrors=True,
            ).addCallback(lambda dropped: sum(map(int, dropped)))

        return self.redis.execute("HKEYS", HISTORIES).addCallback(run)

    def expire_history(self, oldest: float, keep: int) -> Deferred[int]:
        return self._each_history(TRIM, [message_id_floor(oldest), oldest, keep])

    def purge_history(self, sender: str, at: float) -> Deferred[int]:
        """Reads every entry of every conversation (:data:`PURGE`): the operator's command, not the hub's.
        When is kept first (:data:`PURGED_AT`), so that an append after it leaves out what came before:
        Redis's time, not ``at`` (the operator's machine's clock, which the nodes' entries are not judged
        by)."""
        key = username_key(sender)
        kept = self.redis.script(PURGED_AT, [PURGED], [key])
        return kept.addCallback(lambda _: self._each_history(PURGE, [key]))

    def history_size(self) -> Deferred[int]:
        return self.redis.execute("GET", HISTORY_SIZE).addCallback(lambda n: int(n or 0))

    def open_group(self, conversation: str, opener: str, at: float, since: float, most: int) -> Deferred[bool]:
        keys = [HISTORIES, f"{OPENED}{opener}"]
        args = [conversation, repr(at), repr(since), most, math.ceil(at - since) + 1]
        return self.redis.script(OPEN_GROUP, keys, args).addCallback(lambda allowed: allowed == 1)

    # -- read positions (msgsvc.hub.contracts.HistoryStore) -----------------------------------

    def set_read(self, name: str, conversation: str, position: str) -> Deferred[str]:
        return self.redis.script(SET_READ, [reads_key(username_key(name))], [conversation, position])

    def read_positions(self, name: str, conversations: Sequence[str]) -> Deferred[dict[str, str]]:
        def read(positions: list[str | None]) -> dict[str, str]:
            return {c: p for c, p in zip(conversations, positions, strict=True) if p is not None}

        if not conversations:
            return succeed({})
        return self.redis.execute("HMGET", reads_key(username_key(name)), *conversations).addCallback(read)

    def unread(self, conversation: str, after: str, reader: str, cap: int) -> Deferred[int]:
        if cap <= 0:
            return succeed(0)
        return self.redis.script(UNREAD, [history_key(conversation), SENT], [after, username_key(reader), cap, conversation])

    # -- rooms (msgsvc.hub.contracts.RoomStore) -------------------------------------------

    def rooms(self) -> Deferred[list[RoomRecord]]:
        def read(reply: list[list[Any]]) -> list[RoomRecord]:
            found = {room: _room(*what) for room, *what in reply}
            return [found[room] for room in sorted(found)]

        return self.redis.script(ROOMS_ALL, [ROOMS, ROOM_SETTINGS], []).addCallback(read)

    def room(self, room: str) -> Deferred[RoomRecord | None]:
        keys = [ROOMS, ROOM_SETTINGS, members_key(room), bans_key(room)]
        return self.redis.script(ROOM, keys, [room]).addCallback(lambda what: _room(*what) if what else None)

    def create_room(self, record: RoomRecord, most: int) -> Deferred[Refusal | bool]:
        room = room_key(record.name)
        members = [[key, member_entry(m)] for key, m in record.members.items()]
        bans = [[key, ban_entry(b)] for key, b in record.bans.items()]
        return self.redis.script(
            CREATE_ROOM,
            [ROOMS, ROOM_SETTINGS, members_key(room), bans_key(room)],
            [room, room_entry(record), room_settings(record), json.dumps(members), json.dumps(bans), most],
        ).addCallback(lambda answer: _CREATED[answer])

    def delete_room(self, room: str) -> Deferred[None]:
        keys = [ROOMS, ROOM_SETTINGS, members_key(room), bans_key(room)]
        return self.redis.script(DELETE_ROOM, keys, [room]).addCallback(lambda _: None)

    def vacate_room(self, room: str) -> Deferred[bool]:
        keys = [ROOMS, ROOM_SETTINGS, members_key(room), bans_key(room)]
        return self.redis.script(VACATE_ROOM, keys, [room]).addCallback(lambda stays: stays == 1)

    def set_room(self, record: RoomRecord) -> Deferred[None]:
        room = room_key(record.name)
        settings = [room, room_settings(record), room_entry(record)]
        return self.redis.script(SET_ROOM, [ROOMS, ROOM_SETTINGS], settings).addCallback(lambda _: None)

    def set_modes(
        self, room: str, changes: Sequence[ModeChange], by: str, at: float, memberships: Mapping[str, int]
    ) -> Deferred[ModesKept | Refusal | None]:
        named: list[list[str | int | None]] = []
        for change, arg in changes:
            if change[1] == "b" and arg:
                ban = ban_entry(Ban(arg, by, at)) if change[0] == "+" else None
                named.append([change, arg, mask_key(arg), ban])
            else:
                key = username_key(arg) if change[1] in "ov" and arg else None
                named.append([change, arg, key, None if key is None else memberships.get(key)])

        def read(reply: list[Any] | str | None) -> ModesKept | Refusal | None:
            if reply is None:
                return None
            if isinstance(reply, str):  # 'full'
                return Refusal.BAN_LIST_FULL
            settings, members, bans = reply
            modes, key, limit, version = json.loads(settings)[3:]
            kept = tuple(Member(*json.loads(m)) for m in members)
            every = oldest_first(Ban(*json.loads(b)) for b in bans)
            return ModesKept(modes, key, limit, version, kept, every)

        keys = [ROOMS, ROOM_SETTINGS, members_key(room), ROOMS_VERSION, bans_key(room), verdicts_key(room)]
        told = [[change, arg] for change, arg in changes]
        asked = [room, named, self.node, by, told, ROOM_BANS_MAX]
        return self.redis.script(SET_MODES, keys, asked).addCallback(read)

    def invite(self, room: str, name: str, op: bool, at: float) -> Deferred[bool | None]:
        keys = [ROOMS, invites_key(room), invited_key(name)]
        invited = self.redis.script(INVITE, keys, [room, name, json.dumps([op, at]), ROOM_INVITES_MAX])
        return invited.addCallback(lambda kept: None if int(kept) < 0 else bool(int(kept)))

    def uninvite(self, name: str) -> Deferred[None]:
        return self.redis.script(UNINVITE, [invited_key(name)], [name]).addCallback(lambda _: None)

    def enter(self, room: str, joining: Joining, limit: int, most: int) -> Deferred[Refusal | Member]:
        key = username_key(joining.name)
        asked = [joining.name, joining.since, joining.key, list(joining.masks)]

        def answered(answer: str | list[str]) -> Refusal | Member:
            return Member(*json.loads(answer[0])) if isinstance(answer, list) else _REFUSED[answer]

        return self.redis.script(
            ENTER,
            [
                ROOMS,
                ROOM_SETTINGS,
                members_key(room),
                bans_key(room),
                memberships_key(key),
                ACCOUNTS,
                verdicts_key(room),
                invites_key(room),
                invited_key(key),
                ROOMS_VERSION,
            ],
            [room, key, json.dumps(asked), limit, most, VERDICTS_MAX],
        ).addCallback(answered)

    def remove_member(self, room: str, name: str) -> Deferred[None]:
        key = username_key(name)
        return self.redis.script(
            REMOVE_MEMBER, [members_key(room), memberships_key(key)], [room, key]
        ).addCallback(lambda _: None)
