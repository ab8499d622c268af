"""How the server's window writes times: a duration, and a moment."""

from __future__ import annotations

import time


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def stamp(when: float) -> str:
    """A moment, to the minute, in local time."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
