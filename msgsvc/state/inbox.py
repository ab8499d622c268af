"""Each node's inbox in Redis: the messages other nodes' users send its users, until it has delivered them.

A node's inbox is a Redis Stream, ``msgsvc:node:ID:inbox``, beside a hash
``msgsvc:node:ID:waiting`` with ``bytes`` (what waits in it) and ``limit``
(what the node lets wait: ``--redis-inbox``, set with every renewal of its
lease).  The messages a node routes in one reactor pass are written by one
script, :data:`ROUTE`: for each node they are for, if its lease holds and
its inbox has room for them, one entry with those messages, in the order
sent, as one JSON array (``m``; each message an array too,
:func:`msgsvc.state.cluster.encode_message`), which the node decodes once.
The script answers which nodes took each message, and only those
count as delivered: a message is never cut from a stream it was counted in
(no ``MAXLEN``), so an inbox at its limit refuses instead.

The node reads its inbox on a connection of its own (:class:`Inbox`), as
entries come (``XREAD BLOCK``), from the last entry it delivered, and
deletes what it delivered (:data:`TAKEN`): what is in the stream is what
its users have not been given yet, which a pause, a slow reader or a
restart of Redis (with its data) does not lose.  A node whose lease is gone
has its inbox deleted by the next sweep (:mod:`msgsvc.state.cluster`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from msgsvc.hub.contracts import Outage
from msgsvc.state.redis import PREFIX
from msgsvc.state.redislink import Commands, RedisUnavailable, Script
from msgsvc.state.redisurl import RedisURL

#: milliseconds a read waits for an entry before it is made again (well within the reply timeout)
BLOCK_MS = 1000
#: entries read at once: each is a pass of messages from one node
READ_COUNT = 100
#: seconds before a read that Redis refused is tried again
RETRY = 1.0


def inbox_key(node: str) -> str:
    return f"{PREFIX}node:{node}:inbox"


def waiting_key(node: str) -> str:
    return f"{PREFIX}node:{node}:waiting"


# KEYS: the nodes.  ARGV: this node, the pass's messages, a line each (one argument: Redis's client
# encodes one argument a pass, not two a message): the nodes it is for (comma-separated; empty: a
# broadcast, for every node alive but this one), a tab, the message (JSON, which has no raw tab or
# newline).  A node's entry: its messages as one JSON array.  Returns, for each message, the nodes
# that took it, then the nodes whose inbox was too full for this pass's messages.
ROUTE = Script(
    """
local nodes, everyone, full = {}, nil, {}
local function node(id)
  local n = nodes[id]
  if n == nil then
    n = false
    if redis.call('EXISTS', 'msgsvc:node:' .. id) == 1 then
      local waiting = redis.call('HMGET', 'msgsvc:node:' .. id .. ':waiting', 'bytes', 'limit')
      n = {parts = {}, room = (tonumber(waiting[2]) or 0) - (tonumber(waiting[1]) or 0), bytes = 0}
    end
    nodes[id] = n
  end
  return n
end
local replies, written = {}, {}
for to, message in string.gmatch(ARGV[2], '([^\\t\\n]*)\\t([^\\n]*)') do
  local ids = {}
  if to == '' then
    if everyone == nil then
      everyone = {}
      for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
        if id ~= ARGV[1] then table.insert(everyone, id) end
      end
    end
    ids = everyone
  else
    for id in string.gmatch(to, '[^,]+') do table.insert(ids, id) end
  end
  local size, took = #message + 1, {}
  for _, id in ipairs(ids) do
    local n = node(id)
    if n and n.room >= size then
      if #n.parts == 0 then table.insert(written, id) end
      table.insert(n.parts, message)
      n.room, n.bytes = n.room - size, n.bytes + size
      table.insert(took, id)
    elseif n and not n.full then  -- full, for the rest of this pass
      n.full, n.room = true, -1
      table.insert(full, id)
    end
  end
  table.insert(replies, took)
