"""The hub: who is online, the username log, and message routing, knowing no socket and no wire.

:mod:`~msgsvc.hub.contracts` holds what the hub shares with the rest (records, events, the ports
``Participant``, ``Store`` and ``Network``, the username rules); :mod:`~msgsvc.hub.core` the
``Hub`` (registration, sessions, the log, local routing, the operator's actions), which composes
:mod:`~msgsvc.hub.queue` (messages waiting for users who are away) and :mod:`~msgsvc.hub.nodes`
(routing between the nodes of a service; a server alone is a network of one node);
:mod:`~msgsvc.hub.session` the session those three share.
"""
