"""The batch feature stage: validated, de-duplicated events → change-point rows per view.

Messages are validated with the event contract (invalid ones leave through a
dead-letter output), de-duplicated by `event_id`, keyed by (view, entity), grouped, and
each group runs the same aggregation core as the streaming job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from feature_store.derive import add_derived
from feature_store.events import DeadLetter, validate
from feature_store.plan import ViewPlan
from feature_store.registry import Registry
from feature_store.windowing import RowBatch, compute_rows

log = logging.getLogger(__name__)
DEAD_LETTER = "dead_letter"


class _Validate(beam.DoFn):  # type: ignore[misc]
    def __init__(self) -> None:
        self.valid = Metrics.counter("backfill", "events_valid")
        self.invalid = Metrics.counter("backfill", "events_invalid")

    def process(self, message: tuple[str, bytes, Mapping[str, str]]) -> Iterator[Any]:
        topic, raw, attributes = message
        result = validate(topic, raw, attributes)
        if isinstance(result, DeadLetter):
            self.invalid.inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, result)
            return
        self.valid.inc()
        record = result.record()
        record["topic"] = topic
        yield record


class ValidateEvents(beam.PTransform):  # type: ignore[misc]
    """Records of valid events (main output) and `DeadLetter`s (tag `dead_letter`)."""

    def expand(self, messages: beam.PCollection) -> pvalue.DoOutputsTuple:
        return messages | "Validate" >> beam.ParDo(_Validate()).with_outputs(
            DEAD_LETTER, main="valid"
        )


class _FirstByContent(beam.CombineFn):  # type: ignore[misc]
    """Keeps one copy of an event_id deterministically and counts the others."""

    def create_accumulator(self) -> tuple[int, Any]:
        return (0, None)

    def add_input(self, acc: tuple[int, Any], record: dict[str, Any]) -> tuple[int, Any]:
        return self.merge_accumulators([acc, (1, record)])

    def merge_accumulators(self, accs: Iterable[tuple[int, Any]]) -> tuple[int, Any]:
        total, best = 0, None
        for n, record in accs:
            total += n
            if record is not None and (best is None or _order(record) < _order(best)):
                best = record
        return (total, best)

    def extract_output(self, acc: tuple[int, Any]) -> tuple[int, Any]:
        return acc


def _order(record: Mapping[str, Any]) -> tuple[int, str]:
    return (int(record["event_time"]), repr(sorted(record.items(), key=lambda kv: kv[0])))


class _CountDuplicates(beam.DoFn):  # type: ignore[misc]
    def __init__(self) -> None:
        self.duplicates = Metrics.counter("backfill", "events_duplicate")

    def process(self, item: tuple[str, tuple[int, Any]]) -> Iterator[Any]:
        copies, record = item[1]
        if copies > 1:
            self.duplicates.inc(copies - 1)
        yield record


class DeduplicateEvents(beam.PTransform):  # type: ignore[misc]
    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "KeyByEventId" >> beam.Map(lambda r: ((r["topic"], r["event_id"]), r))
            | "OnePerEventId" >> beam.CombinePerKey(_FirstByContent())
            | "CountDuplicates" >> beam.ParDo(_CountDuplicates())
        )


class _KeyByViewEntity(beam.DoFn):  # type: ignore[misc]
    """One slim record per view of the event's source that the event can affect."""

    def __init__(self, registry: Registry, plans: Sequence[ViewPlan], end: int | None) -> None:
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
            slim.update({f.name: record.get(f.name) for f in plan.fields})
            yield (plan.view, str(key)), slim


class _ComputeRows(beam.DoFn):  # type: ignore[misc]
    def __init__(self, plans: Sequence[ViewPlan], start: int | None, end: int | None) -> None:
        self.plans = {p.view: p for p in plans}
        self.start, self.end = start, end
        self.rows = Metrics.counter("backfill", "change_points")

    def process(self, item: tuple[tuple[str, str], Iterable[dict[str, Any]]]) -> Iterator[RowBatch]:
        (view, key), records = item
        batch = compute_rows(self.plans[view], key, records, self.start, self.end)
        if len(batch):
            self.rows.inc(len(batch))
            yield batch


class ComputeChangePoints(beam.PTransform):  # type: ignore[misc]
    """Valid, de-duplicated records → one `RowBatch` per (view, entity)."""

    def __init__(
        self,
        registry: Registry,
        plans: Sequence[ViewPlan],
        start: int | None = None,
        end: int | None = None,
    ) -> None:
        super().__init__()
        self.registry, self.plans, self.start, self.end = registry, list(plans), start, end

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "KeyByViewAndEntity"
            >> beam.ParDo(_KeyByViewEntity(self.registry, self.plans, self.end))
            | "GroupByEntity" >> beam.GroupByKey()
            | "ChangePoints" >> beam.ParDo(_ComputeRows(self.plans, self.start, self.end))
        )


def latest_row(batch: RowBatch) -> RowBatch:
    """The newest change point of an entity: what the online store must hold."""
    last = len(batch) - 1
    return RowBatch(
        batch.view,
        batch.entity_key,
        batch.valid_from[last:],
        {name: col[last:] for name, col in batch.values.items()},
    )
