"""Reading the event archive: JSON lines files (one topic per file, named after it) or
Parquet exports with a `payload` column. Raw bytes are kept: an invalid line stays an
invalid message and reaches the dead-letter output."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass

import apache_beam as beam
from apache_beam import coders

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


class ReadEventFiles(beam.PTransform):  # type: ignore[misc]
    """(topic, raw bytes, attributes) for every message line of the archive files."""

    def __init__(self, files: Sequence[ArchiveFile]) -> None:
        super().__init__()
        self.files = list(files)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
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
        return parts | "AllMessages" >> beam.Flatten()
