"""What the end-to-end tests start: ``twistd -n msgsvc`` on free loopback ports; blocking line clients, over
TCP and over the web front's WebSocket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Event, Ping, RejectConnection, Request, TextMessage

#: The checkout: what the started processes put on PYTHONPATH.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def free_port() -> int:
    (port,) = free_ports(1)
    return port


def free_ports(count: int) -> list[int]:
    """``count`` different free loopback ports: each socket held until all are bound, so that the kernel
    cannot give one port twice (it did: a server's two listeners asked for one port, and it failed)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_listening(
    case: SynchronousTestCase, process: subprocess.Popen[bytes], ports: list[int], output: Callable[[], str]
) -> None:
    """Return once ``process`` accepts connections on every port; fail ``case`` with ``output()`` if it exits."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            case.fail(f"twistd exited: {output()}")
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    case.fail("twistd did not start listening")


def run_msgsvc(
    case: SynchronousTestCase, folder: str, args: list[str], ports: list[int], started: str = "] rooms: "
) -> subprocess.Popen[bytes]:
    """``twistd -n msgsvc`` with ``args`` in ``folder``, logging to its ``server.log``, once it listens on ``ports``
    and has read its state, log and rooms (before that, a ``HELLO`` or a room command is answered
    ``SERVER_ERROR``: docs/protocol.rst): once its log holds ``started``, which the text log writes then."""
    log_path = os.path.join(folder, "server.log")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            TWISTD + ["-n", "--pidfile=", "msgsvc", *args],
            cwd=folder,
            env=dict(os.environ, PYTHONPATH=ROOT),
            stdout=log,
            stderr=log,
        )
    case.addCleanup(reap, process)

    def output() -> str:
        with open(log_path, encoding="utf-8") as log:
            return log.read()

    wait_listening(case, process, ports, output)
    deadline = time.monotonic() + 30
    while started not in output():  # after the username log
        if process.poll() is not None or time.monotonic() > deadline:
            case.fail(f"twistd did not read its state: {output()}")
        time.sleep(0.05)
    return process


def reap(process: subprocess.Popen[bytes]) -> None:
    """Kill ``process`` if it still runs, wait for it, close its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        if pipe is not None:
            pipe.close()


class Peer:
    """A blocking line client."""

    received = 0  # bytes read

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self) -> str:
        raw = self.file.readline()
        if not raw:
            raise EOFError("connection closed")
        self.received += len(raw)
        return raw.decode().rstrip("\r\n")

    def until(self, prefix: str) -> list[str]:
        got = [self.line()]
        while not got[-1].startswith(prefix):
            got.append(self.line())
        return got

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class WebPeer(Peer):
    """A blocking WebSocket client (wsproto) of the web front at ``ws://127.0.0.1:PORT/ws``: a line a message."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.pending: deque[str] = deque()
        self.text = ""  # a message's fragments so far
        host = f"127.0.0.1:{port}"
        origin = [(b"origin", f"http://{host}".encode())]
        self.sock.sendall(self.ws.send(Request(host=host, target="/ws", extra_headers=origin)))
        while not any(isinstance(event, AcceptConnection) for event in self._receive()):
            pass

    def _receive(self) -> list[Event]:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.ws.receive_data(data)
        events = list(self.ws.events())
        for event in events:
            if isinstance(event, RejectConnection):
                raise ConnectionError(f"the handshake was refused: {event.status_code}")
            if isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))
            elif isinstance(event, TextMessage):
                self.text += event.data
                if event.message_finished:
                    self.pending.append(self.text)
                    self.text = ""
        return events

    def send(self, line: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=line)))

    def line(self) -> str:
        while not self.pending:
            self._receive()
        return self.pending.popleft()

    def close(self) -> None:
        self.sock.close()
