"""The terminal client as its user meets it: ``python -m msgsvc.client --text`` on an 80x24
pseudo-terminal, against a real server on loopback, its screen read through a terminal emulator."""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import termios
from collections.abc import Callable

import pyte
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from .support.loopback import LineTestClient, LoopbackServer

ROWS, COLUMNS = 24, 80


class Screen(ProcessProtocol):
    """What the client shows on its terminal, as an 80x24 screen."""

    def __init__(self) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self.ended: Deferred[int] = Deferred()
        self.transport: IProcessTransport

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._stream.feed(data)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)  # type: ignore[union-attr]

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def cursor_row(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()

    def type(self, keys: str) -> None:
        self.transport.write(keys.encode("utf-8"))


class TerminalClientTests(TestCase):
    async def setUp(self) -> None:
        self.loopback = await LoopbackServer(self.mktemp()).start(self)

    def start(self, *args: str) -> Screen:
        screen = Screen()
        env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": os.pathsep.join(sys.path)}
        server = f"tcp:127.0.0.1:{self.loopback.port_number}"
        command = [sys.executable, "-m", "msgsvc.client", "--text", "--server", server, *args]
        process = reactor.spawnProcess(screen, sys.executable, command, env=env, usePTY=True)
        fcntl.ioctl(process.fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))  # type: ignore[attr-defined]

        def stop() -> Deferred[int] | None:
            if screen.ended.called:
                return None
            process.signalProcess("KILL")
            return screen.ended.addErrback(lambda _: 0)

        self.addCleanup(stop)
        return screen

    async def until(self, what: str, condition: Callable[[], bool], screen: Screen) -> None:
        for _ in range(1500):
            if condition():
                return
            await deferLater(reactor, 0.01, lambda: None)
        self.fail(f"timed out waiting for {what}; the screen:\n{screen.text()}")

    async def alice_and_bob(self) -> tuple[LineTestClient, Screen]:
        """bob on a line client, and alice in the terminal client at the option prompt."""
        bob = await self.loopback.client()
        bob.send("HELLO bob")
        await bob.until("ENDUSERS")
        term = self.start("--username", "alice")
        await self.until("the username prompt", lambda: "Username [alice]:" in term.text(), term)
        term.type("\r")
        await self.until("the log", lambda: "* bob  online" in term.text(), term)
        await self.until("the option prompt", lambda: "[b]roadcast?" in term.cursor_row(), term)
        return bob, term

    async def test_typing_survives_arriving_messages_and_tab_completes(self) -> None:
        bob, term = await self.alice_and_bob()

        term.type("u\r")
        await self.until("the recipient prompt", lambda: term.cursor_row().startswith("To (one name"), term)
        term.type("b\t")
        await self.until("bob completed", lambda: term.cursor_row().endswith("): bob"), term)
        term.type("\r")
        term.type("half a sent")
        await self.until("the half-typed line", lambda: term.cursor_row().endswith("half a sent"), term)

        bob.send("SEND alice :are you there?")
        await self.until("bob's message", lambda: "bob to you: are you there?" in term.text(), term)
        # Printed above the input line, which is drawn again as it was (once the redraw is done).
        typed = "Message to bob (empty to go back): half a sent"
        await self.until("the input line as it was", lambda: term.cursor_row() == typed, term)
        [(row, text)] = [(i, r.rstrip()) for i, r in enumerate(term.screen.display) if "are you there?" in r]
        self.assertRegex(text, r"^\d\d:\d\d bob to you: are you there\?$")  # a line of its own
        self.assertLess(row, term.screen.cursor.y)

        term.type("ence\r")
        self.assertEqual((await bob.until("MSG"))[-1], "MSG alice unicast bob :half a sentence")
        await self.until("alice's report", lambda: "you to bob: half a sentence" in term.text(), term)

        term.type("/wh\t\r")  # Enter right behind Tab: the completed command is what is sent
        await self.until("who is online", lambda: "-- online (2):" in term.text(), term)

        term.type("/quit\r")
        self.assertEqual(await term.ended, 0)
        self.assertEqual(await bob.line(), "LEFT alice")

    async def test_a_protected_name_asks_for_its_password_masked_and_never_recalls_it(self) -> None:
        owner = await self.loopback.client()
        owner.send("HELLO frank :frank's secret")  # frank claims his name, and leaves
        await owner.until("ENDUSERS")
        owner.send("QUIT")
        await owner.until("BYE")
        term = self.start("--username", "frank")  # no --password-prompt: the server's refusal asks
        await self.until("the username prompt", lambda: "Username [frank]:" in term.text(), term)
        term.type("\r")
        asked = lambda: term.cursor_row().startswith("Password for frank")  # noqa: E731
        await self.until("the password prompt", asked, term)
        term.type("wrong secret")
        await self.until("the masked password", lambda: term.cursor_row().endswith("*" * 12), term)
        term.type("\r")
        await self.until("the refusal", lambda: "wrong password for frank" in term.text(), term)
        await self.until("the prompt again", asked, term)
        term.type("frank's secret")
        await self.until("the masked password", lambda: term.cursor_row().endswith("*" * 14), term)
        term.type("\r")
        await self.until("the log", lambda: "* frank (you)  online  protected" in term.text(), term)
        await self.until("the option prompt", lambda: "[b]roadcast?" in term.cursor_row(), term)
        term.type("/who\r")
        await self.until("who is online", lambda: "-- online (1):" in term.text(), term)
        for _ in range(4):  # Up, as far back as the history goes: /who, never a password
            term.type("\x1b[A")
        await self.until("the recalled line", lambda: term.cursor_row().endswith("? /who"), term)
        self.assertNotIn("secret", term.text())
        term.type("\x15/quit\r")
        self.assertEqual(await term.ended, 0)

    async def test_tab_adds_a_space_and_long_lines_wrap_at_words(self) -> None:
        bob, term = await self.alice_and_bob()
        term.type("/msg b\t")
        await self.until("bob completed", lambda: term.cursor_row().endswith("/msg bob"), term)
        term.type("hi\r")
        self.assertEqual((await bob.until("MSG"))[-1], "MSG alice unicast bob :hi")
        words = " ".join(["recipient(s)"] * 12)
        bob.send(f"SEND alice :{words}")
        rows = lambda: [r.rstrip() for r in term.screen.display if "recipient" in r]  # noqa: E731
        await self.until("bob's message, on three rows", lambda: len(rows()) == 3, term)
        await self.until("the prompt drawn again", lambda: "[b]roadcast?" in term.cursor_row(), term)
        self.assertEqual(sum(row.count("recipient(s)") for row in rows()), 12)
        self.assertTrue(all(row.endswith("recipient(s)") for row in rows()), rows())  # no word broken
        self.assertTrue(rows()[1].startswith("      recipient(s)"), rows())  # under the text, not the time
        term.type("/quit\r")
        self.assertEqual(await term.ended, 0)

    async def test_passwords_are_not_echoed_nor_recalled(self) -> None:
        term = self.start("--username", "carol", "--password-prompt")
        await self.until("the username prompt", lambda: "Username [carol]:" in term.text(), term)
        term.type("\r")
        await self.until(
            "the password prompt", lambda: "Password for carol (empty for none):" in term.cursor_row(), term
        )
        term.type("carol's secret")
        await self.until("the hidden password", lambda: term.cursor_row().endswith("*" * 14), term)
        term.type("\r")
        await self.until("the log", lambda: "* carol (you)  online" in term.text(), term)
        self.assertTrue(self.loopback.hub.user("carol").protected)  # type: ignore[union-attr]
        term.type("/password\r")
        await self.until(
            "the new password prompt", lambda: term.cursor_row().startswith("New password"), term
        )
        term.type("\x1b[A")  # Up: no earlier password comes back
        term.type("a second secret\r")
        await self.until(
            "the second prompt", lambda: term.cursor_row().startswith("The new password again"), term
        )
        term.type("a second secret\r")
        await self.until("the answer", lambda: "Password changed." in term.text(), term)
        term.type("\x1b[A")  # Up at the option prompt recalls /password, never a password
        await self.until("the recalled line", lambda: term.cursor_row().endswith("? /password"), term)
        self.assertNotIn("secret", term.text())
        term.type("\x15/quit\r")
        self.assertEqual(await term.ended, 0)

    async def test_rooms_join_write_switch_and_members(self) -> None:
        bob = await self.loopback.client()
        bob.send("VERSION 11")
        bob.send("HELLO bob")
        await bob.until("ENDUSERS")
        term = self.start("--username", "alice")
        await self.until("the username prompt", lambda: "Username [alice]:" in term.text(), term)
        term.type("\r")
        await self.until("the option prompt", lambda: "[b]roadcast?" in term.cursor_row(), term)
        term.type("/join #dev\r")
        await self.until("in #dev", lambda: "-- You are in #dev (1 member)." in term.text(), term)
        await self.until("writing to #dev", lambda: term.cursor_row().startswith("Message to #dev"), term)
        bob.send("JOIN #dev")
        await self.until("bob joined", lambda: "-- bob joined #dev" in term.text(), term)
        term.type("hello room\r")
        self.assertEqual((await bob.until("MSG"))[-1].split(" ", 3)[:3], ["MSG", "alice", "room"])
        bob.send("SEND #dev :hi alice")
        await self.until("bob's message", lambda: "bob in #dev: hi alice" in term.text(), term)
        term.type("/to bob\r")
        await self.until("writing to bob", lambda: term.cursor_row().startswith("Message to bob"), term)
        term.type("/to #dev\r")
        await self.until("back to #dev", lambda: term.cursor_row().startswith("Message to #dev"), term)
        term.type("/members\r")
        listed = lambda: "* @alice  online" in term.text() and "*  bob  online" in term.text()  # noqa: E731
        await self.until("the members", listed, term)
        term.type("/topic on call\r")
        await self.until("the topic", lambda: "alice set the topic of #dev: on call" in term.text(), term)
        term.type("/kick bob\r")
        await self.until("bob kicked", lambda: "alice removed bob from #dev" in term.text(), term)
        term.type("/part\r")
        await self.until("left", lambda: "-- You left #dev" in term.text(), term)
        term.type("/quit\r")
        self.assertEqual(await term.ended, 0)
