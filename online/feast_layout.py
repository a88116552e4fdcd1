"""Where Feast 0.67 puts a feature view's rows in Redis and Bigtable.

Feast owns this layout; every name here comes from Feast's own store modules, and
`tests/unit/online/test_feast_layout.py` pins the bytes, so a Feast upgrade that moves
anything fails a test instead of silently writing rows Feast cannot read.

Redis (`feast.infra.online_stores.redis`): one hash per entity, shared by every view of
that entity. Key: `serialize_entity_key(entity_key, version) + project` (`_redis_key`).
Fields: `_mmh3("<view>:<feature>")` (4 bytes) -> serialized `ValueProto`;
`_ts:<view>` -> serialized `google.protobuf.Timestamp` of the row's event time. We add
`_vf:<view>` -> valid_from in integer microseconds, which Feast never reads.

Bigtable (`feast.infra.online_stores.bigtable`): one table per entity combination,
`<project>.<sorted entity names joined by ->` (`_get_table_name`, hashed when long);
row key `<mmh3 of serialized entity key, hex>#<view>` (`_compute_row_key`); family
`features`; qualifier `<feature>` -> serialized `ValueProto`, qualifier `event_ts` ->
ISO-8601 event time. Feast reads the newest cell of each column.
"""

from __future__ import annotations

from dataclasses import dataclass

import mmh3
from feast import FeatureView, RepoConfig
from feast.infra.online_stores.bigtable import BigtableOnlineStore
from feast.infra.online_stores.helpers import _mmh3, _redis_key, compute_versioned_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto

REDIS_EVENT_TS_PREFIX = "_ts:"
"""Feast's Redis field holding a view's event timestamp (literal in Feast's redis.py)."""

REDIS_VALID_FROM_PREFIX = "_vf:"
"""Our Redis field holding a view's valid_from in microseconds, for newer-wins writes."""

BIGTABLE_FAMILY: str = BigtableOnlineStore.feature_column_family
BIGTABLE_EVENT_TS = b"event_ts"
"""Feast's Bigtable qualifier of the event timestamp (literal in Feast's bigtable.py)."""

_FEAST_BIGTABLE = BigtableOnlineStore()


def online_view_name(config: RepoConfig, view: FeatureView) -> str:
    """The view's name in the online store (`_v<N>` suffixed when Feast versions views)."""
    versioning = bool(getattr(config.registry, "enable_online_feature_view_versioning", False))
    return compute_versioned_name(view, versioning)


@dataclass(frozen=True)
class RedisViewLayout:
    """The Redis hash fields of one feature view, in the view's feature order."""

    name: str
    feature_fields: tuple[bytes, ...]
    event_ts_field: bytes
    valid_from_field: bytes


def redis_view_layout(config: RepoConfig, view: FeatureView) -> RedisViewLayout:
    name = online_view_name(config, view)
    return RedisViewLayout(
        name=name,
        feature_fields=tuple(_mmh3(f"{name}:{field.name}") for field in view.features),
        event_ts_field=f"{REDIS_EVENT_TS_PREFIX}{name}".encode(),
        valid_from_field=f"{REDIS_VALID_FROM_PREFIX}{name}".encode(),
    )


def redis_key(config: RepoConfig, entity_key: EntityKeyProto) -> bytes:
    """The Redis key of an entity's hash, exactly as Feast's reader computes it."""
    return _redis_key(
        config.project,
        entity_key,
        entity_key_serialization_version=config.entity_key_serialization_version,
    )


def redis_key_of(serialized_key: bytes, project: bytes) -> bytes:
    """`redis_key` from an entity key already serialized by Feast's `serialize_entity_key`
    and the project's name in UTF-8 (what `_redis_key` joins)."""
    return serialized_key + project


def bigtable_row_key_of(serialized_key: bytes, view_suffix: bytes) -> bytes:
    """`bigtable_row_key` from an entity key already serialized by Feast's
    `serialize_entity_key` and `b"#" + view name` (Feast's `compute_entity_id` is the
    hex of the key's 128-bit murmur3)."""
    entity_id: bytes = mmh3.hash_bytes(serialized_key).hex().encode()
    return entity_id + view_suffix


def bigtable_table_name(config: RepoConfig, view: FeatureView) -> str:
    return BigtableOnlineStore._get_table_name(config=config, feature_view=view)


def bigtable_row_key(config: RepoConfig, view: FeatureView, entity_key: EntityKeyProto) -> bytes:
    """The row key Feast's Bigtable reader looks up (it uses the unversioned view name)."""
    return _FEAST_BIGTABLE._compute_row_key(
        entity_key=entity_key, feature_view_name=view.name, config=config
    )
