"""The four local services as plain processes: what to run, where it logs, how to ask it.

Two kinds of files are involved, kept apart on purpose:

- runtime state, under the config's state dir: ``<state>/run/<name>.pid`` and
  ``<state>/logs/<name>.log``;
- the tools ``make setup`` builds (the Go launcher ``bin/gcp-emulators``, the BigQuery
  emulator's venv ``bqvenv`` and its ``bqhome``), looked up in ``<state>`` first and then
  in the repository's ``.local``, so a state dir moved with ``--state-dir`` or
  ``FEATURE_STORE_HOME`` still finds them. Redis is the system's ``redis-server``.

Every service is judged healthy only when it answers a real request through the client
the jobs use (list topics, list tables, list datasets, PING), never by an open port.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import grpc
import redis
from google.cloud.bigtable_admin_v2 import BigtableTableAdminClient
from google.cloud.bigtable_admin_v2.services.bigtable_table_admin.transports import (
    BigtableTableAdminGrpcTransport,
)
from google.cloud.pubsub_v1 import PublisherClient
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from redis.backoff import NoBackoff
from redis.retry import Retry

from feature_store.config import LOCAL_PROJECT, PlatformConfig
from feature_store.errors import FeatureStoreError

logger = logging.getLogger(__name__)

REPO_LOCAL = Path(__file__).resolve().parents[1] / ".local"
PROBE_TIMEOUT_S = 2.0
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 5

Probe = Callable[[], str]
"""Asks a service one real question; returns a short detail, raises if it cannot answer."""


class StackError(FeatureStoreError):
    """A local service cannot be started, reached or stopped."""


@dataclass(frozen=True, kw_only=True)
class ServiceSpec:
    """One local service: its command line, its port(s), its probe and its files."""

    name: str
    host: str
    port: int
    argv: tuple[str, ...]
    probe: Probe
    state_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    extra_ports: tuple[int, ...] = ()
    scratch: tuple[str, ...] = ()
    """Folders under the run dir (the process's working directory) that the process
    fills for itself and nobody reads once it stopped: removed when `down` stops it and
    before `up` starts it again (a process that was killed cannot clean up)."""

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.extra_ports)

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.pid"

    @property
    def scratch_dirs(self) -> tuple[Path, ...]:
        return tuple(self.pid_file.parent / name for name in self.scratch)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def error(self, problem: str) -> StackError:
        """A one-line error naming the service, its port and its log file."""
        return StackError(f"{self.name} on port {self.port}: {problem} (log: {self.log_file})")


def find_tool(state_dir: Path, relative: str) -> Path:
    """`relative` under the state dir if `make setup` put it there, else the repo's `.local`."""
    for root in (state_dir, REPO_LOCAL):
        if (root / relative).exists():
            return (root / relative).absolute()
    return REPO_LOCAL / relative


def _flags(values: Mapping[str, object]) -> tuple[str, ...]:
    """{"--port": 8085, "--save": ""} -> ("--port", "8085", "--save", "")."""
    return tuple(item for flag, value in values.items() for item in (flag, str(value)))


def service_specs(config: PlatformConfig) -> list[ServiceSpec]:
    """The four services of the local platform, in start order."""
    state = config.state_dir.absolute()
    return [
        _pubsub(config, state),
        _bigtable(config, state),
        _bigquery(config, state),
        _redis(config, state),
    ]


def _pubsub(config: PlatformConfig, state: Path) -> ServiceSpec:
    ep = config.endpoints
    flags = {"--host": ep.host, "--pubsub-port": ep.pubsub_port, "--bigtable-port": 0}
    launcher = find_tool(state, "bin/gcp-emulators")
    return ServiceSpec(
        name="pubsub",
        host=ep.host,
        port=ep.pubsub_port,
        state_dir=state,
        argv=(str(launcher), *_flags(flags)),
        probe=partial(probe_pubsub, ep.pubsub),
    )


def _bigtable(config: PlatformConfig, state: Path) -> ServiceSpec:
    ep = config.endpoints
    flags = {"--host": ep.host, "--pubsub-port": 0, "--bigtable-port": ep.bigtable_port}
    launcher = find_tool(state, "bin/gcp-emulators")
    return ServiceSpec(
        name="bigtable",
        host=ep.host,
        port=ep.bigtable_port,
        state_dir=state,
        argv=(str(launcher), *_flags(flags)),
        probe=partial(probe_bigtable, ep.bigtable, config.bigtable_instance),
    )


def _bigquery(config: PlatformConfig, state: Path) -> ServiceSpec:
    ep = config.endpoints
    flags = {
        "--rest-host": ep.host,
        "--rest-port": ep.bigquery_port,
        "--grpc-host": ep.host,
        "--grpc-port": ep.bigquery_grpc_port,
        "--project": LOCAL_PROJECT,
        "--log-level": "warning",
    }
    bqemulator = find_tool(state, "bqvenv/bin/bqemulator")
    return ServiceSpec(
        name="bigquery",
        host=ep.host,
        port=ep.bigquery_port,
        state_dir=state,
        extra_ports=(ep.bigquery_grpc_port,),
        argv=(str(bqemulator), "start", *_flags(flags)),
        # Every write makes a full copy of its table for time travel (`FOR SYSTEM_TIME
        # AS OF`, which nothing here asks for), kept 7 days by default: a stream's archive
        # inserts grew the emulator by the table's size a call (21 GB after about seven
        # minutes at 1,000 msg/s). Kept 0 days, they are dropped within a minute.
        env={"HOME": str(find_tool(state, "bqhome")), "BQEMU_TIME_TRAVEL_RETENTION_DAYS": "0"},
        probe=partial(probe_bigquery, ep.bigquery),
        # its DuckDB spills tables larger than its memory budget there (27 GB after a
        # few minutes of a 1,000 msg/s stream's archive) and leaves them when stopped
        scratch=(".tmp",),
    )


def _redis(config: PlatformConfig, state: Path) -> ServiceSpec:
    ep = config.endpoints
    flags = {
        "--port": ep.redis_port,
        "--bind": ep.host,
        "--save": "",
        "--appendonly": "no",
        "--dir": state / "run",
    }
    redis_server = shutil.which("redis-server") or "redis-server"
    return ServiceSpec(
        name="redis",
        host=ep.host,
        port=ep.redis_port,
        state_dir=state,
        argv=(redis_server, *_flags(flags)),
        probe=partial(probe_redis, ep.host, ep.redis_port),
    )


# --- probes: one real request each -------------------------------------------------------


def probe_pubsub(address: str) -> str:
    channel = grpc.insecure_channel(address)
    try:
        client = PublisherClient(transport=PublisherGrpcTransport(channel=channel))
        request = {"project": f"projects/{LOCAL_PROJECT}"}
        topics = client.list_topics(request=request, timeout=PROBE_TIMEOUT_S, retry=None)
        return f"topics: {len(list(topics))}"
    finally:
        channel.close()


def probe_bigtable(address: str, instance: str) -> str:
    channel = grpc.insecure_channel(address)
    try:
        transport = BigtableTableAdminGrpcTransport(channel=channel)
        client = BigtableTableAdminClient(transport=transport)
        parent = f"projects/{LOCAL_PROJECT}/instances/{instance}"
        tables = client.list_tables(parent=parent, timeout=PROBE_TIMEOUT_S, retry=None)
        return f"tables in {instance}: {len(list(tables))}"
    finally:
        channel.close()


def probe_bigquery(base_url: str) -> str:
    url = f"{base_url}/bigquery/v2/projects/{LOCAL_PROJECT}/datasets"
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
        body = json.loads(response.read())
    if body.get("kind") != "bigquery#datasetList":
        msg = f"GET {url} answered {str(body)[:80]!r}, not a bigquery#datasetList"
        raise ValueError(msg)
    return f"datasets: {len(body.get('datasets', []))}"


def probe_redis(host: str, port: int) -> str:
    client = redis.Redis(
        host=host,
        port=port,
        socket_timeout=PROBE_TIMEOUT_S,
        socket_connect_timeout=PROBE_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        if not client.ping():
            msg = f"PING to {host}:{port} was not answered with PONG"
            raise ValueError(msg)
        return f"PONG, keys: {client.dbsize()}"
    finally:
        client.close()


def check(spec: ServiceSpec) -> tuple[bool, str]:
    """(healthy, detail): whether the service answers its probe, and what it said."""
    try:
        socket.create_connection((spec.host, spec.port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return False, f"nothing listens on {spec.host}:{spec.port} ({exc.strerror or exc})"
    try:
        return True, spec.probe()
    except Exception as exc:  # any client error means "not answering"; say which
        text = str(exc).strip().splitlines()
        return False, f"{type(exc).__name__}: {text[0][:160] if text else 'no detail'}"


# --- processes ---------------------------------------------------------------------------


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (a bind would succeed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_pid(spec: ServiceSpec) -> int | None:
    """The pid from our pid file when that process is alive and still runs our program."""
    try:
        pid = int(spec.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not alive(pid):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return pid  # no /proc: trust the pid file
    return pid if Path(spec.argv[0]).name in cmdline else None


def start(spec: ServiceSpec) -> subprocess.Popen[bytes]:
    """Start the service in its own session (it outlives the CLI) and write its pid file."""
    spec.pid_file.parent.mkdir(parents=True, exist_ok=True)
    spec.log_file.parent.mkdir(parents=True, exist_ok=True)
    with spec.log_file.open("wb") as log:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"--- {stamp} starting: {' '.join(spec.argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            spec.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **spec.env},
            cwd=spec.pid_file.parent,
            start_new_session=True,
        )
    spec.pid_file.write_text(f"{process.pid}\n")
    logger.info("started %s (pid %d) on port %d", spec.name, process.pid, spec.port)
    return process


def stop(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process (its whole group when it leads one), SIGKILL it after `grace_s`."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
    if alive(pid):
        msg = f"process {pid} survived SIGKILL"
        raise StackError(msg)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty lines of a log, joined into one line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept) if kept else "(empty log)"
