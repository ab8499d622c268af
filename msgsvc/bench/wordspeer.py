"""``twistd -n -y wordspeer.py``: Twisted's own chat server, set up for the bench.

It is ``twistd words`` with an IRC port, made here because its options do
not serve on Python 3: ``--group`` calls ``decode`` on a ``str`` and fails,
so the broadcast channel is created here; and Twisted's stock password
checkers key users by ``bytes`` while the IRC side asks with the ``str``
nickname, so no login succeeds; the checker here accepts the bench's
names with its password.  Environment: ``BENCH_PORT`` (the IRC port, on
127.0.0.1), ``BENCH_NAMES`` (a file of user names, one a line),
``BENCH_PASSWORD``.
"""

import os
from collections.abc import Iterable
from typing import Any

from twisted.application.service import Application
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.words import tap
from zope.interface import implementer


@implementer(ICredentialsChecker)
class BenchUsers:
    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, names: Iterable[str], password: str) -> None:
        self._names = set(names)
        self._password = password

    def requestAvatarId(self, credentials: Any) -> "Deferred[Any]":
        # Any: twisted.words passes the str nickname where IUsernamePassword declares bytes.
        if credentials.username in self._names and credentials.checkPassword(self._password):
            return succeed(credentials.username)
        return fail(UnauthorizedLogin())


with open(os.environ["BENCH_NAMES"], encoding="utf-8") as names:
    _checker = BenchUsers((n.strip() for n in names), os.environ["BENCH_PASSWORD"])

_options = tap.Options()
_options.parseOptions(["--irc-port", f"tcp:{os.environ['BENCH_PORT']}:interface=127.0.0.1:backlog=1024"])
_options.addChecker(_checker)
_options["groups"].append("bench")

application = Application("words")
tap.makeService(_options).setServiceParent(application)
