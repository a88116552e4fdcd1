"""A Beam coder for `RowBatch`, the change-point rows that cross the batch job's shuffles.

Without it a `RowBatch` crosses a shuffle as a pickle: for each of its arrays pickle
calls numpy's `__reduce__`, pickles the dtype and, when decoding, numpy's `_frombuffer`
and the dtype's constructor. An entity has about ten arrays, and a view has one batch
per entity, so most of that time is per-array bookkeeping, not bytes. This coder writes
a small pickled header (view, entity key, row count, the columns' names and dtypes, the
object columns and pending vectors, if any) followed by the numeric columns' raw bytes,
one block per dtype, and decodes them with one copy into a writable buffer and a view
per column. Beam's byte counters, which sample elements, get the size from the arrays'
`nbytes` instead of an encoding.

It keys nothing (`is_deterministic` is False): it is registered for `RowBatch`, and the
steps that emit RowBatches declare it as their output type, so a `Reshuffle` after them
carries it.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import numpy as np
from apache_beam import coders
from apache_beam.coders import coder_impl
from apache_beam.coders.typecoders import registry

from feature_store.core.windows import RowBatch

_HEADER = struct.Struct("<I")  # the pickled header's length
_VALID_FROM = ""  # the name valid_from has in the header's layout (no column has it)


class RowBatchCoder(coders.Coder):
    """`RowBatch` ⇄ bytes: a pickled header, then the numeric columns' raw bytes."""

    def encode(self, value: RowBatch) -> bytes:
        groups: dict[str, tuple[list[str], list[Any]]] = {}
        objects: dict[str, Any] = {}
        for name, column in ((_VALID_FROM, value.valid_from), *value.values.items()):
            array = np.asarray(column)
            if array.dtype.hasobject or array.ndim != 1:
                objects[name] = array
                continue
            names, arrays = groups.setdefault(array.dtype.str, ([], []))
            names.append(name)
            arrays.append(array)
        layout = [(dtype, names) for dtype, (names, _) in groups.items()]
        header = pickle.dumps(
            (
                value.view,
                value.entity_key,
                len(value),
                layout,
                objects,
                list(value.values),
                value.pending,
            ),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        parts = [np.concatenate(arrays).data.cast("B") for _, arrays in groups.values()]
        return b"".join([_HEADER.pack(len(header)), header, *parts])

    def decode(self, encoded: bytes) -> RowBatch:
        (size,) = _HEADER.unpack_from(encoded)
        start = _HEADER.size + size
        view, entity_key, rows, layout, objects, order, pending = pickle.loads(
            memoryview(encoded)[_HEADER.size : start]
        )
        body = bytearray(memoryview(encoded)[start:])  # one copy: the columns are writable
        columns: dict[str, Any] = dict(objects)
        offset = 0
        for dtype_str, names in layout:  # columns of one dtype: one block, a row each
            dtype = np.dtype(dtype_str)
            count = rows * len(names)
            block = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
            columns.update(zip(names, block.reshape(len(names), rows), strict=True))
            offset += count * dtype.itemsize
        valid_from = columns.pop(_VALID_FROM)
        values = {name: columns[name] for name in order}
        return RowBatch(view, entity_key, valid_from, values, pending)

    def _create_impl(self) -> coder_impl.CallbackCoderImpl:
        return coder_impl.CallbackCoderImpl(self.encode, self.decode, _estimated_size)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> type[RowBatch]:
        return RowBatch

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


def _estimated_size(value: RowBatch) -> int:
    """What Beam's byte counters sample: the columns' bytes and the names, without
    encoding the batch (the header's pickle framing is left out)."""
    names = len(value.view) + len(value.entity_key) + sum(len(n) for n in value.values)
    arrays = value.valid_from.nbytes + sum(np.asarray(c).nbytes for c in value.values.values())
    return _HEADER.size + names + arrays


registry.register_coder(RowBatch, RowBatchCoder)
