"""Offline delivery: how fast durable messages to an away user are taken, and how fast a backlog arrives.

``python -m msgsvc.bench offline``: a real ``twistd msgsvc`` with its default
limits, pinned to one core; ``away`` protected users are away.
``bench_tx`` sends them unicasts in turn, ``window`` at a time (each
``SENT`` comes only once its message is on disk): messages per second.
Then one of them, ``away0``, with a full queue of 1000 (the default
``--queue-max``), logs in and takes its backlog, acknowledging each page:
seconds from ``HELLO`` to the last ``ENDDELAYED 0``.  Plain blocking
sockets: the load side does little.
"""

from __future__ import annotations

import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from msgsvc.bench import servers


@dataclass
class OfflineRun:
    sent: int
    window: int
    away: int
    queued_per_second: float = 0.0
    queue_seconds: float = 0.0
    backlog_seconds: float = 0.0
    delivered: int = 0
    server_cpu: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"{self.sent} unicasts to {self.away} away protected users, {self.window} in flight: "
            f"{self.queued_per_second:,.0f} messages/s queued on disk ({self.queue_seconds:.2f} s)",
            f"the backlog of one of them delivered at login, acknowledged a page at a time: "
            f"{self.backlog_seconds:.3f} s ({self.delivered} messages)",
            f"server CPU for both: {self.server_cpu:.1f} s",
        ]


class _Client:
    def __init__(self, port: int, hello: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.send(hello)
        while not self.line().startswith("ENDUSERS"):
            pass

    def send(self, *lines: str) -> None:
        self.sock.sendall("".join(line + "\r\n" for line in lines).encode())

    def line(self) -> str:
        raw = self.file.readline()
        if not raw:
            raise EOFError("the server closed the connection")
        return raw.decode().rstrip("\r\n")

    def close(self) -> None:
        self.send("QUIT")
        self.file.close()
        self.sock.close()


def _queue(tx: _Client, count: int, window: int, away: int) -> int:
    """Send ``count`` unicasts to the away users in turn, ``window`` at a time; how many were queued."""
    queued = 0
    for start in range(0, count, window):
        batch = min(window, count - start)
        tx.send(*[f"SEND away{(start + n) % away} :{'x' * 32} {start + n}" for n in range(batch)])
        for _ in range(batch):
            queued += not tx.line().endswith(" -")  # "SENT 0 awayN awayN": on disk
    return queued


def _take_backlog(port: int, name: str) -> int:
    """Log in as ``name`` and read its backlog to the end, acknowledging each page; how many came."""
    rx = _Client(port, f"HELLO {name} :{servers.ACCOUNT_PASSWORD}")
    delivered = 0
    last = ""
    while True:
        line = rx.line()
        if line.startswith("DELAYED "):
            delivered += 1
            last = line.split(" ", 2)[1]
        elif line.startswith("ENDDELAYED "):
            if line == "ENDDELAYED 0":
                break
            rx.send(f"ACK {last}")
    rx.send(f"ACK {last}")
    rx.close()
    return delivered


def run(sent: int = 20000, window: int = 1000, away: int = 20) -> OfflineRun:
    result = OfflineRun(sent, window, away)
    with tempfile.TemporaryDirectory(prefix="msgsvc-offline-") as folder:
        workdir = Path(folder)
        servers.seed_msgsvc(workdir / "bench.sqlite3", [f"away{n}" for n in range(away)], ["bench_tx"])
        server = servers.start("msgsvc", workdir, [], cpu=0)
        try:
            before = server.cpu_seconds()
            tx = _Client(server.port, "HELLO bench_tx")
            start = time.perf_counter()
            queued = _queue(tx, sent, window, away)
            result.queue_seconds = time.perf_counter() - start
            result.queued_per_second = queued / result.queue_seconds
            start = time.perf_counter()
            result.delivered = _take_backlog(server.port, "away0")
            result.backlog_seconds = time.perf_counter() - start
            tx.close()
            result.server_cpu = server.cpu_seconds() - before
        finally:
            server.stop()
    return result
