"""Accounts over StringTransport: protecting a name, logging in to it, throttling, resets."""

from __future__ import annotations

from twisted.internet.defer import fail
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.auth.accounts import NEW_ACCOUNTS, NEW_NAMES
from msgsvc.auth.store import Reset, StillOnline
from msgsvc.auth.throttle import LoginThrottle, _Tallies
from msgsvc.eventlog import HubEventLogger
from msgsvc.hub.contracts import Refusal, Refused, UserRecord
from msgsvc.hub.events import ProtectionChanged, RegistrationRefused, UserJoined, UserRemoved
from msgsvc.hub.rules import PASSWORD_MAX_BYTES, check_password_rules
from msgsvc.ratelimit import AddressRate, Rate
from msgsvc.state import StoreError
from msgsvc.wire import Code, Limits

from .support.fakes import FakeNetwork
from .support.harness import PASSWORD, ServerHarness, lines


class AccountsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = ServerHarness(
            records=(UserRecord("alice", 1.0, 2.0, protected=True), UserRecord("dave", 1.0, 2.0))
        )
        self.events: list[object] = []
        self.server.hub.subscribe(self.events.append)

    def hello(self, line: str):  # type: ignore[no-untyped-def]
        protocol, transport = self.server.connect()
        protocol.dataReceived(f"{line}\r\n".encode())
        return protocol, transport

    def refused(self, line: str, code: Code) -> list[str]:
        """``line`` gets ERROR ``code`` and BYE (after any wait), and the connection closes."""
        protocol, transport = self.hello(line)
        self.server.clock.advance(LoginThrottle.LONGEST)
        answer = lines(transport)
        self.assertEqual(len(answer), 2, answer)
        self.assertTrue(answer[0].startswith(f"ERROR {code.value} :"), answer)
        self.assertTrue(answer[1].startswith("BYE :"), answer)
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        return answer

    def user_line(self, transport, name: str) -> str:  # type: ignore[no-untyped-def]
        [line] = [x for x in lines(transport) if x.startswith(f"USER {name} ")]
        return line


