"""Several servers as one service on Redis: who is online where, and messages between nodes.

Every server started with the same ``--redis`` URL is a *node*.  A node
holds a lease, ``msgsvc:node:ID`` with an expiry, renewed four times a
lease; each session of a name is in ``msgsvc:sessions:NAME`` (``ID/SESSION``
-> the node, address, front and time of its holder), the name in its nodes'
sets ``msgsvc:node:ID:users`` and, while any session lives, in
``msgsvc:online`` (name key -> one of its holders).  Claiming a session is
one Lua script: it forgets the sessions of nodes without a lease, then
admits an unprotected name only if no other node holds it, and an account's
session only within its allowance (``--max-sessions``, across the service),
so two nodes racing for one name admit one.  The same script puts the name
in the username log and publishes ``joined`` (a node's first session of the
name) on ``msgsvc:presence`` before the client is welcomed, so every node
hears of a user before its first message; ``left`` says a node's last one
went.  An account's offline queue goes to one session in the service at a
time, named in ``msgsvc:receiver:NAME`` (``backlog`` is published when it
lets it go).  A name's away message (IRC's AWAY) is in its node's hash
``msgsvc:node:ID:away`` while the node holds the name, and published as
``away`` as it changes; a node reads the others' when it (re)connects.

A message for users of another node is written to that node's inbox, a
Redis Stream it reads and deletes as it delivers (:mod:`msgsvc.state.inbox`),
by a script that first checks the node's lease and the room in its inbox:
the sender's ``SENT`` counts them only if it took the message.  A broadcast
is written to every other node's inbox.  The messages of one reactor pass
go in one script, each node's together in one entry: per pass, not per
message.  Each node subscribes to ``msgsvc:presence`` on a connection of its
own, and reads its inbox on another.

Every renewal also sweeps: a node whose lease is gone has its sessions
removed (``left`` published for each name it held; a name with sessions on
other nodes stays online), and its inbox deleted.  A node that cannot renew
its lease in time (Redis away) disconnects its own users before the lease
can end, so that no name is ever held twice; when Redis is back it forgets
the sessions it no longer has, claims its remaining ones again (one taken
meanwhile elsewhere is disconnected here) and reads who is online anew.  It
does so too at the first renewal after Redis did not take a release, an
away change, a room's change, a let-go of an offline queue, a read
position or a claim made again of its own (its lease and subscription may
have held all along; the let-go and the newest position of each
conversation are made again), and after a read that failed.  Nodes of two event
formats (:data:`FORMAT`) never serve together.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import (
    Kind,
    Message,
    ModeSet,
    NetworkListener,
    Outage,
    Refusal,
    Refused,
    RemoteUser,
    RoomEvent,
)
from msgsvc.hub.rules import username_key
from msgsvc.state.inbox import ROUTE, Inbox, inbox_key, waiting_key
from msgsvc.state.redis import (
    ACCOUNTS,
    LOG_FIRST,
    LOG_LAST,
    LOG_NAME,
    ONLINE,
    PREFIX,
    RedisState,
    receiver_key,
    sessions_key,
)
from msgsvc.state.redislink import Commands, RedisUnavailable, Script, Subscription
from msgsvc.state.roomevents import decode, encode

NODES = f"{PREFIX}nodes"
PRESENCE = f"{PREFIX}presence"
#: The format of what the nodes pass each other (the events of ``msgsvc:presence``, room events among them
#: (:mod:`msgsvc.state.roomevents`), and inbox entries, :func:`encode_message`): one more at any change of
#: them.  A node does not join a service whose nodes run another (docs/scaling.rst, "Upgrades").  1: the
#: nodes of before the numbers (none in their lease); 2: a room's member carries its membership (joined).
FORMAT = 2


def node_key(node: str) -> str:
    return f"{PREFIX}node:{node}"


def users_key(node: str) -> str:
    return f"{PREFIX}node:{node}:users"


def away_key(node: str) -> str:
    """The away messages of a node's names: name key -> message (while it holds the name)."""
    return f"{PREFIX}node:{node}:away"


def encode_message(message: Message, keys_by_node: dict[str, list[str]]) -> str:
    """``message`` as the nodes pass it: ``[from, kind, group, text, id, at, {node: [keys]}]``, JSON written
    here as ``json.dumps`` with compact separators writes it (one is made for every message that crosses
    nodes: ``JSONEncoder.encode`` builds a C encoder at every call)."""
    s = _json_string
    nodes = ",".join([f"{s(node)}:[{','.join(map(s, keys))}]" for node, keys in keys_by_node.items()])
    m = message
    group = ",".join(map(s, m.recipients))
    return f'[{s(m.sender)},"{m.kind._value_}",[{group}],{s(m.text)},"{m.id}",{m.at!r},{{{nodes}}}]'


