"""Per-stage resource hints: what each kind of stage asks Dataflow Prime for.

Right fitting gives each stage workers that satisfy its hints, so the hints are chosen
per kind of work, not per job. A stage without a hint of its own runs on the job's
default (`DEFAULT`, set as a pipeline option by `feature-store deploy`). `min_ram` of a
transform is the largest of its own and its parents' values; `accelerator` is the
innermost one.

Stages that differ in hints cannot share a fused step on Dataflow, so neighbours that
need nothing special share a level (I/O, validation, dead letters and archive writes are
all `IO`) and only the feature and inference stages stand apart.
"""

from __future__ import annotations

from collections.abc import Mapping

Hints = Mapping[str, str]

# Pub/Sub, BigQuery, Redis and Bigtable clients with small buffers: the cheapest workers.
IO: Hints = {"min_ram": "4GB"}
# JSON parsing against the event contract, record at a time.
VALIDATION: Hints = {"min_ram": "4GB"}
# Side outputs leaving the job (dead-letter and late topics, dead-letter files).
DEAD_LETTERS: Hints = {"min_ram": "4GB"}
# Every valid message into the raw archive (streaming inserts).
ARCHIVE: Hints = {"min_ram": "4GB"}
# One event_id per key (stream: state with a TTL; backfill: a shuffle by id shard whose
# groups are held in memory).
DEDUPLICATION: Hints = {"min_ram": "8GB"}
# The warm start reads the archive back and groups each key's history in memory.
HISTORY: Hints = {"min_ram": "16GB"}
# Exact sliding windows over whole entity histories: the memory-hungry stage.
FEATURES: Hints = {"min_ram": "32GB"}
# Model-derived features (RunInference); several models share one T4 per worker.
INFERENCE: Hints = {
    "min_ram": "8GB",
    "accelerator": "type:nvidia-tesla-t4;count:1;install-nvidia-driver",
}
# Anything not hinted above (glue steps such as keying and Reshuffle's random keys).
DEFAULT: Hints = {"min_ram": "4GB"}

LEVELS: Mapping[str, Hints] = {
    "io": IO,
    "validation": VALIDATION,
    "dead_letters": DEAD_LETTERS,
    "archive": ARCHIVE,
    "deduplication": DEDUPLICATION,
    "history": HISTORY,
    "features": FEATURES,
    "inference": INFERENCE,
    "default": DEFAULT,
}


def as_option(hints: Hints) -> list[str]:
    """The `--resource_hints` pipeline option values of a hint set."""
    return [f"{key}={value}" for key, value in sorted(hints.items())]