class LoginTests(AccountsTestCase):
    def test_a_protected_name_without_its_password(self) -> None:
        answer = self.refused("HELLO alice", Code.AUTH_REQUIRED)
        self.assertEqual(answer[0], "ERROR AUTH_REQUIRED :alice is protected: give its password")
        self.assertFalse(self.server.hub.user("alice").online)  # type: ignore[union-attr]

    def test_a_wrong_password(self) -> None:
        answer = self.refused("HELLO alice :wrong horse", Code.AUTH_FAILED)
        self.assertEqual(answer[0], "ERROR AUTH_FAILED :wrong password for alice")
        refusal = RegistrationRefused(
            "alice", "127.0.0.1:40001", Refusal.AUTH_FAILED, "wrong password for alice"
        )
        self.assertIn(refusal, self.events)

    def test_the_right_password(self) -> None:
        _, transport = self.hello(f"HELLO ALICE :{PASSWORD}")
        self.assertEqual(
            lines(transport)[:2], ["WELCOME alice :welcome to msgsvc", "USER alice online protected"]
        )
        self.assertEqual(self.server.hashing.checked, [PASSWORD])

    def test_an_online_protected_name_attaches_its_password_and_refuses_others(self) -> None:
        """Its password opens another session; a wrong one or none is refused as for a name offline (checked,
        and throttled), never USERNAME_TAKEN; the session online is left alone."""
        _, first = self.server.register("alice", PASSWORD)
        self.refused("HELLO alice :wrong horse", Code.AUTH_FAILED)
        self.refused("HELLO alice", Code.AUTH_REQUIRED)
        _, second = self.hello(f"HELLO alice :{PASSWORD}")
        self.assertEqual(lines(second)[0], "WELCOME alice :welcome to msgsvc")
        self.assertEqual(self.server.hashing.checked[-2:], ["wrong horse", PASSWORD])
        self.assertFalse(first.disconnecting)
        view = self.server.hub.user("alice")
        assert view is not None
        self.assertEqual(len(view.sessions), 2)

    def test_logins_without_a_password_cannot_hold_a_protected_name_from_its_owner(self) -> None:
        self.server.store.hold_lookups = True  # each password lookup waits until the test says
        squatters = [self.hello("HELLO alice")[1] for _ in range(3)]
        _, owner = self.hello(f"HELLO alice :{PASSWORD}")
        self.assertEqual(lines(owner), [])  # not refused USERNAME_TAKEN: the squatters hold nothing
        while self.server.store.pending_lookups:
            self.server.store.pending_lookups.pop(0).callback(None)
        self.assertEqual(lines(owner)[0], "WELCOME alice :welcome to msgsvc")
        for squatter in squatters:
            self.assertEqual(lines(squatter)[0], "ERROR AUTH_REQUIRED :alice is protected: give its password")

    def release_hashing(self) -> None:
        while self.server.hashing.pending:
            self.server.hashing.pending.pop(0).callback(None)

    def test_wrong_passwords_being_checked_cannot_hold_a_protected_name_from_its_owner(self) -> None:
        self.server.hashing.hold = True  # each check waits until the test says
        squatters = [self.hello("HELLO alice :wrong horse")[1] for _ in range(3)]
        _, owner = self.hello(f"HELLO alice :{PASSWORD}")
        self.assertEqual(lines(owner), [])  # not refused USERNAME_TAKEN: being checked, they hold nothing
        self.release_hashing()
        self.server.clock.advance(1)  # three guesses being checked: the owner's fourth attempt waits 1 s
        self.release_hashing()
        self.assertEqual(lines(owner)[0], "WELCOME alice :welcome to msgsvc")
        for squatter in squatters:
            self.assertEqual(lines(squatter)[0], "ERROR AUTH_FAILED :wrong password for alice")

    def test_the_owner_twice_at_once_gets_two_sessions_and_joins_once(self) -> None:
        self.server.hashing.hold = True
        _, first = self.hello(f"HELLO alice :{PASSWORD}")
        _, second = self.hello(f"HELLO ALICE :{PASSWORD}")
        self.release_hashing()
        self.assertEqual(lines(first)[0], "WELCOME alice :welcome to msgsvc")
        self.assertEqual(lines(second)[0], "WELCOME alice :welcome to msgsvc")
        self.assertEqual([e for e in self.events if isinstance(e, RegistrationRefused)], [])
        self.assertEqual(len([e for e in self.events if isinstance(e, UserJoined)]), 1)

    def test_a_client_that_leaves_while_its_password_is_checked_holds_nothing(self) -> None:
        self.server.hashing.hold = True
        protocol, _ = self.hello(f"HELLO alice :{PASSWORD}")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.release_hashing()
        self.assertFalse(self.server.hub.user("alice").online)  # type: ignore[union-attr]
        self.server.hashing.hold = False
        _, transport = self.hello(f"HELLO alice :{PASSWORD}")
        self.assertEqual(lines(transport)[0], "WELCOME alice :welcome to msgsvc")

    def test_an_unprotected_name_needs_no_password(self) -> None:
        _, transport = self.hello("HELLO dave")
        self.assertEqual(self.user_line(transport, "dave"), "USER dave online")

    def test_a_password_claims_an_unprotected_name(self) -> None:
        _, transport = self.hello("HELLO dave :dave's secret")
        self.assertEqual(self.user_line(transport, "dave"), "USER dave online protected")
        self.assertEqual(self.server.store.hashes["dave"], "fake$dave's secret")
        self.assertIn(ProtectionChanged("dave", True, "claimed with a password at login"), self.events)

    def test_a_new_name_is_claimed_too(self) -> None:
        _, transport = self.hello("HELLO Erin :erin's secret")
        self.assertEqual(
            lines(transport)[:2], ["WELCOME Erin :welcome to msgsvc", "USER alice offline protected"]
        )
        self.assertTrue(self.server.hub.user("erin").protected)  # type: ignore[union-attr]

    def test_a_claim_with_a_short_password_is_refused_and_claims_nothing(self) -> None:
        answer = self.refused("HELLO dave :short", Code.PASSWORD_INVALID)
        self.assertEqual(answer[0], "ERROR PASSWORD_INVALID :a password needs at least 8 characters")
        self.assertNotIn("dave", self.server.store.hashes)
        self.hello("HELLO dave")  # the name is free again

    def test_a_claim_abandoned_before_the_name_is_claimed_stores_nothing(self) -> None:
        self.server.hashing.hold = True
        protocol, _ = self.hello("HELLO dave :dave's secret")
        protocol.connectionLost(Failure(ConnectionDone()))  # gone while the hash is being made
        self.server.hashing.pending.pop().callback(None)
        self.assertNotIn("dave", self.server.store.hashes)
        self.assertFalse(self.server.hub.user("dave").protected)  # type: ignore[union-attr]
        self.server.register("dave")  # anyone's to claim, as before

    def test_lines_after_hello_wait_for_the_check(self) -> None:
        self.server.register("bob")
        self.server.hashing.hold = True
        _, transport = self.hello(f"HELLO alice :{PASSWORD}\r\nSEND bob :hi")
        self.assertEqual(lines(transport), [])
        self.server.hashing.pending.pop().callback(None)
        self.assertEqual(lines(transport)[-1], "SENT 1 - -")

    def test_a_slow_check_is_not_a_missing_hello(self) -> None:
        self.server.hashing.hold = True
        _, transport = self.hello(f"HELLO alice :{PASSWORD}")
        self.server.clock.advance(self.server.clients.limits.hello_timeout * 2)
        self.server.hashing.pending.pop().callback(None)
        self.assertEqual(lines(transport)[0], "WELCOME alice :welcome to msgsvc")

    def test_passwords_are_never_logged(self) -> None:
        self.server.hub.subscribe(HubEventLogger())
        with capturedLogs() as events:
            self.hello("HELLO alice :not the password")
            self.hello(f"HELLO alice :{PASSWORD}")
            protocol, _ = self.server.register("bob")
            protocol.dataReceived(b"PASSWORD :bobs new password\r\nPASSWORD :tiny77\r\n")
        text = "\n".join(formatEvent(e) for e in events)
        for password in ("not the password", PASSWORD, "bobs new password", "tiny77"):
            self.assertNotIn(password, text)
        self.assertIn("wrong password for alice", text)


