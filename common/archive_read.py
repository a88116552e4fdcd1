"""Reading the event archive: JSON lines files (one topic per file, named after it) or
Parquet exports with a `payload` column. Raw bytes are kept: an invalid line stays an
invalid message and reaches the dead-letter output."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import coders

from common.beam_types import PColl
from common.stages import IO_HINTS, Stage
from feature_store.errors import ConfigError


@dataclass(frozen=True)
class ArchiveFile:
    topic: str
    pattern: str
    kind: str  # "jsonl" or "parquet"


def _topic_of(path: str, topics: Sequence[str]) -> str | None:
    name = os.path.basename(path)
    return next((t for t in sorted(topics, key=len, reverse=True) if name.startswith(t)), None)


def discover(paths: Sequence[str], topics: Sequence[str]) -> list[ArchiveFile]:
    """Files (or folders of files) named `<topic>*.jsonl[.gz]` / `<topic>*.parquet`."""
    found: list[ArchiveFile] = []
    for path in paths:
        candidates = (
            sorted(glob.glob(os.path.join(path, "*")))
            if os.path.isdir(path)
            else sorted(glob.glob(path)) or [path]
        )
        for candidate in candidates:
            kind = (
                "parquet"
                if candidate.endswith(".parquet")
                else "jsonl"
                if ".jsonl" in os.path.basename(candidate)
                else None
            )
            topic = _topic_of(candidate, topics)
            if kind is None or topic is None:
                if not os.path.isdir(path):
                    msg = (
                        f"event file {candidate!r} must be named <topic>*.jsonl or "
                        f"<topic>*.parquet with topic one of {list(topics)}"
                    )
                    raise ConfigError(msg)
                continue
            if not os.path.exists(candidate):
                msg = f"event file {candidate!r} does not exist"
                raise ConfigError(msg)
            found.append(ArchiveFile(topic, candidate, kind))
    if not found:
        msg = f"no event files found in {list(paths)} (expected <topic>*.jsonl)"
        raise ConfigError(msg)
    return found


class ReadEventFiles(Stage):
    """(topic, raw bytes, attributes) for every message line of the archive files."""

    RESOURCE_HINTS = IO_HINTS

    def __init__(self, files: Sequence[ArchiveFile]) -> None:
        super().__init__()
        self.files = list(files)

    def expand(self, pbegin: beam.pvalue.PBegin) -> PColl:
        parts = []
        for i, f in enumerate(self.files):
            label = f"{f.topic}#{i}"
            if f.kind == "jsonl":
                lines = pbegin | f"Read {label}" >> beam.io.ReadFromText(
                    f.pattern, coder=coders.BytesCoder(), strip_trailing_newlines=True
                )
            else:
                lines = (
                    pbegin
                    | f"Read {label}" >> beam.io.ReadFromParquet(f.pattern, columns=["payload"])
                    | f"Payload {label}" >> beam.Map(lambda row: row["payload"].encode("utf-8"))
                )
            parts.append(
                lines | f"Tag {label}" >> beam.Map(lambda raw, topic=f.topic: (topic, raw, {}))
            )
        messages: PColl = parts | "AllMessages" >> beam.Flatten()
        return messages


def _read_table(
    item: tuple[str, str],
    project: str,
    endpoint: str | None,
    since_us: int | None,
    until_us: int | None,
) -> Iterator[Any]:
    """Every archived message of one table (optionally an event-time range)."""
    from common.archive import message_of
    from common.bigquery_client import cached_client

    topic, table = item
    where = []
    if since_us is not None:
        where.append(f"event_time > TIMESTAMP_MICROS({since_us})")
    if until_us is not None:
        where.append(f"event_time <= TIMESTAMP_MICROS({until_us})")
    sql = (
        f"SELECT payload, attributes, publish_time FROM `{table}`"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY event_time"
    )
    client = cached_client(project, endpoint)
    for row in client.query(sql).result(page_size=50_000):
        raw, attributes, publish_us = message_of(row)
        yield topic, raw, attributes, publish_us


class ReadArchiveTables(Stage):
    """(topic, raw, attributes, publish µs) of the archived messages of each topic."""

    RESOURCE_HINTS = IO_HINTS

    def __init__(
        self,
        project: str,
        endpoint: str | None,
        tables: dict[str, str],
        since_us: int | None = None,
        until_us: int | None = None,
    ) -> None:
        super().__init__()
        self.project, self.endpoint, self.tables = project, endpoint, dict(tables)
        self.since_us, self.until_us = since_us, until_us

    def expand(self, pbegin: beam.pvalue.PBegin) -> PColl:
        rows: PColl = (
            pbegin
            | "Tables" >> beam.Create(sorted(self.tables.items()))
            | "ReadTables"
            >> beam.FlatMap(_read_table, self.project, self.endpoint, self.since_us, self.until_us)
        )
        return rows
