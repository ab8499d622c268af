"""The IRC front: irssi, WeeChat and HexChat users as ordinary msgsvc users.

IRC is adapted to the hub here the way :mod:`msgsvc.fronts.lines` adapts
the line protocol: an :class:`~msgsvc.fronts.irc.session.IrcSession` is a
:class:`~msgsvc.fronts.session.Session` (the same per-address count,
deadlines, PING, flood and slow-reader limits, and login through the same
portal) that speaks RFC 1459/2812 as modern clients use it
(modern.ircdocs.horse).

* A nick is a msgsvc username without ``.`` (IRC nicks cannot hold one):
  1 to 32 of ``A-Z a-z 0-9 _ -``, a letter first.  Names with a ``.`` that
  other fronts registered appear in IRC prefixes as they are.
* ``PRIVMSG``/``NOTICE`` to a nick is a unicast, to ``a,b`` a multicast;
  ``#all`` holds everyone online: ``PRIVMSG #all`` is a broadcast, and
  msgsvc's broadcasts appear there.  Every other channel is one of the hub's
  rooms (:mod:`msgsvc.fronts.irc.rooms`: JOIN, PART, KICK, INVITE, TOPIC,
  NAMES, LIST, WHO, MODE with o v b i k l m n s t), its refusals said with
  IRC's numerics (:mod:`msgsvc.fronts.irc.numerics`); ``AWAY`` with
  ``away-notify`` (:mod:`msgsvc.fronts.irc.away`), ``multi-prefix``,
  ``extended-join`` and ``account-tag``.
* Protected names log in with SASL PLAIN or ``PASS``.  Messages that
  waited come after the MOTD (with ``server-time``, stamped when they were
  sent), and are acknowledged when the client answers the ``PING`` sent
  after them: its ``PONG`` shows it read them.
* A protected name's password attaches another connection to its nick
  (several sessions of one account, as Ergo's multiclient): each gets every
  message, and what the others sent.
* IRCv3 ``message-tags`` (``TAGMSG``, client-only tags), ``server-time`` and
  ``msgid`` on every message, ``echo-message``, ``batch`` and
  ``labeled-response`` (:mod:`msgsvc.fronts.irc.tags`), ``draft/chathistory``
  on the hub's history (:mod:`msgsvc.fronts.irc.history`) and
  ``draft/read-marker`` on its read positions (:mod:`msgsvc.fronts.irc.markers`):
  docs/irc.rst.
"""
