"""``twistd msgsvc``'s command-line options: their names, defaults, help text and checks."""

from __future__ import annotations

import os

from twisted.python import usage

from msgsvc.auth.accounts import NEW_ACCOUNTS, NEW_NAMES, PASSWORD_HASHES
from msgsvc.fronts.irc.channel import CHANNEL_NAME
from msgsvc.fronts.web.origins import normalize_host, normalize_origin
from msgsvc.hub.contracts import HistoryPolicy, QueuePolicy
from msgsvc.hub.rooms import RoomPolicy
from msgsvc.ops.logs import JSON_LOGGER
from msgsvc.ratelimit import Rate

#: Rooms the users of one address may create an hour (as many at once).
NEW_ROOMS_PER_HOUR = 10


def hourly_rate(hourly: int) -> Rate:
    """``hourly`` an hour as a rate: as many at once, then each its share of the hour."""
    return Rate(per_minute=hourly / 60, burst=hourly)
from msgsvc.state.redisurl import RedisURL
from msgsvc.wire import Limits

DEFAULT_LISTEN = "tcp:8123"
DEFAULT_DB = "msgsvc.sqlite3"
DEFAULT_MAX_CLIENTS = 1000
DEFAULT_MAX_SESSIONS = 10
_DEFAULTS = Limits()


def _seconds(value: str) -> float:
    """A positive number (of seconds, or lines per second)."""
    number = float(value)
    if not number > 0:
        raise ValueError(f"{value} is not a positive number")
    return number


_seconds.coerceDoc = "A positive number."  # type: ignore[attr-defined]


def _days(value: str) -> float:
    """A number of days, 0 or more."""
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"{value} is not a number of days (0 or more)")
    return number


_days.coerceDoc = "A number, 0 or more."  # type: ignore[attr-defined]


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value} is not a positive whole number")
    return number


_positive.coerceDoc = "A positive whole number."  # type: ignore[attr-defined]


def _redis_url(value: str) -> str:
    RedisURL.usable(value)
    return value


_redis_url.coerceDoc = "A redis:// or rediss:// URL."  # type: ignore[attr-defined]


def _lease(value: str) -> float:
    seconds = float(value)
    if not seconds >= 1:
        raise ValueError(f"{value} is less than 1 second")
    return seconds


_lease.coerceDoc = "Seconds, at least 1."  # type: ignore[attr-defined]


def _log_format(value: str) -> str:
    if value not in ("text", "json"):
        raise ValueError(f"{value!r} is neither text nor json")
    return value


