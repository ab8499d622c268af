"""The IRC front, line by line on StringTransports, beside line-protocol clients on the same hub."""

from __future__ import annotations

import base64
import sys
import time
from typing import Any
from fnmatch import fnmatchcase
from types import FrameType

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.auth.accounts import NEW_NAMES
from msgsvc.fronts.irc import base
from msgsvc.fronts.irc.base import LISTING_STEP
from msgsvc.fronts.irc.factory import IrcFactory
from msgsvc.fronts.irc.wire import (
    MIN_ROOM,
    ONE_LINE,
    USERLEN,
    clean_text,
    parse,
    server_time,
    text_lines,
)
from msgsvc.hub.contracts import HistoryPolicy, Kind, Message, RemoteUser, UserRecord
from msgsvc.hub.conversations import ALL
from msgsvc.hub.events import Disconnected, Event
from msgsvc.hub.globs import glob_match
from msgsvc.hub.history import History
from msgsvc.hub.ids import message_id_time
from msgsvc.hub.user import User
from msgsvc.state import StoreError
from msgsvc.times import describe_time
from msgsvc.wire import Limits, ProtocolError

from .support.fakes import FakeNetwork
from .support.harness import PASSWORD, ServerHarness, lines, one_pass
from .support.irc import SERVER, Irc, IrcTestCase, Work, numerics


class OneLineTests(IrcTestCase):
    def test_an_irc_users_line_is_one_line_and_another_fronts_text_is_never_cut(self) -> None:
        """irctest's buffering.py wants an IRC user's full line relayed as one line (cut if the mask makes
        it longer); a TCP user's text of the same length must lose nothing."""
        alice, nick2 = self.irc(), self.irc()
        alice.register("n" * 32)
        nick2.register("nick2")
        alice.send("PRIVMSG nick2 :" + "a" * 490)
        (row,) = nick2.read()
        self.assertTrue(row.startswith(f":{'n' * 32}!"), row)
        self.assertLessEqual(len(row.encode()) + 2, 512)  # cut, as IRC servers cut
        bob, _ = self.harness.register("bob")
        bob.dataReceived(b"SEND nick2 :" + b"b" * 490 + b"\r\n")
        rows = nick2.read()
        self.assertEqual(len(rows), 2)
        self.assertEqual("".join(r.partition(" :")[2] for r in rows), "b" * 490)


class ParseTests(SynchronousTestCase):
    def test_tags_prefix_params_and_trailing(self) -> None:
        parsed = parse(b"@time=x;+a :nick!u@h privmsg  bob,carol :hi :there")
        assert parsed is not None
        self.assertEqual(parsed.command, "PRIVMSG")
        self.assertEqual(parsed.params, ["bob,carol", "hi :there"])

    def test_blank_and_bad_utf8(self) -> None:
        self.assertIsNone(parse(b"   "))
        self.assertRaises(ProtocolError, parse, b"PRIVMSG bob :\xff")

    def test_formatting_is_dropped_and_other_controls_refused(self) -> None:
        self.assertEqual(clean_text("\x02bold\x02 \x0304,12red\x03 \x1ditalic"), "bold red italic")
        self.assertRaises(ProtocolError, clean_text, "a\x07bell")


class RegistrationTests(IrcTestCase):
    def test_welcome_isupport_and_motd_with_the_username_log(self) -> None:
        got = self.irc().register("alice")
        self.assertEqual(numerics(got)[:4], ["001", "002", "003", "004"])
        self.assertEqual(got[0], f":{SERVER} 001 alice :Welcome to the msgsvc network, alice")
        self.assertEqual(got[3], f":{SERVER} 004 alice {SERVER} msgsvc-0.1.0 ir biklmnostv :bklov")
        isupport = [g for g in got if " 005 " in g]
        for row in isupport:
            tokens = row.split(" :")[0].split(" ")[3:]
            self.assertLessEqual(len(tokens), 13)
            self.assertTrue(row.isascii())
        text = " ".join(isupport)
        for token in [
            "CASEMAPPING=ascii",
            "CHANTYPES=#",
            "MONITOR=100",
            "NETWORK=msgsvc",
            "NICKLEN=32",
            "UTF8ONLY",
        ]:
            self.assertIn(token, text)
        self.assertIn("TARGMAX=PRIVMSG:32,NOTICE:32", text)
        motd = [g.split(" :", 1)[1] for g in got if " 372 " in g]
        self.assertIn("-   alice (online), dave (offline, protected)", motd)
        self.assertEqual(numerics(got)[-1], "376")

    def test_a_nick_in_use_gets_433_and_the_client_tries_another(self) -> None:
        self.harness.register("bob")
        client = self.irc()
        got = client.send("NICK Bob", "USER b 0 * :B")
        self.assertEqual(got, [f":{SERVER} 433 Bob Bob :bob is in use"])
        self.assertFalse(client.transport.disconnecting)
        self.assertIn(f":{SERVER} 001 bob2 :Welcome to the msgsvc network, bob2", client.send("NICK bob2"))

    def test_a_server_error_is_437_and_the_same_nick_may_work_later(self) -> None:
        harness = ServerHarness(records=None)  # the username log not read yet (Redis away)
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        got = client.send("NICK bob", "USER b 0 * :B")
        self.assertEqual(
            got, [f":{SERVER} 437 bob bob :the server has not read its username log yet; try again later"]
        )
        self.assertFalse(client.transport.disconnecting)
        harness.hub.load([], [])
        self.assertIn(f":{SERVER} 001 bob :Welcome to the msgsvc network, bob", client.send("NICK bob"))

    def test_too_many_new_names_is_437_saying_why_and_a_name_in_the_log_still_works(self) -> None:
        """Issue 28: RATE_LIMITED fell through to a bare ERROR and close, as if the client were at fault."""
        harness = ServerHarness(limits=Limits(max_per_ip=100), records=(UserRecord("dave", 1.0, 1.0),))
        for n in range(NEW_NAMES.burst):  # every client of the harness comes from 127.0.0.1
            harness.register(f"user{n}")
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        got = client.send("NICK spam", "USER s 0 * :S")
        why = "too many new names from your address; try again in 10 s"
        self.assertEqual(got, [f":{SERVER} 437 spam spam :{why}"])
        self.assertFalse(client.transport.disconnecting)
        self.assertIsNone(harness.hub.user("spam"))
        self.assertIn(f":{SERVER} 001 dave :Welcome to the msgsvc network, dave", client.send("NICK dave"))

    def test_nick_rules(self) -> None:
        client = self.irc()
        self.assertEqual(numerics(client.send("NICK *")), ["432"])
        self.assertEqual(numerics(client.send("NICK a.b")), ["432"])
        self.assertEqual(numerics(client.send("NICK [x]")), ["432"])
        self.assertEqual(numerics(client.send("NICK")), ["431"])
        self.assertEqual(numerics(client.send("NICK :")), ["431"])
        self.assertEqual(numerics(client.send("USER a 0 * :")), ["461"])

    def test_commands_before_registration_get_451(self) -> None:
        self.assertEqual(numerics(self.irc().send("PRIVMSG bob :hi", "JOIN #all")), ["451", "451"])

    def test_cap_negotiation_holds_registration_until_cap_end(self) -> None:
        client = self.irc()
        got = client.send("CAP LS 302", "NICK alice", "USER alice 0 * :A")
        caps = (
            "account-tag away-notify batch draft/chathistory draft/read-marker echo-message extended-join"
            " labeled-response message-tags multi-prefix sasl=PLAIN server-time"
        )
        self.assertEqual(got, [f":{SERVER} CAP * LS :{caps}"])
        self.assertEqual(
            client.send("CAP REQ :server-time bogus"), [f":{SERVER} CAP alice NAK :server-time bogus"]
        )
        self.assertEqual(client.send("CAP REQ :server-time"), [f":{SERVER} CAP alice ACK :server-time"])
        self.assertEqual(numerics(client.send("CAP END"))[0], "001")
        self.assertEqual(client.send("CAP LIST"), [f":{SERVER} CAP alice LIST :server-time"])

    def test_a_protected_nick_without_credentials_is_433_and_a_wrong_pass_is_464(self) -> None:
        client = self.irc()
        got = client.send("NICK dave", "USER dave 0 * :D")
        self.assertEqual(numerics(got), ["433"])
        self.assertIn("dave", got[0])
        other = self.irc()
        got = other.send("PASS :wrong horse", "NICK dave", "USER dave 0 * :D")
        self.assertEqual(numerics(got)[0], "464")
        self.assertTrue(got[-1].startswith("ERROR :Closing Link: "))
        self.assertTrue(other.transport.disconnecting)

    def test_pass_logs_in_to_a_protected_name(self) -> None:
        got = self.irc().register("dave", f"PASS :{PASSWORD}")
        self.assertEqual(numerics(got)[0], "001")

    def test_sasl_plain(self) -> None:
        client = self.irc()
        client.send("CAP LS 302", "CAP REQ :sasl")
        self.assertEqual(client.send("AUTHENTICATE PLAIN"), ["AUTHENTICATE +"])
        token = base64.b64encode(f"\0dave\0{PASSWORD}".encode()).decode()
        got = client.send(f"AUTHENTICATE {token}")
        self.assertEqual(numerics(got), ["900", "903"])
        self.assertIn(" dave :You are now logged in as dave", got[0])
        got = client.send("CAP END", "NICK dave", "USER dave 0 * :D")
        self.assertEqual(numerics(got)[0], "001")

    def test_messages_wait_for_001_after_sasl_within_the_send_queue_limit(self) -> None:
        harness = ServerHarness(
            limits=Limits(max_send_queue=500), records=(UserRecord("dave", 1.0, 1.0, protected=True),)
        )
        bob, _ = harness.register("bob")
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
        client.send("AUTHENTICATE " + base64.b64encode(f"\0dave\0{PASSWORD}".encode()).decode())
        bob.dataReceived(b"SEND dave :early\r\n")
        got = client.send("CAP END", "NICK dave", "USER dave 0 * :D")
        self.assertEqual(got[-1], ":bob!bob@msgsvc PRIVMSG dave :early")  # after 001 and the MOTD
        late = Irc(harness, IrcFactory(harness.clients, SERVER))
        late.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
        client.send("QUIT")
        client.session.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(
            numerics(late.send("AUTHENTICATE " + base64.b64encode(f"\0dave\0{PASSWORD}".encode()).decode())),
            ["900", "903"],
        )
        for _ in range(20):
            bob.dataReceived(b"SEND dave :" + b"y" * 40 + b"\r\n")
        self.assertTrue(late.read()[-1].endswith("(registration not finished)"))

    def test_sasl_wrong_password_long_chunk_and_abort(self) -> None:
        client = self.irc()
        client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
        wrong = base64.b64encode(b"\0dave\0not the password").decode()
        self.assertEqual(numerics(client.send(f"AUTHENTICATE {wrong}")), ["904"])
        client.send("AUTHENTICATE PLAIN")
        self.assertEqual(numerics(client.send("AUTHENTICATE " + "A" * 401)), ["905"])
        client.send("AUTHENTICATE PLAIN")
        self.assertEqual(numerics(client.send("AUTHENTICATE *")), ["906"])
        client.send("AUTHENTICATE PLAIN")
        self.assertEqual(numerics(client.send("CAP END")), ["906"])
        client.send("AUTHENTICATE PLAIN")
        self.assertEqual(numerics(client.send("NICK zed")), ["906"])


