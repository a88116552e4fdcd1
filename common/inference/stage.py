"""`ComputeModelFeatures`: review records in, sentiment and two embeddings per review out.

    records ─ Tokenise (CPU) ─┬─ tokens ─ Reshuffle ─ Inference [GPU hints] ─┐
                              ├─ records ──────────────────────────────────── Join ─ features
                              └─ dead letters (empty / oversized text) ─────────────┴─ dead letters

`Inference` is ONE `RunInference` over a `KeyedModelHandler` with one `KeyModelMapping`
per model and `max_models_per_worker_hint` = the number of models, so every model stays
loaded on the worker's device. Beam ignores per-model batching inside a multi-model
`KeyedModelHandler` (it batches the mixed stream once), so each model's tokens are
batched by their own `BatchElements` (sizes per model, texts of similar length together)
and the handler takes those batches as they are. Only `Inference` carries the accelerator
and memory hints; the `Reshuffle` before it lets a runner give it its own workers.

Nothing is lost: every record leaves through `features` or `dead_letter` (with a reason:
`no_id`, `empty_text`, `oversized_text`, `inference_failed`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import PickleCoder
from apache_beam.ml.inference.base import KeyedModelHandler, KeyModelMapping, RunInference
from apache_beam.transforms.userstate import BagStateSpec
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from common.beam_types import PColl, TimestampParam, Transform, partition_fn
from common.inference import models as catalog
from common.inference.handlers import PackagedModelHandler
from common.inference.settings import OUTPUTS, PARAPHRASE, SEMANTIC
from common.stages import Stage

log = logging.getLogger(__name__)

FEATURES = "features"
DEAD_LETTER = "dead_letter"
TOKENS = "tokens"
RECORD = "record"
T4 = "type:nvidia-tesla-t4;count:1;install-nvidia-driver"
# The hints `Inference` owns (Beam's names): a T4 worker, or a CPU one for local runs.
GPU_HINTS: Final[Mapping[str, str]] = {"min_ram": "16GB", "accelerator": T4}
CPU_HINTS: Final[Mapping[str, str]] = {"min_ram": GPU_HINTS["min_ram"]}


@dataclass(frozen=True, kw_only=True)
class Batching:
    """`BatchElements` settings of one model; `max_batch_duration_secs` for streaming."""

    min_batch_size: int = 1
    max_batch_size: int = 64
    max_batch_duration_secs: float | None = None
    length_buckets: tuple[int, ...] = (16, 32, 64, 128, 256)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "min_batch_size": self.min_batch_size,
            "max_batch_size": self.max_batch_size,
            "length_fn": _token_count,
            "bucket_boundaries": list(self.length_buckets),
        }
        if self.max_batch_duration_secs is not None:
            out["max_batch_duration_secs"] = self.max_batch_duration_secs
        return out


def _token_count(element: tuple[str, Mapping[str, Any]]) -> int:
    return len(element[1]["input_ids"])


@dataclass(frozen=True, kw_only=True)
class InferenceSettings:
    """The stage's settings; the defaults suit a batch job on a T4 worker."""

    models: tuple[str, ...] = (SEMANTIC, PARAPHRASE)
    device: str = "auto"  # auto: CUDA when the worker has it, else CPU
    accelerator: str | None = GPU_HINTS["accelerator"]  # None: no accelerator (local runs)
    min_ram: str = GPU_HINTS["min_ram"]
    id_field: str = "event_id"
    text_field: str = "text"
    # One copy of the models per worker VM, whatever its number of SDK processes (Beam's
    # `MultiProcessShared`: what a GPU worker wants). Beam's local runner sets the stage
    # up again per bundle and would reconnect to the sharing server each time, so local
    # jobs keep the models in their own process instead.
    share_across_processes: bool = True
    max_tokens: int = catalog.MAX_POSITIONS
    batching: Mapping[str, Batching] = field(
        default_factory=lambda: {
            SEMANTIC: Batching(max_batch_size=128),
            PARAPHRASE: Batching(max_batch_size=256),
        }
    )

    def __post_init__(self) -> None:
        known = set(OUTPUTS)
        if not self.models or not set(self.models) <= known:
            msg = f"models must be a non-empty subset of {sorted(known)}, got {self.models!r}"
            raise ValueError(msg)
        if not 2 < self.max_tokens <= catalog.MAX_POSITIONS:
            msg = f"max_tokens must be in (2, {catalog.MAX_POSITIONS}], got {self.max_tokens}"
            raise ValueError(msg)

    def hints(self) -> dict[str, str]:
        hints = {"min_ram": self.min_ram}
        if self.accelerator:
            hints["accelerator"] = self.accelerator
        return hints

    def batching_of(self, name: str) -> Batching:
        return self.batching.get(name, Batching())


