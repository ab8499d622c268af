"""The operator's view end to end: ``twistd -n msgsvc --metrics`` with every front, on SQLite and on a real
Redis; traffic over real sockets, then ``/metrics`` scraped and each counter checked to have moved by
exactly that traffic; ``/readyz`` while Redis stops and comes back; ``--log-format json``'s log."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.support.processes import ROOT, Peer, WebPeer, free_port, free_ports, run_msgsvc
from tests.support.redisserver import RedisCase

#: Names and a text no metric may ever show.
LINE, WEB, IRC, SLEEPER, ROOM = "qxzlineone", "qxzwebone", "qxzircone", "qxzsleeper", "#qxzroom"
NOBODY = "qxznobody"
SERVER = "irc.ops.test"
LINKS = ("commands", "subscription", "inbox")  # a node's connections to Redis
SECRET = "qxzsecret words nobody may scrape"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


T = TypeVar("T")
WAIT = 60.0  # seconds a poll below waits for what the server does a pass or a reconnection later


def until(probe: Callable[[], T | None], what: str) -> T:
    """Poll ``probe`` until it gives something other than None; fail after :data:`WAIT` seconds."""
    deadline = time.monotonic() + WAIT
    while (got := probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {WAIT} s for {what}")
        time.sleep(0.05)
    return got


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    """The status and body of ``path`` from the ``--metrics`` endpoint on ``port``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sent(reply: str) -> tuple[int, int, int]:
    """``SENT <delivered> <offline> <queued> ...``: how many got it, were offline, had it queued."""
    _, delivered, offline, queued = reply.split(" ")[:4]
    count = lambda names: 0 if names == "-" else len(names.split(","))  # noqa: E731
    return int(delivered), count(offline), count(queued)


class Traffic:
    """What the clients were told, by (front, kind): messages, deliveries, offline, queued."""

    def __init__(self) -> None:
        self.told: dict[tuple[str, str], list[int]] = {}

    def add(self, front: str, kind: str, delivered: int, offline: int = 0, queued: int = 0) -> None:
        counts = self.told.setdefault((front, kind), [0, 0, 0, 0])
        for index, value in enumerate((1, delivered, offline, queued)):
            counts[index] += value


def line_client(port: int, name: str, web: bool = False) -> Peer:
    peer = WebPeer(port) if web else Peer(port)
    peer.send("VERSION 11")
    peer.send(f"HELLO {name}")
    peer.until("ENDUSERS")
    return peer


def say(peer: Peer, line: str) -> str:
    """Send ``line`` and return the ``SENT`` or ``ERROR`` that answers it."""
    peer.send(line)
    return peer.until(("SENT ", "ERROR "))[-1]  # type: ignore[arg-type]


def read_to_end(peer: Peer) -> None:
    """Read until the server closes."""
    try:
        while True:
            peer.line()
    except EOFError:
        pass
    peer.close()