#: a message's kind by its value, as :func:`encode_message` writes it (``Kind(value)`` is Enum's slow look-up)
_KINDS = {kind.value: kind for kind in Kind}


def publish_room_event(redis: Commands, event: RoomEvent, node: str) -> Deferred[object]:
    """Tell every node but ``node`` (which made it) of ``event`` (the operator's command: a node of none)."""
    return redis.execute("PUBLISH", PRESENCE, json.dumps({"e": "room", "node": node, "event": encode(event)}))


def default_node_name() -> str:
    """This machine's name, the process id and a random part: unique, and readable in the window."""
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{os.urandom(2).hex()}".replace(":", "-")


# alive(node): whether the node holds its lease.  forget_dead(sessions, me): drops the sessions of nodes
# without a lease from a name's sessions (field -> holder JSON); returns the sessions left (as a table)
# and how many are on other nodes than `me`.  settle(key, sessions, gone, now): after sessions of node
# `gone` went: if it holds none of the name any more, `left` is published for it, and the name's online
# holder moves to a session left (none: the name is offline, last seen `now`).  Returns whether `gone`
# still holds some.  forget_mine(users, node, kept, now): drops the sessions of `node` but those `kept`
# (field -> true), settling each name.
SESSIONS = """
local function alive(node)
  return redis.call('EXISTS', 'msgsvc:node:' .. node) == 1
end
local function forget_dead(sessions, me)
  local left, others, live = {}, 0, {}
  local flat = redis.call('HGETALL', sessions)
  for i = 1, #flat, 2 do
    local node = cjson.decode(flat[i + 1]).node
    if live[node] == nil then live[node] = node == me or alive(node) end
    if live[node] then
      left[flat[i]] = flat[i + 1]
      if node ~= me then others = others + 1 end
    else
      redis.call('HDEL', sessions, flat[i])
    end
  end
  return left, others
end
local function settle(key, sessions, gone, now)
  local holder = false
  local flat = redis.call('HGETALL', sessions)
  for i = 2, #flat, 2 do
    if cjson.decode(flat[i]).node == gone then return true end
    holder = holder or flat[i]
  end
  redis.call('HDEL', 'msgsvc:node:' .. gone .. ':away', key)
  if holder then
    local online = redis.call('HGET', 'msgsvc:online', key)
    if not online or cjson.decode(online).node == gone then
      redis.call('HSET', 'msgsvc:online', key, holder)
    end
  else
    redis.call('HDEL', 'msgsvc:online', key)
    redis.call('HSET', 'msgsvc:log:last', key, now)
  end
  redis.call('PUBLISH', 'msgsvc:presence',
    cjson.encode({e = 'left', key = key, node = gone, at = tonumber(now), dead = not alive(gone)}))
  return false
end
local function forget_mine(users, node, kept, now)
  for _, key in ipairs(redis.call('SMEMBERS', users)) do
    local sessions, gone = 'msgsvc:sessions:' .. key, false
    local flat = redis.call('HGETALL', sessions)
    for i = 1, #flat, 2 do
      if not kept[flat[i]] and cjson.decode(flat[i + 1]).node == node then
        redis.call('HDEL', sessions, flat[i])
        gone = true
      end
    end
    if gone and not settle(key, sessions, node, now) then redis.call('SREM', users, key) end
  end
end
"""

# Holds a name for one session of this node, within its allowance across the service: one (exclusive) for
# an unprotected name, refused if any other node holds it; more for an account.  The first session of the
# name on this node is published as ``joined``.
# KEYS: online, my lease, my users, log name, log first, log last, accounts, the name's sessions
# ARGV: name key, name, node, holder (JSON), now, session field, allowance
CLAIM = Script(
    SESSIONS
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'nolease'} end
local sessions, others = forget_dead(KEYS[8], ARGV[3])
local count, here = 0, false
for field, held in pairs(sessions) do
  if field ~= ARGV[6] then
    count = count + 1
    if cjson.decode(held).node == ARGV[3] then here = true end
  end
end
local spelled = redis.call('HGET', KEYS[4], ARGV[1]) or ARGV[2]
local allowance = tonumber(ARGV[7])
if allowance == 1 and others > 0 then return {'taken', spelled} end
if count >= allowance then return {'full', spelled, allowance} end
local new = redis.call('HSETNX', KEYS[4], ARGV[1], ARGV[2])
if new == 1 then redis.call('HSET', KEYS[5], ARGV[1], ARGV[5]) end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[8], ARGV[6], ARGV[4])
local online = redis.call('HGET', KEYS[1], ARGV[1])
if not online or not alive(cjson.decode(online).node) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) end
redis.call('SADD', KEYS[3], ARGV[1])
local name = redis.call('HGET', KEYS[4], ARGV[1])
if not here and not sessions[ARGV[6]] then
  redis.call('PUBLISH', 'msgsvc:presence', cjson.encode({
    e = 'joined', key = ARGV[1], name = name, holder = ARGV[4], new = new,
    first_seen = tonumber(redis.call('HGET', KEYS[5], ARGV[1])),
    protected = redis.call('HEXISTS', KEYS[7], ARGV[1])}))
