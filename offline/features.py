"""The batch feature stage: validated events → de-duplicated → change-point rows per view.

Events are de-duplicated by `event_id`, keyed by (view, entity), grouped, and the
entities of each group run the same aggregation core as the streaming job
(`compute_rows_many`: many entities per vectorised pass).

What crosses a shuffle is batched, because Beam's per-element cost (coders, grouping
buffers, one Python call per step) is larger than the work done per event:

- `DeduplicateEvents` sends records in chunks (`RecordChunk`, one pickle each) to a
  stable hash shard of their event id (every copy of an id meets in one shard), keeps
  one copy per id there, and emits the unique records in lists of up to `batch_size`:
  the steps after it handle hundreds of lists instead of a million records. Lists of
  2,000, not more: Beam's byte counters encode a sample of each step's elements, the
  first ones all and then fewer and fewer, so the fewer the lists the larger the share
  of records encoded once more;
- `KeyForFeatures` keys each view's events by a stable hash shard of the entity key
  and ships them as columnar `KeyedEvents` chunks of up to `KEYED_CHUNK` events, held
  per (view, shard) across a bundle's lists; it runs fused with de-duplication, so the
  records themselves cross one shuffle only (de-duplication's). `ShardChangePoints`
  groups them: an entity's events all land in one shard, whose entities are then
  evaluated together. `shards` bounds the feature stage's parallelism per view (and,
  inversely, each group's size). `ComputeChangePoints` is the two in one transform.

Both shard counts should grow with the input: a shard's records are held in memory
(about a million records per shard is comfortable on the feature stage's workers).
"""

from __future__ import annotations

import logging
import pickle
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import apache_beam as beam
from apache_beam.coders.typecoders import registry
from apache_beam.metrics.metric import Metrics
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from common.beam_types import PColl, Transform
from common.row_coder import (  # (also registers the coders RowBatches cross shuffles with)
    RowBatches,
    ValueCoder,
)
from common.stages import DEDUP_HINTS, FEATURE_HINTS, Stage
from common.transforms import KeyByViewEntity
from feature_store.core.change_rows import KeyedEvents, compute_rows_many
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.registry import Registry

log = logging.getLogger(__name__)

DEDUPLICATED_BATCH = 2_000
ID_SHARDS = 1024
ID_CHUNK = 1_000
SHARDS_PER_VIEW = 128
KEYED_CHUNK = 5_000  # (entity key, record) pairs per KeyedEvents element, at most
Record = dict[str, Any]


def copy_order(record: Mapping[str, Any]) -> tuple[int, str]:
    """How copies of one event id are ranked: the first by (event_time, content) is kept."""
    return (int(record["event_time"]), repr(sorted(record.items(), key=lambda kv: kv[0])))


class RecordChunk:
    """Records on their way across de-duplication's shuffle, with `RecordChunkCoder`."""

    __slots__ = ("records",)

    def __init__(self, records: list[Record]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)