class MessageTests(IrcTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.bob, self.bob_transport = self.harness.register("bob")
        self.client = self.irc()
        self.client.register("alice")
        lines(self.bob_transport)

    def test_the_server_window_sees_the_front(self) -> None:
        self.assertEqual(self.harness.hub.user("alice").front, "irc")  # type: ignore[union-attr]

    def test_unicast_and_multicast_both_ways(self) -> None:
        self.assertEqual(self.client.send("PRIVMSG bob :hi bob"), [])
        self.assertEqual(lines(self.bob_transport), ["MSG alice unicast bob :hi bob"])
        self.client.send("PRIVMSG bob,alice :both")
        self.assertEqual(lines(self.bob_transport), ["MSG alice multicast bob,alice :both"])
        self.bob.dataReceived(b"SEND alice :hi alice\r\nSEND alice,carol :group\r\n")
        self.assertEqual(
            self.client.read(),
            [":bob!bob@msgsvc PRIVMSG alice :hi alice", ":bob!bob@msgsvc PRIVMSG alice :(to you) group"],
        )

    def test_a_multicast_says_whom_it_went_to(self) -> None:
        carol, _ = self.harness.register("carol")
        self.client.read()
        carol.dataReceived(b"SEND alice,bob,dave :lunch?\r\n")
        self.assertEqual(
            self.client.read(), [":carol!carol@msgsvc PRIVMSG alice :(to you, bob and dave) lunch?"]
        )

    def test_a_long_text_comes_in_lines_within_512_bytes(self) -> None:
        text = ("word " * 300 + "é" * 300).strip()
        self.bob.dataReceived(f"SEND alice :{text}\r\n".encode())
        got = self.client.read()
        self.assertGreater(len(got), 1)
        for row in got:
            self.assertLessEqual(len(row.encode()) + 2, 512)
            self.assertTrue(row.startswith(":bob!bob@msgsvc PRIVMSG alice :"))
        pieces = [row.split(" :", 1)[1] for row in got]
        self.assertEqual("".join(pieces).replace(" ", ""), text.replace(" ", ""))

    def test_an_action_is_carried_as_text_and_other_ctcp_is_refused(self) -> None:
        self.assertEqual(self.client.send("PRIVMSG bob :\x01ACTION waves\x01"), [])
        self.assertEqual(lines(self.bob_transport), ["MSG alice unicast bob :* alice waves"])
        got = self.client.send("PRIVMSG bob :\x01VERSION\x01")
        self.assertEqual(got, [f":{SERVER} NOTICE alice :not sent: msgsvc does not carry CTCP VERSION"])
        self.assertEqual(self.client.send("NOTICE bob :\x01VERSION irssi\x01"), [])
        self.assertEqual(lines(self.bob_transport), [])

    def test_offline_names_get_401_and_protected_ones_are_queued(self) -> None:
        """Issue 32: a protected name offline is away (301), as Ergo's always-on clients are auto-away."""
        got = self.client.send("PRIVMSG zed,dave :hello")
        self.assertEqual(
            got,
            [
                f":{SERVER} 301 alice dave :offline",
                f":{SERVER} 401 alice zed :No such nick/channel (not online)",
                f":{SERVER} NOTICE alice :dave is away: the message waits for them",
            ],
        )

    def test_an_away_set_on_another_node_is_heard_shown_and_answered_here(self) -> None:
        """F5: the hub carries away between nodes; the IRC front makes it away-notify, 301, USERHOST's -
        and WHO's G for a nick of another node."""
        carol = self.irc()
        carol.register("carol", "CAP REQ :away-notify", "CAP END")
        carol.send("JOIN #all")
        self.harness.hub.nodes.remote_joined(RemoteUser("zoe", "there", "peer", "irc", 1.0), 1.0, False, True)
        self.assertEqual(carol.read(), [":zoe!zoe@msgsvc JOIN :#all"])
        self.harness.hub.nodes.remote_away("zoe", "there", "at lunch")
        self.assertEqual(carol.read(), [":zoe!zoe@msgsvc AWAY :at lunch"])
        self.assertIn(f":{SERVER} 301 carol zoe :at lunch", carol.send("PRIVMSG zoe :hi"))
        self.assertIn(f":{SERVER} 301 carol zoe :at lunch", carol.send("WHOIS zoe"))
        self.assertEqual(carol.send("USERHOST zoe"), [f":{SERVER} 302 carol :zoe=-zoe@msgsvc"])
        self.harness.hub.nodes.remote_away("zoe", "there", None)
        self.assertEqual(carol.read(), [":zoe!zoe@msgsvc AWAY"])
        self.assertNotIn("301", " ".join(carol.send("WHOIS zoe")))

    def test_notice_never_gets_an_error_reply(self) -> None:
        self.assertEqual(self.client.send("NOTICE zed :hello", "NOTICE #nope :x", "NOTICE", "NOTICE bob"), [])

    def test_blank_text_is_no_text(self) -> None:
        """Issue 28: spaces alone were delivered as an empty-looking message; refused as the line front does."""
        self.client.send("JOIN #all")
        for text in ("   ", "\t", "\x02 \x02", ""):
            for target in ("bob", "#all"):
                got = self.client.send(f"PRIVMSG {target} :{text}")
                self.assertEqual(got, [f":{SERVER} 412 alice :No text to send"])
                self.assertEqual(self.client.send(f"NOTICE {target} :{text}"), [])
        self.assertEqual(self.client.send("PRIVMSG bob"), [f":{SERVER} 412 alice :No text to send"])
        self.assertEqual(lines(self.bob_transport), [])
        self.assertEqual(self.client.send("PRIVMSG bob : hi "), [])
        self.assertEqual(lines(self.bob_transport), ["MSG alice unicast bob : hi "])

    def test_all_is_the_broadcast_channel(self) -> None:
        self.assertEqual(numerics(self.client.send("PRIVMSG #all :hi")), ["404"])  # join it first
        got = self.client.send("JOIN #all")
        self.assertEqual(got[0], ":alice!alice@msgsvc JOIN :#all")
        self.assertEqual(numerics(got), ["JOIN", "332", "333", "353", "366"])
        self.assertEqual(got[3], f":{SERVER} 353 alice = #all :alice bob")
        self.client.send("PRIVMSG #all :hello everyone")
        self.assertEqual(lines(self.bob_transport), ["MSG alice broadcast * :hello everyone"])
        self.bob.dataReceived(b"BROADCAST :from bob\r\n")
        self.assertEqual(self.client.read(), [":bob!bob@msgsvc PRIVMSG #all :from bob"])
        self.assertEqual(numerics(self.client.send("JOIN other")), ["403"])

    def test_a_broadcast_reaches_a_client_outside_all_as_a_notice(self) -> None:
        self.bob.dataReceived(b"BROADCAST :from bob\r\n")
        self.assertEqual(self.client.read(), [":bob!bob@msgsvc NOTICE alice :(to everyone) from bob"])

    def test_members_of_all_see_users_come_and_go_and_others_do_not(self) -> None:
        self.client.send("JOIN #all")
        outsider = self.irc()
        outsider.register("olga")
        self.assertEqual(self.client.read(), [":olga!olga@msgsvc JOIN :#all"])
        carol, _ = self.harness.register("carol")
        self.assertEqual(self.client.read(), [":carol!carol@msgsvc JOIN :#all"])
        self.assertEqual(outsider.read(), [])
        carol.dataReceived(b"QUIT\r\n")
        self.harness.end_of_pass()
        carol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.client.read(), [":carol!carol@msgsvc QUIT :left"])

    def test_monitor(self) -> None:
        got = self.client.send("MONITOR + bob,carol,dave")
        self.assertEqual(got, [f":{SERVER} 730 alice :bob!bob@msgsvc", f":{SERVER} 731 alice :carol,dave"])
        carol, _ = self.harness.register("carol")
        self.assertEqual(self.client.read(), [f":{SERVER} 730 alice :carol!carol@msgsvc"])
        self.assertEqual(
            self.client.send("MONITOR L"),
            [f":{SERVER} 732 alice :bob,carol,dave", f":{SERVER} 733 alice :End of MONITOR list"],
        )
        self.client.send("MONITOR - carol")
        carol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.client.read(), [])
        self.assertEqual(
            self.client.send("MONITOR S"),
            [f":{SERVER} 730 alice :bob!bob@msgsvc", f":{SERVER} 731 alice :dave"],
        )
        self.assertEqual(self.client.send("MONITOR + *!user@host"), [])  # names only, never masks
        self.client.send("MONITOR C")
        self.assertEqual(self.client.send("MONITOR L"), [f":{SERVER} 733 alice :End of MONITOR list"])

    def test_names_nobody_monitors_are_forgotten(self) -> None:
        """MONITOR + then C or - of new names, again and again, grew the server by ~340 bytes a name for good."""
        for round in range(5):
            names = ",".join(f"n{round}x{n}" for n in range(100))
            self.client.send(f"MONITOR + {names}")
            self.client.send("MONITOR C" if round % 2 else f"MONITOR - {names}")
        self.assertEqual(self.factory.monitors, {})
        self.client.send("MONITOR + bob")
        self.assertEqual(set(self.factory.monitors), {"bob"})

    def test_whois_who_ison_names(self) -> None:
        got = self.client.send("WHOIS bob")
        self.assertEqual(numerics(got), ["311", "312", "318"])
        self.assertEqual(got[1], f":{SERVER} 312 alice bob {SERVER} :msgsvc")
        self.assertEqual(numerics(self.client.send(f"WHOIS {SERVER} bob")), ["311", "312", "318"])
        self.assertEqual(numerics(self.client.send("WHOIS nobody")), ["401", "318"])
        carol, _ = self.harness.register("carol")
        carol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(numerics(self.client.send("WHOIS carol")), ["401", "318"])  # offline
        got = self.client.send("WHOIS dave")  # protected, offline: away, as Ergo's always-on clients
        self.assertEqual(numerics(got), ["311", "312", "301", "318"])
        self.assertEqual(got[2], f":{SERVER} 301 alice dave :offline")
        got = self.client.send("WHO BOB")
        self.assertEqual(
            got,
            [
                f":{SERVER} 352 alice * bob msgsvc {SERVER} bob H :0 bob",
                f":{SERVER} 315 alice BOB :End of WHO list",
            ],
        )
        self.assertEqual(self.client.send("WHO nobody"), [f":{SERVER} 315 alice nobody :End of WHO list"])
        self.assertEqual(self.client.send("ISON bob dave zed"), [f":{SERVER} 303 alice :bob"])

    def test_modes(self) -> None:
        self.assertEqual(self.client.send("MODE alice +i"), [":alice!alice@msgsvc MODE alice :+i"])
        self.assertEqual(self.client.send("MODE alice +i"), [])
        self.assertEqual(self.client.send("MODE alice"), [f":{SERVER} 221 alice :+i"])
        self.assertEqual(numerics(self.client.send("MODE alice +o")), ["501"])
        self.assertEqual(numerics(self.client.send("MODE bob")), ["502"])
        self.assertEqual(
            self.client.send("MODE #all"),
            [f":{SERVER} 324 alice #all :+nt", f":{SERVER} 329 alice #all :1000000"],
        )
        self.assertEqual(numerics(self.client.send("MODE #all +m")), ["482"])
        self.assertEqual(numerics(self.client.send("MODE #all b")), ["368"])
        self.client.send("JOIN #all")
        self.assertEqual(self.client.send("PART #all"), [":alice!alice@msgsvc PART :#all"])
        self.assertEqual(numerics(self.client.send("PART #all")), ["442"])

    def test_irc_users_are_known_by_their_user_name_and_real_name(self) -> None:
        other = self.irc()
        other.send("NICK olga", "USER ogr 0 * :Olga Real")
        self.client.send("JOIN #all")
        other.send("JOIN #all", "PRIVMSG alice :hi")
        self.assertEqual(self.client.read()[-1], ":olga!ogr@msgsvc PRIVMSG alice :hi")
        got = self.client.send("WHO o*")
        self.assertEqual(got[0], f":{SERVER} 352 alice * ogr msgsvc {SERVER} olga H :0 Olga Real")
        self.assertEqual(got[1], f":{SERVER} 315 alice o* :End of WHO list")
        self.assertEqual(len(self.client.send("WHO *")), 4)  # alice, bob, olga, the end
        whois = self.client.send("WHOIS OLGA")
        self.assertEqual(whois[0], f":{SERVER} 311 alice olga ogr msgsvc * :Olga Real")
        other.session.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.client.read(), [":olga!ogr@msgsvc QUIT :left"])
        self.assertEqual(self.factory.idents.get("olga"), None)

    def test_list(self) -> None:
        self.assertEqual(numerics(self.client.send("LIST")), ["321", "323"])  # #all for those in it
        self.assertEqual(numerics(self.client.send("LIST #all")), ["321", "322", "323"])
        self.client.send("JOIN #all")
        got = self.client.send("LIST")
        self.assertEqual(numerics(got), ["321", "322", "323"])
        self.assertTrue(got[1].startswith(f":{SERVER} 322 alice #all 2 :"), got)

    def test_ping_pong_and_quit(self) -> None:
        self.assertEqual(self.client.send("PING :abc"), [f":{SERVER} PONG {SERVER} :abc"])
        got = self.client.send("QUIT :off to lunch")
        self.assertEqual(got, ["ERROR :Closing Link: 127.0.0.1:40002 (Quit: off to lunch)"])
        self.assertTrue(self.client.transport.disconnecting)

    def test_a_message_to_a_client_that_has_quit_is_not_answered_delivered(self) -> None:
        """attack38 F2: alice leaves with her QUIT's ERROR, not at the close: bob is told she is not
        connected, and nothing is written to her after it."""
        self.client.send("QUIT :off to lunch")
        self.assertTrue(self.client.transport.disconnecting)
        self.bob.dataReceived(b"SEND alice :still there?\r\n")
        self.harness.end_of_pass()
        self.assertEqual(lines(self.bob_transport), ["LEFT alice", "SENT 0 alice -"])
        self.assertEqual(self.client.read(), [])

    def test_unknown_command_and_too_long_text(self) -> None:
        self.assertEqual(numerics(self.client.send("FROB")), ["421"])
        got = self.client.send("PRIVMSG bob :" + "x" * 5000)
        self.assertEqual(got, [f":{SERVER} NOTICE alice :not sent: a message may hold at most 4096 bytes"])

    def test_operator_notice(self) -> None:
        self.harness.hub.notice("restarting at noon")
        self.assertEqual(self.client.read(), [f":{SERVER} NOTICE alice :Server notice: restarting at noon"])