class ClaimTests(AccountsTestCase):
    """A first password is stored only once the name is claimed in the whole service (a Redis node's
    claim, here a FakeNetwork's), and only if the name has none: a claim lost stores nothing."""

    def setUp(self) -> None:
        self.network = FakeNetwork()
        self.server = ServerHarness(records=(UserRecord("dave", 1.0, 2.0),), network=self.network)
        self.events = []
        self.server.hub.subscribe(self.events.append)

    def test_a_new_name_claimed_by_another_node_meanwhile_is_refused_and_stores_nothing(self) -> None:
        """The other node won the claim after this one read no password for the name (its holder not
        known here yet): USERNAME_TAKEN, and the refused password is not the name's."""
        self.network.taken.add("erin")
        self.refused("HELLO erin :mallory's secret", Code.USERNAME_TAKEN)
        self.assertEqual(self.network.claims, ["erin"])  # refused by the claim, the password checked
        self.assertNotIn("erin", self.server.store.hashes)
        self.assertIsNone(self.server.hub.user("erin"))

    def test_a_password_claim_of_a_name_held_without_one_on_another_node_stores_nothing(self) -> None:
        """dave is online without a password on another node (not known here yet); a claim of dave with a
        password here loses the claim: dave stays unprotected, and the password opens nothing."""
        self.network.taken.add("dave")
        self.refused("HELLO dave :mallory's secret", Code.USERNAME_TAKEN)
        self.assertNotIn("dave", self.server.store.hashes)
        self.assertFalse(self.server.hub.user("dave").protected)  # type: ignore[union-attr]
        self.assertNotIn(ProtectionChanged("dave", True, "claimed with a password at login"), self.events)

    def test_a_password_stored_between_the_check_and_the_claim_must_be_given(self) -> None:
        """Someone claimed erin with another password and left while this login's hash was made: the
        first password is not overwritten; this one is refused (AUTH_FAILED) before it is online, and its
        claim released."""
        self.server.hashing.hold = True
        _, transport = self.hello("HELLO erin :mallory's secret")
        self.server.store.hashes["erin"] = "fake$erin's secret"  # claimed and left meanwhile
        self.server.hashing.hold = False
        self.server.hashing.pending.pop().callback(None)
        answer = lines(transport)
        self.assertEqual(answer[0], "ERROR AUTH_FAILED :wrong password for erin", answer)
        self.assertEqual(self.server.store.hashes["erin"], "fake$erin's secret")
        self.assertEqual(self.network.released, ["erin"])
        self.assertIsNone(self.server.hub.user("erin"))  # never online, not even for the store's answer
        self.assertEqual([e for e in self.events if isinstance(e, UserJoined)], [])
        self.server.register("erin", "erin's secret")

    def test_a_first_password_never_attaches_to_sessions_online(self) -> None:
        """erin's password was removed by the operator's command (another process: not picked up here
        yet) while erin is online: a login with a new password does not join erin's session, nor store."""
        self.server.register("erin", "erin's secret")
        del self.server.store.hashes["erin"]
        self.refused("HELLO erin :mallory's secret", Code.USERNAME_TAKEN)
        self.assertNotIn("erin", self.server.store.hashes)
        self.assertEqual(len(self.server.hub.user("erin").sessions), 1)  # type: ignore[union-attr]

    def test_the_same_password_stored_between_the_check_and_the_claim_logs_in(self) -> None:
        self.server.hashing.hold = True
        _, transport = self.hello("HELLO erin :erin's secret")
        self.server.store.hashes["erin"] = "fake$erin's secret"  # the same owner, on another device
        self.server.hashing.hold = False
        self.server.hashing.pending.pop().callback(None)
        self.assertEqual(lines(transport)[0], "WELCOME erin :welcome to msgsvc")
        self.assertTrue(self.server.hub.user("erin").protected)  # type: ignore[union-attr]


