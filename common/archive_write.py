"""The stream's raw archive writer: every valid message, once, into its source's
`events_raw` BigQuery table (streaming inserts keyed by event_id, batched per bundle).

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

    def process(self, item: tuple[str, dict[str, Any]]) -> Iterator[None]:
        topic, row = item
        self.buffer[topic].append(row)
        if len(self.buffer[topic]) >= self.batch_size:
            self._flush(topic)
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
        batch_size: int = 500,
        attempts: int = 5,
    ) -> None:
        super().__init__()
        self.fn = _InsertArchiveRows(client_factory, tables, schemas, batch_size, attempts)

    def expand(self, rows: PColl) -> PColl:
        inserted: PColl = rows | "InsertRows" >> beam.ParDo(self.fn)
        return inserted