class ChannelNameTests(SynchronousTestCase):
    def test_the_operator_may_name_the_channel(self) -> None:
        harness = ServerHarness()
        client = Irc(harness, IrcFactory(harness.clients, SERVER, channel="#team"))
        got = client.register("alice")
        self.assertIn("CHANNELLEN=33", " ".join(got))
        self.assertEqual(client.send("JOIN #Team")[0], ":alice!alice@msgsvc JOIN :#team")
        self.assertEqual(client.send("JOIN #all"), [])  # the hub's room of everyone: #team here
        self.assertEqual(client.send("PART #all"), [":alice!alice@msgsvc PART :#team"])


class DelayedTests(IrcTestCase):
    def test_what_waited_comes_stamped_and_is_acknowledged_by_the_pong(self) -> None:
        bob, _ = self.harness.register("bob")
        bob.dataReceived(b"SEND dave :while you were out\r\n")
        self.harness.end_of_pass()
        client = self.irc()
        got = client.register("dave", "CAP REQ :server-time", "CAP END", f"PASS :{PASSWORD}")
        delayed = [g for g in got if " PRIVMSG dave " in g]
        self.assertEqual(len(delayed), 1)
        self.assertTrue(delayed[0].startswith("@time="), delayed)
        self.assertTrue(delayed[0].endswith(":bob!bob@msgsvc PRIVMSG dave :while you were out"))
        ping = got[-1]
        self.assertTrue(ping.startswith("PING :ack-"), got)
        self.assertEqual(len(self.harness.store.queue), 1)  # not yet: the client may not have read it
        client.send("PONG :something else")
        self.assertEqual(len(self.harness.store.queue), 1)
        client.send(f"PONG :{ping.split(':')[1]}")
        self.assertEqual(self.harness.store.queue, [])

    def test_without_server_time_the_text_says_when(self) -> None:
        bob, _ = self.harness.register("bob")
        bob.dataReceived(b"SEND dave :old news\r\n")
        self.harness.end_of_pass()
        sent = self.harness.clock.seconds()
        self.harness.clock.advance(24 * 3600)
        got = self.irc().register("dave", f"PASS :{PASSWORD}")
        (delayed,) = [g for g in got if " PRIVMSG dave " in g]
        said = f"{describe_time(sent, sent + 24 * 3600)} {time.strftime('%Z', time.localtime(sent))}"
        self.assertEqual(delayed, f":bob!bob@msgsvc PRIVMSG dave :[sent {said}] old news")
        self.assertRegex(
            delayed, r"\[sent yesterday \d\d:\d\d \w+\] old news$"
        )  # as irssi shows it (issue 28)


MESSAGE_ID = "01M8TYR19J1HB1YED1Z05M91H8"  # made at 2026-12-02T08:43:10.002Z


