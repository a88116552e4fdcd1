"""Python feature values to Feast `ValueProto`s, with Feast's own semantics.

The reference is `feast.type_map.python_values_to_proto_values`, which Feast's
`write_to_online_store` uses. It works on whole columns and costs a few microseconds a
value, too slow for the streaming writers. `value_encoder` returns, for one Feast
`ValueType`, a function with a fast path for the plain Python types the jobs produce
(`int`, `float`, `str`, `bool`, `bytes`, aware `datetime`, `list` of those) and hands
every other value to Feast's converter. The unit tests pin that both give the same
bytes, so the fast path cannot drift from Feast. `column_serializer` turns a whole column
into serialized `ValueProto`s with those converters, and remembers the bytes of the
numbers it has seen (counts and shares repeat a lot), so a repeated value costs a
dictionary look-up instead of a message. A `float` of a DOUBLE column is packed
straight (the field's tag, then its 8 little-endian bytes: protobuf's encoding of a
`double` in a oneof, taken from protobuf itself at import), at a third of a message's
cost; so are the whole seconds of a UNIX_TIMESTAMP column's datetimes (the field's tag,
then their varint), at a little over half.

One deliberate difference: a naive `datetime` is rejected (Feast would read it as UTC).
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from feast.protos.feast.types.Value_pb2 import (
    BoolList,
    DoubleList,
    FloatList,
    Int32List,
    Int64List,
    StringList,
)
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

ValueEncoder = Callable[[object], ValueProto]
ColumnSerializer = Callable[[Sequence[object]], list[bytes]]

NULL_VALUE = b""
"""An empty `ValueProto` serialized: Feast reads it back as null."""

REMEMBERED_VALUES = 4096
"""Distinct values whose bytes a column serializer keeps (it starts over when full)."""


def feast_value(value: object, value_type: ValueType) -> ValueProto:
    """Feast's own conversion of one value (the slow, general path)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        msg = f"datetime feature values must be timezone-aware, got naive {value!r}"
        raise ValueError(msg)
    return python_values_to_proto_values([value], value_type)[0]


def _scalar(value_type: ValueType, field: str, python_type: type) -> ValueEncoder:
    def encode(value: object) -> ValueProto:
        if type(value) is python_type:
            kwargs: dict[str, Any] = {field: value}
            return ValueProto(**kwargs)
        return feast_value(value, value_type)

    return encode


def _floating(value_type: ValueType, field: str) -> ValueEncoder:
    """Floats and, like Feast, ints; NaN is stored as null, as Feast does."""

    def encode(value: object) -> ValueProto:
        if type(value) is float:
            if math.isnan(value):
                return ValueProto()
        elif type(value) is not int or value_type != ValueType.DOUBLE:
            return feast_value(value, value_type)
        kwargs: dict[str, Any] = {field: value}
        return ValueProto(**kwargs)

    return encode


def _timestamp(value: object) -> ValueProto:
    if type(value) is datetime and value.tzinfo is not None:
        return ValueProto(unix_timestamp_val=int(value.timestamp()))
    return feast_value(value, ValueType.UNIX_TIMESTAMP)


_VARINT_MAX = 1 << 35
_CONTINUATIONS = (0, 0, 0x80, 0x8080, 0x808080, 0x80808080)


def varint(value: int) -> bytes | None:
    """Protobuf's varint of `0 < value < 2**35` (up to 5 bytes; seconds since 1970
    are 5 bytes until the year 3058), or None outside that range: the caller then
    asks protobuf. Each 7-bit group moved to its byte with shifts, at a third of a
    message's cost."""
    if not 0 < value < _VARINT_MAX:
        return None
    size = (value.bit_length() + 6) // 7
    spread = (
        (value & 0x7F)
        | (value << 1 & 0x7F00)
        | (value << 2 & 0x7F0000)
        | (value << 3 & 0x7F000000)
        | (value << 4 & 0x7F00000000)
        | _CONTINUATIONS[size]
    )
    return spread.to_bytes(size, "little")


REMEMBERED_HIGH_GROUPS = 16_384
"""128 s stretches whose varint bytes `varints` keeps (24 days; about 2 MB)."""