def dead_letter(record: Any, reason: str, detail: str) -> dict[str, Any]:
    return {"reason": reason, "detail": detail, "record": record}


class Tokenise(beam.DoFn):
    """Checks a record's text and emits its token ids once per model (CPU work)."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.settings = settings
        self.limits = {name: catalog.specs()[name].max_seq_length for name in settings.models}

    def setup(self) -> None:
        self.tokenizer = catalog.tokenizer()

    def process(self, record: Mapping[str, Any]) -> Iterator[Any]:
        s = self.settings
        key = record.get(s.id_field) if isinstance(record, Mapping) else None
        text = record.get(s.text_field) if isinstance(record, Mapping) else None
        if not isinstance(key, str) or not key:
            detail = f"record has no `{s.id_field}` string: {key!r}"
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "no_id", detail))
            return
        if not isinstance(text, str) or not text.strip():
            detail = f"`{s.text_field}` of {key} is empty or not a string: {text!r}"
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "empty_text", detail))
            return
        ids: list[int] = self.tokenizer(text, verbose=False)["input_ids"]
        if len(ids) > s.max_tokens:
            detail = f"text of {key} has {len(ids)} tokens, the models take at most {s.max_tokens}"
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter(record, "oversized_text", detail))
            return
        for name, limit in self.limits.items():
            # As the tokenizer truncates: the first limit-1 tokens, then [SEP].
            cut = ids if len(ids) <= limit else [*ids[: limit - 1], ids[-1]]
            example = {"input_ids": cut, "attention_mask": [1] * len(cut), "id": key}
            yield pvalue.TaggedOutput(TOKENS, (name, example))
        yield (key, (RECORD, dict(record)))


class PrebatchedKeyedModelHandler(KeyedModelHandler[str, Any, Any, Any]):
    """A multi-model `KeyedModelHandler` whose elements are already batches.

    Not `KeyedModelHandler.with_no_batching()`: in Beam 2.77 that wrapper does not pass
    `override_metrics` on, and a multi-model `KeyedModelHandler` then fails on its first
    batch (`KeyError` on the model key in its metrics collectors).
    """

    def __init__(
        self, mappings: list[KeyModelMapping[Any, Any, Any, Any]], *, share_across_processes: bool
    ) -> None:
        super().__init__(mappings, max_models_per_worker_hint=len(mappings))
        self._share = share_across_processes

    def should_skip_batching(self) -> bool:
        return True

    def share_model_across_processes(self) -> bool:
        """Beam shares a multi-model handler's models across processes, always; here only
        when the settings ask (`InferenceSettings.share_across_processes`)."""
        return self._share


def keyed_handler(settings: InferenceSettings) -> PrebatchedKeyedModelHandler:
    mappings = [
        KeyModelMapping([name], PackagedModelHandler(name, device=settings.device))
        for name in settings.models
    ]
    return PrebatchedKeyedModelHandler(
        mappings, share_across_processes=settings.share_across_processes
    )


class Inference(Stage):
    """Per-model batching, then the one `RunInference` step; (predictions, failures).

    Owns the hints of a T4 worker (`GPU_HINTS`); the settings' `min_ram` and
    `accelerator` override them for one use (`with_resource_hints`).
    """

    RESOURCE_HINTS: ClassVar[Mapping[str, str]] = GPU_HINTS

    def __init__(self, settings: InferenceSettings) -> None:
        super().__init__()
        self.settings = settings

    def expand(self, tokens: PColl) -> tuple[PColl, PColl]:
        names = list(self.settings.models)
        parts = tokens | "ByModel" >> beam.Partition(
            partition_fn(lambda e, _n: names.index(e[0])), len(names)
        )
        batches = [
            part | f"Batch_{name}" >> beam.BatchElements(**self.settings.batching_of(name).kwargs())
            for name, part in zip(names, parts, strict=True)
        ]
        handler = keyed_handler(self.settings)
        predictions, dlq = (
            batches
            | "Merge" >> beam.Flatten()
            | "RunInference" >> RunInference(handler).with_exception_handling()
        )
        return predictions, dlq.failed_inferences


class CpuInference(Inference):
    """`Inference` without an accelerator hint (`InferenceSettings(accelerator=None)`)."""

    RESOURCE_HINTS: ClassVar[Mapping[str, str]] = CPU_HINTS


def _to_part(prediction: tuple[str, Any]) -> tuple[str, tuple[str, Mapping[str, Any]]]:
    name, result = prediction
    return result.example, (name, result.inference)


def _failures(failed: tuple[Any, Any]) -> Iterable[tuple[str, tuple[str, Mapping[str, Any]]]]:
    batch, error = failed
    reason = str(error[1] if isinstance(error, tuple) and len(error) > 1 else error)
    for name, example in batch:
        yield example["id"], (name, {"failed": f"model {name}: {reason}"})


class JoinParts(beam.DoFn):
    """Gathers a record and one part per model; emits the record with its model fields,
    at the record's own timestamp. The model parts come out of `BatchElements`, which
    stamps a batch at the end of the global window: a record stamped so would reach the
    stateful steps after it at the end of time (on the local runner it never did)."""

    PARTS = BagStateSpec("parts", PickleCoder())

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def process(
        self,
        element: tuple[str, tuple[str, Any]],
        timestamp: Any = TimestampParam,
        parts: Any = beam.DoFn.StateParam(PARTS),
    ) -> Iterator[Any]:
        name, value = element[1]
        if name == RECORD:
            value = (value, int(timestamp.micros))
        parts.add((name, value))
        seen = dict(parts.read())
        if RECORD not in seen or not all(name in seen for name in self.names):
            return
        parts.clear()
        record, micros = seen.pop(RECORD)
        at = Timestamp(micros=micros)
        failed = [v["failed"] for v in seen.values() if "failed" in v]
        if failed:
            detail = "; ".join(failed)
            letter = dead_letter(record, "inference_failed", detail)
            yield pvalue.TaggedOutput(DEAD_LETTER, TimestampedValue(letter, at))
            return
        for name in self.names:
            for output, column in OUTPUTS[name].items():
                value = seen[name][output]
                record[column] = value if isinstance(value, float) else value.tolist()
        yield TimestampedValue(record, at)


class ComputeModelFeatures(Transform):
    """Review records -> {FEATURES: records with model fields, DEAD_LETTER: refused ones}."""

    def __init__(self, settings: InferenceSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or InferenceSettings()

    def expand(self, records: PColl) -> dict[str, PColl]:
        s = self.settings
        checked = records | "Tokenise" >> beam.ParDo(Tokenise(s)).with_outputs(
            TOKENS, DEAD_LETTER, main=RECORD
        )
        stage = Inference(s) if s.accelerator else CpuInference(s)
        predictions, failures = (
            checked[TOKENS]
            | "Reshuffle" >> beam.Reshuffle()
            | "Inference" >> stage.with_resource_hints(**s.hints())
        )
        joined = (
            (
                checked[RECORD],
                predictions | "ToParts" >> beam.Map(_to_part),
                failures | "FailedParts" >> beam.FlatMap(_failures),
            )
            | "Gather" >> beam.Flatten()
            | "Join" >> beam.ParDo(JoinParts(s.models)).with_outputs(DEAD_LETTER, main=FEATURES)
        )
        dead = (checked[DEAD_LETTER], joined[DEAD_LETTER]) | "DeadLetters" >> beam.Flatten()
        return {FEATURES: joined[FEATURES], DEAD_LETTER: dead}
