"""The web front: the browser page, and the line protocol over WebSocket.

``/`` serves the page (``static/``, files beside these modules: no build
step, no CDN), under the host names :mod:`~msgsvc.fronts.web.site` serves.
``/ws`` is a WebSocket (Twisted's :mod:`twisted.web.websocket`) that
carries exactly the line protocol, one line a text message each way
(:mod:`~msgsvc.fronts.web.websocket`), to pages of the origins
:mod:`~msgsvc.fronts.web.origins` accepts.  Each WebSocket drives an
ordinary :class:`~msgsvc.fronts.lines.ServerProtocol` through
:class:`~msgsvc.fronts.web.websocket.FrameTransport`, over the server's one
:class:`~msgsvc.fronts.clients.Clients` and the line protocol's one
:class:`~msgsvc.fronts.presence.Presence`: web users share the hub, the limits,
the accounts, the per-address count and the presence news with TCP
users, and nothing of the protocol is written twice.
"""
