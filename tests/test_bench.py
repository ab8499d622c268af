"""The bench's own logic: latency figures, the protocol adapters, the load plan, the table.

The benchmark itself runs servers and is not run here (docs/performance.rst), but for a small
login burst, offline run, run over WebSocket and run with metrics on, to show those commands work end to end.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, TextMessage

import msgsvc.bench.__main__ as bench_main
from msgsvc import build
from msgsvc.auth.hashing import HASHER
from msgsvc.bench import cload, dialects, report, servers, suite, worker
from msgsvc.bench.loadclient import LoadClient, Tally
from msgsvc.bench.run import Measurement, Scenario, WorkerProcess, _cpus, plans
from msgsvc.bench.scrape import Scraper
from msgsvc.bench.stats import LatencyHistogram, bucket
from msgsvc.bench.websocket import WebSocketLines
from msgsvc.bench.worker import Plan, Worker
from msgsvc.state.sqlite import Database


class HistogramTests(SynchronousTestCase):
    def test_small_latencies_are_exact_and_large_ones_within_a_tenth_of_a_percent(self) -> None:
        self.assertEqual(bucket(999), 999)
        for micros in (1024, 5_000, 123_456, 9_876_543):
            self.assertLessEqual(bucket(micros), micros)
            self.assertLess(micros - bucket(micros), micros / 500)

    def test_percentiles(self) -> None:
        histogram = LatencyHistogram()
        for micros in range(1, 101):
            histogram.record(micros)
        self.assertEqual(histogram.count, 100)
        self.assertEqual(histogram.percentile(50), 50)
        self.assertEqual(histogram.percentile(99), 99)
        self.assertEqual(histogram.percentile(100), 100)
        self.assertEqual(histogram.maximum, 100)

    def test_a_rare_slow_sample_shows_in_p99_only_when_over_one_percent(self) -> None:
        histogram = LatencyHistogram()
        for _ in range(990):
            histogram.record(100)
        for _ in range(10):
            histogram.record(50_000)
        self.assertEqual(histogram.percentile(99), 100)
        histogram.record(50_000)
        self.assertEqual(histogram.percentile(99), bucket(50_000))

    def test_merge_and_json_round_trip(self) -> None:
        a, b = LatencyHistogram(), LatencyHistogram()
        a.record(10)
        b.record(20_000)
        b.record(30)
        merged = LatencyHistogram.from_json(a.to_json())
        merged.merge(b)
        self.assertEqual(merged.count, 3)
        self.assertEqual(merged.maximum, 20_000)
        self.assertEqual(merged.percentile(50), 30)

    def test_empty(self) -> None:
        self.assertEqual(LatencyHistogram().percentile(99), 0)


class StampTests(SynchronousTestCase):
    def test_a_stamped_text_has_the_size_asked_and_gives_its_time_back(self) -> None:
        text = dialects.stamp(1_234_567_890, 32)
        self.assertEqual(len(text), 32)
        self.assertEqual(dialects.sent_at(b"MSG a unicast b :" + text + b"\r"), 1_234_567_890)

    def test_a_multicast_from_msgsvcs_irc_front_names_its_group_before_the_stamp(self) -> None:
        line = b":b0u2!b0u2@msgsvc PRIVMSG b0u1 :(to you and b0u3) @123456.xxxx"
        self.assertEqual(dialects.sent_at(line), 123456)

    def test_lines_without_a_stamp(self) -> None:
        self.assertIsNone(dialects.sent_at(b"SENT 1 -"))
        self.assertIsNone(dialects.sent_at(b"NOTICE :@soon."))


def client(dialect: dialects.Dialect, now: list[int]) -> tuple[LoadClient, StringTransport, Tally]:
    tally = Tally()
    load = LoadClient("b0u1", dialect, tally, clock=lambda: now[0])
    transport = StringTransport()
    load.makeConnection(transport)
    return load, transport, tally


class MsgsvcAdapterTests(SynchronousTestCase):
    def test_registers_counts_deliveries_and_answers_ping(self) -> None:
        now = [5_000_000]
        load, transport, tally = client(dialects.Msgsvc(), now)
        self.assertEqual(transport.value(), b"HELLO b0u1\r\n")
        registered = []
        load.registered.addCallback(registered.append)
        load.dataReceived(b"WELCOME b0u1 :hi\r\nUSER b0u1 online\r\nEND")
        self.assertEqual(registered, [])
        load.dataReceived(b"USERS 1\r\n")
        self.assertEqual(registered, [load])
        transport.clear()
        load.dataReceived(b"SENT 1 -\r\nMSG b0u2 unicast b0u1 :@3000000.xx\r\nPING :7\r\n")
        self.assertEqual(transport.value(), b"PONG :7\r\n")
        self.assertEqual(tally.delivered, 1)
        self.assertEqual(tally.latency.percentile(100), 2000)  # µs
        self.assertEqual(load.join(dialects.Msgsvc().join_group()).result, load)  # every client gets broadcasts

    def test_a_refusal_is_noted(self) -> None:
        load, _, tally = client(dialects.Msgsvc(), [0])
        load.dataReceived(b"ERROR USERNAME_TAKEN :b0u1 is in use\r\nBYE :b0u1 is in use\r\n")
        self.assertEqual(len(tally.refusals), 2)
        self.assertIn("USERNAME_TAKEN", tally.refusals[0])

    def test_lines(self) -> None:
        d = dialects.Msgsvc()
        self.assertEqual(d.send(["a", "b"], b"@1.x"), b"SEND a,b :@1.x\r\n")
        self.assertEqual(d.broadcast(b"@1.x"), b"BROADCAST :@1.x\r\n")

    def test_the_room_workload_speaks_version_11_joins_the_room_and_sends_to_it(self) -> None:
        now = [5_000_000]
        load, transport, tally = client(dialects.make("msgsvc", rooms=True), now)
        self.assertEqual(transport.value(), b"VERSION 11\r\nHELLO b0u1\r\n")
        self.assertEqual(dialects.make("msgsvc").register("b0u1"), b"HELLO b0u1\r\n")  # the others: version 8
        load.dataReceived(b"VERSION 11 7\r\nWELCOME b0u1 :hi\r\nENDUSERS 1\r\n")
        transport.clear()
        joined = []
        load.join(dialects.make("msgsvc", rooms=True).join_room()).addCallback(joined.append)
        self.assertEqual(transport.value(), b"JOIN #bench\r\n")
        load.dataReceived(b"ROOM #bench 1700000000.0 nt :\r\nMEMBER #bench b0u1 online op\r\n")
        self.assertEqual(joined, [])
        load.dataReceived(b"ENDMEMBERS #bench 1\r\nENTERED #bench b0u2\r\n")
        self.assertEqual(joined, [load])
        load.dataReceived(b"MSG b0u2 room #bench 5 1700000001.0 :@3000000.xx\r\n")
        self.assertEqual((tally.delivered, tally.latency.percentile(100)), (1, 2000))
        self.assertEqual(dialects.Msgsvc(rooms=True).to_room(b"@1.x"), b"SEND #bench :@1.x\r\n")

    def test_with_an_account_each_name_logs_in_with_its_password(self) -> None:
        _, transport, _ = client(dialects.make("msgsvc", account="bench password"), [0])
        self.assertEqual(transport.value(), b"HELLO b0u1 :bench password\r\n")
        rooms = dialects.make("msgsvc-redis", rooms=True, account="pw pw pw")
        self.assertEqual(rooms.register("b0u2"), b"VERSION 11\r\nHELLO b0u2 :pw pw pw\r\n")
        self.assertEqual(dialects.make("msgsvc-web").register("b0u2"), b"HELLO b0u2\r\n")
        for server in ("words", "msgsvc-irc"):
            with self.assertRaises(ValueError):
                dialects.make(server, account="bench password")


class IrcAdapterTests(SynchronousTestCase):
    def test_msgsvc_irc_registers_without_a_password_and_broadcasts_in_all(self) -> None:
        load, transport, _ = client(dialects.make("msgsvc-irc"), [0])
        self.assertEqual(transport.value(), b"NICK b0u1\r\nUSER b0u1 0 * :b0u1\r\n")
        transport.clear()
        irc = dialects.make("msgsvc-irc")
        load.join(irc.join_group())
        self.assertEqual(transport.value(), b"JOIN #all\r\n")
        self.assertEqual(irc.join_room(), b"JOIN #bench\r\n")  # a room of its own, not #all
        self.assertEqual(irc.to_room(b"@1.x"), b"PRIVMSG #bench :@1.x\r\n")

    def test_registers_joins_the_channel_and_counts_privmsg(self) -> None:
        now = [10_000_000]
        load, transport, tally = client(dialects.make("ngircd"), now)
        self.assertEqual(transport.value(), b"PASS bench\r\nNICK b0u1\r\nUSER b0u1 0 * :b0u1\r\n")
        registered, joined = [], []
        load.registered.addCallback(registered.append)
        load.dataReceived(
            b":bench.localhost 001 b0u1 :Welcome\r\n:bench.localhost 005 b0u1 X :are supported\r\n"
        )
        self.assertEqual(registered, [load])
        transport.clear()
        load.join(dialects.make("ngircd").join_room()).addCallback(joined.append)
        self.assertEqual(transport.value(), b"JOIN #bench\r\n")
        load.dataReceived(b":b0u1!~b0u1@localhost JOIN :#bench\r\n:bench.localhost 366 b0u1 #bench :End\r\n")
        self.assertEqual(joined, [load])
        transport.clear()
        load.dataReceived(b":b0u2!~b0u2@localhost PRIVMSG #bench :@4000000.xxxx\r\nPING :bench.localhost\r\n")
        self.assertEqual(tally.delivered, 1)
        self.assertEqual(tally.latency.percentile(50), 6000)
        self.assertEqual(transport.value(), b"PONG :bench.localhost\r\n")

    def test_a_nick_in_use_is_a_refusal(self) -> None:
        load, _, tally = client(dialects.make("words"), [0])
        load.dataReceived(b":server 433 * b0u1 :Nickname is already in use\r\n")
        self.assertEqual(len(tally.refusals), 1)

    def test_a_lost_connection_fails_a_pending_registration(self) -> None:
        load, _, tally = client(dialects.make("words"), [0])
        failures = []
        load.registered.addErrback(failures.append)
        load.connectionLost(Failure(ConnectionResetError()))
        self.assertEqual(len(failures), 1)
        self.assertEqual(tally.lost_connections, 1)

    def test_multicast_is_one_line_or_one_line_a_recipient(self) -> None:
        text = b"@1.x"
        self.assertEqual(dialects.make("ngircd").send(["a", "b"], text), b"PRIVMSG a,b :@1.x\r\n")
        self.assertEqual(
            dialects.make("words").send(["a", "b"], text), b"PRIVMSG a :@1.x\r\nPRIVMSG b :@1.x\r\n"
        )
        self.assertEqual(dialects.make("words").broadcast(text), b"PRIVMSG #bench :@1.x\r\n")


class WorkerTests(SynchronousTestCase):
    def worker(self, workload: str, recipients: int = 3) -> tuple[Worker, list[StringTransport]]:
        plan = Plan(
            server="msgsvc",
            ports=[1],
            names=[f"u{i}" for i in range(6)],
            workload=workload,
            duration=1,
            recipients=recipients,
            receivers=11,
            broadcast_sender=True,
        )
        worker = Worker(Clock(), plan, clock=lambda: 0)
        transports = []
        for name in plan.names:
            load, transport, _ = client(dialects.Msgsvc(), [0])
            load.name = name
            transport.clear()
            worker.clients.append(load)
            transports.append(transport)
        return worker, transports

    def test_unicast_goes_between_two_different_clients(self) -> None:
        worker, transports = self.worker("unicast")
        worker._send(300, b"@0.x")
        lines = [(i, line) for i, t in enumerate(transports) for line in t.value().splitlines()]
        self.assertEqual(len(lines), 300)
        for sender, line in lines:
            self.assertNotEqual(line.split()[1], f"u{sender}".encode())
        self.assertEqual((worker.result.sent, worker.result.expected), (300, 300))

    def test_multicast_names_distinct_recipients(self) -> None:
        worker, transports = self.worker("multicast", recipients=4)
        worker._send(50, b"@0.x")
        for transport in transports:
            for line in transport.value().splitlines():
                names = line.split()[1].split(b",")
                self.assertEqual(len(set(names)), 4)
        self.assertEqual(worker.result.expected, 200)

    def test_broadcast_comes_from_the_first_client_and_reaches_all_receivers(self) -> None:
        worker, transports = self.worker("broadcast")
        worker._send(5, b"@0.x")
        self.assertEqual(transports[0].value(), b"BROADCAST :@0.x\r\n" * 5)
        self.assertEqual(b"".join(t.value() for t in transports[1:]), b"")
        self.assertEqual(worker.result.expected, 55)

    def test_messages_to_the_room_come_from_every_client_and_reach_all_receivers(self) -> None:
        worker, transports = self.worker("room")
        worker._send(300, b"@0.x")
        for transport in transports:
            lines = transport.value().splitlines()
            self.assertGreater(len(lines), 0)  # 300 picks of 6: each sends (1 in 10^23 to fail)
            self.assertEqual(set(lines), {b"SEND #bench :@0.x"})
        self.assertEqual(sum(len(t.value().splitlines()) for t in transports), 300)
        self.assertEqual((worker.result.sent, worker.result.expected), (300, 3300))
        self.assertEqual(worker._local_expected(), 300 * 5)  # the others of this worker get each
        worker.plan.broadcast_sender = False  # the other workers' clients only receive
        worker._send(5, b"@0.x")
        self.assertEqual(worker.result.sent, 300)

    def test_logins_with_a_password_go_a_few_at_a_time_so_that_none_waits_for_the_throttle(self) -> None:
        for password, at_once in [
            (servers.ACCOUNT_PASSWORD, worker.LOGINS_AT_ONCE),
            (None, worker.CONNECTING_AT_ONCE),
        ]:
            names = [f"u{i}" for i in range(40)]
            load = Worker(Clock(), Plan("msgsvc", [1], names, "unicast", 1, password=password))
            under_way: list[Deferred[LoadClient]] = []
            most = [0]

            def connecting(name: str) -> Deferred[LoadClient]:
                under_way.append(Deferred())
                most[0] = max(most[0], len(under_way))
                return under_way[-1]

            self.patch(load, "_client", connecting)
            connected: list[int] = []
            Deferred.fromCoroutine(load.connect_all()).addCallback(connected.append)
            while under_way:
                under_way.pop(0).callback(LoadClient("u", dialects.Msgsvc(), Tally()))
            self.assertEqual((connected, most[0]), ([40], at_once), password)
        self.assertEqual(worker.LOGINS_AT_ONCE, 3)  # the throttle's free failures: a fourth would wait


class PlanTests(SynchronousTestCase):
    def test_clients_and_rate_are_shared_and_the_broadcast_sender_is_in_the_first_worker(self) -> None:
        shares = plans(Scenario("msgsvc", "broadcast", clients=11, rate=100.0, workers=2), ports=[9])
        self.assertEqual([len(p.names) for p in shares], [6, 5])
        self.assertEqual(len({n for p in shares for n in p.names}), 11)
        self.assertEqual([p.broadcast_sender for p in shares], [True, False])
        self.assertEqual({p.receivers for p in shares}, {10})
        unicast = plans(
            Scenario("msgsvc", "unicast", clients=10, rate=100.0, window=1000, workers=2), ports=[9]
        )
        self.assertEqual([(p.rate, p.window) for p in unicast], [(50.0, 500), (50.0, 500)])
        room = plans(Scenario("words", "room", clients=100, rate=10.0, window=1000, workers=2), ports=[9])
        self.assertEqual(
            [(p.broadcast_sender, p.receivers, p.rate, p.window) for p in room],
            [(True, 99, 10.0, 1000), (False, 99, 10.0, 1000)],  # the senders' worker sends at the whole rate
        )

    def test_a_services_nodes_each_get_every_other_client(self) -> None:
        (plan,) = plans(Scenario("msgsvc-redis", "unicast", clients=8, workers=1, nodes=2), ports=[5, 6])
        worker = Worker(Clock(), plan)
        self.assertEqual([worker._ports[name] for name in plan.names], [5, 6] * 4)

    def test_nodes_are_for_a_service_on_redis(self) -> None:
        self.assertEqual(Scenario("msgsvc-redis", "unicast", clients=8, nodes=2).label, "msgsvc-redis x2")
        self.assertEqual(Scenario("msgsvc-redis", "unicast", clients=8).label, "msgsvc-redis")
        with self.assertRaises(ValueError):
            Scenario("msgsvc", "unicast", clients=8, nodes=2)

    def test_each_node_gets_a_core_and_the_load_keeps_one(self) -> None:
        for cores, nodes, expected in [
            ([0, 1], 1, ([0], {1})),  # Redis shares the load's core
            ([0, 1], 2, ([0, 1], None)),  # too few: the load and Redis on any
            ([0, 1, 2, 3], 2, ([0, 1, 2], {3})),  # Redis on a core of its own
            ([0, 1, 2], 2, ([0, 1], {2})),
            ([0], 2, ([None, None], None)),
        ]:
            self.patch(os, "sched_getaffinity", lambda _, cores=cores: set(cores))
            self.assertEqual(_cpus(nodes), expected, (cores, nodes))

    def test_history_off_is_a_variant_of_msgsvc_with_history_days_0(self) -> None:
        self.assertEqual(Scenario("msgsvc", "unicast", clients=8, history=False).label, "msgsvc history off")
        self.assertEqual(
            Scenario("msgsvc-redis", "unicast", clients=8, nodes=2, history=False).label,
            "msgsvc-redis x2 history off",
        )
        with self.assertRaises(ValueError):
            Scenario("words", "unicast", clients=8, history=False)
        started = []
        self.patch(servers, "start", lambda *args: started.append(args[4]) or "process")
        for history in (True, False):
            servers.deploy("msgsvc", Path("."), [], [0], history=history)
        self.assertEqual(started, [servers.MSGSVC_OPTIONS, [*servers.MSGSVC_OPTIONS, "--history-days=0"]])

    def test_metrics_on_is_a_variant_of_msgsvc_serving_metrics_on_a_port_of_its_own(self) -> None:
        self.assertEqual(Scenario("msgsvc", "unicast", clients=8, metrics=True).label, "msgsvc metrics on")
        self.assertEqual(Scenario("msgsvc", "unicast", clients=8).label, "msgsvc")  # off, the default
        self.assertEqual(
            Scenario("msgsvc-redis", "unicast", clients=8, nodes=2, history=False, metrics=True).label,
            "msgsvc-redis x2 history off metrics on",
        )
        for peer in ("words", "ngircd", "ergo"):
            with self.assertRaises(ValueError):
                Scenario(peer, "unicast", clients=8, metrics=True)

    def test_accounts_on_is_a_variant_of_msgsvcs_lines_whose_load_logs_in_with_the_password(self) -> None:
        self.assertEqual(Scenario("msgsvc", "unicast", clients=8, accounts=True).label, "msgsvc accounts on")
        self.assertEqual(
            Scenario("msgsvc-redis", "unicast", clients=8, nodes=2, history=False, accounts=True).label,
            "msgsvc-redis x2 history off accounts on",
        )
        for server in ("words", "ngircd", "ergo", "msgsvc-irc"):
            with self.assertRaises(ValueError):
                Scenario(server, "unicast", clients=8, accounts=True)
        with self.assertRaises(ValueError):  # a login a registration: bench logins measures those
            Scenario("msgsvc", "connect", clients=8, accounts=True)
        on = plans(Scenario("msgsvc", "unicast", clients=8, accounts=True), [1])
        self.assertEqual([p.password for p in on], [servers.ACCOUNT_PASSWORD] * 2)
        off = plans(Scenario("msgsvc", "unicast", clients=8), [1])
        self.assertEqual([p.password for p in off], [None] * 2)

    def test_with_accounts_every_name_is_protected_before_the_server_starts(self) -> None:
        names = ["b0u0", "b0u1", "b1u0"]
        for name in ("msgsvc", "msgsvc-web"):
            _, _, workdir = self.deployed(name, metrics=False, accounts=True, names=names)
            database = Database(str(workdir / "bench.sqlite3"))
            self.addCleanup(database.close)
            self.assertEqual([n for n, _ in database.protected()], names, name)
            for protected in names:
                stored = database.password_hash(protected) or ""
                self.assertTrue(HASHER.verify(stored, servers.ACCOUNT_PASSWORD), protected)
            _, _, workdir = self.deployed(name, metrics=False, names=names)
            self.assertFalse((workdir / "bench.sqlite3").exists(), name)  # the server makes it, empty
        with self.assertRaises(ValueError):
            servers.deploy("msgsvc-irc", Path("."), names, [0], accounts=True)

    def test_with_accounts_on_redis_the_seeded_names_are_copied_into_it_before_the_nodes_start(self) -> None:
        copied: list[list[str]] = []
        self.patch(servers, "missing", lambda name: None)
        self.patch(
            subprocess, "run", lambda argv, **_: copied.append(argv) or subprocess.CompletedProcess(argv, 0)
        )
        argvs, _, workdir = self.deployed("msgsvc-redis", False, nodes=2, accounts=True, names=["b0u0"])
        (redis,) = {a for argv in argvs for a in argv if a.startswith("--redis=")}
        seeded = workdir / "bench.sqlite3"
        self.assertEqual(copied, [[sys.executable, "-m", "msgsvc.state.migrate", f"--db={seeded}", redis]])
        database = Database(str(seeded))
        self.addCleanup(database.close)
        self.assertEqual([n for n, _ in database.protected()], ["b0u0"])
        copied.clear()
        self.deployed("msgsvc-redis", metrics=False, nodes=2)
        self.assertEqual(copied, [])

    def deployed(
        self,
        name: str,
        metrics: bool,
        nodes: int = 1,
        accounts: bool = False,
        names: list[str] | None = None,
    ) -> tuple[list[list[str]], servers.Deployment, Path]:
        """Deploy ``name`` starting nothing: the argv of each msgsvc process, the deployment, its folder."""
        started: list[list[str]] = []

        class Started:
            def __init__(self, name: str, argv: list[str], port: int, *_: object) -> None:
                self.port = port
                if "msgsvc" in argv:
                    started.append(argv)

            def wait_logged(self, texts: list[str]) -> None:
                pass

        self.patch(servers, "ServerProcess", Started)
        workdir = Path(self.mktemp())
        workdir.mkdir()
        deployment = servers.deploy(
            name, workdir, names or ["b0u0"], [0, 1, 1], nodes=nodes, metrics=metrics, accounts=accounts
        )
        return started, deployment, workdir

    def test_with_metrics_each_msgsvc_process_serves_them_on_a_loopback_port_of_its_own(self) -> None:
        for name, nodes in [("msgsvc", 1), ("msgsvc-web", 1), ("msgsvc-irc", 1), ("msgsvc-redis", 2)]:
            argvs, deployment, _ = self.deployed(name, metrics=True, nodes=nodes)
            served = [[a for a in argv if a.startswith("--metrics")] for argv in argvs]
            ports = [int(option.split(":")[1]) for [option] in served]
            self.assertEqual(len(set(ports)), nodes, name)
            self.assertEqual(served, [[f"--metrics=tcp:{port}:interface=127.0.0.1"] for port in ports])
            self.assertEqual(deployment.metrics_urls, [f"http://127.0.0.1:{p}/metrics" for p in ports])
            argvs, deployment, _ = self.deployed(name, metrics=False, nodes=nodes)
            self.assertEqual(len(argvs), nodes, name)
            self.assertFalse([a for argv in argvs for a in argv if a.startswith("--metrics")], name)
            self.assertEqual(deployment.metrics_urls, [])
        with self.assertRaises(ValueError):
            servers.deploy("words", Path("."), [], [0], metrics=True)

    def test_churn_gets_twice_the_names_it_runs_at_once(self) -> None:
        shares = plans(Scenario("msgsvc", "connect", clients=10, workers=2), ports=[9])
        self.assertEqual([len(p.names) for p in shares], [10, 10])


class ReportTests(SynchronousTestCase):
    def measurement(
        self, server: str, delivered: int, history: bool = True, metrics: bool = False
    ) -> Measurement:
        m = Measurement(
            Scenario(server, "unicast", clients=100, history=history, metrics=metrics),
            connected=100,
            sent=delivered,
            expected=delivered,
            delivered=delivered,
            seconds=2.0,
            server_cpu=1.0,
        )
        m.latency.record(1500)
        return m

    def test_table_and_ratios(self) -> None:
        ours, theirs = self.measurement("msgsvc", 200_000), self.measurement("words", 100_000)
        text = report.table([ours, theirs])
        self.assertIn("100,000", text)  # msgsvc: 200,000 in 2 s
        self.assertIn("1.50", text)  # p50 in ms
        self.assertEqual(report.ratios([ours, theirs]), ["unicast (100 clients): msgsvc/words = 2.00"])

    def test_several_runs_show_their_median_and_range(self) -> None:
        runs = [self.measurement("msgsvc", n) for n in (200_000, 240_000, 220_000)]
        text = report.table(runs)
        self.assertIn("110,000 (100,000-120,000)", text)  # delivered/s: the median, then the range
        (row,) = report.rows(runs)
        self.assertEqual(row.spread(lambda m: m.delivered_rate), (110_000, 100_000, 120_000))

    def test_a_load_bound_row_is_marked_and_its_ratio_is_a_bound(self) -> None:
        ours = [self.measurement("msgsvc", n) for n in (200_000, 220_000)]
        theirs = [self.measurement("words", n) for n in (100_000, 100_000)]
        for m in theirs:
            m.load_cpu = 1.9  # of 2.0 s on one core: 95 %
        self.assertIn("LOAD-BOUND", report.table(theirs))
        self.assertNotIn("LOAD-BOUND", report.table(ours))
        self.assertEqual(
            report.ratios(ours + theirs),
            ["unicast (100 clients): msgsvc/words = <= 2.10 (2.00-2.20) (words load-bound)"],
        )
        for m in ours:
            m.load_cpu = 1.95
        self.assertEqual(
            report.ratios(ours + theirs),
            ["unicast (100 clients): msgsvc/words = ? (both load-bound; measured 2.10 (2.00-2.20))"],
        )

    def test_history_on_and_off_are_rows_side_by_side_with_their_ratio(self) -> None:
        on = [self.measurement("msgsvc", n) for n in (100_000, 120_000)]
        off = [self.measurement("msgsvc", n, history=False) for n in (200_000, 200_000)]
        words = self.measurement("words", 100_000)
        runs = [on[0], off[0], on[1], off[1], words]  # taking turns
        self.assertEqual(
            [row.server for row in report.rows(runs)], ["msgsvc", "msgsvc history off", "words"]
        )
        self.assertEqual(
            report.ratios(runs),
            [
                "unicast (100 clients): msgsvc/words = 1.00",
                "unicast (100 clients): msgsvc history on/off = 0.55 (0.50-0.60)",
            ],
        )

    def test_metrics_on_and_off_are_rows_side_by_side_with_their_ratio(self) -> None:
        runs = [
            self.measurement("msgsvc", n, history=history, metrics=metrics)
            for n, history, metrics in [
                (90_000, True, True),
                (100_000, True, False),
                (180_000, False, True),
                (200_000, False, False),
            ]
        ]
        self.assertEqual(
            [row.server for row in report.rows(runs)],
            ["msgsvc metrics on", "msgsvc", "msgsvc history off metrics on", "msgsvc history off"],
        )
        self.assertEqual(
            report.ratios(runs),
            [
                "unicast (100 clients): msgsvc metrics on/off = 0.90",
                "unicast (100 clients): msgsvc metrics on history on/off = 0.50",
                "unicast (100 clients): msgsvc history off metrics on/off = 0.90",
                "unicast (100 clients): msgsvc history on/off = 0.50",
            ],
        )

    def test_a_measurement_survives_json(self) -> None:
        m = self.measurement("msgsvc", 10)
        again = Measurement.from_json(m.to_json())
        self.assertEqual((again.scenario, again.delivered, again.latency.count), (m.scenario, 10, 1))
        self.assertEqual(again.lost, 0)


class CLoadTests(SynchronousTestCase):
    def test_the_plan_as_arguments(self) -> None:
        (plan, _) = plans(Scenario("words", "multicast", clients=8, rate=100.0, recipients=2), [4567])
        self.assertEqual(
            cload.arguments(plan),
            ["words", "127.0.0.1", "4567", "b0u", "4", "multicast", "50.0", "5000", "0", "2", "32"]
            + ["5.0", "2.0", "0", "7", "15.0", "", "4"],  # no password: every client registering at once
        )
        self.assertTrue(cload.handles(plan))
        (plan, _) = plans(Scenario("msgsvc", "unicast", clients=8, accounts=True), [4567])
        self.assertEqual(cload.arguments(plan)[-2:], [servers.ACCOUNT_PASSWORD, str(worker.LOGINS_AT_ONCE)])

    def test_every_workload_over_tcp_goes_to_the_c_load_and_websocket_stays_python(self) -> None:
        for workload in ["unicast", "multicast", "broadcast", "room", "connect", "idle"]:
            for server in ["msgsvc", "words", "ngircd", "msgsvc-irc"]:
                scenario = Scenario(server, workload, clients=8)
                self.assertTrue(cload.handles(plans(scenario, [1])[0]), scenario)
            web = Scenario("msgsvc-web", workload, clients=8)
            self.assertFalse(cload.handles(plans(web, [1])[0]), web)

    def test_a_service_of_nodes_speaks_msgsvc_to_every_port(self) -> None:
        (plan, _) = plans(Scenario("msgsvc-redis", "unicast", clients=8, nodes=2), [4567, 4568])
        arguments = cload.arguments(plan)
        self.assertEqual(arguments[:3], ["msgsvc", "127.0.0.1", "4567,4568"])

    def test_clients_refused_or_cut_off_while_registering_end_the_ramp_with_why(self) -> None:
        """lease38: a node that dropped its users during the login ramp (its lease lost) answered the next
        HELLOs SERVER_ERROR; the C load waited for every client to be in, forever, and the bench with it.
        Now it answers ``ready`` with the clients in and why the others are not: the run fails saying so."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def serve() -> None:
            for _ in range(3):
                connection, _ = listener.accept()
                hello = connection.makefile("rb").readline()
                if b"b0u1 " in hello:
                    connection.sendall(b"ERROR SERVER_ERROR :Redis is unreachable\r\n")  # stays open
                    self.addCleanup(connection.close)
                elif b"b0u2 " in hello:
                    connection.close()
                else:
                    connection.sendall(b"WELCOME b0u0\r\nENDUSERS\r\n")
                    self.addCleanup(connection.close)

        threading.Thread(target=serve, daemon=True).start()
        names = ["b0u0", "b0u1", "b0u2"]
        plan = Plan("msgsvc", [listener.getsockname()[1]], names, "unicast", 1.0, password="pw")
        load = WorkerProcess(plan, None, sys.executable, cload.build())
        self.addCleanup(load.quit)
        connected, refusals = load.answer("ready", 20)
        self.assertEqual(connected, 1)
        [why] = refusals
        self.assertTrue(why.startswith("2 refused or cut off during the ramp; the first, b0u"), why)
        self.assertTrue(
            why.endswith(("b0u1: ERROR SERVER_ERROR :Redis is unreachable", "b0u2: closed during the ramp")), why
        )

    def test_it_builds_with_the_machines_compiler(self) -> None:
        binary = cload.build()
        assert binary is not None  # gcc is on every machine here, and in CI
        self.assertTrue(os.access(binary, os.X_OK))
        self.assertEqual(cload.build(), binary)  # built once per source


