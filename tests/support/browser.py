"""Headless Chromium for the page's tests, driven by selenium: one browser for the whole run."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELSEWHERE = "msgsvc.test"
# Headless, and nothing that reaches for the network beyond the page (this machine has none).
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1100,760",
    "--ignore-certificate-errors",  # the TLS test's server has a self-signed certificate
    # A name that is not loopback's, for a page that must think it is on another machine; it is.
    f"--host-resolver-rules=MAP {ELSEWHERE} 127.0.0.1",
]

_driver: WebDriver | None = None
T = TypeVar("T")


def chromium() -> WebDriver:
    """The run's browser, started on first use. Missing Chromium is an error, not a skip: .ci/run installs it."""
    global _driver
    if _driver is None:
        for path, package in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")]:
            if shutil.which(path) is None:
                raise RuntimeError(f"{path} is missing: apt-get install {package} (.ci/run does)")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        profile = tempfile.mkdtemp(prefix="msgsvc-chromium-")
        options.add_argument(f"--user-data-dir={profile}")
        _driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        atexit.register(_quit, _driver, profile)
    return _driver


def _quit(driver: WebDriver, profile: str) -> None:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def steady(driver: WebDriver, read: Callable[[], T]) -> T:
    """What ``read`` finds on the page, read again if the page redrew an element it was reading (stale)."""
    return wait(driver, lambda d: (read(),), "a read of the page between two redraws")[0]


def wait(driver: WebDriver, condition: Callable[[WebDriver], T], what: str, seconds: float = 15) -> T:
    """Wait until ``condition`` is true-ish; its value. Fails naming ``what`` and showing the page's text.

    A condition that meets an element the page has just redrawn (stale) or not yet drawn is asked
    again, as one that is false: the page redraws its lists on every change."""
    try:
        return WebDriverWait(
            driver, seconds, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
        ).until(condition)
    except Exception as e:
        text = driver.execute_script("return document.body.innerText")
        raise AssertionError(f"waited {seconds} s for {what}; the page says:\n{text}") from e
