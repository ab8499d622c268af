"""systemd's watchdog: :class:`Watchdog` tells systemd the reactor turns (``WATCHDOG=1``), when the unit asks
for it (``WatchdogSec=``); a reactor stuck longer than that has systemd kill and restart the service."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall


class Watchdog(Service):
    """Sends ``WATCHDOG=1`` to ``$NOTIFY_SOCKET`` every half of ``$WATCHDOG_USEC``, from the reactor; does
    nothing where systemd set neither (or set them for another process: ``$WATCHDOG_PID``)."""

    def __init__(self, clock: IReactorTime, environ: Mapping[str, str] = os.environ) -> None:
        address, usec, pid = (environ.get(n, "") for n in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"))
        wanted = address and usec and (not pid or int(pid) == os.getpid())
        #: seconds between two notifications, or None: systemd asks none
        self.interval = int(usec) / 2_000_000 if wanted else None
        self._address = "\0" + address[1:] if address.startswith("@") else address  # @: an abstract socket
        self._socket: socket.socket | None = None
        self._call = LoopingCall(self._notify)
        self._call.clock = clock

    def startService(self) -> None:
        Service.startService(self)
        if self.interval is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
            self._call.start(self.interval)

    def stopService(self) -> None:
        Service.stopService(self)
        if self._socket is not None:
            self._call.stop()
            self._socket.close()
            self._socket = None

    def _notify(self) -> None:
        assert self._socket is not None
        try:
            self._socket.sendto(b"WATCHDOG=1", self._address)
        except OSError:  # systemd gone or busy: it restarts us if it must
            pass
