"""Pins the bytes of Feast's online layout that the writers produce.

Expected values are built by hand from the layout Feast documents, not with Feast's
helpers, so a Feast upgrade that changes the layout (and with it, every stored row)
fails here first.
"""

from __future__ import annotations

import struct
from importlib.metadata import version

import mmh3
import pytest
from feast import RepoConfig
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RegistryConfig

from online.feast_layout import (
    BIGTABLE_EVENT_TS,
    BIGTABLE_FAMILY,
    bigtable_row_key,
    bigtable_table_name,
    redis_key,
    redis_view_layout,
)
from tests.unit.online.views import user_view

STRING, INT64 = 2, 4  # feast.types.Value.ValueType enum numbers


def config(versioning: bool = False) -> RepoConfig:
    return RepoConfig(
        project="reviews",
        registry=RegistryConfig(
            path="registry.db", enable_online_feature_view_versioning=versioning
        ),
        provider="local",
        online_store={"type": "redis"},
        entity_key_serialization_version=3,
    )


def string_key(value: str) -> EntityKeyProto:
    return EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val=value)])


def serialized_v3(join_key: str, value_type: int, value: bytes) -> bytes:
    """Entity key serialization v3: key count, then (type, len, name), (type, len, value)."""
    name = join_key.encode()
    return (
        struct.pack("<III", 1, STRING, len(name))
        + name
        + struct.pack("<II", value_type, len(value))
        + value
    )


def test_feast_is_the_pinned_version() -> None:
    assert version("feast") == "0.67.0", "re-check online.feast_layout against this Feast"


def test_redis_key_is_serialized_entity_key_then_project() -> None:
    assert redis_key(config(), string_key("u-42")) == (
        serialized_v3("user_id", STRING, b"u-42") + b"reviews"
    )
    int_key = EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(int64_val=42)])
    assert redis_key(config(), int_key) == (
        serialized_v3("user_id", INT64, struct.pack("<q", 42)) + b"reviews"
    )


def test_redis_fields_are_murmur3_of_view_and_feature() -> None:
    layout = redis_view_layout(config(), user_view())
    expected = tuple(
        mmh3.hash(f"user_activity:{f.name}", signed=False).to_bytes(4, "little")
        for f in user_view().features
    )
    assert layout.feature_fields == expected
    assert layout.event_ts_field == b"_ts:user_activity"
    assert layout.valid_from_field == b"_vf:user_activity"


def test_versioned_view_fields_carry_the_version_like_feast_reader() -> None:
    view = user_view()
    view.current_version_number = 2
    assert redis_view_layout(config(versioning=False), view).name == "user_activity"
    layout = redis_view_layout(config(versioning=True), view)
    assert layout.event_ts_field == b"_ts:user_activity_v2"
    assert layout.feature_fields[0] == mmh3.hash(
        "user_activity_v2:review_count", signed=False
    ).to_bytes(4, "little")


def test_bigtable_table_row_key_and_columns() -> None:
    view = user_view()
    serialized = serialized_v3("user_id", STRING, b"u-42")
    assert bigtable_table_name(config(), view) == "reviews.user"
    assert bigtable_row_key(config(), view, string_key("u-42")) == (
        mmh3.hash_bytes(serialized).hex().encode() + b"#user_activity"
    )
    assert (BIGTABLE_FAMILY, BIGTABLE_EVENT_TS) == ("features", b"event_ts")


@pytest.mark.parametrize("project", ["p" * 60, "reviews_staging_environment_long_name_x"])
def test_bigtable_table_names_fit_bigtable_limit(project: str) -> None:
    long_config = config().model_copy(update={"project": project})
    assert len(bigtable_table_name(long_config, user_view())) <= 50
