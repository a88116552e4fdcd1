"""Table layouts generated from the registry, as plain data (no cloud client here).

- one change-point table per view: `join key, valid_from, features..., computed_at`,
  partitioned by day of `valid_from`, clustered by the join key;
- one raw archive table per source: every valid event received, with its payload;
- one dead-letter table: invalid messages with their raw bytes and reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_store.config import PlatformConfig
from feature_store.definitions import DType, Source
from feature_store.feast_repo import COMPUTED_AT, VALID_FROM
from feature_store.registry import Registry

_BQ_TYPES = {
    DType.INT64: "INT64",
    DType.FLOAT64: "FLOAT64",
    DType.STRING: "STRING",
    DType.BOOL: "BOOL",
    DType.TIMESTAMP: "TIMESTAMP",
    DType.FLOAT32_VECTOR: "FLOAT64",
}
DEAD_LETTER_TABLE = "dead_letters"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    mode: str = "NULLABLE"
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    dataset: str
    columns: tuple[Column, ...]
    partition_field: str | None = None
    clustering: tuple[str, ...] = ()
    description: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def change_point_table(registry: Registry, view_name: str, dataset: str) -> TableSpec:
    view = registry.view(view_name)
    key = registry.entity(view.entity).join_key
    columns = [
        Column(key, "STRING", "REQUIRED", f"{view.entity} id"),
        Column(VALID_FROM, "TIMESTAMP", "REQUIRED", "the values hold from this time"),
    ]
    for ref in registry.feature_refs(view):
        mode = "REPEATED" if ref.dtype is DType.FLOAT32_VECTOR else "NULLABLE"
        columns.append(
            Column(
                ref.feature,
                _BQ_TYPES[ref.dtype],
                mode,
                view.feature(ref.feature).aggregation.describe(),
            )
        )
    columns.append(Column(COMPUTED_AT, "TIMESTAMP", "REQUIRED", "when the job computed the row"))
    return TableSpec(
        name=view.name,
        dataset=dataset,
        columns=tuple(columns),
        partition_field=VALID_FROM,
        clustering=(key,),
        description=view.description,
    )


def archive_table(source: Source, dataset: str) -> TableSpec:
    """Every valid event as received: typed fields plus the raw payload (extra fields kept)."""
    typed = [
        Column(
            f.name,
            _BQ_TYPES[f.dtype],
            "REQUIRED" if f.name in ("event_id", "event_type", "event_time") else "NULLABLE",
        )
        for f in source.fields
    ]
    extra = [
        Column("payload", "STRING", "REQUIRED", "the message body as received"),
        Column("attributes", "STRING", "NULLABLE", "message attributes as JSON"),
        Column("publish_time", "TIMESTAMP", "NULLABLE"),
        Column("ingested_at", "TIMESTAMP", "REQUIRED"),
    ]
    return TableSpec(
        name=source.archive,
        dataset=dataset,
        columns=tuple(typed + extra),
        partition_field="event_time",
        clustering=("event_type",),
        description=f"Raw archive of {source.topic}.",
    )


def dead_letter_table(dataset: str) -> TableSpec:
    return TableSpec(
        name=DEAD_LETTER_TABLE,
        dataset=dataset,
        columns=(
            Column("topic", "STRING", "REQUIRED"),
            Column("reason", "STRING", "REQUIRED"),
            Column("detail", "STRING"),
            Column("raw_text", "STRING"),
            Column("raw_base64", "STRING", "REQUIRED"),
            Column("attributes", "STRING"),
            Column("received_at", "TIMESTAMP", "REQUIRED"),
        ),
        partition_field="received_at",
        clustering=("topic", "reason"),
        description="Invalid messages with their raw bytes and the reason.",
    )


SNAPSHOT_TABLE = "unbounded_snapshot"
SNAPSHOTS_TABLE = "unbounded_snapshots"
SNAPSHOT_SHARDS = 16  # the warm start reads a snapshot in this many parallel splits


def snapshot_table(dataset: str) -> TableSpec:
    """Per (snapshot, view, entity): the unbounded features' summaries over the entity's
    events up to the snapshot's cut (`feature_store.core.snapshot`), as JSON."""
    return TableSpec(
        name=SNAPSHOT_TABLE,
        dataset=dataset,
        columns=(
            Column("snapshot_id", "STRING", "REQUIRED"),
            Column("view", "STRING", "REQUIRED"),
            Column("entity", "STRING", "REQUIRED"),
            Column("shard", "INT64", "REQUIRED", "a stable hash of the entity, for split reads"),
            Column("base", "STRING", "REQUIRED", "the unbounded features' summaries as JSON"),
        ),
        clustering=("snapshot_id", "view", "shard"),
        description="What the unbounded features need per key, as of a backfill.",
    )


def snapshots_table(dataset: str) -> TableSpec:
    """One row per (snapshot, view), written once the snapshot's rows are all written."""
    return TableSpec(
        name=SNAPSHOTS_TABLE,
        dataset=dataset,
        columns=(
            Column("snapshot_id", "STRING", "REQUIRED"),
            Column("view", "STRING", "REQUIRED"),
            Column("cut", "TIMESTAMP", "REQUIRED", "events up to this event time are folded"),
            Column("valid_from", "TIMESTAMP", "REQUIRED", "for streams starting at or after"),
            Column("features", "STRING", "REQUIRED", "the unbounded features, in order"),
            Column("taken_at", "TIMESTAMP", "REQUIRED"),
        ),
        description="The complete snapshots of unbounded features, per view.",
    )


def all_tables(registry: Registry, features_dataset: str, archive_dataset: str) -> list[TableSpec]:
    tables = [change_point_table(registry, v.name, features_dataset) for v in registry.views]
    tables += [archive_table(s, archive_dataset) for s in registry.sources]
    tables.append(dead_letter_table(archive_dataset))
    tables += [snapshot_table(features_dataset), snapshots_table(features_dataset)]
    return tables


def archive_table_ids(config: PlatformConfig, registry: Registry) -> dict[str, str]:
    """`project.dataset.table` of each topic's archive table."""
    return {
        s.topic: f"{config.project}.{config.archive_dataset}.{s.archive}" for s in registry.sources
    }