_FIVE_BYTES_MIN = 1 << 28
"""The smallest value whose varint takes 5 bytes (in seconds: 1978-07-05)."""
_LOW_GROUPS = [bytes([low | 0x80]) for low in range(128)]


class _HighGroups(dict[int, bytes]):
    """The last four bytes of a 5-byte varint, by the value's bits above its lowest
    seven (`value >> 7`): seconds of one 128 s stretch share them. Keeps at most
    `REMEMBERED_HIGH_GROUPS`."""

    def __missing__(self, high: int) -> bytes:
        if len(self) >= REMEMBERED_HIGH_GROUPS:
            self.clear()
        packed = self[high] = varint(high << 7)[1:]  # type: ignore[index]  # in range
        return packed


_HIGH_GROUPS = _HighGroups()


def varints(values: Sequence[int]) -> list[bytes | None]:
    """`varint` of each value. Where all take 5 bytes (seconds since 1970 from 1978 to
    3058), a value's first byte is a list look-up and the other four are remembered
    by `value >> 7`: seconds near each other (a flush's timestamps) share them."""
    if values and min(values) >= _FIVE_BYTES_MIN and max(values) < _VARINT_MAX:
        low, high = _LOW_GROUPS, _HIGH_GROUPS
        return [low[value & 0x7F] + high[value >> 7] for value in values]
    return list(map(varint, values))


_TIMESTAMP_TAG = ValueProto(unix_timestamp_val=1).SerializeToString()[:-1]
"""The tag of `unix_timestamp_val` as protobuf writes it (field 8, varint)."""


def _timestamp_serializer(encode: ValueEncoder) -> ColumnSerializer:
    """UNIX_TIMESTAMP columns: aware datetimes' whole seconds (what `_timestamp` keeps)
    packed straight after the field's tag; anything else, and seconds outside
    `varint`'s range, through `encode`."""
    tag = _TIMESTAMP_TAG
    tzinfo = operator.attrgetter("tzinfo")

    def serialize(column: Sequence[object]) -> list[bytes]:
        if {datetime} == set(map(type, column)) and None not in map(tzinfo, column):
            # aware datetimes only: whole seconds in a pass, then their varints
            seconds = list(map(int, map(datetime.timestamp, column)))  # type: ignore[arg-type]
            packed = varints(seconds)
            if None not in packed:
                return list(map(tag.__add__, packed))  # no None left
        out: list[bytes] = []
        for value in column:
            if value is None:
                out.append(NULL_VALUE)
                continue
            one = None
            if type(value) is datetime and value.tzinfo is not None:
                one = varint(int(value.timestamp()))
            out.append(tag + one if one else encode(value).SerializeToString())
        return out

    return serialize


def _list(value_type: ValueType, field: str, list_type: type, item_type: type) -> ValueEncoder:
    only_items = {item_type}

    def encode(value: object) -> ValueProto:
        if type(value) is list and set(map(type, value)) == only_items:
            kwargs: dict[str, Any] = {field: list_type(val=value)}
            return ValueProto(**kwargs)
        return feast_value(value, value_type)

    return encode


_FAST_PATHS: dict[ValueType, ValueEncoder] = {
    ValueType.INT64: _scalar(ValueType.INT64, "int64_val", int),
    ValueType.INT32: _scalar(ValueType.INT32, "int32_val", int),
    ValueType.DOUBLE: _floating(ValueType.DOUBLE, "double_val"),
    ValueType.FLOAT: _floating(ValueType.FLOAT, "float_val"),
    ValueType.STRING: _scalar(ValueType.STRING, "string_val", str),
    ValueType.BOOL: _scalar(ValueType.BOOL, "bool_val", bool),
    ValueType.BYTES: _scalar(ValueType.BYTES, "bytes_val", bytes),
    ValueType.UNIX_TIMESTAMP: _timestamp,
    ValueType.FLOAT_LIST: _list(ValueType.FLOAT_LIST, "float_list_val", FloatList, float),
    ValueType.DOUBLE_LIST: _list(ValueType.DOUBLE_LIST, "double_list_val", DoubleList, float),
    ValueType.INT64_LIST: _list(ValueType.INT64_LIST, "int64_list_val", Int64List, int),
    ValueType.INT32_LIST: _list(ValueType.INT32_LIST, "int32_list_val", Int32List, int),
    ValueType.STRING_LIST: _list(ValueType.STRING_LIST, "string_list_val", StringList, str),
    ValueType.BOOL_LIST: _list(ValueType.BOOL_LIST, "bool_list_val", BoolList, bool),
}


