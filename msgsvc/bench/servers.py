"""The servers under test, each started as its own process pinned to one core."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

#: msgsvc with its clients on its web front's WebSocket rather than on TCP
MSGSVC_WEB = "msgsvc-web"
#: msgsvc with its clients on its IRC front, speaking the IRC load of words and ngIRCd
MSGSVC_IRC = "msgsvc-irc"
#: msgsvc's nodes (one or more) on a Redis server of their own, the clients spread over the nodes
MSGSVC_REDIS = "msgsvc-redis"
#: Ergo (ergochat/ergo), not a Debian package: the binary ``--ergo`` names (:data:`ERGO_VARIABLE`), or ``ergo``
#: on the PATH when it is the IRC server (Debian's ``ergo`` is a chemistry program)
ERGO = "ergo"
ERGO_VARIABLE = "MSGSVC_BENCH_ERGO"
SERVERS = ("msgsvc", "words", "ngircd", ERGO, MSGSVC_WEB, MSGSVC_IRC, MSGSVC_REDIS)
#: the servers that are msgsvc (they take ``--history-days``)
MSGSVCS = ("msgsvc", MSGSVC_WEB, MSGSVC_IRC, MSGSVC_REDIS)
#: the servers whose history can be on or off
HISTORIES = (*MSGSVCS, ERGO)
#: the msgsvc servers whose load can log in to accounts (the line protocol's ``HELLO name :password``)
ACCOUNTS = ("msgsvc", MSGSVC_WEB, MSGSVC_REDIS)
#: what ``bench suite`` compares unless told: msgsvc and its peers, all over TCP (a peer not here is skipped)
SUITE = ("msgsvc", "words", "ngircd", ERGO)
PASSWORD = "bench"

#: msgsvc's limits, raised so that the bench measures it rather than its flood protection
MSGSVC_OPTIONS = [
    "--max-clients=1000000",
    "--max-per-ip=1000000",
    "--line-rate=1000000000",
    "--line-burst=1000000",
    "--address-byte-rate=1000000000000",
    "--address-byte-burst=1000000000000",
    "--new-names-per-minute=1000000000",
    "--new-names-burst=1000000",
    "--new-accounts-per-minute=1000000000",
    "--new-accounts-burst=1000000",
    "--password-hashes-per-minute=1000000000",
    "--password-hashes-burst=1000000",
    "--queue-address-burst=1000000000",
    "--max-send-queue=268435456",
    "--max-room-members=1000000",
    "--hello-timeout=600",
    "--ping-interval=3600",
]

#: ngIRCd's configuration: penalties ("fake lag") off, no per-address or join limits, no lookups
NGIRCD_CONF = """\
[Global]
    Name = bench.localhost
    Info = msgsvc bench peer
    Listen = 127.0.0.1
    Ports = {port}
    Password = {password}
    MotdPhrase = bench
[Limits]
    MaxConnections = 0
    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 32
    MaxPenaltyTime = 0
    PingTimeout = 3600
    PongTimeout = 3600
[Options]
    DNS = no
    Ident = no
    PAM = no
"""


#: Ergo's configuration: fake lag, per-address limits and throttles off, a send queue as large as msgsvc's, no
#: accounts, cloaks or lookups; its history (in memory, as it keeps it without a database) on or off.  A PASS is
#: ignored (no server password, no login by PASS), so Ergo takes the lines it takes words'.
ERGO_CONF = """\
network:
    name: bench
server:
    name: bench.ergo
    listeners:
        "127.0.0.1:{port}": {{}}
    casemapping: ascii
    lookup-hostnames: false
    check-ident: false
    max-sendq: 256M
    ip-limits:
        count: false
        throttle: false
    ip-cloaking:
        enabled: false
accounts:
    authentication-enabled: false
    registration:
        enabled: false
    login-throttling:
        enabled: false
    login-via-pass-command: false
    nick-reservation:
        enabled: false
    multiclient:
        enabled: false
    default-user-modes: ""
channels:
    default-modes: +nt
    max-channels-per-client: 100
    registration:
        enabled: false
logging:
    -
        method: stderr
        type: "* -userinput -useroutput"
        level: info
