"""The terminal client's view: the specification's sending steps, commands and completion, line by line."""

from __future__ import annotations

import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from msgsvc import wire
from msgsvc.client.presenter import ChatPresenter
from msgsvc.client.text import Fragments, TextView, cells, sender_style, wrap

from .support.fakes import FakeConnection


class TextClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.output: list[str] = []
        self.quits = 0
        self.lines: list[Fragments] = []  # as printed, with their styles
        self.view = TextView(self.print, width=lambda: 80)
        self.connection = FakeConnection()
        self.presenter = ChatPresenter(self.view, self.connection, Clock(), "", "tcp:h:1")
        self.view.bind(self.presenter, self.on_quit)
        self.presenter.start()

    def print(self, fragments: Fragments) -> None:
        self.lines.append(fragments)
        self.output.append("".join(text for _, text in fragments) + "\n")

    def on_quit(self) -> None:
        self.quits += 1

    def screen(self) -> str:
        """What was printed since the last look, and the prompt."""
        text = "".join(self.output) + self.view.prompt()
        self.output.clear()
        return text

    def type(self, *lines: str) -> None:
        for line in lines:
            self.view.line(line)

    def connect(self, name: str = "bob") -> None:
        self.type(name)
        self.connection.server_says(
            f"WELCOME {name} :hi",
            "USER alice online",
            f"USER {name} online",
            "USER dave offline",
            "ENDUSERS 3",
        )
        self.connection.sent()

    def test_asks_for_a_username_again_when_refused(self) -> None:
        self.assertEqual(self.screen(), "Username: ")
        self.type("9lives")
        self.assertIn("starting with a letter", self.screen())
        self.type("alice")
        self.connection.server_says("ERROR USERNAME_TAKEN :alice is in use", "BYE :alice is in use")
        self.connection.close()
        self.assertIn("!! The server refused alice: alice is in use\nUsername [alice]: ", self.screen())

    def test_connected_shows_the_log_and_asks_for_an_option(self) -> None:
        self.connect()
        screen = self.screen()
        self.assertIn("-- Connected to h:1 as bob", screen)
        self.assertIn("* alice  online\n", screen)
        self.assertIn("* bob (you)  online\n", screen)
        self.assertIn("  dave  offline\n", screen)
        self.assertTrue(screen.endswith("Send [u]nicast, [m]ulticast or [b]roadcast? "), screen)

    def test_unicast_steps(self) -> None:
        self.connect()
        self.type("u")
        self.assertTrue(self.screen().endswith("To (one name; empty to go back): "))
        self.type("ALICE")
        self.assertTrue(self.screen().endswith("Message to alice (empty to go back): "))
        self.type("hello there")
        self.assertEqual(self.connection.sent(), ["SEND alice :hello there"])
        self.connection.server_says("SENT 1 -")
        self.assertIn("-> you to alice: hello there", self.screen())

    def test_multicast_needs_two_names_and_reports_offline(self) -> None:
        self.connect()
        self.type("m", "alice")
        self.assertIn("!! Multicast goes to two or more names.", self.screen())
        self.type("alice, dave", "lunch?")
        self.assertEqual(self.connection.sent(), ["SEND alice,dave :lunch?"])
        self.connection.server_says("SENT 1 dave")
        self.assertIn("!! not connected, did not get it: dave", self.screen())

    def test_broadcast_skips_recipients(self) -> None:
        self.connect()
        self.type("b")
        self.assertTrue(self.screen().endswith("Message to everyone connected (empty to go back): "))
        self.type("hi all")
        self.assertEqual(self.connection.sent(), ["BROADCAST :hi all"])

    def test_typed_ahead_lines_wait_for_the_welcome(self) -> None:
        self.type("bob", "b", "early bird")
        self.assertEqual(self.connection.sent(), ["VERSION 13", "HELLO bob"])
        self.connection.server_says("WELCOME bob :hi", "USER bob online", "ENDUSERS 1")
        self.assertEqual(self.connection.sent(), ["BROADCAST :early bird"])

    def test_received_messages_and_terminal_safety(self) -> None:
        self.connect()
        self.screen()
        # The wire refuses C0 controls; C1 controls and bidi overrides pass it, and are shown escaped.
        self.connection.server_says("MSG alice unicast bob :hi\tthere \x9b2J \u202eevil")
        screen = self.screen()
        self.assertIn("alice to you: hi\tthere \\x9b2J \\u202eevil\n", screen)
        self.assertNotIn("\x9b", screen)

    def test_commands(self) -> None:
        self.connect()
        self.screen()
        self.type("/help")
        self.assertIn("/msg NAME[,NAME...] TEXT", self.screen())
        self.type("/users")
        self.assertIn("dave  offline", self.screen())
        self.type("/quit")
        self.assertEqual(self.quits, 1)

    def test_disconnect_and_reconnect(self) -> None:
        self.connect()
        self.connection.server_says("BYE :server shutting down")
        self.connection.close()
        self.assertIn("-- Disconnected: server shutting down", self.screen())
        self.type("hello?")
        self.assertIn("Not connected", self.screen())
        self.type("/reconnect")
        self.assertEqual(self.connection.attempts[-1], ("tcp:h:1", "bob"))

    def test_msg_and_all_send_in_one_line(self) -> None:
        self.connect()
        self.type("/msg ALICE hi there", "/msg alice,dave lunch?", "/all hello, all")
        self.assertEqual(
            self.connection.sent(),
            ["SEND alice :hi there", "SEND alice,dave :lunch?", "BROADCAST :hello, all"],
        )
        self.type("/msg alice")
        self.assertIn("!! Usage: /msg NAME[,NAME...] TEXT", self.screen())
        self.type("/frob")
        self.assertIn("!! Unknown command /frob", self.screen())
        self.assertEqual(self.connection.sent(), [])

    def test_reply_to_the_whole_group(self) -> None:
        self.connect()
        self.connection.server_says("MSG alice multicast bob,carol,dave :lunch?")
        self.assertIn("alice to you, carol and dave: lunch?", self.screen())
        self.type("/reply")
        self.assertTrue(
            self.screen().endswith(
                "Message to alice, carol, dave (offline, will not get it: dave) (empty to go back): "
            )
        )
        self.type("yes")
        self.type("/reply same here")
        self.assertEqual(
            self.connection.sent(), ["SEND alice,carol,dave :yes", "SEND alice,carol,dave :same here"]
        )

    def test_who_lists_only_those_online(self) -> None:
        self.connect()
        self.screen()
        self.type("/who")
        screen = self.screen()
        self.assertIn("online (2)", screen)
        self.assertIn("alice  online", screen)
        self.assertNotIn("dave", screen)

    def test_tab_completes_commands_and_names_with_the_space_after_them(self) -> None:
        self.assertEqual(self.view.completions("/re"), ["/reply ", "/reconnect "])
        self.connect()
        self.assertEqual(self.view.completions("/msg "), ["alice ", "dave "])  # online first, not oneself
        self.assertEqual(self.view.completions("/msg alice,D"), ["dave "])
        self.assertEqual(self.view.completions("m"), [])  # the option prompt has no names
        self.type("m")
        self.assertEqual(self.view.completions("alice, d"), ["dave "])
        self.assertEqual(self.view.completions("x"), [])
        self.type("alice, dave ", "hi")  # what a completion leaves, answered
        self.assertEqual(self.connection.sent(), ["SEND alice,dave :hi"])

    def test_lines_wrap_at_word_boundaries_to_the_terminal_width(self) -> None:
        self.view = TextView(self.print, width=lambda: 40)
        self.presenter = ChatPresenter(self.view, self.connection, Clock(), "", "tcp:h:1")
        self.view.bind(self.presenter, self.on_quit)
        self.connect()
        self.output.clear()
        self.connection.server_says("MSG alice unicast bob :the recipient(s) of this message are many")
        self.assertEqual(
            self.output,
            ["00:00 alice to you: the recipient(s) of\n", "      this message are many\n"],
        )
        self.output.clear()
        self.type("/help")
        self.assertTrue(all(len(line) <= 40 for line in self.output), self.output)
        printed = "".join(self.output).split()
        self.assertIn("(unicast),", printed)  # words whole, not "(unic" / "ast),"
        self.assertIn("NAME[,NAME...]", printed)
        self.assertIn(" " * 19 + "name or several\n", self.output)  # indented (half the width at most)

    def test_wrap(self) -> None:
        self.assertEqual(wrap([("a", "one two "), ("b", "three")], 9), [[("a", "one two")], [("b", "three")]])
        self.assertEqual(wrap([("", "abcdefghij")], 4), [[("", "abcd")], [("", "efgh")], [("", "ij")]])
        self.assertEqual(wrap([("", "   x y")], 4, 2), [[("", "   x")], [("", "  y")]])
        self.assertEqual(wrap([("", "日本語 x")], 7), [[("", "日本語")], [("", "x")]])  # by columns, not characters
        self.assertEqual(wrap([("", "日本語")], 4), [[("", "日本")], [("", "語")]])
        self.assertEqual(cells("e\u0301☕"), 3)

    def test_wrap_a_long_word_at_once(self) -> None:
        """A message of one 4,096-byte word (--max-text) took 10 s to wrap, the client frozen meanwhile:
        each piece looked for what fits by measuring every shorter prefix of what was left."""
        started = time.perf_counter()
        lines = wrap([("", "x" * 4096 + " y日本")], 80)
        self.assertLess(time.perf_counter() - started, 1.0)
        self.assertEqual([len(line[0][1]) for line in lines], [80] * 51 + [20])
        self.assertEqual(wrap([("", "a日本語")], 4), [[("", "a日")], [("", "本語")]])
        self.assertEqual(wrap([("", "日本")], 1), [[("", "日")], [("", "本")]])  # one at least, wider or not

    def test_users_has_a_header(self) -> None:
        self.connect()
        self.screen()
        self.type("/users")
        self.assertTrue(self.screen().startswith("-- all users (3):\n   * alice  online\n"))

    def test_reconnect_while_connected_says_so(self) -> None:
        self.connect()
        self.screen()
        self.type("/reconnect")
        self.assertIn("-- Already connected to h:1 as bob.", self.screen())
        self.assertEqual(len(self.connection.attempts), 1)

    def test_a_failed_connect_says_how_to_pick_another_server_and_retries_on_enter(self) -> None:
        self.connection.refuse = True
        self.type("bob")
        screen = self.screen()
        self.assertIn("!! Cannot reach h:1: connection refused — is the server running?\n", screen)
        self.assertIn("Press Enter to try again", screen)
        self.assertIn("--server tcp:HOST:PORT", screen)
        self.connection.refuse = False
        self.type("")
        self.assertEqual(self.connection.attempts, [("tcp:h:1", "bob"), ("tcp:h:1", "bob")])

    def test_presence_of_strangers_stays_out_of_the_conversation(self) -> None:
        self.connect()
        self.screen()
        self.connection.server_says("JOINED dave", "LEFT dave")
        self.assertFalse(self.screen().startswith("--"))
        self.type("/msg dave hi")
        self.connection.server_says("SENT 1 -", "LEFT dave")
        self.assertIn("-- dave went offline", self.screen())

    def test_ctrl_c_goes_back_to_the_option(self) -> None:
        self.connect()
        self.type("u", "alice")
        self.view.interrupt()
        self.assertTrue(self.screen().endswith("Send [u]nicast, [m]ulticast or [b]roadcast? "))

    def test_a_sender_has_one_colour_everywhere(self) -> None:
        self.assertEqual(sender_style("Alice"), sender_style("alice"))
        self.assertGreater(len({sender_style(n) for n in ("alice", "bob", "carol", "dave", "erin")}), 1)
        self.connect()
        self.lines.clear()
        self.connection.server_says("MSG alice unicast bob :hi")
        [[_, sender, rest]] = self.lines
        self.assertEqual(sender, (sender_style("alice"), "alice"))
        self.assertEqual(rest, ("class:direct", " to you: hi"))


class TextAccountTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.output: list[str] = []
        self.view = TextView(self.print, password_prompt=True)
        self.connection = FakeConnection()
        self.presenter = ChatPresenter(self.view, self.connection, Clock(), "", "tcp:localhost:1")
        self.view.bind(self.presenter, lambda: None)
        self.presenter.start()

    def print(self, fragments: Fragments) -> None:
        self.output.append("".join(text for _, text in fragments) + "\n")

    def screen(self) -> str:
        text = "".join(self.output) + self.view.prompt()
        self.output.clear()
        return text

    def test_lines_typed_while_connecting_are_masked_and_never_recalled(self) -> None:
        view = TextView(self.print)
        presenter = ChatPresenter(view, self.connection, Clock(), "", "tcp:localhost:1")
        view.bind(presenter, lambda: None)
        presenter.start()
        self.assertFalse(view.hides_input())
        self.assertFalse(view.keeps_input())  # the username
        view.line("alice")
        self.assertEqual(view.prompt(), "(connecting) ")
        self.assertTrue(view.hides_input())  # the answer may be: the name needs a password
        self.assertFalse(view.keeps_input())
        self.connection.server_says("ERROR AUTH_REQUIRED :alice is protected", "BYE :alice is protected")
        self.connection.close()
        self.assertEqual(view.prompt(), "Password for alice (empty for none): ")
        self.assertTrue(view.hides_input())
        self.assertFalse(view.keeps_input())
        view.line("alice's secret")
        self.connection.server_says("WELCOME alice :hi", "USER alice online protected", "ENDUSERS 1")
        self.assertFalse(view.hides_input())
        self.assertTrue(view.keeps_input())

    def test_password_prompt_asks_after_the_username_and_hides_it(self) -> None:
        self.view.line("alice")
        self.assertEqual(self.screen(), "Password for alice (empty for none): ")
        self.assertTrue(self.view.hides_input())
        self.assertEqual(self.view.completions("/he"), [])  # nothing to complete in a password
        self.view.line(" /all spaces count ")  # as typed: not a command, not stripped
        self.assertEqual(self.connection.sent(), ["VERSION 13", "HELLO alice : /all spaces count "])
        self.assertEqual(self.view.prompt(), "(connecting) ")

    def test_a_refused_password_is_asked_again(self) -> None:
        self.view.line("alice")
        self.view.line("wrong horse")
        self.connection.server_says(
            "ERROR AUTH_FAILED :wrong password for alice", "BYE :wrong password for alice"
        )
        self.connection.close()
        self.assertIn(
            "!! The server refused alice: wrong password for alice. Enter the password and\n"
            "connect again.\nPassword for alice (empty for none): ",
            self.screen(),
        )
        self.view.interrupt()  # Ctrl-C: back to the username
        self.assertEqual(self.screen(), "Username [alice]: ")

    def test_the_password_command_asks_twice(self) -> None:
        self.view.line("alice")
        self.view.line("")
        self.connection.server_says("WELCOME alice :hi", "USER alice online", "ENDUSERS 1")
        self.connection.sent()
        self.screen()
        self.view.line("/password")
        self.assertEqual(self.screen(), "New password (empty to go back): ")
        self.view.line("alice's secret")
        self.assertEqual(self.screen(), "The new password again: ")
        self.view.line("alice's secret")
        self.assertEqual(self.connection.sent(), ["PASSWORD :alice's secret"])
        self.connection.server_says("PROTECTED alice :alice is protected by your password")
        self.assertIn("-- alice is protected: log in with your password from now on.", self.screen())
        self.view.line("/users")
        self.assertEqual(self.screen().splitlines()[1], "   * alice (you)  online  protected")
        self.view.line("/password")
        self.view.line("one thing")
        self.view.line("another thing")
        self.assertIn("!! The two passwords differ.\nNew password (empty to go back): ", self.screen())
        self.view.line("")  # back
        self.assertTrue(self.screen().endswith("[b]roadcast? "))
        self.assertEqual(self.connection.sent(), [])

    def test_delayed_messages_carry_when_they_were_sent(self) -> None:
        self.view.line("alice")
        self.view.line("alice's secret")
        self.connection.server_says(
            "WELCOME alice :hi",
            "USER alice online protected",
            "ENDUSERS 1",
            "DELAYED 3 2001-02-03T04:05:06Z bob unicast alice :from long ago",
            "ENDDELAYED 0",
        )
        shown = self.screen()
        self.assertIn("-- While you were away:\n", shown)
        self.assertRegex(shown, r"\n3 Feb 2001 \d\d:\d\d bob to you: from long ago\n")
        self.assertEqual(self.connection.sent()[-1], "ACK 3")


class TextHistoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.output: list[str] = []
        self.view = TextView(self.print, width=lambda: 80)
        self.connection = FakeConnection()
        clock = Clock()
        clock.advance(time.mktime((2026, 12, 2, 9, 30, 0, 0, 0, -1)))
        self.presenter = ChatPresenter(self.view, self.connection, clock, "", "tcp:h:1")
        self.view.bind(self.presenter, lambda: None)
        self.presenter.start()
        self.view.line("bob")
        self.connection.server_says(
            "VERSION 9 90",
            "WELCOME bob :hi",
            "USER alice online",
            "USER bob online protected",
            "ENDUSERS 2",
            f"HISTMSG #all alice broadcast * 01A {self.at(12, 1, 17, 2)} :coffee's on",
            "ENDHISTORY #all 1 more",
            f"CONVERSATION alice,bob 01C {self.at(12, 2, 8, 20)}",
            f"CONVERSATION #all 01A {self.at(12, 1, 17, 2)}",
            f"CONVERSATION bob 019 {self.at(11, 30, 9, 0)}",
            f"CONVERSATION bob,carol 018 {self.at(11, 29, 9, 0)}",
            f"CONVERSATION alice,bob,carol 017 {self.at(11, 28, 9, 0)}",
            "ENDCONVERSATIONS 5",
        )
        self.connection.sent()

    @staticmethod
    def at(month: int, day: int, hour: int, minute: int) -> str:
        return wire.format_millis(time.mktime((2026, month, day, hour, minute, 0, 0, 0, -1)))

    def print(self, fragments: Fragments) -> None:
        self.output.append("".join(text for _, text in fragments))

    def test_history_prints_pages_under_their_days(self) -> None:
        self.assertIn("--- Yesterday ---\n17:02 alice to everyone: coffee's on", "\n".join(self.output))
        self.output.clear()
        self.view.line("/history ALICE 2")
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob * 2"])
        self.connection.server_says(
            f"HISTMSG alice,bob bob unicast alice 01B {self.at(11, 30, 16, 2)} :release notes?",
            f"HISTMSG alice,bob alice unicast bob 01C {self.at(12, 2, 8, 20)} :review #42?",
            "ENDHISTORY alice,bob 2 more",
        )
        self.assertEqual(
            self.output,
            [
                "--- 30 November ---",
                "16:02 -> you to alice: release notes?",
                "--- Today ---",
                "08:20 alice to you: review #42?",
            ],
        )
        self.view.line("/history alice")
        self.view.line("/history")  # no conversation chosen: everyone's
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob 01B", "HISTORY #all 01A"])

    def test_history_usage(self) -> None:
        self.view.line("/history alice 101")
        self.view.line("/history alice carol")
        self.assertEqual(self.connection.sent(), [])
        self.assertEqual(self.output[-1], "!! Usage: /history [NAME[,NAME...]|#all] [N], N from 1 to 100")

    def test_a_summary_of_the_recent_conversations_at_login_and_conversations_opens_one(self) -> None:
        self.assertEqual(
            " ".join(self.output[-2:]),  # wrapped at 80 columns
            "-- Your recent conversations: alice (today 08:20), everyone (yesterday 17:02), yourself "
            "(Mon 30 Nov 09:00) and 2 more. /conversations N opens one.",
        )
        self.output.clear()
        self.view.line("/conversations")
        self.assertEqual(
            self.output,
            [
                "-- your recent conversations (5):",
                "     1 alice  today 08:20",
                "     2 everyone  yesterday 17:02",
                "     3 yourself  Mon 30 Nov 09:00",
                "     4 carol  Sun 29 Nov 09:00",
                "     5 alice and carol  Sat 28 Nov 09:00",
            ],
        )
        self.connection.server_says(f"MSG alice unicast bob 01D {self.at(12, 2, 9, 30)} :hi")  # no summary

        self.assertEqual(self.output[-1], "09:30 alice to you: hi")
        self.view.line("/conversations")
        self.assertEqual(self.output[-5], "     1 alice  today 09:30")
        self.view.line("/conversations 5")
        self.assertEqual(self.connection.sent(), ["HISTORY alice,bob,carol *"])
        self.assertEqual(self.view.prompt(), "Message to alice, carol (empty to go back): ")
        self.view.line("/conversations 2")
        self.assertEqual(self.view.prompt(), "Message to everyone connected (empty to go back): ")
        self.view.line("/conversations 6")
        self.view.line("/conversations all")
        self.assertEqual(self.output[-2:], ["!! Usage: /conversations [N], N from 1 to 5"] * 2)
        self.assertEqual(self.connection.sent(), [])  # #all's latest page came at login


