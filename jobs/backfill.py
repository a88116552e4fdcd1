"""The batch offline job's wiring and running: the pipeline itself is
`offline.pipeline.BackfillFeatures`; the online sink comes from `jobs.online_sink`."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from google.api_core.retry import Retry

from common import vector_index
from common.archive_read import ArchiveFile, ReadArchiveTables, ReadEventFiles, discover
from common.beam_types import Transform
from common.counting import batch_reconciliation
from common.inference.settings import ModelSettings, model_fields, skip_reason
from common.stages import expand_at_top_level
from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.errors import ConfigError
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
TWO_WORKERS_FROM_EVENTS = 1_000_000
"""From about this many input events, a backfill on the local runner (no `--runner`,
no `--direct_num_workers` of the caller's) runs on two worker processes when the machine
has two cores or more: measured on a 2-core machine, 13% less wall time at a million
events and 18% less at two million, for about 50% more CPU (the runner feeds its workers
over gRPC); at 200,000 events one worker was faster (bench/notes/backfill.md)."""
TWO_WORKERS = ("--direct_num_workers=2", "--direct_running_mode=multi_processing")
SIZE_TIMEOUT_S = 30.0  # the archive tables' row counts, asked once each
NO_RETRY = Retry(predicate=lambda _exc: False)
BYTES_PER_EVENT = {"jsonl": 250, "jsonl.gz": 50}
"""An input file's events, estimated from its size (the simulator's events: 252 bytes a
JSON line, about a fifth of that gzipped); Parquet files give their row counts."""


@dataclass
class BackfillSummary:
    lines: int = 0  # messages read (file lines, archive rows)
    local_workers: int | None = None  # worker processes of the local runner, when it ran
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
            "local_workers": self.local_workers,
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
    folder_index = folder_index_of(config, registry, plans)
    workers, worker_args = local_workers(config, registry, files, pipeline_args, folder_index)
    pipeline = make_pipeline([*pipeline_args, *worker_args])
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
    summary.local_workers = workers
    refused = summary.invalid or summary.rejected or summary.model_refused
    summary.dead_letters = dead_path if refused else None
    summary.elapsed_s = time.monotonic() - begun
    return summary


def local_workers(
    config: PlatformConfig,
    registry: Registry,
    files: Sequence[ArchiveFile] | None,
    pipeline_args: Sequence[str],
    folder_index: str | None = None,
) -> tuple[int | None, tuple[str, ...]]:
    """How many worker processes the local runner gets, and the Beam arguments that ask
    for them: two from `TWO_WORKERS_FROM_EVENTS` input events on a machine with two
    cores or more, else one; (None, ()) on another runner. The caller's own
    `--direct_num_workers` / `--direct_running_mode` are kept as given.

    `folder_index`: the embedded vector index's folder when the job writes one. One
    process at a time can open it (Qdrant's local mode locks it), so the job then runs
    one worker, and a caller's request for more is refused before anything runs."""
    options = PipelineOptions(list(pipeline_args))
    if options.view_as(StandardOptions).runner:
        return None, ()
    if any(a.startswith(("--direct_num_workers", "--direct_running_mode")) for a in pipeline_args):
        asked = options.view_as(DirectOptions).direct_num_workers or 1
        if asked > 1 and folder_index is not None:
            msg = (
                f"--direct_num_workers={asked}: the vector index is a local folder "
                f"({folder_index}) that one process at a time can open; run one worker, "
                "or point the platform at a Qdrant server (FEATURE_STORE_QDRANT_URL)"
            )
            raise ConfigError(msg)
        return asked, ()
    if (os.cpu_count() or 1) < 2 or folder_index is not None:
        return 1, ()
    events = input_events(config, registry, files)
    if events is None or events < TWO_WORKERS_FROM_EVENTS:
        return 1, ()
    log.info("about %d input events: the local runner runs two worker processes", events)
    return 2, TWO_WORKERS


def folder_index_of(
    config: PlatformConfig, registry: Registry, plans: list[ViewPlan]
) -> str | None:
    """The embedded vector index's folder, when this backfill writes it (a model view
    runs and the platform has no index server)."""
    index = vector_index.settings_for(config)
    if index is None or index.path is None:
        return None
    return index.path if any(model_fields(registry, p) for p in plans) else None


def input_events(
    config: PlatformConfig, registry: Registry, files: Sequence[ArchiveFile] | None
) -> int | None:
    """About how many messages the backfill reads: the archive tables' row counts
    (all of them, whatever the backfill's time range), or
    each file's rows (Parquet) or size over `BYTES_PER_EVENT` (JSON lines); None when
    it cannot tell (then the backfill runs as for a small input)."""
    try:
        if files is None:
            from common.bigquery_client import make_client

            client = make_client(config.project, config.bigquery_endpoint)
            total = 0
            for table in archive_table_ids(config, registry).values():
                # COUNT(*), not the table's numRows: that leaves out rows still in the
                # streaming buffer (and the emulator's counts only some writes);
                # at once or not at all: no retries, a short timeout
                job = client.query(
                    f"SELECT COUNT(*) FROM `{table}`",
                    retry=NO_RETRY,
                    job_retry=None,
                    timeout=SIZE_TIMEOUT_S,
                )
                total += next(iter(job.result(timeout=SIZE_TIMEOUT_S, retry=NO_RETRY)))[0]
            return total
        total = 0
        for file in files:
            for meta in FileSystems.match([file.pattern])[0].metadata_list:
                if file.kind == "parquet":
                    with FileSystems.open(meta.path) as handle:
                        total += pq.ParquetFile(handle).metadata.num_rows
                else:
                    packed = "jsonl.gz" if meta.path.endswith(".gz") else "jsonl"
                    total += meta.size_in_bytes // BYTES_PER_EVENT[packed]
        return total
    except Exception as exc:  # an estimate only: the backfill itself reports real errors
        log.info("input size unknown (%s: %s): one local worker", type(exc).__name__, exc)
        return None


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