class RecordChunkCoder(ValueCoder):
    """A `RecordChunk` as one pickle of its list: Beam's default coder for a list of
    dicts (`FastPrimitivesCoder`, value by value) decodes about three times slower.
    Byte counters get an estimate from the chunk's first record, not an encoding."""

    VALUE_TYPE = RecordChunk

    def encode(self, value: RecordChunk) -> bytes:
        return pickle.dumps(value.records, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> RecordChunk:
        return RecordChunk(pickle.loads(encoded))

    def estimated_size(self, value: Any) -> int:
        return _chunk_size(value)


def _chunk_size(value: RecordChunk) -> int:
    if not value.records:
        return 8
    first = pickle.dumps(value.records[0], protocol=pickle.HIGHEST_PROTOCOL)
    return len(first) * len(value.records)


registry.register_coder(RecordChunk, RecordChunkCoder)


class _ByIdShard(beam.DoFn):
    """Records (or lists of them) → (id shard, `RecordChunk`): one element per shard
    per `chunk` records."""

    def __init__(self, shards: int, chunk: int, batched: bool = False) -> None:
        self.shards, self.chunk, self.batched = shards, chunk, batched

    def start_bundle(self) -> None:
        self.lists: dict[int, list[Record]] = defaultdict(list)

    def process(self, element: Record | list[Record]) -> Iterator[tuple[int, RecordChunk]]:
        records = cast("list[Record]", element) if self.batched else [cast(Record, element)]
        for record in records:
            shard = shard_of(record["event_id"], self.shards)  # copies share their id
            held = self.lists[shard]
            held.append(record)
            if len(held) >= self.chunk:
                yield shard, RecordChunk(self.lists.pop(shard))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for shard, records in self.lists.items():
            yield GlobalWindows.windowed_value((shard, RecordChunk(records)))
        self.lists.clear()


class _FirstCopies(beam.DoFn):
    """(id shard, lists of records) → one copy per (topic, event_id), the first by
    (event_time, content), in lists of up to `batch_size`; the other copies are counted."""

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.duplicates = Metrics.counter("backfill", "events_duplicate")

    def start_bundle(self) -> None:
        self.batch: list[Record] = []

    def process(self, item: tuple[int, Iterable[RecordChunk]]) -> Iterator[list[Record]]:
        first: dict[tuple[str, str], Record] = {}
        copies = 0
        for chunk in item[1]:
            for record in chunk.records:
                key = (record["topic"], record["event_id"])
                held = first.setdefault(key, record)
                if held is not record:
                    copies += 1
                    if copy_order(record) < copy_order(held):
                        first[key] = record
        if copies:
            self.duplicates.inc(copies)
        self.batch.extend(first.values())
        while len(self.batch) >= self.batch_size:
            yield self.batch[: self.batch_size]
            self.batch = self.batch[self.batch_size :]

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self.batch:
            yield GlobalWindows.windowed_value(self.batch)
        self.batch = []


class DeduplicateEvents(Stage):
    """Valid records (lists of them with `batched=True`) → lists of records, one per
    (topic, event_id) (batch pipelines).

    Each of the `shards` id shards holds its unique records in memory at once.
    """

    RESOURCE_HINTS = DEDUP_HINTS

    def __init__(
        self,
        shards: int = ID_SHARDS,
        batch_size: int = DEDUPLICATED_BATCH,
        *,
        batched: bool = False,
    ) -> None:
        super().__init__()
        if shards < 1 or batch_size < 1:
            msg = f"shards and batch_size must be positive, got {shards} and {batch_size}"
            raise ValueError(msg)
        self.shards, self.batch_size, self.batched = shards, batch_size, batched

    def expand(self, records: PColl) -> PColl:
        first: PColl = (
            records
            | "ToIdShards"
            >> beam.ParDo(_ByIdShard(self.shards, ID_CHUNK, self.batched)).with_output_types(
                tuple[int, RecordChunk]
            )
            | "GroupByIdShard" >> beam.GroupByKey()
            | "FirstCopies" >> beam.ParDo(_FirstCopies(self.batch_size))
        )
        return first


def shard_of(key: str, shards: int) -> int:
    """A stable shard of a key (the same on every worker and run, unlike `hash`)."""
    return zlib.crc32(key.encode("utf-8")) % shards


class _KeyByShard(beam.DoFn):
    """Lists of records → ((view, shard), KeyedEvents) for each view and shard they feed:
    a shard's (entity key, record) pairs are held across the bundle's lists and leave as
    one chunk per `chunk` pairs, the rest at the bundle's end (few elements per shard,
    whatever the size of the lists that come in)."""

    def __init__(
        self,
        registry: Registry,
        plans: Sequence[ViewPlan],
        end: int | None,
        shards: int,
        chunk: int = KEYED_CHUNK,
    ) -> None:
        self.keyer = KeyByViewEntity(registry, plans, end)
        self.fields = {p.view: p.fields for p in plans}
        self.shards, self.chunk = shards, chunk

    def start_bundle(self) -> None:
        self.groups: dict[tuple[str, int], list[tuple[str, Record]]] = defaultdict(list)

    def process(self, batch: Iterable[Record]) -> Iterator[tuple[tuple[str, int], KeyedEvents]]:
        for record in batch:
            for (view, key), slim in self.keyer.process(record):
                group = (view, shard_of(key, self.shards))
                held = self.groups[group]
                held.append((key, slim))
                if len(held) >= self.chunk:
                    yield group, KeyedEvents.from_records(self.groups.pop(group), self.fields[view])

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for (view, shard), pairs in self.groups.items():
            keyed = KeyedEvents.from_records(pairs, self.fields[view])
            yield GlobalWindows.windowed_value(((view, shard), keyed))
        self.groups.clear()


class _ComputeRows(beam.DoFn):
    def __init__(
        self, plans: Sequence[ViewPlan], start: int | None, end: int | None, per_shard: bool
    ) -> None:
        self.plans = {p.view: p for p in plans}
        self.start, self.end, self.per_shard = start, end, per_shard
        self.rows = Metrics.counter("backfill", "change_points")

    def process(
        self, item: tuple[tuple[str, int], Iterable[KeyedEvents]]
    ) -> Iterator[RowBatch | RowBatches]:
        (view, _), chunks = item
        events = KeyedEvents.concat(chunks)
        # vector kinds pending: the kernel stage (`common.vectors`) evaluates them
        rows = compute_rows_many(self.plans[view], events, self.start, self.end, defer_vectors=True)
        if self.per_shard:
            if rows:
                self.rows.inc(sum(len(batch) for batch in rows))
                yield RowBatches(rows)
            return
        for batch in rows:
            self.rows.inc(len(batch))
            yield batch


class KeyForFeatures(Stage):
    """Lists of valid, de-duplicated records → ((view, shard), `KeyedEvents`): each
    view's fields of each record, keyed by a stable shard of its entity key.

    It runs where de-duplication runs (`DEDUP_HINTS`: Beam fuses it with the step that
    emits the unique records), so what crosses the shuffle into the feature stage is
    columnar `KeyedEvents` chunks, not whole records crossing twice (a `Reshuffle`,
    then the grouping by shard)."""

    RESOURCE_HINTS = DEDUP_HINTS

    def __init__(
        self,
        registry: Registry,
        plans: Sequence[ViewPlan],
        end: int | None = None,
        shards: int = SHARDS_PER_VIEW,
    ) -> None:
        super().__init__()
        if shards < 1:
            msg = f"shards must be positive, got {shards}"
            raise ValueError(msg)
        self.registry, self.plans, self.end, self.shards = registry, list(plans), end, shards

    def expand(self, batches: PColl) -> PColl:
        keyed: PColl = batches | "KeyByViewAndShard" >> beam.ParDo(
            _KeyByShard(self.registry, self.plans, self.end, self.shards)
        )
        return keyed


class ShardChangePoints(Stage):
    """((view, shard), `KeyedEvents`) from `KeyForFeatures` → one `RowBatch` per (view,
    entity): each shard's events grouped, its entities evaluated together.

    `per_shard`: a shard's batches leave as one `RowBatches` element (none for a shard
    without rows), so the shuffles after it carry one element per shard, a bounded part
    of a view, instead of one per entity."""

    RESOURCE_HINTS = FEATURE_HINTS

    def __init__(
        self,
        plans: Sequence[ViewPlan],
        start: int | None = None,
        end: int | None = None,
        *,
        per_shard: bool = False,
    ) -> None:
        super().__init__()
        self.plans, self.start, self.end = list(plans), start, end
        self.per_shard = per_shard

    def expand(self, keyed: PColl) -> PColl:
        compute = _ComputeRows(self.plans, self.start, self.end, self.per_shard)
        rows: PColl = (
            keyed
            | "GroupByShard" >> beam.GroupByKey()
            | "ChangePoints"
            >> beam.ParDo(compute).with_output_types(RowBatches if self.per_shard else RowBatch)
        )
        return rows


class ComputeChangePoints(Transform):
    """Lists of valid, de-duplicated records → one `RowBatch` per (view, entity):
    `KeyForFeatures`, then `ShardChangePoints` (the job applies the two as steps of
    their own, each with its hints)."""

    def __init__(
        self,
        registry: Registry,
        plans: Sequence[ViewPlan],
        start: int | None = None,
        end: int | None = None,
        shards: int = SHARDS_PER_VIEW,
    ) -> None:
        super().__init__()
        self.keyer = KeyForFeatures(registry, plans, end, shards)
        self.rows = ShardChangePoints(plans, start, end)

    def expand(self, batches: PColl) -> PColl:
        rows: PColl = batches | "KeyForFeatures" >> self.keyer | "ChangePoints" >> self.rows
        return rows


def latest_rows(shard: RowBatches) -> list[RowBatch]:
    """The newest change point of each entity of a shard (`latest_row`)."""
    return [latest_row(batch) for batch in shard]


def latest_row(batch: RowBatch) -> RowBatch:
    """The newest change point of an entity: what the online store must hold."""
    last = len(batch) - 1
    return RowBatch(
        batch.view,
        batch.entity_key,
        batch.valid_from[last:],
        {name: col[last:] for name, col in batch.values.items()},
    )
