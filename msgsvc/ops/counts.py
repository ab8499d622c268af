"""What the hub's events tell the operator, counted: :class:`EventCounts`, a hub observer."""

from __future__ import annotations

from collections import Counter

from msgsvc.hub.events import ClientDropped, ClientError, Event, RegistrationRefused, SessionOpened


class EventCounts:
    """Counts refusals by code, logins by outcome and clients dropped by the limit they passed, from the
    hub's events (:meth:`msgsvc.hub.core.Hub.subscribe`): none of these is on a message's path."""

    def __init__(self) -> None:
        self.refusals: Counter[str] = Counter()  # lines refused, by their error code (IRC: the refusal)
        self.logins: Counter[str] = Counter()  # "ok", or the refusal's name in lower case
        self.dropped: Counter[str] = Counter()  # by ClientDropped.limit

    def __call__(self, event: Event) -> None:
        match event:
            case ClientError(code=code):
                self.refusals[code] += 1
            case SessionOpened():
                self.logins["ok"] += 1
            case RegistrationRefused(refusal=refusal):
                self.logins[refusal.name.lower()] += 1
            case ClientDropped(limit=limit):
                self.dropped[limit] += 1
