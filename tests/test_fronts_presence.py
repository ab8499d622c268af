"""What every client is told of the others: JOINED, LEFT and ACCOUNT, in order, a batch a pass."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from msgsvc.hub.contracts import UserRecord

from .support.harness import PASSWORD, ServerHarness, lines


class AccountLineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.server = ServerHarness(records=(UserRecord("erin", 1.0, 1.0, protected=True),))
        self.bob, self.bobs = self.server.register("bob")

    def test_a_name_protected_by_its_owner_is_told_to_everyone(self) -> None:
        alice, alices = self.server.register("alice")
        lines(self.bobs)
        alice.dataReceived(b"PASSWORD :correct horse\r\n")
        self.assertEqual(lines(alices), ["PROTECTED alice :alice is protected by your password"])
        self.server.end_of_pass()
        self.assertEqual(lines(self.bobs), ["ACCOUNT alice protected"])
        self.assertEqual(lines(alices), ["ACCOUNT alice protected"])
        alice.dataReceived(b"PASSWORD :another horse\r\n")  # a new password: nothing new for the others
        self.server.end_of_pass()
        self.assertEqual(lines(self.bobs), [])
        self.bob.dataReceived(b"USERS\r\n")
        self.assertIn("USER alice online protected", lines(self.bobs))

    def test_a_password_the_operator_removed_is_told_to_everyone(self) -> None:
        self.assertTrue(self.successResultOf(self.server.accounts.reset("erin", "she forgot it")))
        self.server.end_of_pass()
        self.assertEqual(lines(self.bobs), ["ACCOUNT erin unprotected"])
        self.bob.dataReceived(b"USERS\r\n")
        self.assertIn("USER erin offline", lines(self.bobs))

    def test_its_owner_online_is_disconnected_saying_why(self) -> None:
        alice, alices = self.server.register("alice", PASSWORD)
        lines(self.bobs)
        self.successResultOf(self.server.accounts.reset("alice", "she forgot it"))
        self.server.end_of_pass()
        self.assertEqual(
            lines(alices), ["ACCOUNT alice unprotected", "BYE :the operator removed your name's password: she forgot it"]
        )
        self.server.end_of_pass()
        self.assertEqual(lines(self.bobs), ["ACCOUNT alice unprotected", "LEFT alice"])  # gone with her BYE

    def test_a_name_claimed_at_login_joins_protected(self) -> None:
        self.server.register("carol", PASSWORD)
        self.assertEqual(lines(self.bobs), ["JOINED carol", "ACCOUNT carol protected"])
        self.server.register("erin", PASSWORD)  # known to be protected: no news
        self.assertEqual(lines(self.bobs), ["JOINED erin"])
        dave, _ = self.server.register("dave")
        dave.connectionLost(Failure(ConnectionDone()))
        self.server.end_of_pass()
        lines(self.bobs)
        self.server.register("dave", PASSWORD)  # in the log, unprotected: the password claims it
        self.assertEqual(lines(self.bobs), ["JOINED dave", "ACCOUNT dave protected"])

    def test_in_order_with_joins_and_departures(self) -> None:
        dave, _ = self.server.connect()
        dave.dataReceived(b"HELLO dave\r\n")
        self.successResultOf(self.server.accounts.reset("erin", "she forgot it"))
        dave.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(lines(self.bobs), [])
        self.server.end_of_pass()
        self.assertEqual(lines(self.bobs), ["JOINED dave", "ACCOUNT erin unprotected", "LEFT dave"])

    def test_a_client_registering_in_the_pass_gets_only_what_its_log_does_not_say(self) -> None:
        self.successResultOf(self.server.accounts.reset("erin", "she forgot it"))
        frank, franks = self.server.connect()
        frank.dataReceived(b"HELLO frank\r\n")
        self.assertIn("USER erin offline", lines(franks))
        self.server.end_of_pass()
        self.assertEqual(lines(franks), [])
        self.assertEqual(lines(self.bobs), ["ACCOUNT erin unprotected", "JOINED frank"])
