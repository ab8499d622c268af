"""``twistd msgsvc`` options and the service tree they build."""

from __future__ import annotations

import gc
import os
import re

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory
from twisted.logger import capturedLogs, formatEvent
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from msgsvc import tap
from msgsvc.auth.accounts import Accounts
from msgsvc.auth.hashing import Hasher
from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.lines import ServerFactory
from msgsvc.fronts.web.site import WebSite
from msgsvc.hub.contracts import HistoryPolicy, Member, RoomRecord
from msgsvc.hub.history import History, NoHistory
from msgsvc.options import Options
from msgsvc.ratelimit import Rate
from msgsvc.state.sqlite import Database, SqliteStore
from msgsvc.wire import Limits


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = parse()
        self.assertEqual(options["listen"], ["tcp:8123"])
        self.assertEqual(options["db"], "msgsvc.sqlite3")
        self.assertEqual(options["max-clients"], 1000)
        self.assertEqual(options.limits(), Limits())

    def test_listen_repeats(self) -> None:
        options = parse("--listen", "tcp:1234", "--listen=tcp6:1235")
        self.assertEqual(options["listen"], ["tcp:1234", "tcp6:1235"])

    def test_limits(self) -> None:
        options = parse(
            *["--max-line", "1000", "--max-text", "500", "--max-recipients", "7"],
            *["--max-clients", "3", "--max-send-queue", "9999", "--max-per-ip", "4"],
        )
        self.assertEqual(
            options.limits(),
            Limits(max_line=1000, max_text=500, max_recipients=7, max_send_queue=9999, max_per_ip=4),
        )
        self.assertEqual(options["max-clients"], 3)

    def test_flood_limits(self) -> None:
        options = parse("--line-rate", "5.5", "--line-burst", "10", "--flood-timeout", "3")
        self.assertEqual(options.limits(), Limits(line_rate=5.5, line_burst=10, flood_timeout=3))

    def test_timeouts(self) -> None:
        options = parse("--hello-timeout", "5", "--ping-interval", "90.5", "--ping-timeout", "10")
        self.assertEqual(options.limits(), Limits(hello_timeout=5, ping_interval=90.5, ping_timeout=10))

    def test_bad_numbers(self) -> None:
        for argv in (
            ["--max-clients", "0"],
            ["--max-text", "lots"],
            ["--max-line", "-5"],
            ["--ping-timeout", "0"],
        ):
            self.assertRaises(usage.UsageError, parse, *argv)

    def test_a_redis_url_is_checked_with_its_tls_files(self) -> None:
        self.assertEqual(parse("--redis", "redis://db:6380/1")["redis"], "redis://db:6380/1")
        for url in ("http://db", "rediss://db?ssl_ca_certs=/no/such/ca.pem"):
            self.assertRaises(usage.UsageError, parse, "--redis", url)

    def test_web_and_its_origins(self) -> None:
        options = parse(
            "--web",
            "tcp:8080",
            "--web=ssl:8443:privateKey=k.pem",
            "--web-origin",
            "HTTPS://Chat.Example.org:443",
        )
        self.assertEqual(options["web"], ["tcp:8080", "ssl:8443:privateKey=k.pem"])
        self.assertEqual(options["web-origin"], ["https://chat.example.org"])
        self.assertEqual(parse()["web"], [])

    def test_web_origin_must_be_an_origin_and_needs_web(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--web", "tcp:8080", "--web-origin", "chat.example.org")
        self.assertIn("is not an origin", str(caught.exception))
        self.assertRaises(usage.UsageError, parse, "--web-origin", "https://chat.example.org")

    def test_web_hosts_and_the_request_timeout(self) -> None:
        options = parse("--web", "tcp:8080", "--web-host", "Chat.Example.org.", "--web-host", "intranet")
        self.assertEqual(options["web-host"], ["chat.example.org", "intranet"])
        self.assertEqual(options["web-request-timeout"], 10.0)
        self.assertEqual(parse("--web", "tcp:8080", "--web-request-timeout", "2.5")["web-request-timeout"], 2.5)
        for bad in ("chat.example.org:8080", "http://chat.example.org", "a b", "-x"):
            self.assertRaises(usage.UsageError, parse, "--web", "tcp:8080", "--web-host", bad)
        self.assertRaises(usage.UsageError, parse, "--web-host", "chat.example.org")  # needs --web

    def test_irc_options(self) -> None:
        options = parse("--irc", "tcp:6667", "--irc", "ssl:6697:privateKey=k.pem", "--irc-channel", "#team")
        self.assertEqual(options["irc"], ["tcp:6667", "ssl:6697:privateKey=k.pem"])
        self.assertEqual(options["irc-channel"], "#team")
        self.assertEqual(parse()["irc-channel"], "#all")
        for bad in ["team", "#a b", "#a,b", "#" + "x" * 40]:
            self.assertRaises(usage.UsageError, parse, "--irc-channel", bad)

    def test_text_must_fit_in_a_line(self) -> None:
        self.assertRaises(usage.UsageError, parse, "--max-line", "100", "--max-text", "100")

    def test_help_names_every_option(self) -> None:
        text = str(Options())
        for option in [
            "--gui",
            "--listen",
            "--db",
            "--max-line",
            "--max-text",
            "--max-recipients",
            "--max-clients",
            "--web",
            "--web-origin",
            "--irc",
            "--irc-channel",
            "--irc-server-name",
        ]:
            self.assertIn(option, text)

    def test_help_has_no_doubled_full_stops(self) -> None:
        text = " ".join(str(Options()).split())
        self.assertIsNone(re.search(r"[^.]\.\.[^.]", text), text)  # was "rediss:// for TLS.. A redis://"


class MakeServiceTests(SynchronousTestCase):
    def test_tree(self) -> None:
        db = self.mktemp()
        Database(db).close()
        service = tap.makeService(parse("--db", db, "--listen", "tcp:0", "--listen", "tcp6:0"))
        children = list(service)
        self.assertIsInstance(children[0], SqliteStore)
        listeners = [c for c in children if isinstance(c, StreamServerEndpointService)]
        self.assertEqual(len(listeners), 2)
        self.assertIs(listeners[0].factory, listeners[1].factory)
        self.assertEqual(children[-3:-1], listeners, "listeners stop first")
        self.assertIsInstance(children[1], Hasher)
        self.assertIsInstance(children[2], Accounts)
        self.assertIsInstance(children[3], tap._Loader)

    def test_on_sqlite_the_rooms_are_taken_with_the_log_before_anyone_may_register(self) -> None:
        db = self.mktemp()
        database = Database(db)  # alice protected: her room and membership outlast her sessions
        dev = RoomRecord("#Dev", 1.0, "alice", members={"alice": Member("alice", op=True, since=1.0)})
        database.record_seen([("alice", 1.0)])
        database.set_password_hash("alice", "hash", 1.0)
        database.batch([lambda d: d.create_room(dev, 50)])
        database.close()
        service = tap.makeService(parse("--db", db))
        state, loader = list(service)[0], next(c for c in service if isinstance(c, tap._Loader))
        hub = loader._hub
        self.assertIsNone(hub.rooms.find("#dev"))
        state.startService()
        self.addCleanup(state.stopService)
        loader.startService()  # what it takes, it takes at once: before the listeners start
        self.addCleanup(loader.stopService)
        self.assertEqual(hub.log_size(), 1)
        view = hub.rooms.find("#dev")
        assert view is not None
        self.assertEqual([m.name for m in view.members], ["alice"])

    def test_the_offline_queues_quotas_and_the_rates_of_new_names_and_accounts(self) -> None:
        db = self.mktemp()
        Database(db).close()
        defaults = parse("--db", db)
        self.assertEqual((defaults["queue-per-sender"], defaults["queue-total"]), (2000, 100_000))
        rates = [f"new-{what}-{how}" for what in ("names", "accounts") for how in ("per-minute", "burst")]
        self.assertEqual([defaults[rate] for rate in rates], [6.0, 20, 6.0, 20])
        service = tap.makeService(
            parse(
                *["--db", db, "--queue-per-sender", "5", "--queue-total", "50"],
                *["--new-names-per-minute", "1.5", "--new-names-burst", "2"],
                *["--new-accounts-per-minute", "3", "--new-accounts-burst", "4"],
            )
        )
        accounts = next(c for c in service if isinstance(c, Accounts))
        self.assertEqual((accounts.new_names._rate, accounts.new_accounts._rate), (Rate(1.5, 2), Rate(3, 4)))
        queue = accounts._hub._queue.policy
        self.assertEqual((queue.per_sender, queue.total), (5, 50))
        self.assertRaises(usage.UsageError, parse, "--new-names-per-minute", "0")

    def test_the_history_kept_and_none_with_zero_days(self) -> None:
        db = self.mktemp()
        Database(db).close()
        self.assertEqual(parse("--db", db).history(), HistoryPolicy())
        service = tap.makeService(parse("--db", db, "--history-days", "7.5", "--history-max", "20"))
        [history] = [c for c in service if isinstance(c, History)]
        accounts = next(c for c in service if isinstance(c, Accounts))
        self.assertIs(accounts._hub.history, history)
        self.assertEqual(history.policy, HistoryPolicy(days=7.5, keep=20))
        self.assertIsInstance(history._store, SqliteStore)
        service = tap.makeService(parse("--db", db, "--history-days", "0"))
        self.assertEqual([c for c in service if isinstance(c, History)], [])
        [history] = [c for c in service if isinstance(c, NoHistory)]
        self.assertIs(next(c for c in service if isinstance(c, Accounts))._hub.history, history)
        for bad in (["--history-days", "-1"], ["--history-days", "inf"], ["--history-max", "0"]):
            self.assertRaises(usage.UsageError, parse, *bad)

    def test_started_last_it_freezes_what_start_up_made(self) -> None:
        db = self.mktemp()
        Database(db).close()
        settle = list(tap.makeService(parse("--db", db)))[-1]
        self.addCleanup(gc.unfreeze)
        settle.startService()
        self.assertGreater(gc.get_freeze_count(), 0)

    def test_started_last_it_collects_the_young_generation_every_10000_allocations(self) -> None:
        db = self.mktemp()
        Database(db).close()
        settle = list(tap.makeService(parse("--db", db)))[-1]
        self.addCleanup(gc.unfreeze)
        self.addCleanup(gc.set_threshold, *gc.get_threshold())
        settle.startService()
        self.assertEqual(gc.get_threshold()[0], 10_000)

        db = self.mktemp()
        with open(db, "wb") as f:
            f.write(b"not a database at all" * 100)
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(parse("--db", db))
        self.assertIn(repr(db), str(caught.exception))

    def test_gui_needs_twistd_n(self) -> None:
        options = parse("--db", self.mktemp(), "--gui")
        options.parent = {"nodaemon": False}  # type: ignore[assignment]
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(options)
        self.assertIn("--gui needs twistd -n", str(caught.exception))

    def test_gui_needs_a_display(self) -> None:
        display = os.environ.pop("DISPLAY", None)
        if display is not None:
            self.addCleanup(os.environ.__setitem__, "DISPLAY", display)
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(parse("--db", self.mktemp(), "--gui"))
        self.assertIn("--gui cannot open a window", str(caught.exception))

    def test_web_listeners_serve_one_site(self) -> None:
        db = self.mktemp()
        Database(db).close()
        service = tap.makeService(parse("--db", db, "--listen", "tcp:0", "--web", "tcp:0", "--web", "tcp6:0"))
        listeners = [c for c in service if isinstance(c, StreamServerEndpointService)]
        self.assertEqual(len(listeners), 3)
        tcp, web, web6 = (listener.factory for listener in listeners)
        self.assertIsInstance(tcp, ServerFactory)
        self.assertIsInstance(web, WebSite)
        self.assertIs(web, web6)

    def test_irc_listeners_share_the_line_fronts_clients(self) -> None:
        db = self.mktemp()
        Database(db).close()
        service = tap.makeService(parse("--db", db, "--irc", "tcp:0", "--irc-server-name", "chat.test"))
        tcp, irc = (c.factory for c in service if isinstance(c, StreamServerEndpointService))
        self.assertIsInstance(irc, IrcFactory)
        self.assertIs(irc.clients, tcp.clients)
        self.assertEqual(irc.server_name, "chat.test")

    def test_irc_offers_chathistory_only_while_history_is_kept(self) -> None:
        db = self.mktemp()
        Database(db).close()
        for days, offered in (("90", True), ("0", False)):
            service = tap.makeService(parse("--db", db, "--irc", "tcp:0", "--history-days", days))
            [irc] = (c.factory for c in service if isinstance(getattr(c, "factory", None), IrcFactory))
            self.assertEqual("draft/chathistory" in irc.capabilities, offered, days)
            self.assertEqual(irc.history, parse("--db", db, "--history-days", days).history())

    def test_bad_web_endpoint(self) -> None:
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(parse("--db", self.mktemp(), "--web", "carrier-pigeon:9"))
        self.assertIn("bad --web endpoint 'carrier-pigeon:9'", str(caught.exception))

    def test_bad_endpoint(self) -> None:
        db = self.mktemp()
        with self.assertRaises(SystemExit) as caught:
            tap.makeService(parse("--db", db, "--listen", "carrier-pigeon:9"))
        self.assertIn("carrier-pigeon:9", str(caught.exception))


class Bound:
    """An endpoint that listens at once, and its port, at ``address``."""

    def __init__(self, address: IAddress) -> None:
        self.address = address

    def listen(self, factory: object) -> Deferred[Bound]:
        return succeed(self)

    def getHost(self) -> IAddress:
        return self.address


class ListenerLogTests(SynchronousTestCase):
    def started(self, option: str, description: str, address: IAddress) -> list[str]:
        """What starting a listener on ``description``, bound to ``address``, logs."""
        listener = tap._Listener(option, description, Bound(address), Factory())  # type: ignore[arg-type]
        with capturedLogs() as events:
            listener.privilegedStartService()
        return [formatEvent(e) for e in events if e.get("log_namespace") == "msgsvc.tap._Listener"]

    def test_every_interface_in_the_clear_is_warned_of(self) -> None:
        said, warning = self.started("--web", "tcp:8080", IPv4Address("TCP", "0.0.0.0", 8080))
        self.assertEqual(said, "--web tcp:8080: listening on every interface, port 8080")
        self.assertIn("--web tcp:8080 is not encrypted and can be reached from other machines", warning)
        self.assertIn("loopback only (tcp:8080:interface=127.0.0.1)", warning)

    def test_a_chosen_interface_in_the_clear_is_warned_of(self) -> None:
        description = "tcp6:8123:interface=2001\\:db8\\:\\:7"
        said, warning = self.started("--listen", description, IPv6Address("TCP", "2001:db8::7", 8123))
        self.assertEqual(said, f"--listen {description}: listening on 2001:db8::7 port 8123")
        self.assertIn("not encrypted", warning)

    def test_loopback_is_not(self) -> None:
        description = "tcp:8123:interface=127.0.0.1"
        self.assertEqual(
            self.started("--listen", description, IPv4Address("TCP", "127.0.0.1", 8123)),
            [f"--listen {description}: listening on 127.0.0.1 port 8123"],
        )
        self.assertEqual(len(self.started("--irc", "tcp6:6667:interface=\\:\\:1", IPv6Address("TCP", "::1", 6667))), 1)
        self.assertEqual(
            self.started("--listen", "unix:/run/msgsvc.sock", UNIXAddress("/run/msgsvc.sock")),
            ["--listen unix:/run/msgsvc.sock: listening"],
        )

    def test_tls_is_not(self) -> None:
        description = "ssl:8443:privateKey=key.pem"
        self.assertEqual(
            self.started("--web", description, IPv4Address("TCP", "0.0.0.0", 8443)),
            [f"--web {description}: listening on every interface, port 8443"],
        )
