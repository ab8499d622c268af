"""Issue 31's scenario: one account on the page on a phone (headless Chromium, a phone's width) and
in the Tk window on a laptop at once, against ``twistd -n msgsvc --web``, with bob on TCP.

Needs a display for the window (CI runs it under Xvfb), as tests/test_client_gui.py does.
"""

from __future__ import annotations

import os
import tkinter
from collections.abc import Callable

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from msgsvc.client.connect import endpoint_connector
from msgsvc.client.gui import ChatWindow
from msgsvc.client.presenter import ChatPresenter
from msgsvc.hub.contracts import Kind

from .support.browser import chromium, steady
from .support.display import collect_windows, need_display
from .support.processes import Peer, free_ports, run_msgsvc

PASSWORD = "alice's secret"


class PhoneAndLaptopTests(TestCase):
    async def setUp(self) -> None:
        need_display()
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        self.port, self.web = free_ports(2)
        listen = ["--listen", f"tcp:{self.port}:interface=127.0.0.1"]
        web = ["--web", f"tcp:{self.web}:interface=127.0.0.1"]
        run_msgsvc(self, folder, ["--db", os.path.join(folder, "names.sqlite3"), *listen, *web], [self.port, self.web])
        self.phone = chromium()
        self.phone.set_window_size(390, 844)  # a phone's
        self.addCleanup(self.phone.set_window_size, 1100, 760)
        self.addCleanup(self.phone.get, "about:blank")  # the page's WebSocket closes with it
        self.laptop = ChatWindow(tkinter.Tk())
        presenter = ChatPresenter(self.laptop, endpoint_connector(reactor), reactor, "", f"tcp:127.0.0.1:{self.port}")
        self.laptop.bind(presenter, lambda: None)
        presenter.start()
        self.addCleanup(self.tear_down)

    async def tear_down(self) -> None:
        assert self.laptop.presenter is not None
        await self.laptop.presenter.quit()
        self.laptop.root.destroy()
        collect_windows([self.laptop])

    async def until(self, what: str, condition: Callable[[], bool], timeout: float = 20) -> None:
        """Run the reactor and the window until ``condition`` holds (the page runs on its own)."""
        for _ in range(int(timeout / 0.02)):
            self.laptop.root.update()
            if condition():
                return
            await deferLater(reactor, 0.02, lambda: None)
        page = self.phone.execute_script("return document.body.innerText")
        window = f"{self.on_laptop()}\n{self.laptop_list()}"
        self.fail(f"timed out waiting for {what}; the page says:\n{page}\nthe window says:\n{window}")

    # -- the laptop ----------------------------------------------------------

    def on_laptop(self) -> str:
        return str(self.laptop.conversation.get("1.0", "end"))

    def laptop_pick(self, mode: Kind, *names: str) -> None:
        self.laptop.mode_buttons[mode].invoke()
        for name in names:
            labels = self.laptop.users.get(0, "end")
            self.laptop.users.selection_set(next(i for i, label in enumerate(labels) if label.split()[1] == name))
        self.laptop.users.event_generate("<<ListboxSelect>>")
        self.laptop.root.update()

    def laptop_list(self) -> list[str]:
        return [str(line) for line in self.laptop.conversations.get(0, "end")]

    # -- the phone -----------------------------------------------------------

    def on_phone(self) -> list[str]:
        return steady(self.phone, lambda: [
            e.text for e in self.phone.find_elements(By.CSS_SELECTOR, "#conversation li .text")
        ])

    def phone_unread(self) -> dict[str, str]:
        return steady(self.phone, lambda: {
            button.get_attribute("data-conversation") or "": button.find_element(By.CLASS_NAME, "unread").text
            for button in self.phone.find_elements(By.CSS_SELECTOR, "#conversations button")
            if button.find_elements(By.CLASS_NAME, "unread")
        })

    def phone_choose(self, kind: str, *names: str) -> None:
        """Pick on the phone as its user does: the people panel opens on demand at a phone's width."""
        toggle = self.phone.find_element(By.ID, "people-toggle")
        if toggle.is_displayed() and toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        self.phone.find_element(By.CSS_SELECTOR, f'label[for="kind-{kind}"]').click()
        for name in names:
            control = self.phone.find_element(By.CSS_SELECTOR, f'#users input[value="{name}"]')
            self.phone.find_element(By.CSS_SELECTOR, f'label[for="{control.get_attribute("id")}"]').click()

    def phone_say(self, text: str) -> None:
        message = self.phone.find_element(By.ID, "message")
        message.send_keys(text)
        message.send_keys(Keys.ENTER)

    async def both_logged_in(self) -> Peer:
        """The laptop and the phone logged in to alice's account, bob on TCP: bob's connection."""
        self.laptop.username.delete(0, "end")
        self.laptop.username.insert(0, "alice")
        self.laptop.password.insert(0, PASSWORD)
        self.laptop.connect_button.invoke()
        await self.until("the laptop connected", lambda: self.laptop.status.cget("text").startswith("Connected"))
        bob = Peer(self.port)
        self.addCleanup(bob.close)
        bob.send("HELLO bob")
        bob.until("ENDUSERS")

        self.phone.get(f"http://127.0.0.1:{self.web}/")
        self.phone.find_element(By.ID, "username").send_keys("alice")
        self.phone.find_element(By.ID, "password").send_keys(PASSWORD)
        self.phone.find_element(By.ID, "username").send_keys(Keys.ENTER)
        connected = f"Connected to 127.0.0.1:{self.web} as alice"
        await self.until("the phone connected", lambda: self.phone.find_element(By.ID, "status").text == connected)
        return bob

    async def test_a_message_sent_on_one_shows_on_the_other_as_mine(self) -> None:
        bob = await self.both_logged_in()
        self.phone_choose("unicast", "bob")
        self.phone_say("from my phone")
        self.assertEqual(bob.until("MSG")[-1].split(" :", 1)[1], "from my phone")
        await self.until("the phone's message on the laptop", lambda: "you to bob: from my phone" in self.on_laptop())
        self.laptop_pick(Kind.UNICAST, "bob")
        self.laptop.message.insert(0, "from my laptop")
        self.laptop.message.event_generate("<Return>")
        await self.until("the laptop's message on the phone", lambda: "you to bob: from my laptop" in self.on_phone())
        self.assertEqual(bob.until("MSG")[-1].split(" :", 1)[1], "from my laptop")

    async def test_reading_on_one_clears_the_unread_count_on_the_other(self) -> None:
        bob = await self.both_logged_in()
        self.phone_choose("unicast", "bob")
        # Bob answers while the laptop shows everyone's conversation and the phone, bob's but out of sight: unread
        # on both; the phone comes back in sight and reads it, and the laptop's count clears.
        self.laptop_pick(Kind.BROADCAST)
        self.phone.execute_script("document.hasFocus = () => false;")
        bob.send("SEND alice :lunch?")
        await self.until("unread on the laptop", lambda: any("bob" in i and "1 unread" in i for i in self.laptop_list()))
        self.assertIn("bob to you: lunch?", self.on_phone())
        self.assertEqual(self.phone_unread(), {"alice,bob": "1 unread"})
        self.phone.execute_script("delete document.hasFocus; window.dispatchEvent(new Event('focus'));")
        await self.until("read on the phone, cleared on the laptop", lambda: not any(
            "unread" in item for item in self.laptop_list()
        ))
        self.assertEqual(self.phone_unread(), {})

        # The other way: the phone shows everyone's conversation, bob writes again; the laptop opens his.
        self.phone_choose("broadcast")
        bob.send("SEND alice :at noon?")
        await self.until("unread on the phone", lambda: self.phone_unread().get("alice,bob") == "1 unread")
        self.laptop.presenter.look(True)  # type: ignore[union-attr]  # the laptop's window has the focus
        self.laptop_pick(Kind.UNICAST, "bob")
        await self.until("read on the laptop, cleared on the phone", lambda: self.phone_unread() == {})