_log_format.coerceDoc = "text or json."  # type: ignore[attr-defined]


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run the msgsvc message server.  Clients register a unique username and "
        "exchange unicast, multicast and broadcast text messages; every username "
        "ever used is kept in an SQLite file.  The wire protocol is in docs/protocol.rst."
    )
    optFlags = [
        ["gui", None, "Show the server's window: the username log, who is online, events (needs twistd -n)."],
        [
            "require-password",
            None,
            "Every name must be protected: a name nobody protected is claimed by the first HELLO with a password.",
        ],
    ]
    optParameters = [
        [
            "irc-channel",
            None,
            "#all",
            "The one IRC channel: everyone online, and what is said there is a broadcast.",
        ],
        [
            "irc-server-name",
            None,
            None,
            "The server's name to IRC clients (001-004, PONG, WHOIS); default: this machine's host name.",
        ],
        ["db", None, DEFAULT_DB, "The SQLite file that holds the username log (made if missing)."],
        [
            "metrics",
            None,
            None,
            "An endpoint to serve the operator's view on (none by default), e.g. tcp:9123:interface=127.0.0.1: "
            "/metrics for Prometheus, /healthz, /readyz",
        ],
        [
            "log-format",
            None,
            "text",
            "The log's format: text, or json (twisted.logger's events, one a line, for a log shipper)",
            _log_format,
        ],
        [
            "redis",
            None,
            None,
            "Keep the username log, accounts and offline queues in Redis instead of --db, and be one "
            "node of the service every server with the same URL makes: "
            # No full stop: usage adds ". " and the coerceDoc.
            "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], rediss:// for TLS",
            _redis_url,
        ],
        [
            "redis-lease",
            None,
            30.0,
            "Seconds within which a node that stops (killed, cut off) loses its users' names.",
            _lease,
        ],
        [
            "redis-inbox",
            None,
            64 * 1024 * 1024,
            "Bytes of messages from other nodes that may wait in Redis for this node to deliver; "
            "past it, their senders are told its users did not get them.",
            _positive,
        ],
        ["max-line", None, _DEFAULTS.max_line, "Longest accepted line, in bytes.", _positive],
        ["max-text", None, _DEFAULTS.max_text, "Longest message text, in UTF-8 bytes.", _positive],
        ["max-recipients", None, _DEFAULTS.max_recipients, "Most recipients of one SEND.", _positive],
        [
            "max-send-queue",
            None,
            _DEFAULTS.max_send_queue,
            "Bytes a client may leave unread before it is disconnected (a slow reader).",
            _positive,
        ],
        ["line-rate", None, _DEFAULTS.line_rate, "Lines per second a client may send, sustained.", _seconds],
        [
            "line-burst",
            None,
            _DEFAULTS.line_burst,
            "Lines a client may send at once before it must wait.",
            _positive,
        ],
        [
            "address-byte-rate",
            None,
            _DEFAULTS.address_byte_rate,
            "Bytes per second all the connections from one IP address may send together, sustained.",
            _seconds,
        ],
        [
            "address-byte-burst",
            None,
            _DEFAULTS.address_byte_burst,
            "Bytes all the connections from one IP address may send at once before they must wait.",
            _positive,
        ],
        [
            "flood-timeout",
            None,
            _DEFAULTS.flood_timeout,
            "Seconds a client may keep sending faster than --line-rate before it is disconnected.",
            _seconds,
        ],
        [
            "max-per-ip",
            None,
            _DEFAULTS.max_per_ip,
            "Most connections from one IP address, of every front together (a web one from its accept).",
            _positive,
        ],
        [
            "web-request-timeout",
            None,
            10.0,
            "Seconds a connection to --web has to send a whole request, from its start or the last answer.",
            _seconds,
        ],
        [
            "hello-timeout",
            None,
            _DEFAULTS.hello_timeout,
            "Seconds a new connection has to say HELLO.",
            _seconds,
        ],
        [
            "ping-interval",
            None,
            _DEFAULTS.ping_interval,
            "Seconds of silence from a client before the server sends it a PING.",
            _seconds,
        ],
        [
            "ping-timeout",
            None,
            _DEFAULTS.ping_timeout,
            "Seconds a client has to answer a PING before it is disconnected.",
            _seconds,
        ],
        ["max-clients", None, DEFAULT_MAX_CLIENTS, "Most sessions (logged-in connections) at once.", _positive],
        [
            "max-sessions",
            None,
            DEFAULT_MAX_SESSIONS,
            "Most sessions of one protected name (devices of one account) at once.",
            _positive,
        ],
        [
            "max-rooms-per-user",
            None,
            RoomPolicy.max_per_user,
            "Rooms one name may be in at once (#all not counted).",
            _positive,
        ],
        [
            "max-room-members",
            None,
            RoomPolicy.max_members,
            "Members one room may hold.",
            _positive,
        ],
        [
            "new-rooms-per-hour",
            None,
            NEW_ROOMS_PER_HOUR,
            "Rooms the users of one address may create an hour (as many at once).",
            _positive,
        ],
        [
            "history-days",
            None,
            HistoryPolicy.days,
            "Days the history of each conversation is kept; 0: no history at all.",
            _days,
        ],
        [
            "history-max",
            None,
            HistoryPolicy.keep,
            "Messages the history keeps per conversation (the newest).",
            _positive,
        ],
        [
            "new-groups-per-day",
            None,
            HistoryPolicy.new_groups,
            "Group conversations (three names or more) one name may open a day; a multicast past it is refused.",
            _positive,
        ],
        [
            "new-groups-per-address",
            None,
            HistoryPolicy.address_groups,
            "Group conversations the names of one address may open a day together (each server counts its own).",
            _positive,
        ],
        [
            "queue-max",
            None,
            QueuePolicy.limit,
            "Messages that may wait for one offline protected user.",
            _positive,
        ],
        [
            "queue-days",
            None,
            QueuePolicy.age / 86400,
            "Days a message waits for an offline protected user before it is dropped.",
            _seconds,
        ],
        [
            "queue-per-sender",
            None,
            QueuePolicy.per_sender,
            "Messages that may wait from one sender, for all its offline recipients together.",
            _positive,
        ],
        [
            "queue-total",
            None,
            QueuePolicy.total,
            "Messages that may wait for offline users in all, from everyone.",
            _positive,
        ],
        [
            "queue-address-burst",
            None,
            _DEFAULTS.queue_burst,
            "Messages the users of one IP address may leave waiting for offline users at once.",
            _positive,
        ],
        [
            "queue-address-per-minute",
            None,
            _DEFAULTS.queue_per_minute,
            "Messages the users of one IP address may leave waiting a minute, after --queue-address-burst.",
            _seconds,
        ],
        [
            "new-names-per-minute",
            None,
            NEW_NAMES.per_minute,
            "Names one address may add to the username log a minute, after --new-names-burst.",
            _seconds,
        ],
        [
            "new-names-burst",
            None,
            NEW_NAMES.burst,
            "Names one address may add to the username log at once.",
            _positive,
        ],
        [
            "new-accounts-per-minute",
            None,
            NEW_ACCOUNTS.per_minute,
            "Names one address may give a first password a minute, after --new-accounts-burst.",
            _seconds,
        ],
        [
            "new-accounts-burst",
            None,
            NEW_ACCOUNTS.burst,
            "Names one address may give a first password at once.",
            _positive,
        ],
        [
            "password-hashes-per-minute",
            None,
            PASSWORD_HASHES.per_minute,
            "Passwords one address may have checked or set a minute (argon2id), after --password-hashes-burst.",
            _seconds,
        ],
        [
            "password-hashes-burst",
            None,
            PASSWORD_HASHES.burst,
            "Passwords one address may have checked or set at once.",
            _positive,
        ],
        [
            "hash-threads",
            None,
            max(1, (os.cpu_count() or 1) - 1),
            "Threads that check passwords (argon2id); the default leaves one core to the reactor.",
            _positive,
        ],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["web"] = []
        self["web-origin"] = []
        self["web-host"] = []
        self["irc"] = []

    def opt_listen(self, description: str) -> None:
        """An endpoint to listen on (repeatable; default tcp:8123), e.g. ssl:8124:privateKey=key.pem."""
        self["listen"].append(description)

    def opt_web(self, description: str) -> None:
        """An endpoint to serve the browser page and its WebSocket on (repeatable; none by default), e.g. tcp:8080."""
        self["web"].append(description)

    def opt_irc(self, description: str) -> None:
        """An endpoint to serve IRC clients on (repeatable; none by default), e.g. tcp:6667 or ssl:6697:..."""
        self["irc"].append(description)

    def opt_web_origin(self, origin: str) -> None:
        """Another origin whose pages may use the WebSocket (repeatable), e.g. https://chat.example.org."""
        try:
            self["web-origin"].append(normalize_origin(origin))
        except ValueError as e:
            raise usage.UsageError(f"--web-origin: {e}") from None

    def opt_web_host(self, name: str) -> None:
        """Another host name the page is served under (repeatable; besides localhost, this machine's name, the --web-origin hosts and any IP address), e.g. chat.example.org; a request for any other is refused."""
        try:
            self["web-host"].append(normalize_host(name))
        except ValueError as e:
            raise usage.UsageError(f"--web-host: {e}") from None

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        if CHANNEL_NAME.fullmatch(self["irc-channel"]) is None:
            raise usage.UsageError("--irc-channel: '#' and 1 to 31 characters, no spaces, commas or colons")
        if self["web-origin"] and not self["web"]:
            raise usage.UsageError("--web-origin needs --web")
        if self["web-host"] and not self["web"]:
            raise usage.UsageError("--web-host needs --web")
        if self["max-text"] >= self["max-line"]:
            raise usage.UsageError("--max-text must be smaller than --max-line")
        if self["log-format"] == "json" and self.parent is not None:
            twistd = self.parent
            if not twistd["nodaemon"] or twistd["syslog"] or twistd["logger"] or twistd["logfile"] not in (None, "-"):
                raise usage.UsageError(
                    "--log-format json writes to standard output: it needs twistd -n, "
                    "without --logfile, --syslog or --logger"
                )
            twistd["logger"] = JSON_LOGGER  # twistd's own --logger, which it reads next

    def queue(self) -> QueuePolicy:
        return QueuePolicy(
            limit=self["queue-max"],
            age=self["queue-days"] * 86400,
            per_sender=self["queue-per-sender"],
            total=self["queue-total"],
        )

    def rooms(self) -> RoomPolicy:
        return RoomPolicy(max_per_user=self["max-rooms-per-user"], max_members=self["max-room-members"])

    def new_rooms(self) -> Rate:
        return hourly_rate(self["new-rooms-per-hour"])

    def history(self) -> HistoryPolicy:
        return HistoryPolicy(
            days=self["history-days"],
            keep=self["history-max"],
            new_groups=self["new-groups-per-day"],
            address_groups=self["new-groups-per-address"],
        )

    def limits(self) -> Limits:
        return Limits(
            max_line=self["max-line"],
            max_text=self["max-text"],
            max_recipients=self["max-recipients"],
            max_send_queue=self["max-send-queue"],
            max_per_ip=self["max-per-ip"],
            line_rate=self["line-rate"],
            line_burst=self["line-burst"],
            address_byte_rate=self["address-byte-rate"],
            address_byte_burst=self["address-byte-burst"],
            queue_burst=self["queue-address-burst"],
            queue_per_minute=self["queue-address-per-minute"],
            flood_timeout=self["flood-timeout"],
            hello_timeout=self["hello-timeout"],
            ping_interval=self["ping-interval"],
            ping_timeout=self["ping-timeout"],
        )
