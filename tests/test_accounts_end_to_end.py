"""Accounts over real TCP on loopback: the real SQLite store, real argon2id hashing on its threads."""

from __future__ import annotations

import shutil

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from .support.logs import VERSION_1
from .support.loopback import LineTestClient, LoopbackServer


class AccountsEndToEndTests(TestCase):
    async def setUp(self) -> None:
        self.db = self.mktemp()
        self.server = await LoopbackServer(self.db).start(self)

    async def hello(self, line: str) -> tuple[LineTestClient, list[str]]:
        """Connect and say ``line``; the answer, up to the username log's end or the BYE."""
        client = await self.server.client()
        client.send(line)
        answer = [await client.line()]
        while not answer[-1].startswith(("ENDUSERS", "BYE")):
            answer.append(await client.line())
        if answer[-1].startswith("BYE"):
            await client.closed
        return client, answer

    async def quit(self, client: LineTestClient) -> None:
        client.send("QUIT")
        await client.closed

    async def test_protect_then_log_in_without_with_a_wrong_and_with_the_right_password(self) -> None:
        alice, _ = await self.hello("HELLO alice")
        alice.send("PASSWORD :correct horse ✓")
        self.assertEqual(await alice.line(), "PROTECTED alice :alice is protected by your password")
        await self.quit(alice)

        _, answer = await self.hello("HELLO alice")
        self.assertEqual(
            answer,
            [
                "ERROR AUTH_REQUIRED :alice is protected: give its password",
                "BYE :alice is protected: give its password",
            ],
        )
        _, answer = await self.hello("HELLO alice :correct horse")
        self.assertEqual(
            answer, ["ERROR AUTH_FAILED :wrong password for alice", "BYE :wrong password for alice"]
        )
        alice, answer = await self.hello("HELLO Alice :correct horse ✓")
        self.assertEqual(
            answer, ["WELCOME alice :welcome to msgsvc", "USER alice online protected", "ENDUSERS 1"]
        )
        phone, answer = await self.hello("HELLO alice :correct horse ✓")  # a second session of the account
        self.assertEqual(answer[0], "WELCOME alice :welcome to msgsvc")
        await self.quit(phone)
        await self.quit(alice)

    async def test_a_protected_name_survives_a_restart(self) -> None:
        bob, answer = await self.hello("HELLO bob :bob's password")  # claims bob
        self.assertIn("USER bob online protected", answer)
        await self.quit(bob)
        await self.server.stop()
        self.server = await LoopbackServer(self.db).start(self)
        _, answer = await self.hello("HELLO bob")
        self.assertEqual(answer[0], "ERROR AUTH_REQUIRED :bob is protected: give its password")
        bob, answer = await self.hello("HELLO bob :bob's password")
        self.assertEqual(answer[:2], ["WELCOME bob :welcome to msgsvc", "USER bob online protected"])
        await self.quit(bob)

    async def test_guesses_are_slowed_and_logged_and_the_owner_still_gets_in(self) -> None:
        owner, _ = await self.hello("HELLO carol :carol's password")
        await self.quit(owner)
        with capturedLogs() as events:
            for _ in range(3):
                _, answer = await self.hello("HELLO carol :a guess 123")
                self.assertEqual(answer[0], "ERROR AUTH_FAILED :wrong password for carol")
            owner, answer = await self.hello("HELLO carol :carol's password")
        self.assertEqual(answer[0], "WELCOME carol :welcome to msgsvc")
        text = [formatEvent(e) for e in events]
        self.assertTrue(
            any(t.startswith("login for carol from 127.0.0.1:") and t.endswith(" waits 1 s") for t in text)
        )
        self.assertEqual(len([t for t in text if t.startswith("failed login for carol")]), 3)
        await self.quit(owner)


    async def test_the_owner_gets_in_while_others_say_hello_without_its_password(self) -> None:
        owner, _ = await self.hello("HELLO dave :dave's password")
        await self.quit(owner)
        done = False
        refusals: list[str] = []

        async def squat() -> None:
            while not done:
                _, answer = await self.hello("HELLO dave")
                refusals.append(answer[0])

        squatters = [ensureDeferred(squat()) for _ in range(10)]
        answers = []
        for _ in range(20):
            owner, answer = await self.hello("HELLO dave :dave's password")
            answers.append(answer[0])
            if answer[0].startswith("WELCOME"):
                await self.quit(owner)
        done = True
        await gatherResults(squatters)
        self.assertEqual(answers, ["WELCOME dave :welcome to msgsvc"] * 20)
        self.assertGreater(len(refusals), 20)
        self.assertLessEqual(  # taken while the owner is online
            set(refusals),
            {
                "ERROR AUTH_REQUIRED :dave is protected: give its password",
                "ERROR USERNAME_TAKEN :dave is in use",
            },
        )


class MigrationEndToEndTests(TestCase):
    async def test_a_version_1_log_serves_its_names_and_takes_passwords(self) -> None:
        db = self.mktemp()
        shutil.copy(VERSION_1, db)
        server = await LoopbackServer(db).start(self)
        client = await server.client()
        client.send("HELLO BOB :bob's password")
        self.assertEqual(
            await client.until("ENDUSERS"),
            [
                "WELCOME Bob :welcome to msgsvc",
                "USER alice offline",
                "USER Bob online protected",
                "USER carol.x offline",
                "ENDUSERS 3",
            ],
        )
        client.send("QUIT")
        await client.closed
