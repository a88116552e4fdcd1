"""The rows the streaming job and the backfill hand to the online-store writers.

An `OnlineRow` is one change point of one feature view for one entity: from
`valid_from` on, the view's features for that entity are `features`. It is the full
state of the view: a feature left out of `features` is written as null, like a feature
given as `None`. A `RowEncoder` turns rows into `EncodedRow`s, the Feast `ValueProto`
bytes of every feature in view order and Feast's serialized entity key, once for all the
stores they go to.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat
from typing import NamedTuple, TypeVar

from feast import FeatureView
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.value_type import ValueType

from feature_store.errors import FeatureStoreError
from online.entity_keys import EntityKeySerializer, serialize_proto
from online.value_encoding import (
    NULL_VALUE,
    ColumnSerializer,
    ValueEncoder,
    column_serializer,
    feast_value,
    value_encoder,
)

EntityKeyInput = EntityKeyProto | tuple[Sequence[str], Sequence[object]]
"""A Feast entity key, or its join key names and their Python values."""

K = TypeVar("K")

__all__ = [
    "NULL_VALUE",
    "EncodedRow",
    "EntityKeyInput",
    "OnlineRow",
    "RejectedRow",
    "RowEncoder",
    "ValueConversionError",
    "entity_identity",
    "newest_per_key",
]


class ValueConversionError(FeatureStoreError, ValueError):
    """A row cannot be encoded: unknown view or feature, or a value of the wrong type."""


@dataclass(frozen=True, slots=True)
class OnlineRow:
    """One change point of a feature view for one entity."""

    view: str
    entity_key: EntityKeyInput
    features: Mapping[str, object]
    valid_from: datetime

    def __post_init__(self) -> None:
        if self.valid_from.tzinfo is None:
            msg = f"valid_from of a `{self.view}` row must be aware, got {self.valid_from!r}"
            raise ValueConversionError(msg)
        if self.valid_from.tzinfo is not UTC:
            object.__setattr__(self, "valid_from", self.valid_from.astimezone(UTC))


class EncodedRow(NamedTuple):
    """An `OnlineRow` in Feast's encoding: `values` follow the view's feature order;
    `entity_key` is Feast's `serialize_entity_key` of the row's key (version 3), from
    which both stores derive theirs."""

    view: str
    entity_key: bytes
    values: tuple[bytes, ...]
    valid_from: datetime


class RejectedRow(NamedTuple):
    """A row the sink could not encode, and why (its dead-letter output)."""

    row: OnlineRow
    reason: str


_FEATURES = operator.attrgetter("features")
_ENTITY_KEY = operator.attrgetter("entity_key")
_VALID_FROM = operator.attrgetter("valid_from")
_VIEW = operator.attrgetter("view")
_encoded_row: Callable[[Iterable[object]], EncodedRow] = functools.partial(
    tuple.__new__, EncodedRow
)
"""An `EncodedRow` of its four fields in order, built in C (`EncodedRow._make` is a
Python call)."""

_CONVERSION_ERRORS = (TypeError, ValueError, AssertionError, OverflowError)


@dataclass(frozen=True)
class _ViewCodec:
    """One view's feature order and value converters; encodes rows column by column."""

    view: FeatureView
    features: tuple[str, ...]
    known: frozenset[str]
    encoders: tuple[ValueEncoder, ...]
    serializers: tuple[ColumnSerializer, ...]
    join_key_encoders: Mapping[str, ValueEncoder]
    keys: EntityKeySerializer
    getters: tuple[Callable[[Mapping[str, object]], object], ...]

    @classmethod
    def of(cls, view: FeatureView) -> _ViewCodec:
        features = tuple(field.name for field in view.features)
        join_key_types = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
        join_key_encoders = {name: value_encoder(t) for name, t in join_key_types.items()}

        def to_proto(join_keys: Sequence[str], values: Sequence[object]) -> EntityKeyProto:
            return _entity_key_proto(view.name, join_key_encoders, (join_keys, values))

        return cls(
            view=view,
            features=features,
            known=frozenset(features),
            encoders=tuple(value_encoder(f.dtype.to_value_type()) for f in view.features),
            serializers=tuple(column_serializer(f.dtype.to_value_type()) for f in view.features),
            join_key_encoders=join_key_encoders,
            keys=EntityKeySerializer(join_key_types, to_proto),
            getters=tuple(operator.itemgetter(name) for name in features),
        )

    def values(self, rows: Sequence[Mapping[str, object]]) -> list[tuple[bytes, ...]]:
        """Each row's serialized values in view order; absent and None are null."""
        if not all(map(self.known.issuperset, rows)):
            for features in rows:
                if not features.keys() <= self.known:
                    unknown = sorted(set(features) - self.known)
                    msg = f"feature view `{self.view.name}` has no feature(s) {unknown}"
                    raise ValueConversionError(msg)
        columns: Sequence[Sequence[object]] | None = None
        if set(map(type, rows)) == {dict}:
            # Plain dicts holding every feature: a pass in C a column, no object a row
            # (a `defaultdict` would answer for a feature left out, so not those).
            with contextlib.suppress(KeyError):
                columns = [list(map(getter, rows)) for getter in self.getters]
        if columns is None:
            columns = [[features.get(name) for features in rows] for name in self.features]
        encoded = [self._column(j, column) for j, column in enumerate(columns)]
        return list(zip(*encoded, strict=True)) if encoded else [()] * len(rows)

    def _column(self, j: int, column: Sequence[object]) -> list[bytes]:
        try:
            return self.serializers[j](column)
        except _CONVERSION_ERRORS as err:
            raise self._culprit(self.features[j], self.encoders[j], column) from err

    def _culprit(self, name: str, encode: ValueEncoder, column: Sequence[object]) -> Exception:
        for value in column:
            try:
                if value is not None:
                    encode(value)
            except _CONVERSION_ERRORS as err:
                msg = f"feature `{self.view.name}:{name}` cannot hold {value!r}: {err}"
                return ValueConversionError(msg)
        msg = f"feature `{self.view.name}:{name}` failed to encode"
        return ValueConversionError(msg)

    def entity_key(self, key: EntityKeyInput) -> EntityKeyProto:
        if isinstance(key, EntityKeyProto):
            return key
        return _entity_key_proto(self.view.name, self.join_key_encoders, key)

    def serialized_keys(self, keys: Sequence[EntityKeyInput]) -> list[bytes]:
        """`serialized_key` of each key (the jobs' keys in one pass)."""
        packed = self.keys.serialize_strings(keys)
        if packed is not None:
            return packed
        return [self.serialized_key(key) for key in keys]

    def serialized_key(self, key: EntityKeyInput) -> bytes:
        """Feast's serialized entity key (`serialize_entity_key`, version 3)."""
        try:
            if isinstance(key, EntityKeyProto):
                return serialize_proto(key)
            join_keys, values = key
            return self.keys.serialize(join_keys, values)
        except ValueConversionError:
            raise
        except _CONVERSION_ERRORS as err:  # e.g. a float or bool value
            msg = f"entity key {key!r} of `{self.view.name}` cannot be serialized: {err}"
            raise ValueConversionError(msg) from err