class SuiteTests(SynchronousTestCase):
    def test_every_row_runs_repeatedly_with_the_servers_in_turn(self) -> None:
        ran: list[Scenario] = []
        peaks = {"msgsvc": iter([100, 300, 200] * 20), "words": iter([50, 70, 60] * 20)}

        def fake(scenario: Scenario, python: str) -> Measurement:
            ran.append(scenario)
            rate = next(peaks[scenario.server]) if scenario.rate is None else 1
            return Measurement(scenario, delivered=rate, expected=rate, seconds=1.0)

        suite.standard(["msgsvc", "words"], 1.0, "python", repeat=3, run=fake)
        first = [(s.server, s.workload, s.clients, s.rate) for s in ran[:12]]
        self.assertEqual(
            first,
            [("msgsvc", "unicast", 10, None), ("words", "unicast", 10, None)] * 3
            + [("msgsvc", "unicast", 10, 100), ("words", "unicast", 10, 30)] * 3,  # half the median peak
        )
        rows = report.rows([Measurement(s) for s in ran])
        self.assertTrue(all(len(row.runs) == 3 for row in rows))
        variants = len(suite.UNICAST_VARIANTS) + len(suite.BROADCAST_VARIANTS)
        self.assertEqual(len(rows), 2 * (2 * len(suite.SWEEP) + 7) + variants)
        room = [(s.server, s.clients, s.rate) for s in ran if s.workload == "room"]
        self.assertEqual(room[-2:], [("msgsvc", 100, 1), ("words", 100, 0)])  # at half the peak, a member's share

    def test_msgsvcs_history_variants_take_turns_after_it_at_the_peaks_of_unicast_and_broadcast(self) -> None:
        ran: list[Scenario] = []

        def fake(scenario: Scenario, python: str) -> Measurement:
            ran.append(scenario)
            return Measurement(scenario, delivered=100, expected=100, seconds=1.0)

        suite.standard(["words", "msgsvc"], 1.0, "python", repeat=2, run=fake)
        unicast = [s.label for s in ran if (s.workload, s.clients, s.rate) == ("unicast", 1000, None)]
        turn = ["words", "msgsvc", "msgsvc history off", "msgsvc accounts on"]
        turn.append("msgsvc history off accounts on")
        self.assertEqual(unicast, turn * 2)
        broadcast = [s.label for s in ran if (s.workload, s.rate) == ("broadcast", None)]
        self.assertEqual(broadcast, ["words", "msgsvc", "msgsvc history off"] * 2)
        varied = {(s.workload, s.clients, s.rate) for s in ran if s.varied()}
        self.assertEqual(varied, {("unicast", 1000, None), ("broadcast", 1001, None)})  # nothing else
        at_half = [s.rate for s in ran if (s.workload, s.clients, s.server) == ("unicast", 1000, "msgsvc")]
        self.assertEqual(at_half[-2:], [50, 50])  # half msgsvc's own peak, its variants' left out

    def test_a_failed_run_is_left_out_and_the_others_go_on(self) -> None:
        ran: list[Scenario] = []

        def fake(scenario: Scenario, python: str) -> Measurement:
            if scenario.server == "ngircd" and scenario.clients == 10:
                raise RuntimeError("only 9 of 10 clients registered")
            ran.append(scenario)
            return Measurement(scenario, delivered=100, expected=100, seconds=1.0)

        results = suite.standard(["msgsvc", "ngircd"], 1.0, "python", repeat=2, run=fake)
        self.assertEqual(len(results), len(ran))
        at_ten = [(s.server, s.rate) for s in ran if s.clients == 10]
        self.assertEqual(at_ten, [("msgsvc", None)] * 2 + [("msgsvc", 50)] * 2)  # no peak: no half rate
        self.assertIn(("ngircd", 100), [(s.server, s.clients) for s in ran])


    def test_a_peer_that_accepts_slowly_is_left_out_of_rows_it_would_take_minutes_to_ramp(self) -> None:
        ran: list[Scenario] = []

        def fake(scenario: Scenario, python: str) -> Measurement:
            ran.append(scenario)
            return Measurement(scenario, delivered=100, expected=100, seconds=1.0)

        said = io.StringIO()
        self.patch(sys, "stderr", said)
        suite.standard(["msgsvc", "ngircd"], 1.0, "python", repeat=1, run=fake)
        ngircd = {(s.workload, s.clients, s.rate is None) for s in ran if s.server == "ngircd"}
        self.assertIn(("unicast", 100, True), ngircd)  # 100 / 12 a second: within the budget
        self.assertIn(("broadcast", 1001, True), ngircd)  # a target compares with it there
        self.assertFalse({("unicast", 1000, True), ("broadcast", 1001, False), ("idle", 10_000, True)} & ngircd)
        self.assertIn("ngircd left out of {'workload': 'idle', 'clients': 10000}", said.getvalue())


