"""The fast encoders give byte for byte what Feast's own converter gives."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType
from hypothesis import example, given
from hypothesis import strategies as st

from online.value_encoding import column_serializer, value_encoder, varint, varints

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
FLOAT32S = st.floats(width=32, allow_nan=False)
FLOAT32S_OR_NAN = st.floats(width=32)
AWARE = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5))]),
)

CASES = {
    ValueType.INT64: INT64,
    ValueType.INT32: INT32,
    ValueType.DOUBLE: st.one_of(FLOATS, INT32),
    ValueType.FLOAT: FLOAT32S_OR_NAN,
    ValueType.STRING: st.text(),
    ValueType.BOOL: st.booleans(),
    ValueType.BYTES: st.binary(min_size=1),
    ValueType.UNIX_TIMESTAMP: AWARE,
    ValueType.FLOAT_LIST: st.lists(FLOAT32S, min_size=1, max_size=8),
    ValueType.DOUBLE_LIST: st.lists(st.floats(allow_nan=False), min_size=1, max_size=8),
    ValueType.INT64_LIST: st.lists(INT64, min_size=1, max_size=8),
    ValueType.INT32_LIST: st.lists(INT32, min_size=1, max_size=8),
    ValueType.STRING_LIST: st.lists(st.text(), min_size=1, max_size=8),
    ValueType.BOOL_LIST: st.lists(st.booleans(), min_size=1, max_size=8),
}


def feast_bytes(value: object, value_type: ValueType) -> bytes:
    return python_values_to_proto_values([value], value_type)[0].SerializeToString()


@pytest.mark.parametrize("value_type", list(CASES), ids=lambda t: t.name)
def test_fast_path_matches_feast_converter(value_type: ValueType) -> None:
    encode = value_encoder(value_type)

    @given(CASES[value_type])
    def check(value: object) -> None:
        assert encode(value).SerializeToString() == feast_bytes(value, value_type)

    check()


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (ValueType.INT64, np.int64(7)),
        (ValueType.DOUBLE, np.float64(0.25)),
        (ValueType.FLOAT_LIST, np.array([0.5, 1.5], dtype=np.float32)),
        (ValueType.FLOAT_LIST, []),
        (ValueType.INT64, True),
        (ValueType.STRING, 12),
    ],
    ids=repr,
)
def test_other_python_types_go_through_feast(value_type: ValueType, value: object) -> None:
    assert value_encoder(value_type)(value).SerializeToString() == feast_bytes(value, value_type)


def test_values_are_the_expected_protos() -> None:
    at = datetime(2024, 5, 1, 12, 30, 15, 999_999, tzinfo=UTC)
    assert value_encoder(ValueType.INT64)(42) == ValueProto(int64_val=42)
    assert value_encoder(ValueType.DOUBLE)(2.5) == ValueProto(double_val=2.5)
    assert value_encoder(ValueType.UNIX_TIMESTAMP)(at) == ValueProto(
        unix_timestamp_val=1_714_566_615
    )
    vector = value_encoder(ValueType.FLOAT_LIST)([0.5, -1.25]).float_list_val.val
    assert list(vector) == [0.5, -1.25]


def test_nan_is_stored_as_null_like_feast() -> None:
    assert value_encoder(ValueType.DOUBLE)(math.nan).WhichOneof("val") is None


def test_naive_datetime_is_rejected_naming_it() -> None:
    naive = datetime(2024, 1, 1)  # noqa: DTZ001 - the case under test
    with pytest.raises(ValueError, match="2024, 1, 1"):
        value_encoder(ValueType.UNIX_TIMESTAMP)(naive)


def test_wrong_type_raises() -> None:
    with pytest.raises((TypeError, ValueError, AssertionError)):
        value_encoder(ValueType.FLOAT_LIST)([1, "x"])
    with pytest.raises((TypeError, ValueError)):
        value_encoder(ValueType.INT64)(2**64)


@pytest.mark.parametrize("value_type", list(CASES), ids=lambda t: t.name)
def test_column_serializer_matches_feast_converter(value_type: ValueType) -> None:
    """Whole columns, repeats, None and (for floats) zeros of both signs and NaN
    included: what Feast's converter gives each value, None as an empty value."""
    extra = st.sampled_from([0.0, -0.0, math.nan]) if value_type == ValueType.DOUBLE else None
    values = st.one_of(CASES[value_type], st.none(), *([extra] if extra is not None else []))

    @given(st.lists(values, max_size=20), st.data())
    def check(column: list[object], data: st.DataObject) -> None:
        column += data.draw(st.lists(st.sampled_from(column), max_size=5)) if column else []
        serialize = column_serializer(value_type)
        expected = [b"" if v is None else feast_bytes(v, value_type) for v in column]
        assert serialize(column) == expected
        assert serialize(column) == expected  # again, from what it remembered

    check()


