"""A scraper of msgsvc's ``/metrics`` during a measured run, as Prometheus would scrape it."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Sequence

#: seconds between scrapes: far more often than Prometheus is set to (60 s by default, 10-15 s commonly),
#: so that the cost of serving the metrics shows if there is one
INTERVAL = 1.0


def fetch(url: str) -> None:
    """GET ``url`` and read its whole answer, as a scrape does; an error status raises."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        answer.read()


class Scraper:
    """Scrapes each of ``urls`` every ``interval`` seconds, in a thread, from :meth:`start` to :meth:`stop`."""

    def __init__(
        self, urls: Sequence[str], interval: float = INTERVAL, get: Callable[[str], None] = fetch
    ) -> None:
        self.urls = list(urls)
        self.interval = interval
        self.scrapes = 0
        self._get = get
        self._stopping = threading.Event()
        self._failure: Exception | None = None
        self._thread = threading.Thread(target=self._scrape, name="bench scraper", daemon=True)

    def _scrape(self) -> None:
        while True:
            for url in self.urls:
                try:
                    self._get(url)
                except Exception as failure:  # reported by stop: a run that was not scraped is no measurement
                    self._failure = failure
                    return
                self.scrapes += 1
            if self._stopping.wait(self.interval):
                return

    def start(self) -> None:
        """Scrape from now on (nothing to do without urls)."""
        if self.urls:
            self._thread.start()

    def stop(self) -> int:
        """Stop scraping; the scrapes made (RuntimeError if one failed)."""
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join()
        if self._failure is not None:
            raise RuntimeError(f"scraping /metrics failed: {self._failure!r}") from self._failure
        return self.scrapes