class TagsTests(IrcTestCase):
    """IRCv3 message-tags, server-time and msgid, TAGMSG, labeled-response and batch."""

    def client(self, nick: str, caps: str = "") -> Irc:
        client = self.irc()
        client.register(nick, *([f"CAP REQ :{caps}", "CAP END"] if caps else []))
        return client

    def test_a_message_carries_its_time_and_id_as_each_client_asked(self) -> None:
        tagged = self.client("alice", "message-tags server-time")
        timed = self.client("carol", "server-time")
        plain = self.client("erin")
        for client in (tagged, timed, plain):
            to = (client.session.nick,)
            client.session.receive(Message("bob", Kind.UNICAST, to, "hi", MESSAGE_ID, 1796200990.002))
        head = ":bob!bob@msgsvc PRIVMSG"
        when = "2026-12-02T08:43:10.002Z"
        self.assertEqual(tagged.read(), [f"@time={when};msgid={MESSAGE_ID} {head} alice :hi"])
        self.assertEqual(timed.read(), [f"@time={when} {head} carol :hi"])
        self.assertEqual(plain.read(), [f"{head} erin :hi"])

    def test_the_account_tag_is_read_from_the_log_not_from_a_view_of_the_user(self) -> None:
        """A look-up a delivery: a view of the sender for each recipient of a room's message cost
        ~20 us each (attack35: 600 tagged members made a flood's bystander wait 15-19 s)."""
        alice = self.client("alice", "account-tag")
        hub = self.harness.clients.hub  # dave is protected in the harness's log, bob is in none
        views: list[str] = []

        class Counting:
            def __getattr__(self, name: str) -> Any:
                return getattr(hub, name)

            def user(self, name: str) -> object:
                views.append(name)
                return hub.user(name)

        self.harness.clients.hub = Counting()  # type: ignore[assignment]
        for sender in ("dave", "bob"):
            alice.session.receive(Message(sender, Kind.UNICAST, ("alice",), "hi", MESSAGE_ID, 1.0))
        self.assertEqual(
            alice.read(), ["@account=dave :dave!dave@msgsvc PRIVMSG alice :hi", ":bob!bob@msgsvc PRIVMSG alice :hi"]
        )
        self.assertEqual(views, [])

    def test_client_only_tags_are_relayed_to_who_asked_for_message_tags(self) -> None:
        alice = self.client("alice", "message-tags")
        carol = self.client("carol", "message-tags")
        erin = self.client("erin", "server-time")
        bob, bob_transport = self.harness.register("bob")
        for client in (alice, carol, erin):
            client.send("JOIN #all")
        alice.send(r"@+draft/reply=x\:y;fizz=buzz;+a\sb=c PRIVMSG carol,erin,bob :hi")
        (row,) = carol.read()
        tags, _, rest = row.partition(" ")
        self.assertEqual(rest, ":alice!alice@msgsvc PRIVMSG carol :(to you, erin and bob) hi")
        self.assertRegex(tags, r"^@msgid=[0-9A-Z]{26};\+draft/reply=x\\:y$")  # "+a\sb" is no key
        (row,) = erin.read()
        self.assertNotIn("+draft", row)
        self.assertNotIn("fizz", row)
        self.assertEqual(lines(bob_transport)[-1], "MSG alice multicast carol,erin,bob :hi")
        alice.send("@+typing=active PRIVMSG #all :all")
        (row,) = carol.read()
        self.assertRegex(row, "^@msgid=[0-9A-Z]{26};\\+typing=active :alice!alice@msgsvc PRIVMSG #all :all$")
        bob.dataReceived(b"SEND carol :untagged\r\n")
        (row,) = carol.read()
        self.assertRegex(row, "^@msgid=[0-9A-Z]{26} :bob!bob@msgsvc PRIVMSG carol :untagged$")

    def test_client_only_tags_go_only_with_a_delivery_at_once(self) -> None:
        """As docs/irc.rst says: a message that also goes to another node reaches the recipients here once
        that node answered, without the sender's client-only tags (the hub carries text only)."""
        network = FakeNetwork()
        self.harness = ServerHarness(network=network)
        self.factory = IrcFactory(self.harness.clients, SERVER)
        alice = self.client("alice", "message-tags")
        carol = self.client("carol", "message-tags")
        self.harness.hub.nodes.remote_joined(RemoteUser("bob", "there", "peer", "tcp", 1.0), 1.0, False, True)
        alice.send("@+draft/reply=x PRIVMSG carol,bob :hi")
        self.assertEqual(carol.read(), [])
        network.answers[0].callback({"there"})
        (row,) = carol.read()
        self.assertRegex(row, "^@msgid=[0-9A-Z]{26} :alice!alice@msgsvc PRIVMSG carol :")

    def test_tagmsg_goes_to_the_clients_that_take_tags_and_no_further(self) -> None:
        alice = self.client("alice", "message-tags")
        carol = self.client("carol", "message-tags")
        erin = self.client("erin")
        bob, bob_transport = self.harness.register("bob")
        for client in (alice, carol, erin):
            client.send("JOIN #all")
        lines(bob_transport)
        self.assertEqual(alice.send(r"@+react=l\sol;cat=dog TAGMSG carol"), [])
        (row,) = carol.read()
        tags, _, rest = row.partition(" ")
        self.assertEqual(rest, ":alice!alice@msgsvc TAGMSG :carol")
        self.assertIn(r"+react=l\sol", tags.split(";"))
        self.assertNotIn("cat", tags)
        self.assertRegex(tags, r"msgid=[0-9A-Z]{26}")
        self.assertEqual(alice.send("@+react=x TAGMSG erin"), [])
        self.assertEqual(erin.read(), [])
        self.assertEqual(alice.send("@+typing=active TAGMSG #all"), [])
        self.assertEqual(len(carol.read()), 1)
        self.assertEqual(erin.read(), [])
        self.assertEqual(lines(bob_transport), [])
        self.assertEqual(numerics(alice.send("@+a TAGMSG bob,nobody")), ["401", "401"])
        self.assertEqual(numerics(alice.send("TAGMSG")), ["411"])
        alice.send("PART #all")
        self.assertEqual(numerics(alice.send("@+a TAGMSG #all")), ["404"])

    def test_over_4094_bytes_of_tags_is_417_and_nothing_is_sent(self) -> None:
        alice = self.client("alice", "message-tags")
        carol = self.client("carol", "message-tags")
        self.assertEqual(alice.send("@foo=bar;+baz=%s TAGMSG carol" % ("a" * 4081)), [])
        (row,) = carol.read()
        self.assertIn("+baz=" + "a" * 4081, row)
        got = alice.send("@foo=bar;+baz=%s PRIVMSG carol :hi" % ("a" * 4082))
        self.assertEqual(got, [f":{SERVER} 417 alice :Input line was too long"])
        self.assertEqual(carol.read(), [])
        self.assertFalse(alice.transport.disconnecting)

    def test_a_labeled_line_gets_its_reply_labeled(self) -> None:
        alice = self.client("alice", "batch labeled-response")
        carol = self.client("carol")
        self.assertEqual(alice.send("@label=1 PING x"), [f"@label=1 :{SERVER} PONG {SERVER} :x"])
        self.assertEqual(alice.send("@label=2 PONG x"), [f"@label=2 :{SERVER} ACK"])
        self.assertEqual(alice.send("@label=3 PRIVMSG carol :hi"), [f"@label=3 :{SERVER} ACK"])
        self.assertEqual(carol.read(), [":alice!alice@msgsvc PRIVMSG carol :hi"])
        got = alice.send("@label=4 PRIVMSG alice :me")
        self.assertEqual(got, [":alice!alice@msgsvc PRIVMSG alice :me", f"@label=4 :{SERVER} ACK"])
        got = alice.send(r"@label=a\sb NOSUCH")
        self.assertEqual(got, [f"@label=a\\sb :{SERVER} 421 alice NOSUCH :Unknown command"])
        got = alice.send("@label=5 PRIVMSG nobody,carol :hi")
        self.assertEqual(got[0], f"@label=5 :{SERVER} 401 alice nobody :No such nick/channel (not online)")
        self.assertEqual(len(got), 1)

    def test_a_reply_of_lines_is_a_batch_even_over_several_passes(self) -> None:
        self.patch(base, "LISTING_STEP", 2)
        for n in range(6):
            self.harness.register(f"user{n}")
        alice = self.client("alice", "batch labeled-response")
        got = alice.send("@label=j JOIN #all")
        self.assertEqual(got[0], f"@label=j :{SERVER} BATCH +1 labeled-response")
        self.assertEqual(got[-1], f":{SERVER} BATCH -1")
        inner = got[1:-1]
        self.assertEqual(numerics(inner)[:2], ["JOIN", "332"])
        self.assertEqual(numerics(inner)[-1], "366")
        for row in inner:
            self.assertTrue(row.startswith("@batch=1 :"), row)
        got = alice.send("@label=w WHOIS alice")
        self.assertEqual(got[0], f"@label=w :{SERVER} BATCH +2 labeled-response")
        self.assertEqual(numerics(got[1:-1]), ["311", "312", "318"])

    def test_a_server_ping_is_never_a_part_of_a_labeled_batch(self) -> None:
        """IRCv3 labeled-response: a batch holds the reply to the labeled line; the server's own PING,
        sent while the batch is open (its answer awaited), comes outside it."""
        alice = self.client("alice", "batch labeled-response")
        on_disk: Deferred[None] = Deferred()
        enqueue = self.harness.store.enqueue
        self.harness.store.enqueue = lambda m: on_disk.addCallback(lambda _: enqueue(m))  # type: ignore
        opened = f"@label=q :{SERVER} BATCH +1 labeled-response"
        away = f"@batch=1 :{SERVER} 301 alice dave :offline"  # protected, offline
        self.assertEqual(alice.send("@label=q PRIVMSG dave :hi"), [opened, away])
        self.harness.clock.advance(self.harness.clients.limits.ping_interval)
        (ping,) = alice.read()
        self.assertRegex(ping, "^PING :?[0-9]+$")
        on_disk.callback(None)
        got = alice.read()
        self.assertEqual(got[-1], f":{SERVER} BATCH -1")
        self.assertTrue(all(row.startswith("@batch=1 ") for row in got[:-1]), got)

    def test_a_label_without_batch_is_not_answered_as_one(self) -> None:
        alice = self.client("alice", "labeled-response")
        self.assertEqual(alice.send("@label=1 PING x"), [f":{SERVER} PONG {SERVER} :x"])


