"""Soak test: a real ``twistd msgsvc`` under normal traffic and every kind of bad client.

Loopback only, bounded in time (``--minutes``, at most 60) and in clients.
Healthy clients exchange unicast, multicast and broadcast messages, each
stamped with an id; beside them run a slow reader, a flooder, a sender of
garbage, connections that never say HELLO, and clients that vanish
abruptly.  At the end it prints messages sent, delivered and lost (lost must
be 0), the server's RSS at start and end, and disconnects by reason.

    python benchmarks/soak.py --minutes 5
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from msgsvc.bench import servers
from msgsvc.fronts.receiver import LineProtocol

HEALTHY = 12
TEXT = "soak " + "x" * 900


class Client(LineProtocol):
    MAX_LENGTH = 65536

    def __init__(self, name: str, stats: Stats) -> None:
        self.name = name
        self.stats = stats
        self.welcomed: Deferred[None] = Deferred()
        self.bye = ""

    def connectionMade(self) -> None:
        if self.name:
            self.transport.write(f"HELLO {self.name}\r\n".encode())

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if text.startswith("WELCOME") and not self.welcomed.called:
            self.welcomed.callback(None)
        elif text.startswith("MSG ") and self.name.startswith("ok"):
            self.stats.received[text.rsplit(":", 1)[-1]] += 1
        elif text.startswith("BYE"):
            self.bye = text[5:]
        elif text.startswith("PING"):
            self.transport.write(b"PONG" + text[4:].encode() + b"\r\n")

    def lineTooLong(self) -> None:
        pass

    def connectionLost(self, reason: object = None) -> None:
        if not self.name.startswith("ok"):
            self.stats.disconnects[self.bye or "closed without BYE"] += 1
        elif self.stats.running:
            self.stats.healthy_lost += 1


class Stats:
    def __init__(self) -> None:
        self.sent = 0
        self.expected: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.healthy_lost = 0
        self.running = True


async def connect(port: int, name: str, stats: Stats) -> Client:
    client = Client(name, stats)
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
    return client


async def soak(port: int, seconds: float, stats: Stats) -> None:
    healthy = []
    for i in range(HEALTHY):
        client = await connect(port, f"ok{i}", stats)
        await client.welcomed
        healthy.append(client)
    names = [c.name for c in healthy]
    serial = 0

    def send_round() -> None:
        nonlocal serial
        for client in healthy:
            serial += 1
            tag = f"m{serial}"
            others = [n for n in names if n != client.name]
            kind = random.random()
            if kind < 0.5:
                to = [random.choice(others)]
            elif kind < 0.8:
                to = random.sample(others, 3)
            else:
                to = others
            if to is others:
                client.transport.write(f"BROADCAST :{TEXT}:{tag}\r\n".encode())
            else:
                client.transport.write(f"SEND {','.join(to)} :{TEXT}:{tag}\r\n".encode())
            stats.sent += 1
            stats.expected[tag] = len(to)

    async def slow_reader() -> None:
        client = await connect(port, "slowpoke", stats)
        await client.welcomed
        client.transport.pauseProducing()

    async def flooder() -> None:
        client = await connect(port, "flooder", stats)
        await client.welcomed
        while client.transport.connected and stats.running:
            client.transport.write(b"PING :flood\r\n" * 50)
            await task.deferLater(reactor, 0.05, lambda: None)

    async def garbage() -> None:
        client = await connect(port, "garbage", stats)
        await client.welcomed
        while client.transport.connected and stats.running:
            client.transport.write(os.urandom(200) + b"\r\nSEND ok0\r\n\xff\xfe\r\n")
            await task.deferLater(reactor, 1, lambda: None)

    async def never_hello() -> None:
        while stats.running:
            await connect(port, "", stats)
            await task.deferLater(reactor, 3, lambda: None)

    async def vanishing() -> None:
        n = 0
        while stats.running:
            n += 1
            client = await connect(port, f"ghost{n}", stats)
            await client.welcomed
            await task.deferLater(reactor, 0.5, lambda: None)
            client.bye = "vanished (client aborted)"
            client.transport.abortConnection()

    for job in (slow_reader, flooder, garbage, never_hello, vanishing):
        ensureDeferred(job())
    sender = task.LoopingCall(send_round)
    sender.clock = reactor
    sender.start(0.5)  # 2 messages a second from each healthy client
    await task.deferLater(reactor, seconds, lambda: None)
    sender.stop()
    await task.deferLater(reactor, 3, lambda: None)  # let the last messages land
    stats.running = False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    args = parser.parse_args()
    seconds = min(max(args.minutes, 0.1), 60) * 60

    folder = tempfile.mkdtemp(prefix="msgsvc-soak-")
    try:
        server = servers.start(
            "msgsvc",
            Path(folder),
            [],
            cpu=None,
            msgsvc_options=["--max-send-queue=262144", "--flood-timeout=20", "--hello-timeout=5"],
        )
    except RuntimeError as e:
        print(f"the server did not start: {e}", file=sys.stderr)
        return 2
    port = server.port
    rss_start = server.rss_kib()
    stats = Stats()
    started = time.monotonic()

    def done(result: object) -> None:
        reactor.stop()

    ensureDeferred(soak(port, seconds, stats)).addErrback(lambda f: f.printTraceback()).addBoth(done)
    reactor.run()
    rss_end = server.rss_kib()
    server.stop()

    delivered = sum(min(stats.received[tag], n) for tag, n in stats.expected.items())
    expected = sum(stats.expected.values())
    print(f"duration               {time.monotonic() - started:.0f} s, {HEALTHY} healthy clients")
    print(f"messages sent          {stats.sent}")
    print(f"deliveries expected    {expected}")
    print(f"deliveries made        {delivered}")
    print(f"lost (healthy)         {expected - delivered}")
    print(f"healthy disconnected   {stats.healthy_lost}")
    print(f"server RSS start, end  {rss_start} KiB, {rss_end} KiB")
    print("disconnects by reason:")
    for reason, count in stats.disconnects.most_common():
        print(f"  {count:6d}  {reason}")
    print(f"server log             {os.path.join(folder, 'server.log')}")
    return 0 if expected == delivered and stats.healthy_lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
