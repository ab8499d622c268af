"""The page in headless Chromium against ``twistd -n msgsvc --web``, with TCP users beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from twisted.trial.unittest import SynchronousTestCase

from .support.browser import ELSEWHERE, chromium, steady, wait
from .support.processes import ROOT, Peer, free_port, run_msgsvc
from .support.tls import make_certificate


class QuietFiles(SimpleHTTPRequestHandler):
    """Another site's page, for the origin test; its requests are not logged."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class PageTestCase(SynchronousTestCase):
    """The server, its TCP users and the page, for the tests below."""

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.db = os.path.join(self.dir, "names.sqlite3")
        self.log = os.path.join(self.dir, "server.log")  # run_msgsvc's
        self.port = free_port()
        self.web = free_port()
        self.url = f"http://127.0.0.1:{self.web}/"
        self.driver = chromium()
        self.driver.set_window_size(1100, 760)
        self.addCleanup(self.driver.get, "about:blank")  # the page's WebSocket closes with it

    # -- the server and its TCP users ---------------------------------------

    def start(self, web: str = "tcp", options: str = "", *more: str) -> subprocess.Popen[bytes]:
        """Run the server; its --web endpoint is ``web`` (tcp or ssl) on ``self.web``, with ``options``;
        ``more``: more of msgsvc's options."""
        args = ["--db", self.db, "--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        args += ["--web", f"{web}:{self.web}:interface=127.0.0.1{options}", *more]
        return run_msgsvc(self, self.dir, args, [self.port, self.web])

    def server_log(self) -> str:
        with open(self.log, encoding="utf-8") as log:
            return log.read()

    def tcp_user(self, name: str, password: str | None = None, version: int | None = None) -> Peer:
        """``name`` connected over TCP (saying ``version`` first, if given)."""
        peer = Peer(self.port)
        self.addCleanup(peer.close)
        if version is not None:
            peer.send(f"VERSION {version}")
        peer.send(f"HELLO {name}" if password is None else f"HELLO {name} :{password}")
        said = peer.until("ENDUSERS")
        self.assertTrue(said[1 if version is not None else 0].startswith(f"WELCOME {name} "), said)
        return peer

    # -- the page ------------------------------------------------------------

    def element(self, id_: str) -> WebElement:
        return self.driver.find_element(By.ID, id_)

    def open_page(self) -> WebDriver:
        self.driver.get(self.url)
        wait(self.driver, lambda d: d.find_element(By.ID, "username").is_displayed(), "the login form")
        return self.driver

    def log_in(self, name: str, password: str = "") -> None:
        """Type the name (and password) and press Enter, as a keyboard user does."""
        field = self.element("username")
        field.clear()
        field.send_keys(name)
        if password:
            self.element("password").send_keys(password)
        self.element("username").send_keys(Keys.ENTER)

    def enter_as(self, name: str) -> None:
        """Open the page and log in as ``name``, without a password."""
        self.open_page()
        self.log_in(name)
        self.wait_connected(name)

    def wait_connected(self, name: str, host: str = "127.0.0.1") -> None:
        status = f"Connected to {host}:{self.web} as {name}"
        wait(self.driver, lambda d: d.find_element(By.ID, "status").text == status, status)

    def conversation(self) -> list[str]:
        """The conversation's entries without their times."""
        entries = self.driver.find_elements(By.CSS_SELECTOR, "#conversation li .text")
        return [entry.text for entry in entries]

    def wait_said(self, text: str) -> None:
        wait(self.driver, lambda d: text in self.conversation(), repr(text))

    def receipts(self) -> list[str]:
        """How each message this user sent went, in order: "delivered to 2", "not sent"."""
        entries = self.driver.find_elements(By.CSS_SELECTOR, "#conversation li .receipt")
        return [entry.get_attribute("textContent") or "" for entry in entries]

    def shows(self, id_: str) -> bool:
        """Whether the element is displayed whole within the window (not below the fold, say)."""
        return bool(
            self.driver.execute_script(
                "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                "return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight"
                " && r.left >= 0 && r.right <= window.innerWidth;",
                id_,
            )
        )

    def in_sight(self, text: str) -> bool:
        """Whether the conversation's entry ``text`` is within the part of the conversation in sight."""
        return bool(
            self.driver.execute_script(
                "const log = document.getElementById('conversation'), box = log.getBoundingClientRect();"
                "const item = [...log.querySelectorAll('li')].find((li) => li.querySelector('.text')"
                "  .textContent === arguments[0]);"
                "if (!item) return false;"
                "const r = item.getBoundingClientRect();"
                "return r.top >= box.top - 1 && r.bottom <= box.bottom + 1 && r.bottom <= window.innerHeight;",
                text,
            )
        )

    def reset_password(self, name: str) -> None:
        """The operator removes ``name``'s password (msgsvc.admin; the server picks it up within 2 s)."""
        subprocess.run(
            [sys.executable, "-m", "msgsvc.admin", "--db", self.db, "reset", name, "--reason", "asked for it"],
            env=dict(os.environ, PYTHONPATH=ROOT),
            check=True,
            capture_output=True,
            timeout=30,
        )

    def user_state(self, name: str) -> str:
        """What the username log says of ``name`` in text: "online", "offline, protected"..."""
        control = self.recipient(name)
        return self.element(control.get_attribute("aria-describedby") or "").text

    def recipient(self, name: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, f'#users input[value="{name}"]')

    def choose(self, kind: str, *names: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f'label[for="kind-{kind}"]').click()
        for name in names:
            control = self.recipient(name)
            self.driver.find_element(By.CSS_SELECTOR, f'label[for="{control.get_attribute("id")}"]').click()

    def say(self, text: str) -> None:
        message = self.element("message")
        message.send_keys(text)
        message.send_keys(Keys.ENTER)


class PageTests(PageTestCase):
    def test_log_in_and_exchange_every_kind_of_message_with_tcp_users(self) -> None:
        self.start()
        dave = self.tcp_user("dave")
        dave.send("QUIT")  # dave is in the log, offline
        dave.until("BYE")
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        self.assertEqual(bob.line(), "JOINED alice")
        self.assertEqual(self.user_state("alice"), "online, you")
        self.assertEqual(self.user_state("bob"), "online")
        self.assertEqual(self.user_state("dave"), "offline")
        carol = self.tcp_user("carol")
        wait(self.driver, lambda d: self.user_state("carol") == "online", "carol online, live")

        self.choose("unicast", "bob")
        self.say("hi bob")
        self.assertEqual(bob.until("MSG"), ["JOINED carol", "MSG alice unicast bob :hi bob"])
        self.wait_said("you to bob: hi bob")

        self.choose("multicast", "carol", "dave")  # bob stays chosen from the unicast
        self.say("lunch?")
        self.assertEqual(bob.line(), "MSG alice multicast bob,carol,dave :lunch?")
        self.assertEqual(carol.line(), "MSG alice multicast bob,carol,dave :lunch?")
        self.wait_said("not connected, did not get it: dave")

        self.choose("broadcast")
        self.say("hello all")
        self.assertEqual(bob.line(), "MSG alice broadcast * :hello all")
        self.assertEqual(carol.line(), "MSG alice broadcast * :hello all")

        bob.send("SEND alice :hi alice")
        bob.send("SEND alice,carol :both of you")
        bob.send("BROADCAST :everyone")
        self.wait_said("bob to you: hi alice")
        self.wait_said("bob to you and carol: both of you")
        self.wait_said("bob to everyone: everyone")

        carol.send("QUIT")
        wait(self.driver, lambda d: self.user_state("carol") == "offline", "carol offline, live")

    def test_message_text_is_shown_as_text_never_as_html(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        bob.send("SEND alice :<img src=x onerror=alert(1)>")
        bob.send("SEND alice :<b>bold</b> &amp; <script>alert(2)</script>")
        self.wait_said("bob to you: <img src=x onerror=alert(1)>")
        self.wait_said("bob to you: <b>bold</b> &amp; <script>alert(2)</script>")
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "#conversation img, #conversation b"), [])
        with self.assertRaises(NoAlertPresentException):
            self.driver.switch_to.alert.text  # noqa: B018 - reading it is the check

    def test_a_name_in_use_is_asked_again_with_the_servers_reason(self) -> None:
        self.start()
        self.tcp_user("bob")
        self.open_page()
        self.log_in("Bob")
        wait(self.driver, lambda d: "in use" in self.element("login-error").text, "the refusal")
        self.assertEqual(self.element("login-error").text, "bob is in use")
        self.assertTrue(self.element("login").is_displayed())
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "username")
        self.assertEqual(self.driver.execute_script("return window.getSelection().toString()"), "Bob")
        self.log_in("alice")
        self.wait_connected("alice")

    def test_a_websocket_from_another_origin_is_refused(self) -> None:
        self.start()
        other = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietFiles, directory=self.dir))
        threading.Thread(target=other.serve_forever, daemon=True).start()
        self.addCleanup(other.server_close)
        self.addCleanup(other.shutdown)
        probe = (
            "const done = arguments[arguments.length - 1];"
            f"const ws = new WebSocket('ws://127.0.0.1:{self.web}/ws');"
            "ws.onopen = () => { ws.close(); done('open'); };"
            "ws.onclose = () => done('refused');"
        )
        self.driver.get(f"http://127.0.0.1:{other.server_address[1]}/")
        self.assertEqual(self.driver.execute_async_script(probe), "refused")
        self.assertIn(f"origin 'http://127.0.0.1:{other.server_address[1]}'", self.server_log())
        self.open_page()
        self.assertEqual(self.driver.execute_async_script(probe), "open")

    def test_the_page_reconnects_after_a_server_restart(self) -> None:
        server = self.start()
        self.enter_as("alice")
        server.send_signal(signal.SIGTERM)
        server.wait()
        wait(
            self.driver,
            lambda d: self.element("status").text.startswith(
                "Disconnected: server shutting down. Reconnecting in"
            ),
            "the disconnected status",
        )
        self.assertTrue(self.element("chat-reconnect").is_displayed())
        self.assertIn("Disconnected: server shutting down", self.conversation())
        self.start()
        self.wait_connected("alice")  # by itself, after its backoff
        self.assertEqual(self.conversation().count("Disconnected: server shutting down"), 1)
        bob = self.tcp_user("bob")
        bob.send("SEND alice :welcome back")
        self.wait_said("bob to you: welcome back")

    def test_protect_a_name_then_get_what_waited_and_an_operators_notice(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        self.element("protect").click()
        self.element("new-password").send_keys("correct horse")
        self.element("new-password-again").send_keys("correct horse" + Keys.ENTER)
        self.wait_said("alice is protected by your password")
        self.assertEqual(self.user_state("alice"), "online, protected, you")
        self.assertEqual(self.element("protect").text, "Change password…")
        self.element("logout").click()
        bob.until("LEFT alice")
        bob.send("SEND alice :while you were out")
        self.assertEqual(bob.until("SENT"), ["SENT 0 alice alice"])

        self.log_in("alice")  # no password
        wait(self.driver, lambda d: self.element("login-error").text, "the refusal")
        self.assertIn("alice", self.element("login-error").text)
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "password")
        self.element("password").send_keys("correct horse" + Keys.ENTER)
        self.wait_connected("alice")
        # Version 10, history kept: it comes in the login's catch-up, and its DELAYED is not shown again.
        self.wait_said("bob to you: while you were out")

        # Acknowledged: the next login brings nothing again.
        self.element("logout").click()
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "msgsvc.admin",
                "--db",
                self.db,
                "reset",
                "alice",
                "--reason",
                "asked for it",
            ],
            env=dict(os.environ, PYTHONPATH=ROOT),
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.wait_said("Disconnected: the operator removed your name's password: asked for it")
        self.assertEqual(self.conversation().count("bob to you: while you were out"), 1)

    def test_over_tls_the_page_uses_wss_and_closes_cleanly(self) -> None:
        folder = os.path.join(self.dir, "trusted")
        os.makedirs(folder)
        cert, key = make_certificate(folder, "localhost")
        self.start("ssl", f":privateKey={key}:certKey={cert}")
        bob = self.tcp_user("bob")
        self.url = f"https://localhost:{self.web}/"
        self.open_page()
        self.log_in("alice")
        self.wait_connected("alice", host="localhost")  # an https page may open wss: only
        self.assertEqual(bob.line(), "JOINED alice")
        bob.send("SEND alice :over TLS")
        self.wait_said("bob to you: over TLS")
        self.assertEqual(bob.line(), "SENT 1 - -")
        self.element("logout").click()
        self.assertEqual(bob.line(), "LEFT alice")
        wait(
            self.driver,
            lambda d: "left: quit: logged out" in self.server_log(),
            "the server's log of the quit",
        )

    def test_a_password_over_plain_http_to_another_machine_waits_for_a_second_click(self) -> None:
        self.start("tcp", "", "--web-host", ELSEWHERE)  # a name of this machine's the server cannot know
        self.url = f"http://{ELSEWHERE}:{self.web}/"
        self.open_page()
        self.log_in("alice", "correct horse")
        wait(self.driver, lambda d: "not encrypted" in self.element("login-error").text, "the warning")
        self.assertNotIn("registered as alice", self.server_log())
        self.assertEqual(self.element("password").get_attribute("value"), "correct horse")
        self.element("login-button").click()
        self.wait_connected("alice", host=ELSEWHERE)
        self.assertEqual(self.user_state("alice"), "online, protected, you")  # the password claimed it

    def test_keyboard_only(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.tcp_user("carol")
        self.open_page()
        keys = ActionChains(self.driver)

        def press(*sequence: str) -> str:
            for key in sequence:
                keys.send_keys(key).perform()
            return self.driver.switch_to.active_element.get_attribute("id") or ""

        self.assertEqual(press("alice", Keys.TAB), "password")
        self.assertEqual(press(Keys.TAB), "login-button")
        press(Keys.ENTER)
        self.wait_connected("alice")
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "message")
        # Back past the kinds and "Load earlier messages" to the username log: one stop for its radio
        # group (the last name, coming backwards), and the arrows move through the names.
        for _ in range(2):
            keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "load-earlier")
        # Then "Join room" and the conversations (#all's) under the log.
        keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "join-room")
        keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        self.assertEqual(self.driver.switch_to.active_element.accessible_name, "#all, everyone, 0 unread")
        keys.key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        focused = self.driver.switch_to.active_element.get_attribute("id")
        self.assertEqual(focused, self.recipient("carol").get_attribute("id"))
        press(Keys.ARROW_UP)  # alice, bob, carol: the arrow picks bob
        self.assertTrue(self.recipient("bob").is_selected())
        # bob's conversation has no history for an unprotected alice: no "Load earlier messages" stop now.
        self.assertEqual(press(Keys.TAB, Keys.TAB, Keys.TAB, Keys.TAB), "message")  # #all's, Join room, the kinds
        press("by keyboard", Keys.ENTER)
        self.assertEqual(bob.until("MSG")[-1], "MSG alice unicast bob :by keyboard")

    def test_controls_have_the_names_a_screen_reader_reads_and_it_fits_a_phone(self) -> None:
        self.start()
        self.tcp_user("bob")
        self.open_page()
        names = {i: self.element(i).accessible_name for i in ["username", "password", "login-button"]}
        self.assertEqual(names, {"username": "Username", "password": "Password", "login-button": "Log in"})
        self.log_in("alice")
        self.wait_connected("alice")
        names = {
            i: self.element(i).accessible_name
            for i in ["message", "send", "kind-unicast", "kind-multicast", "kind-broadcast"]
        }
        self.assertEqual(
            names,
            {
                "message": "Message",
                "send": "Send",
                "kind-unicast": "Unicast",
                "kind-multicast": "Multicast",
                "kind-broadcast": "Broadcast",
            },
        )
        self.assertEqual(self.recipient("bob").accessible_name, "bob")
        self.assertEqual(self.element("conversation").aria_role, "log")
        self.driver.set_window_size(390, 844)
        wide = self.driver.execute_script(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth"
        )
        self.assertFalse(wide, "the page scrolls sideways at a phone's width")
        self.assertTrue(self.element("send").is_displayed())

    def test_who_gains_or_loses_a_password_shows_in_the_log(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        bob.send("PASSWORD :bob's password")
        self.assertEqual(bob.until("PROTECTED")[-1], "PROTECTED bob :bob is protected by your password")
        wait(self.driver, lambda d: self.user_state("bob") == "online, protected", "bob protected, live")
        self.element("protect").click()
        self.element("new-password").send_keys("correct horse")
        self.element("new-password-again").send_keys("correct horse" + Keys.ENTER)
        self.assertEqual(bob.until("ACCOUNT alice")[-1], "ACCOUNT alice protected")
        self.reset_password("alice")
        self.wait_said("alice is no longer protected: set a password again to keep it yours.")
        self.wait_said("Disconnected: the operator removed your name's password: asked for it")
        # The page reconnects by itself, without the password the operator removed: not claimed with it again.
        wait(self.driver, lambda d: self.user_state("alice") == "online, you", "alice back, unprotected")
        self.assertEqual(self.element("protect").text, "Protect my name…")
        self.reset_password("bob")  # disconnected too: the log says he left, unprotected
        wait(self.driver, lambda d: self.user_state("bob") == "offline", "bob no longer protected")

    def test_a_name_never_registered_is_no_such_user(self) -> None:
        self.start()
        self.tcp_user("dave").send("QUIT")
        self.enter_as("alice")
        # The page offers the log's names only: as a list gone stale would, it names one the server never saw.
        self.driver.execute_script("session.sendMessage('multicast', ['dave', 'nobodyhome'], 'anyone?')")
        self.wait_said("no such user: nobodyhome")
        self.assertIn("not connected, did not get it: dave", self.conversation())
        self.assertNotIn("not connected, did not get it: dave, nobodyhome", self.conversation())

    def test_a_multicast_past_the_new_groups_a_day_says_why_it_was_not_sent(self) -> None:
        """--new-groups-per-day (attack36 F2): the page says the server's words (ERROR TOO_MANY_NEW_GROUPS)."""
        self.start("tcp", "", "--new-groups-per-day", "1")
        for name in ("bob", "carol", "dave"):
            self.tcp_user(name)
        self.open_page()
        self.log_in("alice", "alice's password")  # protected: her groups are kept, and counted
        self.wait_connected("alice")
        self.driver.execute_script("session.sendMessage('multicast', ['bob', 'carol'], 'one')")
        wait(self.driver, lambda d: self.receipts() == ["delivered to 2"], "the first receipt")
        self.driver.execute_script("session.sendMessage('multicast', ['bob', 'dave'], 'two')")
        wait(self.driver, lambda d: self.receipts() == ["delivered to 2", "not sent"], "the refusal")
        why = "not sent: you opened 1 new group conversations in a day, the most this server allows"
        self.assertTrue(any(entry.startswith(why) for entry in self.conversation()), self.conversation())

    def test_delivered_to_after_every_kind_of_send(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.tcp_user("carol")
        self.enter_as("alice")
        self.choose("unicast", "bob")
        self.say("hi bob")
        self.choose("multicast", "carol")
        self.say("hi both")
        self.choose("broadcast")
        self.say("hi all")
        bob.until("MSG alice broadcast")
        wait(self.driver, lambda d: len(self.receipts()) == 3, "three receipts")
        self.assertEqual(self.receipts(), ["delivered to 1", "delivered to 2", "delivered to 2"])
        self.assertEqual(self.conversation()[-3:], ["you to bob: hi bob", "you to bob, carol: hi both", "you to everyone: hi all"])

    def test_comings_and_goings_show_for_the_people_one_talks_with(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        carol = self.tcp_user("carol")
        wait(self.driver, lambda d: self.user_state("carol") == "online", "carol online, in the list")
        self.choose("unicast", "bob")
        self.say("hi bob")
        bob.send("QUIT")
        self.wait_said("bob went offline")
        carol.send("QUIT")
        wait(self.driver, lambda d: self.user_state("carol") == "offline", "carol offline, in the list")
        self.tcp_user("carol").send("SEND alice :back")
        self.wait_said("carol to you: back")
        self.assertNotIn("carol is online", self.conversation())
        self.assertNotIn("carol went offline", self.conversation())
        self.tcp_user("bob")
        self.wait_said("bob is online")

    def test_a_name_with_a_space_is_refused_before_connecting(self) -> None:
        self.start()
        self.open_page()
        self.log_in("al ice")
        wait(self.driver, lambda d: self.element("login-error").text, "the refusal")
        self.assertEqual(self.element("login-error").text, "A username cannot hold spaces.")
        self.assertEqual(self.element("username").get_attribute("value"), "al ice")
        self.assertNotIn("registered", self.server_log())

    def test_the_conversation_follows_through_a_resize_unless_scrolled_up(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.driver.set_window_size(390, 844)
        self.enter_as("alice")
        for n in range(40):
            bob.send(f"SEND alice :line {n}")
        self.wait_said("bob to you: line 39")
        self.assertTrue(self.in_sight("bob to you: line 39"))
        self.driver.set_window_size(844, 390)  # the phone turned
        bob.send("SEND alice :after the turn")
        self.wait_said("bob to you: after the turn")
        wait(self.driver, lambda d: self.in_sight("bob to you: after the turn"), "the new message in sight")
        self.assertTrue(self.shows("message"), "the message box is out of sight")
        self.driver.set_window_size(390, 844)
        wait(self.driver, lambda d: self.in_sight("bob to you: after the turn"), "still in sight, turned back")

        # reading back: the page hears of a scroll at its next frame, so the script returns after two
        self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "document.getElementById('conversation').scrollTop = 0;"
            "requestAnimationFrame(() => requestAnimationFrame(done));"
        )
        wait(self.driver, lambda d: not self.in_sight("bob to you: after the turn"), "scrolled up")
        self.assertFalse(self.element("new-messages").is_displayed())
        bob.send("SEND alice :while you read")
        self.wait_said("bob to you: while you read")
        wait(self.driver, lambda d: self.element("new-messages").is_displayed(), "the new messages marker")
        self.assertTrue(self.in_sight("bob to you: line 0"), "the conversation moved under the reader")
        self.element("new-messages").click()
        wait(self.driver, lambda d: self.in_sight("bob to you: while you read"), "the newest in sight")
        self.assertFalse(self.element("new-messages").is_displayed())

    def test_at_a_phones_width_the_message_box_stays_in_sight_and_the_log_opens_on_demand(self) -> None:
        self.start()
        peers = [self.tcp_user(f"user{n:02}") for n in range(12)]  # and the page: under --max-per-ip
        self.driver.set_window_size(390, 844)
        self.enter_as("alice")
        for n in range(30):
            peers[0].send(f"SEND alice :line {n}")
        self.wait_said("user00 to you: line 29")
        self.assertTrue(self.shows("message"), "the message box is out of sight")
        self.assertTrue(self.shows("send"))
        self.assertTrue(self.in_sight("user00 to you: line 29"))
        toggle = self.element("people-toggle")
        self.assertEqual(toggle.text, "To nobody yet · 13 online")
        self.assertEqual(toggle.get_attribute("aria-expanded"), "false")
        self.assertFalse(self.recipient("user05").is_displayed())
        toggle.click()
        self.assertEqual(toggle.get_attribute("aria-expanded"), "true")
        self.choose("unicast", "user05")
        self.assertEqual(toggle.text, "To user05 · 13 online")
        toggle.click()
        self.assertTrue(self.shows("message"))
        self.say("found you")
        self.assertEqual(peers[5].until("MSG")[-1], "MSG alice unicast user05 :found you")
        self.driver.set_window_size(1100, 760)
        self.assertFalse(toggle.is_displayed())
        self.assertTrue(self.recipient("user05").is_displayed())

    def test_while_you_were_away_is_in_sight_after_logging_in_again(self) -> None:
        self.start("tcp", "", "--history-days", "0")  # with history, what waited comes in the catch-up instead
        bob = self.tcp_user("bob")
        self.driver.set_window_size(390, 844)
        self.open_page()
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        for n in range(30):
            bob.send(f"SEND alice :before {n}")
        self.wait_said("bob to you: before 29")
        self.element("logout").click()
        bob.until("LEFT alice")
        for n in range(30):
            bob.send(f"SEND alice :while away {n}")
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        self.wait_said("bob to you: while away 29")
        wait(self.driver, lambda d: self.in_sight("While you were away:"), "the heading in sight")
        self.assertTrue(self.in_sight("bob to you: while away 0"))
        self.assertTrue(self.element("new-messages").is_displayed(), "nothing says there is more below")

    # -- history (protocol version 9) ------------------------------------------

    def history_note(self) -> str:
        return self.element("history-note").text

    def test_reload_the_page_and_the_conversation_is_there_and_earlier_messages_load(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.open_page()
        self.log_in("alice", "correct horse")  # claimed: a protected name keeps its direct history
        self.wait_connected("alice")
        for n in range(60):  # more than a page (50)
            bob.send(f"SEND alice :old {n}")
        self.wait_said("bob to you: old 59")
        self.choose("unicast", "bob")
        self.say("hi bob")
        wait(self.driver, lambda d: self.receipts() == ["delivered to 1"], "the receipt")

        self.open_page()  # reload
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        self.assertNotIn("bob to you: old 59", self.conversation())
        self.choose("unicast", "bob")  # the conversation opens: its latest page
        self.wait_said("you to bob: hi bob")
        said = self.conversation()
        self.assertIn("bob to you: old 11", said)
        self.assertNotIn("bob to you: old 10", said)
        self.assertLess(said.index("bob to you: old 59"), said.index("you to bob: hi bob"))
        button = self.element("load-earlier")
        self.assertTrue(button.is_displayed())
        self.assertEqual(button.accessible_name, "Load earlier messages")

        bob.send("SEND alice :after the reload")  # live, after the history
        self.wait_said("bob to you: after the reload")
        button.click()
        self.wait_said("bob to you: old 0")
        said = self.conversation()
        texts = [f"bob to you: old {n}" for n in range(60)] + ["you to bob: hi bob", "bob to you: after the reload"]
        self.assertEqual([t for t in said if t in texts], texts)  # in order, each once
        wait(self.driver, lambda d: not button.is_displayed(), "no more to load")
        self.assertIn("This is the start of the conversation.", self.history_note())
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "conversation")
        self.assertEqual(self.element("conversation").get_attribute("aria-live"), "polite")  # silent while loading

        self.choose("multicast")  # bob stays picked: the same conversation, not asked again
        self.choose("unicast", "bob")
        self.assertEqual(self.conversation().count("bob to you: old 30"), 1)

    def test_scrolling_to_the_top_loads_earlier_messages_in_place(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.open_page()
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        for n in range(70):
            bob.send(f"BROADCAST :news {n}")
        self.wait_said("bob to everyone: news 69")
        self.open_page()
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        self.choose("broadcast")  # #all: its latest page
        self.wait_said("bob to everyone: news 20")
        self.assertNotIn("bob to everyone: news 19", self.conversation())
        self.driver.execute_script("document.getElementById('conversation').scrollTop = 0")
        self.wait_said("bob to everyone: news 0")
        self.assertTrue(self.in_sight("bob to everyone: news 20"), "the reader lost its place")
        self.assertEqual(len([t for t in self.conversation() if t.startswith("bob to everyone")]), 70)

    def test_a_message_is_shown_once_whatever_brings_it_and_days_are_marked(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        bob.send("VERSION 9")
        bob.send("BROADCAST :live")
        self.assertEqual(bob.until("SENT")[-1].split()[:3], ["SENT", "1", "-"])
        self.wait_said("bob to everyone: live")
        msg_id = self.driver.execute_script(
            "return document.querySelector('#conversation li[data-id]').dataset.id"
        )
        yesterday = "new Date(Date.now() - 86400000).toISOString()"
        self.driver.execute_script(
            f"session.line(`HISTMSG #all bob broadcast * 00000000000000000000000001 ${{{yesterday}}} :before`);"
            f"session.line('HISTMSG #all bob broadcast * {msg_id} 2030-01-01T00:00:00.000Z :live');"
            "session.line('ENDHISTORY #all 2 more');"
            f"session.line('DELAYED 7 2030-01-01T00:00:00Z bob unicast alice {msg_id} :live');"
            "session.line('ENDDELAYED 0');"
        )
        self.wait_said("bob to everyone: before")
        self.assertEqual(self.conversation().count("bob to everyone: live"), 1)
        self.assertNotIn("bob to you: live", self.conversation())
        days = [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, "#conversation li.day")]
        self.assertEqual(days, ["Yesterday", "Today"])
        labels = self.driver.execute_script(
            "const now = new Date(2026, 11, 5, 9);"
            "return [dayLabel(new Date(2026, 11, 5, 1), now), dayLabel(new Date(2026, 11, 4, 23), now),"
            " dayLabel(new Date(2026, 11, 3, 9), now), dayLabel(new Date(2025, 11, 3, 9), now)]"
        )
        self.assertEqual(labels, ["Today", "Yesterday", "3 December", "3 December 2025"])

    def test_history_refused_or_absent_is_said_plainly(self) -> None:
        self.start()
        self.tcp_user("bob")
        self.enter_as("alice")  # unprotected: no direct history
        self.choose("unicast", "bob")
        wait(self.driver, lambda d: "Protect your name" in self.history_note(), "the reason")
        self.assertFalse(self.element("load-earlier").is_displayed())
        # A refusal the server gives is shown as it words it.
        self.driver.execute_script(
            "session.histories.set('alice,bob', {oldest: '*', more: true, loading: true, refused: ''});"
            "session.pending.push({what: 'history', conversation: 'alice,bob'});"
            "session.line('ERROR HISTORY_FORBIDDEN :protect your name (PASSWORD) to keep the history');"
        )
        wait(self.driver, lambda d: self.history_note() == "protect your name (PASSWORD) to keep the history", "it")
        # A version 8 server refuses VERSION: the page speaks version 8, with no history and no warning.
        before = self.conversation()
        self.driver.execute_script(
            "session.pending.unshift({what: 'version'});"
            "session.line('ERROR UNKNOWN_COMMAND :unknown command VERSION'); ui.renderHistory();"
        )
        self.assertEqual(self.conversation(), before)
        self.assertFalse(self.element("history").is_displayed())

    def test_with_history_off_the_page_says_so(self) -> None:
        self.start("tcp", "", "--history-days", "0")
        self.enter_as("alice")
        wait(self.driver, lambda d: self.history_note() == "This server keeps no history.", "the note")
        self.assertFalse(self.element("load-earlier").is_displayed())

    def listed(self) -> list[str]:
        """With whom each conversation of the list is, in its order (read at once: the list is redrawn as
        messages come)."""
        names: list[str] = self.driver.execute_script(
            "return [...document.querySelectorAll('#conversations button span:first-child')]"
            ".map((span) => span.innerText)"
        )
        return names

    def open_listed(self, who: str) -> None:
        def click(driver: WebDriver) -> bool:
            try:
                index = self.listed().index(who)
                driver.find_elements(By.CSS_SELECTOR, "#conversations button")[index].click()
            except StaleElementReferenceException:
                return False  # the list was redrawn between the two: again
            return True

        wait(self.driver, click, f"a click on {who}'s conversation")

    def gap(self) -> list[str]:
        return [li.text for li in self.driver.find_elements(By.CSS_SELECTOR, "#conversation li.gap")]

    def test_after_login_the_conversations_are_listed_and_each_opens_alone_before_the_login(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        carol = self.tcp_user("carol")
        self.open_page()
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        for peer, line, said in [
            (bob, "SEND alice :bob 1", "bob to you: bob 1"),
            (carol, "SEND alice :carol 1", "carol to you: carol 1"),
            (bob, "SEND alice :bob 2", "bob to you: bob 2"),
            (bob, "BROADCAST :news", "bob to everyone: news"),
        ]:
            peer.send(line)
            self.wait_said(said)  # in this order

        self.open_page()  # reload: the log starts empty, as on another machine
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        wait(self.driver, lambda d: self.listed() == ["everyone", "bob", "carol"], "the list, newest first")
        times = self.driver.find_elements(By.CSS_SELECTOR, "#conversations time")
        self.assertRegex(times[0].text, r"^\d\d:\d\d$")
        self.assertNotIn("bob to you: bob 1", self.conversation())

        self.open_listed("bob")  # as picking bob: addressed, and its latest page shown
        self.wait_said("bob to you: bob 2")
        self.assertTrue(self.element("kind-unicast").is_selected())
        self.assertTrue(self.recipient("bob").is_selected())
        current = self.driver.find_element(By.CSS_SELECTOR, '#conversations button[aria-current="true"] span')
        self.assertEqual(current.text, "bob")
        self.assertEqual(self.driver.switch_to.active_element.get_attribute("id"), "message")
        said = self.conversation()
        self.assertLess(said.index("bob to you: bob 1"), said.index("bob to you: bob 2"))
        self.assertNotIn("carol to you: carol 1", said)  # never loaded: the line says so
        self.assertEqual(self.gap(), ["Above: earlier messages with bob only. Below: all since you logged in."])
        order = self.driver.execute_script(
            "return [...document.querySelectorAll('#conversation li')].map((li) => li.className.split(' ')[0])"
        )
        self.assertEqual(order[order.index("gap") + 1 :][:1], ["system"])  # "Connected to ..." right below it

        self.open_listed("carol")  # bob's earlier messages go; carol's come
        self.wait_said("carol to you: carol 1")
        self.assertNotIn("bob to you: bob 1", self.conversation())
        self.assertEqual(self.gap(), ["Above: earlier messages with carol only. Below: all since you logged in."])
        self.open_listed("everyone")
        self.wait_said("bob to everyone: news")
        self.assertTrue(self.element("kind-broadcast").is_selected())
        self.assertNotIn("carol to you: carol 1", self.conversation())
        self.open_listed("bob")  # shown again, not asked again
        wait(self.driver, lambda d: "bob to you: bob 1" in self.conversation(), "bob's again")
        self.assertEqual(self.conversation().count("bob to you: bob 1"), 1)
        self.open_listed("carol")
        self.assertEqual(self.listed(), ["everyone", "bob", "carol"])
        carols = self.driver.find_elements(By.CSS_SELECTOR, "#conversations button")[2]
        self.driver.execute_script("arguments[0].focus()", carols)  # a keyboard user on carol's
        bob.send("SEND alice :live now")  # live: shown whatever is open, and bob's goes to the top of the list
        self.wait_said("bob to you: live now")
        wait(self.driver, lambda d: self.listed() == ["bob", "everyone", "carol"], "bob's first")
        focused = self.driver.switch_to.active_element
        self.assertEqual(focused.get_attribute("data-conversation"), "alice,carol")  # the focus stays
        self.assertIn("bob to you: live now", self.conversation())

    def test_a_hostile_list_of_conversations_is_cut_and_cleaned(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        wait(self.driver, lambda d: d.execute_script("return session.pending.length") == 0, "the list answered")
        crowd = ",".join(sorted(["alice", *(f"u{n}" for n in range(40))]))
        at = "2026-12-02T08:00:00.000Z"
        odd = [
            "CONVERSATION",
            f"CONVERSATION alice,b\\u202eob 01A {at}",
            f"CONVERSATION alice,\\ud800 01A {at}",
            f"CONVERSATION Alice,Bob 01A {at}",
            f"CONVERSATION bob,carol 01A {at}",
            f"CONVERSATION alice,,bob 01A {at}",
            "CONVERSATION alice,bob 01A yesterday",
            f"CONVERSATION {crowd} 01A {at}",
            f"CONVERSATION <img/src=x/onerror=alert(1)>,alice 01A {at}",
            "CONVERSATION alice,carol 01A 9999-12-31T23:59:59.999Z",
            f"CONVERSATION alice,carol 01A {at}",
        ]
        lines = odd + [f"CONVERSATION alice,u{n:03} 01A {at}" for n in range(150)]
        lines += ["ENDCONVERSATIONS 99999999999999999999999", "ENDCONVERSATIONS 1"]
        self.driver.execute_script(
            "session.pending.push({what: 'conversations'}); for (const line of arguments[0]) session.line(line);",
            lines,
        )
        listed = self.listed()
        self.assertEqual(len(listed), 100)
        self.assertEqual(listed[:2], ["carol", "u000"])
        self.assertEqual(listed[-1], "u098")
        self.choose("unicast", "bob")  # the answers still match their commands
        self.say("still here")
        wait(self.driver, lambda d: self.receipts() == ["delivered to 1"], "the receipt")
        bob.until("MSG")

    def test_version_10_own_messages_from_elsewhere_unread_counts_and_read(self) -> None:
        """The page against the lines of docs/protocol.rst's version 10 (given to it as the server would): a
        message its account sent elsewhere is its own; counts come with the list and live messages, clear on
        READ from another session, and the open conversation is read while the page is in sight and focused."""
        self.start()
        alice = self.tcp_user("alice")
        alice.send("PASSWORD :alice's secret")
        alice.until("PROTECTED")
        alice.close()
        self.tcp_user("bob")
        self.open_page()
        self.log_in("alice", "alice's secret")
        self.wait_connected("alice")
        wait(self.driver, lambda d: d.execute_script("return session.pending.length") == 0, "the list answered")
        at = "2026-12-02T09:02:10.906Z"
        ids = [f"01M8V0C6N3D0SNYQ1V4XC1XSA{n}" for n in range(8)]
        self.driver.execute_script(
            "session.version = 10; window.sentLines = [];"
            "const socket = session.socket, send = socket.send.bind(socket);"
            "socket.send = (line) => { window.sentLines.push(line); send(line); };"
        )

        def server_says(*lines: str) -> None:
            self.driver.execute_script("for (const line of arguments[0]) session.line(line);", lines)

        def counts() -> dict[str, str]:
            return {
                button.get_attribute("data-conversation") or "": button.find_element(By.CLASS_NAME, "unread").text
                for button in self.driver.find_elements(By.CSS_SELECTOR, "#conversations button")
                if button.find_elements(By.CLASS_NAME, "unread")
            }

        def reads() -> list[str]:
            sent = self.driver.execute_script("const s = window.sentLines; window.sentLines = []; return s;")
            return [line for line in sent if line.startswith("READ")]

        self.driver.execute_script("session.pending.push({what: 'conversations'})")
        server_says(
            f"CONVERSATION alice,bob {ids[1]} {at} 2 {ids[0]}",
            f"CONVERSATION #all {ids[1]} {at} -1 -",  # hostile: left out
            f"CONVERSATION alice,carol {ids[1]} {at} 3 yesterday",  # hostile: left out
            "ENDCONVERSATIONS 3",
            f"MSG alice unicast bob {ids[2]} {at} :from my phone",
            f"MSG bob unicast alice {ids[3]} {at} :one more",
        )
        self.assertIn("you to bob: from my phone", self.conversation())
        self.assertEqual(self.listed(), ["bob"])
        self.assertEqual(counts(), {"alice,bob": "3 unread"})
        server_says(
            "READ alice,bob nonsense",
            f"READ bob,carol {ids[7]}",
            f"READ Alice,Bob {ids[7]}",
        )
        self.assertEqual(counts(), {"alice,bob": "3 unread"})
        server_says(f"READ alice,bob {ids[3]}")  # the laptop read them
        self.assertEqual(counts(), {})
        self.assertEqual(reads(), [])

        self.driver.execute_script("document.hasFocus = () => false;")  # another window has the focus
        self.choose("unicast", "bob")
        server_says(f"MSG bob unicast alice {ids[4]} {at} :still there?")
        self.assertEqual(counts(), {"alice,bob": "1 unread"})
        self.assertEqual(reads(), [])
        self.driver.execute_script("delete document.hasFocus; window.dispatchEvent(new Event('focus'));")
        self.assertEqual(reads(), [f"READ alice,bob {ids[4]}"])
        self.assertEqual(counts(), {})
        server_says(f"MSG bob unicast alice {ids[5]} {at} :good")  # the open conversation, in sight: read at once
        self.assertEqual(counts(), {})
        self.assertEqual(reads(), [])  # said a second after the last READ
        said = "return window.sentLines.some((line) => line.startsWith('READ'))"
        wait(self.driver, lambda d: d.execute_script(said), "the READ a second later")
        self.assertEqual(reads(), [f"READ alice,bob {ids[5]}"])


class RoomPageTests(PageTestCase):
    """Version 11: the page by the accessible names the issue gives (a navigation region "Conversations", entries
    named with the room's or person's name and unread count, "Join room" and "Room name", a log named after the open
    conversation), against the real server with a TCP member beside it."""

    def named(self, css: str, name: str) -> WebElement:
        """The displayed element matching ``css`` whose accessible name is ``name``."""
        for element in self.driver.find_elements(By.CSS_SELECTOR, css):
            if element.is_displayed() and element.accessible_name == name:
                return element
        raise AssertionError(f"no {css} named {name!r}")

    def conversations(self) -> WebElement:
        nav = self.named("nav", "Conversations")
        self.assertEqual(nav.aria_role, "navigation")
        return nav

    def entries(self) -> list[str]:
        """The accessible names of the entries of the list of conversations."""
        return steady(self.driver, lambda: [
            button.accessible_name for button in self.conversations().find_elements(By.TAG_NAME, "button")
            if button.get_attribute("data-conversation")
        ])

    def press(self, css: str, name: str) -> None:
        """Click the displayed element matching ``css`` named ``name`` (found again if the page redrew it)."""
        wait(self.driver, lambda d: self.named(css, name).click() is None, f"{name} clicked")

    def open_log(self) -> WebElement:
        """The open conversation: a log, named after it."""
        logs = [e for e in self.driver.find_elements(By.CSS_SELECTOR, "[role=log]") if e.is_displayed()]
        self.assertEqual(len(logs), 1)
        return logs[0]

    def join(self, room: str) -> None:
        self.press("button", "Join room")
        field = self.named("input", "Room name")
        self.assertEqual(self.driver.switch_to.active_element, field)
        field.send_keys(room, Keys.ENTER)

    def test_create_a_room_a_second_user_joins_they_talk_unread_counts_and_a_reload_keeps_it(self) -> None:
        self.start()
        self.open_page()
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        self.join("#dev")
        wait(self.driver, lambda d: self.open_log().accessible_name == "#dev", "the log named #dev")
        self.wait_said("You are in #dev (1 member).")
        self.assertIn("#dev, 0 unread", self.entries())
        self.assertEqual(self.element("room-members").text, "@alice")

        bob = self.tcp_user("bob", version=11)
        bob.send("JOIN #DEV")  # any case: the room as alice spelled it
        self.assertIn("MEMBER #dev alice online op", bob.until("ENDMEMBERS"))
        self.wait_said("bob joined #dev")
        wait(self.driver, lambda d: self.element("room-members").text == "@alice\nbob", "bob among the members")
        self.element("message").send_keys("welcome, bob", Keys.ENTER)
        self.assertTrue(any(line.endswith(":welcome, bob") for line in bob.until("MSG alice room #dev")))
        bob.send("SEND #dev :thanks alice")
        self.wait_said("bob in #dev: thanks alice")

        self.press("button", "#all, everyone, 0 unread")  # another conversation open
        wait(self.driver, lambda d: self.open_log().accessible_name == "#all (everyone)", "everyone's log")
        bob.send("SEND #dev :are you there?")
        wait(self.driver, lambda d: any(e.startswith("#dev, 1 unread") for e in self.entries()), "#dev 1 unread")

        self.open_page()  # reload: alice's room is still hers
        self.log_in("alice", "correct horse")
        self.wait_connected("alice")
        wait(self.driver, lambda d: any(e.startswith("#dev, 1 unread") for e in self.entries()), "#dev after reload")
        wait(self.driver, lambda d: next(
            b for b in self.conversations().find_elements(By.TAG_NAME, "button")
            if (b.accessible_name or "").startswith("#dev")
        ).click() is None, "#dev opened")
        wait(self.driver, lambda d: self.open_log().accessible_name == "#dev", "the log named #dev again")
        self.wait_said("bob in #dev: are you there?")  # its history
        wait(self.driver, lambda d: any(e.startswith("#dev, 0 unread") for e in self.entries()), "read")

    def test_an_operators_actions_and_leaving(self) -> None:
        self.start()
        bob = self.tcp_user("bob", version=11)
        self.enter_as("alice")
        self.join("#ops")
        wait(self.driver, lambda d: self.open_log().accessible_name == "#ops", "the log named #ops")
        operator = self.named("form", "Operator")
        field = self.named("input", "Topic, name or modes")
        field.send_keys("on call this week")
        self.press("button", "Set topic")
        wait(self.driver, lambda d: self.element("room-topic").text == "Topic: on call this week", "the topic")
        field.send_keys("bob")
        self.press("button", "Invite")
        self.wait_said("You invited bob to #ops.")
        self.assertTrue(any(line.startswith("INVITATION #ops alice") for line in bob.until("INVITATION")))
        bob.send("JOIN #ops")
        self.wait_said("bob joined #ops")
        field.send_keys("+v bob")
        self.press("button", "Set modes")
        wait(self.driver, lambda d: self.element("room-members").text == "@alice\n+bob", "bob voiced")
        self.assertEqual(self.named("li", "bob, online, voice").text, "+bob")
        field.send_keys("bob enough")
        self.press("button", "Kick")
        self.wait_said("alice removed bob from #ops: enough")
        field.send_keys("+bb bob *!*@192.0.2.*")  # the page speaks version 12: bans are masks
        self.press("button", "Set modes")
        self.wait_said("alice set +bb bob!*@* *!*@192.0.2.* in #ops")
        field.send_keys("b")
        self.press("button", "Set modes")
        self.wait_said("Banned from #ops: bob!*@* (by alice), *!*@192.0.2.* (by alice)")
        self.assertTrue(operator.is_displayed())
        self.press("button", "Leave room")
        self.wait_said("You left #ops")
        wait(self.driver, lambda d: not any(e.startswith("#ops") for e in self.entries()), "#ops gone from the list")
        self.assertEqual(self.open_log().accessible_name, "#all (everyone)")

    def test_the_seeds_flow_is_whole_beside_the_rooms(self) -> None:
        self.start()
        bob = self.tcp_user("bob")
        self.enter_as("alice")
        self.join("#dev")
        wait(self.driver, lambda d: self.open_log().accessible_name == "#dev", "the log named #dev")
        self.choose("unicast", "bob")  # unicast, then the recipient from the log, then the text
        self.say("just you")
        self.assertTrue(any(line.endswith(":just you") for line in bob.until("MSG alice unicast bob")))
        self.assertEqual(self.open_log().accessible_name, "bob")
        self.assertFalse(self.element("room").is_displayed())

    def test_hostile_room_lines_do_not_break_the_page(self) -> None:
        self.start()
        self.enter_as("alice")
        self.join("#dev")
        wait(self.driver, lambda d: self.open_log().accessible_name == "#dev", "the log named #dev")
        errors = self.driver.execute_script(
            "const errors = []; for (const line of arguments[0]) {"
            "  try { session.line(line); } catch (e) { errors.push(`${line}: ${e}`); } }"
            "return errors;",
            [
                "ENTERED #dev <img src=x onerror=alert(1)>",
                "ENTERED #dev",
                "ENTERED dev bob",
                "MEMBER #dev",
                "ENDMEMBERS",
                "MSG bob room * 01M8V0C6N3D0SNYQ1V4XC1XSA1 2026-12-02T09:00:00.000Z :no room",
                "MSG bob room #nowhere,x 01M8V0C6N3D0SNYQ1V4XC1XSA2 2026-12-02T09:00:00.000Z :odd",
                "MODE #dev mallory +oooo",
                "MODE #dev - ",
                "MODE #dev <b> +o alice",
                "KICKED #dev alice",
                "TOPIC #dev",
                "ROOMINFO #dev -1 :x",
                "ROOMINFO #dev NaN :x",
                "ENDROOMS",
                "ROOMGONE",
                "PARTED #nowhere bob",
                "INVITATION #dev <script>",
            ],
        )
        self.assertEqual(errors, [])
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "#conversation img, #room img"), [])
        self.assertEqual(self.element("room-members").text, "@alice")
        self.element("message").send_keys("still works", Keys.ENTER)
        wait(self.driver, lambda d: "delivered to nobody" in self.receipts(), "the receipt")

    def test_at_a_phones_width_a_room_and_the_message_box_are_in_sight(self) -> None:
        self.start()
        self.driver.set_window_size(390, 844)
        self.addCleanup(self.driver.set_window_size, 1100, 760)
        self.enter_as("alice")
        self.element("people-toggle").click()  # the list of conversations is under the log's toggle
        self.join("#dev")
        wait(self.driver, lambda d: self.open_log().accessible_name == "#dev", "the log named #dev")
        self.element("people-toggle").click()
        self.assertEqual(self.element("people-summary").text, "To #dev")
        for shown in ("room-title", "leave-room", "operator-text", "message", "send"):
            self.assertTrue(self.shows(shown), shown)
