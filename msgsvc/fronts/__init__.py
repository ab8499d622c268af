"""The fronts: each adapts one client protocol to the hub.

:mod:`msgsvc.fronts.lines` is the line protocol over TCP or TLS;
:mod:`msgsvc.fronts.web` serves the browser page and carries the same
lines over WebSocket, one line a frame, to the same protocol objects.
"""