end
return {'held', name, new}
"""
)

# Lets one session of this node go.  KEYS: my users, the name's sessions; ARGV: name key, node, now, field
RELEASE = Script(
    SESSIONS
    + """
if redis.call('HDEL', KEYS[2], ARGV[4]) == 0 then return 0 end
if not settle(ARGV[1], KEYS[2], ARGV[2], ARGV[3]) then redis.call('SREM', KEYS[1], ARGV[1]) end
return 1
"""
)

# Drops this node's sessions that it no longer has (they left while Redis was away, or it dropped them
# when its lease ended), before it claims those it has again.  KEYS: my users; ARGV: node, now, the
# fields of the sessions it has...
FORGET_GONE = Script(
    SESSIONS
    + """
local kept = {}
for i = 3, #ARGV do kept[ARGV[i]] = true end
forget_mine(KEYS[1], ARGV[1], kept, ARGV[2])
return 1
"""
)

# Makes a session the one an account's offline queue goes to, unless another holds it: one whose session
# is still in the name's sessions, on a node with a lease (one that left, or whose node died, holds it no
# more).  KEYS: the name's receiver, the name's sessions; ARGV: session field.  Returns 1 if it has it.
TAKE_BACKLOG = Script(
    SESSIONS
    + """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local held = redis.call('HGET', KEYS[2], holder)
  if held and alive(cjson.decode(held).node) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""
)

