"""A job's per-stage profile from a finished local run, in the form `cost-plan` reads.

What the local runner (Beam's in-process FnApiRunner) can measure, and what it cannot:
- per step, the time its DoFns spent in start/process/finish bundle (Beam's execution
  time metrics): used as the stage's wall time and CPU time on one worker; it counts
  I/O waits as busy, so it overstates CPU for the I/O stages;
- the whole process's peak resident memory, not a stage's: every stage runs in the
  same process, so a stage's peak is not separable. Each stage is sized by its
  `min_ram` hint instead, and the process peak is recorded beside;
- no accelerator: no stage runs on one yet.
"""

from __future__ import annotations

import json
import resource
import sys
from collections import defaultdict
from typing import Any

from common.job_graph import stages
from common.stages import DEFAULT_HINTS

_EXECUTION = ("start_bundle_msecs", "process_bundle_msecs", "finish_bundle_msecs")


def execution_seconds(result: Any) -> dict[str, float]:
    """Seconds each top-level step's transforms spent executing, from the runner's
    system metrics."""
    totals: dict[str, float] = defaultdict(float)
    metrics = result.monitoring_metrics().query()
    for counter in metrics["counters"]:
        name = str(counter.key.metric.name)
        if not any(part in name for part in _EXECUTION) or not counter.key.step:
            continue
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.step.split("/")[0]] += (value or 0) / 1000.0
    return dict(totals)


def peak_rss_gb() -> float:
    """This process's peak resident memory (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024
    return peak * scale / 1e9


def local_profile(job: str, pipeline_proto: Any, result: Any) -> dict[str, Any]:
    seconds = execution_seconds(result)
    out = []
    for stage in stages(pipeline_proto):
        # A step without a hint of its own runs on the job's default on Dataflow.
        default = float(DEFAULT_HINTS["min_ram"].removesuffix("GB"))
        ram = max((float(r.removesuffix("GB")) for r in stage.min_ram), default=default)
        out.append(
            {
                "name": stage.label,
                "wall_s": round(seconds.get(stage.label, 0.0), 3),
                "cpu_s": round(seconds.get(stage.label, 0.0), 3),
                "peak_memory_gb": 0.0,
                "min_ram_gb": ram,
                "accelerator": stage.accelerator[0] if stage.accelerator else None,
                "accelerator_busy_s": 0.0,
            }
        )
    return {
        "job": job,
        "workers": 1,
        "source": "local run (FnApiRunner): execution time per step; memory per stage "
        "not separable locally, stages sized by their min_ram hints",
        "process_peak_memory_gb": round(peak_rss_gb(), 3),
        "stages": out,
    }


def write_profile(path: str, job: str, pipeline: Any, result: Any) -> None:
    from pathlib import Path

    data = local_profile(job, pipeline.to_runner_api(), result)
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