def run_bench(case: SynchronousTestCase, *argv: str) -> tuple[list[Scenario], str, str]:
    """``python -m msgsvc.bench run`` with ``argv``, measuring nothing: what it ran, what it said
    (stderr), what it printed (stdout)."""
    ran: list[Scenario] = []
    said, printed = io.StringIO(), io.StringIO()
    case.patch(bench_main, "measure", lambda scenario, python: ran.append(scenario) or Measurement(scenario))
    case.patch(sys, "stderr", said)
    case.patch(sys, "stdout", printed)
    bench_main.main(["run", "--clients", "8", *argv])
    return ran, said.getvalue(), printed.getvalue()


class ErgoTests(SynchronousTestCase):
    """Ergo as a peer, without an Ergo: a fake ``ergo`` stands for the binary where one is looked for."""

    def fake_ergo(self, version: str) -> str:
        """A directory on the PATH holding an ``ergo`` that says ``version``, alone on the PATH."""
        folder = Path(self.mktemp())
        folder.mkdir()
        program = folder / "ergo"
        program.write_text(f"#!/bin/sh\necho '{version}'\n")
        program.chmod(0o755)
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != servers.ERGO_VARIABLE})
        os.environ["PATH"] = str(folder)
        return str(program)

    def run_bench(self, *argv: str) -> tuple[list[Scenario], str]:
        ran, said, _ = run_bench(self, *argv)
        return ran, said

    def test_the_configuration_lifts_fake_lag_and_the_limits_and_sets_the_history(self) -> None:
        on, off = servers.ergo_conf(6667, history=True), servers.ergo_conf(6667, history=False)
        self.assertIn('"127.0.0.1:6667": {}', on)
        for lifted in [
            "fakelag:\n    enabled: false",
            "    ip-limits:\n        count: false\n        throttle: false",
            "    login-throttling:\n        enabled: false",
            "    max-sendq: 256M",
        ]:
            self.assertIn(lifted, on)
        self.assertIn("history:\n    enabled: true", on)
        self.assertIn("history:\n    enabled: false", off)
        history = "history:\n    enabled: "
        self.assertEqual(on.replace(history + "true", history + "false"), off)

    def test_without_ergo_its_rows_are_skipped_and_said(self) -> None:
        self.fake_ergo("ergo, a quantum chemistry program")  # Debian's ergo
        self.assertIn("no Ergo binary", servers.missing("ergo") or "")
        ran, said = self.run_bench("--server", "msgsvc", "--server", "ergo")
        self.assertEqual([s.server for s in ran], ["msgsvc"])
        self.assertIn("ergo: not measured: no Ergo binary", said)

    def test_the_irc_servers_ergo_on_the_path_runs_alone_on_its_core_with_its_history_off(self) -> None:
        program = self.fake_ergo("ergo-2.11.1")
        self.assertIsNone(servers.missing("ergo"))
        started: list[tuple[Any, ...]] = []
        self.patch(servers, "ServerProcess", lambda *args: started.append(args) or "process")
        workdir = Path(self.mktemp())
        workdir.mkdir()
        servers.deploy("ergo", workdir, ["a0u0"], [0], history=False)
        [(name, argv, port, folder, cpu, env)] = started
        self.assertEqual((name, folder, cpu, env["GOMAXPROCS"]), ("ergo", workdir, 0, "1"))
        self.assertEqual(argv, [program, "run", "--conf", str(workdir / "ircd.yaml")])
        self.assertEqual((workdir / "ircd.yaml").read_text(), servers.ergo_conf(port, history=False))

    def test_ergo_named_on_the_command_line_is_measured_history_on_and_off(self) -> None:
        self.fake_ergo("ergo, a quantum chemistry program")
        program = Path(self.mktemp())
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
        ran, said = self.run_bench(
            "--server", "ergo", "--ergo", str(program), "--history", "on", "--history", "off"
        )
        self.assertEqual([(s.server, s.history) for s in ran], [("ergo", True), ("ergo", False)])
        self.assertEqual(said.count("not measured"), 0)

    def test_ergo_takes_words_lines_a_recipient_each(self) -> None:
        (plan, _) = plans(Scenario("ergo", "multicast", clients=12, recipients=5), [4567])
        self.assertEqual(cload.arguments(plan)[:3], ["words", "127.0.0.1", "4567"])
        self.assertEqual(
            dialects.make("ergo").send(["a", "b"], b"@1.x"), b"PRIVMSG a :@1.x\r\nPRIVMSG b :@1.x\r\n"
        )


