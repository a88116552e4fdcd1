"""The local stack's process handling and error messages, with no emulator involved.

Stand-ins are real processes and sockets: a shell script named `redis-server` on PATH,
a socket that listens but never answers, a tiny HTTP server speaking the BigQuery
`datasets.list` answer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from click.testing import CliRunner

from feature_store.config import Endpoints, PlatformConfig
from feature_store.errors import ConfigError
from infra import services
from infra import stack as local_stack
from infra.services import ServiceSpec, StackError, alive, running_pid, service_specs

REPO_ROOT = Path(__file__).resolve().parents[3]
PORT_VARS = ("PUBSUB", "BIGTABLE", "BIGQUERY", "BIGQUERY_GRPC", "REDIS")
EMULATOR_VARS = (
    "PUBSUB_EMULATOR_HOST",
    "BIGTABLE_EMULATOR_HOST",
    "BIGQUERY_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No port override leaks in, and the CLI's apply_env() is undone after each test."""
    for name in PORT_VARS:
        monkeypatch.delenv(f"FEATURE_STORE_{name}_PORT", raising=False)
    for name in (*EMULATOR_VARS, "FEATURE_STORE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(services, "PROBE_TIMEOUT_S", 0.3)


@pytest.fixture
def config(tmp_path: Path) -> PlatformConfig:
    """Every service on a free port (nothing listens there) with state under tmp_path."""
    endpoints = Endpoints(
        pubsub_port=free_port(),
        bigtable_port=free_port(),
        bigquery_port=free_port(),
        bigquery_grpc_port=free_port(),
        redis_port=free_port(),
    )
    return PlatformConfig(state_dir=tmp_path / "state", endpoints=endpoints)


def fake_redis_server(bin_dir: Path, body: str) -> Path:
    """A shell script called `redis-server`, first on PATH."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "redis-server"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def wait_dead(pid: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


# --- configuration -----------------------------------------------------------------------


def test_ports_and_files_follow_env_and_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ports = dict(zip(PORT_VARS, (18085, 18086, 19050, 19060, 16379), strict=True))
    for name, port in ports.items():
        monkeypatch.setenv(f"FEATURE_STORE_{name}_PORT", str(port))
    specs = {s.name: s for s in service_specs(PlatformConfig.local_default(tmp_path))}

    assert {n: s.ports for n, s in specs.items()} == {
        "pubsub": (18085,),
        "bigtable": (18086,),
        "bigquery": (19050, 19060),
        "redis": (16379,),
    }
    assert specs["pubsub"].argv[-4:] == ("--pubsub-port", "18085", "--bigtable-port", "0")
    assert specs["bigtable"].argv[-4:] == ("--pubsub-port", "0", "--bigtable-port", "18086")
    assert specs["redis"].pid_file == tmp_path.absolute() / "run" / "redis.pid"
    assert specs["bigquery"].log_file == tmp_path.absolute() / "logs" / "bigquery.log"


def test_docker_compose_serves_the_same_services_on_the_default_ports(tmp_path: Path) -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    published = {
        name: tuple(int(mapping.split(":")[-2]) for mapping in service["ports"])
        for name, service in compose["services"].items()
        if "profiles" not in service  # optional services, started only when asked for
    }
    defaults = PlatformConfig(state_dir=tmp_path)
    assert published == {spec.name: spec.ports for spec in service_specs(defaults)}
    # The vector index's server: optional, since the jobs default to the embedded index.
    assert compose["services"]["qdrant"]["profiles"] == ["index"]
    assert compose["services"]["qdrant"]["ports"] == ["127.0.0.1:6333:6333"]


def test_bad_port_in_env_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATURE_STORE_REDIS_PORT", "63 79")
    with pytest.raises(ConfigError, match=r"FEATURE_STORE_REDIS_PORT .* got '63 79'"):
        PlatformConfig.local_default()


def test_tools_are_found_in_state_dir_before_the_repo(config: PlatformConfig) -> None:
    repo_launcher = services.REPO_LOCAL / "bin" / "gcp-emulators"
    assert service_specs(config)[0].argv[0] == str(repo_launcher)
    own = config.state_dir / "bin" / "gcp-emulators"
    own.parent.mkdir(parents=True)
    own.write_text("")
    assert service_specs(config)[0].argv[0] == str(own.absolute())


def test_unknown_service_name_is_named(config: PlatformConfig) -> None:
    with pytest.raises(StackError, match=r"unknown service.*kafka; choose from pubsub, bigtable"):
        local_stack.status(config, ["redis", "kafka"])


# --- up: the three ways a start fails ----------------------------------------------------


def test_up_refuses_a_port_held_by_a_process_not_ours(config: PlatformConfig) -> None:
    port = config.endpoints.redis_port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen(1)
        with pytest.raises(StackError) as caught:
            local_stack.up(config, timeout=5, names=["redis"])
    message = str(caught.value)
    log = config.state_dir.absolute() / "logs" / "redis.log"
    assert message.startswith(f"redis on port {port}: port {port} is in use")
    assert "FEATURE_STORE_REDIS_PORT" in message
    assert message.endswith(f"(log: {log})")
    assert "\n" not in message
    assert not (config.state_dir / "run" / "redis.pid").exists()


def test_up_names_a_missing_executable(
    config: PlatformConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(services, "REPO_LOCAL", tmp_path / "no-tools")
    with pytest.raises(StackError) as caught:
        local_stack.up(config, timeout=5, names=["pubsub"])
    launcher = tmp_path / "no-tools" / "bin" / "gcp-emulators"
    port = config.endpoints.pubsub_port
    assert str(caught.value).startswith(
        f"pubsub on port {port}: missing executable {launcher}; run `make setup`"
    )

    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    with pytest.raises(StackError, match=r"redis on port .* missing executable redis-server"):
        local_stack.up(config, timeout=5, names=["redis"])


def test_up_reports_a_process_that_exits_with_its_last_log_lines(
    config: PlatformConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = "echo 'FATAL CONFIG FILE ERROR'\necho \"bad port $2\"\nexit 3"
    fake_redis_server(tmp_path / "bin", script)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    port = config.endpoints.redis_port
    with pytest.raises(StackError) as caught:
        local_stack.up(config, timeout=10, names=["redis"])
    message = str(caught.value)
    assert message.startswith(f"redis on port {port}: process ")
    assert "exited with code 3 before answering; last log lines: " in message
    assert message.split("last log lines: ")[1].startswith("--- ")
    assert f"FATAL CONFIG FILE ERROR | bad port {port} (log: " in message
    assert not (config.state_dir / "run" / "redis.pid").exists()


def test_up_times_out_on_a_silent_process_and_stops_it(
    config: PlatformConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pid_seen = tmp_path / "fake.pid"
    fake_redis_server(
        tmp_path / "bin", f"echo $$ > {pid_seen}\necho booting\nwhile true; do sleep 0.1; done"
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    started = time.monotonic()
    with pytest.raises(StackError, match=r"no answer within 1s \(nothing listens on .*booting"):
        local_stack.up(config, timeout=1, names=["redis"])
    assert time.monotonic() - started < 8
    assert wait_dead(int(pid_seen.read_text()))
    assert not (config.state_dir / "run" / "redis.pid").exists()


# --- health is judged by a real answer, whoever runs the service --------------------------


class _FakeBigQuery(BaseHTTPRequestHandler):
    answer: ClassVar[dict[str, object]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server(config: PlatformConfig) -> Iterator[type[_FakeBigQuery]]:
    handler = type("Handler", (_FakeBigQuery,), {"answer": {}})
    server = ThreadingHTTPServer(("127.0.0.1", config.endpoints.bigquery_port), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield handler
    server.shutdown()
    server.server_close()


def test_a_healthy_service_not_started_by_us_is_reused_and_left_alone(
    config: PlatformConfig, http_server: type[_FakeBigQuery]
) -> None:
    http_server.answer = {"kind": "bigquery#datasetList", "datasets": [{"id": "a"}, {"id": "b"}]}
    [before] = local_stack.status(config, ["bigquery"])
    assert (before.name, before.healthy, before.pid, before.detail) == (
        "bigquery",
        True,
        None,
        "datasets: 2",
    )

    [after_up] = local_stack.up(config, timeout=5, names=["bigquery"])
    assert (after_up.healthy, after_up.started, after_up.pid) == (True, False, None)
    assert not (config.state_dir / "run" / "bigquery.pid").exists()
    assert local_stack.down(config, ["bigquery"]) == []
    assert local_stack.status(config, ["bigquery"])[0].healthy


def test_a_wrong_answer_is_unhealthy_and_its_port_taken(
    config: PlatformConfig, http_server: type[_FakeBigQuery]
) -> None:
    http_server.answer = {"kind": "storage#bucketList"}
    [result] = local_stack.status(config, ["bigquery"])
    assert not result.healthy
    assert "not a bigquery#datasetList" in result.detail
    port = config.endpoints.bigquery_port
    with pytest.raises(StackError, match=f"bigquery on port {port}: port {port} is in use"):
        local_stack.up(config, timeout=5, names=["bigquery"])


def test_nothing_listening_is_down_with_a_short_reason(config: PlatformConfig) -> None:
    results = local_stack.status(config)
    assert [(s.name, s.healthy, s.pid) for s in results] == [
        ("pubsub", False, None),
        ("bigtable", False, None),
        ("bigquery", False, None),
        ("redis", False, None),
    ]
    port = config.endpoints.redis_port
    assert results[3].detail.startswith(f"not running: nothing listens on 127.0.0.1:{port}")


# --- pid files ---------------------------------------------------------------------------


def test_a_pid_file_counts_only_for_a_live_process_running_our_program(
    config: PlatformConfig,
) -> None:
    spec = _spec(config, "redis")
    spec.pid_file.parent.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    spec.pid_file.write_text(f"{dead.pid}\n")
    assert running_pid(spec) is None
    spec.pid_file.write_text(f"{os.getpid()}\n")  # alive, but pytest, not redis-server
    assert running_pid(spec) is None
    spec.pid_file.write_text("garbage\n")
    assert running_pid(spec) is None


def test_down_stops_our_process_and_removes_its_pid_file(
    config: PlatformConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_redis_server(tmp_path / "bin", "while true; do sleep 0.1; done")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    spec = _spec(config, "redis")
    process = services.start(spec)
    deadline = time.monotonic() + 10  # the child may not have exec'd yet on a busy machine
    while running_pid(spec) != process.pid and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_pid(spec) == process.pid
    [result] = local_stack.status(config, ["redis"])
    assert (result.pid, result.healthy) == (process.pid, False)

    assert local_stack.down(config) == ["redis"]
    assert process.wait(timeout=5) is not None
    assert not spec.pid_file.exists()


# --- the CLI -----------------------------------------------------------------------------


def _cli(args: list[str], config: PlatformConfig) -> tuple[int, str]:
    from jobs.cli import main

    ep = config.endpoints
    ports = (
        ep.pubsub_port,
        ep.bigtable_port,
        ep.bigquery_port,
        ep.bigquery_grpc_port,
        ep.redis_port,
    )
    env = {
        f"FEATURE_STORE_{name}_PORT": str(port) for name, port in zip(PORT_VARS, ports, strict=True)
    }
    env["FEATURE_STORE_HOME"] = str(config.state_dir)
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.output


def test_cli_env_prints_exports_for_the_moved_ports(config: PlatformConfig) -> None:
    code, output = _cli(["env"], config)
    ep = config.endpoints
    assert (code, output.splitlines()) == (
        0,
        [
            f"export PUBSUB_EMULATOR_HOST=127.0.0.1:{ep.pubsub_port}",
            f"export BIGTABLE_EMULATOR_HOST=127.0.0.1:{ep.bigtable_port}",
            f"export BIGQUERY_EMULATOR_HOST=http://127.0.0.1:{ep.bigquery_port}",
            "export GOOGLE_CLOUD_PROJECT=local-project",
            f"export FEATURE_STORE_FEAST_REPO={config.feast_repo.resolve()}",
            f"export FEATURE_REPO_DIR_ENV_VAR={config.feast_repo.resolve()}",
        ],
    )


def test_cli_status_json_exits_1_and_names_what_is_down(
    config: PlatformConfig, http_server: type[_FakeBigQuery]
) -> None:
    http_server.answer = {"kind": "bigquery#datasetList"}
    code, output = _cli(["status", "--json"], config)
    rows = json.loads(output)
    assert code == 1
    assert {r["name"]: r["healthy"] for r in rows} == {
        "pubsub": False,
        "bigtable": False,
        "bigquery": True,
        "redis": False,
    }
    assert _cli(["status", "--json", "bigquery"], config)[0] == 0


def test_cli_up_failure_is_one_line_and_exit_1(config: PlatformConfig) -> None:
    code, output = _cli(["up", "kafka"], config)
    assert code == 1
    assert output.strip().splitlines() == [
        "Error: unknown service(s) kafka; choose from pubsub, bigtable, bigquery, redis"
    ]


def test_the_bigquery_emulator_spill_folder_is_its_scratch(config: PlatformConfig) -> None:
    spec = _spec(config, "bigquery")
    assert spec.scratch_dirs == (config.state_dir / "run" / ".tmp",)


def test_the_bigquery_emulator_keeps_no_time_travel_copies(config: PlatformConfig) -> None:
    """Its copy of a table at each write is dropped at its next sweep, not kept 7 days."""
    spec = _spec(config, "bigquery")
    assert spec.env["BQEMU_TIME_TRAVEL_RETENTION_DAYS"] == "0"


def test_down_removes_the_scratch_of_what_it_stopped_and_up_a_stale_one(
    config: PlatformConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A service's spill files (the BigQuery emulator's DuckDB: gigabytes after a busy
    stream) outlive it; `down` removes them once it stopped the process, and `up`
    removes what a killed process left before it starts a new one."""
    fake_redis_server(tmp_path / "bin", "while true; do sleep 0.1; done")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    plain = _spec(config, "redis")
    spec = dataclasses.replace(plain, scratch=(".tmp",))
    monkeypatch.setattr(local_stack, "_select", lambda _config, _names: [spec])
    [scratch] = spec.scratch_dirs
    scratch.mkdir(parents=True)
    (scratch / "spill-0.tmp").write_bytes(b"x" * 1024)
    assert local_stack._launch_if_needed(spec) is not None  # stale: removed first
    assert not scratch.exists()
    deadline = time.monotonic() + 10
    while running_pid(spec) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    scratch.mkdir()
    (scratch / "spill-1.tmp").write_bytes(b"x" * 1024)
    assert local_stack.down(config) == ["redis"]
    assert not scratch.exists()
    assert spec.pid_file.parent.exists()  # the run dir itself stays


def _spec(config: PlatformConfig, name: str) -> ServiceSpec:
    """The stack's spec of the service `name`."""
    return next(s for s in service_specs(config) if s.name == name)
