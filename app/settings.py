"""Every setting of the service, each an environment variable with a default. Nothing else in app/ reads a setting
from the environment (app/launcher.py only hands it on to the process it starts)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cassandra import ConsistencyLevel

from app.rules import LOCKOUT_SECONDS, MAX_RENEWALS, PICKUP_SECONDS, SWEEP_SECONDS, replication_for


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


def _consistency(name: str, default: str) -> int:
    value = _env(name, default).upper()
    if value not in ConsistencyLevel.name_to_value:
        raise ValueError(f"{name}={value!r} is not a consistency level (e.g. LOCAL_QUORUM, QUORUM, LOCAL_SERIAL)")
    return ConsistencyLevel.name_to_value[value]


def _replication(name: str, local_datacenter: str) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """CASSANDRA_REPLICATION: a number, the local datacenter's replicas; or each datacenter and its replicas,
    `dc1:2,dc2:2`, which must name the local one. (None, ()) when unset: the replicas follow the hosts."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None, ()
    if raw.isdigit():
        if int(raw) < 1:
            raise ValueError(f"{name}={raw!r}: a keyspace needs at least 1 replica")
        return int(raw), ()
    counts: dict[str, int] = {}
    for entry in raw.split(","):
        datacenter, _, count = (part.strip() for part in entry.partition(":"))
        if not datacenter or not count.isdigit() or int(count) < 1 or datacenter in counts:
            raise ValueError(
                f"{name}={raw!r}: give a number of replicas, or each datacenter once with its replicas, "
                "e.g. dc1:2,dc2:2"
            )
        counts[datacenter] = int(count)
    if local_datacenter not in counts:
        raise ValueError(
            f"{name}={raw!r} names {', '.join(counts)} but not this instance's datacenter "
            f"(CASSANDRA_LOCAL_DC={local_datacenter})"
        )
    local = counts.pop(local_datacenter)
    return local, tuple(sorted(counts.items()))


def _serial_consistency(name: str) -> int | None:
    """None when unset: the database chooses from the keyspace's datacenters (app/db.py)."""
    if not os.environ.get(name, "").strip():
        return None
    value = _consistency(name, "")
    if value not in (ConsistencyLevel.SERIAL, ConsistencyLevel.LOCAL_SERIAL):
        raise ValueError(f"{name}: lightweight transactions run at SERIAL or LOCAL_SERIAL")
    return value


def _flag(name: str, default: str = "0") -> bool:
    return _env(name, default).lower() in ("1", "true", "yes")


def _log_level(name: str, default: str) -> str:
    value = _env(name, default).upper()
    if value not in logging.getLevelNamesMapping():
        raise ValueError(f"{name}={value!r} is not a log level (e.g. DEBUG, INFO, WARNING)")
    return value


DEVELOPMENT = "development"
PRODUCTION = "production"
# The secrets production refuses to start without, each an environment variable of the same name.
PRODUCTION_SECRETS = ("COOKIE_SECRET", "PAGE_TOKEN_SECRET")


def _environment(name: str, default: str) -> str:
    value = _env(name, default).lower()
    if value not in (DEVELOPMENT, PRODUCTION):
        raise ValueError(f"{name}={value!r} must be {DEVELOPMENT!r} or {PRODUCTION!r}")
    return value


def _seconds(name: str, default: str) -> float:
    """A number of seconds, 0 or more (0 turns what it paces off)."""
    value = _env(name, default)
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"{name}={value!r} must be 0 or more seconds")
    return seconds


