"""The client protocol over StringTransport, and the presenter with no display."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.error import ConnectionDone, ConnectionRefusedError, DNSLookupError, TimeoutError
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc import wire
from msgsvc.client.connect import endpoint_connector
from msgsvc.client.presenter import (
    UNPROTECTED_HISTORY,
    ChatPresenter,
    ConversationItem,
    Entry,
    Phase,
    UserItem,
    describe_failure,
    describe_server,
    plain_remote_host,
)
from msgsvc.client.protocol import ClientProtocol, Listed, Stamp
from msgsvc.hub.contracts import Kind
from msgsvc.times import describe_day, describe_time

from .support.fakes import FakeConnection, Recorder
from .support.processes import Peer, free_port, run_msgsvc


class ProtocolTestCase(SynchronousTestCase):
    """A ClientProtocol of ``name`` (alice) on a StringTransport, reporting to a Recorder."""

    name = "alice"

    def setUp(self) -> None:
        self.listener = Recorder()
        self.protocol = ClientProtocol(self.name, self.listener)  # type: ignore[arg-type]
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def feed(self, *lines: str) -> None:
        self.protocol.dataReceived("".join(line + "\r\n" for line in lines).encode())


class ClientProtocolTests(ProtocolTestCase):
    def test_says_hello_on_connect(self) -> None:
        self.assertEqual(self.transport.value(), b"VERSION 13\r\nHELLO alice\r\n")

    def test_events(self) -> None:
        self.feed(
            "WELCOME alice :hi",
            "USER alice online",
            "USER bob offline",
            "ENDUSERS 2",
            "JOINED bob",
            "MSG bob multicast alice,carol :hello there",
            "MSG bob broadcast * :all",
            "SENT 1 dave,erin",
            "SENT 2 -",
            "LEFT bob",
            "REMOVED bob",
            "ERROR TEXT_TOO_LONG :too long",
            "NOTICE :maintenance at noon",
            "BYE :server shutting down",
        )
        self.assertEqual(
            self.listener.calls,
            [
                ("welcomed", ("alice",)),
                ("user_log", ([("alice", True, False), ("bob", False, False)],)),
                ("joined", ("bob",)),
                ("message", ("bob", Kind.MULTICAST, ("alice", "carol"), "hello there", None)),
                ("message", ("bob", Kind.BROADCAST, (), "all", None)),
                ("sent", (1, ("dave", "erin"), (), None)),
                ("sent", (2, (), (), None)),
                ("left", ("bob",)),
                ("removed", ("bob",)),
                ("error", ("TEXT_TOO_LONG", "too long")),
                ("notice", ("maintenance at noon",)),
                ("bye", ("server shutting down",)),
            ],
        )

    def test_answers_ping(self) -> None:
        self.transport.clear()
        self.feed("PING :x1")
        self.assertEqual(self.transport.value(), b"PONG :x1\r\n")

    def test_skips_what_it_cannot_read(self) -> None:
        self.feed("FUTURE stuff", "MSG bob telepathy alice :x", "SENT many -", "JOINED", "LEFT carol")
        self.assertEqual(self.listener.calls, [("left", ("carol",))])
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_commands(self) -> None:
        self.transport.clear()
        self.protocol.send(("bob",), "hi :)")
        self.protocol.send(("bob", "carol"), "both")
        self.protocol.broadcast("everyone")
        self.protocol.quit()
        self.assertEqual(
            self.transport.value(),
            b"SEND bob :hi :)\r\nSEND bob,carol :both\r\nBROADCAST :everyone\r\nQUIT\r\n",
        )

    def test_disconnect(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone("closed")))
        self.assertEqual(self.listener.calls, [("disconnected", ("Connection was closed cleanly: closed.",))])


class PresenterTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.view = Recorder()
        self.connection = FakeConnection()
        self.clock = Clock()
        self.presenter = ChatPresenter(self.view, self.connection, self.clock, username="alice")  # type: ignore[arg-type]

    def log_in(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.connection.server_says(
            "WELCOME alice :hi",
            "USER alice online",
            "USER bob online",
            "USER carol online",
            "USER dave offline",
            "ENDUSERS 4",
        )
        self.connection.sent()
        self.view.calls.clear()


class LoginTests(PresenterTestCase):
    def test_start_shows_the_prefilled_form(self) -> None:
        self.presenter.start()
        self.assertEqual(
            self.view.calls,
            [("show_title", ("msgsvc",)), ("show_login", ("alice", "tcp:localhost:8123", ""))],
        )

    def test_invalid_name_is_caught_before_connecting(self) -> None:
        self.presenter.login("9 lives", "tcp:h:1")
        self.assertEqual(self.connection.attempts, [])
        name, server, problem = self.view.last("show_login")
        self.assertEqual((name, server), ("9 lives", "tcp:h:1"))
        self.assertIn("starting with a letter", problem)

    def test_connecting_then_connected(self) -> None:
        self.presenter.login(" alice ", "tcp:example.org:8123")
        self.assertEqual(self.view.last("show_status"), ("Connecting to example.org:8123 as alice…", False))
        self.assertEqual(self.connection.sent(), ["VERSION 13", "HELLO alice"])
        self.connection.server_says(
            "WELCOME alice :hi", "USER alice online", "USER bob offline", "ENDUSERS 2"
        )
        self.assertEqual(self.presenter.phase, Phase.CONNECTED)
        self.assertIn(("show_chat", ()), self.view.calls)
        self.assertEqual(self.view.last("show_status"), ("Connected to example.org:8123 as alice", True))
        self.assertEqual(
            self.view.last("show_users"), ([UserItem("alice", True, True), UserItem("bob", False, False)],)
        )

    def test_refused_name_brings_the_form_back_with_the_reason(self) -> None:
        self.presenter.login("alice", "tcp:h:1")
        self.connection.server_says("ERROR USERNAME_TAKEN :alice is in use", "BYE :alice is in use")
        self.connection.close()
        self.assertEqual(self.presenter.phase, Phase.LOGIN)
        self.assertEqual(
            self.view.last("show_login"),
            ("alice", "tcp:h:1", "The server refused alice: alice is in use", "username"),
        )
        self.presenter.login("alice2", "tcp:h:1")
        self.assertEqual(self.connection.attempts[-1], ("tcp:h:1", "alice2"))

    def test_a_server_error_closes_the_connection_and_brings_the_form_back(self) -> None:
        self.presenter.login("alice", "tcp:h:1")
        self.connection.server_says(
            "ERROR SERVER_ERROR :the server could not record the username; try again later"
        )
        self.assertTrue(self.connection.transport.disconnecting)  # the server keeps it: the client closes it
        self.connection.close()
        self.assertEqual(
            self.view.last("show_login"),
            (
                "alice",
                "tcp:h:1",
                "The server refused alice: the server could not record the username; try again later",
                "username",
            ),
        )

    def test_unreachable_server(self) -> None:
        self.connection.refuse = True
        self.presenter.login("alice", "tcp:h:1")
        self.assertEqual(self.presenter.phase, Phase.LOGIN)
        self.assertEqual(
            self.view.last("show_login"),
            ("alice", "tcp:h:1", "Cannot reach h:1: connection refused — is the server running?", "server"),
        )

    def test_why_a_server_cannot_be_reached_in_words(self) -> None:
        for error, said in [
            (ConnectionRefusedError(), "connection refused — is the server running?"),
            (DNSLookupError("nowhere.example"), "no such host"),
            (TimeoutError(), "no answer (timed out)"),
        ]:
            self.assertEqual(describe_failure("tls:h:1", Failure(error)), f"Cannot reach h:1: {said}")


class ChatTests(PresenterTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.log_in()

    def test_unicast(self) -> None:
        self.presenter.choose_mode(Kind.UNICAST)
        self.presenter.choose_recipients(("bob",))
        self.assertTrue(self.presenter.send("hi bob"))
        self.assertEqual(self.connection.sent(), ["SEND bob :hi bob"])
        self.connection.server_says("SENT 1 -")
        self.assertEqual(self.view.entries(), [("sent", "you to bob: hi bob")])

    def test_unicast_keeps_one_recipient(self) -> None:
        self.presenter.choose_mode(Kind.UNICAST)
        self.presenter.choose_recipients(("bob", "carol"))
        self.assertEqual(self.presenter.selected, ("carol",))

    def test_multicast_reports_who_was_not_connected(self) -> None:
        self.presenter.choose_mode(Kind.MULTICAST)
        self.presenter.choose_recipients(("bob", "dave"))
        self.assertEqual(self.view.last("show_mode"), (Kind.MULTICAST, ("bob", "dave")))
        self.presenter.send("meeting")
        self.assertEqual(self.connection.sent(), ["SEND bob,dave :meeting"])
        self.connection.server_says("SENT 1 dave")
        self.assertEqual(
            self.view.entries(),
            [("sent", "you to bob, dave: meeting"), ("warning", "not connected, did not get it: dave")],
        )

    def test_broadcast(self) -> None:
        self.presenter.choose_recipients(("bob",))
        self.presenter.choose_mode(Kind.BROADCAST)
        self.assertEqual(self.presenter.selected, ())
        self.presenter.send("hello all")
        self.assertEqual(self.connection.sent(), ["BROADCAST :hello all"])
        self.connection.server_says("SENT 2 -")
        self.assertEqual(self.view.entries(), [("sent", "you to everyone: hello all")])

    def test_what_cannot_be_sent_is_explained_and_not_sent(self) -> None:
        cases = [
            (Kind.UNICAST, (), "hi", "Unicast: pick one recipient."),
            (
                Kind.MULTICAST,
                ("bob",),
                "hi",
                "Multicast: pick two or more recipients (or use Unicast for one).",
            ),
            (Kind.BROADCAST, (), "   ", "Type a message first."),
            (Kind.BROADCAST, (), "é" * 2049, "The message is 4098 bytes; the limit is 4096."),
        ]
        for mode, recipients, text, problem in cases:
            self.presenter.choose_mode(mode)
            self.presenter.choose_recipients(recipients)
            self.assertFalse(self.presenter.send(text))
            self.assertEqual(self.view.entries()[-1], ("error", problem))
        self.assertEqual(self.connection.sent(), [])

    def test_received_messages_name_their_sender_and_kind(self) -> None:
        self.connection.server_says(
            "MSG bob unicast alice :psst",
            "MSG carol multicast alice,bob :team",
            "MSG dave broadcast * :all ✓",
            "NOTICE :restart at noon",
        )
        self.assertEqual(
            self.view.entries(),
            [
                ("direct", "bob to you: psst"),
                ("group", "carol to you and bob: team"),
                ("broadcast", "dave to everyone: all ✓"),
                ("notice", "server notice: restart at noon"),
            ],
        )

    def test_a_multicast_names_the_whole_group(self) -> None:
        # bob sent to alice, carol and dave; carol and dave were offline: the group is still named.
        self.connection.server_says("MSG bob multicast alice,carol,dave :hi")
        self.assertEqual(self.view.entries(), [("group", "bob to you, carol and dave: hi")])
        self.assertEqual(self.view.last("show_reply"), ("bob, carol and dave",))

    def test_a_multicast_leaves_out_the_sender_if_it_named_itself(self) -> None:
        self.connection.server_says("MSG bob multicast bob,alice :note to us")
        self.assertEqual(self.view.entries(), [("group", "bob to you: note to us")])
        self.assertTrue(self.presenter.reply_all())
        self.assertEqual(self.view.last("show_mode"), (Kind.UNICAST, ("bob",)))

    def test_reply_all_to_a_multicast(self) -> None:
        self.connection.server_says("MSG bob multicast alice,carol,dave :lunch?")
        self.assertTrue(self.presenter.reply_all())
        self.assertEqual(self.view.last("show_mode"), (Kind.MULTICAST, ("bob", "carol", "dave")))
        self.presenter.send("yes")
        self.assertEqual(self.connection.sent(), ["SEND bob,carol,dave :yes"])

    def test_reply_all_to_a_unicast_and_a_broadcast(self) -> None:
        self.connection.server_says("MSG bob unicast alice :psst")
        self.presenter.reply_all()
        self.assertEqual((self.presenter.mode, self.presenter.selected), (Kind.UNICAST, ("bob",)))
        self.connection.server_says("MSG carol broadcast * :all")
        self.assertEqual(self.view.last("show_reply"), ("everyone",))
        self.presenter.reply_all()
        self.presenter.send("hi all")
        self.assertEqual(self.connection.sent(), ["BROADCAST :hi all"])

    def test_reply_all_with_nothing_received(self) -> None:
        self.assertFalse(self.presenter.reply_all())
        self.assertEqual(self.view.entries(), [("error", "Nothing to reply to yet.")])

    def test_entries_carry_the_time(self) -> None:
        self.clock.advance(90)
        self.connection.server_says("MSG bob unicast alice :x")
        [(_, (entry,))] = [c for c in self.view.calls if c[0] == "append"]
        self.assertEqual(entry, Entry(90, "direct", "bob to you: x"))

    def test_a_name_removed_from_the_log_leaves_the_list_and_the_recipients(self) -> None:
        self.presenter.choose_mode(Kind.MULTICAST)
        self.presenter.choose_recipients(("bob", "dave"))
        self.connection.server_says("REMOVED Dave", "REMOVED nobody")
        self.assertEqual([u.name for u in self.view.last("show_users")[0]], ["alice", "bob", "carol"])
        self.assertEqual(self.presenter.selected, ("bob",))
        self.assertEqual(self.view.entries(), [("info", "dave was removed from the username log")])

    def test_presence_updates_the_list_and_talks_only_of_those_talked_with(self) -> None:
        self.connection.server_says("JOINED erin", "LEFT bob")
        users = self.view.last("show_users")[0]
        self.assertEqual(
            users,
            [
                UserItem("alice", True, True),
                UserItem("bob", False, False),
                UserItem("carol", True, False),
                UserItem("dave", False, False),
                UserItem("erin", True, False),
            ],
        )
        self.assertEqual(self.view.entries(), [])  # strangers' comings and goings: the list only
        self.connection.server_says("MSG carol unicast alice :hi")  # talking with carol
        self.presenter.choose_recipients(("dave",))  # about to write to dave
        self.presenter.choose_mode(Kind.MULTICAST)
        self.presenter.choose_recipients(("dave", "erin"))
        self.presenter.send("lunch?")  # and now with erin
        self.presenter.choose_recipients(())
        self.connection.server_says("SENT 1 dave", "LEFT carol", "JOINED dave", "LEFT erin", "JOINED bob")
        self.assertEqual(
            [text for _, text in self.view.entries() if "line" in text],
            ["carol went offline", "dave is online", "erin went offline"],
        )

    def test_disconnected_nobody_is_online_nor_can_be_replied_to(self) -> None:
        self.connection.server_says("MSG bob unicast alice :hi")
        self.assertEqual(self.view.last("show_reply"), ("bob",))
        self.connection.close()
        self.assertEqual(
            self.view.last("show_users"),
            (
                [
                    UserItem("alice", False, True),
                    UserItem("bob", False, False),
                    UserItem("carol", False, False),
                    UserItem("dave", False, False),
                ],
            ),
        )
        self.assertEqual(self.view.last("show_reply"), ("",))
        self.assertEqual(
            self.view.last("show_title"), ("alice on example.org:8123 (disconnected) — msgsvc",)
        )
        self.presenter.choose_recipients(("bob",))
        self.assertEqual(self.presenter.addressees(), "bob")  # not "offline": nobody's state is known
        self.presenter.reconnect()
        self.connection.server_says("WELCOME alice :hi", "USER alice online", "ENDUSERS 1")
        self.assertEqual(self.view.last("show_reply"), ("bob",))  # the same conversation goes on
        self.assertEqual(self.view.last("show_title"), ("alice on example.org:8123 — msgsvc",))

    def test_a_failed_reconnect_says_why_in_words(self) -> None:
        self.connection.close()
        self.connection.refuse = True
        self.presenter.reconnect()
        self.assertEqual(
            self.view.last("show_login"),
            (
                "alice",
                "tcp:example.org:8123",
                "Cannot reach example.org:8123: connection refused — is the server running?",
                "server",
            ),
        )

    def test_reconnect_while_connected_says_so(self) -> None:
        self.presenter.reconnect()
        self.assertEqual(self.connection.attempts, [("tcp:example.org:8123", "alice")])
        self.assertEqual(self.view.entries(), [("info", "Already connected to example.org:8123 as alice.")])

    def test_log_out_goes_back_to_the_form(self) -> None:
        self.presenter.log_out()
        self.assertEqual(self.connection.sent(), ["QUIT"])
        self.connection.server_says("BYE :goodbye")
        self.connection.close()
        self.assertEqual(self.presenter.phase, Phase.LOGIN)
        self.assertEqual(self.view.last("show_login"), ("alice", "tcp:example.org:8123", ""))
        self.assertEqual(self.view.last("show_title"), ("msgsvc",))
        self.assertEqual(self.view.entries(), [])  # no "Disconnected": the user left

    def test_log_out_after_a_disconnect(self) -> None:
        self.connection.close()
        self.presenter.log_out()
        self.assertEqual(self.presenter.phase, Phase.LOGIN)
        self.assertEqual(self.view.last("show_login"), ("alice", "tcp:example.org:8123", ""))

    def test_a_name_never_registered_is_no_such_user(self) -> None:
        self.presenter.choose_mode(Kind.MULTICAST)
        self.presenter.choose_recipients(("bob", "Dave", "nobodyhome"))
        self.presenter.send("hi")
        self.connection.server_says("SENT 1 dave,nobodyhome -")
        self.assertEqual(
            self.view.entries()[1:],
            [("warning", "not connected, did not get it: dave"), ("warning", "no such user: nobodyhome")],
        )
        self.presenter.choose_mode(Kind.UNICAST)
        self.presenter.choose_recipients(("nobodyhome",))
        self.presenter.send("hi")
        self.connection.server_says("SENT 0 nobodyhome -")
        self.assertEqual(self.view.entries()[-1], ("warning", "no such user: nobodyhome"))

    def test_server_errors_show_inline(self) -> None:
        self.presenter.choose_mode(Kind.BROADCAST)
        self.presenter.send("x")
        self.connection.server_says("ERROR TEXT_TOO_LONG :too long", "SENT 1 -")
        self.assertEqual(self.view.entries(), [("error", "TEXT_TOO_LONG: too long")])

    def test_server_going_away_and_reconnecting(self) -> None:
        self.connection.server_says("BYE :server shutting down")
        self.connection.close()
        self.assertEqual(self.presenter.phase, Phase.DISCONNECTED)
        self.assertEqual(self.view.last("show_status"), ("Disconnected: server shutting down", False))
        self.assertFalse(self.presenter.send("anyone?"))
        self.presenter.reconnect()
        self.assertEqual(self.connection.attempts[-1], ("tcp:example.org:8123", "alice"))
        self.connection.server_says("WELCOME alice :hi", "ENDUSERS 0")
        self.assertEqual(self.presenter.phase, Phase.CONNECTED)

    def test_quit_says_goodbye_and_waits_for_the_close(self) -> None:
        gone = self.presenter.quit()
        self.assertEqual(self.connection.sent(), ["QUIT"])
        self.assertNoResult(gone)
        self.connection.server_says("BYE :goodbye")
        self.connection.close()
        self.successResultOf(gone)

    def test_close_quits_then_calls_back_once(self) -> None:
        closed: list[bool] = []
        self.presenter.close(lambda: closed.append(True))
        self.presenter.close(lambda: closed.append(True))
        self.assertEqual(self.connection.sent(), ["QUIT"])
        self.assertEqual(closed, [])
        self.connection.close()
        self.assertEqual(closed, [True])

    def test_close_gives_up_waiting_after_the_grace_period(self) -> None:
        closed: list[bool] = []
        self.presenter.close(lambda: closed.append(True), grace=2)
        self.clock.advance(1.9)
        self.assertEqual(closed, [])
        self.clock.advance(0.2)
        self.assertEqual(closed, [True])
        self.connection.close()  # the late close is harmless
        self.assertEqual(closed, [True])

    def test_quit_when_not_connected(self) -> None:
        self.connection.close()
        self.successResultOf(self.presenter.quit())


class DescribeServerTests(SynchronousTestCase):
    def test_describe(self) -> None:
        self.assertEqual(describe_server("tcp:localhost:8123"), "localhost:8123")
        self.assertEqual(describe_server("tls:chat.example:8124:caCertsDir=/x"), "chat.example:8124")
        self.assertEqual(describe_server("unix:/tmp/s"), "unix:/tmp/s")


class ClientProtocolAccountTests(SynchronousTestCase):
    def test_hello_with_a_password_and_password_changes(self) -> None:
        listener = Recorder()
        protocol = ClientProtocol("alice", listener, " two words ")  # type: ignore[arg-type]
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"VERSION 13\r\nHELLO alice : two words \r\n")
        transport.clear()
        protocol.set_password("a new password")
        self.assertEqual(transport.value(), b"PASSWORD :a new password\r\n")
        protocol.dataReceived(
            b"USER alice online protected\r\nUSER bob offline\r\nENDUSERS 2\r\nPROTECTED alice :done\r\n"
        )
        self.assertEqual(
            listener.calls,
            [("user_log", ([("alice", True, True), ("bob", False, False)],)), ("protected", ("alice",))],
        )


class AccountTests(PresenterTestCase):
    def test_a_password_goes_with_hello(self) -> None:
        self.presenter.login("alice", "tcp:127.0.0.1:8123", "alice's secret")
        self.assertEqual(self.connection.sent(), ["VERSION 13", "HELLO alice :alice's secret"])

    def test_plain_tcp_to_another_host_warns_once_before_a_password_is_sent(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123", "alice's secret")
        self.assertEqual(self.connection.attempts, [])
        name, server, problem, field = self.view.last("show_login")
        self.assertEqual(field, "password")
        self.assertIn("example.org is not this machine and tcp: is not encrypted", problem)  # type: ignore[operator]
        self.assertIn("Use tls:example.org:8123", problem)  # type: ignore[operator]
        self.presenter.login("alice", "tcp:example.org:8123", "alice's secret")
        self.assertEqual(self.connection.passwords, ["alice's secret"])

    def test_no_warning_without_a_password_or_over_tls(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.presenter.login("alice", "tls:example.org:8124", "alice's secret")
        self.assertEqual(self.connection.passwords, [None, "alice's secret"])

    def test_which_hosts_are_plain_and_remote(self) -> None:
        for server, host in [
            ("tcp:example.org:8123", "example.org"),
            ("tcp:10.1.2.3:8123", "10.1.2.3"),
            ("tcp:host=example.org:port=8123", "example.org"),
            ("tcp:localhost:8123", ""),
            ("tcp:127.0.0.5:8123", ""),
            ("tcp:\\:\\:1:8123", ""),
            ("tls:example.org:8123", ""),
            ("unix:/run/msgsvc.sock", ""),
        ]:
            self.assertEqual(plain_remote_host(server), host, server)

    def test_a_protected_name_asks_for_its_password(self) -> None:
        for code, text in [
            ("AUTH_REQUIRED", "alice is protected: give its password"),
            ("AUTH_FAILED", "wrong password for alice"),
        ]:
            self.presenter.login("alice", "tcp:localhost:8123")
            self.connection.server_says(f"ERROR {code} :{text}", f"BYE :{text}")
            self.connection.close()
            self.assertEqual(
                self.view.last("show_login"),
                (
                    "alice",
                    "tcp:localhost:8123",
                    f"The server refused alice: {text}. Enter the password and connect again.",
                    "password",
                ),
            )

    def test_protect_then_reconnect_with_the_new_password(self) -> None:
        self.log_in()
        self.assertEqual(self.view.calls, [])
        self.presenter._warned = "tcp:example.org:8123"  # the user chose to send it anyway
        self.assertTrue(self.presenter.set_password("alice's secret", "alice's secret"))
        self.assertEqual(self.connection.sent(), ["PASSWORD :alice's secret"])
        self.connection.server_says("PROTECTED alice :alice is protected by your password")
        self.assertEqual(
            self.view.entries(), [("info", "alice is protected: log in with your password from now on.")]
        )
        self.assertEqual(self.view.last("show_account"), (True,))
        self.assertTrue(self.presenter.name_protected)
        self.connection.close()
        self.presenter.reconnect()
        self.assertEqual(self.connection.passwords[-1], "alice's secret")

    def test_a_password_that_cannot_be_sent(self) -> None:
        self.assertFalse(self.presenter.set_password("long enough", "long enough"))  # not connected
        self.log_in()
        self.assertFalse(self.presenter.set_password("long enough", "long enougH"))
        self.assertFalse(self.presenter.set_password("short", "short"))
        self.assertFalse(self.presenter.set_password("long enough", "long enough"))  # the plain-TCP warning
        problems = [str(args[0]) for name, args in self.view.calls if name == "show_password_problem"]
        self.assertEqual(
            problems[:2], ["The two passwords differ.", "A password needs at least 8 characters."]
        )
        self.assertIn("not encrypted", problems[2])
        self.assertEqual(self.view.entries(), [])  # by the password's fields, not in the conversation
        self.assertEqual(self.connection.sent(), [])

    def test_a_refused_password_change_is_told_as_such(self) -> None:
        self.log_in()
        self.presenter._warned = "tcp:example.org:8123"
        self.presenter.set_password("long enough", "long enough")
        self.presenter.choose_mode(Kind.BROADCAST)
        self.presenter.send("hi all")
        self.connection.server_says("ERROR SERVER_ERROR :could not store it", "SENT 2 -")
        self.assertEqual(
            self.view.last("show_password_problem"), ("Password not changed: could not store it",)
        )
        self.assertEqual(self.view.entries(), [("sent", "you to everyone: hi all")])

    def test_the_log_marks_protected_names(self) -> None:
        self.presenter.login("alice", "tcp:localhost:8123")
        self.connection.server_says(
            "WELCOME alice :hi", "USER alice online protected", "USER bob offline protected", "ENDUSERS 2"
        )
        self.assertEqual(
            self.view.last("show_users"),
            ([UserItem("alice", True, True, True), UserItem("bob", False, False, True)],),
        )
        self.assertEqual(self.view.last("show_account"), (True,))

    def test_the_marks_follow_account_lines(self) -> None:
        self.log_in()
        self.connection.server_says("ACCOUNT Bob protected")
        users = self.view.last("show_users")[0]
        self.assertIn(UserItem("bob", True, False, True), users)  # type: ignore[operator]
        self.connection.server_says("ACCOUNT bob unprotected")
        users = self.view.last("show_users")[0]
        self.assertIn(UserItem("bob", True, False, False), users)  # type: ignore[operator]
        self.assertEqual(self.view.entries(), [])  # the list shows it

    def test_the_operator_removes_this_users_password(self) -> None:
        self.presenter.login("alice", "tcp:localhost:8123", "alice's secret")
        self.connection.server_says("WELCOME alice :hi", "USER alice online protected", "ENDUSERS 1")
        self.assertEqual(self.view.last("show_account"), (True,))
        self.connection.server_says(
            "NOTICE :the operator removed the password of alice: forgotten", "ACCOUNT alice unprotected"
        )
        self.assertEqual(self.view.last("show_account"), (False,))  # "Protect my name…" again
        self.assertEqual(self.view.last("show_users"), ([UserItem("alice", True, True, False)],))
        self.assertEqual(
            self.view.entries()[-1],
            ("warning", "alice is no longer protected: set a password again to keep it yours."),
        )
        self.connection.close()
        self.presenter.reconnect()
        self.assertEqual(self.connection.passwords[-1], None)  # the old password is not sent again

    def test_the_sender_sees_whether_a_message_will_wait(self) -> None:
        self.log_in()
        self.presenter.choose_mode(Kind.MULTICAST)
        self.presenter.choose_recipients(("bob", "dave"))
        self.assertEqual(self.presenter.addressees(), "bob, dave (offline, will not get it: dave)")
        self.connection.server_says("ACCOUNT dave protected")
        self.assertEqual(self.presenter.addressees(), "bob, dave (offline, gets it when back: dave)")
        self.assertEqual(self.view.last("show_mode"), (Kind.MULTICAST, ("bob", "dave")))  # told again
        self.connection.server_says("JOINED dave")
        self.assertEqual(self.presenter.addressees(), "bob, dave")
        self.presenter.choose_mode(Kind.BROADCAST)
        self.assertEqual(self.presenter.addressees(), "everyone connected")

    def test_this_users_own_change_is_told_once(self) -> None:
        self.presenter.login("alice", "tcp:localhost:8123")
        self.connection.server_says("WELCOME alice :hi", "USER alice online", "ENDUSERS 1")
        self.presenter.set_password("alice's secret", "alice's secret")
        self.connection.server_says("ACCOUNT alice protected", "PROTECTED alice :alice is protected")
        self.assertEqual(
            self.view.entries()[1:], [("info", "alice is protected: log in with your password from now on.")]
        )
        self.assertEqual(self.view.last("show_account"), (True,))


class OfflineDeliveryTests(PresenterTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock.advance(time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1)))  # 09:30 local time
        self.log_in()

    def test_sent_tells_who_gets_it_later(self) -> None:
        self.presenter.choose_mode(Kind.MULTICAST)
        self.presenter.choose_recipients(("bob", "dave"))
        self.presenter.send("standup at 10")
        self.connection.server_says("SENT 0 bob,dave dave")
        self.assertEqual(
            self.view.entries()[1:],
            [
                ("info", "not connected, will get it when back: dave"),
                ("warning", "not connected, did not get it: bob"),
            ],
        )

    def test_delayed_messages_are_shown_apart_with_their_time_and_acknowledged(self) -> None:
        yesterday = time.mktime((2026, 12, 1, 17, 2, 0, 0, 0, -1))
        stamp = wire.format_time(yesterday)
        self.connection.server_says(
            f"DELAYED 7 {stamp} bob unicast alice :are you in tomorrow?",
            f"DELAYED 8 {stamp} carol multicast alice,bob :lunch?",
            "ENDDELAYED 0",
        )
        entries = [args[0] for name, args in self.view.calls if name == "append"]
        self.assertEqual(
            [(e.style, e.text, e.label) for e in entries],  # type: ignore[attr-defined]
            [
                ("info", "While you were away:", ""),
                ("direct", "bob to you: are you in tomorrow?", "yesterday 17:02"),
                ("group", "carol to you and bob: lunch?", "yesterday 17:02"),
            ],
        )
        self.assertEqual(self.connection.sent(), ["ACK 8"])
        self.view.calls.clear()
        self.connection.server_says(f"DELAYED 8 {stamp} carol multicast alice,bob :lunch?", "ENDDELAYED 0")
        self.assertEqual(self.view.entries(), [])  # never shown twice
        self.assertEqual(self.connection.sent(), ["ACK 8"])  # still acknowledged
        self.assertTrue(self.presenter.reply_all())
        self.assertEqual(self.presenter.selected, ("carol", "bob"))

    def test_times_as_a_reader_says_them(self) -> None:
        now = time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1))
        for then, said in [
            ((2026, 12, 2, 8, 5), "today 08:05"),
            ((2026, 12, 1, 23, 59), "yesterday 23:59"),
            ((2026, 11, 23, 17, 2), "Mon 23 Nov 17:02"),
            ((2025, 11, 30, 17, 2), "30 Nov 2025 17:02"),
        ]:
            self.assertEqual(describe_time(time.mktime((*then, 0, 0, 0, -1)), now), said)


def _millis(*when: int) -> str:
    """A local time as version 9 gives it (UTC, to the millisecond)."""
    return wire.format_millis(time.mktime((*when, 0, 0, 0, -1)))


def shown(view: Recorder) -> list[tuple[str, str]]:
    """The conversation as ``view`` holds it, after every append and insert."""
    lines: list[Entry] = []
    for name, args in view.calls:
        if name == "append":
            lines.append(args[0])  # type: ignore[arg-type]
        elif name == "insert":
            lines.insert(args[0], args[1])  # type: ignore[arg-type, call-overload]
    return [(e.style, e.text) for e in lines]


class ClientProtocolVersionTests(ProtocolTestCase):
    def test_version_9_lines(self) -> None:
        at = "2026-12-02T08:14:03.116Z"
        self.feed(
            "VERSION 9 90",
            "WELCOME alice :hi",
            "HISTMSG #all bob broadcast * 01A 2026-12-02T08:14:03.116Z :coffee's on",
            "ENDHISTORY #all 1 more",
            "MSG bob unicast alice 01B 2026-12-02T08:14:03.116Z future :hi there",
            "SENT 1 - - 01C 2026-12-02T08:14:03.116Z",
            "DELAYED 7 2026-12-01T17:02:05Z bob unicast alice 01D :are you in?",
            "DELAYED 8 2026-12-01T17:02:05Z bob unicast alice - :older",
            "ENDHISTORY alice,bob 0 start",
        )
        stamp = Stamp("01A", wire.parse_millis(at))
        delayed_at = wire.parse_time("2026-12-01T17:02:05Z")
        self.assertEqual(
            self.listener.calls,
            [
                ("version", (9, 90)),
                ("welcomed", ("alice",)),
                ("history_message", ("#all", "bob", Kind.BROADCAST, (), stamp, "coffee's on")),
                ("history_end", ("#all", True)),
                ("message", ("bob", Kind.UNICAST, ("alice",), "hi there", Stamp("01B", stamp.at))),
                ("sent", (1, (), (), Stamp("01C", stamp.at))),
                ("delayed", (7, delayed_at, "bob", Kind.UNICAST, ("alice",), "are you in?", "01D")),
                ("delayed", (8, delayed_at, "bob", Kind.UNICAST, ("alice",), "older", "")),
                ("history_end", ("alice,bob", False)),
            ],
        )
        self.transport.clear()
        self.protocol.history("alice,bob", "01A", 20)
        self.protocol.history("#all", "*", None)
        self.assertEqual(self.transport.value(), b"HISTORY alice,bob 01A 20\r\nHISTORY #all *\r\n")

    def test_conversations(self) -> None:
        at = "2026-12-02T08:43:10.002Z"
        self.feed(
            "VERSION 9 90",
            "WELCOME alice :hi",
            f"CONVERSATION alice,carol 01M8TYR19J1HB1YED1Z05M91H8 {at}",
            f"CONVERSATION #all 01M8TXPV523W8Z82R03JPAA6E4 {at}",
            "ENDCONVERSATIONS 2",
        )
        stamp = wire.parse_millis(at)
        found = [
            Listed("alice,carol", Stamp("01M8TYR19J1HB1YED1Z05M91H8", stamp)),
            Listed("#all", Stamp("01M8TXPV523W8Z82R03JPAA6E4", stamp)),
        ]
        self.assertEqual(self.listener.calls[-1], ("conversations", (found,)))
        self.transport.clear()
        self.protocol.conversations()
        self.assertEqual(self.transport.value(), b"CONVERSATIONS\r\n")

    def test_a_hostile_answer_to_conversations_is_read_within_bounds(self) -> None:
        """Lines it cannot read are skipped; past the protocol's 100 lines, the rest are; the count
        the server claims is not believed."""
        at = "2026-12-02T08:43:10.002Z"
        self.feed("VERSION 9 90", "WELCOME alice :hi")
        self.protocol.dataReceived(b"CONVERSATION alice,b\xffb 01A " + at.encode() + b"\r\n")
        self.feed(
            "CONVERSATION alice,bob",
            "CONVERSATION alice,bob 01A yesterday",
            "CONVERSATION alice,bob 01A 0000-00-00T00:00:00Z",
            *(f"CONVERSATION alice,u{n} 01A {at}" for n in range(150)),
            "ENDCONVERSATIONS 99999999999999999999999",
            "ENDCONVERSATIONS",
        )
        answers = [args[0] for name, args in self.listener.calls if name == "conversations"]
        self.assertEqual([len(found) for found in answers], [100, 0])  # type: ignore[arg-type]
        self.assertEqual(answers[0][-1].conversation, "alice,u99")  # type: ignore[index]

    def test_a_version_8_server_refuses_version_and_speaks_version_8(self) -> None:
        self.feed("ERROR UNKNOWN_COMMAND :unknown command VERSION", "WELCOME alice :hi", "MSG bob unicast alice :hi")
        self.assertEqual(
            self.listener.calls,
            [("version", (8, 0)), ("welcomed", ("alice",)), ("message", ("bob", Kind.UNICAST, ("alice",), "hi", None))],
        )


class HistoryTests(PresenterTestCase):
    """History in the presenter, as a view with inserts shows it."""

    def setUp(self) -> None:
        super().setUp()
        self.clock.advance(time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1)))  # 09:30 local time

    def log_in_9(self, *catch_up: str, protected: bool = True, listed: tuple[str, ...] = ()) -> None:
        """Log in (the catch-up, then the answer to CONVERSATIONS: the ``listed`` lines)."""
        self.presenter.login("alice", "tcp:example.org:8123")
        mark = " protected" if protected else ""
        self.connection.server_says(
            "VERSION 9 90",
            "WELCOME alice :hi",
            f"USER alice online{mark}",
            "USER bob online",
            "USER carol online",
            "ENDUSERS 3",
            *catch_up,
            *listed,
            f"ENDCONVERSATIONS {len(listed)}",
        )
        self.connection.sent()

    def shown(self) -> list[tuple[str, str]]:
        return shown(self.view)

    def test_the_catch_up_is_shown_in_time_under_its_days_and_each_message_once(self) -> None:
        self.log_in_9(
            f"HISTMSG #all bob broadcast * 01A {_millis(2026, 12, 1, 17, 2)} :coffee's on",
            f"HISTMSG #all carol broadcast * 01B {_millis(2026, 12, 2, 8, 14)} :standup in 5",
            "ENDHISTORY #all 2 more",
            f"MSG carol broadcast * 01B {_millis(2026, 12, 2, 8, 14)} :standup in 5",  # the same message
            f"MSG bob broadcast * 01C {_millis(2026, 12, 2, 9, 30)} :now",
        )
        self.assertEqual(
            self.shown(),
            [
                ("day", "Yesterday"),
                ("broadcast", "bob to everyone: coffee's on"),
                ("day", "Today"),
                ("broadcast", "carol to everyone: standup in 5"),
                ("info", "Connected to example.org:8123 as alice"),
                ("broadcast", "bob to everyone: now"),
            ],
        )
        history = [args[1] for name, args in self.view.calls if name == "insert"]
        days = [e.day for e in history if e.style != "day"]  # type: ignore[attr-defined]
        self.assertEqual(days, ["Yesterday", "Today"])  # for a view that cannot place them

    def test_opening_a_conversation_shows_its_history_and_scrolling_up_pages_back(self) -> None:
        self.log_in_9("ENDHISTORY #all 0 start")
        self.presenter.choose_recipients(("bob",))
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob *"])
        self.presenter.load_earlier()  # the page is coming: not asked twice
        self.assertEqual(self.connection.sent(), [])
        self.connection.server_says(
            f"HISTMSG alice,bob alice unicast bob 01E {_millis(2026, 11, 30, 16, 2)} :release notes?",
            f"HISTMSG alice,bob bob unicast alice 01F {_millis(2026, 12, 2, 8, 20)} :can you review #42?",
            "ENDHISTORY alice,bob 2 more",
        )
        self.presenter.choose_recipients(("bob",))  # opened already
        self.presenter.load_earlier()
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob 01E"])
        self.connection.server_says(
            f"HISTMSG alice,bob bob unicast alice 01D {_millis(2026, 11, 30, 15, 0)} :hello",
            "ENDHISTORY alice,bob 1 start",
        )
        self.presenter.load_earlier()  # the start: nothing more to ask
        self.assertEqual(self.connection.sent(), [])
        shown = self.shown()
        self.assertEqual(
            shown,
            [
                ("day", "30 November"),
                ("direct", "bob to you: hello"),
                ("sent", "you to bob: release notes?"),
                ("day", "Today"),
                ("direct", "bob to you: can you review #42?"),
                ("info", "Connected to example.org:8123 as alice"),
            ],
        )
        self.presenter.history("bob")  # asked for: the start is told
        self.assertEqual(self.shown()[-1], ("info", "No earlier messages with bob."))

    def test_a_message_delayed_sent_or_live_is_not_shown_again_from_the_history(self) -> None:
        self.log_in_9(
            "ENDHISTORY #all 0 start",
            f"DELAYED 3 2026-12-02T07:00:00Z bob unicast alice 01G :while you were away",
            "ENDDELAYED 0",
        )
        self.presenter.choose_recipients(("bob",))
        self.presenter.send("hi bob")
        self.connection.server_says(
            f"HISTMSG alice,bob bob unicast alice 01G {_millis(2026, 12, 2, 7, 0)} :while you were away",
            "ENDHISTORY alice,bob 1 more",
            f"SENT 1 - - 01H {_millis(2026, 12, 2, 9, 30)}",
            f"MSG bob unicast alice 01I {_millis(2026, 12, 2, 9, 30)} :back",
        )
        self.presenter.history("bob")
        self.assertEqual(self.connection.sent()[-1], "HISTORY alice,bob 01G")
        self.connection.server_says(
            f"HISTMSG alice,bob alice unicast bob 01H {_millis(2026, 12, 2, 9, 30)} :hi bob",
            f"HISTMSG alice,bob bob unicast alice 01I {_millis(2026, 12, 2, 9, 30)} :back",
            "ENDHISTORY alice,bob 2 start",
        )
        texts = [text for _, text in self.shown()]
        for said in ("bob to you: while you were away", "you to bob: hi bob", "bob to you: back"):
            self.assertEqual(texts.count(said), 1, said)

    def test_an_unprotected_name_is_told_why_it_has_no_direct_history(self) -> None:
        self.log_in_9("ENDHISTORY #all 0 start", protected=False)
        self.presenter.choose_recipients(("bob",))
        self.presenter.choose_recipients(("carol",))
        self.assertEqual(self.connection.sent(), [])  # not asked: the server would refuse
        said = [text for style, text in self.shown() if "not protected" in text]
        self.assertEqual(said, [UNPROTECTED_HISTORY])  # once
        self.presenter.choose_mode(Kind.BROADCAST)  # #all's history is everyone's
        self.assertEqual(self.connection.sent(), ["HISTORY #all *"])

    def test_refusals_are_told_plainly(self) -> None:
        self.log_in_9("ENDHISTORY #all 0 start")
        self.presenter.choose_recipients(("bob",))
        self.connection.server_says("ERROR HISTORY_FORBIDDEN :protect your name (PASSWORD) to keep ...")
        self.assertEqual(self.shown()[-1], ("warning", UNPROTECTED_HISTORY))
        self.presenter.history("#all")
        self.connection.server_says("ERROR HISTORY_OFF :this server keeps no history")
        self.assertEqual(self.shown()[-1], ("warning", "This server keeps no history."))
        self.presenter.history("#all", 5)  # not asked again
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob *", "HISTORY #all *"])

    def test_a_version_8_server_has_no_history(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.connection.server_says(
            "ERROR UNKNOWN_COMMAND :unknown command VERSION",
            "WELCOME alice :hi",
            "USER alice online protected",
            "USER bob online",
            "ENDUSERS 2",
            "MSG bob unicast alice :hi",
        )
        self.assertIs(self.presenter.phase, Phase.CONNECTED)
        self.connection.sent()
        self.presenter.choose_recipients(("bob",))
        self.presenter.history("bob")
        self.assertEqual(self.connection.sent(), [])
        self.assertEqual(
            self.shown()[-2:], [("direct", "bob to you: hi"), ("warning", "This server keeps no history.")]
        )

    def test_the_conversations_are_asked_at_login_and_listed_newest_first(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.connection.server_says(
            "VERSION 9 90",
            "WELCOME alice :hi",
            "USER alice online protected",
            "USER bob online",
            "USER Carol online",
            "ENDUSERS 3",
        )
        self.assertEqual(self.connection.sent(), ["VERSION 13", "HELLO alice", "CONVERSATIONS"])
        self.connection.server_says(
            "ENDHISTORY #all 0 start",
            f"CONVERSATION alice,carol 01C {_millis(2026, 12, 2, 8, 43)}",
            f"CONVERSATION #all 01B {_millis(2026, 12, 2, 8, 25)}",
            f"CONVERSATION alice,bob,carol 01A {_millis(2026, 12, 1, 17, 2)}",
            f"CONVERSATION alice 019 {_millis(2026, 11, 30, 9, 0)}",
            "ENDCONVERSATIONS 4",
        )
        self.assertEqual(
            self.view.last("show_conversations"),
            (
                [
                    ConversationItem("alice,carol", "Carol", "today 08:43"),
                    ConversationItem("#all", "everyone", "today 08:25"),
                    ConversationItem("alice,bob,carol", "bob and Carol", "yesterday 17:02"),
                    ConversationItem("alice", "yourself", "Mon 30 Nov 09:00"),
                ],
            ),
        )

    def test_opening_a_listed_conversation_shows_its_history_as_picking_its_names_does(self) -> None:
        listed = f"CONVERSATION alice,bob,carol 01A {_millis(2026, 12, 1, 17, 2)}"
        self.log_in_9("ENDHISTORY #all 0 start", listed=(listed,))
        self.presenter.open_conversation("alice,bob,carol")
        self.assertEqual((self.presenter.mode, self.presenter.selected), (Kind.MULTICAST, ("bob", "carol")))
        self.assertEqual(self.view.last("show_mode"), (Kind.MULTICAST, ("bob", "carol")))
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob,carol *"])
        self.presenter.open_conversation("alice")  # with oneself
        self.assertEqual((self.presenter.mode, self.presenter.selected), (Kind.UNICAST, ("alice",)))
        self.presenter.open_conversation("#all")
        self.assertEqual((self.presenter.mode, self.presenter.selected), (Kind.BROADCAST, ()))
        self.assertEqual(self.connection.sent(), ["HISTORY alice *", "HISTORY #all *"])

    def test_a_hostile_list_of_conversations_shows_only_what_can_be_opened(self) -> None:
        """Odd names, conversations without this user, of more names than a message can have,
        repeated, or at the edges of time, are left out or shown as they are; nothing breaks."""
        crowd = ",".join(sorted(["alice", *(f"u{n}" for n in range(40))]))
        self.log_in_9(
            "ENDHISTORY #all 0 start",
            listed=(
                f"CONVERSATION alice,bob 01A {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION alice,bob 01A {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION alice,b\u202eob 01B {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION Alice,Bob 01C {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION bob,carol 01D {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION alice,,bob 01E {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION #ALL 01F {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION {crowd} 01G {_millis(2026, 12, 2, 8, 0)}",
                "CONVERSATION alice,carol 01H 9999-12-31T23:59:59.999Z",
                "CONVERSATION #all 01I 0001-01-01T00:00:00.000Z",
            ),
        )
        items = self.view.last("show_conversations")[0]
        self.assertEqual(
            [(item.conversation, item.who) for item in items],  # type: ignore[attr-defined]
            [("alice,carol", "carol"), ("alice,bob", "bob"), ("#all", "everyone")],  # newest first
        )
        self.connection.server_says("ENDCONVERSATIONS 1")  # not asked for: nothing shown
        self.assertEqual(len([name for name, _ in self.view.calls if name == "show_conversations"]), 1)
        self.presenter.choose_recipients(("bob",))  # the answers still match their commands
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob *"])

    def test_each_message_brings_its_conversation_to_the_top_of_the_list(self) -> None:
        self.log_in_9(
            "ENDHISTORY #all 0 start",
            listed=(
                f"CONVERSATION alice,bob 01B {_millis(2026, 12, 2, 8, 0)}",
                f"CONVERSATION #all 01A {_millis(2026, 12, 1, 8, 0)}",
            ),
        )

        def listed() -> list[tuple[str, str]]:
            items = self.view.last("show_conversations")[0]
            return [(item.who, item.when) for item in items]  # type: ignore[attr-defined]

        self.connection.server_says(f"MSG carol unicast alice 01C {_millis(2026, 12, 2, 9, 0)} :hi")
        expected = [("carol", "today 09:00"), ("bob", "today 08:00"), ("everyone", "yesterday 08:00")]
        self.assertEqual(listed(), expected)
        self.clock.advance(60)
        self.presenter.choose_mode(Kind.BROADCAST)
        self.presenter.send("all of you")
        self.connection.server_says("ENDHISTORY #all 0 start", "SENT 2 -")  # no id: the time it came
        self.assertEqual(listed()[0], ("everyone", "today 09:31"))
        self.connection.server_says("DELAYED 4 2026-12-01T06:00:00Z bob unicast alice 01D :old")
        self.assertEqual(listed()[2], ("bob", "today 08:00"))  # not older than it was
        self.connection.server_says(f"MSG bob multicast alice,m\u00e9 01E {_millis(2026, 12, 2, 9, 0)} :odd")
        self.assertEqual(len(listed()), 3)  # no conversation of a name that cannot be

    def test_an_unprotected_name_lists_only_everyone(self) -> None:
        listed = f"CONVERSATION #all 01A {_millis(2026, 12, 1, 8, 0)}"
        self.log_in_9("ENDHISTORY #all 0 start", protected=False, listed=(listed,))
        self.connection.server_says(f"MSG bob unicast alice 01C {_millis(2026, 12, 2, 9, 0)} :hi")
        items = self.view.last("show_conversations")[0]
        self.assertEqual([item.conversation for item in items], ["#all"])  # type: ignore[attr-defined]

    def test_conversations_refused(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.connection.server_says(
            "VERSION 9 90", "WELCOME alice :hi", "USER alice online", "ENDUSERS 1", "ENDHISTORY #all 0 more"
        )
        self.connection.server_says("ERROR SERVER_ERROR :the server's state is away")
        said = ("warning", "Your conversations cannot be listed now: the server's state is away")
        self.assertEqual(self.shown()[-1], said)
        self.assertEqual([name for name, _ in self.view.calls if name == "show_conversations"], [])

    def test_no_conversations_asked_of_a_server_keeping_no_history(self) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.connection.server_says("VERSION 9 0", "WELCOME alice :hi", "USER alice online", "ENDUSERS 1")
        self.assertEqual(self.connection.sent(), ["VERSION 13", "HELLO alice"])

    def test_days_as_headings_say_them(self) -> None:
        now = time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1))
        for then, said in [
            ((2026, 12, 2, 0, 0), "Today"),
            ((2026, 12, 1, 23, 59), "Yesterday"),
            ((2026, 11, 30, 12, 0), "30 November"),
            ((2025, 12, 3, 12, 0), "3 December 2025"),
        ]:
            self.assertEqual(describe_day(time.mktime((*then, 0, 0, 0, -1)), now), said)


class HistoryEndToEndTests(TestCase):
    """The presenter against ``twistd -n msgsvc`` (history kept, by default)."""

    def setUp(self) -> None:
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.port = free_port()
        args = ["--db", os.path.join(folder, "names.sqlite3"), "--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        run_msgsvc(self, folder, args, [self.port])

    async def until(self, what: str, condition: Callable[[], bool]) -> None:
        for _ in range(1000):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out waiting for {what}")

    async def test_away_then_back_the_catch_up_shows_once(self) -> None:
        view = Recorder()
        alice = ChatPresenter(view, endpoint_connector(reactor), reactor)  # type: ignore[arg-type]
        server = f"tcp:127.0.0.1:{self.port}"
        alice.login("alice", server)
        await self.until("alice connected", lambda: alice.phase is Phase.CONNECTED)
        await alice.quit()
        bob = Peer(self.port)
        self.addCleanup(bob.close)
        bob.send("HELLO bob")
        bob.until("ENDUSERS")
        bob.send("BROADCAST :while you were out")
        bob.until("SENT")

        alice.reconnect()
        said = ("broadcast", "bob to everyone: while you were out")
        await self.until("the catch-up", lambda: said in shown(view))
        bob.send("BROADCAST :welcome back")
        await self.until("a live message", lambda: ("broadcast", "bob to everyone: welcome back") in shown(view))
        alice.choose_mode(Kind.BROADCAST)  # #all opened: its latest page is the catch-up, not asked again
        alice.history("#all")  # what came before it: nothing more
        await self.until("the start", lambda: ("info", "No earlier messages to everyone.") in shown(view))
        self.assertEqual(shown(view).count(said), 1)
        connected = shown(view).index(("info", f"Connected to 127.0.0.1:{self.port} as alice"), 1)
        self.assertLess(shown(view).index(said), connected)  # sent before alice came back
        await alice.quit()


#: Message ids in time order (version 9's form: READ takes only these).
ID1, ID2, ID3, ID4 = (f"01M8V0C6N3D0SNYQ1V4XC1XSA{n}" for n in range(1, 5))


class ClientProtocolVersion10Tests(ProtocolTestCase):
    name = "carol"

    def test_read_both_ways_and_unread_counts(self) -> None:
        at = "2026-12-02T09:02:10.906Z"
        self.feed(
            "VERSION 10 90",
            "WELCOME carol :hi",
            f"READ alice,carol {ID2}",
            f"CONVERSATION alice,carol {ID2} {at} 0 {ID2}",
            f"CONVERSATION #all {ID1} {at} 2 -",
            "ENDCONVERSATIONS 2",
        )
        stamp = wire.parse_millis(at)
        self.assertEqual(
            self.listener.calls[2:],
            [
                ("read", ("alice,carol", ID2)),
                (
                    "conversations",
                    ([Listed("alice,carol", Stamp(ID2, stamp), 0, ID2), Listed("#all", Stamp(ID1, stamp), 2, None)],),
                ),
            ],
        )
        self.transport.clear()
        self.protocol.read("alice", ID3)
        self.assertEqual(self.transport.value(), f"READ alice {ID3}\r\n".encode())

    def test_a_hostile_server_s_read_and_counts_are_skipped_or_bounded(self) -> None:
        at = "2026-12-02T09:02:10.906Z"
        self.feed(
            "VERSION 10 90",
            "WELCOME carol :hi",
            "READ alice,carol",
            "READ alice,carol 01A",
            "READ alice,carol *",
            f"CONVERSATION #all {ID1} {at} -3 -",
            f"CONVERSATION #all {ID1} {at} many -",
            f"CONVERSATION #all {ID1} {at} 5 yesterday",
            f"CONVERSATION #all {ID1} {at} {'9' * 5000} -",
            f"CONVERSATION alice,carol {ID1} {at} 99999999999 {ID1.lower()}",
            "ENDCONVERSATIONS 1",
        )
        self.assertEqual(
            self.listener.calls[2:],
            [("conversations", ([Listed("alice,carol", Stamp(ID1, wire.parse_millis(at)), 100, ID1)],))],
        )

    def test_read_from_a_version_9_server_is_not_believed(self) -> None:
        self.feed("VERSION 9 90", "WELCOME carol :hi", f"READ alice,carol {ID2}")
        self.assertEqual([name for name, _ in self.listener.calls], ["version", "welcomed"])


class DevicesTests(PresenterTestCase):
    """Version 10: several sessions of one account, as one of them shows them."""

    def setUp(self) -> None:
        super().setUp()
        self.clock.advance(time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1)))

    def log_in_10(self, *catch_up: str, listed: tuple[str, ...] = (), version: int = 10) -> None:
        self.presenter.login("alice", "tcp:example.org:8123")
        self.connection.server_says(
            f"VERSION {version} 90",
            "WELCOME alice :hi",
            "USER alice online protected",
            "USER bob online",
            "USER carol online",
            "ENDUSERS 3",
            *catch_up,
            "ENDHISTORY #all 0 more",
            *listed,
            f"ENDCONVERSATIONS {len(listed)}",
        )
        self.connection.sent()

    def counts(self) -> dict[str, int]:
        items = self.view.last("show_conversations")[0]
        return {item.conversation: item.unread for item in items}  # type: ignore[attr-defined]

    def test_a_message_sent_from_another_session_shows_as_mine(self) -> None:
        self.log_in_10()
        self.connection.server_says(
            f"MSG alice unicast bob {ID1} {_millis(2026, 12, 2, 9, 1)} :on my way",
            f"MSG ALICE multicast bob,carol {ID2} {_millis(2026, 12, 2, 9, 2)} :both of you",
            f"MSG alice unicast bob {ID1} {_millis(2026, 12, 2, 9, 1)} :on my way",  # once
        )
        self.assertEqual(
            self.view.entries()[-2:], [("sent", "you to bob: on my way"), ("sent", "you to bob, carol: both of you")]
        )
        self.assertEqual(self.counts(), {"alice,bob,carol": 0, "alice,bob": 0})  # never unread
        self.assertEqual(self.connection.sent(), [])

    def test_unread_counts_from_the_list_and_live_messages_clear_on_read_from_another_session(self) -> None:
        at = _millis(2026, 12, 2, 9, 0)
        self.log_in_10(listed=(f"CONVERSATION alice,bob {ID1} {at} 2 -", f"CONVERSATION #all {ID1} {at} 0 -"))
        self.assertEqual(self.counts(), {"alice,bob": 2, "#all": 0})
        self.connection.server_says(
            f"MSG bob unicast alice {ID2} {at} :one more",
            f"MSG carol unicast alice {ID3} {at} :hi",
            f"MSG carol unicast alice {ID3} {at} :hi",  # the same message, counted once
        )
        self.assertEqual(self.counts(), {"alice,bob": 3, "alice,carol": 1, "#all": 0})
        self.connection.server_says(f"READ alice,bob {ID2}")  # the phone read them
        self.assertEqual(self.counts(), {"alice,bob": 0, "alice,carol": 1, "#all": 0})
        self.connection.server_says(f"READ alice,carol {ID2}")  # not up to the message known here
        self.assertEqual(self.counts()["alice,carol"], 1)
        self.assertEqual(self.connection.sent(), [])  # nobody looks

    def test_the_open_conversation_is_read_while_the_user_looks(self) -> None:
        at = _millis(2026, 12, 2, 9, 0)
        self.log_in_10(listed=(f"CONVERSATION alice,bob {ID1} {at} 1 -",))
        self.presenter.choose_recipients(("bob",))
        self.connection.server_says(
            f"HISTMSG alice,bob bob unicast alice {ID1} {at} :lunch?", "ENDHISTORY alice,bob 0 start"
        )
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob *"])  # not looking: not read
        self.assertEqual(self.counts(), {"alice,bob": 1})
        self.presenter.look(True)
        self.assertEqual(self.connection.sent(), [f"READ alice,bob {ID1}"])
        self.assertEqual(self.counts(), {"alice,bob": 0})
        self.connection.server_says(
            f"READ alice,bob {ID1}",  # the answer
            f"MSG bob unicast alice {ID2} {at} :now?",
            f"MSG carol unicast alice {ID3} {at} :and me",  # not the open conversation
            f"SENT 1 - - {ID4} {at}",  # not asked: ignored
        )
        self.assertEqual(self.counts(), {"alice,carol": 1, "alice,bob": 0})  # read at once
        self.assertEqual(self.connection.sent(), [])  # said a second after the last READ
        self.clock.advance(1)
        self.assertEqual(self.connection.sent(), [f"READ alice,bob {ID2}"])
        self.presenter.look(False)
        self.connection.server_says(f"READ alice,bob {ID2}", f"MSG bob unicast alice {ID4} {at} :hello?")
        self.assertEqual(self.connection.sent(), [])
        self.assertEqual(self.counts()["alice,bob"], 1)
        self.presenter.send("yes")  # SENT still answers the send: the READs were answered
        self.connection.server_says(f"SENT 1 - - {ID4}1 {at}")
        self.assertEqual(self.view.entries()[-1], ("sent", "you to bob: yes"))

    def test_a_view_showing_everything_reads_what_it_shows(self) -> None:
        self.presenter = ChatPresenter(self.view, self.connection, self.clock, "alice", shows_everything=True)  # type: ignore[arg-type]
        self.presenter.look(True)
        at = _millis(2026, 12, 2, 9, 0)
        self.log_in_10(
            f"HISTMSG alice,bob bob unicast alice {ID1} {at} :lunch?",
            f"ENDHISTORY alice,bob 0 start",
            listed=(f"CONVERSATION alice,bob {ID1} {at} 1 -",),  # written before the READ
        )
        self.assertEqual(self.counts(), {"alice,bob": 0})
        self.connection.server_says(f"READ alice,bob {ID1}", f"MSG carol broadcast * {ID2} {at} :coffee")
        self.assertEqual(self.counts(), {"#all": 0, "alice,bob": 0})
        self.clock.advance(1)
        self.assertEqual(self.connection.sent(), [f"READ #all {ID2}"])

    def test_messages_that_come_fast_are_read_with_a_read_a_second(self) -> None:
        self.presenter = ChatPresenter(self.view, self.connection, self.clock, "alice", shows_everything=True)  # type: ignore[arg-type]
        self.presenter.look(True)
        self.log_in_10()
        at = _millis(2026, 12, 2, 9, 0)
        ids = [f"01M8V0C6N3D0SNYQ1V4XC1X{n:03}" for n in range(100)]
        for second in range(3):
            for n in range(second * 30, second * 30 + 30):
                self.connection.server_says(f"MSG bob broadcast * {ids[n]} {at} :news {n}")
                self.clock.advance(1 / 30)
        sent = self.connection.sent()  # 90 messages in 3 seconds: 3 READs, each of the newest then
        self.assertEqual(len(sent), 3, sent)
        self.assertEqual(sent[0], f"READ #all {ids[0]}")
        self.clock.advance(1)
        self.assertEqual(self.connection.sent(), [f"READ #all {ids[89]}"])

    def test_no_read_to_a_version_9_server_nor_for_a_name_not_protected(self) -> None:
        self.presenter.look(True)
        self.log_in_10(version=9)
        self.presenter.choose_mode(Kind.BROADCAST)
        self.connection.sent()  # its history asked
        self.connection.server_says(f"MSG bob broadcast * {ID2} {_millis(2026, 12, 2, 9, 0)} :coffee")
        self.assertEqual(self.connection.sent(), [])
        self.assertEqual(self.counts(), {"#all": 0})

    def test_a_hostile_read_changes_nothing_it_should_not(self) -> None:
        at = _millis(2026, 12, 2, 9, 0)
        self.log_in_10(listed=(f"CONVERSATION alice,bob {ID1} {at} 2 -",))
        self.connection.server_says(
            f"READ bob,carol {ID4}",  # not alice's
            f"READ ALICE,BOB {ID4}",  # not as the server names it
            f"READ alice,bob,x/y {ID4}",
            "READ #all 7ZZZZZZZZZZZZZZZZZZZZZZZZZ",  # as far as ids go: nothing after it counted
            f"MSG bob broadcast * {ID2} {at} :coffee",
        )
        self.assertEqual(self.counts(), {"alice,bob": 2, "#all": 0})
        self.assertEqual(self.connection.sent(), [])

    def test_sessions_full_in_words(self) -> None:
        self.presenter.login("alice", "tcp:localhost:8123", "alice's secret")
        self.connection.server_says(
            "VERSION 10 90", "ERROR SESSIONS_FULL :alice has 10 sessions", "BYE :alice has 10 sessions"
        )
        self.connection.close()
        problem = self.view.last("show_login")[2]
        self.assertIn("alice is connected on as many devices as this server allows at once", problem)