class VariantTests(SynchronousTestCase):
    def test_metrics_on_and_off_take_turns_with_the_history_variants(self) -> None:
        ran, _, printed = run_bench(
            self, *["--metrics", "on", "--metrics", "off", "--history", "on", "--history", "off", "--repeat", "2"]
        )
        turns = [(True, True), (True, False), (False, True), (False, False)]
        self.assertEqual([(s.history, s.metrics) for s in ran], turns * 2)
        self.assertIn("msgsvc metrics on: /metrics scraped 0 times", printed)  # nothing measured here
        self.assertIn("unicast (8 clients): msgsvc metrics on/off = ", printed)

    def test_accounts_on_and_off_take_turns_with_the_history_variants_and_are_compared(self) -> None:
        ran, _, printed = run_bench(
            self, *["--accounts", "on", "--accounts", "off", "--history", "on", "--history", "off"]
        )
        turns = [(True, True), (True, False), (False, True), (False, False)]
        self.assertEqual([(s.history, s.accounts) for s in ran], turns)
        self.assertIn("unicast (8 clients): msgsvc accounts on history on/off = ", printed)
        self.assertIn("unicast (8 clients): msgsvc accounts on/off = ", printed)
        ran, _, _ = run_bench(self)
        self.assertEqual([s.accounts for s in ran], [False])  # off unless asked

    def test_metrics_are_off_unless_asked(self) -> None:
        ran, _, _ = run_bench(self)
        self.assertEqual([(s.history, s.metrics) for s in ran], [(True, False)])
        ran, _, _ = run_bench(self, "--metrics", "on")
        self.assertEqual([(s.history, s.metrics) for s in ran], [(True, True)])

    def test_the_help_says_how_often_it_scrapes_and_that_prometheus_would_not(self) -> None:
        printed = io.StringIO()
        self.patch(sys, "stdout", printed)
        with self.assertRaises(SystemExit):
            bench_main.main(["run", "--help"])
        text = " ".join(printed.getvalue().split())
        self.assertIn("/metrics scraped once a second during the measured load", text)
        self.assertIn("than Prometheus would be set to", text)