class EchoTests(IrcTestCase):
    """IRCv3 echo-message: the sender sees its message as its recipients got it."""

    def setUp(self) -> None:
        super().setUp()
        self.alice = self.irc()
        self.alice.register("alice", "CAP REQ :echo-message message-tags server-time", "CAP END")
        self.bob = self.irc()
        self.bob.register("bob", "CAP REQ :message-tags", "CAP END")

    def test_a_message_comes_back_with_the_id_its_recipient_got(self) -> None:
        (echo,) = self.alice.send("@+draft/reply=x PRIVMSG bob :hi")
        (got,) = self.bob.read()
        tags, _, rest = echo.partition(" ")
        self.assertEqual(rest, ":alice!alice@msgsvc PRIVMSG bob :hi")
        self.assertRegex(tags, r"^@time=[-0-9T:.]{23}Z;msgid=[0-9A-Z]{26};\+draft/reply=x$")
        self.assertEqual(got, tags.partition(";")[2].join(["@", " " + rest]))
        self.alice.send("JOIN #all")
        self.bob.send("JOIN #all")
        (echo,) = self.alice.send("NOTICE #all :all")
        self.assertTrue(echo.endswith(" :alice!alice@msgsvc NOTICE #all :all"), echo)
        self.assertEqual(self.bob.read()[0].partition(" ")[2], ":alice!alice@msgsvc PRIVMSG #all :all")

    def test_nothing_comes_back_for_a_message_nobody_got(self) -> None:
        self.assertEqual(numerics(self.alice.send("PRIVMSG nobody :hi")), ["401"])
        got = self.alice.send("PRIVMSG nobody,bob :hi")
        self.assertEqual(numerics(got), ["PRIVMSG", "401"])
        self.assertTrue(got[0].endswith(":alice!alice@msgsvc PRIVMSG nobody,bob :hi"), got)

    def test_a_labeled_message_comes_back_labeled_and_a_tagmsg_comes_back_too(self) -> None:
        self.alice.send("CAP REQ :batch labeled-response")
        (echo,) = self.alice.send("@label=1 PRIVMSG bob :hi")
        self.assertTrue(echo.startswith("@label=1;time="), echo)
        self.assertNotIn("label", self.bob.read()[0])
        (echo,) = self.alice.send("@label=2;+typing=active TAGMSG bob")
        self.assertRegex(echo, r"^@label=2;time=.*;\+typing=active :alice!alice@msgsvc TAGMSG :bob$")

    def test_a_tagmsg_to_oneself_is_delivered_and_echoed_as_a_privmsg_is(self) -> None:
        """irctest's testLabeledTagMsgResponsesToSelf: the delivery and the echo, the label on the echo
        alone (one line each: no batch); without echo-message, the delivery alone."""
        self.alice.send("CAP REQ :batch labeled-response")
        delivered, echo = self.alice.send("@label=3;+draft/react=x TAGMSG alice")
        self.assertRegex(delivered, r"^@time=[^;]*;msgid=(\S{26});\+draft/react=x :alice!alice@msgsvc TAGMSG :alice$")
        self.assertEqual(echo, "@label=3;" + delivered[1:])
        self.bob.send("CAP REQ :batch labeled-response")
        delivered, ack = self.bob.send("@label=4;+draft/react=y TAGMSG bob")
        self.assertRegex(delivered, r"^@msgid=\S{26};\+draft/react=y :bob!bob@msgsvc TAGMSG :bob$")
        self.assertEqual(ack, f"@label=4 :{SERVER} ACK")


class ChatHistoryTests(IrcTestCase):
    """IRCv3 draft/chathistory on the hub's history (MemoryStore): dave (protected) reads."""

    def setUp(self) -> None:
        super().setUp()
        store, clock = self.harness.store, self.harness.clock
        self.harness.hub.history = History(clock, store, HistoryPolicy())
        store.since["dave"] = 0.0
        bob, _ = self.harness.register("bob")
        carol, _ = self.harness.register("carol")
        self.dave = self.irc()
        caps = "CAP REQ :batch draft/chathistory message-tags server-time"
        self.dave.register("dave", caps, "CAP END", f"PASS :{PASSWORD}")
        for n in range(10):  # #all: 0 to 9, a millisecond apart
            clock.advance(0.001)
            bob.dataReceived(f"BROADCAST :all {n}\r\n".encode())
        clock.advance(0.001)
        bob.dataReceived(b"SEND dave :to dave\r\n")
        clock.advance(0.001)
        self.dave.send("PRIVMSG bob :to bob")
        clock.advance(0.001)
        carol.dataReceived(b"SEND dave,bob :to both\r\n")
        self.dave.read()
        self.ids = [entry.id for entry in store.history[ALL]]

    def texts(self, got: list[str], target: str) -> list[str]:
        """The texts of a chathistory batch, checked whole."""
        start, *inner, end = got
        self.assertRegex(start, rf"^:{SERVER} BATCH \+(\d+) chathistory :{target}$")
        batch = start.split(" ")[2][1:]
        self.assertEqual(end, f":{SERVER} BATCH -{batch}")
        for row in inner:
            self.assertRegex(row, rf"^@batch={batch};time=[-0-9T:.]+Z;msgid=[0-9A-Z]{{26}} :")
        return [row.split(" :", 2)[-1] for row in inner]

    def when(self, n: int) -> str:
        return server_time(message_id_time(self.ids[n]))

    def test_isupport_and_the_cap_say_it(self) -> None:
        got = self.irc().register("erin")
        isupport = " ".join(g for g in got if " 005 " in g).split(" ")
        self.assertIn("CHATHISTORY=100", isupport)
        self.assertIn("MSGREFTYPES=msgid,timestamp", isupport)
        harness = ServerHarness()
        client = Irc(harness, IrcFactory(harness.clients, SERVER, history=HistoryPolicy(days=0)))
        got = client.register("erin", "CAP LS 302", "CAP END")
        self.assertNotIn("chathistory", " ".join(got).lower())
        self.assertEqual(numerics(client.send("CHATHISTORY LATEST #all * 10")), ["421"])

    def test_latest_before_and_after(self) -> None:
        all_ = [f"all {n}" for n in range(10)]
        self.assertEqual(self.texts(self.dave.send("CHATHISTORY LATEST #all * 20"), "#all"), all_)
        self.assertEqual(self.texts(self.dave.send("CHATHISTORY LATEST #ALL * 3"), "#all"), all_[-3:])
        got = self.dave.send(f"CHATHISTORY LATEST #all msgid={self.ids[4]} 20")
        self.assertEqual(self.texts(got, "#all"), all_[5:])
        got = self.dave.send(f"CHATHISTORY LATEST #all timestamp={self.when(4)} 20")
        self.assertEqual(self.texts(got, "#all"), all_[5:])
        got = self.dave.send(f"CHATHISTORY BEFORE #all msgid={self.ids[6].lower()} 20")
        self.assertEqual(self.texts(got, "#all"), all_[:6])
        got = self.dave.send(f"CHATHISTORY BEFORE #all timestamp={self.when(6)} 2")
        self.assertEqual(self.texts(got, "#all"), all_[4:6])
        got = self.dave.send(f"CHATHISTORY AFTER #all msgid={self.ids[3]} 3")
        self.assertEqual(self.texts(got, "#all"), all_[4:7])
        got = self.dave.send(f"CHATHISTORY AFTER #all timestamp={self.when(3)} 20")
        self.assertEqual(self.texts(got, "#all"), all_[4:])

    def test_around_and_between(self) -> None:
        all_ = [f"all {n}" for n in range(10)]
        got = self.dave.send(f"CHATHISTORY AROUND #all msgid={self.ids[7]} 1")
        self.assertEqual(self.texts(got, "#all"), all_[7:8])
        got = self.dave.send(f"CHATHISTORY AROUND #all msgid={self.ids[7]} 3")
        self.assertEqual(self.texts(got, "#all"), all_[6:9])
        got = self.dave.send(f"CHATHISTORY AROUND #all timestamp={self.when(7)} 3")
        self.assertEqual(self.texts(got, "#all"), all_[6:9])

        def between(start: str, end: str, limit: int) -> list[str]:
            return self.texts(self.dave.send(f"CHATHISTORY BETWEEN #all {start} {end} {limit}"), "#all")

        first, last = f"msgid={self.ids[0]}", f"msgid={self.ids[-1]}"
        self.assertEqual(between(first, last, 20), all_[1:-1])
        self.assertEqual(between(last, first, 20), all_[1:-1])
        self.assertEqual(between(first, last, 3), all_[1:4])
        self.assertEqual(between(last, first, 3), all_[-4:-1])
        self.assertEqual(between(f"timestamp={self.when(9)}", f"timestamp={self.when(0)}", 20), all_[1:-1])

    def test_a_direct_conversation_reads_as_it_went(self) -> None:
        got = self.dave.send("CHATHISTORY LATEST Bob * 10")
        self.assertEqual(self.texts(got, "Bob"), ["to dave", "to bob"])
        self.assertIn(":bob!bob@msgsvc PRIVMSG dave :to dave", got[1])
        self.assertIn(":dave!dave@msgsvc PRIVMSG bob :to bob", got[2])
        got = self.dave.send("CHATHISTORY LATEST bob,carol * 10")
        self.assertEqual(self.texts(got, "bob,carol"), ["(to you and bob) to both"])
        self.assertEqual(self.texts(self.dave.send("CHATHISTORY LATEST erin * 10"), "erin"), [])

    def test_targets_lists_all_and_the_two_person_conversations(self) -> None:
        end = "timestamp=2262-01-01T00:00:00Z"
        got = self.dave.send(f"CHATHISTORY TARGETS timestamp=1970-01-01T00:00:00.000Z {end} 9")
        start, *inner, _ = got
        self.assertRegex(start, rf"^:{SERVER} BATCH \+\d+ :draft/chathistory-targets$")
        self.assertEqual(len(inner), 2)  # the multicast has no IRC target
        self.assertTrue(inner[0].endswith(f" CHATHISTORY TARGETS #all :{self.when(9)}"), inner)
        self.assertRegex(inner[1], r" CHATHISTORY TARGETS bob :")
        got = self.dave.send(f"CHATHISTORY TARGETS timestamp={self.when(9)} {end} 10")
        self.assertEqual(len(got), 3)
        self.assertIn("TARGETS bob", got[1])

    def test_what_is_wrong_fails_and_a_label_wraps_the_batch(self) -> None:
        fails = {
            "CHATHISTORY": "INVALID_PARAMS *",
            "CHATHISTORY NOPE #all * 1": "INVALID_PARAMS NOPE",
            "CHATHISTORY LATEST #all *": "NEED_MORE_PARAMS LATEST",
            "CHATHISTORY LATEST #all * 0": "INVALID_PARAMS LATEST 0",
            "CHATHISTORY LATEST #all * ²": "INVALID_PARAMS LATEST ²",
            "CHATHISTORY BEFORE #all * 5": "INVALID_PARAMS BEFORE *",
            "CHATHISTORY BEFORE #all msgid=nope 5": "INVALID_PARAMS BEFORE msgid=nope",
            "CHATHISTORY BEFORE #all timestamp=2026-13-45T00:00:00Z 5": "INVALID_PARAMS BEFORE",
            "CHATHISTORY LATEST a.b! * 5": "INVALID_TARGET LATEST a.b!",
            "CHATHISTORY TARGETS * * 5": "INVALID_PARAMS TARGETS",
        }
        for sent, said in fails.items():
            (got,) = self.dave.send(sent)
            self.assertTrue(got.startswith(f":{SERVER} FAIL CHATHISTORY {said}"), (sent, got))
        erin = self.irc()
        erin.register("erin")  # unprotected: no direct history
        (got,) = erin.send("CHATHISTORY LATEST bob * 5")
        self.assertRegex(got, rf"^:{SERVER} FAIL CHATHISTORY INVALID_TARGET LATEST bob :.*protect")
        got = erin.send("CHATHISTORY LATEST #all * 5")  # no batch asked for: the lines alone
        self.assertEqual(got, [f":bob!bob@msgsvc PRIVMSG #all :all {n}" for n in range(5, 10)])
        self.patch(self.harness.store, "page_before", lambda *_: fail(StoreError("disk")))
        with capturedLogs() as events:
            got = self.dave.send("CHATHISTORY LATEST bob * 5")
        why = "the history cannot be read now; try again later"
        self.assertEqual(got, [f":{SERVER} FAIL CHATHISTORY MESSAGE_ERROR LATEST :{why}"])
        self.assertEqual([formatEvent(e) for e in events], ["could not read the history: disk"])

    def test_a_labeled_request_gets_its_batch_in_a_labeled_batch(self) -> None:
        self.dave.send("CAP REQ :labeled-response")
        got = self.dave.send("@label=h CHATHISTORY LATEST #all * 2")
        self.assertEqual(got[0], f"@label=h :{SERVER} BATCH +1 labeled-response")
        self.assertRegex(got[1], rf"^@batch=1 :{SERVER} BATCH \+2 chathistory :#all$")
        self.assertTrue(got[2].startswith("@batch=2;time="), got[2])
        self.assertEqual(got[-2:], [f"@batch=1 :{SERVER} BATCH -2", f":{SERVER} BATCH -1"])

    def test_without_batch_the_lines_come_bare_and_a_long_page_over_several_passes(self) -> None:
        self.patch(base, "LISTING_STEP", 3)
        self.dave.send("CAP REQ :-batch")
        got = self.dave.send("CHATHISTORY LATEST #all * 10")
        self.assertEqual(len(got), 10)
        self.assertTrue(got[0].startswith("@time="), got[0])


