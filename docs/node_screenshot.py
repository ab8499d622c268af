"""Remake docs/images/server-node.png: the window of one node of a service of two, on a real Redis: an
account with a session on each node, a room spanning both.

Run it on a display (``xvfb-run -s '-screen 0 1280x800x24' python docs/node_screenshot.py``);
it needs redis-server, and ImageMagick's ``import`` and ``xwininfo``.  It starts a redis-server,
two ``twistd msgsvc`` nodes (the first with ``--gui``) and registers users on both over TCP.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = os.path.join(ROOT, "docs", "images")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"node_screenshot: {what} did not happen in {seconds} s")


class Client:
    """A user on a node, over the line protocol (version 11: rooms); ``password`` protects its name, or
    attaches another session of it."""

    def __init__(self, port: int, name: str, password: str = "") -> None:
        self.socket = socket.create_connection(("127.0.0.1", port))
        self.file = self.socket.makefile("rb")
        self.send("VERSION 11")
        self.send(f"HELLO {name}" + (f" :{password}" if password else ""))
        self.until("WELCOME", name)

    def until(self, prefix: str, what: str) -> None:
        for _ in range(50):
            line = self.file.readline().decode()
            if line.startswith(prefix):
                return
            if line.startswith("ERROR") or not line:
                break
        raise SystemExit(f"node_screenshot: {what}: no {prefix}: {line}")

    def send(self, line: str) -> None:
        self.socket.sendall(line.encode() + b"\r\n")


def main() -> None:
    folder = tempfile.mkdtemp(prefix="msgsvc-node-shot-")
    redis_port, ports = free_port(), (free_port(), free_port())
    url = f"redis://127.0.0.1:{redis_port}/0"
    processes = [
        subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", folder, "--save", ""],
            stdout=subprocess.DEVNULL,
        )
    ]
    env = dict(os.environ, PYTHONPATH=ROOT)
    try:
        wait_for("redis-server", lambda: socket.create_connection(("127.0.0.1", redis_port)).close() or True)
        for i, port in enumerate(ports):
            log = os.path.join(folder, f"node{i}.log")
            argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
            argv += [
                "-n",
                "--pidfile=",
                f"--logfile={log}",
                "msgsvc",
                "--redis",
                url,
                "--listen",
                f"tcp:{port}",
            ]
            processes.append(subprocess.Popen(argv + (["--gui"] if i == 0 else []), cwd=folder, env=env))
            wait_for(f"node {i}", lambda log=log: "username log" in open(log).read())
        alice = Client(ports[0], "alice", "correct horse battery")  # an account: a session on each node
        users = [alice, Client(ports[1], "bob"), Client(ports[0], "carol"), Client(ports[1], "dave")]
        users.append(Client(ports[1], "alice", "correct horse battery"))
        for user, room in ((alice, "#release"), (users[1], "#release"), (users[2], "#release")):
            user.send(f"JOIN {room}")  # a room spanning both nodes
            user.until("ENDMEMBERS", f"JOIN {room}")
        alice.send("SEND bob,dave :the release notes are up")
        users[1].send("SEND #release :standup in five minutes")
        users.append(Client(ports[1], "erin"))
        users[-1].send("QUIT :lunch")  # in the log, offline
        time.sleep(2.5)  # the window's refresh
        tree = subprocess.run(
            ["xwininfo", "-root", "-tree"], capture_output=True, text=True, check=True
        ).stdout
        window = re.search(r"(0x[0-9a-f]+) \"msgsvc server\"", tree)
        if window is None:
            raise SystemExit("node_screenshot: no window titled 'msgsvc server'")
        path = os.path.join(IMAGES, "server-node.png")
        subprocess.run(["import", "-window", window.group(1), path], check=True)
        print("wrote", path)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
