"""The batch offline job: wire the backfill transforms, run them, swap results in."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from common.counting import CountElements, batch_reconciliation
from feature_store.config import PlatformConfig
from feature_store.events import to_micros
from feature_store.plan import ViewPlan
from feature_store.registry import Registry
from feature_store.schemas import change_point_table
from feature_store.transforms import DEAD_LETTER, ValidateEvents
from feature_store.windowing import RowBatch
from jobs.runner import make_pipeline
from offline.archive import ReadEventFiles, discover
from offline.backfill import WriteOffline
from offline.features import ComputeChangePoints, DeduplicateEvents, latest_row

log = logging.getLogger(__name__)

# Per-stage resources (Dataflow Prime right-fits each stage's workers to its hints).
IO_HINTS = {"min_ram": "4GB"}
FEATURE_HINTS = {"min_ram": "32GB"}


@dataclass
class BackfillSummary:
    lines: int = 0  # messages read (file lines, archive rows)
    events_read: int = 0
    invalid: int = 0
    duplicates: int = 0
    rejected: int = 0  # online rows a store refused (in the dead-letter file)
    change_points: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)
    online_rows: dict[str, int] = field(default_factory=dict)
    skipped_views: dict[str, str] = field(default_factory=dict)
    dead_letters: str | None = None
    elapsed_s: float = 0.0
    as_of: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def events_per_s(self) -> float:
        return self.events_read / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def reconciliation(self) -> dict[str, Any]:
        """`lines = valid + invalid + duplicates`."""
        return batch_reconciliation(
            {
                "lines_read": self.lines,
                "events_valid": self.events_read - self.invalid,
                "events_invalid": self.invalid,
                "events_duplicate": self.duplicates,
                "rows_rejected": self.rejected,
            }
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "reconciliation": self.reconciliation,
            "events_read": self.events_read,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "change_points": self.change_points,
            "rows_written": self.rows_written,
            "online_rows": self.online_rows,
            "skipped_views": self.skipped_views,
            "dead_letters": self.dead_letters,
            "as_of": self.as_of.isoformat(),
            "elapsed_s": round(self.elapsed_s, 2),
            "events_per_s": round(self.events_per_s),
        }


def plans_for(
    registry: Registry, views: Sequence[str] | None
) -> tuple[list[ViewPlan], dict[str, str]]:
    """Plans of the views this pipeline can compute; the others with the reason."""
    plans, skipped = [], {}
    for view in registry.views:
        if views and view.name not in views:
            continue
        plan = ViewPlan.build(registry, view.name)
        if plan.models:
            skipped[view.name] = f"needs the inference stage (models: {', '.join(plan.models)})"
            continue
        plans.append(plan)
    return plans, skipped


def run_backfill(
    config: PlatformConfig,
    registry: Registry,
    events: Sequence[str],
    *,
    views: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    online: bool = True,
    dead_letters: str | None = None,
    bigquery_sink: str = "client",
    pipeline_args: Sequence[str] = (),
) -> BackfillSummary:
    begun = time.monotonic()
    as_of = min(end, datetime.now(UTC)) if end else datetime.now(UTC)
    plans, skipped = plans_for(registry, views)
    files = discover(events, [s.topic for s in registry.sources]) if events else None
    run_id = uuid.uuid4().hex[:12]
    tables = {p.view: change_point_table(registry, p.view, config.features_dataset) for p in plans}
    dead_path = dead_letters or str(config.state_dir / "dead_letters" / f"backfill-{run_id}")
    pipeline = make_pipeline(pipeline_args)
    _wire(
        pipeline,
        config,
        registry,
        files,
        plans,
        tables,
        (start, as_of),
        online,
        dead_path,
        bigquery_sink,
    )
    result = pipeline.run()
    result.wait_until_finish()
    summary = _summary(result, skipped)
    summary.as_of = as_of
    summary.dead_letters = dead_path if summary.invalid or summary.rejected else None
    summary.elapsed_s = time.monotonic() - begun
    return summary


def _wire(
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    files: Any,
    plans: list[ViewPlan],
    tables: dict[str, Any],
    span: tuple[datetime | None, datetime],
    online: bool,
    dead_path: str,
    bigquery_sink: str,
) -> None:
    import json

    start, as_of = span
    start_us = to_micros(start) if start else None
    as_of_us = to_micros(as_of)
    if files is not None:
        reader: beam.PTransform = ReadEventFiles(files)
    else:  # the platform's raw archive (what the stream and `import` wrote)
        from feature_store.schemas import archive_table_ids
        from offline.archive import ReadArchiveTables

        reader = ReadArchiveTables(
            config.project,
            config.endpoints.bigquery if config.local else None,
            archive_table_ids(config, registry),
            until_us=as_of_us,
        )
    messages = (
        pipeline
        | "ReadArchive" >> reader.with_resource_hints(**IO_HINTS)
        | "CountLines" >> CountElements("backfill", "lines_read")
    )
    checked = messages | "ValidateEvents" >> ValidateEvents("backfill")
    dead_letters = [checked[DEAD_LETTER]]
    rows = (
        checked.valid
        | "Deduplicate" >> DeduplicateEvents()
        | "ToFeatureStage" >> beam.Reshuffle()
        | "EngineerFeatures"
        >> ComputeChangePoints(registry, plans, start_us, as_of_us).with_resource_hints(
            **FEATURE_HINTS
        )
        | "ToOutputStage" >> beam.Reshuffle()
    )
    endpoint = config.endpoints.bigquery if config.local else None
    replace = (start, as_of) if start else None
    _ = rows | "WriteOffline" >> WriteOffline(
        plans,
        tables,
        to_micros(datetime.now(UTC)),
        config.project,
        endpoint,
        replace,
        bigquery_sink,
    ).with_resource_hints(**IO_HINTS)
    if online:
        from jobs.online_sink import online_sink
        from online.rejected import RejectedToDeadLetters

        by_view = {p.view: p for p in plans}
        rejected = (
            rows
            | "LatestRows" >> beam.Map(latest_row)
            | "ToOnlineRows" >> beam.FlatMap(_online_rows, by_view)
            | "WriteOnline" >> online_sink(config).with_resource_hints(**IO_HINTS)
        )
        dead_letters.append(
            rejected | "RejectedRows" >> RejectedToDeadLetters({p.view: p.source for p in plans})
        )
    (
        tuple(dead_letters)
        | "AllDeadLetters" >> beam.Flatten()
        | "DeadLetterJson" >> beam.Map(lambda d: json.dumps(d.to_json(), sort_keys=True))
        | "WriteDeadLetters" >> beam.io.WriteToText(dead_path, file_name_suffix=".jsonl")
    )


def _online_rows(batch: RowBatch, plans: dict[str, ViewPlan]) -> list[Any]:
    from online.from_rows import online_rows

    return online_rows(plans[batch.view], batch)


def _summary(result: Any, skipped: dict[str, str]) -> BackfillSummary:
    summary = BackfillSummary(skipped_views=skipped)
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    valid = counters.get("events_valid", 0)
    summary.invalid = counters.get("events_invalid", 0)
    summary.events_read = valid + summary.invalid
    summary.duplicates = counters.get("events_duplicate", 0)
    summary.lines = counters.get("lines_read", 0)
    summary.rejected = counters.get("rows_rejected", 0)
    summary.change_points = counters.get("change_points", 0)
    summary.rows_written = {
        k.removeprefix("offline_rows_"): v
        for k, v in counters.items()
        if k.startswith("offline_rows_")
    }
    summary.online_rows = {
        k.removeprefix("rows_written_"): v
        for k, v in counters.items()
        if k.startswith("rows_written_")
    }
    return summary
