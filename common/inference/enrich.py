"""`ModelFeatures`: the model stage as both jobs run it, before the keying by view.

    records ─ Route ─┬─ records no model view reads (or outside the sample) ───────┐
                     └─ model records ─ Compute ─┬─ enriched ─────────────── FromModels ─ Together
                                                 └─ refused ─┬─ its record ──┘
                                                             └─ DeadLetters

A record goes to the models when a view that reads model outputs (`plans`) takes it (its
source, its `where`) and its user is in the sample (`ModelSettings.sampled`); it comes
back with `sentiment`, `embedding_semantic`, `embedding_paraphrase` (those of the models
run), so `review_content` and `user_content_stats` come out of the same aggregation core
as every other view. A text the models refuse (empty, over 512 tokens, a failed batch)
leaves as a `DeadLetter` with the reason, and its record goes on without model fields:
it still counts for the views that read no model (`KeyByViewEntity` gives a model view
only records that carry its model fields).

Several inputs (the stream's live and warm-start records) share the one stage, each
through its own branch (`Compute`, `Compute1`, ...): the outputs come back in the same
order. `batched=True` takes and gives lists of records (the backfill's de-duplicated
lists), so the shuffles after it still move lists.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics.metric import Metrics

from common.beam_types import PColl
from common.inference.settings import BACK, SENT, ModelSettings, model_fields
from common.inference.stage import DEAD_LETTER, FEATURES, ComputeModelFeatures, InferenceSettings
from common.metrics import JobCounter
from common.stages import VALIDATION_HINTS, Stage
from feature_store.core.plan import ViewPlan
from feature_store.events import DeadLetter
from feature_store.registry import Registry

MODELS = "models"
KEY = "model_key"  # one per element sent to the models (ids may repeat across inputs)
REBATCH = 20_000
Record = dict[str, Any]


class _Route(beam.DoFn):
    """Records (or lists) → those no model reads (main) and the model ones (tag `models`)."""

    def __init__(self, plans: Sequence[ViewPlan], settings: ModelSettings, batched: bool) -> None:
        self.plans = [(p.source, p.where) for p in plans]
        self.settings, self.batched = settings, batched
        self.sent = JobCounter(MODELS, SENT)

    def _needs_models(self, record: Mapping[str, Any]) -> bool:
        for source, where in self.plans:
            if record.get("topic") != source:
                continue
            if where is None or record.get(where.field) in where.values:
                return self.settings.sampled(record)
        return False

    def process(self, element: Any) -> Iterator[Any]:
        records = element if self.batched else [element]
        passing = []
        for record in records:
            if self._needs_models(record):
                self.sent.inc()
                yield pvalue.TaggedOutput(MODELS, {**record, KEY: uuid.uuid4().hex})
            elif self.batched:
                passing.append(record)
            else:
                yield record
        if passing:
            yield passing


def _untagged(record: Mapping[str, Any]) -> Record:
    return {k: v for k, v in record.items() if k != KEY}


class _Back(beam.DoFn):
    """A record leaving the stage: enriched, or refused (`refused=True`, a dead letter's)."""

    def __init__(self, refused: bool) -> None:
        self.refused = refused
        self.back = JobCounter(MODELS, BACK)

    def process(self, element: Mapping[str, Any]) -> Iterator[Record]:
        self.back.inc()
        yield _untagged(element["record"] if self.refused else element)


class _ToDeadLetter(beam.DoFn):
    """A refusal of the model stage → a `DeadLetter` whose raw message is the event
    again (the source's fields, `event_time` as received): it can be replayed."""

    def __init__(self, registry: Registry) -> None:
        self.fields = {s.topic: tuple(f.name for f in s.fields) for s in registry.sources}
        self.refused = Metrics.counter("models", "model_dead_letters")

    def process(self, dead: Mapping[str, Any]) -> Iterator[DeadLetter]:
        record = _untagged(dead["record"])
        topic = str(record.get("topic", ""))
        event = {
            name: record["event_time_iso"] if name == "event_time" else record.get(name)
            for name in self.fields.get(topic, ())
        }
        raw = json.dumps({k: v for k, v in event.items() if v is not None}, sort_keys=True)
        self.refused.inc()
        yield DeadLetter(
            topic=topic,
            raw=raw.encode("utf-8"),
            attributes={},
            reason=str(dead["reason"]),
            detail=str(dead["detail"]),
        )


class ModelFeatures(Stage):
    """Records → the same records, the model views' ones with their model fields, and
    `DeadLetter`s: `(outputs in the inputs' order, dead letters)`.

    Routing, tokenising and joining are record-at-a-time CPU work (validation's level);
    the inner `Inference` step owns its own hints (a T4 worker).
    """

    RESOURCE_HINTS = VALIDATION_HINTS

    def __init__(
        self,
        registry: Registry,
        plans: Sequence[ViewPlan],
        settings: ModelSettings,
        inference: InferenceSettings | None = None,
        *,
        batched: bool = False,
        local: bool = False,
    ) -> None:
        super().__init__()
        self.registry, self.settings, self.batched = registry, settings, batched
        self.plans = [p for p in plans if model_fields(registry, p)]
        if inference is None:  # `local`: on Beam's local runner (models kept in-process)
            inference = InferenceSettings(
                models=settings.models, id_field=KEY, share_across_processes=not local
            )
        self.inference = inference

    def expand(self, inputs: PColl | tuple[PColl, ...]) -> tuple[tuple[PColl, ...], PColl]:
        parts = inputs if isinstance(inputs, tuple) else (inputs,)
        outputs, refusals = [], []
        for i, part in enumerate(parts):
            enriched, refused = self._enrich(part, "" if i == 0 else str(i))
            outputs.append(enriched)
            refusals.append(refused)
        dead = (
            tuple(refusals)
            | "Refusals" >> beam.Flatten()
            | "DeadLetters" >> beam.ParDo(_ToDeadLetter(self.registry))
        )
        return tuple(outputs), dead

    def _enrich(self, records: PColl, n: str) -> tuple[PColl, PColl]:
        """One input through its own `RunInference` step: the stream's live records and
        its warm start's must stay apart (the warm start is bounded and grouped per key
        once it is read, which a stream merged with the live one would never allow)."""
        routed = records | f"Route{n}" >> beam.ParDo(
            _Route(self.plans, self.settings, self.batched)
        ).with_outputs(MODELS, main="rest")
        computed = routed[MODELS] | f"Compute{n}" >> ComputeModelFeatures(self.inference)
        back = (
            computed[FEATURES] | f"Enriched{n}" >> beam.ParDo(_Back(refused=False)),
            computed[DEAD_LETTER] | f"Refused{n}" >> beam.ParDo(_Back(refused=True)),
        ) | f"FromModels{n}" >> beam.Flatten()
        if self.batched:  # back to lists of records
            back = back | f"Lists{n}" >> beam.BatchElements(
                min_batch_size=1, max_batch_size=REBATCH
            )
        together = (routed.rest, back) | f"Together{n}" >> beam.Flatten()
        return together, computed[DEAD_LETTER]