class MetricsEndToEnd:
    """Each front's traffic, counted exactly; nothing of a name or a text in ``/metrics``."""

    dir: str
    redis_args: list[str] = []

    def start(self: MetricsEndToEnd | SynchronousTestCase) -> None:
        assert isinstance(self, SynchronousTestCase) and isinstance(self, MetricsEndToEnd)
        self.port, self.web_port, self.irc_port, self.metrics = free_ports(4)
        args = ["--db", os.path.join(self.dir, "names.sqlite3"), *self.redis_args]
        args += ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        args += ["--web", f"tcp:{self.web_port}:interface=127.0.0.1"]
        args += ["--irc", f"tcp:{self.irc_port}:interface=127.0.0.1", "--irc-server-name", SERVER]
        args += ["--metrics", f"tcp:{self.metrics}:interface=127.0.0.1"]
        self.process = run_msgsvc(self, self.dir, args, [self.port, self.web_port, self.irc_port, self.metrics])

    def scrape(self) -> tuple[Samples, str]:
        status, text = get(self.metrics, "/metrics")
        assert status == 200, text
        return samples(text), text

    def test_every_front_counted_exactly(self) -> None:
        assert isinstance(self, SynchronousTestCase)
        sleeper = line_client(self.port, SLEEPER)  # protected by its first password: then offline
        sleeper.send("PASSWORD :a good long password")
        sleeper.until("PROTECTED")
        sleeper.send("QUIT")
        read_to_end(sleeper)
        before, _ = self.scrape()
        traffic = Traffic()
        line = line_client(self.port, LINE)
        web = line_client(self.web_port, WEB, web=True)
        irc = Peer(self.irc_port)
        irc_lines = [f"NICK {IRC}", f"USER {IRC} 0 * :x", "JOIN #all"]  # in #all: a broadcast is said there
        for text in irc_lines:
            irc.send(text)
        irc.until(f":{SERVER} 366 ")  # the end of #all's names
        line_in = len(b"VERSION 11\r\n") + len(f"HELLO {LINE}\r\n")
        irc_in = sum(len(text) + 2 for text in irc_lines)

        def line_says(text: str, kind: str) -> None:
            nonlocal line_in
            line_in += len(text) + 2
            traffic.add("line", kind, *sent(say(line, text)))

        for _ in range(3):
            line_says(f"SEND {WEB} :{SECRET}", "unicast")
        line_says(f"SEND {WEB},{NOBODY} :{SECRET}", "multicast")
        line_says(f"SEND {WEB},{SLEEPER},{NOBODY} :{SECRET}", "multicast")
        line_says(f"BROADCAST :{SECRET}", "broadcast")
        line.send(f"JOIN {ROOM}")
        line.until(f"ENDMEMBERS {ROOM} 1")
        line_in += len(f"JOIN {ROOM}\r\n")
        web.send(f"JOIN {ROOM}")
        web.until(f"ENDMEMBERS {ROOM} 2")
        line_says(f"SEND {ROOM} :{SECRET}", "room")
        refused = say(line, f"SEND bad!name :{SECRET}")
        line_in += len(f"SEND bad!name :{SECRET}\r\n")
        code = refused.split(" ")[1]  # BAD_SYNTAX
        for _ in range(2):
            traffic.add("web", "unicast", *sent(say(web, f"SEND {LINE} :{SECRET}")))
        traffic.add("web", "broadcast", *sent(say(web, f"BROADCAST :{SECRET}")))
        for text in (f"PRIVMSG {LINE} :{SECRET}", f"PRIVMSG {LINE},{WEB} :{SECRET}", f"PRIVMSG #all :{SECRET}"):
            irc.send(text)
            irc_in += len(text) + 2
        traffic.add("irc", "unicast", 1)
        traffic.add("irc", "multicast", 2)
        traffic.add("irc", "broadcast", 2)  # the line and web users
        irc.send("PING :qxzsync")  # answered after the messages before it
        irc_in += len("PING :qxzsync\r\n")
        irc.until(f":{SERVER} PONG ")
        during, _ = self.scrape()
        self.assertEqual(during["msgsvc_connections_open", frozenset({("front", "line")})], 1)
        self.assertEqual(self.delta(before, during, "msgsvc_users_online"), 3)
        for peer, quit_line in ((web, "QUIT"), (irc, "QUIT :bye")):
            peer.send(quit_line)
            read_to_end(peer)
        line.send("QUIT")
        line_in += len("QUIT\r\n")
        irc_in += len("QUIT :bye\r\n")
        read_to_end(line)

        def closed() -> tuple[Samples, str] | None:  # the server may see a close a pass after the client
            got = self.scrape()
            fronts = ("line", "web", "irc")
            return None if any(got[0]["msgsvc_connections_open", frozenset({("front", f)})] for f in fronts) else got

        after, text = until(closed, "no connection counted open")
        for secret in (LINE, WEB, IRC, SLEEPER, NOBODY, ROOM, "qxzsecret", "qxzsync"):
            self.assertNotIn(secret, text)
        for (front, kind), (messages, delivered, offline, queued) in traffic.told.items():
            labels = {"front": front, "kind": kind}
            self.assertEqual(self.delta(before, after, "msgsvc_messages_total", **labels), messages, labels)
            self.assertEqual(self.delta(before, after, "msgsvc_deliveries_total", **labels), delivered, labels)
            queued_now = self.delta(before, after, "msgsvc_offline_recipients_total", outcome="queued", **labels)
            not_queued = self.delta(before, after, "msgsvc_offline_recipients_total", outcome="not_queued", **labels)
            self.assertEqual((queued_now, not_queued), (queued, offline - queued), labels)
        self.assertEqual(traffic.told["line", "multicast"][3], 1)  # the protected sleeper's: queued
        self.assertEqual(self.delta(before, after, "msgsvc_messages_total", front="web", kind="room"), 0)
        for front in ("line", "web", "irc"):
            self.assertEqual(self.delta(before, after, "msgsvc_connections_accepted_total", front=front), 1)
        self.assertEqual(self.delta(before, after, "msgsvc_logins_total", outcome="ok"), 3)
        self.assertEqual(self.delta(before, after, "msgsvc_refusals_total", code=code), 1)
        self.assertEqual(self.delta(before, after, "msgsvc_received_bytes_total", front="line"), line_in)
        self.assertEqual(self.delta(before, after, "msgsvc_received_bytes_total", front="irc"), irc_in)
        self.assertEqual(self.delta(before, after, "msgsvc_sent_bytes_total", front="line"), line.received)
        self.assertEqual(self.delta(before, after, "msgsvc_sent_bytes_total", front="irc"), irc.received)
        self.assertEqual(after["msgsvc_names", frozenset()], 4)
        self.assertGreater(after["msgsvc_reactor_lag_seconds_count", frozenset()], 0)
        self.assertIn(("process_resident_memory_bytes", frozenset()), after)

    @staticmethod
    def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    def test_only_its_pages(self) -> None:
        assert isinstance(self, SynchronousTestCase)
        self.assertEqual(get(self.metrics, "/healthz"), (200, "ok\n"))
        self.assertEqual(get(self.metrics, "/readyz"), (200, "ready\n"))
        for path in ("/", "/metrics/x", "/readyz/", "/favicon.ico", "/ws", "/../metrics"):
            self.assertEqual(get(self.metrics, path)[0], 404, path)
        self.assertEqual(get(self.metrics, "/metrics", "POST")[0], 405)