class LimitsTests(SynchronousTestCase):
    def test_the_per_address_limit_counts_irc_and_tcp_together(self) -> None:
        harness = ServerHarness(limits=Limits(max_per_ip=1))
        harness.connect()
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        got = client.read()
        self.assertTrue(got[-1].startswith("ERROR :Closing Link:"), got)
        self.assertTrue(client.transport.disconnecting)

    def test_a_client_that_stops_reading_is_dropped(self) -> None:
        harness = ServerHarness(limits=Limits(max_send_queue=1000))
        bob, _ = harness.register("bob")
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        client.register("alice")
        client.transport.producer.pauseProducing()  # what TCP does when its buffer is full
        for _ in range(40):
            bob.dataReceived(b"SEND alice :" + b"z" * 40 + b"\r\n")
        harness.end_of_pass()
        self.assertTrue(client.read()[-1].endswith("(send queue exceeded)"))
        self.assertTrue(client.transport.disconnecting)
        self.assertIsNone(harness.hub.user("alice").peer)  # type: ignore[union-attr]

    def test_a_flooder_waits_then_is_dropped(self) -> None:
        harness = ServerHarness(limits=Limits(line_rate=1, line_burst=2, flood_timeout=5))
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        client.register("alice")
        client.send(*["PING :x"] * 10)
        self.assertEqual(client.transport.producerState, "paused")  # its lines wait in the socket
        for _ in range(8):
            harness.clock.advance(1)
        self.assertTrue(client.read()[-1].endswith("(flooding)"))

    def test_a_silent_client_is_pinged_then_dropped(self) -> None:
        harness = ServerHarness()
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        client.register("alice")
        harness.clock.advance(Limits().ping_interval)
        (ping,) = client.read()
        self.assertRegex(ping, r"^PING :\d+$")
        harness.clock.advance(Limits().ping_timeout)
        self.assertTrue(client.read()[-1].endswith("(ping timeout)"))

    def test_a_client_that_never_registers_is_dropped(self) -> None:
        harness = ServerHarness()
        client = Irc(harness, IrcFactory(harness.clients, SERVER))
        client.send("NICK alice")
        harness.clock.advance(Limits().hello_timeout + 1)
        self.assertEqual(client.read(), ["ERROR :Closing Link: 127.0.0.1:40001 (registration timed out)"])


#: What msgsvc's texts can hold: decoded UTF-8 (no surrogates), without CR or LF.
MSGSVC_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")


