"""Replies gathered over one reactor pass, then sent with one system call per connection.

A plain ``transport.write`` to an idle TCP connection costs three system
calls: ``epoll_ctl`` to watch for writability, ``send`` on the next pass,
and ``epoll_ctl`` to stop watching.  A broadcast to a thousand clients
pays that a thousand times.  The :class:`Outbox` instead keeps what is
written to each connection during a pass (the lines of one read, say,
each answered by ``SENT``) and, once the pass is over, sends each
connection's bytes straight to its socket when nothing is queued there:
one ``send``, no ``epoll_ctl``.  What the socket does not take at once is
handed to the transport, which sends it as usual.

Only plain TCP connections are written that way, as this relies on
:class:`twisted.internet.tcp.Connection`'s buffer (``dataBuffer``,
``offset``, ``_tempDataLen``) to tell that nothing is queued; every other
transport (TLS, ``StringTransport`` in the tests) is written at once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport


def _direct(transport: ITransport) -> bool:
    """Whether ``transport`` is a plain TCP connection whose socket can be written here."""
    return isinstance(transport, tcp.Connection) and not getattr(transport, "TLS", False)


def _idle(transport: Any) -> bool:
    """Nothing is queued in the transport: a send now cannot overtake earlier bytes."""
    return transport.offset == len(transport.dataBuffer) and not transport._tempDataLen


class Outbox:
    """Gathers writes per connection during a reactor pass and sends them after it."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._pending: dict[ITransport, list[bytes]] = {}
        self._flushing: IDelayedCall | None = None

    def write(self, transport: ITransport, data: bytes) -> None:
        chunks = self._pending.get(transport)
        if chunks is not None:
            chunks.append(data)
            return
        if not _direct(transport):
            transport.write(data)
            return
        self._pending[transport] = [data]
        if self._flushing is None:
            self._flushing = self._clock.callLater(0, self._flush_all)

    def flush(self, transport: ITransport) -> None:
        """Send what is pending for ``transport`` now: before it is closed, say."""
        chunks = self._pending.pop(transport, None)
        if chunks:
            self._send(transport, b"".join(chunks))

    def discard(self, transport: ITransport) -> None:
        """Forget what is pending for ``transport``: it is gone or being aborted."""
        self._pending.pop(transport, None)

    def _flush_all(self) -> None:
        self._flushing = None
        pending, self._pending = self._pending, {}
        for transport, chunks in pending.items():
            self._send(transport, b"".join(chunks) if len(chunks) > 1 else chunks[0])

    @staticmethod
    def _send(transport: Any, data: bytes) -> None:
        if transport.connected and not transport.disconnecting and _idle(transport):
            sent = transport.writeSomeData(data)
            if isinstance(sent, int):  # otherwise the connection is lost: write() lets the reactor see it
                if sent == len(data):
                    return
                data = data[sent:]
        transport.write(data)
