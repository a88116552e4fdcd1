"""The newer-wins Feast online store types: loaded from their type, Feast's rows encoded
for the writers. (The writes themselves: tests/integration/test_feast_online_stores.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from feast import RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.bigtable import BigtableOnlineStore
from feast.infra.online_stores.helpers import get_online_store_from_config
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RegistryConfig

from feature_store.config import PlatformConfig
from feature_store.feast_repo import repo_config
from online.feast_stores import (
    BIGTABLE_TYPE,
    REDIS_TYPE,
    NewerWinsBigtableOnlineStore,
    NewerWinsRedisOnlineStore,
    NewerWinsRedisOnlineStoreConfig,
    encoded_rows,
)
from online.redis_writer import connect_redis
from tests.unit.online.views import user_view


def config(online_store: dict[str, object]) -> RepoConfig:
    return RepoConfig(
        project="reviews",
        registry=RegistryConfig(path="registry.db"),
        provider="local",
        online_store=online_store,
        entity_key_serialization_version=3,
    )


def test_the_types_in_the_generated_repo_are_these_classes() -> None:
    platform = PlatformConfig()
    assert repo_config(platform, "redis")["online_store"]["type"] == REDIS_TYPE
    assert repo_config(platform, "bigtable")["online_store"]["type"] == BIGTABLE_TYPE
    redis = config(repo_config(platform, "redis")["online_store"])
    assert type(get_online_store_from_config(redis.online_store)) is NewerWinsRedisOnlineStore
    bigtable = config(repo_config(platform, "bigtable")["online_store"])
    store = get_online_store_from_config(bigtable.online_store)
    assert type(store) is NewerWinsBigtableOnlineStore
    assert isinstance(store, BigtableOnlineStore)


def test_the_redis_config_is_feasts_and_the_writer_reads_it() -> None:
    redis = config({"type": REDIS_TYPE, "connection_string": "cache:6380,db=1"})
    online = redis.online_store
    assert isinstance(online, NewerWinsRedisOnlineStoreConfig)
    assert isinstance(online, RedisOnlineStoreConfig)
    assert isinstance(get_online_store_from_config(online), RedisOnlineStore)
    client, target, ttl = connect_redis(redis, None)  # connects lazily: nothing is sent
    assert (target, ttl) == ("redis at cache:6380", 0)
    assert client.connection_pool.connection_kwargs["db"] == 1


def _value(**kwargs: object) -> ValueProto:
    return ValueProto(**kwargs)  # type: ignore[arg-type]


def test_feasts_rows_become_encoded_rows_in_view_order() -> None:
    view = user_view()
    key = EntityKeyProto(join_keys=["user_id"], entity_values=[_value(string_val="u1")])
    values = {"avg_rating": _value(double_val=4.5), "review_count": _value(int64_val=3)}
    # Feast hands naive UTC timestamps from Arrow.
    naive = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC).replace(tzinfo=None)
    aware = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    rows = encoded_rows(view, [(key, values, naive, None), (key, {}, aware, naive)])
    first, second = rows
    assert first.view == second.view == "user_activity"
    assert first.entity_key == serialize_entity_key(key, entity_key_serialization_version=3)
    assert first.valid_from == naive.replace(tzinfo=UTC)
    assert second.valid_from == datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    assert second.valid_from.tzinfo is UTC
    names = [f.name for f in view.features]
    assert len(first.values) == len(names)
    decoded = [ValueProto.FromString(v) for v in first.values]
    assert decoded[names.index("review_count")].int64_val == 3
    assert decoded[names.index("avg_rating")].double_val == 4.5
    assert decoded[names.index("last_category")].WhichOneof("val") is None
    assert all(ValueProto.FromString(v).WhichOneof("val") is None for v in second.values)
