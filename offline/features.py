"""The batch feature stage: validated events → de-duplicated → change-point rows per view.

Events are de-duplicated by `event_id`, keyed by (view, entity), grouped, and each group
runs the same aggregation core as the streaming job.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from feature_store.plan import ViewPlan
from feature_store.registry import Registry
from feature_store.transforms import KeyByViewEntity
from feature_store.windowing import RowBatch, compute_rows

log = logging.getLogger(__name__)


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
            >> beam.ParDo(KeyByViewEntity(self.registry, self.plans, self.end))
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
