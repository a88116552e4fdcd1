"""The sink's store spec: picklable, self-describing, refusing empty or bad settings."""

from __future__ import annotations

import pickle

import pytest
from feast import RepoConfig
from feast.repo_config import RegistryConfig

from feature_store.errors import ConfigError
from online.sink import OnlineStoreSpec
from tests.unit.online.views import user_view

VIEWS = [user_view("user_activity"), user_view("user_activity_7d")]


def config(online_store: dict[str, object]) -> RepoConfig:
    return RepoConfig(
        project="reviews",
        registry=RegistryConfig(path="registry.db"),
        provider="local",
        online_store=online_store,
        entity_key_serialization_version=3,
    )


REDIS = config({"type": "redis", "connection_string": "cache:6379", "key_ttl_seconds": 60})
BIGTABLE = config({"type": "bigtable", "project_id": "p", "instance": "i"})


def test_spec_round_trips_views_and_configs() -> None:
    spec = OnlineStoreSpec.create(redis=REDIS, bigtable=BIGTABLE, feature_views=VIEWS)
    copy = pickle.loads(pickle.dumps(spec))
    assert copy == spec
    assert copy.stores == ("redis", "bigtable")
    assert [v.name for v in copy.views()] == ["user_activity", "user_activity_7d"]
    assert copy.views()[0].features == VIEWS[0].features
    redis = RepoConfig(**copy.repo_configs["redis"]).online_store
    assert (redis.connection_string, redis.key_ttl_seconds) == ("cache:6379", 60)
    assert RepoConfig(**copy.repo_configs["bigtable"]).online_store.instance == "i"


def test_fingerprint_tells_specs_apart() -> None:
    spec = OnlineStoreSpec.create(redis=REDIS, feature_views=VIEWS)
    assert spec.fingerprint == OnlineStoreSpec.create(redis=REDIS, feature_views=VIEWS).fingerprint
    other = OnlineStoreSpec.create(redis=REDIS, feature_views=VIEWS, batch_size=10)
    assert other.fingerprint != spec.fingerprint


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({}, "none"), ({"redis": REDIS, "batch_size": 0}, "0")],
)
def test_spec_refuses_no_store_or_bad_batch(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        OnlineStoreSpec.create(feature_views=VIEWS, **kwargs)  # type: ignore[arg-type]
