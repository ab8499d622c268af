"""Which state a server keeps, from its options: an SQLite file, or Redis and this node's part in the service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorFromThreads, IReactorTime

from msgsvc.state import State
from msgsvc.state.sqlite import SqliteStore

if TYPE_CHECKING:
    from msgsvc.state.cluster import RedisCluster


def open_state(
    reactor: Any, db: str, redis: str | None, lease: float, inbox: int
) -> tuple[State, RedisCluster | None]:
    """The state in the SQLite file ``db``, or, with a ``redis`` URL, in Redis with this node of the
    service (``lease`` and ``inbox`` as ``--redis-lease`` and ``--redis-inbox``), for the hub to be given
    and to :meth:`~msgsvc.state.cluster.RedisCluster.attach`.  StoreError if the file is unusable."""
    if redis is None:
        return SqliteStore(IReactorFromThreads(reactor), db, IReactorTime(reactor)), None
    from msgsvc.state.cluster import RedisCluster
    from msgsvc.state.redis import RedisState
    from msgsvc.state.redisurl import RedisURL

    state = RedisState(reactor, RedisURL.parse(redis))
    return state, RedisCluster(reactor, state, lease, inbox)
