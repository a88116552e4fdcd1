"""The local platform as plain processes: `up`, `down` and `status` of its four services.

`up` starts what is not running and waits until every service answers a real request.
A healthy service on its port is reused whoever started it (a `docker compose up`, a
shared development stack); only processes with our pid file are ever stopped by `down`.
See `infra.services` for where pid files, logs and tools live.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from feature_store.config import PlatformConfig
from infra.services import (
    ServiceSpec,
    StackError,
    alive,
    check,
    log_tail,
    port_free,
    running_pid,
    service_specs,
    start,
    stop,
)

__all__ = ["ServiceStatus", "StackError", "down", "service_names", "status", "up"]

logger = logging.getLogger(__name__)
POLL_S = 0.25

Launched = subprocess.Popen[bytes] | int
"""A process `up` waits for: one it just started, or the pid of one of ours still starting."""


@dataclass(frozen=True, kw_only=True)
class ServiceStatus:
    """What `status` and `up` report for one service. `pid` is None when not ours."""

    name: str
    port: int
    pid: int | None
    healthy: bool
    detail: str
    log: Path
    started: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "port": self.port,
            "pid": self.pid,
            "healthy": self.healthy,
            "detail": self.detail,
            "log": str(self.log),
            "started": self.started,
        }


def service_names(config: PlatformConfig) -> list[str]:
    return [spec.name for spec in service_specs(config)]


def _select(config: PlatformConfig, names: Collection[str] | None) -> list[ServiceSpec]:
    specs = service_specs(config)
    known = [spec.name for spec in specs]
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        msg = f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(known)}"
        raise StackError(msg)
    return [spec for spec in specs if names is None or spec.name in names]


def _status_of(spec: ServiceSpec, *, started: bool = False) -> ServiceStatus:
    pid = running_pid(spec)
    healthy, detail = check(spec)
    if not healthy and pid is None:
        detail = f"not running: {detail}"
    return ServiceStatus(
        name=spec.name,
        port=spec.port,
        pid=pid,
        healthy=healthy,
        detail=detail,
        log=spec.log_file,
        started=started,
    )


def status(config: PlatformConfig, names: Collection[str] | None = None) -> list[ServiceStatus]:
    """Per-service status, judged by a real request to each service."""
    return [_status_of(spec) for spec in _select(config, names)]


def up(
    config: PlatformConfig, timeout: float = 60.0, names: Collection[str] | None = None
) -> list[ServiceStatus]:
    """Start the services that are not running; wait until all answer or `timeout` passes.

    On failure the processes this call started are stopped again, and the error says
    which service, on which port, and the last lines of its log.
    """
    specs = _select(config, names)
    deadline = time.monotonic() + timeout
    launched: dict[str, Launched] = {}
    try:
        for spec in specs:
            process = _launch_if_needed(spec)
            if process is not None:
                launched[spec.name] = process
        for spec in specs:
            if spec.name in launched:
                _wait_healthy(spec, launched[spec.name], deadline, timeout)
    except BaseException:
        _stop_launched(specs, launched)
        raise
    return [_status_of(spec, started=spec.name in launched) for spec in specs]


def _launch_if_needed(spec: ServiceSpec) -> Launched | None:
    """None when the service already answers; else a process to wait for."""
    healthy, detail = check(spec)
    if healthy:
        logger.info("%s already answers on port %d: %s", spec.name, spec.port, detail)
        return None
    pid = running_pid(spec)
    if pid is not None:
        return pid  # ours and alive, not answering yet: wait for it
    spec.pid_file.unlink(missing_ok=True)
    for port in spec.ports:
        if not port_free(spec.host, port):
            problem = (
                f"port {port} is in use by a process not started by `feature-store up` "
                f"that does not answer as {spec.name} ({detail}); stop it or move "
                f"the service with FEATURE_STORE_{spec.name.upper()}_PORT"
            )
            raise spec.error(problem)
    if shutil.which(spec.argv[0]) is None:
        problem = f"missing executable {spec.argv[0]}; run `make setup`"
        raise spec.error(problem)
    clear_scratch(spec)  # what a killed process of ours left
    return start(spec)


def clear_scratch(spec: ServiceSpec) -> None:
    """Removes the service's scratch folders (`ServiceSpec.scratch`); called only when
    no process of ours runs it."""
    for folder in spec.scratch_dirs:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed %s's scratch folder %s", spec.name, folder)


def _exit_code(process: Launched) -> int | str | None:
    if isinstance(process, int):
        return None if alive(process) else "unknown"
    return process.poll()


def _wait_healthy(spec: ServiceSpec, process: Launched, deadline: float, timeout: float) -> None:
    pid = process if isinstance(process, int) else process.pid
    while True:
        code = _exit_code(process)
        if code is not None:
            problem = (
                f"process {pid} exited with code {code} before answering; "
                f"last log lines: {log_tail(spec.log_file)}"
            )
            raise spec.error(problem)
        healthy, detail = check(spec)
        if healthy:
            logger.info("%s answers on port %d: %s", spec.name, spec.port, detail)
            return
        if time.monotonic() >= deadline:
            problem = (
                f"no answer within {timeout:g}s ({detail}); "
                f"last log lines: {log_tail(spec.log_file)}"
            )
            raise spec.error(problem)
        time.sleep(POLL_S)


def _stop_launched(specs: list[ServiceSpec], launched: dict[str, Launched]) -> None:
    for spec in specs:
        process = launched.get(spec.name)
        if process is None:
            continue
        stop(process if isinstance(process, int) else process.pid)
        if isinstance(process, subprocess.Popen):
            process.wait()
        spec.pid_file.unlink(missing_ok=True)
        logger.info("stopped %s again after a failed start", spec.name)


def down(config: PlatformConfig, names: Collection[str] | None = None) -> list[str]:
    """Stop the services we started (pid file), newest first; returns their names.

    A service answering on its port without our pid file is left alone.
    """
    stopped: list[str] = []
    for spec in reversed(_select(config, names)):
        pid = running_pid(spec)
        if pid is not None:
            try:
                stop(pid)
            except StackError as exc:
                raise spec.error(str(exc)) from exc
            clear_scratch(spec)
            stopped.append(spec.name)
            logger.info("stopped %s (pid %d)", spec.name, pid)
        elif check(spec)[0]:
            logger.info("%s on port %d was not started by us; left running", spec.name, spec.port)
        spec.pid_file.unlink(missing_ok=True)
    return stopped
