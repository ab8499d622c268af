"""Several servers as one service on Redis: who is online where, and messages between nodes.

Every server started with the same ``--redis`` URL is a *node*.  A node
holds a lease, ``msgsvc:node:ID`` with an expiry, renewed four times a
lease; a name online anywhere is in ``msgsvc:online`` (name key -> the
node, address, front and time of its holder) and in its node's set
``msgsvc:node:ID:users``.  Claiming a name is one Lua script: it is free if
nobody holds it or its holder's node has no lease, so two nodes racing for
one name admit one.  The same script puts the name in the username log and
publishes ``joined`` on ``msgsvc:presence`` before the client is welcomed,
so every node hears of a user before its first message.

A message for users of another node is written to that node's inbox, a
Redis Stream it reads and deletes as it delivers (:mod:`msgsvc.state.inbox`),
by a script that first checks the node's lease and the room in its inbox:
the sender's ``SENT`` counts them only if it took the message.  A broadcast
is written to every other node's inbox.  The messages of one reactor pass
go in one script, each node's together in one entry: per pass, not per
message.  Each node subscribes to ``msgsvc:presence`` on a connection of its
own, and reads its inbox on another.

Every renewal also sweeps: a node whose lease is gone has its users'
claims removed, each published as ``left``, and its inbox deleted.  A
node that cannot renew its lease in time (Redis away) disconnects its own
users before the lease can end, so that no name is ever held twice; when
Redis is back it claims its remaining users again (one taken meanwhile
elsewhere is disconnected here) and reads who is online anew.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import Kind, Message, NetworkListener, Refusal, Refused, RemoteUser
from msgsvc.hub.rules import username_key
from msgsvc.state.inbox import ROUTE, Inbox, inbox_key, waiting_key
from msgsvc.state.redis import ACCOUNTS, LOG_FIRST, LOG_LAST, LOG_NAME, ONLINE, PREFIX, RedisState, pairs
from msgsvc.state.redislink import RedisUnavailable, Script, Subscription

NODES = f"{PREFIX}nodes"
PRESENCE = f"{PREFIX}presence"


def node_key(node: str) -> str:
    return f"{PREFIX}node:{node}"


def users_key(node: str) -> str:
    return f"{PREFIX}node:{node}:users"


def default_node_name() -> str:
    """This machine's name, the process id and a random part: unique, and readable in the window."""
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{os.urandom(2).hex()}".replace(":", "-")


# KEYS: online, my lease, my users, log name, log first, log last, accounts
# ARGV: name key, name, node, holder (JSON), now
CLAIM = Script(
    """
if redis.call('EXISTS', KEYS[2]) == 0 then return {'nolease'} end
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local holder = cjson.decode(held)
  if holder.node ~= ARGV[3] and redis.call('EXISTS', 'msgsvc:node:' .. holder.node) == 1 then
    return {'taken', redis.call('HGET', KEYS[4], ARGV[1]) or ARGV[2]}
  end
end
local new = redis.call('HSETNX', KEYS[4], ARGV[1], ARGV[2])
if new == 1 then redis.call('HSET', KEYS[5], ARGV[1], ARGV[5]) end
redis.call('HSET', KEYS[6], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[1])
local name = redis.call('HGET', KEYS[4], ARGV[1])
redis.call('PUBLISH', 'msgsvc:presence', cjson.encode({
  e = 'joined', key = ARGV[1], name = name, holder = ARGV[4], new = new,
  first_seen = tonumber(redis.call('HGET', KEYS[5], ARGV[1])),
  protected = redis.call('HEXISTS', KEYS[7], ARGV[1])}))
return {'held', name, new}
"""
)

# KEYS: online, my users, log last; ARGV: name key, node, now
RELEASE = Script(
    """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held or cjson.decode(held).node ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('PUBLISH', 'msgsvc:presence',
  cjson.encode({e = 'left', key = ARGV[1], node = ARGV[2], at = tonumber(ARGV[3])}))
return 1
"""
)

# Renews this node's lease (and says how much may wait in its inbox), and sweeps the nodes whose
# lease is gone.  KEYS: nodes, online, log last; ARGV: node, lease in ms, about (JSON), now, inbox
# limit in bytes.  Returns the nodes alive.
HEARTBEAT = Script(
    """
redis.call('SET', 'msgsvc:node:' .. ARGV[1], ARGV[3], 'PX', ARGV[2])
redis.call('HSET', 'msgsvc:node:' .. ARGV[1] .. ':waiting', 'limit', ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
local alive = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', 'msgsvc:node:' .. id) == 1 then
    table.insert(alive, id)
  else
    for _, key in ipairs(redis.call('SMEMBERS', 'msgsvc:node:' .. id .. ':users')) do
      local held = redis.call('HGET', KEYS[2], key)
      if held and cjson.decode(held).node == id then
        redis.call('HDEL', KEYS[2], key)
        redis.call('HSET', KEYS[3], key, ARGV[4])
        redis.call('PUBLISH', 'msgsvc:presence',
          cjson.encode({e = 'left', key = key, node = id, at = tonumber(ARGV[4])}))
      end
    end
    redis.call('DEL', 'msgsvc:node:' .. id .. ':users', 'msgsvc:node:' .. id .. ':inbox',
      'msgsvc:node:' .. id .. ':waiting')
    redis.call('SREM', KEYS[1], id)
  end
end
return alive
"""
)

