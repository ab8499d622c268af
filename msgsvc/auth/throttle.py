"""The login throttle: password guessing slowed, per name and per address."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime


@dataclass
class _Tally:
    failures: int
    last: float  # when the last of them was


class _Tallies:
    """Failures by name or by address, each forgotten ``window`` seconds after its last."""

    #: Expired tallies are swept out whenever the table grows past twice its size at the last
    #: sweep (and past this): guesses from a million addresses cannot grow it for good.
    SWEEP_AT = 1024

    def __init__(self, window: float) -> None:
        self._window = window
        self._tallies: dict[str, _Tally] = {}
        self._sweep_at = self.SWEEP_AT

    def __iter__(self) -> Iterator[str]:
        return iter(self._tallies)

    def failures(self, what: str, now: float) -> int:
        tally = self._tallies.get(what)
        if tally is not None and now - tally.last > self._window:
            del self._tallies[what]
            return 0
        return 0 if tally is None else tally.failures

    def add(self, what: str, now: float) -> int:
        """Count one more failure; how many there are now."""
        failures = self.failures(what, now) + 1
        self._tallies[what] = _Tally(failures, now)
        if len(self._tallies) > self._sweep_at:
            for old in [w for w, t in self._tallies.items() if now - t.last > self._window]:
                del self._tallies[old]
            self._sweep_at = max(self.SWEEP_AT, 2 * len(self._tallies))
        return failures

    def forget(self, what: str) -> None:
        self._tallies.pop(what, None)


class LoginThrottle:
    """Slows password guessing, per name and per address, and never locks anyone out for good.

    After :attr:`FREE` failed logins within :attr:`WINDOW` seconds for a
    name, or from an address, each further attempt waits 1, 2, 4 ... up to
    :attr:`LONGEST` seconds before it is checked.  Only failures count, so
    a hundred people behind one address logging in at once are not slowed.
    A right password clears the name's count; :attr:`WINDOW` quiet seconds
    clear either.
    """

    FREE = 3
    LONGEST = 30.0
    WINDOW = 900.0

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.names = _Tallies(self.WINDOW)
        self.hosts = _Tallies(self.WINDOW)
        self._checking_names: Counter[str] = Counter()  # attempts being checked, by name key
        self._checking_hosts: Counter[str] = Counter()  # and by address

    def wait(self, key: str, host: str) -> float:
        """The seconds an attempt on name ``key`` from ``host`` waits before it is checked."""
        now = self._clock.seconds()
        return max(
            self._step(self.names.failures(key, now) + self._checking_names[key]),
            self._step(self.hosts.failures(host, now) + self._checking_hosts[host]),
        )

    def begin(self, key: str, host: str) -> None:
        """An attempt on ``key`` from ``host`` is being checked: until :meth:`end` it counts as a failure
        in :meth:`wait`, so attempts made at once wait as if made one after the other."""
        self._checking_names[key] += 1
        self._checking_hosts[host] += 1

    def end(self, key: str, host: str) -> None:
        for checking, tally in ((self._checking_names, key), (self._checking_hosts, host)):
            checking[tally] -= 1
            if not checking[tally]:
                del checking[tally]

    def failed(self, key: str, host: str) -> tuple[int, int]:
        """Count a wrong password; the failures now counted for the name and for the address."""
        now = self._clock.seconds()
        return self.names.add(key, now), self.hosts.add(host, now)

    def succeeded(self, key: str) -> None:
        """The owner of ``key`` gave the right password."""
        self.names.forget(key)

    def _step(self, failures: int) -> float:
        over = failures - self.FREE
        return 0.0 if over < 0 else min(2.0**over, self.LONGEST)
