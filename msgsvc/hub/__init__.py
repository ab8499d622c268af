"""The hub: who is online, the username log, and message routing, knowing no socket and no wire.

:mod:`~msgsvc.hub.contracts` holds what the hub shares with the rest (the records that cross its
ports, the ports ``Participant``, ``IUser``, ``Store``, ``HistoryStore``, ``RoomStore`` and ``Network``, its
refusals), beside what defines the values that cross them: :mod:`~msgsvc.hub.rules` (usernames,
passwords, a message's text and recipients), :mod:`~msgsvc.hub.ids` (message ids),
:mod:`~msgsvc.hub.conversations` (conversation keys) and :mod:`~msgsvc.hub.events` (what observers
are told); :mod:`~msgsvc.hub.core` the
``Hub`` (registration, sessions, the log, local routing, the operator's actions), which composes
:mod:`~msgsvc.hub.queue` (messages waiting for users who are away) and :mod:`~msgsvc.hub.nodes`
(routing between the nodes of a service; a server alone is a network of one node), and
:mod:`~msgsvc.hub.rooms` (rooms: their members, control and limits);
:mod:`~msgsvc.hub.session` the session those three share.
"""
