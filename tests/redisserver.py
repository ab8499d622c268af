"""A real redis-server for the tests: started on a free loopback port in a directory of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

from twisted.trial.unittest import SynchronousTestCase

PACKAGE_HINT = (
    "redis-server is not installed: install Debian's redis-server package (apt-get install redis-server)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` again keep its directory (its AOF)."""

    def __init__(self, *options: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise AssertionError(PACKAGE_HINT)
        self.binary = binary
        self.directory = tempfile.mkdtemp(prefix="msgsvc-redis-")
        self.port = free_port()
        self.options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory]
        argv += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", *self.options]
        log = open(os.path.join(self.directory, "redis.log"), "ab")
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
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

    def setUp(self) -> None:
        self.redis = RedisServer()
        self.addCleanup(self.redis.cleanup)
        self.redis.start()
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
