"""What right fitting saves: one job profile priced as two layouts.

- uniform: classic Dataflow, one worker pool for the whole job, every worker sized for
  the hungriest stage (its RAM) and carrying a GPU when any stage needs one, billed per
  vCPU-hour, GB-hour and GPU-hour for the job's whole wall time;
- right-fitted: Dataflow Prime, each stage on workers sized to its own needs (its
  `min_ram` hint or measured peak, whichever is larger; a GPU only where it runs
  inference), billed in Data Compute Units plus GPU-hours for that stage's wall time.

A profile is JSON: `{"job": "batch"|"streaming", "workers": N, "stages": [{"name",
"wall_s", "cpu_s", "peak_memory_gb", "accelerator_busy_s", "min_ram_gb",
"accelerator"}]}` (`cpu_s`, `accelerator_busy_s`, `min_ram_gb`, `accelerator` optional).
Stages are taken to run one after another (a shuffle between them), on `workers`
workers each, in both layouts: the comparison isolates the worker shape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feature_store.errors import ConfigError

PRICES = Path(__file__).resolve().parent / "gcp_prices.json"
HOUR = 3600.0


@dataclass(frozen=True, kw_only=True)
class StageProfile:
    name: str
    wall_s: float
    peak_memory_gb: float
    cpu_s: float = 0.0
    accelerator_busy_s: float = 0.0
    min_ram_gb: float = 0.0
    accelerator: str | None = None

    def __post_init__(self) -> None:
        for attr in ("wall_s", "peak_memory_gb", "cpu_s", "accelerator_busy_s", "min_ram_gb"):
            value = getattr(self, attr)
            if not math.isfinite(value) or value < 0:
                msg = f"stage `{self.name}`: {attr} must be a finite number >= 0, got {value}"
                raise ConfigError(msg)

    @property
    def ram_gb(self) -> float:
        return max(self.min_ram_gb, self.peak_memory_gb)

    @property
    def needs_gpu(self) -> bool:
        return self.accelerator is not None or self.accelerator_busy_s > 0


@dataclass(frozen=True, kw_only=True)
class Profile:
    job: str  # "batch" or "streaming"
    stages: tuple[StageProfile, ...]
    workers: int = 1
    source: str = ""

    def __post_init__(self) -> None:
        if self.job not in ("batch", "streaming"):
            msg = f"profile job must be batch or streaming, got {self.job!r}"
            raise ConfigError(msg)
        if not self.stages:
            msg = "a profile needs at least one stage, got none"
            raise ConfigError(msg)
        if self.workers < 1:
            msg = f"workers must be positive, got {self.workers}"
            raise ConfigError(msg)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        try:
            stages = tuple(StageProfile(**s) for s in data["stages"])
            return cls(
                job=data.get("job", "batch"),
                stages=stages,
                workers=int(data.get("workers", 1)),
                source=str(data.get("source", "")),
            )
        except (KeyError, TypeError) as exc:
            msg = f"not a profile ({exc}): {json.dumps(data)[:200]}"
            raise ConfigError(msg) from exc


@dataclass(frozen=True, kw_only=True)
class Line:
    """One pool in one layout: its worker shape, hours and cost."""

    stage: str
    vcpus: int
    ram_gb: float
    gpus: int
    hours: float
    cost: float


@dataclass(frozen=True, kw_only=True)
class Plan:
    uniform: tuple[Line, ...]
    right_fitted: tuple[Line, ...]
    assumptions: tuple[str, ...] = field(default=())

    @property
    def uniform_cost(self) -> float:
        return sum(line.cost for line in self.uniform)

    @property
    def right_fitted_cost(self) -> float:
        return sum(line.cost for line in self.right_fitted)

    @property
    def saving(self) -> float:
        """The right-fitted layout's saving as a share of the uniform layout's cost."""
        return 1 - self.right_fitted_cost / self.uniform_cost if self.uniform_cost else 0.0


def load_prices(path: Path = PRICES) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def vcpus_for(ram_gb: float, gb_per_vcpu: float) -> int:
    """Worker vCPUs for a RAM size (high-memory shapes: `gb_per_vcpu` GB per vCPU)."""
    return max(1, math.ceil(ram_gb / gb_per_vcpu))


def dcu_per_hour(vcpus: int, ram_gb: float, prices: Mapping[str, Any]) -> float:
    """DCUs a worker uses in an hour: 1 vCPU + 4 GB is 1 DCU, split in the ratio of the
    classic batch vCPU and memory prices (an assumption: Prime meters DCUs itself)."""
    batch = prices["classic"]["batch"]
    cpu_share = batch["vcpu_hour"] / (batch["vcpu_hour"] + 4 * batch["memory_gb_hour"])
    return float(vcpus * cpu_share + ram_gb * (1 - cpu_share) / 4)


def plan(profile: Profile, prices: Mapping[str, Any]) -> Plan:
    gb_per_vcpu = prices["assumptions"]["gb_per_vcpu"]
    gpu_price = prices["gpu_hour"]["nvidia-tesla-t4"]
    classic = prices["classic"][profile.job]
    dcu_price = prices["prime"]["dcu_hour"][profile.job]
    n = profile.workers

    ram = max(s.ram_gb for s in profile.stages)
    gpus = 1 if any(s.needs_gpu for s in profile.stages) else 0
    vcpus = vcpus_for(ram, gb_per_vcpu)
    hourly = vcpus * classic["vcpu_hour"] + ram * classic["memory_gb_hour"] + gpus * gpu_price
    uniform = tuple(
        Line(
            stage=s.name,
            vcpus=vcpus,
            ram_gb=ram,
            gpus=gpus,
            hours=n * s.wall_s / HOUR,
            cost=n * s.wall_s / HOUR * hourly,
        )
        for s in profile.stages
    )
    fitted = []
    for s in profile.stages:
        v, g = vcpus_for(s.ram_gb, gb_per_vcpu), int(s.needs_gpu)
        rate = dcu_per_hour(v, s.ram_gb, prices) * dcu_price + g * gpu_price
        hours = n * s.wall_s / HOUR
        fitted.append(
            Line(stage=s.name, vcpus=v, ram_gb=s.ram_gb, gpus=g, hours=hours, cost=hours * rate)
        )
    return Plan(
        uniform=uniform, right_fitted=tuple(fitted), assumptions=_assumptions(profile, prices)
    )


def _assumptions(profile: Profile, prices: Mapping[str, Any]) -> tuple[str, ...]:
    checked = prices.get("verified", {})
    verified = "" if prices.get("verified_against_page") else " (not verified against the page)"
    return (
        f"prices: {prices['region']}, {prices['currency']}, consulted {prices['consulted']}"
        f"{verified}; sources: {'; '.join(prices['sources'])}",
        *(f"{part} prices: {how}" for part, how in checked.items()),
        f"classic {profile.job}: ${prices['classic'][profile.job]['vcpu_hour']}/vCPU-h, "
        f"${prices['classic'][profile.job]['memory_gb_hour']}/GB-h; Prime: "
        f"${prices['prime']['dcu_hour'][profile.job]}/DCU-h; T4: "
        f"${prices['gpu_hour']['nvidia-tesla-t4']}/GPU-h in both layouts",
        f"worker vCPUs = ceil(RAM / {prices['assumptions']['gb_per_vcpu']} GB), at least 1",
        f"DCUs: {prices['assumptions']['dcu_reference']}",
        "a stage's RAM is the larger of its min_ram hint and its measured peak; it gets a "
        "GPU when it has an accelerator hint or measured accelerator time",
        f"stages run one after another on {profile.workers} worker(s) each, in both layouts "
        "(same parallelism; only the worker shape differs)",
        "left out of both: persistent disk, Shuffle / Streaming Engine data (billed apart "
        "on classic, in DCUs on Prime), worker start-up and autoscaling",
        "uniform pool: every worker has the largest stage's RAM and a GPU if any stage "
        "needs one, for the whole job",
    )


def report(profile: Profile, result: Plan) -> str:
    def table(title: str, lines: Sequence[Line]) -> list[str]:
        out = [title, f"  {'stage':<24}{'vCPU':>5}{'RAM GB':>8}{'GPU':>5}{'hours':>9}{'USD':>10}"]
        for ln in lines:
            out.append(
                f"  {ln.stage:<24}{ln.vcpus:>5}{ln.ram_gb:>8g}{ln.gpus:>5}"
                f"{ln.hours:>9.3f}{ln.cost:>10.4f}"
            )
        out.append(f"  {'total':<51}{sum(ln.cost for ln in lines):>10.4f}")
        return out

    lines = [f"profile: {profile.source or 'given'} ({profile.job}, {len(profile.stages)} stages)"]
    for s in profile.stages:
        busy = f", accelerator busy {s.accelerator_busy_s:g} s" if s.accelerator_busy_s else ""
        lines.append(
            f"  {s.name}: wall {s.wall_s:g} s, CPU {s.cpu_s:g} s, peak {s.peak_memory_gb:g} GB, "
            f"hint {s.min_ram_gb:g} GB{', ' + s.accelerator if s.accelerator else ''}{busy}"
        )
    lines += table("uniform pool (classic Dataflow)", result.uniform)
    lines += table("right-fitted pools (Dataflow Prime)", result.right_fitted)
    lines.append(
        f"saving: {result.saving:.1%} (${result.uniform_cost - result.right_fitted_cost:.4f} "
        f"of ${result.uniform_cost:.4f})"
    )
    lines.append("assumptions:")
    lines += [f"  - {a}" for a in result.assumptions]
    return "\n".join(lines)


def talk_example(wall_s: float = HOUR) -> Profile:
    """The talk's batch ML job: 4 GB input I/O, 32 GB preprocessing, 8 GB + one T4
    inference, 4 GB output; equal wall times (the talk gives none)."""
    t4 = "type:nvidia-tesla-t4;count:1"
    return Profile(
        job="batch",
        source="talk example",
        stages=(
            StageProfile(name="input_io", wall_s=wall_s, peak_memory_gb=4, min_ram_gb=4),
            StageProfile(name="preprocessing", wall_s=wall_s, peak_memory_gb=32, min_ram_gb=32),
            StageProfile(
                name="inference",
                wall_s=wall_s,
                peak_memory_gb=8,
                min_ram_gb=8,
                accelerator=t4,
                accelerator_busy_s=wall_s,
            ),
            StageProfile(name="output_io", wall_s=wall_s, peak_memory_gb=4, min_ram_gb=4),
        ),
    )