class RequirePasswordTests(AccountsTestCase):
    def setUp(self) -> None:
        self.server = ServerHarness(records=(UserRecord("dave", 1.0, 2.0),), require_password=True)

    def test_every_name_needs_a_password(self) -> None:
        answer = self.refused("HELLO dave", Code.AUTH_REQUIRED)
        self.assertEqual(answer[0], "ERROR AUTH_REQUIRED :this server needs a password with every name")
        self.refused("HELLO newcomer", Code.AUTH_REQUIRED)

    def test_the_first_password_claims_the_name(self) -> None:
        protocol, transport = self.hello("HELLO dave :dave's secret")
        self.assertEqual(self.user_line(transport, "dave"), "USER dave online protected")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.refused("HELLO dave :someone else", Code.AUTH_FAILED)


class PasswordCommandTests(AccountsTestCase):
    def test_protect_then_log_in_with_it(self) -> None:
        bob, transport = self.server.register("bob")
        bob.dataReceived(b"PASSWORD :bob's secret\r\nUSERS\r\n")
        answer = lines(transport)
        self.assertEqual(answer[0], "PROTECTED bob :bob is protected by your password")
        self.assertIn("USER bob online protected", answer)
        self.assertIn(ProtectionChanged("bob", True, "protected by its owner"), self.events)
        bob.connectionLost(Failure(ConnectionDone()))
        self.refused("HELLO bob", Code.AUTH_REQUIRED)
        _, transport = self.hello("HELLO bob :bob's secret")
        self.assertEqual(lines(transport)[0], "WELCOME bob :welcome to msgsvc")

    def test_change_a_password(self) -> None:
        alice, transport = self.server.register("alice", PASSWORD)
        alice.dataReceived(b"PASSWORD :a brand new one\r\n")
        self.assertEqual(lines(transport), ["PROTECTED alice :alice is protected by your password"])
        self.assertIn(ProtectionChanged("alice", True, "password changed by its owner"), self.events)
        alice.connectionLost(Failure(ConnectionDone()))
        self.refused(f"HELLO alice :{PASSWORD}", Code.AUTH_FAILED)
        self.hello("HELLO alice :a brand new one")

    def test_a_password_against_the_rules_keeps_the_connection(self) -> None:
        bob, transport = self.server.register("bob")
        bob.dataReceived(b"PASSWORD :seven!!\r\nPING :1\r\n")
        self.assertEqual(
            lines(transport), ["ERROR PASSWORD_INVALID :a password needs at least 8 characters", "PONG :1"]
        )
        self.assertFalse(transport.disconnecting)
        self.assertNotIn("bob", self.server.store.hashes)

    def test_before_hello(self) -> None:
        protocol, transport = self.server.connect()
        protocol.dataReceived(b"PASSWORD :whatever it is\r\n")
        self.assertEqual(lines(transport), ["ERROR NOT_REGISTERED :say HELLO <username> first"])

    def test_lines_after_it_wait_for_the_answer(self) -> None:
        bob, transport = self.server.register("bob")
        self.server.hashing.hold = True
        bob.dataReceived(b"PASSWORD :bob's secret\r\nPING :2\r\n")
        self.assertEqual(lines(transport), [])
        self.server.hashing.pending.pop().callback(None)
        self.assertEqual(lines(transport), ["PROTECTED bob :bob is protected by your password", "PONG :2"])


