"""Moments as people say them, for every client and front."""

from __future__ import annotations

import datetime
import time


def _days_ago(then: time.struct_time, today: time.struct_time) -> int:
    return (datetime.date(*today[:3]) - datetime.date(*then[:3])).days


def describe_time(when: float, now: float) -> str:
    """When a delayed message was sent, as a reader says it: ``today 09:12``, ``yesterday 17:02``,
    ``Mon 30 Nov 17:02``, ``30 Nov 2025 17:02``."""
    then, today = time.localtime(when), time.localtime(now)
    days = _days_ago(then, today)
    clock = time.strftime("%H:%M", then)
    if days == 0:
        return f"today {clock}"
    if days == 1:
        return f"yesterday {clock}"
    if then.tm_year == today.tm_year:
        return time.strftime("%a %d %b ", then).lstrip("0") + clock
    return time.strftime("%d %b %Y ", then).lstrip("0") + clock


def describe_day(when: float, now: float) -> str:
    """The day of ``when``, as a heading over that day's messages: ``Today``, ``Yesterday``,
    ``3 December``, ``3 December 2025``."""
    then, today = time.localtime(when), time.localtime(now)
    days = _days_ago(then, today)
    if days == 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    return f"{then.tm_mday} {time.strftime('%B' if then.tm_year == today.tm_year else '%B %Y', then)}"


def start_of_day(when: float) -> float:
    """The local midnight that starts the day of ``when``."""
    then = time.localtime(when)
    return time.mktime((then.tm_year, then.tm_mon, then.tm_mday, 0, 0, 0, 0, 0, -1))
