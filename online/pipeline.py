"""The streaming job as one composite transform: its `expand()` is the README's picture.

Pub/Sub → count of messages received → validation (dead letters to `<topic>-dlq`, with
archived records now invalid, texts the models refused and online rows a store refused) →
raw archive; de-duplication → the model stage (live and warm-start reviews that model
views read get sentiment and embeddings) → keying by (view, entity) → exact windows,
warm-started from the archive (late events to `<topic>-late`) → online stores. Each stage
owns its resource hints (`common.stages`), so a new stage (inference, a kernel) is one
line here.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.pvalue import PBegin

from common import vector_index
from common.archive import ARCHIVE
from common.beam_types import PColl, Transform
from common.counting import CountElements
from common.inference.settings import ModelSettings, model_fields
from common.projections import ApplyProjections, used_projections
from common.snapshot_read import ReadSnapshot, SnapshotInfo, latest_snapshots
from common.stages import DEDUP_HINTS, HISTORY_HINTS, IO_HINTS, VALIDATION_HINTS
from common.transforms import DEAD_LETTER, KeyByViewEntity, ValidateEvents
from common.vector_index import WriteVectorIndex
from common.vectors import EvaluateVectorFeatures
from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.core.running import supported
from feature_store.core.windows import NEVER
from feature_store.registry import Registry
from feature_store.schemas import SNAPSHOT_TABLE, SNAPSHOTS_TABLE, archive_table, archive_table_ids
from online.from_rows import to_online_rows
from online.pubsub_io import PublishPerTopic, ReadEvents
from online.rejected import RejectedToDeadLetters
from online.stateful import LATE, AggregateWindows, DeduplicateByEventId, as_batch

US = 1_000_000
CLOCK_S = 2.0  # the exact-windows step proves the watermark it reached this often
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    allowed_lateness_s: float = 300.0
    dedup_ttl_s: int = 24 * 3600
    views: tuple[str, ...] = ()
    archive: bool = True  # write every valid message to the raw archive
    warm_start: bool = True  # seed the state from the archive before live events
    models: ModelSettings = field(default_factory=ModelSettings)  # which run, on whom
    vector_index: bool = True  # write the reviews' embeddings to the platform's index
    vector_accelerator: bool = False  # the vector features' kernels ask for a GPU


def history_horizon_us(plans: Sequence[ViewPlan], started_us: int, lateness_s: float) -> int | None:
    """How far back the warm start reads: the longest window and the lateness, or all
    of the archive when a view has an unbounded feature."""
    if any(f.window is None for p in plans for f in p.features):
        return None
    return started_us - max(p.longest for p in plans) - int(lateness_s * US)


@dataclass(frozen=True, kw_only=True)
class WarmStart:
    """What a warm start reads: the archive's events after `since_us` (None: all of it)
    and, per view with an unbounded feature, the snapshot (id, cut) its state starts from;
    that view's events up to the cut are in the snapshot, not read again."""

    since_us: int | None
    snapshots: dict[str, tuple[str, int]] = field(default_factory=dict)
    reason: str = ""


def plan_warm_start(
    plans: Sequence[ViewPlan],
    started_us: int,
    lateness_s: float,
    found: Mapping[str, SnapshotInfo],
) -> WarmStart:
    """The bounded windows need the events after `started - longest - lateness`; a view's
    unbounded features need its snapshot and the events after its cut. A snapshot serves
    when its cut is before what the view's windows need (so no event counts twice) and it
    folds the view's current unbounded features; else all of the archive is read."""
    lateness = int(lateness_s * US)
    since = started_us - max((p.longest for p in plans), default=0) - lateness
    chosen: dict[str, tuple[str, int]] = {}
    for plan in plans:
        unbounded = tuple(f.name for f in plan.features if f.window is None)
        if not unbounded:
            continue
        info, why = found.get(plan.view), None
        if not supported(plan):
            why = "it has no running form"
        elif info is None:
            why = "no snapshot of it (never backfilled from the archive)"
        elif info.features != unbounded:
            why = f"its snapshot folds {list(info.features)}, the view has {list(unbounded)}"
        elif info.cut_us > started_us - plan.longest - lateness:
            why = f"its snapshot's cut {info.cut_us} µs is inside its windows"
        if info is None or why is not None:
            return WarmStart(since_us=None, reason=f"view {plan.view!r}: {why}")
        chosen[plan.view] = (info.snapshot_id, info.cut_us)
    since = min([since] + [cut for _, cut in chosen.values()])
    return WarmStart(since_us=since, snapshots=chosen)


