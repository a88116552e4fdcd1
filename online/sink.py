"""`WriteToOnlineStores`: the Beam sink of `OnlineRow`s into Feast's online stores.

The streaming job and the backfill end in it. A bundle's rows are coalesced to the
newest per (view, entity) and, every `batch_size` of them and at the bundle's end,
encoded once (column by column) and handed to each store's writer. The writers are
newer-wins and idempotent, so a bundle Beam retries rewrites the same cells and an
older row never hides a newer one. Rows that cannot be encoded leave as `RejectedRow`s
(in their own window), the transform's only output.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import apache_beam as beam
from apache_beam.pvalue import PCollection
from apache_beam.transforms.window import BoundedWindow
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue
from feast import FeatureStore, FeatureView, RepoConfig
from feast.protos.feast.core.FeatureView_pb2 import FeatureView as FeatureViewProto
from feast.repo_config import load_repo_config

from common.beam_types import TimestampParam, WindowParam
from common.metrics import JobCounter
from common.stages import IO_HINTS, Stage
from feature_store.errors import ConfigError
from online.bigtable_writer import BigtableOnlineWriter
from online.redis_settings import (
    RedisSecurity,
    RedisTimeouts,
    refuse_inline_password,
    strip_password,
)
from online.redis_writer import RedisOnlineWriter
from online.rows import OnlineRow, RejectedRow, RowEncoder, entity_identity
from online.write_support import (
    OnlineStoreWriteError,
    OnlineWriter,
    PreparedWrite,
    RetryPolicy,
)

logger = logging.getLogger(__name__)

METRICS_NAMESPACE = "online_stores"
ROWS_TAKEN = "online_rows_taken"
"""Rows the sink is done with (written, older than what the store held, coalesced with a
newer row of the bundle, or rejected), counted once their write has returned: what a job
still holds between its stateful step and the stores (`jobs.stream.StreamProgress`)."""
STORES = ("redis", "bigtable")
DEFAULT_BATCH_SIZE = 1000

RepoConfigSource = RepoConfig | str | Path
"""A RepoConfig, or the path of a Feast repo (its `feature_store.yaml`)."""


@dataclass(frozen=True, kw_only=True)
class OnlineStoreSpec:
    """Picklable description of where the sink writes: built on the launcher, read on
    the workers. Use `OnlineStoreSpec.create`."""

    feature_views: tuple[bytes, ...]
    repo_configs: Mapping[str, Mapping[str, object]]
    redis_connection: str | None = None
    bigtable_project: str | None = None
    bigtable_instance: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    redis_timeouts: RedisTimeouts = field(default_factory=RedisTimeouts)
    redis_security: RedisSecurity = field(default_factory=RedisSecurity)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    fingerprint: str = field(default="", compare=False)

    @classmethod
    def create(
        cls,
        *,
        redis: RepoConfigSource | None = None,
        bigtable: RepoConfigSource | None = None,
        feature_views: Sequence[FeatureView] | None = None,
        redis_connection: str | None = None,
        bigtable_project: str | None = None,
        bigtable_instance: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        redis_timeouts: RedisTimeouts | None = None,
        redis_security: RedisSecurity | None = None,
        retry: RetryPolicy | None = None,
    ) -> OnlineStoreSpec:
        """`redis` / `bigtable`: the Feast repo config each store is read through.
        `feature_views` default to those in the first config's registry."""
        configs = {
            name: _repo_config(source)
            for name, source in (("redis", redis), ("bigtable", bigtable))
            if source is not None
        }
        if not configs:
            msg = f"WriteToOnlineStores needs at least one of {STORES}, got none"
            raise ConfigError(msg)
        refuse_inline_password(redis_connection, "the online sink")
        if batch_size < 1:
            msg = f"batch_size must be positive, got {batch_size}"
            raise ConfigError(msg)
        if feature_views is None:
            feature_views = FeatureStore(config=next(iter(configs.values()))).list_feature_views()
        spec = cls(
            feature_views=tuple(v.to_proto().SerializeToString() for v in feature_views),
            repo_configs={name: _dump(config) for name, config in configs.items()},
            redis_connection=redis_connection,
            bigtable_project=bigtable_project,
            bigtable_instance=bigtable_instance,
            batch_size=batch_size,
            redis_timeouts=redis_timeouts or RedisTimeouts(),
            redis_security=redis_security or RedisSecurity(),
            retry=retry or RetryPolicy(),
        )
        return replace(spec, fingerprint=hashlib.sha256(pickle.dumps(spec)).hexdigest())

    @property
    def stores(self) -> tuple[str, ...]:
        return tuple(self.repo_configs)

    def views(self) -> list[FeatureView]:
        return [FeatureView.from_proto(FeatureViewProto.FromString(b)) for b in self.feature_views]

    def writers(self, views: Sequence[FeatureView]) -> dict[str, OnlineWriter]:
        writers: dict[str, OnlineWriter] = {}
        for store, raw in self.repo_configs.items():
            config = RepoConfig(**raw)
            if store == "redis":
                writers[store] = RedisOnlineWriter(
                    config,
                    self.redis_connection,
                    feature_views=views,
                    retry=self.retry,
                    timeouts=self.redis_timeouts,
                    security=self.redis_security,
                )
            else:
                writers[store] = BigtableOnlineWriter(
                    config,
                    self.bigtable_project,
                    self.bigtable_instance,
                    feature_views=views,
                    retry=self.retry,
                )
        return writers