class SqliteMetricsTests(MetricsEndToEnd, SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.start()


class RedisMetricsTests(MetricsEndToEnd, RedisCase):
    def setUp(self) -> None:
        super().setUp()
        self.redis_args = ["--redis", self.redis.url]
        self.start()

    def until_ready(self, status: int) -> str:
        """Poll ``/readyz`` until it answers ``status``."""

        def answer() -> str | None:
            code, text = get(self.metrics, "/readyz")
            return text if code == status else None

        return until(answer, f"/readyz answering {status}")

    def test_ready_while_redis_is(self) -> None:
        self.until_ready(200)
        self.redis.stop()
        self.assertIn("not ready: Redis at", self.until_ready(503))
        self.assertEqual(get(self.metrics, "/healthz"), (200, "ok\n"))  # the reactor turns still
        self.redis.start()
        self.until_ready(200)

        def connected() -> tuple[Samples, str] | None:  # the subscription and the inbox reconnect on their own
            got = self.scrape()
            return got if all(got[0]["msgsvc_redis_connected", frozenset({("link", link)})] for link in LINKS) else None

        metrics, text = until(connected, "every Redis link connected")
        self.assertEqual(metrics["msgsvc_redis_lease_held", frozenset()], 1)
        for link in LINKS:
            self.assertEqual(metrics["msgsvc_redis_connections_total", frozenset({("link", link)})], 2, link)
        self.assertGreaterEqual(metrics["msgsvc_redis_rtt_seconds", frozenset()], 0)
        # Every metric the dashboard in contrib/ charts is one the server serves (Redis's too).
        with open(os.path.join(ROOT, "contrib", "grafana-dashboard.json"), encoding="utf-8") as f:
            panels = json.load(f)["panels"]
        families = list(text_string_to_metric_families(text))  # a counter with no sample yet, too
        served = {name for name, _ in metrics} | {f"{f.name}_total" for f in families if f.type == "counter"}
        served |= {f.name for f in families}
        for panel in panels:
            (target,) = panel["targets"]
            named = re.findall(r"\b(?:msgsvc|process)_\w+", target["expr"])
            self.assertTrue(named, panel["title"])
            for name in named:
                self.assertIn(name, served, panel["title"])


class JsonLogTests(SynchronousTestCase):
    def test_each_line_is_an_event(self) -> None:
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        port = free_port()
        args = ["--db", os.path.join(folder, "names.sqlite3"), "--listen", f"tcp:{port}:interface=127.0.0.1"]
        process = run_msgsvc(self, folder, [*args, "--log-format", "json"], [port], started='"rooms: {count}"')
        peer = line_client(port, LINE)
        peer.send("SEND bad!name :x")
        code = peer.until("ERROR")[-1].split(" ")[1]
        peer.send("QUIT")
        read_to_end(peer)
        process.terminate()
        process.wait()
        with open(os.path.join(folder, "server.log"), encoding="utf-8") as log:
            events = [json.loads(line) for line in log]
        formats = {event.get("log_format") for event in events}
        self.assertIn("{peer} registered as {name}{new}", formats)
        refused = [event for event in events if event.get("log_format") == "{peer}: {code}: {text}"]
        self.assertEqual([event["code"] for event in refused], [code])
        self.assertIn("Server Shut Down.", formats)