datastore:
    path: ircd.db
    autoupgrade: true
limits:
    nicklen: 32
    identlen: 20
    channellen: 64
    awaylen: 390
    kicklen: 390
    topiclen: 390
    monitor-entries: 100
    whowas-entries: 100
    chan-list-modes: 60
    registration-messages: 1024
    multiline:
        max-bytes: 0
        max-lines: 0
fakelag:
    enabled: false
history:
    enabled: {history}
    channel-length: 2048
    client-length: 256
    autoresize-window: 3d
    autoreplay-on-join: 0
    chathistory-maxmessages: 100
    znc-maxmessages: 2048
    restrictions:
        expire-time: 1w
        query-cutoff: none
        grace-period: 1h
    persistent:
        enabled: false
"""


def ergo_conf(port: int, history: bool) -> str:
    """Ergo's configuration (:data:`ERGO_CONF`) listening on ``port``, its history on or off."""
    return ERGO_CONF.format(port=port, history="true" if history else "false")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of every thread of process ``pid`` so far."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_environment() -> dict[str, str]:
    """The environment for a server or load process: it imports the msgsvc this one does."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A running server: its CPU time and memory, read from /proc."""

    def __init__(
        self, name: str, argv: list[str], port: int, workdir: Path, cpu: int | None, env: dict[str, str]
    ):
        self.name = name
        self.port = port
        self.workdir = workdir
        self._log = open(workdir / "server.out", "wb")
        affinity = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.process = subprocess.Popen(
            argv, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=affinity, env=env
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
            return True

        self._wait(listening, f"is not listening on port {self.port}")

    def wait_logged(self, texts: Sequence[str], timeout: float = 30) -> None:
        """Wait until the server's log holds each of ``texts``."""
        log = self.workdir / "server.log"

        def logged() -> bool:
            text = log.read_text(errors="replace") if log.exists() else ""
            return all(t in text for t in texts)

        self._wait(logged, f"did not log {' and '.join(texts)}", timeout)

    def _wait(self, ready: Callable[[], bool], failure: str, timeout: float = 30) -> None:
        """Poll ``ready`` until it holds; RuntimeError (saying ``failure``) if the server exits first
        or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            if ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} {failure} after {timeout:g} s:\n{self.output()}")

    def output(self) -> str:
        """The end of what the server printed and logged."""
        text = ""
        for name in ("server.out", "server.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")[-3000:]
        return text

    def _proc(self, name: str) -> str:
        return (Path("/proc") / str(self.process.pid) / name).read_text()

    def cpu_seconds(self) -> float:
        """User and system CPU time of every thread so far."""
        return cpu_seconds(self.process.pid)

    def _status_kib(self, key: str) -> int:
        for line in self._proc("status").splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def rss_kib(self) -> int:
        return self._status_kib("VmRSS")

    def peak_rss_kib(self) -> int:
        return self._status_kib("VmHWM")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


class Deployment:
    """The server under test: one process, or msgsvc's nodes and the Redis server they share."""

    def __init__(
        self, nodes: Sequence[ServerProcess], store: ServerProcess | None = None, metrics: Sequence[int] = ()
    ) -> None:
        self.nodes = list(nodes)
        self.store = store
        self.metrics = list(metrics)

    @property
    def metrics_urls(self) -> list[str]:
        """Each node's ``/metrics``, if it serves them."""
        return [f"http://127.0.0.1:{port}/metrics" for port in self.metrics]

    @property
    def ports(self) -> list[int]:
        """Where the clients connect: each node's port."""
        return [node.port for node in self.nodes]

    def cpu_seconds(self) -> float:
        """The nodes' CPU time, all of them (Redis's is :meth:`store_cpu_seconds`)."""
        return sum(node.cpu_seconds() for node in self.nodes)

    def store_cpu_seconds(self) -> float:
        return self.store.cpu_seconds() if self.store else 0.0

    def rss_kib(self) -> int:
        return sum(node.rss_kib() for node in self.nodes)

    def peak_rss_kib(self) -> int:
        return sum(node.peak_rss_kib() for node in self.nodes)

    def output(self) -> str:
        return "\n".join(process.output() for process in [*self.nodes, *filter(None, [self.store])])

    def stop(self) -> None:
        for process in [*self.nodes, *filter(None, [self.store])]:
            process.stop()


def _redis_server() -> str:
    return shutil.which("redis-server") or "/usr/bin/redis-server"


def _ngircd() -> str:
    return shutil.which("ngircd") or "/usr/sbin/ngircd"


def _ergo() -> str | None:
    """The Ergo binary: :data:`ERGO_VARIABLE`'s, else ``ergo`` on the PATH if ``ergo --version`` says it is
    Ergo (``ergo-2.11.1``); None if there is none."""
    given = os.environ.get(ERGO_VARIABLE)
    if given:
        return given if os.access(given, os.X_OK) else None
    found = shutil.which("ergo")
    if found is None:
        return None
    try:
        said = subprocess.run(
            [found, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found if said.startswith(b"ergo-") else None


def missing(name: str) -> str | None:
    """Why server ``name`` cannot be run here, or None if it can."""
    if name == "ngircd" and not os.path.exists(_ngircd()):
        return "ngircd is not installed (Debian: apt-get install ngircd)"
    if name == ERGO and _ergo() is None:
        return (
            "no Ergo binary (--ergo PATH, or the IRC server's ergo on the PATH; Debian's ergo is another "
            "program): its rows are skipped"
        )
    if name == MSGSVC_REDIS and not os.path.exists(_redis_server()):
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    return None


#: The password of every protected name a bench seeds.
ACCOUNT_PASSWORD = "bench password"


def seed_msgsvc(path: Path, protected: Sequence[str], others: Sequence[str]) -> None:
    """A msgsvc database whose log holds ``protected`` (with :data:`ACCOUNT_PASSWORD`) and ``others``.

    One hash serves every protected name: each check costs the same.
    """
    from msgsvc.auth.hashing import HASHER
    from msgsvc.state.sqlite import Database

    database = Database(str(path))
    try:
        database.record_seen([(name, 0.0) for name in [*protected, *others]])
        password_hash = HASHER.hash(ACCOUNT_PASSWORD)
        for name in protected:
            database.set_password_hash(name, password_hash, 0.0)
    finally:
        database.close()


#: Redis as docs/scaling.rst advises a deployment: AOF, written to disk every second, and the history's
#: sorted sets compact (``zset-max-listpack-value``).
REDIS_OPTIONS = [
    *("--save", "", "--appendonly", "yes", "--appendfsync", "everysec"),
    *("--zset-max-listpack-value", "1024"),
]


def deploy(
    name: str,
    workdir: Path,
    names: Sequence[str],
    cpus: Sequence[int | None],
    nodes: int = 1,
    history: bool = True,
    metrics: bool = False,
    accounts: bool = False,
) -> Deployment:
    """Start server ``name``, or for :data:`MSGSVC_REDIS` a Redis server and ``nodes`` nodes on it.

    Node ``i`` runs on ``cpus[i]`` (None: any core); Redis, on ``cpus[nodes]`` if there is one.
    Without ``history``, msgsvc runs with ``--history-days 0``; with ``metrics``, each node serves
    ``--metrics`` on a loopback port of its own (:attr:`Deployment.metrics_urls`); with ``accounts``,
    every one of ``names`` is protected with :data:`ACCOUNT_PASSWORD` before it starts.
    """
    if metrics and name not in MSGSVCS:
        raise ValueError(f"metrics are for {', '.join(MSGSVCS)}")
    if accounts and name not in ACCOUNTS:
        raise ValueError(f"accounts are for {', '.join(ACCOUNTS)}")
    msgsvc_options = MSGSVC_OPTIONS if history else [*MSGSVC_OPTIONS, "--history-days=0"]
    scraped: list[int] = []

    def node_options(*more: str) -> list[str]:
        if metrics:
            scraped.append(free_port())
            more = (*more, f"--metrics=tcp:{scraped[-1]}:interface=127.0.0.1")
        return [*msgsvc_options, *more]

    seeded = workdir / "bench.sqlite3"  # msgsvc's database (on Redis: what is copied into it)
    if accounts:
        seed_msgsvc(seeded, names, [])
    if name != MSGSVC_REDIS:
        if nodes != 1:
            raise ValueError(f"{name} is one process; nodes are for {MSGSVC_REDIS}")
        return Deployment([start(name, workdir, names, cpus[0], node_options(), history)], metrics=scraped)
    problem = missing(name)
    if problem:
        raise RuntimeError(problem)
    folder = workdir / "redis"
    folder.mkdir()
    port = free_port()
    argv = [_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), *REDIS_OPTIONS]
    store = ServerProcess(
        "redis-server", argv, port, folder, cpus[nodes] if len(cpus) > nodes else None, dict(os.environ)
    )
    redis_url = f"redis://127.0.0.1:{port}/0"
    started: list[ServerProcess] = []
    try:
        if accounts:
            migrate = [sys.executable, "-m", "msgsvc.state.migrate", f"--db={seeded}", f"--redis={redis_url}"]
            done = subprocess.run(
                migrate, env=child_environment(), capture_output=True, text=True, timeout=120
            )
            if done.returncode:
                raise RuntimeError(f"could not copy the accounts into Redis: {done.stderr}")
        for i in range(nodes):
            (workdir / f"node{i}").mkdir()
            options = node_options(f"--redis={redis_url}")
            started.append(start("msgsvc", workdir / f"node{i}", names, cpus[i], options))
        for node in started:  # ready for HELLO: a lease, the subscription, the log read
            node.wait_logged(["lease held", "subscription: connected", "username log"])
    except BaseException:
        Deployment(started, store).stop()
        raise
    return Deployment(started, store, scraped)


def start(
    name: str,
    workdir: Path,
    names: Iterable[str],
    cpu: int | None,
    msgsvc_options: Sequence[str] = MSGSVC_OPTIONS,
    history: bool = True,
) -> ServerProcess:
    """Start server ``name`` listening on a free loopback port, knowing the bench's ``names``.

    ``msgsvc_options`` are msgsvc's limits (the soak test keeps them low); ``history``, Ergo's.
    """
    port = free_port()
    env = child_environment()
    twistd = [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "--nodaemon",
        "--pidfile=",
        "--logfile=server.log",
    ]
    if name == "msgsvc":
        argv = twistd + [
            "msgsvc",
            f"--listen=tcp:{port}:interface=127.0.0.1:backlog=1024",
            "--db=bench.sqlite3",
            *msgsvc_options,
        ]
    elif name == MSGSVC_WEB:
        argv = twistd + [
            "msgsvc",
            f"--listen=tcp:{free_port()}:interface=127.0.0.1",
            f"--web=tcp:{port}:interface=127.0.0.1:backlog=1024",
            "--db=bench.sqlite3",
            *msgsvc_options,
        ]
    elif name == MSGSVC_IRC:
        argv = twistd + [
            "msgsvc",
            f"--listen=tcp:{free_port()}:interface=127.0.0.1",
            f"--irc=tcp:{port}:interface=127.0.0.1:backlog=1024",
            "--irc-server-name=bench.msgsvc",
            "--db=bench.sqlite3",
            *msgsvc_options,
        ]
    elif name == "words":
        (workdir / "names").write_text("".join(n + "\n" for n in names))
        env.update(BENCH_PORT=str(port), BENCH_NAMES=str(workdir / "names"), BENCH_PASSWORD=PASSWORD)
        argv = twistd + ["--python", str(Path(__file__).with_name("wordspeer.py"))]
    elif name == "ngircd":
        problem = missing(name)
        if problem:
            raise RuntimeError(problem)
        (workdir / "ngircd.conf").write_text(NGIRCD_CONF.format(port=port, password=PASSWORD))
        argv = [_ngircd(), "--nodaemon", "--config", str(workdir / "ngircd.conf")]
    elif name == ERGO:
        binary = _ergo()
        if binary is None:
            raise RuntimeError(missing(name))
        (workdir / "ircd.yaml").write_text(ergo_conf(port, history))
        env["GOMAXPROCS"] = "1"  # one core, as the others have
        argv = [binary, "run", "--conf", str(workdir / "ircd.yaml")]
    else:
        raise ValueError(f"unknown server {name!r}")
    return ServerProcess(name, argv, port, workdir, cpu, env)
