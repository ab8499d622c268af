"""The line-protocol base that the server and client protocols share."""

from __future__ import annotations

from twisted.protocols.basic import LineReceiver

from msgsvc.wire import CRLF, TOO_LONG, LineFramer


class LineProtocol(LineReceiver):
    """A :class:`LineReceiver` whose framing is :class:`msgsvc.wire.LineFramer`.

    ``LineReceiver`` closes the connection without a word on an over-long
    line and copies its buffer once per line (quadratic when a read holds
    many lines, Twisted #6357).  Here framing is linear, lines end with LF
    (a CR before it is dropped), and an over-long line calls
    :meth:`lineTooLong` and is skipped.  ``pauseProducing`` and
    ``resumeProducing`` still hold lines back and let them go.
    """

    delimiter = CRLF
    _framer: LineFramer
    _draining = False

    def makeConnection(self, transport) -> None:  # type: ignore[no-untyped-def]
        self._framer = LineFramer(self.MAX_LENGTH)
        super().makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self._framer.feed(data)
        if self._draining:
            return  # called from lineReceived; the running loop takes it
        self._draining = True
        try:
            while not self.paused and not self.transport.disconnecting:
                line = self._framer.next_line()
                if line is None:
                    return
                if line is TOO_LONG:
                    self.lineTooLong()
                else:
                    self.lineReceived(line)
        finally:
            self._draining = False

    def lineTooLong(self) -> None:
        """A line over ``MAX_LENGTH`` bytes arrived and was dropped."""
        raise NotImplementedError
