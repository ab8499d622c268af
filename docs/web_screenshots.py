"""Remake the browser page's screenshots in docs/images/: ``twistd msgsvc --web`` and headless Chromium.

Run it from the checkout with the test extra installed (selenium) and
Debian's chromium and chromium-driver: ``.venv/bin/python docs/web_screenshots.py``.
Bounded: it exits after about 20 seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "docs", "images")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
FLAGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Peer:
    """A TCP user, to talk with the page."""

    def __init__(self, port: int, name: str, password: str = "", version: int = 0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        if version:
            self.send(f"VERSION {version}")
        self.send(f"HELLO {name} :{password}" if password else f"HELLO {name}")
        while not self.file.readline().startswith(b"ENDUSERS"):
            pass

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")
        time.sleep(0.15)  # one after the other on the page, as people type


def shoot(driver: WebDriver, name: str) -> None:
    time.sleep(0.3)
    driver.save_screenshot(os.path.join(IMAGES, name))
    print("wrote", os.path.join(IMAGES, name))


def click_label(driver: WebDriver, selector: str) -> None:
    control = driver.find_element(By.CSS_SELECTOR, selector)
    driver.find_element(By.CSS_SELECTOR, f'label[for="{control.get_attribute("id")}"]').click()


def main() -> None:
    folder = tempfile.mkdtemp(prefix="msgsvc-shots-")
    tcp, web = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", "msgsvc"]
        + ["--db", os.path.join(folder, "names.sqlite3"), "--listen", f"tcp:{tcp}:interface=127.0.0.1"]
        + ["--web", f"tcp:{web}:interface=127.0.0.1"],
        cwd=folder,
        env=dict(os.environ, PYTHONPATH=ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in FLAGS + [f"--user-data-dir={folder}/chromium"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        deadline = time.monotonic() + 30  # twistd starting (slow on a busy machine)
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", tcp), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        dave = Peer(tcp, "dave")
        dave.send("QUIT")
        erin = Peer(tcp, "erin")
        erin.send("PASSWORD :erin's password")
        erin.send("QUIT")
        bob, carol = Peer(tcp, "bob"), Peer(tcp, "carol")
        driver.set_window_size(1000, 700)
        driver.get(f"http://127.0.0.1:{web}/")
        driver.find_element(By.ID, "username").send_keys("bob")
        shoot(driver, "page-login.png")
        driver.find_element(By.ID, "username").send_keys(Keys.ENTER)
        WebDriverWait(driver, 10).until(lambda d: "in use" in d.find_element(By.ID, "login-error").text)
        shoot(driver, "page-refused.png")
        driver.find_element(By.ID, "username").send_keys("alice" + Keys.ENTER)
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "message").is_displayed())
        bob.send("SEND alice,carol,dave :lunch at 12?")
        carol.send("BROADCAST :the build is green again")
        click_label(driver, 'input[value="bob"]')
        driver.find_element(By.ID, "message").send_keys("yes, the usual place" + Keys.ENTER)
        click_label(driver, "#kind-multicast")
        click_label(driver, 'input[value="dave"]')
        driver.find_element(By.ID, "message").send_keys("dave, are you in?" + Keys.ENTER)
        bob.send("SEND alice :<img src=x onerror=alert(1)> shows as text")
        carol.send("QUIT")  # told in the conversation: alice talks with carol
        _frank = Peer(tcp, "frank")  # online, in the list only: alice has not talked with frank
        driver.find_element(By.ID, "message").send_keys("shall I book a table")
        shoot(driver, "page-chat.png")
        driver.set_window_size(390, 844)
        shoot(driver, "page-phone.png")
        driver.find_element(By.ID, "people-toggle").click()
        shoot(driver, "page-phone-log.png")

        # erin, protected, talked with bob and dave from another machine; she logs in on the page.
        away = Peer(tcp, "erin", "erin's password")
        away.send("SEND bob :are the slides for friday ready?")
        bob.send("SEND erin :in the shared folder, have a look")
        away.send("SEND bob,dave :let's rehearse thursday at 4")
        away.send("QUIT")
        driver.set_window_size(1000, 700)
        driver.get(f"http://127.0.0.1:{web}/")  # alice leaves
        driver.find_element(By.ID, "username").send_keys("erin")
        driver.find_element(By.ID, "password").send_keys("erin's password" + Keys.ENTER)
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#conversations button"))
        driver.find_elements(By.CSS_SELECTOR, "#conversations button")[1].click()  # with bob
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#conversation li.gap"))
        bob.send("SEND erin :back from lunch: did you find them?")
        shoot(driver, "page-conversations.png")

        # erin's laptop (a version 10 client) and the page on her phone at once: what she sends from the
        # laptop shows on the phone as hers; bob's answer is unread on the phone while it shows everyone's.
        laptop = Peer(tcp, "erin", "erin's password", version=10)
        driver.set_window_size(390, 844)
        click_label(driver, "#kind-broadcast")
        laptop.send("SEND bob :found them, thanks!")
        WebDriverWait(driver, 10).until(lambda d: "found them" in d.find_element(By.ID, "conversation").text)
        bob.send("SEND erin :great, see you thursday")
        driver.find_element(By.ID, "people-toggle").click()
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#conversations .unread"))
        shoot(driver, "page-devices.png")

        # Rooms: erin creates #design with "Join room"; bob joins and they talk; a message to the room
        # while erin reads everyone's counts unread in the list.
        driver.set_window_size(1000, 700)
        driver.find_element(By.ID, "join-room").click()
        driver.find_element(By.ID, "room-name").send_keys("#design" + Keys.ENTER)
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.ID, "room").is_displayed())
        designer = Peer(tcp, "gina", version=11)
        designer.send("JOIN #design")
        designer.send("SEND #design :the new icons are in the shared folder")
        driver.find_element(By.ID, "message").send_keys("they look great, ship them" + Keys.ENTER)
        operator = driver.find_element(By.ID, "operator-text")
        operator.send_keys("+v gina")
        driver.find_element(By.CSS_SELECTOR, '#operator button[value="mode"]').click()
        designer.send("SEND #design :thanks! the dark theme next")
        WebDriverWait(driver, 10).until(lambda d: "dark theme" in d.find_element(By.ID, "conversation").text)
        driver.find_element(By.ID, "message").send_keys("gina, ping me when it's up")
        shoot(driver, "page-rooms.png")
    finally:
        driver.quit()
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