class ThrottleTests(AccountsTestCase):
    def fail_login(self, times: int) -> None:
        for _ in range(times):
            self.refused("HELLO alice :wrong horse", Code.AUTH_FAILED)

    def test_failures_slow_the_next_attempts(self) -> None:
        self.fail_login(3)
        _, transport = self.hello(f"HELLO alice :{PASSWORD}")
        self.server.clock.advance(0.99)
        self.assertEqual(lines(transport), [])  # the 4th attempt waits 1 s, right password or not
        self.server.clock.advance(0.01)
        self.assertEqual(lines(transport)[0], "WELCOME alice :welcome to msgsvc")

    def test_the_delay_doubles_up_to_its_cap(self) -> None:
        throttle = self.server.accounts.throttle
        waits = []
        for n in range(12):
            waits.append(throttle.wait("alice", f"10.0.0.{n}"))
            throttle.failed("alice", f"10.0.0.{n}")
        self.assertEqual(waits, [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0])

    def test_an_address_that_keeps_failing_waits_for_every_name(self) -> None:
        throttle = self.server.accounts.throttle
        for n in range(5):
            throttle.failed(f"user{n}", "10.0.0.1")
        self.assertEqual(throttle.wait("someone", "10.0.0.1"), 4.0)
        self.assertEqual(throttle.wait("someone", "10.0.0.2"), 0.0)

    def test_many_logins_from_one_address_are_not_slowed(self) -> None:
        for n in range(20):
            self.server.store.hashes[f"user{n}"] = f"fake$pw of user{n}"
        answers = []
        for n in range(20):
            _, transport = self.hello(f"HELLO user{n} :pw of user{n}")
            answers.append(lines(transport)[0])
        self.assertEqual(answers, [f"WELCOME user{n} :welcome to msgsvc" for n in range(20)])

    def test_guesses_made_at_once_wait_as_if_made_one_after_another(self) -> None:
        """Each read the same wait before any had failed: ten connections guessed ten times a window."""
        self.server.hashing.hold = True
        guesses = [self.hello(f"HELLO alice :wrong guess {n}")[1] for n in range(6)]
        self.assertEqual(len(self.server.hashing.pending), 3)  # the first three are checked at once
        self.server.clock.advance(1)
        self.assertEqual(len(self.server.hashing.pending), 4)  # the 4th after 1 s, the 5th after 2
        self.server.clock.advance(1)
        self.assertEqual(len(self.server.hashing.pending), 5)
        while self.server.hashing.pending or self.server.clock.getDelayedCalls():
            while self.server.hashing.pending:
                self.server.hashing.pending.pop(0).callback(None)
            self.server.clock.advance(1)
        self.assertTrue(all(lines(t)[0].startswith("ERROR AUTH_FAILED") for t in guesses))

    def test_the_owner_never_waits_longer_than_the_cap(self) -> None:
        throttle = self.server.accounts.throttle
        for n in range(20):
            throttle.failed("alice", f"10.0.0.{n}")  # guesses from twenty addresses
        self.assertEqual(throttle.wait("alice", "192.168.1.5"), LoginThrottle.LONGEST)

    def test_a_right_password_clears_the_names_count(self) -> None:
        self.fail_login(3)
        protocol, _ = self.hello(f"HELLO alice :{PASSWORD}")  # the 4th waits 1 s
        self.server.clock.advance(1)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.server.accounts.throttle.wait("alice", "10.9.9.9"), 0.0)

    def test_expired_counts_are_swept_out(self) -> None:
        clock = Clock()
        throttle = LoginThrottle(clock)
        for n in range(_Tallies.SWEEP_AT):
            throttle.failed("alice", f"10.0.{n // 256}.{n % 256}")
        clock.advance(LoginThrottle.WINDOW + 1)
        throttle.failed("alice", "192.168.0.1")  # one past the size: the old ones go
        self.assertEqual(list(throttle.hosts), ["192.168.0.1"])

    def test_quiet_time_clears_the_counts(self) -> None:
        self.fail_login(5)
        self.server.clock.advance(LoginThrottle.WINDOW + 1)
        self.assertEqual(self.server.accounts.throttle.wait("alice", "127.0.0.1"), 0.0)

    def test_a_client_that_leaves_while_waiting_is_not_checked(self) -> None:
        self.fail_login(3)
        self.server.hashing.checked.clear()
        protocol, _ = self.hello(f"HELLO alice :{PASSWORD}")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.server.clock.advance(5)
        self.assertEqual(self.server.hashing.checked, [])
        self.hello(f"HELLO alice :{PASSWORD}")  # and the name is not held by it

    def test_failures_are_logged_with_their_counts(self) -> None:
        with capturedLogs() as events:
            self.fail_login(4)
        text = [formatEvent(e) for e in events]
        self.assertIn(
            "failed login for alice from 127.0.0.1:40004: 4 failures for the name and "
            "4 from the address in the last 15 min",
            text,
        )
        self.assertIn("login for alice from 127.0.0.1:40004 waits 1 s", text)


class ResetTests(AccountsTestCase):
    def test_the_operator_removes_a_names_protection(self) -> None:
        alice, transport = self.server.register("alice", PASSWORD)
        self.assertTrue(self.successResultOf(self.server.accounts.reset("alice", "she forgot it")))
        self.assertEqual(
            lines(transport),
            ["ACCOUNT alice unprotected", "BYE :the operator removed your name's password: she forgot it"],
        )
        self.assertTrue(transport.disconnecting)
        self.assertIn(ProtectionChanged("alice", False, "she forgot it"), self.events)
        self.assertFalse(self.server.hub.user("alice").protected)  # type: ignore[union-attr]
        alice.connectionLost(Failure(ConnectionDone()))
        self.hello("HELLO alice")

    def test_resetting_an_unprotected_name(self) -> None:
        self.assertFalse(self.successResultOf(self.server.accounts.reset("dave", "why not")))

    def test_a_reset_by_another_process_is_picked_up(self) -> None:
        self.server.accounts.startService()
        self.server.accounts.watch_resets(0)
        self.addCleanup(self.server.accounts.stopService)
        del self.server.store.hashes["alice"]
        self.server.store.external.append(Reset(1, "alice", 5.0, "done with msgsvc.admin"))
        self.server.clock.advance(self.server.accounts.WATCH_INTERVAL)
        self.assertIn(ProtectionChanged("alice", False, "done with msgsvc.admin"), self.events)
        self.server.clock.advance(self.server.accounts.WATCH_INTERVAL)
        self.assertEqual(len([e for e in self.events if isinstance(e, ProtectionChanged)]), 1)