# Lets an account's offline queue go, if this session has it, and says so on the presence channel: a
# session of the name on any node may take it.  KEYS: the name's receiver; ARGV: name key, node, session
# field.
DROP_BACKLOG = Script(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', 'msgsvc:presence', cjson.encode({e = 'backlog', key = ARGV[1], node = ARGV[2]}))
return 1
"""
)

# Renews this node's lease (and says how much may wait in its inbox), and sweeps the nodes whose
# lease is gone: their sessions go, and a name held by none any more is offline.  A node taking its lease
# anew has dropped every user: its sessions left in Redis go too; it takes none while a node of another
# event format holds one (one without a format in its lease is of format 1).  KEYS: nodes; ARGV: node,
# lease in ms, about (JSON), now, inbox limit in bytes, 1 if the lease is taken anew, event format.
# Returns {'held'}, or {'format', a node of another format, its format}.
HEARTBEAT = Script(
    SESSIONS
    + """
if ARGV[6] == '1' then
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local about = redis.call('GET', 'msgsvc:node:' .. id)
    if about and id ~= ARGV[1] then
      local format = cjson.decode(about).format or 1
      if format ~= tonumber(ARGV[7]) then return {'format', id, format} end
    end
  end
end
redis.call('SET', 'msgsvc:node:' .. ARGV[1], ARGV[3], 'PX', ARGV[2])
redis.call('HSET', 'msgsvc:node:' .. ARGV[1] .. ':waiting', 'limit', ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[6] == '1' then forget_mine('msgsvc:node:' .. ARGV[1] .. ':users', ARGV[1], {}, ARGV[4]) end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not alive(id) then
    for _, key in ipairs(redis.call('SMEMBERS', 'msgsvc:node:' .. id .. ':users')) do
      local sessions = 'msgsvc:sessions:' .. key
      local flat = redis.call('HGETALL', sessions)
      for i = 1, #flat, 2 do
        if cjson.decode(flat[i + 1]).node == id then redis.call('HDEL', sessions, flat[i]) end
      end
      settle(key, sessions, id, ARGV[4])
    end
    redis.call('DEL', 'msgsvc:node:' .. id .. ':users', 'msgsvc:node:' .. id .. ':inbox',
      'msgsvc:node:' .. id .. ':waiting', 'msgsvc:node:' .. id .. ':away')
    redis.call('SREM', KEYS[1], id)
  end
end
return {'held'}
"""
)

# A name this node holds is away with a message ('': back), published as ``away``.  KEYS: my users, my
# away; ARGV: name key, node, message.
AWAY = Script(
    """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
redis.call('PUBLISH', 'msgsvc:presence',
  cjson.encode({e = 'away', key = ARGV[1], node = ARGV[2], message = ARGV[3]}))
return 1
"""
)

# After a reconnection: this node's away names are these (what changed meanwhile is published, as AWAY
# does).  KEYS: my users, my away; ARGV: node, then name key and message for each.
AWAY_AGAIN = Script(
    """
local old, new = {}, {}
local flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do old[flat[i]] = flat[i + 1] end
for i = 2, #ARGV, 2 do new[ARGV[i]] = ARGV[i + 1] end
local function tell(key, message)
  redis.call('PUBLISH', 'msgsvc:presence',
    cjson.encode({e = 'away', key = key, node = ARGV[1], message = message}))
end
for key in pairs(old) do
  if new[key] == nil then
    redis.call('HDEL', KEYS[2], key)
    tell(key, '')
  end
end
for key, message in pairs(new) do
  if old[key] ~= message and redis.call('SISMEMBER', KEYS[1], key) == 1 then
    redis.call('HSET', KEYS[2], key, message)
    tell(key, message)
  end
end
return 1
"""
)

# Who is away on the other nodes alive: name key, node, message, ...  KEYS: nodes; ARGV: my node.
AWAY_NOW = Script(
    """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[1] and redis.call('EXISTS', 'msgsvc:node:' .. id) == 1 then
    local flat = redis.call('HGETALL', 'msgsvc:node:' .. id .. ':away')
    for i = 1, #flat, 2 do
      table.insert(out, flat[i])
      table.insert(out, id)
      table.insert(out, flat[i + 1])
    end
  end
end
return out
"""
)

# Who is online on the nodes alive: name key, holder (JSON), ... (one holder a node a name).
ONLINE_NOW = Script(
    SESSIONS
    + """
local out, live = {}, {}
for _, key in ipairs(redis.call('HKEYS', KEYS[1])) do
  local seen = {}
  local flat = redis.call('HGETALL', 'msgsvc:sessions:' .. key)
  for i = 2, #flat, 2 do
    local node = cjson.decode(flat[i]).node
    if live[node] == nil then live[node] = alive(node) end
    if live[node] and not seen[node] then
      seen[node] = true
      table.insert(out, key)
      table.insert(out, flat[i])
    end
  end
end
return out
"""
)


class RedisCluster(Service):
    """This node of the service: its lease, its claims, and messages to and from the other nodes.

    :class:`msgsvc.hub.contracts.Network` for the hub, whose routing between nodes must be given
    with :meth:`attach` before the service starts.  ``inbox`` is how many bytes of messages for
    its users other nodes may leave waiting in Redis for it to read.
    """

    log = Logger()

    def __init__(
        self, reactor: Any, state: RedisState, lease: float, inbox: int, node: str | None = None
    ) -> None:
        self.node = node or default_node_name()
        self._clock: IReactorTime = reactor
        self._state = state
        state.node = self.node
        self._redis = state.redis
        self.lease = lease
        self._inbox_limit = inbox
        self._nodes: NetworkListener | None = None
        self._held_until = 0.0  # by our clock: the lease surely holds until then
        self.rtt: float | None = None  # seconds the last renewal of the lease took, sent to answered
        self._expiry: IDelayedCall | None = None
        self._heartbeat = LoopingCall(self._renew)
        self._heartbeat.clock = reactor
        self._subscribed = False
        self._waiting_for_redis = False
        self._resync_waiting = False
        self._routing: list[tuple[Message, dict[str, list[str]], Callable[[set[str] | Failure], None]]] = []
        self._route_call: IDelayedCall | None = None
        self._full: set[str] = set()  # nodes whose inbox refused messages, until one takes a message again
        self._owed = False  # Redis did not take something of this node's: :meth:`_not_taken`
        self._undropped: set[tuple[str, str]] = set()  # (name key, session field): a let-go not taken
        self._unread: dict[tuple[str, str], str] = {}  # (name key, conversation) -> a position not told
        self._untaken = Outage(
            self.log,
            reactor,
            "give Redis a change of this node's (a session's claim or release, an away, a room, a read)",
            "this node reads the service's state again at the next renewal Redis answers",
        )
        self._rereads = 0  # re-reads under way (:meth:`_reclaim`)
        self._behind = False  # the last re-read failed: what this node holds may be behind
        self._heard_meanwhile: list[dict[str, Any]] = []  # presence events heard meanwhile, taken after
        self._about = json.dumps({"node": self.node, "started": reactor.seconds(), "format": FORMAT})
        self._refused: str | None = None  # why this node takes no lease (:meth:`_refuse`)
        self._subscription = Subscription(
            reactor,
            state.url,
            [PRESENCE],
            self._presence,
            self._subscription_up,
            self._subscription_down,
        )
        self._inbox = Inbox(reactor, state.url, self.node, self._messages)

    def attach(self, nodes: NetworkListener) -> None:
        self._nodes = nodes

    @property
    def nodes(self) -> NetworkListener:
        assert self._nodes is not None, "attach() the hub's nodes first"
        return self._nodes

    # -- the service --------------------------------------------------------------

    def startService(self) -> None:
        Service.startService(self)
        self._subscription.start()
        self._inbox.start()
        self._heartbeat.start(self.lease / 4)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        if self._heartbeat.running:
            self._heartbeat.stop()
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        if self._route_call is not None:
            self._route_call.cancel()
            self._route_all()  # fails at once if Redis is away
        # The lease ends at once: the next sweep of any node releases what this one still held.  What
        # waits in its inbox is for users who have been told goodbye.
        ended = self._redis.execute(
            "DEL", node_key(self.node), inbox_key(self.node), waiting_key(self.node)
        ).addErrback(lambda _: None)
        stopped = [ended, self._subscription.stop(), self._inbox.stop()]
        return gatherResults(stopped).addCallback(lambda _: None)

    # -- the lease -----------------------------------------------------------------

    def holds_lease(self) -> bool:
        """Whether this node holds its lease now (by its own clock, surely)."""
        return self._clock.seconds() < self._held_until

    def _renew(self) -> Deferred[None]:
        sent = self._clock.seconds()
        ttl = self.lease * 0.75  # with a sweep every quarter lease, a dead node's users are gone within one

        def renewed(reply: list[Any]) -> None:
            if not self.running:  # stopped meanwhile: its lease is ended
                return
            self.rtt = self._clock.seconds() - sent
            if reply[0] == "format":
                self._refuse(str(reply[1]), int(reply[2]))
                return
            self._refused = None
            had = self.holds_lease()
            # Redis counts the lease from when it ran the script, after we sent it: by our clock it
            # holds at least until sent + ttl.  We stop relying on it a tenth before that.
            self._held_until = sent + ttl * 0.9
            if self._expiry is not None and self._expiry.active():
                self._expiry.cancel()
            self._expiry = self._clock.callLater(self._held_until - self._clock.seconds(), self._lease_lost)
            if not had:
                self.log.info(
                    "node {node}: lease held ({lease:g} s, event format {events})",
                    node=self.node,
                    lease=self.lease,
                    events=FORMAT,
                )
                if self._subscribed:
                    self._reclaim()
            elif self._owed and self._subscribed:  # Redis answers again: what it missed, and what changed
                self._reclaim()

        def failed(failure: Failure) -> None:
            if self.holds_lease():
                self.log.warn(
                    "node {node}: could not renew the lease: {why}; it ends in {left:.1f} s",
                    node=self.node,
                    why=failure.getErrorMessage(),
                    left=self._held_until - self._clock.seconds(),
                )
            elif not self._waiting_for_redis:  # no lease: take one as soon as Redis answers
                self._waiting_for_redis = True
                self._redis.ready().addCallback(self._redis_back)

        def broke(failure: Failure) -> None:
            # the heartbeat's LoopingCall stops for good at a failure: log the fault, renew at the next beat
            self.log.failure("node {node}: a lease renewal's answer broke", failure, node=self.node)

        anew = int(not self.holds_lease())
        args = [self.node, int(ttl * 1000), self._about, sent, self._inbox_limit, anew, FORMAT]
        return self._redis.script(HEARTBEAT, [NODES], args).addCallbacks(renewed, failed).addErrback(broke)

    def _refuse(self, node: str, theirs: int) -> None:
        """Take no lease while ``node`` (alive) runs event format ``theirs``, not this one's: say so once."""
        why = (
            f"node {node} runs event format {theirs}, this one {FORMAT}: nodes of two formats do not "
            "understand each other's events; this node joins once no node of another format runs "
            '(docs/scaling.rst, "Upgrades")'
        )
        if why != self._refused:
            self._refused = why
            self.log.error("node {node}: not joining the service: {why}", node=self.node, why=why)

    def _redis_back(self, _: None) -> None:
        self._waiting_for_redis = False
        if self.running:
            self._renew()

    def _lease_lost(self) -> None:
        """Our lease may end in Redis any moment: nobody here may hold a name any more."""
        self._expiry = None
        self.log.error(
            "node {node}: the lease could not be renewed in time: disconnecting this node's users",
            node=self.node,
        )
        self.nodes.drop_local(None, "this server lost the service's state (Redis); connect again")

    # -- the operator's view ---------------------------------------------------------

    def links(self) -> dict[str, Commands | Subscription]:
        """This node's connections to Redis, by what each is for."""
        return {"commands": self._redis, "subscription": self._subscription, "inbox": self._inbox.connection}

    def check(self) -> Deferred[None]:
        """Fires if this node can serve (Redis connected, its lease held); else fails with why."""
        if not self._redis.connected:
            return fail(self._redis.unavailable())
        if not self.holds_lease():
            return fail(RedisUnavailable(self._refused or "this node holds no lease in Redis now"))
        return succeed(None)

    # -- the hub's Network ----------------------------------------------------------------

    def reachable(self) -> bool:
        # Sending needs the commands connection and our lease; the subscription is for receiving.
        return self._redis.connected and self.holds_lease()

    def rereading(self) -> bool:
        return bool(self._rereads) or self._behind

    def claim(
        self, name: str, peer: str, front: str, since: float, known: bool, session: int, sessions: int
    ) -> Deferred[tuple[str, bool]]:
        key = username_key(name)
        holder = json.dumps({"node": self.node, "peer": peer, "front": front, "since": since})

        def answered(reply: list[Any]) -> tuple[str, bool]:
            match reply:
                case ["held", spelled, new]:
                    return str(spelled), bool(int(new))
                case ["taken", spelled]:
                    raise Refused(Refusal.USERNAME_TAKEN, f"{spelled} is in use")
                case ["full", spelled, allowance]:
                    raise Refused(
                        Refusal.SESSIONS_FULL, f"{spelled} has its {allowance} sessions open already"
                    )
                case _:
                    raise no_lease

        no_lease = RedisUnavailable("this node holds no lease in Redis now")
        if not self.holds_lease():
            return fail(no_lease)
        keys = [ONLINE, node_key(self.node), users_key(self.node), LOG_NAME, LOG_FIRST, LOG_LAST, ACCOUNTS]
        return self._redis.script(
            CLAIM,
            [*keys, sessions_key(key)],
            [key, name, self.node, holder, self._clock.seconds(), self._field(session), sessions],
        ).addCallback(answered)

    def _field(self, session: int) -> str:
        return f"{self.node}/{session}"

    def release(self, name: str, session: int, when: float) -> None:
        key = username_key(name)
        self._redis.script(
            RELEASE, [users_key(self.node), sessions_key(key)], [key, self.node, when, self._field(session)]
        ).addErrback(self._not_taken)

    def take_backlog(self, name: str, session: int) -> Deferred[bool]:
        key = username_key(name)
        field = self._field(session)

        def answered(taken: Any) -> bool:
            if int(taken):  # a let-go not taken before is not made by the next read: it has it now
                self._undropped.discard((key, field))
            return bool(int(taken))

        return self._redis.script(
            TAKE_BACKLOG, [receiver_key(key), sessions_key(key)], [field]
        ).addCallback(answered)

    def drop_backlog(self, name: str, session: int) -> None:
        self._drop_backlog(username_key(name), self._field(session))

    def _drop_backlog(self, key: str, field: str) -> None:
        """Let the offline queue of the name ``key`` go if the session ``field`` has it; if Redis does
        not take it, made again by the next renewal's read (:meth:`_not_taken`)."""

        def failed(failure: Failure) -> None:
            self._undropped.add((key, field))
            self._not_taken(failure)

        self._redis.script(DROP_BACKLOG, [receiver_key(key)], [key, self.node, field]).addCallbacks(
            lambda _: self._undropped.discard((key, field)), failed
        )

    def read_moved(self, name: str, conversation: str, position: str) -> None:
        """Publish the move on ``msgsvc:presence``: the nodes with sessions of ``name`` tell them."""
        self._tell_read(username_key(name), conversation, position)

    def _tell_read(self, key: str, conversation: str, position: str) -> None:
        """Publish where the name ``key`` has read ``conversation``; if Redis does not take it, the newest
        position not told of each conversation is published by the next renewal's read."""
        event = {"e": "read", "key": key, "conv": conversation, "pos": position, "node": self.node}

        def failed(failure: Failure) -> None:
            self._unread[key, conversation] = position
            self._not_taken(failure)

        self._redis.execute("PUBLISH", PRESENCE, json.dumps(event)).addCallbacks(
            lambda _: self._unread.pop((key, conversation), None), failed
        )

    def away_changed(self, name: str, message: str | None) -> None:
        """Keep ``name``'s away message in this node's away hash and publish it on ``msgsvc:presence``."""
        key = username_key(name)
        self._redis.script(
            AWAY, [users_key(self.node), away_key(self.node)], [key, self.node, message or ""]
        ).addErrback(self._not_taken)

    def _not_taken(self, failure: Failure) -> None:
        """Redis did not take a release, an away change, a room's change, a let-go of an offline queue, a
        read position or a claim made again (Redis away, the commands connection dropped, while the
        subscription and the lease may hold): the next renewal reads again (:meth:`_reclaim`), which gives
        this node's sessions and away names whole, lets go the queues and tells the read positions not
        taken, and takes the rooms as the store has them (a change published here just before its write:
        the write failed too)."""
        self._owed = True
        self._untaken.failed(failure)

    def room_changed(self, event: RoomEvent) -> None:
        """Publish ``event`` on ``msgsvc:presence``: every other node applies it to its rooms (a ModeSet
        the store's ``SET_MODES`` published, as it kept it: before this node's answer to its asker)."""
        if isinstance(event, ModeSet):
            return
        told = publish_room_event(self._redis, event, self.node)
        told.addErrback(self._not_taken)

    def route(
        self, message: Message, keys_by_node: dict[str, list[str]], answer: Callable[[set[str] | Failure], None]
    ) -> None:
        """Pass ``message`` on with the others of this reactor pass: one script for them all."""
        self._routing.append((message, keys_by_node, answer))
        if self._route_call is None:
            self._route_call = self._clock.callLater(0, self._route_all)

    def broadcast(self, message: Message, answer: Callable[[set[str] | Failure], None]) -> bool:
        if not self.reachable():
            return False
        self.route(message, {}, answer)
        return True

    def _route_all(self) -> None:
        """Write what :meth:`route` was given since the last pass to the inboxes of the nodes it is for
        (in one script, each node's messages in one entry, in the order given), and tell each message
        which nodes took it."""
        self._route_call = None
        batch, self._routing = self._routing, []
        lines = "\n".join(  # a broadcast: for every node, no keys
            f"{','.join(keys)}\t{encode_message(message, keys)}" for message, keys, _ in batch
        )

        def answered(replies: list[Any]) -> list[set[str]]:
            """What each message reached (all read before any is told: a bad reply fails them all)."""
            *took, full = replies
            reached = [set(nodes) for _, nodes in zip(batch, took, strict=True)]
            self._note_full(set(full), took)
            return reached

        def tell(reached: list[set[str]]) -> None:
            for (_, _, answer), nodes in zip(batch, reached, strict=True):
                answer(nodes)

        def failed(failure: Failure) -> None:
            for _, _, answer in batch:
                answer(failure)

        self._redis.script(ROUTE, [NODES], [self.node, lines]).addCallback(answered).addCallbacks(tell, failed)

    def _note_full(self, full: set[str], took: list[list[str]]) -> None:
        """Log a node whose inbox is full, once, until it takes messages again."""
        for node in full - self._full:
            self.log.warn(
                "node {node}: its inbox in Redis is full (the node is stopped, or too slow): its users' "
                "senders are told they did not get their messages until it catches up",
                node=node,
            )
        if self._full:  # else nothing to forget: no look at every message's nodes
            self._full -= {node for nodes in took for node in nodes}
        self._full |= full

    # -- what the other nodes say --------------------------------------------------------

    def _messages(self, data: str) -> None:
        """An entry of this node's inbox: other nodes' users' messages (:func:`encode_message`), in order."""
        deliver, node = self.nodes.remote_message, self.node
        for sender, kind, group, text, id_, at, keys_by_node in json.loads(data):
            message = Message(sender, _KINDS[kind], tuple(group), text, id_, at)
            try:
                deliver(message, keys_by_node.get(node, ()))
            except Exception:  # the others of the entry still go
                self.log.failure("could not deliver a message from {sender}", sender=sender)

    def _presence(self, on: str, data: str) -> None:
        """An event of ``msgsvc:presence``: taken now, or after the re-read under way (:meth:`_reclaim`)."""
        try:
            event = json.loads(data)
        except ValueError:
            self.log.failure("could not read {data!r} from {channel}", data=data, channel=on)
            return
        if self._rereads:
            self._heard_meanwhile.append(event)
        else:
            self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        """Tell the hub what another node said (its own events are not for it)."""
        try:
            if event["e"] == "joined":
                holder = json.loads(event["holder"])  # as the claim stored it: cjson would round its time
                if holder["node"] == self.node:
                    return
                user = RemoteUser(
                    event["name"], holder["node"], holder["peer"], holder["front"], holder["since"]
                )
                self.nodes.remote_joined(
                    user, float(event["first_seen"]), bool(event["protected"]), bool(event["new"])
                )
            elif event["e"] == "left" and event["node"] != self.node:
                self.nodes.remote_left(event["key"], event["node"], float(event["at"]), bool(event["dead"]))
            elif event["e"] == "protected" and event["node"] != self.node:
                self.nodes.remote_protected(event["key"])
            elif event["e"] == "backlog" and event["node"] != self.node:
                self.nodes.remote_backlog(event["key"])
            elif event["e"] == "read" and event["node"] != self.node:
                self.nodes.remote_read(event["key"], event["conv"], event["pos"])
            elif event["e"] == "away" and event["node"] != self.node:
                self.nodes.remote_away(event["key"], event["node"], event["message"] or None)
            elif event["e"] == "room" and event["node"] != self.node:
                self.nodes.remote_room(decode(event["event"]))
        except Exception:
            self.log.failure("could not take {event!r} from {channel}", event=event, channel=PRESENCE)

    def _subscription_up(self) -> None:
        self._subscribed = True
        if self.holds_lease():
            self._resync()

    def _subscription_down(self) -> None:
        self._subscribed = False

    def _resync(self) -> None:
        """After a (re)connection: claim this node's users again, then read the log and who is online.

        The subscription may come back before the commands' connection: then (and if that connection
        drops meanwhile) it is done once the commands' connection is back.
        """
        if not self._redis.connected:
            if not self._resync_waiting:
                self._resync_waiting = True
                self._redis.ready().addCallback(self._resync_when_ready)
            return
        # The lease first: if Redis lost it (restarted without its data), no claim can be made without.
        self._renew().addCallback(lambda _: self._reclaim())

    def _reclaim(self) -> None:
        """Forget the sessions this node no longer has, claim those it has again, then read the log, who
        is online, the rooms and who is away.

        Redis may answer the read before a change whose event reaches the subscription before the answer
        reaches this node: every event heard from the start to the read's end is taken after the read, in
        turn (as any event: by node, number, stamp or membership, the read may have it already), lest the
        read undo it.
        """
        self._rereads += 1
        self._owed = False
        nodes = self.nodes
        local = nodes.local_users()
        fields = [self._field(session) for _, session, _, _, _, _ in local]
        forgotten = self._redis.script(
            FORGET_GONE, [users_key(self.node)], [self.node, self._clock.seconds(), *fields]
        )
        claims = [
            self.claim(name, peer, front, since, True, session, sessions).addErrback(self._lost_claim, name)
            for name, session, sessions, peer, front, since in local
        ]
        away = [part for key, message in nodes.local_away().items() for part in (key, message)]
        # after the claims (sent before it on the same connection): a name claimed again may be away
        again = self._redis.script(
            AWAY_AGAIN, [users_key(self.node), away_key(self.node)], [self.node, *away]
        ).addErrback(self._not_taken)
        undropped, self._undropped = self._undropped, set()
        for key, field in undropped:
            self._drop_backlog(key, field)
        unread, self._unread = self._unread, {}
        for (key, conversation), position in unread.items():
            self._tell_read(key, conversation, position)

        def read(_: object) -> Deferred[None]:
            return gatherResults(
                [
                    self._state.load(),
                    self._redis.script(ONLINE_NOW, [ONLINE], []),
                    self._state.rooms(),
                    self._redis.script(AWAY_NOW, [NODES], [self.node]),
                ],
                consumeErrors=True,
            ).addCallback(apply)

        def apply(replies: list[Any]) -> None:
            records, flat, rooms, away_flat = replies
            names = {username_key(r.name): r.name for r in records}
            online = []
            for key, data in zip(flat[::2], flat[1::2], strict=True):
                holder = json.loads(data)
                if holder["node"] != self.node:
                    user = RemoteUser(
                        names.get(key, key), holder["node"], holder["peer"], holder["front"], holder["since"]
                    )
                    online.append(user)
            away = list(zip(away_flat[::3], away_flat[1::3], away_flat[2::3], strict=True))
            nodes.resync(records, online, rooms, away)
            self._behind = False
            if not self._owed:  # what Redis did not take is given whole
                self._untaken.over()

        def failed(failure: Failure) -> None:
            self.log.warn(
                "node {node}: could not read who is online: {why}",
                node=self.node,
                why=failure.getErrorMessage(),
            )
            self._behind = True  # till a read is taken: at the next renewal Redis answers, if not before
            self._owed = True

        def done(_: None) -> None:
            self._rereads -= 1
            if not self._rereads:
                heard, self._heard_meanwhile = self._heard_meanwhile, []
                for event in heard:
                    self._take(event)

        gatherResults([forgotten, *claims, again], consumeErrors=True).addCallback(read).addErrback(
            failed
        ).addCallback(done)

    def _resync_when_ready(self, _: None) -> None:
        self._resync_waiting = False
        if self.running and self._subscribed and self.holds_lease():
            self._resync()

    def _lost_claim(self, failure: Failure, name: str) -> None:
        """A claim made again (:meth:`_reclaim`) refused: the name was taken elsewhere; failed: Redis did
        not take it, and the next renewal reads and claims again (:meth:`_not_taken`)."""
        if failure.check(Refused):
            self.nodes.drop_local(name, f"{name} was taken on another server while this one was cut off")
        else:
            self._not_taken(failure)