class ScraperTests(SynchronousTestCase):
    def test_it_scrapes_each_url_from_start_until_stop(self) -> None:
        got: list[str] = []
        both = threading.Event()

        def get(url: str) -> None:
            got.append(url)
            if len(got) == 2:
                both.set()

        scraper = Scraper(["http://a/metrics", "http://b/metrics"], interval=3600, get=get)
        self.assertEqual(got, [])  # not before start
        scraper.start()
        self.assertTrue(both.wait(60))
        self.assertEqual(scraper.stop(), 2)  # stop ends the interval's wait
        self.assertEqual(got, ["http://a/metrics", "http://b/metrics"])
        self.assertFalse(scraper._thread.is_alive())

    def test_a_failed_scrape_fails_the_run_at_stop(self) -> None:
        def get(url: str) -> None:
            raise OSError("connection refused")

        scraper = Scraper(["http://a/metrics"], interval=3600, get=get)
        scraper.start()
        scraper._thread.join(60)
        with self.assertRaises(RuntimeError) as raised:
            scraper.stop()
        self.assertIn("connection refused", str(raised.exception))

    def test_without_urls_it_starts_nothing(self) -> None:
        scraper = Scraper([], get=lambda url: self.fail(url))
        scraper.start()
        self.assertIsNone(scraper._thread.ident)
        self.assertEqual(scraper.stop(), 0)


