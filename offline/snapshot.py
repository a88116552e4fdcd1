"""The backfill's snapshot of the unbounded features: per (view, entity), their summaries
over the events up to the snapshot's cut (`feature_store.core.snapshot`), written to the
snapshot table, then one row per view to the table of complete snapshots. A streaming job
warm-starts from it and the archive after the cut instead of reading all of history.

The summaries are folded with `CombinePerKey` (combined before the shuffle: one small
summary per key per bundle crosses it, not the events)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from common.beam_types import PColl, Transform
from common.bigquery_admin import bigquery_schema
from common.stages import FEATURE_HINTS, IO_HINTS, Stage
from common.transforms import KeyByViewEntity
from feature_store.core.plan import ViewPlan
from feature_store.core.running import Event, RunningWindows
from feature_store.core.snapshot import Base, combine_bases, snapshot_cut
from feature_store.events import from_micros
from feature_store.registry import Registry
from feature_store.schemas import SNAPSHOT_SHARDS, TableSpec
from offline.bigquery_sink import WriteToBigQueryClient
from offline.features import shard_of

log = logging.getLogger(__name__)
FOLD_EVERY = 1024  # events a summary buffers before folding them in


def snapshot_plans(plans: Sequence[ViewPlan]) -> list[ViewPlan]:
    """The views a snapshot serves: those with an unbounded feature, all in running form."""
    from feature_store.core.running import supported

    return [p for p in plans if supported(p) and any(f.window is None for f in p.features)]


@dataclass(frozen=True, kw_only=True)
class SnapshotOutput:
    """Where the backfill writes its snapshot: `rows` and `manifest` are the snapshot
    table and the table of complete snapshots; `end_us` the backfill's end."""

    snapshot_id: str
    rows: TableSpec
    manifest: TableSpec
    end_us: int
    project: str
    endpoint: str | None


class _FoldUnbounded(beam.CombineFn):
    """(view, event) → the view's base over the events; the accumulator is (view, base,
    events not folded yet)."""

    def __init__(self, plans: Sequence[ViewPlan]) -> None:
        self.plans = {p.view: p for p in plans}
        self._running: dict[str, RunningWindows] = {}

    def _windows(self, view: str) -> RunningWindows:
        if view not in self._running:
            self._running[view] = RunningWindows(self.plans[view])
        return self._running[view]

    def _fold(self, view: str, base: Base | None, events: list[Event]) -> Base:
        windows = self._windows(view)
        folded = windows.fold_base(events)
        if base is None:
            return folded
        return combine_bases([c.feature.kind for c in windows.unbounded], base, folded)

    def create_accumulator(self) -> tuple[str | None, Base | None, list[Event]]:
        return None, None, []

    def add_input(
        self, acc: tuple[str | None, Base | None, list[Event]], item: tuple[str, Event]
    ) -> tuple[str | None, Base | None, list[Event]]:
        view, event = item
        _, base, events = acc
        events.append(event)
        if len(events) >= FOLD_EVERY:
            return view, self._fold(view, base, events), []
        return view, base, events

    def merge_accumulators(
        self, accs: Iterable[tuple[str | None, Base | None, list[Event]]]
    ) -> tuple[str | None, Base | None, list[Event]]:
        view: str | None = None
        base: Base | None = None
        events: list[Event] = []
        for v, b, e in accs:
            view = view or v
            events.extend(e)
            if b is not None and v is not None:
                kinds = [c.feature.kind for c in self._windows(v).unbounded]
                base = b if base is None else combine_bases(kinds, base, b)
        return view, base, events

    def extract_output(self, acc: tuple[str | None, Base | None, list[Event]]) -> Base | None:
        view, base, events = acc
        return None if view is None else self._fold(view, base, events)


class _Events(beam.DoFn):
    """Lists of records → ((view, entity), (view, event)) for the events up to each view's cut."""

    def __init__(self, registry: Registry, plans: Sequence[ViewPlan], cuts: dict[str, int]) -> None:
        self.keyer = KeyByViewEntity(registry, plans)
        self.plans, self.cuts = {p.view: p for p in plans}, cuts

    def setup(self) -> None:
        self.windows = {v: RunningWindows(p) for v, p in self.plans.items()}

    def process(self, batch: Iterable[dict[str, Any]]) -> Iterator[Any]:
        for record in batch:
            for (view, key), slim in self.keyer.process(record):
                if slim["event_time"] <= self.cuts[view]:
                    yield (view, key), (view, self.windows[view].event_of(slim))


def _row(item: tuple[tuple[str, str], Base], snapshot_id: str) -> dict[str, Any]:
    (view, entity), base = item
    return {
        "snapshot_id": snapshot_id,
        "view": view,
        "entity": entity,
        "shard": shard_of(entity, SNAPSHOT_SHARDS),
        "base": json.dumps(base),
    }


def _manifest(
    written: int, out: SnapshotOutput, plans: Sequence[ViewPlan], cuts: dict[str, int]
) -> list[dict[str, Any]]:
    log.info("snapshot %s: %d keys of %s", out.snapshot_id, written, [p.view for p in plans])
    taken = datetime.now(UTC)
    return [
        {
            "snapshot_id": out.snapshot_id,
            "view": p.view,
            "cut": from_micros(cuts[p.view]),
            "valid_from": from_micros(out.end_us),
            "features": json.dumps([f.name for f in p.features if f.window is None]),
            "taken_at": taken,
        }
        for p in plans
    ]


class SnapshotUnbounded(Stage):
    """Lists of valid, de-duplicated records → the snapshot's rows, then its manifest."""

    RESOURCE_HINTS = FEATURE_HINTS

    def __init__(self, registry: Registry, plans: Sequence[ViewPlan], out: SnapshotOutput) -> None:
        super().__init__()
        self.registry, self.plans, self.out = registry, snapshot_plans(plans), out
        self.cuts = {p.view: snapshot_cut(p.longest, out.end_us) for p in self.plans}

    def expand(self, batches: PColl) -> beam.pvalue.PDone:
        out = self.out
        written = (
            batches
            | "UpToCut" >> beam.ParDo(_Events(self.registry, self.plans, self.cuts))
            | "Fold" >> beam.CombinePerKey(_FoldUnbounded(self.plans))
            | "Rows" >> beam.Map(_row, out.snapshot_id).with_resource_hints(**IO_HINTS)
            | "WriteRows" >> self._writer(out.rows)
        )
        _ = (
            written
            | "Manifest" >> beam.FlatMap(_manifest, out, self.plans, self.cuts)
            | "WriteManifest" >> self._writer(out.manifest)
        )
        return beam.pvalue.PDone(batches.pipeline)

    def _writer(self, spec: TableSpec) -> Transform:
        return WriteToBigQueryClient(
            f"{self.out.project}.{spec.dataset}.{spec.name}",
            bigquery_schema(spec),
            project=self.out.project,
            endpoint=self.out.endpoint,
        )
