"""The batch offline job's wiring and running: the pipeline itself is
`offline.pipeline.BackfillFeatures`; the online sink comes from `jobs.online_sink`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from common import vector_index
from common.archive_read import ArchiveFile, ReadArchiveTables, ReadEventFiles, discover
from common.beam_types import Transform
from common.counting import batch_reconciliation
from common.inference.settings import ModelSettings, skip_reason
from common.stages import expand_at_top_level
from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.events import to_micros
from feature_store.registry import Registry
from feature_store.schemas import (
    archive_table_ids,
    change_point_table,
    snapshot_table,
    snapshots_table,
)
from jobs.runner import make_pipeline
from jobs.watch import JobFailedError
from offline.pipeline import BackfillFeatures, OfflineOutput, OnlineOutput
from offline.snapshot import SnapshotOutput

log = logging.getLogger(__name__)

MESSAGE_BLOCK = 2_000  # messages per element from the readers to de-duplication


@dataclass
class BackfillSummary:
    lines: int = 0  # messages read (file lines, archive rows)
    events_read: int = 0
    invalid: int = 0
    duplicates: int = 0
    rejected: int = 0  # online rows a store refused (in the dead-letter file)
    model_refused: int = 0  # texts the models refused (in the dead-letter file)
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
            "model_refused": self.model_refused,
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
    registry: Registry, views: Sequence[str] | None, models: ModelSettings | None = None
) -> tuple[list[ViewPlan], dict[str, str]]:
    """Plans of the views this pipeline can compute with the models it runs (`models`,
    default: all of them); the others with the reason."""
    models = models or ModelSettings()
    plans, skipped = [], {}
    for view in registry.views:
        if views and view.name not in views:
            continue
        plan = ViewPlan.build(registry, view.name)
        reason = skip_reason(registry, plan, models)
        if reason is not None:
            skipped[view.name] = reason
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
    received: datetime | None = None,
    profile: str | None = None,
    models: ModelSettings | None = None,
) -> BackfillSummary:
    """`received`: when archived messages without a publish time, and event files, count
    as received (their event_time may not be later, plus the clock skew); default now.
    `models`: which models run and on which share of users (default: all, every review)."""
    begun = time.monotonic()
    started = datetime.now(UTC)
    as_of = min(end, started) if end else started
    models = models or ModelSettings()
    plans, skipped = plans_for(registry, views, models)
    files = discover(events, [s.topic for s in registry.sources]) if events else None
    run_id = uuid.uuid4().hex[:12]
    tables = {p.view: change_point_table(registry, p.view, config.features_dataset) for p in plans}
    dead_path = dead_letters or str(config.state_dir / "dead_letters" / f"backfill-{run_id}")
    pipeline = make_pipeline(pipeline_args)
    sink = None
    if online:
        from jobs.online_sink import online_sink

        sink = online_sink(config)
    wire_backfill(
        pipeline,
        config,
        registry,
        files,
        plans,
        tables,
        (start, as_of),
        sink,
        dead_path,
        bigquery_sink,
        to_micros(received or started),
        models,
    )
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as err:  # one line for the user; the cause stays chained
        msg = f"the backfill failed: {type(err).__name__}: {' '.join(str(err).split())}"
        raise JobFailedError(msg) from err
    if profile:  # per-stage profile for `feature-store cost-plan`
        from common.profile import write_profile

        write_profile(profile, "batch", pipeline, result)
    summary = _summary(result, skipped)
    summary.as_of = as_of
    refused = summary.invalid or summary.rejected or summary.model_refused
    summary.dead_letters = dead_path if refused else None
    summary.elapsed_s = time.monotonic() - begun
    return summary


def wire_backfill(
    pipeline: beam.Pipeline,
    config: PlatformConfig,
    registry: Registry,
    files: Sequence[ArchiveFile] | None,
    plans: list[ViewPlan],
    tables: dict[str, Any],
    span: tuple[datetime | None, datetime],
    online: Transform | None,
    dead_path: str,
    bigquery_sink: str,
    received_us: int | None = None,
    models: ModelSettings | None = None,
) -> None:
    """Wires the backfill into `pipeline`: events from `files`, or from the platform's raw
    archive (what the stream and `import` wrote) when None; `online` is the online sink."""
    from online.from_rows import to_online_rows

    start, as_of = span
    as_of_us = to_micros(as_of)
    reader: Transform
    if files is not None:
        reader = ReadEventFiles(files, block_lines=MESSAGE_BLOCK)
    else:
        reader = ReadArchiveTables(
            config.project,
            config.bigquery_endpoint,
            archive_table_ids(config, registry),
            until_us=as_of_us,
            block_rows=MESSAGE_BLOCK,
        )
    rejected = None
    if online is not None:
        from online.rejected import RejectedToDeadLetters

        rejected = RejectedToDeadLetters({p.view: p.source for p in plans})
    job = BackfillFeatures(
        reader=reader,
        registry=registry,
        plans=plans,
        span_us=(to_micros(start) if start else None, as_of_us),
        dead_letters=dead_path,
        offline=OfflineOutput(
            tables=tables,
            computed_at_us=to_micros(datetime.now(UTC)),
            project=config.project,
            endpoint=config.bigquery_endpoint,
            replace=(start, as_of) if start else None,
            sink=bigquery_sink,
        ),
        online=None
        if online is None
        else OnlineOutput(to_rows=to_online_rows(plans), sink=online, rejected=rejected),
        received_us=received_us,
        clock_skew_s=config.clock_skew_s,
        models=models or ModelSettings(),
        vector_index=vector_index.settings_for(config),
        artifacts=config.artifacts_root,
        local_runner=config.local,
        snapshot=_snapshot_output(config, as_of_us) if files is None and start is None else None,
    )
    expand_at_top_level(pipeline, job)


def _snapshot_output(config: PlatformConfig, end_us: int) -> SnapshotOutput:
    """The unbounded features' snapshot: only a backfill of the whole archive takes one
    (one of files, or of a time range, did not see what the stream's archive holds)."""
    return SnapshotOutput(
        snapshot_id=uuid.uuid4().hex[:16],
        rows=snapshot_table(config.features_dataset),
        manifest=snapshots_table(config.features_dataset),
        end_us=end_us,
        project=config.project,
        endpoint=config.bigquery_endpoint,
    )


def _summary(result: Any, skipped: dict[str, str]) -> BackfillSummary:
    summary = BackfillSummary(skipped_views=skipped)
    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    valid = counters.get("events_valid", 0)
    summary.invalid = counters.get("events_invalid", 0)
    summary.events_read = valid + summary.invalid
    summary.duplicates = counters.get("events_duplicate", 0)
    summary.lines = counters.get("lines_read", 0)
    summary.rejected = counters.get("rows_rejected", 0)
    summary.model_refused = counters.get("model_dead_letters", 0)
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