class TargetTests(SynchronousTestCase):
    def test_each_target_is_met_or_missed_with_its_figure(self) -> None:
        idle = Measurement(
            Scenario("msgsvc", "idle", clients=10_000),
            connected=10_000,
            baseline_rss_kib=50_000,
            ready_rss_kib=120_000,
        )
        peak = Measurement(
            Scenario("msgsvc", "unicast", clients=1000), delivered=120_000, expected=120_000, seconds=2.0
        )
        half = Measurement(Scenario("msgsvc", "unicast", clients=1000, rate=30_000.0))
        half.latency.record(8_192)
        words = Measurement(
            Scenario("words", "unicast", clients=1000), delivered=60_000, expected=60_000, seconds=2.0
        )
        ergo = Measurement(
            Scenario("ergo", "unicast", clients=1000), delivered=150_000, expected=150_000, seconds=2.0
        )
        lines = suite.targets([idle, peak, half, words, ergo])
        self.assertIn("met     10,000 clients held: 10,000 registered, 0 lost", lines)
        self.assertIn("MISSED  <= 4 KiB per idle client: 7.0 KiB", lines)
        self.assertIn("met     unicast >= 50,000 msg/s (1,000 clients): 60,000", lines)
        self.assertIn("met     unicast >= 1.5x words (1,000 clients): msgsvc/words = 2.00", lines)
        self.assertIn("MISSED  unicast >= 1.0x Ergo (1,000 clients): msgsvc/ergo = 0.80", lines)
        self.assertIn(
            "MISSED  unicast p99 < 5 ms at half the peak rate (1,000 clients): 8.19 ms at 30,000/s", lines
        )

    def test_a_ratio_with_a_load_bound_row_is_decided_only_where_the_bound_settles_it(self) -> None:
        def churn(server: str, rate: int, load_cpu: float) -> Measurement:
            return Measurement(
                Scenario(server, "connect", clients=suite.CHURN_CLIENTS),
                delivered=rate,
                expected=rate,
                seconds=1.0,
                load_cpu=load_cpu,
            )

        def verdict(msgsvc: Measurement, words: Measurement) -> str:
            (line,) = suite.targets([msgsvc, words])
            return line

        busy, idle = 0.95, 0.5
        # msgsvc's load was the limit: the ratio is a floor, so a floor above the target meets it
        self.assertTrue(verdict(churn("msgsvc", 120, busy), churn("words", 100, idle)).startswith("met "))
        self.assertTrue(verdict(churn("msgsvc", 80, busy), churn("words", 100, idle)).startswith("? "))
        # the peer's load was the limit: the ratio is a ceiling, so a ceiling below the target misses it
        self.assertEqual(
            verdict(churn("msgsvc", 80, idle), churn("words", 100, busy)),
            "MISSED  registration churn >= 1.0x words: msgsvc/words = <= 0.80 (words load-bound)",
        )
        self.assertTrue(verdict(churn("msgsvc", 120, idle), churn("words", 100, busy)).startswith("? "))

    def test_history_on_is_held_to_a_share_of_off_on_unicast_with_and_without_accounts_and_broadcast(
        self,
    ) -> None:
        def peak(workload: str, clients: int, rates: list[int], **variant: bool) -> list[Measurement]:
            scenario = Scenario("msgsvc", workload, clients, **variant)
            return [Measurement(scenario, delivered=r, expected=r, seconds=1.0) for r in rates]

        runs = [
            *peak("unicast", 1000, [90, 100, 95]),
            *peak("unicast", 1000, [100, 100, 100], history=False),
            *peak("unicast", 1000, [40, 50, 45], accounts=True),
            *peak("unicast", 1000, [100, 100, 100], history=False, accounts=True),
            *peak("broadcast", 1001, [800, 790, 810]),
            *peak("broadcast", 1001, [1000, 1000, 1000], history=False),
        ]
        lines = [line for line in suite.targets(runs) if "history on" in line]
        self.assertEqual(
            lines,
            [
                "met     unicast (1,000 clients, unprotected names) with history on >= 0.8x off: "
                "on/off = 0.95 (0.90-1.00)",
                "MISSED  unicast (1,000 clients, accounts) with history on >= 0.8x off: "
                "on/off = 0.45 (0.40-0.50)",
                "met     broadcast to 1,000 with history on >= 0.8x off: on/off = 0.80 (0.79-0.81)",
            ],
        )
        self.assertEqual([line for line in suite.targets(runs[:12]) if "history on" in line], lines[:2])

    def test_a_lost_message_is_a_missed_target(self) -> None:
        lossy = Measurement(Scenario("words", "unicast", clients=10), expected=5, delivered=4)
        self.assertTrue(suite.targets([lossy])[0].startswith("MISSED  no message lost: 1 lost"))