def smtp_address(url: str) -> tuple[str, int]:
    """`smtp://host[:port]` as (host, port), for the notices (app/notices.py); ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"SMTP_URL={url!r} must be smtp://host or smtp://host:port")
    try:
        return parts.hostname, parts.port or 25
    except ValueError:
        raise ValueError(f"SMTP_URL={url!r} has a port that is not a number") from None


def _smtp_url(name: str) -> str:
    value = _env(name, "").strip()
    if value:
        smtp_address(value)  # a malformed address is a bad setting at start-up, not a failed notice later
    return value


def _positive_seconds(name: str, default: str) -> float:
    seconds = _seconds(name, default)
    if seconds <= 0:
        raise ValueError(f"{name}={seconds:g} must be more than 0 seconds")
    return seconds


def _whole_number(name: str, default: str) -> int:
    value = _env(name, default)
    if not value.isdigit():
        raise ValueError(f"{name}={value!r} is not a whole number (0 or more)")
    return int(value)


def _positive_int(name: str, default: str) -> int:
    value = _env(name, default)
    if not value.isdigit() or not int(value) > 0:
        raise ValueError(f"{name}={value!r} is not a positive whole number")
    return int(value)


def _lease_seconds(name: str, default: str) -> int:
    value = _positive_int(name, default)
    if value < 3:
        raise ValueError(f"{name}={value}: a lease renewed every third of its life needs at least 3 seconds")
    return value


# The names a browser on this machine uses for the service: DNS rebinding can give any name to 127.0.0.1, so only
# these are answered unless ALLOWED_HOSTS names others (a deployment's own name, "*" behind a proxy that checks).
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.0/8", "::1", socket.gethostname().lower())


def _allowed_hosts(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return DEFAULT_ALLOWED_HOSTS
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if "/" in host:
            try:
                ipaddress.ip_network(host, strict=False)
            except ValueError as error:
                raise ValueError(f"{name}: {host!r} is not a network ({error})") from error
        elif any(c in host for c in " /@[]:") and not _is_address(host):
            # Host headers are compared without their port, so an entry with one would never match.
            raise ValueError(f"{name}: {host!r} is not a host name, address or network (without a port)")
    return hosts


def _time_zone(name: str, default: str) -> str:
    """An IANA time zone name such as Europe/London; refused in one line if this machine does not know it."""
    value = _env(name, default)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a time zone name such as Europe/London or UTC") from None
    return value


PLAIN, JSON = "plain", "json"


def _log_format(name: str, default: str) -> str:
    value = _env(name, default).lower()
    if value not in (PLAIN, JSON):
        raise ValueError(f"{name}={value!r} must be {PLAIN!r} (lines for people) or {JSON!r} (one object a line)")
    return value


def _port_or_off(name: str) -> int | None:
    """A TCP port, or None when the variable is empty or unset (the thing it serves is off)."""
    value = _env(name, "")
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{name}={value!r} is not a port number (1-65535); leave it empty to turn it off")
    return int(value)


def _address(name: str, default: str) -> str:
    """An IP address to listen on: the admin port is bound to one, 127.0.0.1 unless told otherwise."""
    value = _env(name, default)
    if not _is_address(value):
        raise ValueError(f"{name}={value!r} is not an IP address to listen on (e.g. 127.0.0.1, or 0.0.0.0 for all)")
    return value.strip("[]")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Settings:
    # Empty: start (or reuse) the single local node from `cluster/`.
    cassandra_hosts: list[str] = field(default_factory=list)
    cassandra_port: int = 9042
    keyspace: str = "library"
    # The local datacenter's replicas of a new keyspace.
    replication_factor: int = 1
    # Whether CASSANDRA_REPLICATION chose replication_factor; if not, it follows the hosts (`with_hosts`).
    replication_chosen: bool = False
    # The other datacenters of a new keyspace and their replicas (CASSANDRA_REPLICATION=dc1:2,dc2:2).
    remote_replication: tuple[tuple[str, int], ...] = ()
    local_datacenter: str = "datacenter1"
    consistency: int = ConsistencyLevel.LOCAL_QUORUM
    # The lightweight transactions' Paxos: None lets the database choose from the keyspace's datacenters, SERIAL
    # when it spans several (app/db.py says why). LOCAL_SERIAL there can double-book, so it is refused unless the
    # operator accepts that risk by name.
    serial_consistency: int | None = None
    accept_double_booking_risk_of_local_serial: bool = False
    request_timeout: float = 10.0
    http_port: int = 8888
    debug: bool = False
    seed_demo_data: bool = True
    # Seals page tokens and device tokens (app/repository/base.py); every instance of the service must share it.
    # Empty (development only): a random secret made once and kept in the keyspace (app/repository/shared_secrets.py).
    page_token_secret: str = ""
    # Signs the UI's session cookie; every instance must share it. Empty (development only): as above.
    cookie_secret: str = ""
    # development (`make run`'s default): the earlier system's endpoints answer, for its scripts, and the secrets
    # have development defaults. production: those endpoints are gone (404) and the secrets must be set.
    environment: str = DEVELOPMENT
    # A lock state younger than this is left to the request that is making it: the heal at a conflict and the
    # audit's repair act only on older ones (app/repository/reservations.py). Tests lower it.
    settle_after_seconds: float = 30.0
    log_level: str = "INFO"
    # The service is reached through a proxy that terminates TLS and sets X-Forwarded-Proto/-For: trust them.
    behind_proxy: bool = False
    # How long repeated wrong PINs lock a card (app/rules.py says how many); tests shorten it.
    lockout_seconds: int = LOCKOUT_SECONDS
    # The largest request body accepted (JSON API, forms, the earlier system's endpoints): a reservation or a book
    # is a few hundred bytes, and anything larger is refused (413) before it is read (app/web/guards.py).
    max_body_bytes: int = 64 * 1024
    # The Host header's names (and address networks) the service answers; any other is a 400 (DNS rebinding).
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    # The library's own time zone: the pages show every date and time in it ("23 November 2026, 14:05").
    time_zone: str = "UTC"
    # plain: lines for people; json: one JSON object a line, for a log collector (app/logs.py).
    log_format: str = PLAIN
    # An admin port that serves only GET /metrics (app/web/monitoring.py), on metrics_address; None: none. Production
    # serves /metrics there only (the main port answers 404), so it is never public by mistake; development also
    # serves it on the main port.
    metrics_port: int | None = None
    metrics_address: str = "127.0.0.1"
    # The background audit-and-repair (app/repository/repair_loop.py): a pass this many seconds after the last one
    # ended, by the one instance holding the repair lease; 0 turns it off on this instance.
    repair_every_seconds: float = 60.0
    # The lease's time to live: its holder renews it every third of it, and another instance takes it over at most
    # this long after the holder died. A whole number of seconds (Cassandra's TTL), at least 3.
    repair_lease_seconds: int = 30
    # A hold's pickup window and how often it may be renewed (app/rules.py); each instance's sweep of holds past their
    # window runs every hold_sweep_seconds (0: off on this instance; a reserve or join that meets one still ends it).
    hold_pickup_seconds: float = PICKUP_SECONDS
    hold_renewals: int = MAX_RENEWALS
    hold_sweep_seconds: float = SWEEP_SECONDS
    # The per-reader limits (app/repository/seats.py): reservations a reader may hold at once (placed on a free
    # book), and queues they may wait in at once; 0: no limit, and a reserve pays nothing for it.
    hold_limit_ready: int = 0
    hold_limit_waiting: int = 0
    # Where the notice "your book is ready" goes (app/notices.py): smtp://host[:port]; empty: written to the log.
    smtp_url: str = ""
    mail_from: str = "The library <library@localhost>"

    @classmethod
    def from_env(cls) -> Settings:
        hosts = [h.strip() for h in _env("CASSANDRA_HOSTS", "").split(",") if h.strip()]
        local_datacenter = _env("CASSANDRA_LOCAL_DC", "datacenter1")
        replication, remote_replication = _replication("CASSANDRA_REPLICATION", local_datacenter)
        environment = _environment("LIBRARY_ENV", DEVELOPMENT)
        if environment == PRODUCTION:
            missing = [name for name in PRODUCTION_SECRETS if not os.environ.get(name, "").strip()]
            if missing:
                raise ValueError(
                    f"LIBRARY_ENV=production needs {' and '.join(missing)} set: a long random string shared by "
                    "every instance, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`"
                )
        http_port = int(_env("PORT", "8888"))
        metrics_port = _port_or_off("METRICS_PORT")
        if metrics_port == http_port:
            raise ValueError(f"METRICS_PORT={metrics_port} is PORT too: give the admin port a port of its own")
        return cls(
            cassandra_hosts=hosts,
            cassandra_port=int(_env("CASSANDRA_PORT", "9042")),
            keyspace=_env("CASSANDRA_KEYSPACE", "library"),
            # A cluster named by CASSANDRA_HOSTS gets app/rules.py's replication for them unless told otherwise.
            replication_factor=replication or replication_for(hosts),
            replication_chosen=replication is not None,
            remote_replication=remote_replication,
            local_datacenter=local_datacenter,
            consistency=_consistency("CASSANDRA_CONSISTENCY", "LOCAL_QUORUM"),
            serial_consistency=_serial_consistency("CASSANDRA_SERIAL_CONSISTENCY"),
            accept_double_booking_risk_of_local_serial=_flag("ACCEPT_DOUBLE_BOOKING_RISK_OF_LOCAL_SERIAL"),
            request_timeout=float(_env("CASSANDRA_TIMEOUT", "10")),
            http_port=http_port,
            debug=_env("DEBUG", "0").lower() in ("1", "true", "yes"),
            seed_demo_data=_env("SEED_DEMO_DATA", "1").lower() in ("1", "true", "yes"),
            page_token_secret=os.environ.get("PAGE_TOKEN_SECRET", ""),
            cookie_secret=os.environ.get("COOKIE_SECRET", ""),
            environment=environment,
            settle_after_seconds=float(_env("SETTLE_AFTER_SECONDS", "30")),
            log_level=_log_level("LOG_LEVEL", "INFO"),
            behind_proxy=_env("BEHIND_PROXY", "0").lower() in ("1", "true", "yes"),
            lockout_seconds=_positive_int("SIGN_IN_LOCKOUT_SECONDS", str(LOCKOUT_SECONDS)),
            max_body_bytes=_positive_int("MAX_BODY_BYTES", str(64 * 1024)),
            allowed_hosts=_allowed_hosts("ALLOWED_HOSTS"),
            time_zone=_time_zone("LIBRARY_TIME_ZONE", "UTC"),
            log_format=_log_format("LOG_FORMAT", PLAIN),
            metrics_port=metrics_port,
            metrics_address=_address("METRICS_ADDRESS", "127.0.0.1"),
            repair_every_seconds=_seconds("REPAIR_EVERY_SECONDS", "60"),
            repair_lease_seconds=_lease_seconds("REPAIR_LEASE_SECONDS", "30"),
            hold_pickup_seconds=_positive_seconds("HOLD_PICKUP_SECONDS", str(PICKUP_SECONDS)),
            hold_renewals=_whole_number("HOLD_RENEWALS", str(MAX_RENEWALS)),
            hold_sweep_seconds=_seconds("HOLD_SWEEP_SECONDS", str(SWEEP_SECONDS)),
            hold_limit_ready=_whole_number("HOLD_LIMIT_READY", "0"),
            hold_limit_waiting=_whole_number("HOLD_LIMIT_WAITING", "0"),
            smtp_url=_smtp_url("SMTP_URL"),
            mail_from=_env("MAIL_FROM", "The library <library@localhost>"),
        )

    @property
    def production(self) -> bool:
        return self.environment == PRODUCTION

    def replication(self) -> dict[str, int]:
        """Each datacenter of a new keyspace and its replicas, the local one first."""
        return {self.local_datacenter: self.replication_factor, **dict(self.remote_replication)}

    def with_hosts(self, hosts: list[str]) -> Settings:
        """These settings on `hosts` (found after start-up: the local cluster's nodes, a tool's --hosts). A
        replication factor that CASSANDRA_REPLICATION did not choose follows them."""
        replication = self.replication_factor if self.replication_chosen else replication_for(hosts)
        return dataclasses.replace(self, cassandra_hosts=hosts, replication_factor=replication)