end
for _, id in ipairs(written) do
  local n = nodes[id]
  local entry = '[' .. table.concat(n.parts, ',') .. ']'
  redis.call('XADD', 'msgsvc:node:' .. id .. ':inbox', '*', 's', n.bytes, 'm', entry)
  redis.call('HINCRBY', 'msgsvc:node:' .. id .. ':waiting', 'bytes', n.bytes)
end
table.insert(replies, full)
return replies
"""
)

# A node delivered these entries: delete them, and count their bytes as no longer waiting (once:
# an entry already deleted, by an earlier try, is not counted again).
# KEYS: the inbox, its waiting hash; ARGV: entry id, its bytes, ...
TAKEN = Script(
    """
local freed = 0
for i = 1, #ARGV, 2 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then freed = freed + tonumber(ARGV[i + 1]) end
end
if freed > 0 then redis.call('HINCRBY', KEYS[2], 'bytes', -freed) end
return freed
"""
)


class _Connection(Commands):
    """The inbox's own connection (a blocked read holds it), telling the inbox each time it is up."""

    def __init__(self, reactor: Any, url: RedisURL, on_up: Callable[[], None]) -> None:
        super().__init__(reactor, url, "inbox")
        self._on_up = on_up

    def up(self) -> None:
        self._on_up()


class Inbox:
    """Reads this node's inbox as entries come, gives each entry's messages to ``deliver`` (their JSON
    array), in order, and deletes the entries delivered."""

    log = Logger()

    def __init__(self, reactor: Any, url: RedisURL, node: str, deliver: Callable[[str], None]) -> None:
        self._clock: IReactorTime = reactor
        self._key, self._waiting = inbox_key(node), waiting_key(node)
        self._deliver = deliver
        self._connection = _Connection(reactor, url, self._read)
        self._last = "0-0"  # the last entry delivered: the next read starts after it
        self._taken: list[str] = []  # entry id, its bytes, ...: delivered, not yet deleted
        self._reading = False
        self._running = False
        self._retry: IDelayedCall | None = None
        self._problem = ""  # why the last read failed, if it did
        self._deleting = Outage(
            self.log, reactor, "delete what this node delivered from its inbox", "asked with the next read"
        )

    @property
    def connection(self) -> Commands:
        """Its connection to Redis."""
        return self._connection

    def start(self) -> None:
        self._running = True
        self._connection.start()

    def stop(self) -> Deferred[None]:
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        return self._connection.stop()

    def _read(self) -> None:
        """Delete what was delivered, and read on (both pipelined on the connection)."""
        if self._reading or not self._running or not self._connection.connected:
            return
        self._reading = True
        if self._taken:
            taken, self._taken = self._taken, []
            self._connection.script(TAKEN, [self._key, self._waiting], taken).addCallbacks(
                lambda _: self._deleting.over(), self._not_taken, errbackArgs=(taken,)
            )
        self._connection.execute(
            "XREAD", "COUNT", READ_COUNT, "BLOCK", BLOCK_MS, "STREAMS", self._key, self._last
        ).addCallbacks(self._got, self._failed)

    def _got(self, reply: list[Any] | None) -> None:
        self._reading = False
        self._problem = ""
        for _, entries in reply or ():
            for entry, fields in entries:
                got = dict(zip(fields[::2], fields[1::2]))
                self._last = entry
                self._taken += [entry, got.get("s", "0")]
                messages = got.get("m", "[]")
                try:
                    self._deliver(messages)
                except Exception:
                    self.log.failure("could not deliver {messages!r} from the inbox", messages=messages)
        self._read()

    def _failed(self, failure: Failure) -> None:
        self._reading = False
        if not self._running or failure.check(RedisUnavailable):
            return  # read again once the connection is back
        problem = failure.getErrorMessage()
        if problem != self._problem:  # said once, not at every try
            self._problem = problem
            self.log.warn("could not read this node's inbox: {why}; trying again", why=problem)
        self._retry = self._clock.callLater(RETRY, self._read)

    def _not_taken(self, failure: Failure, taken: list[str]) -> None:
        """Not deleted: try with the next read (deleting twice counts once)."""
        self._taken[:0] = taken
        if not failure.check(RedisUnavailable):
            self._deleting.failed(failure)