def _entity_key_proto(
    view: str, encoders: Mapping[str, ValueEncoder], key: tuple[Sequence[str], Sequence[object]]
) -> EntityKeyProto:
    join_keys, values = key
    if len(join_keys) != len(values) or not join_keys:
        msg = f"entity key of `{view}` needs one value per join key, got {key!r}"
        raise ValueConversionError(msg)
    proto = EntityKeyProto(join_keys=join_keys)
    try:
        for name, value in zip(join_keys, values, strict=True):
            encode = encoders.get(name)
            proto.entity_values.append(
                encode(value) if encode else feast_value(value, ValueType.UNKNOWN)
            )
    except _CONVERSION_ERRORS as err:
        msg = f"entity key {key!r} of `{view}` cannot be converted: {err}"
        raise ValueConversionError(msg) from err
    return proto


class RowEncoder:
    """Encodes rows with the field dtypes of their Feast feature views (cached per view)."""

    def __init__(self, feature_views: Iterable[FeatureView]) -> None:
        self._codecs = {view.name: _ViewCodec.of(view) for view in feature_views}

    @property
    def views(self) -> Mapping[str, FeatureView]:
        return {name: codec.view for name, codec in self._codecs.items()}

    def feature_names(self, view: str) -> tuple[str, ...]:
        return self._codec(view).features

    def encode(self, row: OnlineRow) -> EncodedRow:
        return self.encode_all([row])[0]

    def encode_all(self, rows: Sequence[OnlineRow]) -> list[EncodedRow]:
        """Encoded rows, in input order; raises on the first row that cannot be."""
        if len(set(map(_VIEW, rows))) <= 1:
            return self._encode_view(rows)
        positions: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            positions.setdefault(row.view, []).append(i)
        out: list[EncodedRow | None] = [None] * len(rows)
        for indices in positions.values():
            encoded = self._encode_view([rows[i] for i in indices])
            for i, encoded_row in zip(indices, encoded, strict=True):
                out[i] = encoded_row
        return out  # type: ignore[return-value]  # every position was filled

    def encode_valid(
        self, rows: Sequence[OnlineRow]
    ) -> tuple[list[EncodedRow], list[tuple[OnlineRow, str]]]:
        """The rows that encode, in order, and the others with the reason."""
        try:
            return self.encode_all(rows), []
        except ValueConversionError:
            pass
        encoded: list[EncodedRow] = []
        rejected: list[tuple[OnlineRow, str]] = []
        for row in rows:
            try:
                encoded.append(self.encode(row))
            except ValueConversionError as err:
                rejected.append((row, str(err)))
        return encoded, rejected

    def to_value_protos(self, view: str, features: Mapping[str, object]) -> dict[str, ValueProto]:
        """The Feast `ValueProto` of every feature of `view` (null where absent or None)."""
        codec = self._codec(view)
        encoded = zip(codec.features, codec.values([features])[0], strict=True)
        return {name: ValueProto.FromString(raw) for name, raw in encoded}

    def entity_key(self, view: str, key: EntityKeyInput) -> EntityKeyProto:
        return self._codec(view).entity_key(key)

    def serialized_key(self, view: str, key: EntityKeyInput) -> bytes:
        return self._codec(view).serialized_key(key)

    def _encode_view(self, rows: Sequence[OnlineRow]) -> list[EncodedRow]:
        if not rows:
            return []
        codec = self._codec(rows[0].view)
        values = codec.values(list(map(_FEATURES, rows)))
        keys = codec.serialized_keys(list(map(_ENTITY_KEY, rows)))
        fields = zip(repeat(codec.view.name), keys, values, map(_VALID_FROM, rows), strict=False)
        return list(map(_encoded_row, fields))

    def _codec(self, view: str) -> _ViewCodec:
        codec = self._codecs.get(view)
        if codec is None:
            msg = f"unknown feature view `{view}`; known: {sorted(self._codecs)}"
            raise ValueConversionError(msg)
        return codec


def entity_identity(key: EntityKeyInput) -> Hashable:
    """A hashable stand-in of an entity key, to coalesce rows before encoding them.

    Two spellings of one key (a proto and a tuple, or join keys in another order) get
    different identities; the writers' newer-wins check still orders such rows.
    """
    if isinstance(key, EntityKeyProto):
        serialized: bytes = key.SerializeToString(deterministic=True)
        return serialized
    join_keys, values = key
    if type(key) is tuple and type(join_keys) is tuple and type(values) is tuple:
        return key  # the jobs' keys: already what the line below makes
    return (tuple(join_keys), tuple(values))


def newest_per_key(keyed: Iterable[tuple[K, EncodedRow]]) -> dict[K, EncodedRow]:
    """The newest row per key; on equal `valid_from` the later row wins."""
    newest: dict[K, EncodedRow] = {}
    for key, row in keyed:
        held = newest.get(key)
        if held is None or row.valid_from >= held.valid_from:
            newest[key] = row
    return newest
