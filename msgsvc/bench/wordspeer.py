"""``twistd -n -y wordspeer.py``: Twisted's own chat server, set up for the bench.

It is ``twistd words`` with an IRC port, but made here because two of its
options do not serve: ``--group`` fails on Python 3 (it calls ``decode`` on
a ``str``), so the broadcast channel is created here, and the bench's
users get passwords from an in-memory checker rather than a passwd file
that ``--passwd`` would read again at every login.  Environment:
``BENCH_PORT`` (the IRC port, on 127.0.0.1), ``BENCH_NAMES`` (a file of
user names, one a line), ``BENCH_PASSWORD``.
"""

import os

from twisted.application.service import Application
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.words import tap

with open(os.environ["BENCH_NAMES"], encoding="utf-8") as names:
    _password = os.environ["BENCH_PASSWORD"].encode()
    _checker = InMemoryUsernamePasswordDatabaseDontUse(**{n.strip(): _password for n in names if n.strip()})

_options = tap.Options()
_options.parseOptions(["--irc-port", f"tcp:{os.environ['BENCH_PORT']}:interface=127.0.0.1"])
_options.addChecker(_checker)
_options["groups"].append("bench")

application = Application("words")
tap.makeService(_options).setServiceParent(application)