class NewNamesAndAccountsTests(AccountsTestCase):
    """One address adds at most NEW_NAMES.burst names to the log at once, then a few a minute; the same
    for first passwords (every client of the harness comes from 127.0.0.1)."""

    def setUp(self) -> None:
        super().setUp()
        records = (UserRecord("alice", 1.0, 2.0, protected=True), UserRecord("dave", 1.0, 2.0))
        self.server = ServerHarness(limits=Limits(max_per_ip=100), records=records)
        self.events = []
        self.server.hub.subscribe(self.events.append)

    def welcomed(self, line: str) -> str:
        _, transport = self.hello(line)
        return lines(transport)[0]

    def test_a_burst_of_new_names_then_a_few_a_minute(self) -> None:
        burst = NEW_NAMES.burst
        answers = [self.welcomed(f"HELLO user{n}") for n in range(burst)]
        self.assertEqual(answers, [f"WELCOME user{n} :welcome to msgsvc" for n in range(burst)])
        self.assertEqual(
            self.welcomed("HELLO spam"),
            "ERROR RATE_LIMITED :too many new names from your address; try again in 10 s",
        )
        self.assertIsNone(self.server.hub.user("spam"))  # not in the log, and not held
        refused = [e for e in self.events if isinstance(e, RegistrationRefused)]
        self.assertEqual([(e.name, e.refusal) for e in refused], [("spam", Refusal.RATE_LIMITED)])
        self.assertEqual(self.welcomed("HELLO dave"), "WELCOME dave :welcome to msgsvc")  # in the log already
        self.server.clock.advance(60 / NEW_NAMES.per_minute)
        self.assertEqual(self.welcomed("HELLO spam"), "WELCOME spam :welcome to msgsvc")

    def test_a_burst_of_first_passwords_then_a_few_a_minute(self) -> None:
        for n in range(NEW_ACCOUNTS.burst + 1):
            self.server.store.record_seen(f"user{n}", 1.0)
        users = [UserRecord(f"user{n}", 1.0, 1.0) for n in range(NEW_ACCOUNTS.burst + 1)]
        self.server.hub.load(
            [UserRecord("alice", 1.0, 2.0, protected=True), UserRecord("dave", 1.0, 2.0), *users], []
        )
        clients = [self.server.register(f"user{n}") for n in range(NEW_ACCOUNTS.burst + 1)]
        for protocol, _ in clients:
            protocol.dataReceived(b"PASSWORD :a new password\r\n")
        answers = [[x for x in lines(t) if x.startswith(("PROTECTED", "ERROR"))] for _, t in clients]
        self.assertEqual(answers[-2], ["PROTECTED user19 :user19 is protected by your password"])
        self.assertEqual(
            answers[-1], ["ERROR RATE_LIMITED :too many new passwords from your address; try again in 10 s"]
        )
        self.assertFalse(clients[-1][1].disconnecting)
        clients[0][0].dataReceived(b"PASSWORD :another one\r\n")  # a new password for a protected name
        self.assertEqual(lines(clients[0][1])[-1], "PROTECTED user0 :user0 is protected by your password")
        self.assertEqual(  # claimed at login: a first password too
            self.welcomed("HELLO dave :dave's password"),
            "ERROR RATE_LIMITED :too many new passwords from your address; try again in 10 s",
        )
        self.assertFalse(self.server.hub.user("dave").protected)  # type: ignore[union-attr]
        self.assertEqual(self.welcomed(f"HELLO alice :{PASSWORD}"), "WELCOME alice :welcome to msgsvc")

    def test_a_name_that_could_not_be_recorded_is_not_counted(self) -> None:
        """SERVER_ERROR (the state failing or away) made nothing: the client's retries must not run out
        of new names (a client retrying every 50 ms while Redis was away got RATE_LIMITED)."""
        self.server.store.hold = True
        protocol, transport = self.hello("HELLO newcomer")
        for _ in range(NEW_NAMES.burst + 1):
            self.server.store.pending.pop().errback(StoreError("the disk is full"))
            self.assertTrue(lines(transport)[-1].startswith("ERROR SERVER_ERROR :"), lines(transport))
            protocol.dataReceived(b"HELLO newcomer\r\n")
        self.server.store.pending.pop().callback(None)
        self.assertEqual(lines(transport)[-1].split(" ")[:2], ["ENDUSERS", "3"])

    def test_a_password_that_could_not_be_stored_is_not_counted(self) -> None:
        """PASSWORD answered SERVER_ERROR made no account: retrying it must not run out of first passwords."""
        protocol, transport = self.server.register("dave")
        store = self.server.store
        stored = store.set_password_hash
        store.set_password_hash = lambda *_: fail(StoreError("the disk is full"))  # type: ignore[method-assign]
        for _ in range(NEW_ACCOUNTS.burst + 1):
            with capturedLogs():
                protocol.dataReceived(b"PASSWORD :a new password\r\n")
            self.assertTrue(lines(transport)[-1].startswith("ERROR SERVER_ERROR :"), lines(transport))
        self.flushLoggedErrors(StoreError)
        store.set_password_hash = stored  # type: ignore[method-assign]
        protocol.dataReceived(b"PASSWORD :a new password\r\n")
        self.assertEqual(lines(transport)[-1], "PROTECTED dave :dave is protected by your password")

    def test_a_client_that_leaves_while_its_name_is_written_is_counted(self) -> None:
        """HELLO then a close at once leaves the name being written: it counts, or closing would be a way
        round the rate."""
        self.server.store.hold = True
        for n in range(NEW_NAMES.burst):
            protocol, _ = self.hello(f"HELLO gone{n}")
            protocol.connectionLost(Failure(ConnectionDone()))
        for written in self.server.store.pending:
            written.callback(None)
        self.server.store.hold = False
        self.assertTrue(self.welcomed("HELLO spam").startswith("ERROR RATE_LIMITED :"))

    def test_each_address_has_its_own_and_idle_ones_are_forgotten(self) -> None:
        clock = Clock()
        rate = AddressRate(Rate(per_minute=6.0, burst=2), clock)
        self.assertEqual([rate.take("10.0.0.1") for _ in range(3)], [0.0, 0.0, 10.0])
        self.assertEqual(rate.take("10.0.0.2"), 0.0)
        for n in range(AddressRate.SWEEP_AT - 2):
            rate.take(f"10.1.{n // 256}.{n % 256}")
        self.assertEqual(len(rate), AddressRate.SWEEP_AT)
        clock.advance(20)  # every bucket is full again
        rate.take("192.168.0.1")  # one past the size: the idle ones go
        self.assertEqual(len(rate), 1)


