"""Reading the event archive: JSON lines files (one topic per file, named after it) or
Parquet exports with a `payload` column. Raw bytes are kept: an invalid line stays an
invalid message and reaches the dead-letter output."""

from __future__ import annotations

import glob
import itertools
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


DAY_US = 86_400 * 1_000_000


def day_splits(since_us: int, until_us: int | None, now_us: int) -> list[tuple[int, int | None]]:
    """(after, up to) event-time ranges covering (since, until], cut at UTC midnights (the
    archive's day partitions); the last one is open-ended when `until_us` is None."""
    end = until_us if until_us is not None else now_us
    bounds = [since_us]
    midnight = since_us - since_us % DAY_US + DAY_US
    while midnight < end:
        bounds.append(midnight)
        midnight += DAY_US
    ranges: list[tuple[int, int | None]] = list(itertools.pairwise(bounds))
    ranges.append((bounds[-1], until_us))
    return ranges


def _read_table(
    item: tuple[str, str],
    project: str,
    endpoint: str | None,
    since_us: int | None,
    until_us: int | None,
    ordered: bool = True,
) -> Iterator[Any]:
    """Every archived message of one table (optionally an event-time range)."""
    from common.archive import message_of
    from common.bigquery_client import cached_client
    from common.metrics import JobCounter

    topic, table = item
    where = []
    if since_us is not None:
        where.append(f"event_time > TIMESTAMP_MICROS({since_us})")
    if until_us is not None:
        where.append(f"event_time <= TIMESTAMP_MICROS({until_us})")
    sql = (
        f"SELECT payload, attributes, publish_time FROM `{table}`"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + (" ORDER BY event_time" if ordered else "")
    )
    client = cached_client(project, endpoint)
    read = 0
    for row in client.query(sql).result(page_size=50_000):
        read += 1
        raw, attributes, publish_us = message_of(row)
        yield topic, raw, attributes, publish_us
    JobCounter("archive", "archive_rows_read").inc(read)


def _read_split(
    split: tuple[str, str, int, int | None], project: str, endpoint: str | None
) -> Iterator[Any]:
    topic, table, after, until = split
    return _read_table((topic, table), project, endpoint, after, until, ordered=False)


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
        now_us: int | None = None,
    ) -> None:
        """`now_us`: read (since, until] in parallel splits, one per table and UTC day up
        to this time (and one open-ended after it when `until_us` is None), with no
        order; None: one ordered read per table."""
        super().__init__()
        self.project, self.endpoint, self.tables = project, endpoint, dict(tables)
        self.since_us, self.until_us, self.now_us = since_us, until_us, now_us

    def expand(self, pbegin: beam.pvalue.PBegin) -> PColl:
        if self.since_us is not None and self.now_us is not None:
            ranges = day_splits(self.since_us, self.until_us, self.now_us)
            splits = [
                (t, table, a, b) for t, table in sorted(self.tables.items()) for a, b in ranges
            ]
            splits_read: PColl = (
                pbegin
                | "DaySplits" >> beam.Create(splits)
                | "SpreadSplits" >> beam.Reshuffle()
                | "ReadSplits" >> beam.FlatMap(_read_split, self.project, self.endpoint)
            )
            return splits_read
        rows: PColl = (
            pbegin
            | "Tables" >> beam.Create(sorted(self.tables.items()))
            | "ReadTables"
            >> beam.FlatMap(_read_table, self.project, self.endpoint, self.since_us, self.until_us)
        )
        return rows