class WebSocketLoadTests(SynchronousTestCase):
    def test_lines_go_as_text_messages_after_the_handshake_with_the_pages_origin(self) -> None:
        tally = Tally()
        load = LoadClient("b0u1", dialects.Msgsvc(), tally, clock=lambda: 5_000_000)
        socket = WebSocketLines(load, "127.0.0.1:8080")
        transport = StringTransport()
        socket.makeConnection(transport)
        server = WSConnection(ConnectionType.SERVER)
        server.receive_data(transport.value())
        transport.clear()
        (request,) = server.events()
        self.assertEqual(dict(request.extra_headers)[b"origin"], b"http://127.0.0.1:8080")
        self.assertEqual(request.target, "/ws")
        socket.dataReceived(server.send(AcceptConnection()))
        server.receive_data(transport.value())
        transport.clear()
        self.assertEqual([e.data for e in server.events()], ["HELLO b0u1"])
        registered = []
        load.registered.addCallback(registered.append)
        socket.dataReceived(
            b"".join(
                server.send(TextMessage(line))
                for line in [
                    "WELCOME b0u1 :hi",
                    "ENDUSERS 1",
                    "MSG b0u2 unicast b0u1 :@3000000.xx",
                    "PING :7",
                ]
            )
        )
        self.assertEqual(registered, [load])
        self.assertEqual(tally.delivered, 1)
        server.receive_data(transport.value())
        self.assertEqual([e.data for e in server.events()], ["PONG :7"])


