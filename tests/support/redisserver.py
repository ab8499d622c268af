"""A real redis-server for the tests: started on a free loopback port in a directory of its own."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from msgsvc.state.redis import RedisState
from msgsvc.state.redisurl import RedisURL

from .tls import make_certificate

PACKAGE_HINT = (
    "redis-server is not installed: install Debian's redis-server package (apt-get install redis-server)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` again keep its directory (its AOF).

    With ``tls`` (a certificate that is its own authority, and its key), it speaks TLS only, and
    asks every client for a certificate from that authority.
    """

    def __init__(self, *options: str, tls: tuple[str, str] | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError(PACKAGE_HINT)
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="msgsvc-redis-")
        self.port = free_port()
        self.options = options
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is None:
            return f"redis://127.0.0.1:{self.port}/0"
        certificate, key = self.tls
        files = f"ssl_ca_certs={certificate}&ssl_certfile={certificate}&ssl_keyfile={key}"
        return f"rediss://localhost:{self.port}/0?{files}"

    def _ping(self) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as plain:
            if self.tls is None:
                plain.sendall(b"PING\r\n")
                return plain.recv(64)
            context = ssl.create_default_context(cafile=self.tls[0])
            context.load_cert_chain(*self.tls)
            with context.wrap_socket(plain, server_hostname="localhost") as s:
                s.sendall(b"PING\r\n")
                return s.recv(64)

    def start(self) -> None:
        port = ["--port", str(self.port)]
        if self.tls is not None:
            certificate, key = self.tls
            port = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", certificate]
            port += ["--tls-key-file", key, "--tls-ca-cert-file", certificate, "--tls-auth-clients", "yes"]
        argv = [self.binary, *port, "--bind", "127.0.0.1", "--dir", self.directory]
        argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", *self.options]
        log = open(os.path.join(self.directory, "redis.log"), "ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self._ping().startswith((b"+PONG", b"-NOAUTH")):
                    return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        with open(os.path.join(self.directory, "redis.log")) as f:
            raise AssertionError(f"redis-server did not start on port {self.port}:\n{f.read()}")

    def stop(self, kill: bool = False) -> None:
        if self.process is not None:
            (self.process.kill if kill else self.process.terminate)()
            self.process.wait()
            self.process = None

    def cleanup(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisCase(SynchronousTestCase):
    """A test with a redis-server of its own (``self.redis``) and a folder for its servers (``self.dir``)."""

    #: the server speaks TLS only, with a certificate of its own authority (``self.certificate``)
    tls = False

    def setUp(self) -> None:
        files = None
        if self.tls:
            folder = tempfile.mkdtemp(prefix="msgsvc-redis-tls-")
            self.addCleanup(shutil.rmtree, folder, True)
            os.mkdir(os.path.join(folder, "ca"))
            files = make_certificate(os.path.join(folder, "ca"))
            self.certificate = files[0]
        self.redis = RedisServer(tls=files)
        self.addCleanup(self.redis.cleanup)
        self.redis.start()
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)


class RedisStateCase(TestCase):
    """A test with a started :class:`RedisState` (``self.state``) on a redis-server of its own (``self.server``)."""

    timeout = 30

    def setUp(self) -> Deferred[None]:
        self.server = RedisServer()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.state = self.started()
        return self.state.redis.ready()

    def started(self) -> RedisState:
        state = RedisState(reactor, RedisURL.parse(self.server.url))
        state.startService()
        self.addCleanup(state.stopService)
        return state
