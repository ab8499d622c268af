"""The admin's ``history export`` of a room and of a member's conversations, on a running server: one
scenario for each store (tests/test_twistd.py on SQLite, tests/test_redis_end_to_end.py on Redis)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from .processes import Peer


def exports_rooms(
    case: SynchronousTestCase,
    port: int,
    export: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """alice and bob (protected) in #Dev on the server at ``port``, and a direct message: ``export``
    (the admin's ``history export`` with the arguments given) writes the room by its name in any case,
    and ``--user`` each name's direct conversations and the rooms it is a member of, not one it left."""

    def version_11(hello: str) -> Peer:
        peer = Peer(port)
        case.addCleanup(peer.close)
        peer.send(f"VERSION 11\r\nHELLO {hello}")
        peer.until("ENDHISTORY")
        return peer

    def texts(*args: str) -> list[tuple[str, str]]:
        done = export(*args)
        case.assertEqual(done.returncode, 0, done.stderr)
        return [(e["conversation"], e["text"]) for e in map(json.loads, done.stdout.splitlines())]

    def eventually(expected: list[tuple[str, str]], *args: str) -> None:
        """``export(*args)`` gives ``expected`` within 10 s (the server writes its history a moment later)."""
        deadline = time.monotonic() + 10
        while (got := texts(*args)) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        case.assertEqual(got, expected)

    alice, bob = version_11("alice :alice's password"), version_11("bob :bob's password")
    alice.send("JOIN #Dev")
    alice.until("ENDMEMBERS #Dev")
    bob.send("JOIN #dev")
    bob.until("ENDMEMBERS #Dev 2")
    alice.send("SEND #dev :in the room")
    alice.until("SENT")
    bob.send("SEND alice :just us")
    bob.until("SENT")
    eventually([("#dev", "in the room")], "#DEV")
    both = [("alice,bob", "just us"), ("#dev", "in the room")]
    eventually(both, "--user", "Alice")
    case.assertEqual(texts("--user", "bob"), both)
    bob.send("PART #dev :done")
    bob.until("PARTED #Dev bob")
    case.assertEqual(texts("--user", "bob"), [("alice,bob", "just us")])  # a room left: by its name
    refused = export("#")
    case.assertEqual((refused.returncode, refused.stderr), (2, "msgsvc.admin: not a room name: '#'\n"))