class StreamFeatures(Transform):
    """The streaming job, from Pub/Sub to the online `sink` (given by the job's wiring)."""

    def __init__(
        self,
        *,
        config: PlatformConfig,
        registry: Registry,
        plans: Sequence[ViewPlan],
        settings: StreamSettings,
        sink: Transform,
        started_us: int,
    ) -> None:
        super().__init__()
        self.config, self.registry, self.plans = config, registry, list(plans)
        self.settings, self.sink, self.started_us = settings, sink, started_us
        self.topics = [s.topic for s in registry.sources]

    def expand(self, begin: PBegin) -> None:
        config, settings, prefix = self.config, self.settings, self.config.topic_prefix
        checked = (
            begin
            | "ReadEvents" >> ReadEvents(config.project, self.topics, prefix)
            | "CountReceived"
            >> CountElements("stream", "events_received").with_resource_hints(**IO_HINTS)
            | "ValidateEvents"
            >> ValidateEvents(
                "stream",
                self.registry,
                archive=settings.archive,
                clock_skew_s=config.clock_skew_s,
            )
        )
        dead_letters = [checked[DEAD_LETTER]]
        if settings.archive:
            _ = checked[ARCHIVE] | "ArchiveEvents" >> self._write_archive()
        records = [checked.valid | "Deduplicate" >> DeduplicateByEventId(settings.dedup_ttl_s)]
        if settings.warm_start:
            self.warm = self._plan_warm_start()
            history_records, history_dead = self._read_history(begin)
            records.append(history_records)
            dead_letters.append(history_dead)
        if any(model_fields(self.registry, p) for p in self.plans):
            from common.inference.enrich import ModelFeatures

            enriched, refused = tuple(records) | "ModelFeatures" >> ModelFeatures(
                self.registry, self.plans, settings.models, local=config.local
            )
            records = list(enriched)
            dead_letters.append(refused)
            index = vector_index.settings_for(config) if settings.vector_index else None
            if index is not None:  # live reviews only: the history's are in the index already
                _ = records[0] | "IndexVectors" >> WriteVectorIndex(index).with_resource_hints(
                    **IO_HINTS
                )
        fields = used_projections(self.registry, self.plans)
        if fields:  # declared projections (of model outputs): the latest the backfill saved
            records[0] = records[0] | "ApplyProjections" >> ApplyProjections(
                fields, config.artifacts_root
            )
        batches = (
            records[0]
            # keyed and batched on the de-duplication stage's workers
            | "KeyByViewAndEntity"
            >> beam.ParDo(KeyByViewEntity(self.registry, self.plans)).with_resource_hints(
                **DEDUP_HINTS
            )
            | "AsBatches" >> beam.Map(as_batch).with_resource_hints(**DEDUP_HINTS)
        )
        if settings.warm_start:
            history = self._group_history(records[1])
            batches = (batches, history) | "WithHistory" >> beam.Flatten()
        windows = batches | "EngineerFeatures" >> AggregateWindows(
            self.plans, settings.allowed_lateness_s, self.started_us, clock_s=CLOCK_S
        )
        _ = windows[LATE] | "LateEvents" >> PublishPerTopic(
            config.project, self.topics, "late", prefix
        )
        # No Reshuffle before the writer: it must see each key's rows in the order the
        # stateful step emitted them. A row that corrects an earlier one (a late-but-allowed
        # event, history arriving after live events) can carry the same valid_from, and
        # newer-wins cannot tell those apart; fused, they are written in order.
        # The vector features' kernels run in their own stage (`VectorFeatures`), on rows
        # of many keys at once: the stateful step finds their change points exactly and
        # hands over the window's vectors (`feature_store.core.pending`). Its hints differ
        # from its neighbours', so it is not fused with them; what the writers take from
        # each batch, its newest row, is labelled after every row the key handed out
        # before (corrections included), so newer-wins keeps the newest in any order.
        rejected = (
            windows.rows
            | "VectorFeatures"
            >> EvaluateVectorFeatures("stream", accelerator=settings.vector_accelerator)
            | "ToOnlineRows" >> to_online_rows(self.plans)
            | "WriteOnline" >> self.sink
        )
        dead_letters.append(
            rejected
            | "RejectedRows"
            >> RejectedToDeadLetters({p.view: p.source for p in self.plans}).with_resource_hints(
                **IO_HINTS
            )
        )
        _ = (
            tuple(dead_letters)
            | "AllDeadLetters" >> beam.Flatten()
            | "DeadLetters" >> PublishPerTopic(config.project, self.topics, "dlq", prefix)
        )

    def _write_archive(self) -> Transform:
        from common.archive_write import WriteArchive
        from common.bigquery_admin import bigquery_schema
        from common.bigquery_client import cached_client

        config = self.config
        schemas = {
            s.topic: bigquery_schema(archive_table(s, config.archive_dataset))
            for s in self.registry.sources
        }
        factory = functools.partial(cached_client, config.project, config.bigquery_endpoint)
        return WriteArchive(factory, archive_table_ids(config, self.registry), schemas)

    def _read_history(self, begin: PBegin) -> tuple[PColl, PColl]:
        """The archive's valid events since the horizon, and the archived records the
        contract now refuses (dead letters like live ones)."""
        from common.archive_read import ReadArchiveTables

        config, since = self.config, self.warm.since_us
        tables = archive_table_ids(config, self.registry)
        records = (
            begin
            | "ReadHistory"
            >> ReadArchiveTables(
                config.project,
                config.bigquery_endpoint,
                tables,
                since_us=since,
                now_us=self.started_us if since is not None else None,
            )
            | "ValidateHistory"
            >> ValidateEvents(
                "stream", self.registry, history=True, clock_skew_s=config.clock_skew_s
            )
        )
        return records.valid, records[DEAD_LETTER]

    def _plan_warm_start(self) -> WarmStart:
        """Which snapshot each view with an unbounded feature starts from (the newest
        complete one), and how much of the archive is read; logged."""
        config, settings = self.config, self.settings
        unbounded = [p.view for p in self.plans if any(f.window is None for f in p.features)]
        found = (
            latest_snapshots(
                config.project,
                config.bigquery_endpoint,
                f"{config.project}.{config.features_dataset}.{SNAPSHOTS_TABLE}",
                unbounded,
            )
            if unbounded
            else {}
        )
        warm = plan_warm_start(self.plans, self.started_us, settings.allowed_lateness_s, found)
        if warm.since_us is None:
            log.warning("warm start reads ALL of the archive: %s", warm.reason)
        else:
            log.info(
                "warm start reads the archive after %d µs in day splits, snapshots %s",
                warm.since_us,
                warm.snapshots or "none needed",
            )
        return warm

    def _group_history(self, records: PColl) -> PColl:
        """The warm start's events grouped per (view, entity)."""
        fields = used_projections(self.registry, self.plans)
        if fields:
            records = records | "ProjectHistory" >> ApplyProjections(
                fields, self.config.artifacts_root
            )
        keyed = records | "KeyHistory" >> beam.ParDo(
            KeyByViewEntity(self.registry, self.plans)
        ).with_resource_hints(**VALIDATION_HINTS)
        cuts = {view: cut for view, (_, cut) in self.warm.snapshots.items()}
        if cuts:
            config = self.config
            keyed = (
                keyed
                # a view's events up to its snapshot's cut are in the snapshot
                | "AfterSnapshots"
                >> beam.Filter(lambda item: item[1]["event_time"] > cuts.get(item[0][0], NEVER))
            )
            snapshots = PBegin(records.pipeline) | "ReadSnapshot" >> ReadSnapshot(
                config.project,
                config.bigquery_endpoint,
                f"{config.project}.{config.features_dataset}.{SNAPSHOT_TABLE}",
                {view: sid for view, (sid, _) in self.warm.snapshots.items()},
            )
            keyed = (keyed, snapshots) | "WithSnapshots" >> beam.Flatten()
        history: PColl = (
            keyed
            | "GroupHistory" >> beam.GroupByKey()
            # each key's whole history in memory at once
            | "HistoryBatches"
            >> beam.MapTuple(lambda key, recs: (key, list(recs))).with_resource_hints(
                **HISTORY_HINTS
            )
        )
        return history
