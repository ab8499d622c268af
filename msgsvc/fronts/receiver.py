"""The line-protocol base that the server and client protocols share."""

from __future__ import annotations

from twisted.internet.interfaces import IConsumer, IPushProducer, ITCPTransport, ITransport
from twisted.protocols.basic import LineReceiver
from zope.interface import Attribute

from msgsvc.wire import CRLF, FrameFramer, LineFramer


class IConnection(ITCPTransport, IConsumer, IPushProducer):
    """What the protocols here use of their transport (TCP, TLS, or a test's ``StringTransport``)."""

    disconnecting = Attribute("True once the connection is closing.")


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
    transport: IConnection  # set on connecting; never None while in use
    #: How received data becomes lines: split at LF (a byte stream), or one line a
    #: :meth:`dataReceived` (WebSocket messages, :mod:`msgsvc.fronts.web`).
    framing: type[LineFramer] | type[FrameFramer] = LineFramer
    _framer: LineFramer | FrameFramer
    _draining: bool

    def makeConnection(self, transport: ITransport) -> None:
        self._framer = self.framing(self.MAX_LENGTH)
        # set on connecting, not first on reading (msgsvc.fronts.session.Session.__init__ says why)
        self._draining = self.paused = False
        LineReceiver.makeConnection(self, transport)

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
                if isinstance(line, bytes):
                    self.lineReceived(line)
                else:
                    self.lineTooLong()
        finally:
            self._draining = False

    def lineDropped(self) -> None:
        """A line over ``MAX_LENGTH`` was dropped before it was read (a WebSocket message): answer it in turn."""
        self._framer.too_long()
        self.dataReceived(b"")

    def pauseProducing(self) -> None:
        """Hold lines back, and stop reading the socket, until :meth:`resumeProducing`."""
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """Read again, starting with the lines held back."""
        self.paused = False
        self.transport.resumeProducing()
        self.dataReceived(b"")

    def lineReceived(self, line: bytes) -> None:
        """One line, without its CR LF."""
        raise NotImplementedError

    def lineTooLong(self) -> None:
        """A line over ``MAX_LENGTH`` bytes arrived and was dropped."""
        raise NotImplementedError