class TextLinesTests(SynchronousTestCase):
    """Issue 27, F1: a USER of ~480 bytes left text_lines no room, and its loop never advanced."""

    @settings(max_examples=300, deadline=None)
    @given(
        prefix=st.integers(0, 2000),
        text=st.text(MSGSVC_TEXT, min_size=1, max_size=4096),
        whole=st.booleans(),
    )
    def test_every_piece_holds_something_and_the_lines_are_bounded(
        self, prefix: int, text: str, whole: bool
    ) -> None:
        head = f":{'p' * prefix} PRIVMSG bob :"
        data = text_lines("PRIVMSG", "bob", text, "p" * prefix, whole=whole)
        rows = data.split(b"\r\n")[:-1]
        room = max(510 - len(head), MIN_ROOM)
        size = len(text.encode())
        self.assertLessEqual(len(rows), -(-size // (room * 3 // 4)) + 1)
        pieces = []
        for row in rows:
            self.assertTrue(row.startswith(head.encode()))
            piece = row[len(head) :]
            pieces.append(piece.decode("utf-8"))  # whole characters in each
            self.assertTrue(piece or size == 0 or len(rows) == 1)
            if len(head) <= 510 - MIN_ROOM:
                self.assertLessEqual(len(row) + 2, 512)
        if whole and size <= ONE_LINE:  # what an IRC client sent in one line: one line, cut if it must be
            self.assertEqual(len(rows), 1)
            self.assertTrue(text.startswith(pieces[0]))
            self.assertTrue(pieces[0] == text or len(rows[0]) + 2 > 512 - 4)  # cut only what did not fit
        else:
            self.assertEqual("".join(pieces).replace(" ", ""), text.replace(" ", ""))

    def test_spaces_after_a_cut_are_not_a_line(self) -> None:
        rows = text_lines("PRIVMSG", "bob", "x" * 470 + " " * 40, "alice!alice@msgsvc").split(b"\r\n")[:-1]
        self.assertEqual([len(row.partition(b" :")[2]) for row in rows], [477])

    def test_a_text_an_irc_client_could_send_in_one_line_is_one_line(self) -> None:
        """irctest's buffering.py: a PRIVMSG that filled its sender's 512 bytes came in two lines."""
        mask = "nick1!username@msgsvc"
        for text in ("a" * 496, "a" * 492 + "\U0001f603", "a" * 471 + "\U0001f603", "a" * ONE_LINE):
            (row,) = text_lines("PRIVMSG", "nick2", text, mask, whole=True).split(b"\r\n")[:-1]
            whole = f":{mask} PRIVMSG nick2 :{text}".encode()
            if len(whole) <= 510:
                self.assertEqual(row, whole)
            else:  # cut between two characters, as close to 512 bytes as they allow
                self.assertIn(len(row), range(510 - 3, 511))
                self.assertTrue(text.startswith(row.partition(b" :")[2].decode("utf-8")))
        self.assertEqual(
            len(text_lines("PRIVMSG", "nick2", "a" * (ONE_LINE + 1), mask, whole=True).split(b"\r\n")), 3
        )
        # Another front's text of the same length loses nothing: split, as every longer text is.
        rows = text_lines("PRIVMSG", "nick2", "a" * ONE_LINE, mask).split(b"\r\n")[:-1]
        self.assertEqual(b"".join(r.partition(b" :")[2] for r in rows), b"a" * ONE_LINE)

    def test_the_longest_head_the_front_makes_leaves_room(self) -> None:
        nick, ident = "n" * 32, "u" * USERLEN
        text = "é" * 2048  # 4,096 bytes
        rows = text_lines("PRIVMSG", "t" * 32, text, f"{nick}!{ident}@msgsvc").split(b"\r\n")[:-1]
        self.assertLessEqual(len(rows), 15)
        self.assertTrue(all(len(row) + 2 <= 512 for row in rows))


class HostileInputTests(IrcTestCase):
    """Issue 27's IRC findings, each as the attack that found it."""

    def test_a_long_ident_is_cut_and_a_message_to_oneself_still_comes(self) -> None:  # F1
        client = self.irc()
        got = client.send("NICK alice", "USER " + "a" * 480 + " 0 * :Alice")
        self.assertEqual(numerics(got)[0], "001")
        self.assertIn("USERLEN=32", " ".join(got))
        for text in ("hi", "é" + "x" * 10, "é" * 2048):
            got = client.send(f"PRIVMSG alice :{text}")
            self.assertLessEqual(len(got), 15)
            self.assertTrue(all(row.startswith(f":alice!{'a' * 32}@msgsvc PRIVMSG alice :") for row in got))
            self.assertTrue(all(len(row.encode()) + 2 <= 512 for row in got))

    def test_an_ident_that_would_change_the_mask_is_refused(self) -> None:  # F14
        client = self.irc()
        refused = f":{SERVER} 468 alice :Invalid user name: A-Z a-z 0-9 and _ . ~ - [ ] \\ ^ ` {{ | }} only"
        for ident in ("a@b", "a!b", "a\0b", "a\x1bb", "é"):
            self.assertEqual(client.send("NICK alice", f"USER {ident} 0 * :Alice"), [refused])
        self.assertEqual(numerics(client.send("USER a 0 * :\x02\x03")), ["461"])  # nothing printable
        self.assertEqual(numerics(client.send("USER ~a 0 * :Al\rice\x1b[31m " + "é" * 100))[0], "001")
        other = self.irc()
        other.register("olga")
        (whois, *_) = other.send("WHOIS alice")
        self.assertEqual(whois, f":{SERVER} 311 olga alice ~a msgsvc * :Alice[31m " + "é" * 59)  # 128 bytes
        self.assertIn(f" 352 olga * ~a msgsvc {SERVER} alice H :0 Alice[31m ", other.send("WHO alice")[0])

    def test_a_quit_reason_reaches_the_log_cleaned(self) -> None:  # F15
        events: list[Event] = []
        self.harness.hub.subscribe(events.append)
        client = self.irc()
        client.register("alice")
        got = client.send("QUIT :bye\r\x1b[2J\x07" + "x" * 300)
        reason = "bye[2J" + "x" * 122  # 128 bytes
        self.assertEqual(got, [f"ERROR :Closing Link: 127.0.0.1:40001 (Quit: {reason})"])
        client.session.connectionLost(Failure(ConnectionDone()))
        (gone,) = [e for e in events if isinstance(e, Disconnected)]
        self.assertEqual(gone.reason, f"quit: {reason}")

    def test_non_ascii_digits_are_not_numbers(self) -> None:  # F13
        client = self.irc()
        offered = (
            "account-tag away-notify batch draft/chathistory draft/read-marker echo-message extended-join"
            " labeled-response message-tags multi-prefix sasl server-time"
        )
        caps = [f":{SERVER} CAP * LS :{offered}"]
        self.assertEqual(client.send("CAP LS ²"), caps)
        self.assertEqual(client.send("CAP LS ١٢"), caps)
        client.send("CAP END")
        client.register("alice")
        acknowledged: list[int] = []
        self.patch(User, "acknowledge", lambda user, up_to: acknowledged.append(up_to))
        self.assertEqual(client.send("PONG :ack-²", "PONG :ack-①", "PONG :ack-١٢", "PONG :ack-12"), [])
        self.assertEqual(acknowledged, [12])

    def test_one_deadline_from_connect_to_registration_after_a_failed_sasl(self) -> None:  # F7
        client = self.irc()
        client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
        wrong = base64.b64encode(b"\0dave\0not the password").decode()
        self.assertEqual(numerics(client.send(f"AUTHENTICATE {wrong}")), ["904"])
        self.harness.clock.advance(Limits().hello_timeout)
        self.assertTrue(client.read()[-1].endswith("(registration timed out)"))
        self.assertTrue(client.transport.disconnecting)

    def test_one_deadline_from_connect_to_registration_whatever_the_nicks(self) -> None:  # F7
        self.harness.register("bob")
        client = self.irc()
        client.send("USER b 0 * :B")
        for _ in range(9):
            self.assertEqual(numerics(client.send("NICK bob")), ["433"])
            self.harness.clock.advance(3)
        self.assertFalse(client.transport.disconnecting)
        client.send("NICK bob")
        self.harness.clock.advance(3)
        self.assertTrue(client.read()[-1].endswith("(registration timed out)"))

    def test_a_login_checked_past_the_deadline_is_let_finish(self) -> None:  # F7
        client = self.irc()
        self.harness.hashing.hold = True  # the password check takes its time
        client.send(f"PASS :{PASSWORD}", "NICK dave", "USER dave 0 * :D")
        self.harness.clock.advance(Limits().hello_timeout + 5)
        self.assertFalse(client.transport.disconnecting)
        self.harness.hashing.hold = False
        self.harness.hashing.pending.pop().callback(None)
        self.assertEqual(numerics(client.read())[0], "001")

    def test_sasl_chunks_are_bounded(self) -> None:  # F8
        client = self.irc()
        client.send("CAP REQ :sasl", "AUTHENTICATE PLAIN")
        self.assertEqual(client.send("AUTHENTICATE " + "A" * 400, "AUTHENTICATE " + "A" * 400), [])
        got = client.send("AUTHENTICATE " + "A" * 400)
        # 904, as irctest's sasl.py::testPlainInfiniteMessages (and Ergo) expect of chunks without end
        self.assertEqual(
            got, [f":{SERVER} 904 * :SASL authentication failed: a payload holds at most 800 characters"]
        )
        self.assertEqual(numerics(client.send("AUTHENTICATE AAAA")), ["908", "904"])  # over: not a mechanism

    def test_a_channel_named_many_times_is_one_broadcast(self) -> None:  # F3
        bob, bob_transport = self.harness.register("bob")
        client = self.irc()
        client.register("alice")
        client.send("JOIN #all")
        lines(bob_transport)
        self.assertEqual(client.send("PRIVMSG #all," + ",".join(["#ALL"] * 1500) + " :x"), [])
        self.assertEqual(lines(bob_transport), ["MSG alice broadcast * :x"])
        targets = ",".join(["#all"] + [f"n{i}" for i in range(32)])
        self.assertEqual(
            client.send(f"PRIVMSG {targets} :x"), [f":{SERVER} 407 alice n31 :Too many targets: at most 32"]
        )
        self.assertEqual(lines(bob_transport), [])
        self.assertEqual(client.send(f"NOTICE {targets} :x"), [])
        got = client.send("PRIVMSG ,, :x", "JOIN :", "PART ,", "NAMES :")
        self.assertEqual(numerics(got), ["411", "461", "461", "353", "366"])
        many = ",".join(f"n{i}" for i in range(1200))
        got = client.send(f"PRIVMSG {many} :x", f"JOIN {many}", f"WHOIS {many}")
        self.assertEqual(numerics(got), ["407"] * 3)


class ListingTests(SynchronousTestCase):
    """Issue 27, F2 and F4: a reply that goes through the log or the users online is sent a few
    entries a reactor pass, whatever their number; a command costs one such reply at most."""

    LOG = 5000
    ONLINE = 250

    def setUp(self) -> None:
        records = tuple(UserRecord(f"user{i:04}", 1.0, 1.0) for i in range(self.LOG))
        self.harness = ServerHarness(Limits(max_per_ip=1000), max_clients=1000, records=records)
        self.factory = IrcFactory(self.harness.clients, SERVER)
        for i in range(self.ONLINE):
            self.harness.register(f"user{i:04}")
        self.client = Irc(self.harness, self.factory)
        self.client.register("alice")
        self.work = Work(self.factory)

    def run_line(self, text: str) -> list[tuple[int, int]]:
        """Send one line; the entries walked and the bytes written in each reactor pass until answered."""
        clock = self.harness.clock
        self.client.session.dataReceived(text.encode() + b"\r\n")
        passes = [(self.work.take(), len(self.client.transport.value()))]
        self.client.transport.clear()
        while any(call.getTime() <= clock.seconds() for call in clock.getDelayedCalls()):
            one_pass(clock)
            passes.append((self.work.take(), len(self.client.transport.value())))
            self.client.transport.clear()
        self.assertEqual(self.work.sorted_logs, 0)
        return passes

    def assert_paced(self, passes: list[tuple[int, int]], walked: int) -> None:
        self.assertEqual(sum(w for w, _ in passes), walked)
        for w, size in passes:
            self.assertLessEqual(w, LISTING_STEP)
            self.assertLessEqual(size, LISTING_STEP * 512)

    def test_names_with_one_target_many_times(self) -> None:
        passes = self.run_line("NAMES " + ",".join(["#all"] * 4))
        self.assert_paced(passes, self.ONLINE + 1)
        self.assertEqual(numerics(self.run_line_text("NAMES " + ",".join(["#all"] * 1600)))[-1], "366")

    def run_line_text(self, text: str) -> list[str]:
        self.client.session.dataReceived(text.encode() + b"\r\n")
        return self.client.read()

    def test_names_lists_who_is_online(self) -> None:
        got = self.run_line_text("NAMES #all")
        names = " ".join(g.split(" :", 1)[1] for g in got if " 353 " in g).split()
        self.assertEqual(names, ["alice"] + [f"user{i:04}" for i in range(self.ONLINE)])
        self.assertTrue(all(len(g.encode()) + 2 <= 512 for g in got))

    def test_the_motd_lists_the_log_paced(self) -> None:
        passes = self.run_line("MOTD")
        self.assert_paced(passes, self.LOG + 1)
        self.assertGreater(len(passes), self.LOG // LISTING_STEP)

    def test_who_walks_the_users_online_paced_and_a_hopeless_mask_none(self) -> None:
        self.assert_paced(self.run_line("WHO *"), self.ONLINE + 1)
        self.assert_paced(self.run_line("WHO " + "*a" * 20 + "*b"), self.ONLINE + 1)
        self.assert_paced(self.run_line("WHO " + "*a" * 40 + "*b"), 0)  # 41 characters a name cannot hold
        self.assert_paced(self.run_line("WHO user0007"), 0)  # looked up
        got = self.run_line_text("WHO user000?")
        self.assertEqual(numerics(got), ["352"] * 10 + ["315"])
        self.assertEqual(numerics(self.run_line_text("WHO ***user**7")), ["352"] * 25 + ["315"])

    def test_list_and_ison_cost_no_walk(self) -> None:
        self.assertEqual(self.run_line("LIST")[0][0], 0)
        got = self.run_line_text("ISON " + " ".join(f"user{i:04}" for i in range(240, 280)))
        self.assertEqual(got, [f":{SERVER} 303 alice :" + " ".join(f"user{i:04}" for i in range(240, 250))])
        got = self.run_line_text("ISON " + " ".join(f"user{i:04}" for i in range(800)))
        self.assertEqual(got, [f":{SERVER} 407 alice ISON :Too many names: at most 400 bytes of them"])

    def test_the_next_line_waits_for_the_listing(self) -> None:
        self.client.session.dataReceived(b"MOTD\r\nPING :after\r\n")
        got = self.client.read()
        self.assertEqual(numerics(got)[-2:], ["376", "PONG"])

    def test_a_listing_waits_while_the_client_does_not_read(self) -> None:
        """The server makes no more of it meanwhile (nor of the lines after it, which wait unread)."""
        self.client.transport.producer.pauseProducing()  # the client reads nothing: its buffer is full
        for _ in range(10):
            self.client.session.dataReceived(b"MOTD\r\n")
            self.harness.end_of_pass()
        self.assertEqual(self.work.take(), LISTING_STEP - 4)  # a pass (with 4 lines of text), then none
        self.assertIsNone(self.client.session._pacer._call)
        self.assertFalse(self.client.transport.disconnecting)
        self.client.transport.producer.resumeProducing()  # it read: the listing goes on
        self.assertEqual(self.work.take(), LISTING_STEP)
        self.client.session.connectionLost(Failure(ConnectionDone()))
        self.client.transport.producer.resumeProducing()  # a gone client's drained buffer walks nothing
        self.harness.end_of_pass()
        self.assertEqual(self.work.take(), 0)

    def test_the_directory_follows_the_hub(self) -> None:
        self.run_line_text("JOIN #all")
        got = self.run_line_text("LIST")
        self.assertIn(f" 322 alice #all {self.ONLINE + 1} ", got[1])
        newcomer, _ = self.harness.register("zed")
        self.assertIn(f" 322 alice #all {self.ONLINE + 2} ", " ".join(self.run_line_text("LIST")))
        newcomer.connectionLost(Failure(ConnectionDone()))
        self.assertIn(f" 322 alice #all {self.ONLINE + 1} ", " ".join(self.run_line_text("LIST")))
        self.assertIn("The username log (5002 names):", " ".join(self.run_line_text("MOTD")))
        self.assertTrue(self.harness.hub.remove("user4999", "asked to"))
        motd = " ".join(self.run_line_text("MOTD"))
        self.assertTrue("The username log (5001 names):" in motd and "user4999" not in motd)


class GlobTests(SynchronousTestCase):
    """Issue 27, F4: WHO masks matched without a regular expression compiled (and cached) for each."""

    @settings(max_examples=500, deadline=None)
    @given(mask=st.text("ab*?", max_size=10), name=st.text("ab", max_size=10))
    def test_as_fnmatch_on_masks_of_stars_and_question_marks(self, mask: str, name: str) -> None:
        self.assertEqual(glob_match(mask, name), fnmatchcase(name, mask))

    def test_a_pathological_mask_takes_bounded_steps(self) -> None:
        mask, name = "*a" * 32 + "*b", "a" * 32
        steps = 0

        def count(frame: FrameType, event: str, arg: object) -> object:
            nonlocal steps
            steps += event == "line"
            return count

        tracing = sys.gettrace()  # a coverage tool's, say
        sys.settrace(lambda frame, event, arg: count if frame.f_code is glob_match.__code__ else None)
        try:
            self.assertFalse(glob_match(mask, name))
        finally:
            sys.settrace(tracing)
        self.assertGreater(steps, len(name))
        self.assertLess(steps, 10 * len(mask) * len(name))  # lines run: O(len(mask) * len(name))


class NewGroupsTests(IrcTestCase):
    """``--new-groups-per-day`` on IRC (attack36 F2): a PRIVMSG to nicks opening a group past it is
    ``FAIL PRIVMSG TOO_MANY_NEW_GROUPS`` (IRCv3 standard replies, as CHATHISTORY's), and reaches nobody."""

    def bob_and_dave(self) -> tuple[StringTransport, Irc]:
        """Bob's line client's transport and dave's IRC client (protected; carol and erin online too),
        where a name opens one group a day."""
        self.harness.hub.history = History(self.harness.clock, self.harness.store, HistoryPolicy(new_groups=1))
        self.harness.store.since["dave"] = 0.0
        _, b = self.harness.register("bob")
        self.harness.register("carol")
        self.harness.register("erin")
        dave = self.irc()
        dave.register("dave", f"PASS :{PASSWORD}")
        return b, dave

    def test_a_privmsg_opening_a_group_past_the_bound_fails(self) -> None:
        b, dave = self.bob_and_dave()
        self.assertEqual(dave.send("PRIVMSG bob,carol :one"), [])
        text = "you opened 1 new group conversations in a day, the most this server allows: send to a group you have, or try again later"
        self.assertEqual(dave.send("PRIVMSG bob,erin :two"), [f":{SERVER} FAIL PRIVMSG TOO_MANY_NEW_GROUPS :{text}"])
        self.assertEqual(dave.send("PRIVMSG carol,bob :three"), [])
        self.assertEqual([line.rsplit(":", 1)[1] for line in lines(b) if line.startswith("MSG ")], ["one", "three"])

    def test_a_labeled_privmsg_refused_once_the_store_answers_ends_its_reply(self) -> None:
        """IRCv3 labeled-response: the FAIL of a PRIVMSG refused after the store's count came ends the
        line's batch (it stayed open until the client's next line)."""
        b, dave = self.bob_and_dave()
        count, held = self.harness.store.open_group, []

        def later(*asked: object) -> Deferred[object]:
            answer: Deferred[object] = Deferred()
            held.append((count(*asked), answer))  # type: ignore[arg-type]
            return answer

        self.harness.store.open_group = later  # type: ignore[method-assign]
        dave.send("CAP REQ :batch labeled-response")
        self.assertEqual(dave.send("@label=a PRIVMSG bob,carol :one"), [f"@label=a :{SERVER} BATCH +1 labeled-response"])
        kept, answer = held.pop()
        kept.chainDeferred(answer)
        self.assertEqual(dave.read(), [f":{SERVER} BATCH -1"])
        self.assertEqual(dave.send("@label=b PRIVMSG bob,erin :two"), [f"@label=b :{SERVER} BATCH +2 labeled-response"])
        kept, answer = held.pop()
        kept.chainDeferred(answer)
        text = "you opened 1 new group conversations in a day, the most this server allows: send to a group you have, or try again later"
        self.assertEqual(dave.read(), [f"@batch=2 :{SERVER} FAIL PRIVMSG TOO_MANY_NEW_GROUPS :{text}", f":{SERVER} BATCH -2"])

    def test_a_notice_opening_a_group_past_the_bound_is_not_answered(self) -> None:
        """attack37 F5: a NOTICE is never answered with an error (RFC 2812; docs/irc.rst), but one to
        nicks opening a group past --new-groups-per-day got ``FAIL PRIVMSG TOO_MANY_NEW_GROUPS`` (real
        sockets: 30 of 30 NOTICEs past the 100th new group answered so, naming a PRIVMSG)."""
        b, dave = self.bob_and_dave()
        self.assertEqual(dave.send("NOTICE bob,carol :one"), [])
        self.assertEqual(dave.send("NOTICE bob,erin :two"), [])
        self.assertEqual([line.rsplit(":", 1)[1] for line in lines(b) if line.startswith("MSG ")], ["one"])

    def test_a_notice_to_a_group_the_server_cannot_count_now_is_not_answered(self) -> None:
        """The other refusal a NOTICE to nicks meets there: past the groups a name opens while the
        state cannot count (UNAVAILABLE), which a PRIVMSG is told as a server NOTICE."""
        self.harness.store.open_group = lambda *a: fail(OSError("database is locked"))  # type: ignore[method-assign]
        b, dave = self.bob_and_dave()
        self.assertEqual(dave.send("NOTICE bob,carol :one"), [])
        self.assertEqual(dave.send("NOTICE bob,erin :two"), [])
        text = "the server cannot count new group conversations now: send to a group you sent to lately, or try again later"
        self.assertEqual(dave.send("PRIVMSG bob,erin :three"), [f":{SERVER} NOTICE dave :{text}"])
        self.assertEqual([line.rsplit(":", 1)[1] for line in lines(b) if line.startswith("MSG ")], ["one"])
