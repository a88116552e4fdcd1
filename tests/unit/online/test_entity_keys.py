"""The writers' entity keys are byte for byte the keys Feast's own functions compute.

The reference is Feast: the row's key converted to an `EntityKey` proto the general way
(each value through Feast's `python_values_to_proto_values` with the join key's
declared type, or the inferred one), then `serialize_entity_key`, `_redis_key` and the
Bigtable store's `_compute_row_key`. Keys Feast cannot serialize must be refused, not
written under some other key.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from feast import Entity, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.bigtable import BigtableOnlineStore
from feast.infra.online_stores.helpers import _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.repo_config import RegistryConfig
from feast.type_map import python_values_to_proto_values
from feast.types import Bytes, Int32, Int64, String
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.errors import ConfigError
from online.entity_keys import require_key_version
from online.feast_layout import bigtable_row_key_of, redis_key_of
from online.rows import RowEncoder, ValueConversionError

DECLARED = {"user_id": String, "business_id": Int64, "shard": Int32, "blob": Bytes}
FEAST_TYPES = {
    "user_id": ValueType.STRING,
    "business_id": ValueType.INT64,
    "shard": ValueType.INT32,
    "blob": ValueType.BYTES,
}
UNDECLARED = ("device", "zone")
AT = datetime(2025, 3, 1, tzinfo=UTC)


def view(join_keys: tuple[str, ...]) -> FeatureView:
    entities = [
        Entity(name=f"e_{name}", join_keys=[name], value_type=FEAST_TYPES[name])
        for name in join_keys
    ]
    return FeatureView(
        name="keyed",
        entities=entities,
        schema=[
            *(Field(name=name, dtype=DECLARED[name]) for name in join_keys),
            Field(name="n", dtype=Int64),
        ],
        source=FileSource(path="unused.parquet", timestamp_field="event_ts"),
        online=True,
    )


def config(version: int = 3) -> RepoConfig:
    return RepoConfig(
        project="reviews",
        registry=RegistryConfig(path="registry.db"),
        provider="local",
        online_store={"type": "redis"},
        entity_key_serialization_version=version,
    )


def feast_key(
    names: list[str], values: list[object], declared: tuple[str, ...] = tuple(DECLARED)
) -> bytes | None:
    """Feast's serialized key (the types of the `declared` join keys, the others
    inferred), or None where Feast cannot build or serialize one."""
    try:
        protos = [
            python_values_to_proto_values(
                [v], FEAST_TYPES[n] if n in declared else ValueType.UNKNOWN
            )[0]
            for n, v in zip(names, values, strict=True)
        ]
        proto = EntityKeyProto(join_keys=names, entity_values=protos)
        serialized: bytes = serialize_entity_key(proto, entity_key_serialization_version=3)
    except (TypeError, ValueError, AssertionError, OverflowError):
        return None
    return serialized


VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, -1, 2**31 - 1, -(2**31), 2**31, 2**63 - 1, -(2**63), 2**63]),
    st.binary(min_size=1, max_size=6),  # b"": see test_empty_bytes_are_a_bytes_value
    st.booleans(),
    st.floats(allow_nan=False),
    st.none(),
)
NAMES = st.lists(st.sampled_from([*DECLARED, *UNDECLARED]), min_size=1, max_size=3, unique=True)
ENCODERS = {
    declared: RowEncoder([view(declared)])
    for declared in [(), ("user_id",), ("business_id",), ("shard", "blob"), tuple(DECLARED)]
}


@settings(max_examples=400, deadline=None)
@given(names=NAMES, data=st.data())
def test_serialized_keys_equal_feasts_or_are_refused(names: list[str], data: st.DataObject) -> None:
    declared = data.draw(st.sampled_from([d for d in ENCODERS if set(d) <= set(names)]))
    values = data.draw(st.lists(VALUES, min_size=len(names), max_size=len(names)))
    encoder = ENCODERS[declared]
    expected = feast_key(names, values, declared)
    for spelled in (names, tuple(names)):
        if expected is None:
            with pytest.raises(ValueConversionError, match="keyed"):
                encoder.serialized_key("keyed", (spelled, values))
        else:
            assert encoder.serialized_key("keyed", (spelled, values)) == expected


def test_join_key_order_does_not_change_the_key() -> None:
    encoder = ENCODERS[tuple(DECLARED)]
    one = encoder.serialized_key("keyed", (("user_id", "business_id"), ("u-1", 7)))
    other = encoder.serialized_key("keyed", (["business_id", "user_id"], [7, "u-1"]))
    assert one == other == feast_key(["user_id", "business_id"], ["u-1", 7])


def test_empty_bytes_are_a_bytes_value() -> None:
    """Feast's `python_values_to_proto_values` turns b"" into no value at all; the
    writers' converters (`online.value_encoding`) make it an empty `bytes_val`."""
    proto = EntityKeyProto(join_keys=["blob"])
    proto.entity_values.add(bytes_val=b"")
    encoded = ENCODERS[("shard", "blob")].serialized_key("keyed", (("blob",), (b"",)))
    assert encoded == serialize_entity_key(proto, entity_key_serialization_version=3)


