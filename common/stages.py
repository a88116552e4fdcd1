"""What every pipeline stage shares: the resource hints it owns, and how a job's composite
transform is applied without renaming its stages.

A stage declares its hints once, on its class (as Beam's `ModelHandler.get_resource_hints()`
does for `RunInference`), so whichever job uses it asks Dataflow Prime for the same
right-sized workers; `with_resource_hints` still overrides them for one use. A new stage
(inference, a JAX kernel) is one class and one line in a job's `expand()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

import apache_beam as beam
from apache_beam.pvalue import PBegin
from apache_beam.transforms import resources

from common.beam_types import Transform

# What each kind of stage asks Dataflow Prime for. Right fitting gives each stage workers
# that satisfy its hints; stages that differ in hints cannot share a fused step, so
# neighbours that need nothing special share a level (I/O, validation, dead letters and
# archive writes are all 4 GB) and only de-duplication, the warm start's history, the
# features and inference stand apart. Beam's rules apply: a composite's `min_ram` is the
# largest of its own and its parents', its `accelerator` the innermost.
Hints = Mapping[str, str]

# Pub/Sub, BigQuery, Redis and Bigtable clients with small buffers: the cheapest workers.
IO_HINTS: Final[Hints] = {"min_ram": "4GB"}
# JSON parsing against the event contract, record at a time (and keying a record).
VALIDATION_HINTS: Final[Hints] = {"min_ram": "4GB"}
# Side outputs leaving the job (dead-letter and late topics, dead-letter files).
DEAD_LETTER_HINTS: Final[Hints] = {"min_ram": "4GB"}
# Every valid message into the raw archive (streaming inserts).
ARCHIVE_HINTS: Final[Hints] = {"min_ram": "4GB"}
# One event_id per key (stream: state with a TTL; backfill: a shuffle by id shard whose
# groups are held in memory).
DEDUP_HINTS: Final[Hints] = {"min_ram": "8GB"}
# The warm start groups each key's archived history in memory.
HISTORY_HINTS: Final[Hints] = {"min_ram": "16GB"}
# Exact sliding windows over whole entity histories: the memory-hungry stage.
FEATURE_HINTS: Final[Hints] = {"min_ram": "32GB"}
# Model-derived features (RunInference): several models share one T4 per worker. The
# model stage's `Inference` owns its own (`common.inference.stage.GPU_HINTS`, 16 GB);
# this level is the smallest a T4 worker gets.
INFERENCE_HINTS: Final[Hints] = {
    "min_ram": "8GB",
    "accelerator": "type:nvidia-tesla-t4;count:1;install-nvidia-driver",
}
# The JAX kernels of the vector features (a user's window of embeddings at each change
# point, many users per call): CPU and RAM by default; `LINALG_GPU_HINTS` when the job is
# configured with an accelerator for them (the same code runs on the GPU).
LINALG_HINTS: Final[Hints] = {"min_ram": "16GB"}
LINALG_GPU_HINTS: Final[Hints] = {
    "min_ram": "16GB",
    "accelerator": "type:nvidia-tesla-t4;count:1;install-nvidia-driver",
}
# The job's default (`--resource_hints`), for glue without a hint of its own (a
# Reshuffle, a GroupByKey, a Flatten).
DEFAULT_HINTS: Final[Hints] = {"min_ram": "4GB"}


def as_option(hints: Hints) -> list[str]:
    """The `--resource_hints` pipeline option values of a hint set."""
    return [f"{key}={value}" for key, value in sorted(hints.items())]


class Stage(Transform):
    """A pipeline stage with its own resource hints (`RESOURCE_HINTS`, Beam's names)."""

    RESOURCE_HINTS: ClassVar[Mapping[str, str]] = {}

    def get_resource_hints(self) -> dict[str, bytes]:
        hints: dict[str, bytes] = super().get_resource_hints()
        for urn, value in resources.parse_resource_hints(dict(self.RESOURCE_HINTS)).items():
            hints.setdefault(urn, value)
        return hints


def expand_at_top_level(pipeline: beam.Pipeline, job: Transform) -> Any:
    """Expands a job's composite transform with its stages at the pipeline's top level.

    Applied with `pipeline | job`, every stage would be renamed `<job>/<stage>`; Dataflow's
    `--update` maps a running job's state to the new one by stage label, so the stages keep
    the labels running jobs were launched with.
    """
    return job.expand(PBegin(pipeline))