def bench(*args: str) -> str:
    """What ``python -m msgsvc.bench ARGS`` printed; it must succeed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-m", "msgsvc.bench", *args],
        env=dict(os.environ, PYTHONPATH=root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class ServerBenchTests(SynchronousTestCase):
    def test_a_small_run_over_websocket_loses_nothing(self) -> None:
        """Load clients on the web front: every message delivered (the figures are not judged)."""
        out = bench(
            "run",
            "--server",
            "msgsvc-web",
            "--clients",
            "8",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--rate",
            "200",
        )
        self.assertIn(f"build of msgsvc: {build.running()}\n", out)  # the bench's and its servers' own
        (row,) = [line for line in out.splitlines() if line.startswith("msgsvc-web ")]
        cells = row.split()
        # ..., runs, load (the C load speaks no WebSocket), offered/s
        self.assertEqual(cells[:6], ["msgsvc-web", "unicast", "8", "1", "python", "200"])
        self.assertGreater(int(cells[7].replace(",", "")), 0)  # delivered/s
        self.assertEqual(cells[-1], "0")  # lost

    def test_the_c_load_runs_against_msgsvc_on_both_dialects_and_loses_nothing(self) -> None:
        """The C load process, built here, drives a real server (the figures are not judged)."""
        for server, workload in [("msgsvc", "multicast"), ("msgsvc-irc", "broadcast")]:
            out = bench(
                *["run", "--server", server, "--workload", workload, "--clients", "9", "--duration", "1"],
                *["--warmup", "0.5", "--rate", "50", "--recipients", "2"],
            )
            (row,) = [line for line in out.splitlines() if line.startswith(f"{server} ")]
            cells = row.split()
            self.assertEqual(cells[:6], [server, workload, "9", "1", "c", "50"])
            self.assertGreater(int(cells[7].replace(",", "")), 0)  # delivered/s
            self.assertEqual(cells[-1], "0")  # lost

    def test_the_room_workload_runs_against_msgsvc_words_and_ngircd_and_loses_nothing(self) -> None:
        """msgsvc's rooms (version 11's lines, and channels on its IRC front) and the peers' channels, driven
        by the C load and by the Python one (the figures are not judged)."""
        for server, load in [
            ("msgsvc", "c"),
            ("msgsvc", "python"),
            ("msgsvc-irc", "c"),
            ("words", "c"),
            ("ngircd", "c"),
            ("ngircd", "python"),
        ]:
            out = bench(
                *["run", "--server", server, "--workload", "room", "--clients", "9", "--duration", "1"],
                *["--warmup", "0.5", "--rate", "50", "--load", load],
            )
            (row,) = [line for line in out.splitlines() if line.startswith(f"{server} ")]
            cells = row.split()
            self.assertEqual(cells[:6], [server, "room", "9", "1", load, "50"])
            self.assertGreater(int(cells[7].replace(",", "")), 0)  # delivered/s (its speed: the bench's to judge)
            self.assertEqual(cells[-1], "0")  # lost

    def test_history_on_and_off_run_side_by_side_and_lose_nothing(self) -> None:
        """``--history on --history off``: a real server each way, two rows and their ratio (not judged)."""
        out = bench(
            *["run", "--clients", "8", "--duration", "1", "--warmup", "0", "--rate", "50"],
            *["--history", "on", "--history", "off"],
        )
        lines = out.splitlines()
        on = [line.split() for line in lines if line.split()[:2] == ["msgsvc", "unicast"]]
        off = [line.split() for line in lines if line.split()[:4] == ["msgsvc", "history", "off", "unicast"]]
        self.assertEqual((len(on), len(off)), (1, 1), out)
        self.assertEqual((on[0][-1], off[0][-1]), ("0", "0"), out)  # lost
        ratio = "unicast (8 clients): msgsvc history on/off = "
        self.assertTrue(any(line.startswith(ratio) for line in lines), out)

    def test_accounts_on_logs_the_load_in_to_protected_names_on_sqlite_and_redis_loses_nothing(self) -> None:
        """``--accounts on``: real servers (on SQLite and on a real Redis) with every load name protected,
        the C load (6 clients a process) and the Python load logging in with the password, history on and
        off: every row registered all its clients and lost nothing (the figures are not judged)."""
        out = bench(
            *["run", "--server", "msgsvc", "--server", "msgsvc-redis", "--clients", "12", "--duration", "1"],
            *["--warmup", "0", "--rate", "50", "--accounts", "on", "--history", "on", "--history", "off"],
        )
        python = bench(
            *["run", "--clients", "8", "--duration", "1", "--warmup", "0", "--rate", "50"],
            *["--accounts", "on", "--load", "python"],
        )
        rows = [line.split() for line in (out + python).splitlines() if " unicast " in line]
        labels = [row[: row.index("unicast")] for row in rows]
        self.assertEqual(
            labels,
            [
                ["msgsvc", "accounts", "on"],
                ["msgsvc", "history", "off", "accounts", "on"],
                ["msgsvc-redis", "accounts", "on"],
                ["msgsvc-redis", "history", "off", "accounts", "on"],
                ["msgsvc", "accounts", "on"],
            ],
            out + python,
        )
        loads = [row[row.index("unicast") + 3] for row in rows]
        self.assertEqual(loads, ["c"] * 4 + ["python"], out + python)
        self.assertEqual([row[-1] for row in rows], ["0"] * 5, out + python)  # lost
        ratio = "unicast (12 clients): msgsvc-redis accounts on history on/off = "
        self.assertTrue(any(line.startswith(ratio) for line in out.splitlines()), out)

    def test_metrics_on_serves_them_scraped_during_the_load_and_loses_nothing(self) -> None:
        """``--metrics on``: a real server serving /metrics, scraped while loaded (the figures not judged)."""
        out = bench(
            *["run", "--clients", "8", "--duration", "1", "--warmup", "0", "--rate", "50", "--metrics", "on"]
        )
        lines = out.splitlines()
        (row,) = [line.split() for line in lines if line.split()[:4] == ["msgsvc", "metrics", "on", "unicast"]]
        self.assertEqual(row[-1], "0", out)  # lost
        (scraped,) = [line for line in lines if line.startswith("msgsvc metrics on: /metrics scraped ")]
        self.assertGreater(int(scraped.split()[5]), 0, out)

    def test_two_nodes_on_redis_take_the_c_load_and_lose_nothing(self) -> None:
        """Two real nodes on a real redis-server, the clients spread over them (figures not judged)."""
        out = bench("scaling", "--repeat", "1", "--duration", "1", "--clients", "12", "--rate", "50")
        rows = {tuple(line.split()[:2]): line.split() for line in out.splitlines() if " unicast " in line}
        for deployment in [("msgsvc", "unicast"), ("msgsvc-redis", "unicast"), ("msgsvc-redis", "x2")]:
            self.assertIn(deployment, rows, out)
            self.assertEqual(rows[deployment][-1], "0", out)  # lost
        two = rows[("msgsvc-redis", "x2")]
        self.assertGreater(float(two[10]), 0, out)  # Redis us/dlv: half the unicasts crossed nodes

    def test_the_login_burst_runs_end_to_end_and_reports(self) -> None:
        """A small burst against a real server: every login answered WELCOME (the figures are not judged)."""
        said, first, login, calm, during, verdict = bench("logins", "--accounts", "5", "--rate", "20").splitlines()
        self.assertEqual(said, f"build of msgsvc: {build.running()}")
        self.assertRegex(
            first,
            r"^5 logins to protected names at once: [\d.]+ logins/s \([\d.]+ s for the burst, 0 failed;",
        )
        self.assertTrue(login.startswith("  time to WELCOME: p50 "), login)
        self.assertIn("bystander p99 < 50 ms during the burst", verdict)

    def test_the_offline_bench_runs_end_to_end_and_reports(self) -> None:
        """A small run: every message queued and the whole backlog delivered (the figures are not judged)."""
        out = bench("offline", "--sent", "300", "--window", "50", "--away", "2")
        said, queued, backlog, cpu = out.splitlines()
        self.assertEqual(said, f"build of msgsvc: {build.running()}")
        self.assertRegex(queued, r"^300 unicasts to 2 away protected users, 50 in flight: [\d,]+ messages/s")
        self.assertTrue(backlog.endswith("(150 messages)"), backlog)
        self.assertTrue(cpu.startswith("server CPU for both: "), cpu)
