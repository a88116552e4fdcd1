"""Feast online store types whose writes keep the newer change point.

The generated `feature_store.yaml` names these by class path
(`online.feast_stores.NewerWinsRedisOnlineStore`, `...NewerWinsBigtableOnlineStore`), so
Feast's own `materialize`, `write_to_online_store` and `push` write through the
project's newer-wins writers (`online.redis_writer`, `online.bigtable_writer`): an older
change point never overwrites a newer one, whoever writes last, whether the stream, the
backfill or Feast. Reads, table creation and teardown are Feast's own, inherited
unchanged: the writers store exactly the layout Feast's readers expect.

Feast hands `online_write_batch` one view's rows as (entity key, values by feature,
event timestamp, created timestamp); the event timestamp is the view's `valid_from`
(`feature_store.feast_repo`), which is what newer-wins compares.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from feast import FeatureView, RepoConfig
from feast.infra.online_stores.bigtable import BigtableOnlineStore, BigtableOnlineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from typing_extensions import override

from online.bigtable_writer import BigtableOnlineWriter
from online.entity_keys import serialize_proto
from online.redis_writer import RedisOnlineWriter
from online.rows import EncodedRow
from online.write_support import OnlineWriter, WriteStats

logger = logging.getLogger(__name__)

FeastRow = tuple[EntityKeyProto, dict[str, ValueProto], datetime, datetime | None]

REDIS_TYPE = "online.feast_stores.NewerWinsRedisOnlineStore"
BIGTABLE_TYPE = "online.feast_stores.NewerWinsBigtableOnlineStore"
_EMPTY = ValueProto().SerializeToString()


def encoded_rows(view: FeatureView, data: Sequence[FeastRow]) -> list[EncodedRow]:
    """Feast's rows as the writers' `EncodedRow`s: values in the view's feature order
    (a feature Feast left out is written as an empty value, which Feast reads as None),
    event timestamps as aware UTC (Feast hands naive UTC ones from Arrow), entity keys
    serialized by Feast's own `serialize_entity_key`."""
    names = [feature.name for feature in view.features]
    rows = []
    for entity_key, values, event_ts, _created in data:
        valid_from = event_ts if event_ts.tzinfo else event_ts.replace(tzinfo=UTC)
        encoded = tuple(values[n].SerializeToString() if n in values else _EMPTY for n in names)
        key = serialize_proto(entity_key)
        rows.append(EncodedRow(view.name, key, encoded, valid_from.astimezone(UTC)))
    return rows


def _write(
    writer: OnlineWriter,
    view: FeatureView,
    data: Sequence[FeastRow],
    progress: Callable[[int], Any] | None,
) -> WriteStats:
    try:
        stats = writer.write_encoded(encoded_rows(view, data))
    finally:
        writer.close()
    if progress:
        progress(len(data))
    logger.debug("Feast wrote %s rows of %s newer-wins: %s", len(data), view.name, stats)
    return stats


class NewerWinsRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis online store config; only the type differs."""

    type: Literal["online.feast_stores.NewerWinsRedisOnlineStore"] = REDIS_TYPE  # type: ignore[assignment]


class NewerWinsRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store; writes go through `RedisOnlineWriter` (newer wins)."""

    @override
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[FeastRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        _write(RedisOnlineWriter(config, feature_views=[table]), table, data, progress)

    @override
    async def online_write_batch_async(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[FeastRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        await asyncio.to_thread(self.online_write_batch, config, table, data, progress)


class NewerWinsBigtableOnlineStoreConfig(BigtableOnlineStoreConfig):
    """Feast's Bigtable online store config; only the type differs."""

    type: Literal["online.feast_stores.NewerWinsBigtableOnlineStore"] = BIGTABLE_TYPE  # type: ignore[assignment]


class NewerWinsBigtableOnlineStore(BigtableOnlineStore):
    """Feast's Bigtable online store; writes go through `BigtableOnlineWriter`."""

    @override
    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[FeastRow],
        progress: Callable[[int], Any] | None,
    ) -> None:
        _write(BigtableOnlineWriter(config, feature_views=[table]), table, data, progress)