class TextRoomTests(SynchronousTestCase):
    """Version 11: /join, /to, /members, /part, /rooms and an operator's commands."""

    def setUp(self) -> None:
        self.output: list[str] = []
        self.view = TextView(lambda fragments: self.output.append("".join(t for _, t in fragments) + "\n"))
        self.connection = FakeConnection()
        self.presenter = ChatPresenter(self.view, self.connection, Clock(), "", "tcp:h:1")
        self.view.bind(self.presenter, lambda: None)
        self.presenter.start()
        self.view.line("bob")
        self.connection.server_says(
            "VERSION 11",
            "WELCOME bob :hi",
            "USER alice online",
            "USER bob online",
            "ENDUSERS 2",
            "ENDROOMS 0",
        )
        self.connection.sent()
        self.output.clear()

    def screen(self) -> str:
        text = "".join(self.output) + self.view.prompt()
        self.output.clear()
        return text

    def test_join_writes_to_the_room_and_members_lists_it(self) -> None:
        self.view.line("/join #dev")
        self.assertEqual(self.connection.sent(), ["JOIN #dev"])
        self.connection.server_says(
            "ROOM #dev 0 +nt :the build",
            "MEMBER #dev bob online op",
            "MEMBER #dev alice offline voice",
            "ENDMEMBERS #dev 2",
        )
        self.assertTrue(
            self.screen().endswith(
                "-- You are in #dev (2 members). Topic: the build\nMessage to #dev (empty to go back): "
            )
        )
        self.view.line("hello")
        self.assertEqual(self.connection.sent(), ["SEND #dev :hello"])
        self.view.line("/members")
        self.assertEqual(
            self.screen().split("\n")[:4],
            [
                "-- #dev (2 members); no messages from outside, topic locked:",
                "   topic: the build",
                "   * @bob  online",
                "     +alice  offline",
            ],
        )

    def test_to_switches_the_conversation_the_prompt_writes_to(self) -> None:
        self.view.line("/join #dev")
        self.connection.server_says("ROOM #dev 0 +nt :", "MEMBER #dev bob online op", "ENDMEMBERS #dev 1")
        self.view.line("/to alice")
        self.assertTrue(self.screen().endswith("Message to alice (empty to go back): "))
        self.view.line("/to #all")
        self.assertTrue(self.screen().endswith("Message to everyone connected (empty to go back): "))
        self.view.line("/to #DEV")
        self.assertTrue(self.screen().endswith("Message to #dev (empty to go back): "))
        self.view.line("/to #nowhere")
        self.assertIn("You are not in #nowhere: join it first.", self.screen())

    def test_operator_commands_and_rooms(self) -> None:
        self.view.line("/join #dev")
        self.connection.server_says("ROOM #dev 0 +nt :", "MEMBER #dev bob online op", "ENDMEMBERS #dev 1")
        self.connection.sent()
        for line in (
            "/topic the build is green",
            "/topic",
            "/invite alice",
            "/kick alice spamming the room",
            "/mode +k sesame",
            "/mode",
            "/rooms",
            "/part gone home",
        ):
            self.view.line(line)
        self.assertEqual(
            self.connection.sent(),
            [
                "TOPIC #dev :the build is green",
                "TOPIC #dev",
                "INVITE #dev alice",
                "KICK #dev alice :spamming the room",
                "MODE #dev +k sesame",
                "MODE #dev",
                "ROOMS",
                "PART #dev :gone home",
            ],
        )
        self.view.line("/invite")
        self.assertIn("!! Usage: /invite NAME", self.screen())

    def test_hostile_room_lines_are_skipped_and_topics_printed_harmless(self) -> None:
        self.view.line("/join #dev")
        self.connection.server_says(
            "ROOM #dev 0 +nt :\x1b[2Jtopic",  # control characters: not a line
            "ROOM #dev 0 +nt :\u202etopic",  # right-to-left override
            "MEMBER #dev bob online op",
            "ENDMEMBERS #dev 1",
            "ENTERED #d\x1bv x",
            "ENTERED #dev \u202ex",
        )
        self.view.line("/members")
        shown = self.screen()
        self.assertNotIn("\x1b", shown)
        self.assertNotIn("\u202e", shown)
        self.assertIn("topic: \\u202etopic", shown)

    def test_tab_completes_this_users_rooms(self) -> None:
        self.view.line("/join #Design")
        self.connection.server_says("ROOM #Design 0 +nt :", "MEMBER #Design bob online op", "ENDMEMBERS #Design 1")
        self.assertEqual(self.view.completions("/to #d"), ["#Design "])
        self.assertEqual(self.view.completions("/to #"), ["#all ", "#Design "])
        self.assertEqual(self.view.completions("/to #x"), [])