# Who is online on a node that is alive: name key, holder (JSON), ...
ONLINE_NOW = Script(
    """
local out, alive = {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local node = cjson.decode(flat[i + 1]).node
  if alive[node] == nil then alive[node] = redis.call('EXISTS', 'msgsvc:node:' .. node) == 1 end
  if alive[node] then
    table.insert(out, flat[i])
    table.insert(out, flat[i + 1])
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
        self._expiry: IDelayedCall | None = None
        self._heartbeat = LoopingCall(self._renew)
        self._heartbeat.clock = reactor
        self._subscribed = False
        self._waiting_for_redis = False
        self._resync_waiting = False
        self._routing: list[tuple[Message, dict[str, list[str]], Deferred[set[str]]]] = []
        self._route_call: IDelayedCall | None = None
        self._full: set[str] = set()  # nodes whose inbox refused messages, until one takes a message again
        self._about = json.dumps({"node": self.node, "started": reactor.seconds()})
        self._subscription = Subscription(
            reactor,
            state.url,
            [PRESENCE],
            self._presence,
            self._subscription_up,
            self._subscription_down,
        )
        self._inbox = Inbox(reactor, state.url, self.node, self._message)

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

    def _holds_lease(self) -> bool:
        return self._clock.seconds() < self._held_until

    def _renew(self) -> Deferred[None]:
        sent = self._clock.seconds()
        ttl = self.lease * 0.75  # with a sweep every quarter lease, a dead node's users are gone within one

        def renewed(alive: list[str]) -> None:
            had = self._holds_lease()
            # Redis counts the lease from when it ran the script, after we sent it: by our clock it
            # holds at least until sent + ttl.  We stop relying on it a tenth before that.
            self._held_until = sent + ttl * 0.9
            if self._expiry is not None and self._expiry.active():
                self._expiry.cancel()
            self._expiry = self._clock.callLater(self._held_until - self._clock.seconds(), self._lease_lost)
            if not had:
                self.log.info("node {node}: lease held ({lease:g} s)", node=self.node, lease=self.lease)
                if self._subscribed:
                    self._reclaim()

        def failed(failure: Failure) -> None:
            if self._holds_lease():
                self.log.warn(
                    "node {node}: could not renew the lease: {why}; it ends in {left:.1f} s",
                    node=self.node,
                    why=failure.getErrorMessage(),
                    left=self._held_until - self._clock.seconds(),
                )
            elif not self._waiting_for_redis:  # no lease: take one as soon as Redis answers
                self._waiting_for_redis = True
                self._redis.ready().addCallback(self._redis_back)

        return self._redis.script(
            HEARTBEAT,
            [NODES, ONLINE, LOG_LAST],
            [self.node, int(ttl * 1000), self._about, sent, self._inbox_limit],
        ).addCallbacks(renewed, failed)

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

    # -- the hub's Network ----------------------------------------------------------------

    def reachable(self) -> bool:
        # Sending needs the commands connection and our lease; the subscription is for receiving.
        return self._redis.connected and self._holds_lease()

    def claim(
        self, name: str, peer: str, front: str, since: float, known: bool
    ) -> Deferred[tuple[str, bool]]:
        key = username_key(name)
        holder = json.dumps({"node": self.node, "peer": peer, "front": front, "since": since})

        def answered(reply: list[Any]) -> tuple[str, bool]:
            match reply:
                case ["held", spelled, new]:
                    return str(spelled), bool(int(new))
                case ["taken", spelled]:
                    raise Refused(Refusal.USERNAME_TAKEN, f"{spelled} is in use")
                case _:
                    raise no_lease

        no_lease = RedisUnavailable("this node holds no lease in Redis now")
        if not self._holds_lease():
            return fail(no_lease)
        return self._redis.script(
            CLAIM,
            [ONLINE, node_key(self.node), users_key(self.node), LOG_NAME, LOG_FIRST, LOG_LAST, ACCOUNTS],
            [key, name, self.node, holder, self._clock.seconds()],
        ).addCallback(answered)

    def release(self, name: str, when: float) -> None:
        self._redis.script(
            RELEASE, [ONLINE, users_key(self.node), LOG_LAST], [username_key(name), self.node, when]
        ).addErrback(
            lambda f: self.log.warn(
                "could not release {name} in Redis: {why} (its claim ends with this node's lease)",
                name=name,
                why=f.getErrorMessage(),
            )
        )

    def route(self, message: Message, keys_by_node: dict[str, list[str]]) -> Deferred[set[str]]:
        """Pass ``message`` on with the others of this reactor pass: one script for them all."""
        reached: Deferred[set[str]] = Deferred()
        self._routing.append((message, keys_by_node, reached))
        if self._route_call is None:
            self._route_call = self._clock.callLater(0, self._route_all)
        return reached

    def broadcast(self, message: Message) -> Deferred[set[str]] | None:
        return self.route(message, {}) if self.reachable() else None

    def _route_all(self) -> None:
        """Write what :meth:`route` was given since the last pass to the inboxes of the nodes it is for
        (in one script, each node's messages in one entry, in the order given), and tell each message
        which nodes took it."""
        self._route_call = None
        batch, self._routing = self._routing, []
        args: list[object] = [self.node]
        for message, keys_by_node, _ in batch:
            if message.kind is Kind.BROADCAST:
                body: dict[str, object] = {
                    "from": message.sender,
                    "kind": "broadcast",
                    "text": message.text,
                    "id": message.id,
                    "at": message.at,
                }
                args += ["", json.dumps(body)]
            else:
                body = {
                    "from": message.sender,
                    "kind": message.kind.value,
                    "group": message.recipients,
                    "text": message.text,
                    "id": message.id,
                    "at": message.at,
                    "to": keys_by_node,
                }
                args += [",".join(keys_by_node), json.dumps(body)]

        def answered(replies: list[Any]) -> list[set[str]]:
            """What each message reached (all read before any is told: a bad reply fails them all)."""
            *took, full = replies
            reached = [set(nodes) for _, nodes in zip(batch, took, strict=True)]
            self._note_full(set(full), took)
            return reached

        def tell(reached: list[set[str]]) -> None:
            for (_, _, told), nodes in zip(batch, reached, strict=True):
                told.callback(nodes)

        def failed(failure: Failure) -> None:
            for _, _, told in batch:
                told.errback(failure)

        self._redis.script(ROUTE, [NODES], args).addCallback(answered).addCallbacks(tell, failed)

    def _note_full(self, full: set[str], took: list[list[str]]) -> None:
        """Log a node whose inbox is full, once, until it takes messages again."""
        for node in full - self._full:
            self.log.warn(
                "node {node}: its inbox in Redis is full (the node is stopped, or too slow): its users' "
                "senders are told they did not get their messages until it catches up",
                node=node,
            )
        self._full = (self._full - {node for nodes in took for node in nodes}) | full

    # -- what the other nodes say --------------------------------------------------------

    def _message(self, data: str) -> None:
        """A message from another node's user, read from this node's inbox."""
        m = json.loads(data)
        if m["kind"] == Kind.BROADCAST.value:
            self.nodes.remote_message(Message(m["from"], Kind.BROADCAST, (), m["text"], m["id"], m["at"]), ())
        else:
            message = Message(m["from"], Kind(m["kind"]), tuple(m["group"]), m["text"], m["id"], m["at"])
            self.nodes.remote_message(message, m["to"].get(self.node, ()))

    def _presence(self, on: str, data: str) -> None:
        try:
            event = json.loads(data)
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
                self.nodes.remote_left(event["key"], event["node"], float(event["at"]))
            elif event["e"] == "protected" and event["node"] != self.node:
                self.nodes.remote_protected(event["key"])
        except Exception:
            self.log.failure("could not take {data!r} from {channel}", data=data, channel=on)

    def _subscription_up(self) -> None:
        self._subscribed = True
        if self._holds_lease():
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
        """Claim this node's users again, then read the log and who is online."""
        nodes = self.nodes
        claims = [
            self.claim(name, peer, front, since, True).addErrback(self._lost_claim, name)
            for name, peer, front, since in nodes.local_users()
        ]

        def read(_: object) -> Deferred[None]:
            return gatherResults(
                [self._state.load(), self._redis.script(ONLINE_NOW, [ONLINE], [])], consumeErrors=True
            ).addCallback(apply)

        def apply(replies: list[Any]) -> None:
            records, flat = replies
            names = {username_key(r.name): r.name for r in records}
            online = []
            for key, data in pairs(flat).items():
                holder = json.loads(data)
                if holder["node"] != self.node:
                    user = RemoteUser(
                        names.get(key, key), holder["node"], holder["peer"], holder["front"], holder["since"]
                    )
                    online.append(user)
            nodes.resync(records, online)

        def failed(failure: Failure) -> None:
            self.log.warn(
                "node {node}: could not read who is online: {why}",
                node=self.node,
                why=failure.getErrorMessage(),
            )
            if not self._redis.connected:
                self._resync()  # once Redis answers again

        gatherResults(claims).addCallback(read).addErrback(failed)

    def _resync_when_ready(self, _: None) -> None:
        self._resync_waiting = False
        if self.running and self._subscribed and self._holds_lease():
            self._resync()

    def _lost_claim(self, failure: Failure, name: str) -> None:
        if failure.check(Refused):
            self.nodes.drop_local(name, f"{name} was taken on another server while this one was cut off")
        else:
            self.log.warn("could not claim {name} again: {why}", name=name, why=failure.getErrorMessage())
