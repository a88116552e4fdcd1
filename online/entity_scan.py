"""Which entities a feature view has rows for in an online store, read from the store
itself (Feast has no listing API). Used by the consistency check to find entities that
are online but absent offline.

Redis keys are Feast's serialized entity keys followed by the project, so the entities
come back by name. Bigtable row keys hold only a hash of the entity key
(`<mmh3 hex>#<view>`), so there the scan returns row keys, and a caller tells which
entities it expected by computing their row keys (`expected_keys`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from feast import FeatureView, RepoConfig
from feast.infra.key_encoding_utils import deserialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from online.feast_layout import bigtable_row_key, bigtable_table_name, redis_view_layout

SCAN_BATCH = 1000


def _value(value: ValueProto) -> str:
    kind = value.WhichOneof("val")
    return "" if kind is None else str(getattr(value, kind))


def redis_entities(
    config: RepoConfig, view: FeatureView, connection: str | None = None
) -> Iterator[str]:
    """The join key value of every entity with a row of `view` in Redis (single-key
    entities; a composite key comes back as its values joined by `|`)."""
    from online.redis_writer import connect_redis

    client, _, _ = connect_redis(config, connection)
    layout = redis_view_layout(config, view)
    suffix = config.project.encode()
    try:
        keys: list[bytes] = []
        for key in client.scan_iter(match=b"*" + suffix, count=SCAN_BATCH):
            keys.append(key)
            if len(keys) >= SCAN_BATCH:
                yield from _with_view(client, keys, layout.event_ts_field, config, suffix)
                keys = []
        yield from _with_view(client, keys, layout.event_ts_field, config, suffix)
    finally:
        client.close()


def _with_view(
    client: object, keys: list[bytes], field: bytes, config: RepoConfig, suffix: bytes
) -> Iterator[str]:
    if not keys:
        return
    pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
    for key in keys:
        pipe.hexists(key, field)
    for key, present in zip(keys, pipe.execute(), strict=True):
        if not present:
            continue
        entity = deserialize_entity_key(
            key[: -len(suffix)],
            entity_key_serialization_version=config.entity_key_serialization_version,
        )
        yield "|".join(_value(v) for v in entity.entity_values)


def bigtable_row_keys(
    config: RepoConfig, view: FeatureView, project: str, instance: str
) -> Iterator[bytes]:
    """Every row key of `view` in its Bigtable table (keys only, no cell values)."""
    from google.cloud import bigtable
    from google.cloud.bigtable import row_filters

    client = bigtable.Client(project=project, admin=False)
    table = client.instance(instance).table(bigtable_table_name(config, view))
    only_keys = row_filters.RowFilterChain(
        filters=[
            row_filters.RowKeyRegexFilter(b"^[0-9a-f]+#" + re.escape(view.name).encode() + b"$"),
            row_filters.CellsRowLimitFilter(1),
            row_filters.StripValueTransformerFilter(True),
        ]
    )
    suffix = b"#" + view.name.encode()
    for row in table.read_rows(filter_=only_keys):
        if row.row_key.endswith(suffix):
            yield row.row_key


def expected_keys(
    config: RepoConfig, view: FeatureView, join_key: str, values: Iterable[str]
) -> dict[bytes, str]:
    """Bigtable row key -> entity, for entities of a single string join key."""
    out: dict[bytes, str] = {}
    for value in values:
        key = EntityKeyProto(join_keys=[join_key], entity_values=[ValueProto(string_val=value)])
        out[bigtable_row_key(config, view, key)] = value
    return out
