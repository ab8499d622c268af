"""Moments as people say them, for every client and front."""

from __future__ import annotations

import datetime
import time


def describe_time(when: float, now: float) -> str:
    """When a delayed message was sent, as a reader says it: ``today 09:12``, ``yesterday 17:02``,
    ``Mon 30 Nov 17:02``, ``30 Nov 2025 17:02``."""
    then, today = time.localtime(when), time.localtime(now)
    days = (datetime.date(*today[:3]) - datetime.date(*then[:3])).days
    clock = time.strftime("%H:%M", then)
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"yesterday {clock}"
    if then.tm_year == today.tm_year:
        return time.strftime("%a %d %b ", then).lstrip("0") + clock
    return time.strftime("%d %b %Y ", then).lstrip("0") + clock
