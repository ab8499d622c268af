"""A burst of logins to protected names, and what it does to a bystander's messages.

``python -m msgsvc.bench logins``: a real ``twistd msgsvc`` on a username log
seeded with ``accounts`` protected names.  Two unprotected bystanders trade
unicasts at ``rate`` a second throughout; after ``calm`` seconds every
account logs in at once (a reconnect storm after a restart).  Reported:
logins per second, each login's time to ``WELCOME``, and the bystander's
unicast latency before and during the burst.  The server is not pinned to
a core here: its argon2id threads are meant to use the other one.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.utils import getProcessOutput

from msgsvc.bench import servers
from msgsvc.bench.stats import LatencyHistogram

#: The bystanders' p99 unicast latency during the burst must stay under this.
TARGET_P99_MS = 50.0


class _Lines(Protocol):
    """Sends lines; hands each received line to ``on_line``, with the time it was read."""

    def __init__(self, on_line: Any) -> None:
        self._on_line = on_line
        self._buffer = b""
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        now = time.monotonic_ns()
        *lines, self._buffer = (self._buffer + data).split(b"\r\n")
        for line in lines:
            self._on_line(line.decode(), now)

    def connectionLost(self, reason: object = None) -> None:
        self.closed.callback(None)

    def send(self, line: str) -> None:
        self.transport.write(line.encode() + b"\r\n")  # type: ignore[union-attr]


@dataclass
class LoginBurst:
    accounts: int
    rate: float
    logins_per_second: float = 0.0
    burst_seconds: float = 0.0
    failed: int = 0
    server_cpu: float = 0.0
    login: LatencyHistogram = field(default_factory=LatencyHistogram)
    calm: LatencyHistogram = field(default_factory=LatencyHistogram)  # the bystander's, before
    during: LatencyHistogram = field(default_factory=LatencyHistogram)  # and during the burst

    def lines(self) -> list[str]:
        def ms(histogram: LatencyHistogram, p: float) -> str:
            return f"{histogram.percentile(p) / 1000:.1f}"

        p99 = self.during.percentile(99) / 1000
        verdict = "met" if p99 < TARGET_P99_MS and not self.failed else "**missed**"
        return [
            f"{self.accounts} logins to protected names at once: {self.logins_per_second:.1f} logins/s "
            f"({self.burst_seconds:.2f} s for the burst, {self.failed} failed; server CPU {self.server_cpu:.1f} s)",
            f"  time to WELCOME: p50 {ms(self.login, 50)} ms, p99 {ms(self.login, 99)} ms, "
            f"max {self.login.maximum / 1000:.1f} ms",
            f"  bystander unicast ({self.rate:g}/s) before the burst: p50 {ms(self.calm, 50)} ms, "
            f"p99 {ms(self.calm, 99)} ms ({self.calm.count} messages)",
            f"  bystander unicast during the burst: p50 {ms(self.during, 50)} ms, p99 {ms(self.during, 99)} ms, "
            f"max {self.during.maximum / 1000:.1f} ms ({self.during.count} messages)",
            f"{verdict}: bystander p99 < {TARGET_P99_MS:g} ms during the burst: {p99:.1f} ms",
        ]


async def _burst(
    reactor: Any, port: int, names: list[str], rate: float, calm: float, result: LoginBurst
) -> None:
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    phase = {"during": False}
    sent_at: dict[int, int] = {}

    def bystander_line(line: str, now: int) -> None:
        if line.startswith("MSG "):
            seq = int(line.rsplit(":", 1)[1])
            (result.during if phase["during"] else result.calm).record((now - sent_at.pop(seq)) // 1000)

    tx = await connectProtocol(endpoint, _Lines(lambda line, now: None))
    rx = await connectProtocol(endpoint, _Lines(bystander_line))
    tx.send("HELLO bench_tx")
    rx.send("HELLO bench_rx")
    await deferLater(reactor, 0.5, lambda: None)
    seq = iter(range(1, 1 << 62))

    def tick() -> None:
        n = next(seq)
        sent_at[n] = time.monotonic_ns()
        tx.send(f"SEND bench_rx :{n}")

    ticker = LoopingCall(tick)
    ticker.clock = reactor
    ticker.start(1 / rate)
    await deferLater(reactor, calm, lambda: None)

    # The burst comes from a process of its own, so the bystander's figures are the server's.
    phase["during"] = True
    output = await getProcessOutput(
        sys.executable,
        ["-m", "msgsvc.bench.logins", str(port), servers.ACCOUNT_PASSWORD, *names],
        env=servers.child_environment(),
        reactor=reactor,
    )
    phase["during"] = False
    storm = json.loads(output)
    for micros in storm["welcomed"]:
        result.login.record(micros)
    result.failed = storm["failed"]
    result.burst_seconds = storm["seconds"]
    result.logins_per_second = len(storm["welcomed"]) / storm["seconds"]
    ticker.stop()
    await deferLater(reactor, 0.5, lambda: None)  # the last bystander messages arrive
    for client in (tx, rx):
        client.transport.loseConnection()
    await gatherResults([tx.closed, rx.closed])


def run(
    accounts: int = 200, rate: float = 50.0, calm: float = 2.0, hash_threads: int | None = None
) -> LoginBurst:
    """Seed, start the server (with ``--hash-threads``, if given), measure one burst, stop."""
    from twisted.internet import reactor

    result = LoginBurst(accounts, rate)
    with tempfile.TemporaryDirectory(prefix="msgsvc-logins-") as folder:
        workdir = Path(folder)
        names = [f"user{i}" for i in range(accounts)]
        servers.seed_msgsvc(workdir / "bench.sqlite3", names, ["bench_tx", "bench_rx"])
        options = [*servers.MSGSVC_OPTIONS, *([f"--hash-threads={hash_threads}"] if hash_threads else [])]
        server = servers.start("msgsvc", workdir, names, cpu=None, msgsvc_options=options)
        try:
            before = server.cpu_seconds()
            failure: list[Any] = []
            done = Deferred.fromCoroutine(_burst(reactor, server.port, names, rate, calm, result))
            done.addErrback(failure.append).addBoth(lambda _: reactor.stop())
            reactor.run()
            if failure:
                failure[0].raiseException()
            result.server_cpu = server.cpu_seconds() - before
        finally:
            server.stop()
    return result


def _storm(port: int, password: str, names: list[str]) -> dict[str, Any]:
    """Connect as every name at once, each saying HELLO with ``password``; when each got its answer.

    Plain non-blocking sockets: this process only has to be quick, and
    keeps every connection open until the last is answered.
    """
    selector = selectors.DefaultSelector()
    start = time.monotonic_ns()
    waiting: dict[socket.socket, tuple[str, bytearray]] = {}
    for name in names:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        waiting[sock] = (name, bytearray())
        selector.register(sock, selectors.EVENT_WRITE, sock)
    welcomed: list[int] = []
    failed = 0
    while len(welcomed) + failed < len(names):
        for key, events in selector.select(timeout=120):
            sock = key.data
            name, received = waiting[sock]
            if events & selectors.EVENT_WRITE:
                sock.sendall(f"HELLO {name} :{password}\r\n".encode())
                selector.modify(sock, selectors.EVENT_READ, sock)
                continue
            received += sock.recv(65536)
            if b"\r\n" in received:
                selector.unregister(sock)
                if received.startswith(b"WELCOME "):
                    welcomed.append((time.monotonic_ns() - start) // 1000)
                else:
                    failed += 1
    seconds = (time.monotonic_ns() - start) / 1e9
    for sock in waiting:
        sock.close()
    return {"welcomed": welcomed, "failed": failed, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(_storm(int(sys.argv[1]), sys.argv[2], sys.argv[3:])))
