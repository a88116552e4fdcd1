"""The stream's raw archive writer: every valid message, once, into its source's
`events_raw` BigQuery table (streaming inserts keyed by event_id).

Rows are gathered per topic by Beam's `GroupIntoBatches.WithShardedKey` (up to
`batch_size` rows, or what came within `max_buffering_s`) before each insert call, as
Beam's own `WriteToBigQuery` does with auto-sharding: Dataflow shards a busy topic's key
across workers, and a store that pays per call (the BigQuery emulator: 2.5 CPU-seconds
and 1.4 GB more memory for 20,000 rows in calls of 50, 0.3 s and 0.1 GB in calls of
1,000) sees a few calls a second instead of one per bundle.

It takes a client factory (the jobs pass one that reaches the emulator locally and
BigQuery in production) and the table schema, so this module stays free of either."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from google.api_core import exceptions

from common.beam_types import PColl
from common.metrics import JobCounter
from common.stages import ARCHIVE_HINTS, Stage

log = logging.getLogger(__name__)
TRANSIENT = (
    exceptions.ServiceUnavailable,
    exceptions.InternalServerError,
    exceptions.TooManyRequests,
    exceptions.GatewayTimeout,
    ConnectionError,
)


BATCH_ROWS = 500  # rows an insert call carries at most (BigQuery's advice for insertAll)
MAX_BUFFERING_S = 1.0  # the longest a row waits for its batch
MAX_BUFFERING_LIMIT_S = 60.0


class ArchiveWriteError(RuntimeError):
    """BigQuery refused archive rows; the bundle fails and Beam retries it."""


class _InsertArchiveRows(beam.DoFn):
    def __init__(
        self,
        client_factory: Callable[[], Any],
        tables: Mapping[str, str],
        schemas: Mapping[str, Sequence[Any]],
        batch_size: int,
        attempts: int,
    ) -> None:
        self.client_factory, self.tables, self.schemas = client_factory, dict(tables), dict(schemas)
        self.batch_size, self.attempts = batch_size, attempts
        self.written = JobCounter("stream", "archived_events")

    def setup(self) -> None:
        self.client = self.client_factory()

    def start_bundle(self) -> None:
        self.buffer: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def process(self, item: tuple[Any, list[dict[str, Any]]]) -> Iterator[None]:
        """A batch of one topic's rows (its key sharded by `GroupIntoBatches`)."""
        key, rows = item
        topic = key.key
        buffer = self.buffer[topic]
        for row in rows:
            buffer.append(row)
            if len(buffer) >= self.batch_size:
                self._flush(topic)
                buffer = self.buffer[topic]
        return iter(())

    def finish_bundle(self) -> None:
        for topic in list(self.buffer):
            self._flush(topic)

    def _flush(self, topic: str) -> None:
        rows, self.buffer[topic] = self.buffer[topic], []
        if not rows:
            return
        table = self.tables[topic]
        for attempt in range(1, self.attempts + 1):
            try:
                errors = self.client.insert_rows(
                    table,
                    rows,
                    selected_fields=self.schemas[topic],
                    row_ids=[r["event_id"] for r in rows],
                )
                break
            except TRANSIENT as exc:
                if attempt == self.attempts:
                    msg = f"archive table {table}: insert failed after {attempt} attempts: {exc}"
                    raise ArchiveWriteError(msg) from exc
                time.sleep(min(0.2 * 2**attempt, 5.0))
        if errors:
            msg = f"archive table {table} refused {len(errors)} rows, first: {errors[0]}"
            raise ArchiveWriteError(msg)
        self.written.inc(len(rows))


class WriteArchive(Stage):
    """(topic, archive row) pairs → each topic's archive table."""

    RESOURCE_HINTS = ARCHIVE_HINTS

    def __init__(
        self,
        client_factory: Callable[[], Any],
        tables: Mapping[str, str],
        schemas: Mapping[str, Sequence[Any]],
        batch_size: int = BATCH_ROWS,
        attempts: int = 5,
        max_buffering_s: float = MAX_BUFFERING_S,
    ) -> None:
        super().__init__()
        if batch_size < 1 or not 0 < max_buffering_s <= MAX_BUFFERING_LIMIT_S:
            msg = (
                f"archive batches need batch_size >= 1 (got {batch_size}) and "
                f"0 < max_buffering_s <= {MAX_BUFFERING_LIMIT_S:g} (got {max_buffering_s!r})"
            )
            raise ValueError(msg)
        self.batch_size, self.max_buffering_s = batch_size, max_buffering_s
        self.fn = _InsertArchiveRows(client_factory, tables, schemas, batch_size, attempts)

    def expand(self, rows: PColl) -> PColl:
        batched: PColl = (
            rows
            | "ByTopic" >> beam.Map(_by_topic).with_output_types(tuple[str, dict[str, Any]])
            | "BatchRows"
            >> beam.GroupIntoBatches.WithShardedKey(
                self.batch_size, max_buffering_duration_secs=self.max_buffering_s
            )
        )
        inserted: PColl = batched | "InsertRows" >> beam.ParDo(self.fn)
        return inserted


def _by_topic(item: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """(topic, row) as it comes, typed: the sharded batching needs its key's type."""
    return item
