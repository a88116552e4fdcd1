"""Reading the backfill's snapshot of the unbounded features (`offline.snapshot` writes
it): which complete snapshot each view has, and its rows in parallel splits (by the
entity's shard), as history records a streaming job's state starts from."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from common.beam_types import PColl
from common.stages import IO_HINTS, Stage
from feature_store.events import to_micros
from feature_store.schemas import SNAPSHOT_SHARDS

log = logging.getLogger(__name__)
LOOKUP_TIMEOUT_S = 15.0  # a platform without the snapshots table (or BigQuery) reads it all


@dataclass(frozen=True, kw_only=True)
class SnapshotInfo:
    """A view's newest complete snapshot: events up to `cut_us` are folded in it."""

    snapshot_id: str
    view: str
    cut_us: int
    valid_from_us: int
    features: tuple[str, ...]


def latest_snapshots(
    project: str, endpoint: str | None, manifest: str, views: Sequence[str]
) -> dict[str, SnapshotInfo]:
    """The newest complete snapshot of each of `views` (`manifest`: `project.dataset.table`
    of the complete snapshots); none when the table cannot be read (no credentials
    included: a graph built for a dry run)."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from google.cloud.bigquery.retry import DEFAULT_RETRY

    from common.bigquery_client import cached_client

    names = ", ".join(f"'{v}'" for v in views)
    sql = (
        f"SELECT snapshot_id, view, cut, valid_from, features, taken_at FROM `{manifest}`"
        f" WHERE view IN ({names})"
    )
    retry = DEFAULT_RETRY.with_timeout(LOOKUP_TIMEOUT_S)
    try:
        job = cached_client(project, endpoint).query(
            sql, retry=retry, job_retry=None, timeout=LOOKUP_TIMEOUT_S
        )
        rows = list(job.result(retry=retry, timeout=LOOKUP_TIMEOUT_S))
    except (GoogleAPIError, GoogleAuthError, OSError, ConnectionError) as error:
        log.warning("no snapshot of the unbounded features could be read: %s", error)
        return {}
    found: dict[str, SnapshotInfo] = {}
    for row in sorted(rows, key=lambda r: r["taken_at"]):
        found[row["view"]] = SnapshotInfo(
            snapshot_id=row["snapshot_id"],
            view=row["view"],
            cut_us=to_micros(row["cut"]),
            valid_from_us=to_micros(row["valid_from"]),
            features=tuple(json.loads(row["features"])),
        )
    return found


def _read_split(
    split: tuple[str, str, int], project: str, endpoint: str | None, table: str
) -> Iterator[tuple[tuple[str, str], dict[str, Any]]]:
    from common.bigquery_client import cached_client
    from common.metrics import JobCounter

    view, snapshot_id, shard = split
    sql = (
        f"SELECT entity, base FROM `{table}` WHERE snapshot_id = '{snapshot_id}'"
        f" AND view = '{view}' AND shard = {shard}"
    )
    read = 0
    for row in cached_client(project, endpoint).query(sql).result(page_size=50_000):
        read += 1
        yield (view, row["entity"]), {"history": True, "snapshot": json.loads(row["base"])}
    JobCounter("stream", "snapshot_rows_read").inc(read)


class ReadSnapshot(Stage):
    """((view, entity), {"history": True, "snapshot": base}) for every key of the chosen
    snapshots (`snapshots`: view → snapshot id), read in `shards` splits per view."""

    RESOURCE_HINTS = IO_HINTS

    def __init__(
        self,
        project: str,
        endpoint: str | None,
        table: str,
        snapshots: Mapping[str, str],
        shards: int = SNAPSHOT_SHARDS,
    ) -> None:
        super().__init__()
        self.project, self.endpoint, self.table = project, endpoint, table
        self.snapshots, self.shards = dict(snapshots), shards

    def expand(self, pbegin: beam.pvalue.PBegin) -> PColl:
        splits = [
            (view, snapshot_id, shard)
            for view, snapshot_id in sorted(self.snapshots.items())
            for shard in range(self.shards)
        ]
        rows: PColl = (
            pbegin
            | "Splits" >> beam.Create(splits)
            | "SpreadSplits" >> beam.Reshuffle()
            | "ReadSplits" >> beam.FlatMap(_read_split, self.project, self.endpoint, self.table)
        )
        return rows
