"""Reading the event archive: JSON lines files (one topic per file, named after it) or
Parquet exports with a `payload` column. Raw bytes are kept: an invalid line stays an
invalid message and reaches the dead-letter output."""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.beam_types import PColl
from common.stages import IO_HINTS, Stage
from feature_store.errors import ConfigError

Message = tuple[str, bytes, dict[str, str]]
T = TypeVar("T")
RANGE_BYTES = 64 * 2**20  # of a JSON-lines file per read range (Beam's text source: 64 MiB)


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
    """(topic, raw bytes, attributes) for every message line of the archive files.

    With `block_lines`, the messages come in lists of up to that many (one file range's
    lines in order), for the batch jobs: a million single-line elements each cost Beam
    a coder round trip and a call per step, several times the work of validating the
    line. Uncompressed JSON-lines files are split into ranges of `range_bytes` (a line
    belongs to the range holding its first byte, as in Beam's text source), read by
    whichever worker takes the range (`Create` reshuffles them); compressed and Parquet files are
    one range each."""

    RESOURCE_HINTS = IO_HINTS

    def __init__(
        self,
        files: Sequence[ArchiveFile],
        *,
        block_lines: int | None = None,
        range_bytes: int = RANGE_BYTES,
    ) -> None:
        super().__init__()
        if block_lines is not None and block_lines < 1:
            msg = f"block_lines must be positive, got {block_lines}"
            raise ValueError(msg)
        if range_bytes < 1:
            msg = f"range_bytes must be positive, got {range_bytes}"
            raise ValueError(msg)
        self.files = list(files)
        self.block_lines, self.range_bytes = block_lines, range_bytes

    def expand(self, pbegin: beam.pvalue.PBegin) -> PColl:
        if self.block_lines is not None:
            blocks: PColl = (
                pbegin
                | "Ranges" >> beam.Create(file_ranges(self.files, self.range_bytes))
                | "ReadBlocks" >> beam.FlatMap(read_blocks, self.block_lines)
            )
            return blocks
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


FileRange = tuple[str, str, str, int, int | None]  # topic, kind, path, start, end (None: all)


def file_ranges(files: Sequence[ArchiveFile], range_bytes: int) -> list[FileRange]:
    """Each file's byte ranges: `range_bytes` each for uncompressed JSON lines, else the
    whole file."""
    out: list[FileRange] = []
    for f in files:
        for found in FileSystems.match([f.pattern])[0].metadata_list:
            path, size = found.path, found.size_in_bytes
            compressed = CompressionTypes.detect_compression_type(path) is not (
                CompressionTypes.UNCOMPRESSED
            )
            if f.kind != "jsonl" or compressed:
                out.append((f.topic, f.kind, path, 0, None))
                continue
            out += [
                (f.topic, f.kind, path, start, min(start + range_bytes, size))
                for start in range(0, max(size, 1), range_bytes)
            ]
    return out


def read_blocks(part: FileRange, block_lines: int) -> Iterator[list[Message]]:
    """The messages of one file range, in lists of up to `block_lines`."""
    topic, kind, path, start, end = part
    raws = _parquet_payloads(path) if kind == "parquet" else _lines(path, start, end)
    return in_blocks(((topic, raw, {}) for raw in raws), block_lines)


def in_blocks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of up to `size`, in order."""
    iterator = iter(items)
    while block := list(itertools.islice(iterator, size)):
        yield block


def _lines(path: str, start: int, end: int | None) -> Iterator[bytes]:
    """The lines whose first byte lies in [start, end), without their line ending."""
    if end is None:  # a whole (possibly compressed) file
        with FileSystems.open(path) as whole:
            while line := whole.readline():
                yield _strip(line)
        return
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
        position = start
        if start > 0:  # the line holding byte start - 1 belongs to the previous range
            file.seek(start - 1)
            position = start - 1 + len(file.readline())
        while position < end:
            line = file.readline()
            if not line:
                return
            position += len(line)
            yield _strip(line)


def _strip(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    return line


def _parquet_payloads(path: str) -> Iterator[bytes]:
    import pyarrow.parquet as pq

    with FileSystems.open(path) as file:
        for batch in pq.ParquetFile(file).iter_batches(columns=["payload"]):
            for payload in batch.column(0).to_pylist():
                yield payload.encode("utf-8")


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
        block_rows: int | None = None,
    ) -> None:
        """`now_us`: read (since, until] in parallel splits, one per table and UTC day up
        to this time (and one open-ended after it when `until_us` is None), with no
        order; None: one ordered read per table. `block_rows`: messages in lists of up
        to that many (as `ReadEventFiles` gives them with `block_lines`)."""
        super().__init__()
        self.block_rows = block_rows
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
                | "ReadSplits"
                >> beam.FlatMap(self._blocked(_read_split), self.project, self.endpoint)
            )
            return splits_read
        rows: PColl = (
            pbegin
            | "Tables" >> beam.Create(sorted(self.tables.items()))
            | "ReadTables"
            >> beam.FlatMap(
                self._blocked(_read_table),
                self.project,
                self.endpoint,
                self.since_us,
                self.until_us,
            )
        )
        return rows

    def _blocked(self, read: Callable[..., Iterator[Any]]) -> Callable[..., Iterable[Any]]:
        if self.block_rows is None:
            return read
        size = self.block_rows
        return lambda *args: in_blocks(read(*args), size)
