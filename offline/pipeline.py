"""The batch backfill as one composite transform: its `expand()` is the README's picture.

Archive → count of lines read → validation (dead letters to a file, with the online
rows a store refused and the texts the models refused) → de-duplication → the model
stage (reviews that model views read get sentiment and embeddings) → change points per
(view, entity) → each view's change-point table, and the latest row per entity to the
online stores. Shuffles separate the stages so that Dataflow Prime gives each the
workers its resource hints ask for (`common.stages`): the feature stage begins at its
grouping by shard, whose input is keyed, slimmed and columnar before it crosses (the
keying runs fused with de-duplication), and Reshuffles separate the later stages: a
shard's change points cross them as one `RowBatches` element.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import PBegin

from common.beam_types import Transform
from common.counting import CountElements
from common.inference.settings import ModelSettings, model_fields
from common.projections import ApplyProjections, FitProjections, used_projections
from common.stages import IO_HINTS
from common.transforms import DEAD_LETTER, ValidateEvents, write_dead_letter_file
from common.vector_index import IndexSettings, WriteVectorIndex
from common.vectors import EvaluateVectorFeatures
from feature_store.core.plan import ViewPlan
from feature_store.events import DEFAULT_CLOCK_SKEW
from feature_store.registry import Registry
from offline.backfill import WriteOffline
from offline.features import DeduplicateEvents, KeyForFeatures, ShardChangePoints, latest_rows
from offline.snapshot import SnapshotOutput, SnapshotUnbounded, snapshot_plans


@dataclass(frozen=True, kw_only=True)
class OnlineOutput:
    """Where the backfill's latest rows go online: RowBatches → rows, the writer, and
    what turns the rows the writer refuses into `DeadLetter`s (none: they are dropped).

    The job's wiring provides them (the batch job never imports the streaming side)."""

    to_rows: Transform
    sink: Transform
    rejected: Transform | None = None


@dataclass(frozen=True, kw_only=True)
class OfflineOutput:
    """The change-point tables the backfill replaces, and how it writes them."""

    tables: dict[str, Any]
    computed_at_us: int
    project: str
    endpoint: str | None
    replace: tuple[Any, Any] | None
    sink: str = "client"


class BackfillFeatures(Transform):
    """The backfill, from an event `reader` to the offline (and optionally online) stores.

    The reader gives messages in lists (`ReadEventFiles(block_lines=...)`,
    `ReadArchiveTables(block_rows=...)`): validation and de-duplication take them a list
    at a time, so Beam's per-element cost is paid per list, not per line."""

    def __init__(
        self,
        *,
        reader: Transform,
        registry: Registry,
        plans: Sequence[ViewPlan],
        span_us: tuple[int | None, int],
        dead_letters: str,
        offline: OfflineOutput,
        online: OnlineOutput | None,
        received_us: int | None = None,
        clock_skew_s: float = DEFAULT_CLOCK_SKEW.total_seconds(),
        models: ModelSettings | None = None,
        vector_index: IndexSettings | None = None,
        vector_accelerator: bool = False,
        artifacts: str = ".local/artifacts",
        refit_projections: bool = False,
        local_runner: bool = False,
        snapshot: SnapshotOutput | None = None,
    ) -> None:
        """`received_us`: when messages without a publish time (files, imported rows)
        count as received; event times after it plus `clock_skew_s` are dead letters.
        `models`: the model stage's settings, when a plan reads model outputs;
        `vector_index`: where the reviews' embeddings go (None: nowhere);
        `vector_accelerator`: the vector features' kernels ask for a GPU. `artifacts`:
        where declared projections are saved (`common.projections.ProjectionStore`);
        `refit_projections`: fit them anew rather than keep the latest saved;
        `local_runner`: on Beam's local runner (the models stay in the job's process);
        `snapshot`: where the unbounded features' snapshot goes (`offline.snapshot`;
        None: no snapshot, e.g. a backfill of a time range, which sees only part of
        history)."""
        super().__init__()
        self.models, self.vector_index = models, vector_index
        self.vector_accelerator, self.artifacts = vector_accelerator, artifacts
        self.refit_projections, self.local_runner = refit_projections, local_runner
        self.received_us, self.clock_skew_s = received_us, clock_skew_s
        self.reader, self.registry, self.plans = reader, registry, list(plans)
        self.span_us, self.dead_letters = span_us, dead_letters
        self.offline, self.online = offline, online
        self.snapshot = snapshot

    def expand(self, begin: PBegin) -> None:
        start_us, as_of_us = self.span_us
        validate = ValidateEvents(
            "backfill",
            self.registry,
            received_us=self.received_us,
            clock_skew_s=self.clock_skew_s,
            batched=True,
        )
        checked = (
            begin
            | "ReadArchive" >> self.reader
            | "CountLines"
            >> CountElements("backfill", "lines_read", sized=True).with_resource_hints(**IO_HINTS)
            | "ValidateEvents" >> validate
        )
        dead_letters = [checked[DEAD_LETTER]]
        unique = checked.valid | "Deduplicate" >> DeduplicateEvents(batched=True)
        if self.models is not None and any(model_fields(self.registry, p) for p in self.plans):
            from common.inference.enrich import ModelFeatures

            (unique,), refused = unique | "ModelFeatures" >> ModelFeatures(
                self.registry, self.plans, self.models, batched=True, local=self.local_runner
            )
            dead_letters.append(refused)
            if self.vector_index is not None:
                _ = unique | "IndexVectors" >> WriteVectorIndex(
                    self.vector_index, batched=True
                ).with_resource_hints(**IO_HINTS)
        fields = used_projections(self.registry, self.plans)
        if fields:  # declared projections of model outputs: fitted on this run's sample
            fitted = unique | "FitProjections" >> FitProjections(
                fields, self.artifacts, refit=self.refit_projections
            )
            unique = unique | "ApplyProjections" >> ApplyProjections(fields, self.artifacts, fitted)
        if self.snapshot is not None and snapshot_plans(self.plans):
            _ = unique | "SnapshotUnbounded" >> SnapshotUnbounded(
                self.registry, self.plans, self.snapshot
            )
        rows = (
            unique
            | "KeyForFeatures" >> KeyForFeatures(self.registry, self.plans, as_of_us)
            | "EngineerFeatures"
            >> ShardChangePoints(self.plans, start_us, as_of_us, per_shard=True)
            | "ToVectorStage" >> beam.Reshuffle()
            | "VectorFeatures"
            >> EvaluateVectorFeatures(
                "backfill", accelerator=self.vector_accelerator, per_shard=True
            )
            | "ToOutputStage" >> beam.Reshuffle()
        )
        out = self.offline
        _ = rows | "WriteOffline" >> WriteOffline(
            self.plans,
            out.tables,
            out.computed_at_us,
            out.project,
            out.endpoint,
            out.replace,
            out.sink,
        )
        if self.online is not None:
            rejected = (
                rows
                | "LatestRows" >> beam.FlatMap(latest_rows).with_resource_hints(**IO_HINTS)
                | "ToOnlineRows" >> self.online.to_rows
                | "WriteOnline" >> self.online.sink
            )
            if self.online.rejected is not None:
                dead_letters.append(
                    rejected
                    | "RejectedRows" >> self.online.rejected.with_resource_hints(**IO_HINTS)
                )
        everything = tuple(dead_letters) | "AllDeadLetters" >> beam.Flatten()
        write_dead_letter_file(everything, self.dead_letters)