def value_encoder(value_type: ValueType) -> ValueEncoder:
    """The converter of non-null values of `value_type` to `ValueProto`.

    Raises what Feast's converter raises (`TypeError`, `ValueError`, `AssertionError`)
    for a value it cannot convert; the caller names the feature.
    """
    fast = _FAST_PATHS.get(value_type)
    if fast is not None:
        return fast
    return lambda value: feast_value(value, value_type)


_REMEMBERED_TYPES: dict[ValueType, type] = {
    ValueType.INT64: int,
    ValueType.INT32: int,
    ValueType.FLOAT: float,
    ValueType.BOOL: bool,
}


def column_serializer(value_type: ValueType) -> ColumnSerializer:
    """The serialized `ValueProto`s of a column of `value_type` (None: `NULL_VALUE`).

    Numbers and booleans of the type's own Python type are remembered by value, up to
    `REMEMBERED_VALUES` of them. Float zeros and NaN are never remembered: 0.0 and -0.0
    are equal keys but serialize differently, and NaN equals nothing. Raises what
    `value_encoder` raises.
    """
    encode = value_encoder(value_type)
    if value_type == ValueType.DOUBLE:
        return _double_serializer(encode)
    if value_type == ValueType.UNIX_TIMESTAMP:
        return _timestamp_serializer(encode)
    remembered = _REMEMBERED_TYPES.get(value_type)
    if remembered is None:
        return lambda column: [
            NULL_VALUE if v is None else encode(v).SerializeToString() for v in column
        ]
    cache: dict[object, bytes] = {}
    any_value = remembered is not float
    plain = {remembered, type(None)}

    def remember(value: object) -> bytes:
        if value is None:
            return NULL_VALUE
        held: bytes = encode(value).SerializeToString()
        if type(value) is remembered and (any_value or _plain_float(value)):
            if len(cache) >= REMEMBERED_VALUES:
                cache.clear()
            cache[value] = held
        return held

    def serialize(column: Sequence[object]) -> list[bytes]:
        # Only values of the type itself are looked up: True == 1 == 1.0 as keys.
        if plain.issuperset(map(type, column)):
            known = list(map(cache.get, column))  # one pass in C when every value is known
            if None not in known:
                return known  # type: ignore[return-value]  # no None left
        out: list[bytes] = []
        for value in column:
            held = cache.get(value) if type(value) is remembered else None
            out.append(remember(value) if held is None else held)
        return out

    return serialize


_DOUBLE = struct.Struct("<d")
_DOUBLE_TAG = ValueProto(double_val=1.0).SerializeToString()[:-8]
"""The tag of `double_val` as protobuf writes it (one byte: field 5, fixed 64-bit)."""


def _double_serializer(encode: ValueEncoder) -> ColumnSerializer:
    """DOUBLE columns: floats packed straight (NaN is null, as `value_encoder` has it),
    anything else through `encode`."""
    pack, tag, isnan = _DOUBLE.pack, _DOUBLE_TAG, math.isnan
    plain = {float, type(None)}
    null = NULL_VALUE

    def serialize(column: Sequence[object]) -> list[bytes]:
        if plain.issuperset(map(type, column)):
            # NaN (`v != v`, cheaper than a call) is stored as null
            return [
                null if v is None or v != v else tag + pack(v)  # noqa: PLR0124
                for v in column
            ]
        out: list[bytes] = []
        for value in column:
            if type(value) is float:
                out.append(NULL_VALUE if isnan(value) else tag + pack(value))
            elif value is None:
                out.append(NULL_VALUE)
            else:
                out.append(encode(value).SerializeToString())
        return out

    return serialize


def _plain_float(value: Any) -> bool:
    return bool(value) and not math.isnan(value)