class PasswordHashesTests(AccountsTestCase):
    """Each password checked or set costs a hashing thread ~20 ms: one address gets PASSWORD_HASHES of them
    (here 2 at once, then 1 every 2 minutes). 20 connections repeating PASSWORD kept the one hashing thread busy,
    and everyone's login waited behind them."""

    def setUp(self) -> None:
        super().setUp()
        self.server.accounts.password_hashes = AddressRate(Rate(per_minute=0.5, burst=2), self.server.clock)

    def test_password_changes(self) -> None:
        protocol, transport = self.server.register("alice", PASSWORD)  # one check
        protocol.dataReceived(b"PASSWORD :another password\r\n")  # one change
        protocol.dataReceived(b"PASSWORD :a third password\r\n")
        self.assertEqual(
            lines(transport)[-1],
            "ERROR RATE_LIMITED :too many password changes from your address; try again in 120 s",
        )
        self.assertFalse(transport.disconnecting)
        self.server.clock.advance(120)
        protocol.dataReceived(b"PASSWORD :a third password\r\n")
        self.assertTrue(lines(transport)[-1].startswith("PROTECTED alice"))

    def test_logins_to_protected_names(self) -> None:
        self.refused("HELLO alice :a wrong one", Code.AUTH_FAILED)
        self.refused("HELLO alice :a wrong one", Code.AUTH_FAILED)
        answer = self.refused("HELLO alice :another wrong one", Code.RATE_LIMITED)
        self.assertEqual(
            answer[0], "ERROR RATE_LIMITED :too many password checks from your address; try again in 60 s"
        )

    def test_another_address_is_not_counted(self) -> None:
        self.refused("HELLO alice :a wrong one", Code.AUTH_FAILED)
        self.refused("HELLO alice :a wrong one", Code.AUTH_FAILED)
        protocol, transport = self.server.connect("10.0.0.9")
        protocol.dataReceived(f"HELLO alice :{PASSWORD}\r\n".encode())
        self.server.clock.advance(LoginThrottle.LONGEST)
        self.assertEqual(lines(transport)[0], "WELCOME alice :welcome to msgsvc")


