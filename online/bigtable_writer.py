"""Writes `OnlineRow`s to Feast's Bigtable online store, newest change point wins.

Rows land where Feast's `BigtableOnlineStore` reads them (see `online.feast_layout`).
Newer-wins comes from the cells' own timestamps: every cell of a row is written at the
row's valid_from, and Feast's reader takes the newest cell of each column, so an older
row written late only adds older versions (trimmed by the family's max-versions rule)
and an equal valid_from overwrites the same cells: idempotent.

Bigtable keeps cell timestamps at millisecond granularity, so valid_from is truncated
to the millisecond. Two change points of one entity less than a millisecond apart that
land in different `write` calls share their cells, and the later *write* wins, not the
later valid_from (within one call the newer row is kept). Rows Feast itself writes use
the server's clock as cell timestamp, so they hide ours until a newer valid_from comes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from feast import FeatureView, RepoConfig, utils
from feast.infra.online_stores.bigtable import (
    BIGTABLE_CLIENT_CONNECTION_POOL_SIZE,
    MUTATIONS_PER_OP,
    BigtableOnlineStoreConfig,
)
from google.api_core import exceptions as api_errors
from google.cloud import bigtable
from google.cloud.bigtable.column_family import MaxVersionsGCRule
from google.cloud.bigtable.row import DirectRow
from google.cloud.bigtable.table import Table
from google.rpc import code_pb2
from google.rpc.status_pb2 import Status

from feature_store.errors import ConfigError
from online.entity_keys import require_key_version
from online.feast_layout import (
    BIGTABLE_EVENT_TS,
    BIGTABLE_FAMILY,
    bigtable_row_key_of,
    bigtable_table_name,
)
from online.rows import EncodedRow, OnlineRow, RowEncoder, ValueConversionError, newest_per_key
from online.write_support import DeferredWrite, RetryPolicy, WriteStats, call_with_retry

logger = logging.getLogger(__name__)

_TRANSIENT_CODES = frozenset(
    {code_pb2.ABORTED, code_pb2.DEADLINE_EXCEEDED, code_pb2.UNAVAILABLE, code_pb2.INTERNAL}
)
_TRANSIENT_ERRORS = (
    api_errors.Aborted,
    api_errors.DeadlineExceeded,
    api_errors.ServiceUnavailable,
    api_errors.InternalServerError,
)
_DEFAULT_MAX_VERSIONS = 2  # Feast's BigtableOnlineStoreConfig default


class _RowsLeftToRetry(Exception):
    """Some rows of a request failed with a transient status."""


def cell_timestamp(valid_from: datetime) -> datetime:
    """valid_from truncated to the millisecond, the granularity Bigtable keeps."""
    return valid_from.replace(microsecond=valid_from.microsecond - valid_from.microsecond % 1000)


class BigtableOnlineWriter:
    """Newer-wins, idempotent, batched writer of rows Feast's Bigtable store reads."""

    store = "bigtable"

    def __init__(
        self,
        repo_config: RepoConfig,
        project: str | None = None,
        instance: str | None = None,
        *,
        feature_views: Sequence[FeatureView],
        retry: RetryPolicy | None = None,
    ) -> None:
        """`project`/`instance` default to the repo config's Bigtable online store, as do
        the request size and concurrency (Feast's `mutations_per_write`,
        `write_concurrency`)."""
        require_key_version(repo_config, "Bigtable online writer")
        self._config = repo_config
        self._settings = _store_settings(repo_config, project, instance)
        self._encoder = RowEncoder(feature_views)
        self._views = {view.name: view for view in feature_views}
        self._table_names = {v.name: bigtable_table_name(repo_config, v) for v in feature_views}
        self._retry = retry or RetryPolicy()
        self._client = bigtable.Client(project=self._settings.project)
        self._instance = self._client.instance(self._settings.instance)
        self._tables: dict[str, Table] = {}
        self._row_key_suffixes: dict[str, bytes] = {}

    def write(self, rows: Sequence[OnlineRow]) -> WriteStats:
        return self.write_encoded(self._encoder.encode_all(rows))

    def prepare_encoded(self, rows: Sequence[EncodedRow]) -> DeferredWrite:
        """The write of `rows`, run when its result is asked for (the mutations'
        requests are not held open between calls)."""
        return DeferredWrite(lambda: self.write_encoded(rows))

    def write_encoded(self, rows: Sequence[EncodedRow]) -> WriteStats:
        newest = newest_per_key(
            (bigtable_row_key_of(row.entity_key, self._row_key_suffix(row.view)), row)
            for row in rows
        )
        by_table: dict[str, list[tuple[DirectRow, int]]] = {}
        for row_key, row in newest.items():
            cells = len(row.values) + 1
            table = self._table_names[row.view]
            by_table.setdefault(table, []).append((self._direct_row(row_key, row), cells))
        requests = [(t, req) for t, direct in by_table.items() for req in self._requests(direct)]
        workers = min(self._settings.write_concurrency, len(requests))
        if workers <= 1:
            retries = sum(self._mutate(table, request) for table, request in requests)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                retries = sum(pool.map(lambda job: self._mutate(*job), requests))
        return WriteStats(
            store=self.store,
            rows=len(rows),
            coalesced=len(rows) - len(newest),
            written=len(newest),
            retries=retries,
        )

    def ensure_tables(self, feature_views: Sequence[FeatureView] | None = None) -> list[str]:
        """Create the tables and column family Feast reads, where missing (as `feast apply`
        does); return the tables created. Not called by `write`."""
        admin = bigtable.Client(project=self._settings.project, admin=True)
        instance = admin.instance(self._settings.instance)
        created: list[str] = []
        views = self._views.values() if feature_views is None else feature_views
        for name in sorted({bigtable_table_name(self._config, view) for view in views}):
            table = instance.table(name)
            if not table.exists():
                logger.info("creating Bigtable table %s", name)
                table.create()
                created.append(name)
            if BIGTABLE_FAMILY not in table.list_column_families():
                rule = MaxVersionsGCRule(self._settings.max_versions)
                table.column_family(BIGTABLE_FAMILY, gc_rule=rule).create()
        return created

    def close(self) -> None:
        self._client.close()

    def _row_key_suffix(self, name: str) -> bytes:
        """The row key's `#<view>` (Feast's reader uses the unversioned view name)."""
        suffix = self._row_key_suffixes.get(name)
        if suffix is None:
            suffix = self._row_key_suffixes[name] = f"#{self._view(name).name}".encode()
        return suffix

    def _view(self, name: str) -> FeatureView:
        view = self._views.get(name)
        if view is None:
            msg = f"unknown feature view `{name}`; known: {sorted(self._views)}"
            raise ValueConversionError(msg)
        return view

    def _direct_row(self, row_key: bytes, row: EncodedRow) -> DirectRow:
        direct = DirectRow(row_key)
        at = cell_timestamp(row.valid_from)
        names = self._encoder.feature_names(row.view)
        for name, value in zip(names, row.values, strict=True):
            direct.set_cell(BIGTABLE_FAMILY, name.encode(), value, timestamp=at)
        event_ts = utils.make_tzaware(row.valid_from).isoformat().encode()
        direct.set_cell(BIGTABLE_FAMILY, BIGTABLE_EVENT_TS, event_ts, timestamp=at)
        return direct

    def _requests(self, rows: list[tuple[DirectRow, int]]) -> Iterator[list[DirectRow]]:
        """Rows grouped into requests of at most `mutations_per_write` cells (Feast's)."""
        request: list[DirectRow] = []
        cells = 0
        for direct, row_cells in rows:
            if request and cells + row_cells > self._settings.mutations_per_write:
                yield request
                request, cells = [], 0
            request.append(direct)
            cells += row_cells
        if request:
            yield request

    def _mutate(self, table_name: str, rows: list[DirectRow]) -> int:
        """One bulk mutation, retrying only the rows that failed transiently."""
        table = self._table(table_name)
        pending = rows

        def attempt() -> None:
            nonlocal pending
            statuses = table.mutate_rows(pending, retry=None)
            pending = _transient_failures(table_name, pending, statuses)
            if pending:
                msg = f"{len(pending)} rows failed transiently, e.g. {pending[0].row_key!r}"
                raise _RowsLeftToRetry(msg)

        target = f"bigtable table `{table_name}` in instance `{self._settings.instance}`"
        _, retries = call_with_retry(
            attempt,
            policy=self._retry,
            is_transient=lambda err: isinstance(err, (_RowsLeftToRetry, *_TRANSIENT_ERRORS)),
            target=target,
        )
        return retries

    def _table(self, name: str) -> Table:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = self._instance.table(name)
        return table


