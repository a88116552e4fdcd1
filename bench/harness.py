"""The benchmark harness: discovery, the shared context, the machine, the report.

A benchmark is a module `bench/bench_<name>.py` whose docstring says what it measures
and which exposes `run(ctx: Context) -> list[Row]`. Rows of one `group` are figures of
the same work on the same data, side by side; the group's `reference` row is what the
others' ratios are taken against. Extra prose (where the time goes, how a peer was
written) goes in through `ctx.section(...)`; each goal a benchmark checks (a target the
project set itself, e.g. "at most 2x DuckDB") goes in through `ctx.goal(...)`, with its
verdict computed from the run's own figures, and the report lists them all first.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import pkgutil
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import ModuleType

from feature_store.errors import ConfigError
from simulator.traffic import SimulationConfig, simulate, write_jsonl

log = logging.getLogger(__name__)

PACKAGES = ("apache-beam", "feast", "numpy", "pyarrow", "duckdb", "google-cloud-bigquery")
PREFIX = "bench_"


@dataclass(frozen=True, kw_only=True)
class Row:
    """One measured figure."""

    benchmark: str
    group: str  # rows compared side by side (the same work on the same data)
    system: str  # whose code ran: "feature-store", "DuckDB 1.5.5", ...
    variant: str  # what exactly ran
    events: int
    wall_s: float | None  # None: not run (see `check`)
    reference: bool = False  # the row this group's ratios are taken against
    check: str = ""  # the correctness check's result, or why the row did not run
    cpu_s: float | None = None  # process CPU seconds of the run, its workers included

    @property
    def cpu_s_per_million(self) -> float | None:
        return self.cpu_s * 1e6 / self.events if self.cpu_s is not None and self.events else None

    @property
    def events_per_s(self) -> float | None:
        return self.events / self.wall_s if self.wall_s else None


@dataclass(frozen=True)
class Section:
    benchmark: str
    title: str
    markdown: str


@dataclass(frozen=True, kw_only=True)
class Goal:
    """A target a benchmark checks, and what this run measured against it."""

    benchmark: str
    goal: str  # the target, in words: "at most 100 µs per event at every window population"
    measured: str  # this run's figures, in words
    met: bool


@dataclass
class Context:
    """What every benchmark of one run shares: sizes, a scratch folder, simulated data."""

    events: int | None
    quick: bool
    seed: int
    workdir: Path
    sections: list[Section] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    _simulated: dict[tuple[int, float, float], Path] = field(default_factory=dict)
    current: str = ""

    def size(self, full: int, quick: int) -> int:
        """The event count a benchmark should use: `--events`, else its full or quick size."""
        if self.events is not None:
            return self.events
        return quick if self.quick else full

    def simulated(
        self, events: int, *, bad_share: float = 0.01, duplicate_share: float = 0.01
    ) -> Path:
        """JSON-lines files of the seeded simulator (made once per run and shape)."""
        key = (events, bad_share, duplicate_share)
        if key not in self._simulated:
            out = self.workdir / f"events-{events}-{bad_share}-{duplicate_share}"
            config = SimulationConfig(
                seed=self.seed, events=events, bad_share=bad_share, duplicate_share=duplicate_share
            )
            with timed() as took:
                write_jsonl(simulate(config), out)
            log.info("simulated %d events (seed %d) in %.1f s", events, self.seed, took())
            self._simulated[key] = out
        return self._simulated[key]

    def section(self, title: str, markdown: str) -> None:
        self.sections.append(Section(self.current, title, markdown.strip()))

    def goal(self, goal: str, measured: str, *, met: bool) -> None:
        """Records a goal's verdict from this run's figures (listed first in the report)."""
        self.goals.append(Goal(benchmark=self.current, goal=goal, measured=measured, met=met))


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process and its waited-for children have used."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def wait_for_children(timeout_s: float = 30.0) -> None:
    """Waits until this process has no child left (Linux: `/proc`), so that worker
    processes a run started have exited and been reaped into `cpu_seconds`."""
    deadline = time.monotonic() + timeout_s
    tasks = Path(f"/proc/{os.getpid()}/task")
    while tasks.exists() and time.monotonic() < deadline:
        alive = [c for t in tasks.glob("*/children") for c in t.read_text().split()]
        if not alive:
            return
        time.sleep(0.2)
    if tasks.exists():
        log.warning("child processes still running after %.0f s", timeout_s)


@contextmanager
def cpu_timed() -> Iterator[Callable[[], float]]:
    """`with cpu_timed() as used: ...` then `used()` is the CPU seconds of the block
    (`cpu_seconds`: worker processes count once they have exited)."""
    began = cpu_seconds()
    ended: list[float] = []
    try:
        yield lambda: (ended[0] if ended else cpu_seconds()) - began
    finally:
        ended.append(cpu_seconds())


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """`with timed() as took: ...` then `took()` is the wall time of the block (seconds)."""
    began = time.perf_counter()
    ended: list[float] = []
    try:
        yield lambda: (ended[0] if ended else time.perf_counter()) - began
    finally:
        ended.append(time.perf_counter())


def discover(only: str | None = None) -> list[ModuleType]:
    """The benchmark modules of this package (`bench_*.py`), or the one named `only`."""
    package = importlib.import_module("bench")
    names = sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith(PREFIX)
    )
    if only is not None:
        wanted = only if only.startswith(PREFIX) else PREFIX + only
        if wanted not in names:
            known = [n.removeprefix(PREFIX) for n in names]
            msg = f"no benchmark {only!r}; there are {known}"
            raise ConfigError(msg)
        names = [wanted]
    modules = [importlib.import_module(f"bench.{name}") for name in names]
    for module in modules:
        if not callable(getattr(module, "run", None)):
            msg = f"benchmark module {module.__name__} has no run(ctx) function"
            raise ConfigError(msg)
    return modules


def benchmark_name(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1].removeprefix(PREFIX)


def run_all(modules: list[ModuleType], ctx: Context) -> list[Row]:
    """Every benchmark's rows; one that raises leaves a FAILED row and the others run."""
    rows: list[Row] = []
    for module in modules:
        ctx.current = benchmark_name(module)
        log.info("benchmark %s", ctx.current)
        try:
            rows += module.run(ctx)
        except Exception as exc:  # a benchmark's failure is reported, not fatal to the run
            log.exception("benchmark %s failed", ctx.current)
            rows.append(
                Row(
                    benchmark=ctx.current,
                    group="failed",
                    system="—",
                    variant="—",
                    events=0,
                    wall_s=None,
                    check=f"FAILED: {type(exc).__name__}: {exc}",
                )
            )
    return rows


def failed(rows: list[Row]) -> list[str]:
    return [r.benchmark for r in rows if r.check.startswith("FAILED")]


def scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="feature-store-bench-")


# ----------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))}, kernel {platform.release()}"
    except OSError:
        pass
    return platform.platform()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    facts = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "CPU": _cpu_model(),
        "cores": f"{os.cpu_count()} logical",
        "RAM": _memory_gib(),
        "OS": _os_name(),
        "Python": platform.python_version(),
        "packages": ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
    }
    facts["load average at start"] = load_average()
    return facts


class PeakLoad:
    """The highest 1-minute load average seen while a run lasts (sampled every
    `every_s` on a thread of its own): other work on the machine during the run shows
    here even when it had stopped by the run's end."""

    def __init__(self, every_s: float = 10.0) -> None:
        import threading

        self.every_s = every_s
        self.peak = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every_s):
            if hasattr(os, "getloadavg"):
                self.peak = max(self.peak, os.getloadavg()[0])

    def __enter__(self) -> PeakLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def describe(self) -> str:
        return "unknown" if math.isnan(self.peak) else f"{self.peak:.2f} (1 min)"


def load_average() -> str:
    """The 1/5/15-minute load averages: other work on the machine shows here."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1/5/15 min)"