class RemoveTests(AccountsTestCase):
    def test_the_operator_removes_an_offline_name_and_everyone_hears(self) -> None:
        bob, transport = self.server.register("bob")
        removal = self.successResultOf(self.server.accounts.remove("ALICE", "made by a script"))
        assert removal is not None
        # Named as the log spells it, as the SQLite and Redis states do (tests/test_state.py).
        self.assertEqual(removal, Reset(1, "alice", removal.at, "made by a script", removed=True))
        self.assertIsNone(self.server.hub.user("alice"))
        self.assertNotIn("alice", self.server.store.hashes)
        self.assertIn(UserRemoved("alice", "made by a script"), self.events)
        self.server.end_of_pass()
        self.assertEqual(lines(transport), ["REMOVED alice"])
        bob.dataReceived(b"USERS\r\n")
        self.assertEqual(lines(transport), ["USER bob online", "USER dave offline", "ENDUSERS 2"])
        self.assertEqual(self.welcomed_as("alice"), "WELCOME alice :welcome to msgsvc")  # anyone's now
        self.server.end_of_pass()
        self.assertEqual(lines(transport), ["JOINED alice"])  # unprotected: no ACCOUNT line
        bob.dataReceived(b"USERS\r\n")
        self.assertIn("USER alice online", lines(transport))

    def welcomed_as(self, name: str) -> str:
        _, transport = self.hello(f"HELLO {name}")
        return lines(transport)[0]

    def test_an_online_name_is_not_removed(self) -> None:
        self.server.register("dave")
        self.failureResultOf(self.server.accounts.remove("dave", "why not"), StillOnline)
        self.assertIsNotNone(self.server.hub.user("dave"))

    def test_a_name_not_in_the_log(self) -> None:
        self.assertIsNone(self.successResultOf(self.server.accounts.remove("nobody", "why not")))

    def test_a_removal_by_another_process_or_node_is_picked_up(self) -> None:
        self.server.accounts.startService()
        self.server.accounts.watch_resets(0)
        self.addCleanup(self.server.accounts.stopService)
        self.server.store.external.append(Reset(1, "alice", 5.0, "done with msgsvc.admin", removed=True))
        self.server.clock.advance(self.server.accounts.WATCH_INTERVAL)
        self.assertIn(UserRemoved("alice", "done with msgsvc.admin"), self.events)
        self.assertIsNone(self.server.hub.user("alice"))

    def test_a_removal_picked_up_while_the_name_is_online_again_leaves_it(self) -> None:
        self.server.accounts.startService()
        self.server.accounts.watch_resets(0)
        self.addCleanup(self.server.accounts.stopService)
        self.server.register("dave")  # taken again, here, after it was removed elsewhere
        self.server.store.external.append(Reset(1, "dave", 5.0, "a script's", removed=True))
        with capturedLogs() as events:
            self.server.clock.advance(self.server.accounts.WATCH_INTERVAL)
        self.assertTrue(self.server.hub.user("dave").online)  # type: ignore[union-attr]
        self.assertIn(
            "dave was removed from the log but is online here: it stays, and is written back",
            [formatEvent(e) for e in events],
        )

    def test_a_protected_name_removed_while_online_is_no_longer_shown_protected(self) -> None:
        """The removal took its password: shown protected, it would be anyone's to claim with any password
        once its owner left, while every client said it was protected."""
        self.server.accounts.startService()
        self.server.accounts.watch_resets(0)
        self.addCleanup(self.server.accounts.stopService)
        _, transport = self.server.register("alice", PASSWORD)
        self.server.store.hashes.pop("alice")  # what the operator's removal did in the store
        self.server.store.external.append(Reset(1, "alice", 5.0, "spam", removed=True))
        self.server.clock.advance(self.server.accounts.WATCH_INTERVAL)
        self.assertFalse(self.server.hub.user("alice").protected)  # type: ignore[union-attr]
        self.assertEqual(lines(transport), ["ACCOUNT alice unprotected", "BYE :the operator removed your name's password: spam"])

    def test_a_name_removed_then_protected_again_while_online_stays_protected(self) -> None:
        self.server.accounts.startService()
        self.server.accounts.watch_resets(0)
        self.addCleanup(self.server.accounts.stopService)
        self.server.register("alice", PASSWORD)  # its hash in the store: a password set since
        self.server.store.external.append(Reset(1, "alice", 5.0, "spam", removed=True))
        self.server.clock.advance(self.server.accounts.WATCH_INTERVAL)
        self.assertTrue(self.server.hub.user("alice").protected)  # type: ignore[union-attr]


class PasswordRulesTests(SynchronousTestCase):
    def test_length_in_characters(self) -> None:
        self.assertEqual(check_password_rules("8 chars!"), "8 chars!")
        self.assertEqual(check_password_rules("🔑🔑🔑🔑🔑🔑🔑🔑"), "🔑" * 8)  # 8 characters, 32 bytes
        with self.assertRaises(Refused) as caught:
            check_password_rules("7 chars")
        self.assertEqual(caught.exception.refusal, Refusal.PASSWORD_INVALID)

    def test_at_most_256_bytes(self) -> None:
        check_password_rules("é" * (PASSWORD_MAX_BYTES // 2))
        with self.assertRaises(Refused) as caught:
            check_password_rules("é" * (PASSWORD_MAX_BYTES // 2) + "x")
        self.assertEqual(caught.exception.text, "a password may hold at most 256 bytes of UTF-8")

    def test_normalized_to_nfc(self) -> None:
        self.assertEqual(check_password_rules("cafe\u0301 au lait"), "caf\u00e9 au lait")