@dataclass(frozen=True)
class _Settings:
    project: str | None
    instance: str
    max_versions: int = _DEFAULT_MAX_VERSIONS
    mutations_per_write: int = MUTATIONS_PER_OP
    write_concurrency: int = BIGTABLE_CLIENT_CONNECTION_POOL_SIZE


def _store_settings(config: RepoConfig, project: str | None, instance: str | None) -> _Settings:
    online = config.online_store
    if isinstance(online, BigtableOnlineStoreConfig):
        return _Settings(
            project=project or online.project_id,
            instance=instance or online.instance,
            max_versions=online.max_versions,
            mutations_per_write=online.mutations_per_write,
            write_concurrency=online.write_concurrency,
        )
    if instance is None:
        msg = (
            f"online store of project `{config.project}` is {online.type!r}, not bigtable; "
            "pass a Bigtable instance"
        )
        raise ConfigError(msg)
    return _Settings(project=project, instance=instance)


def _transient_failures(
    table_name: str, rows: list[DirectRow], statuses: Sequence[Status]
) -> list[DirectRow]:
    """The rows to retry; raises on the first row Bigtable rejected for good."""
    failed = [(row, status) for row, status in zip(rows, statuses, strict=True) if status.code]
    for row, status in failed:
        if status.code not in _TRANSIENT_CODES:
            hint = " (create it with ensure_tables)" if status.code == code_pb2.NOT_FOUND else ""
            msg = (
                f"table `{table_name}` rejected row {row.row_key!r}{hint}: "
                f"code {status.code} {status.message}"
            )
            raise ValueError(msg)
    return [row for row, _ in failed]
