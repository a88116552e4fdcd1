"""Beam transforms both jobs share (no I/O): validation with a dead-letter output, and
keying events by (view, entity) for the aggregation core.

Sharing them is what makes the twin jobs compute the same thing from the same events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from feature_store.derive import add_derived
from feature_store.events import DeadLetter, validate
from feature_store.plan import ViewPlan
from feature_store.registry import Registry

DEAD_LETTER = "dead_letter"
Message = tuple[str, bytes, Mapping[str, str]] | tuple[str, bytes, Mapping[str, str], int | None]


class _Validate(beam.DoFn):  # type: ignore[misc]
    def __init__(self, namespace: str) -> None:
        self.valid = Metrics.counter(namespace, "events_valid")
        self.invalid = Metrics.counter(namespace, "events_invalid")

    def process(self, message: Message) -> Iterator[Any]:
        topic, raw, attributes = message[0], message[1], message[2]
        result = validate(topic, raw, attributes)
        if isinstance(result, DeadLetter):
            self.invalid.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, result)
            return
        self.valid.inc()
        record = result.record()
        record["topic"] = topic
        if len(message) > 3:
            record["publish_us"] = message[3]  # type: ignore[misc]
        yield record


class ValidateEvents(beam.PTransform):  # type: ignore[misc]
    """(topic, raw, attributes[, publish µs]) → records (main) and `DeadLetter`s."""

    def __init__(self, namespace: str = "events") -> None:
        super().__init__()
        self.namespace = namespace

    def expand(self, messages: beam.PCollection) -> pvalue.DoOutputsTuple:
        return messages | "Validate" >> beam.ParDo(_Validate(self.namespace)).with_outputs(
            DEAD_LETTER, main="valid")


class KeyByViewEntity(beam.DoFn):  # type: ignore[misc]
    """One slim record per view of the event's source that the event can affect, keyed
    by (view, entity key); built-in derived fields (e.g. text length) are added here."""

    def __init__(self, registry: Registry, plans: Sequence[ViewPlan],
                 end: int | None = None) -> None:
        self.plans = list(plans)
        self.derived = {s.name: registry.derived_fields(s.name) for s in registry.sources}
        self.end = end

    def process(self, record: dict[str, Any]) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
        if self.end is not None and record["event_time"] > self.end:
            return
        add_derived(record, self.derived.get(record["topic"], ()))
        for plan in self.plans:
            if plan.source != record["topic"]:
                continue
            if plan.where is not None and record.get(plan.where.field) not in plan.where.values:
                continue
            key = record.get(plan.join_key)
            if key is None:
                continue
            slim = {"event_id": record["event_id"], "event_time": record["event_time"]}
            if record.get("publish_us") is not None:
                slim["publish_us"] = record["publish_us"]
            slim.update({f.name: record.get(f.name) for f in plan.fields})
            yield (plan.view, str(key)), slim