@given(st.integers(min_value=-(2**40), max_value=2**40))
@example(1)
@example(127)
@example(128)
@example(2**35 - 1)
@example(2**35)
@example(0)
def test_varint_is_protobufs_or_none(value: int) -> None:
    if 0 < value < 2**35:
        assert varint(value) == ValueProto(int64_val=value).SerializeToString()[1:]
    else:
        assert varint(value) is None


def test_timestamps_outside_the_packed_range_are_feasts() -> None:
    column: list[object] = [
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # -1 s after truncation
        datetime(1970, 1, 1, tzinfo=UTC),  # 0: no field at all
        datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime.fromtimestamp(2**35 - 1, UTC),
        datetime.fromtimestamp(2**35, UTC),
        datetime(9999, 12, 31, tzinfo=UTC),
        None,
    ]
    expected = [b"" if v is None else feast_bytes(v, ValueType.UNIX_TIMESTAMP) for v in column]
    assert column_serializer(ValueType.UNIX_TIMESTAMP)(column) == expected
    # aware datetimes only (the whole column at once), one of them out of range
    for out_of_range in column[:-1]:
        aware = [datetime(2025, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC), out_of_range]
        expected = [feast_bytes(v, ValueType.UNIX_TIMESTAMP) for v in aware]
        assert column_serializer(ValueType.UNIX_TIMESTAMP)(aware) == expected


def test_naive_datetimes_in_a_column_are_refused() -> None:
    aware = datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="naive"):
        column_serializer(ValueType.UNIX_TIMESTAMP)([aware, aware.replace(tzinfo=None)])


@pytest.mark.parametrize(
    ("value_type", "known", "column"),
    [
        (ValueType.INT64, [1, 0], [True, 1, False, 0, None]),
        (ValueType.BOOL, [True, False], [1, True, 0, False]),
        (ValueType.FLOAT, [1.0], [1, 1.0, None]),
    ],
)
def test_remembered_values_are_looked_up_by_type_too(
    value_type: ValueType, known: list[object], column: list[object]
) -> None:
    """True == 1 == 1.0 as dictionary keys: a remembered 1 must not answer for True."""
    serialize = column_serializer(value_type)
    serialize(known)
    encode = value_encoder(value_type)
    expected = []
    for value in column:
        try:
            expected.append(b"" if value is None else encode(value).SerializeToString())
        except (TypeError, ValueError, AssertionError):
            with pytest.raises((TypeError, ValueError, AssertionError)):
                serialize(column)
            return
    assert serialize(column) == expected


@given(st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=30), st.data())
@example([2**28, 2**35 - 1, 2**28 + 127, 2**28 + 128], None)
def test_varints_are_each_values_varint(values: list[int], data: st.DataObject | None) -> None:
    """A column's varints, through the remembered high groups where all take 5 bytes."""
    if data is not None:  # and a column of 5-byte values only, near each other
        start = data.draw(st.integers(min_value=2**28, max_value=2**35 - 1000))
        values += data.draw(st.lists(st.integers(min_value=start, max_value=start + 999)))
        if data.draw(st.booleans()):
            values = [v for v in values if 2**28 <= v < 2**35]
    assert varints(values) == [varint(value) for value in values]
    assert varints(values) == [varint(value) for value in values]  # again, remembered