def test_a_proto_key_is_serialized_by_feast() -> None:
    proto = EntityKeyProto(join_keys=["user_id"])
    proto.entity_values.add(string_val="u-9")
    encoded = ENCODERS[("user_id",)].serialized_key("keyed", proto)
    assert encoded == serialize_entity_key(proto, entity_key_serialization_version=3)


@pytest.mark.parametrize(
    "key",
    [
        ((), ()),
        (("user_id",), ()),
        (("user_id", "user_id"), ("a", "b")),
        (("device",), (1.5,)),
        (("device",), (True,)),
    ],
)
def test_keys_feast_cannot_serialize_are_refused(
    key: tuple[tuple[str, ...], tuple[object]],
) -> None:
    with pytest.raises(ValueConversionError, match="keyed"):
        ENCODERS[("user_id",)].serialized_key("keyed", key)


@settings(max_examples=100, deadline=None)
@given(user=st.text(max_size=20), project=st.text(min_size=1, max_size=20))
def test_store_keys_equal_feasts(user: str, project: str) -> None:
    proto = EntityKeyProto(join_keys=["user_id"])
    proto.entity_values.add(string_val=user)
    serialized = ENCODERS[("user_id",)].serialized_key("keyed", (("user_id",), (user,)))
    assert redis_key_of(serialized, project.encode()) == _redis_key(project, proto)
    bigtable = BigtableOnlineStore()._compute_row_key(
        entity_key=proto, feature_view_name="keyed", config=config()
    )
    assert bigtable_row_key_of(serialized, b"#keyed") == bigtable


def test_writers_refuse_other_serialization_versions() -> None:
    require_key_version(config(3), "Redis online writer")
    with pytest.warns(DeprecationWarning), pytest.raises(ConfigError, match="version 2"):
        require_key_version(config(2), "Redis online writer")


@settings(max_examples=200, deadline=None)
@given(names=NAMES, data=st.data())
def test_keys_of_a_flush_equal_feasts_or_are_refused(names: list[str], data: st.DataObject) -> None:
    """Keys serialized together (the jobs' `((name,), (value,))` ones packed in one
    pass, any other mix key by key): each is Feast's, or the flush is refused."""
    declared = data.draw(st.sampled_from([d for d in ENCODERS if set(d) <= set(names)]))
    encoder = ENCODERS[declared]
    shapes = st.sampled_from([names[:1], names])
    keys = data.draw(
        st.lists(
            shapes.flatmap(
                lambda spelled: st.tuples(
                    st.just(tuple(spelled)),
                    st.lists(
                        st.one_of(st.text(max_size=8), VALUES),
                        min_size=len(spelled),
                        max_size=len(spelled),
                    ).map(tuple),
                )
            ),
            min_size=1,
            max_size=8,
        )
    )
    expected = [feast_key(list(spelled), list(values), declared) for spelled, values in keys]
    if None in expected:
        with pytest.raises(ValueConversionError, match="keyed"):
            encoder._codec("keyed").serialized_keys(keys)
    else:
        assert encoder._codec("keyed").serialized_keys(keys) == expected


def test_keys_of_the_jobs_shape_are_packed_in_one_pass() -> None:
    users = ["u-1", "", "ü-ñ", "x" * 300]
    keys = [(("user_id",), (user,)) for user in users]
    codec = ENCODERS[("user_id",)]._codec("keyed")
    assert codec.keys.serialize_strings(keys) == [feast_key(["user_id"], [u]) for u in users]
    assert codec.keys.serialize_strings([*keys, (("user_id",), (7,))]) is None  # not all str
    assert codec.keys.serialize_strings([(["user_id"], ["u-1"])]) is None  # not a tuple
    with pytest.raises(ValueConversionError, match="keyed"):  # not UTF-8: refused
        codec.serialized_keys([*keys, (("user_id",), ("\ud800",))])