def _dump(config: RepoConfig) -> dict[str, object]:
    """The config as plain data, with its online store as resolved (and maybe edited)."""
    data = config.model_dump(by_alias=True, exclude_unset=True)
    online = config.online_store.model_dump(mode="json")
    if isinstance(online.get("connection_string"), str):  # no password in the pickle
        online["connection_string"] = strip_password(online["connection_string"])
    data["online_store"] = online
    return data


def _repo_config(source: RepoConfigSource) -> RepoConfig:
    if isinstance(source, RepoConfig):
        return source
    path = Path(source)
    return load_repo_config(path, path / "feature_store.yaml")


class _Resources:
    """The encoder and writers of one spec, shared by every DoFn instance of a worker."""

    def __init__(self, spec: OnlineStoreSpec) -> None:
        views = spec.views()
        self.encoder = RowEncoder(views)
        self.writers = spec.writers(views)


# One encoder and set of writers per worker process and spec, held while a DoFn uses
# them (Beam's `Shared`: `setup` stays cheap even where the runner calls it per bundle).
_SHARED = shared.Shared()


def _resources(spec: OnlineStoreSpec) -> _Resources:
    held: _Resources = _SHARED.acquire(lambda: _Resources(spec), tag=spec.fingerprint)
    return held


_Buffered = tuple[OnlineRow, Timestamp, BoundedWindow]


