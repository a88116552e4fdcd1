"""Feast's serialized entity keys, built straight from join key names and values.

Both online stores address an entity by `serialize_entity_key` (Feast's
`feast.infra.key_encoding_utils`, version 3): the key count, each join key name as
(type, length, bytes) in sorted order, then each value as (type, length, bytes).
Feast builds it from an `EntityKey` proto, a `Value` proto per join key and several
small `struct.pack` calls: about ten microseconds a key, more than the rest of a row's
encoding. `EntityKeySerializer` takes the names' part from Feast's own
`serialize_entity_key_prefix` once per join key combination and packs the common values
(`str`, `int` and `bytes` of their declared type, or of the type Feast infers for an
undeclared join key) with one `struct` call; any other value, and a key given as an
`EntityKey` proto, goes through Feast's own functions. The unit tests compare both
over many keys, so the fast path cannot drift from Feast.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

from feast import RepoConfig
from feast.infra.key_encoding_utils import serialize_entity_key, serialize_entity_key_prefix
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import ValueType as ValueTypeProto
from feast.value_type import ValueType

from feature_store.errors import ConfigError

KEY_SERIALIZATION_VERSION = 3
"""The only version of Feast's entity key serialization written (Feast 0.67's default;
older ones are deprecated there)."""

_HEAD = struct.Struct("<II")  # value type, value length
_INT64 = struct.Struct("<IIq")
_INT32 = struct.Struct("<IIi")
_STRING: int = ValueTypeProto.STRING
_BYTES: int = ValueTypeProto.BYTES
_INT64_TYPE: int = ValueTypeProto.INT64
_INT32_TYPE: int = ValueTypeProto.INT32


class _StringHeads(dict[int, bytes]):
    """The (type, length) part of a STRING value of each length, made once."""

    def __missing__(self, size: int) -> bytes:
        head = self[size] = _HEAD.pack(_STRING, size)
        return head


_STRING_HEADS = _StringHeads()

ValuePacker = Callable[[object], bytes | None]
"""A value's serialized part, or None where Feast's own conversion must decide."""

ProtoBuilder = Callable[[Sequence[str], Sequence[object]], EntityKeyProto]


def _string(value: object) -> bytes | None:
    if type(value) is not str:
        return None
    raw = value.encode("utf8")
    return _STRING_HEADS[len(raw)] + raw


def _bytes(value: object) -> bytes | None:
    if type(value) is not bytes:
        return None
    return _HEAD.pack(_BYTES, len(value)) + value


def _int64(value: object) -> bytes | None:
    if type(value) is not int or not -(2**63) <= value < 2**63:
        return None
    return _INT64.pack(_INT64_TYPE, 8, value)


def _int32(value: object) -> bytes | None:
    if type(value) is not int or not -(2**31) <= value < 2**31:
        return None
    return _INT32.pack(_INT32_TYPE, 4, value)


def _inferred(value: object) -> bytes | None:
    """An undeclared join key: Feast infers `str` as STRING, `int` as INT64."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return _int64(value)
    return None


_PACKERS: dict[ValueType, ValuePacker] = {
    ValueType.STRING: _string,
    ValueType.BYTES: _bytes,
    ValueType.INT64: _int64,
    ValueType.INT32: _int32,
}


@dataclass(frozen=True)
class _Plan:
    """One join key combination: Feast's bytes of the names, the values' order."""

    prefix: bytes
    order: tuple[int, ...]  # the positions of the join keys in sorted order
    packers: tuple[ValuePacker, ...]  # by position


class EntityKeySerializer:
    """Feast's `serialize_entity_key` (version 3) of one view's entity keys.

    `join_key_types`: the declared value type of each join key (a name missing there
    gets the type Feast infers from the value). `to_proto` builds the `EntityKey` of a
    key the fast path does not take, with the view's converters; it raises what they
    raise for a value that cannot be converted.
    """

    def __init__(self, join_key_types: Mapping[str, ValueType], to_proto: ProtoBuilder) -> None:
        self._types = dict(join_key_types)
        self._to_proto = to_proto
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def serialize(self, join_keys: Sequence[str], values: Sequence[object]) -> bytes:
        names = join_keys if type(join_keys) is tuple else tuple(join_keys)
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = self._plan(names)
        if not names:
            pass  # no join key: the converters refuse it
        elif len(values) == 1 == len(plan.order):
            packed = plan.packers[0](values[0])
            if packed is not None:
                return plan.prefix + packed
        elif len(values) == len(plan.order):
            parts = [plan.packers[i](values[i]) for i in plan.order]
            if None not in parts:
                return plan.prefix + b"".join(parts)  # type: ignore[arg-type]  # no None
        return serialize_proto(self._to_proto(join_keys, values))

    def serialize_strings(self, keys: Sequence[object]) -> list[bytes] | None:
        """`serialize` of each key, in a few passes in C, where every key is a tuple
        `((name,), (value,))` of the same single join key, a `str` of a STRING (or
        undeclared) key, as the jobs build them; None for anything else (the caller
        then serializes key by key)."""
        if not keys or type(keys[0]) is not tuple or len(keys[0]) != 2:
            return None
        names = keys[0][0]
        if type(names) is not tuple or len(names) != 1:
            return None
        plan = self._plans.get(names)
        if plan is None:
            plan = self._plans[names] = self._plan(names)
        if plan.packers[0] not in (_string, _inferred) or set(map(type, keys)) != {tuple}:
            return None
        try:
            given_names, given_values = zip(*keys, strict=True)
        except ValueError:  # a key that is not a pair
            return None
        values = tuple(chain.from_iterable(given_values))
        if (
            given_names.count(names) != len(keys)
            or len(values) != len(keys)
            or set(map(type, values)) != {str}
        ):
            return None
        try:
            raw = [value.encode("utf8") for value in values]
        except UnicodeEncodeError:  # a lone surrogate: refused key by key, naming it
            return None
        heads = map(_STRING_HEADS.__getitem__, map(len, raw))
        return list(map(plan.prefix.__add__, map(bytes.__add__, heads, raw)))

    def _plan(self, names: tuple[str, ...]) -> _Plan:
        order = tuple(sorted(range(len(names)), key=names.__getitem__))
        if len(set(names)) != len(names):
            order = ()  # never taken: Feast's own serializer decides on repeated names
        return _Plan(
            prefix=serialize_entity_key_prefix(
                list(names), entity_key_serialization_version=KEY_SERIALIZATION_VERSION
            ),
            order=order,
            packers=tuple(self._packer(name) for name in names),
        )

    def _packer(self, name: str) -> ValuePacker:
        declared = self._types.get(name)
        if declared is None:
            return _inferred
        return _PACKERS.get(declared, _unpacked)


def _unpacked(_value: object) -> None:
    return None


def serialize_proto(entity_key: EntityKeyProto) -> bytes:
    """Feast's own serialization of an `EntityKey` proto."""
    serialized: bytes = serialize_entity_key(
        entity_key, entity_key_serialization_version=KEY_SERIALIZATION_VERSION
    )
    return serialized


def require_key_version(config: RepoConfig, writer: str) -> None:
    """Refuses a repo whose entity keys Feast serializes with another version."""
    version = config.entity_key_serialization_version
    if version != KEY_SERIALIZATION_VERSION:
        msg = (
            f"the {writer} writes entity keys serialized with version "
            f"{KEY_SERIALIZATION_VERSION}, but project `{config.project}` sets "
            f"entity_key_serialization_version {version}"
        )
        raise ConfigError(msg)