class _WriteRowsFn(beam.DoFn):
    """Buffers a bundle's rows (newest per entity), encodes and writes them in batches.

    A batch's write is sent, and its answer read only when the next batch is encoded
    and packed (or at the bundle's end): the store works on one batch while this
    process builds the next. The next batch is sent only after the store answered the
    one before, so the writes keep their order (a retried batch never lands after a
    newer one), and a row counts as taken only once the store answered for its batch;
    the bundle ends after the last answer."""

    SINK = True  # a write to external stores: the local runner runs it as a sink

    def __init__(self, spec: OnlineStoreSpec) -> None:
        self._spec = spec
        self._written = {
            store: JobCounter(METRICS_NAMESPACE, f"rows_written_{store}") for store in spec.stores
        }
        self._retries = JobCounter(METRICS_NAMESPACE, "write_retries")
        self._rejected = JobCounter(METRICS_NAMESPACE, "rows_rejected")
        self._failures = {
            store: JobCounter(METRICS_NAMESPACE, f"write_failures_{store}") for store in spec.stores
        }
        self._taken = JobCounter(METRICS_NAMESPACE, ROWS_TAKEN)
        self._buffer: dict[tuple[str, Hashable], _Buffered] = {}
        self._received = 0  # rows of this bundle not yet in a sent batch
        self._pending: dict[str, PreparedWrite] = {}  # each store's write in flight
        self._pending_rows = 0  # rows received for the batch in flight

    def setup(self) -> None:
        self._shared = _resources(self._spec)

    def start_bundle(self) -> None:
        self._abandon()  # what a failed bundle left in flight
        self._buffer = {}
        self._received = 0

    def process(
        self,
        row: OnlineRow,
        timestamp: Timestamp = TimestampParam,
        window: BoundedWindow = WindowParam,
    ) -> Iterator[WindowedValue]:
        self._received += 1
        try:
            key = (row.view, entity_identity(row.entity_key))
            held = self._buffer.get(key)
        except TypeError as err:  # an unhashable entity value: no Feast key either
            yield self._reject((row, timestamp, window), f"bad entity key: {err}")
            return
        if held is None or row.valid_from >= held[0].valid_from:
            self._buffer[key] = (row, timestamp, window)
        if len(self._buffer) >= self._spec.batch_size:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        yield from self._flush()
        self._complete()

    def teardown(self) -> None:
        self._abandon()

    def _flush(self) -> Iterator[WindowedValue]:
        """Encodes and packs the buffered rows, waits for the batch in flight, then
        sends these."""
        buffered = list(self._buffer.values())
        self._buffer = {}
        rows, self._received = self._received, 0
        prepared: dict[str, PreparedWrite] = {}
        if buffered:
            encoded, rejected = self._shared.encoder.encode_valid([b[0] for b in buffered])
            if rejected:
                where = {id(b[0]): b for b in buffered}
                for row, reason in rejected:
                    yield self._reject(where[id(row)], reason)
            if encoded:
                prepared = {
                    store: writer.prepare_encoded(encoded)
                    for store, writer in self._shared.writers.items()
                }
        self._complete()
        if not prepared:
            self._count_taken(rows)  # nothing to write: rejected or none at all
            return
        for store, write in prepared.items():
            self._pending[store] = write
            write.start()
        self._pending_rows = rows

    def _complete(self) -> None:
        """Waits for the batch in flight; its rows are taken once every store answered."""
        try:
            for store in list(self._pending):
                write = self._pending[store]
                try:
                    stats = write.result()
                except OnlineStoreWriteError as err:
                    # One line per failing write; the bundle fails and the runner
                    # retries it (Dataflow: forever, so this counter is what an alert
                    # watches).
                    self._failures[store].inc()
                    logger.error(
                        "online store %s failed, the rows of this bundle will be retried: %s",
                        store,
                        err,
                    )
                    raise
                finally:
                    del self._pending[store]
                self._written[store].inc(stats.written)
                if stats.retries:
                    self._retries.inc(stats.retries)
        except BaseException:
            self._abandon()
            raise
        self._count_taken(self._pending_rows)
        self._pending_rows = 0

    def _count_taken(self, rows: int) -> None:
        """Rows written, coalesced or rejected: counted after the stores answered,
        never while their write is still to come."""
        if rows:
            self._taken.inc(rows)

    def _abandon(self) -> None:
        pending, self._pending = self._pending, {}
        for write in pending.values():
            write.abandon()
        self._pending_rows = 0

    def _reject(self, buffered: _Buffered, reason: str) -> WindowedValue:
        row, timestamp, window = buffered
        self._rejected.inc()
        logger.warning("online row of `%s` rejected: %s", row.view, reason)
        return WindowedValue(RejectedRow(row, reason), timestamp, (window,))


class WriteToOnlineStores(Stage):
    """Writes `OnlineRow`s to the online stores of `spec`; outputs the `RejectedRow`s.

    Metrics (namespace `online_stores`): `rows_written_<store>`, `write_retries`,
    `rows_rejected`, `write_failures_<store>` (writes that failed after the retries:
    their bundle fails and is retried), `online_rows_taken` (`ROWS_TAKEN`).
    """

    RESOURCE_HINTS = IO_HINTS

    def __init__(self, spec: OnlineStoreSpec) -> None:
        super().__init__()
        self._spec = spec

    def expand(self, rows: PCollection[OnlineRow]) -> PCollection[RejectedRow]:
        rejected: PCollection[RejectedRow] = rows | "WriteOnlineRows" >> beam.ParDo(
            _WriteRowsFn(self._spec)
        )
        return rejected
