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
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from apache_beam import coders
from apache_beam.coders import coder_impl
from apache_beam.coders.typecoders import registry

from feature_store.core.windows import RowBatch

_HEADER = struct.Struct("<I")  # the pickled header's length
_VALID_FROM = ""  # the name valid_from has in the header's layout (no column has it)


def _split(value: RowBatch) -> tuple[tuple[Any, ...], list[Any]]:
    """A batch's header (what the decoder needs besides the bytes) and its numeric
    columns, one contiguous array per dtype."""
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
    header = (
        value.view,
        value.entity_key,
        len(value),
        layout,
        objects,
        list(value.values),
        value.pending,
    )
    parts = [np.concatenate(arrays) for _, arrays in groups.values()]
    return header, parts


def _join(header: Any, parts: list[Any]) -> bytes:
    pickled = pickle.dumps(header, protocol=pickle.HIGHEST_PROTOCOL)
    return b"".join([_HEADER.pack(len(pickled)), pickled, *(p.data.cast("B") for p in parts)])


def _unjoin(encoded: bytes) -> tuple[Any, bytearray]:
    """The header and the body: one copy into a writable buffer, so the columns are."""
    (size,) = _HEADER.unpack_from(encoded)
    start = _HEADER.size + size
    header = pickle.loads(memoryview(encoded)[_HEADER.size : start])
    return header, bytearray(memoryview(encoded)[start:])


def _rebuild(header: tuple[Any, ...], body: bytearray, offset: int) -> tuple[RowBatch, int]:
    """The batch whose columns start at `offset` of `body`, and where the next begins."""
    view, entity_key, rows, layout, objects, order, pending = header
    columns: dict[str, Any] = dict(objects)
    for dtype_str, names in layout:  # columns of one dtype: one block, a row each
        dtype = np.dtype(dtype_str)
        count = rows * len(names)
        block = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
        columns.update(zip(names, block.reshape(len(names), rows), strict=True))
        offset += count * dtype.itemsize
    valid_from = columns.pop(_VALID_FROM)
    values = {name: columns[name] for name in order}
    return RowBatch(view, entity_key, valid_from, values, pending), offset


class ValueCoder(coders.Coder):
    """A coder of the values of one type (`VALUE_TYPE`), its `encode`/`decode` called
    back by Beam, whose byte counters take `estimated_size` instead of an encoding. Not
    deterministic: for values, never for keys."""

    VALUE_TYPE: type[Any]

    def estimated_size(self, value: Any) -> int:
        raise NotImplementedError

    def _create_impl(self) -> coder_impl.CallbackCoderImpl:
        return coder_impl.CallbackCoderImpl(self.encode, self.decode, self.estimated_size)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> type[Any]:
        return self.VALUE_TYPE

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


class RowBatchCoder(ValueCoder):
    """`RowBatch` ⇄ bytes: a pickled header, then the numeric columns' raw bytes."""

    VALUE_TYPE = RowBatch

    def encode(self, value: RowBatch) -> bytes:
        return _join(*_split(value))

    def decode(self, encoded: bytes) -> RowBatch:
        header, body = _unjoin(encoded)
        return _rebuild(header, body, 0)[0]

    def estimated_size(self, value: Any) -> int:
        return _estimated_size(value)


class RowBatches:
    """Several `RowBatch`es that cross a shuffle as one element (e.g. a feature shard's
    output: a bounded part of a view, whatever the size of the view)."""

    __slots__ = ("batches",)

    def __init__(self, batches: Sequence[RowBatch]) -> None:
        self.batches = list(batches)

    def __iter__(self) -> Iterator[RowBatch]:
        return iter(self.batches)

    def __len__(self) -> int:
        """The number of batches (not of rows)."""
        return len(self.batches)

    def __repr__(self) -> str:
        return f"RowBatches({len(self.batches)} batches)"


def _plain_layout(batch: RowBatch) -> tuple[Any, ...] | None:
    """The view, column names and dtypes of a batch whose columns are all 1-D numeric
    arrays and that has no pending vectors (None otherwise)."""
    if batch.pending is not None:
        return None
    layout = [batch.view, batch.valid_from.dtype.str]
    for name, column in batch.values.items():
        if not isinstance(column, np.ndarray) or column.ndim != 1 or column.dtype.hasobject:
            return None
        layout += (name, column.dtype.str)
    return tuple(layout)


class RowBatchesCoder(ValueCoder):
    """`RowBatches` ⇄ bytes: one pickled header for all the batches, then their columns.

    Batches of one layout (view, column names and dtypes; numeric 1-D columns, nothing
    pending), as a shard's are, go column by column: each column of all of them is one
    block, cut back into per-batch views on decoding, so the cost per batch is a few
    slices rather than a block per dtype. Other batches go one by one, as
    `RowBatchCoder` writes them. Each decoded batch's columns are writable views into
    one buffer (a copy of the element's bytes)."""

    VALUE_TYPE = RowBatches

    def encode(self, value: RowBatches) -> bytes:
        groups: dict[tuple[Any, ...], list[int]] = {}
        singles: list[int] = []
        for i, batch in enumerate(value.batches):
            layout = _plain_layout(batch)
            if layout is None:
                singles.append(i)
            else:
                groups.setdefault(layout, []).append(i)
        batches, parts = value.batches, []
        columnar = []
        for layout, members in groups.items():
            chosen = [batches[i] for i in members]
            names = layout[2::2]
            columnar.append(
                (layout, members, [b.entity_key for b in chosen], [len(b) for b in chosen])
            )
            parts.append(np.concatenate([b.valid_from for b in chosen]))
            parts.extend(np.concatenate([b.values[n] for b in chosen]) for n in names)
        one_by_one = []
        for i in singles:
            header, arrays = _split(batches[i])
            one_by_one.append((i, header))
            parts.extend(arrays)
        return _join((len(batches), columnar, one_by_one), parts)

    def decode(self, encoded: bytes) -> RowBatches:
        (count, columnar, one_by_one), body = _unjoin(encoded)
        batches: list[Any] = [None] * count
        offset = 0
        for layout, members, keys, lengths in columnar:
            view, names, dtypes = layout[0], layout[2::2], [layout[1], *layout[3::2]]
            ends = np.cumsum(lengths).tolist()
            bounds = list(zip([0, *ends[:-1]], ends, strict=True))
            total = ends[-1]
            columns = []
            for dtype_str in dtypes:
                dtype = np.dtype(dtype_str)
                block = np.frombuffer(body, dtype=dtype, count=total, offset=offset)
                offset += total * dtype.itemsize
                columns.append([block[a:b] for a, b in bounds])
            for i, key, cut in zip(members, keys, zip(*columns, strict=True), strict=True):
                values = dict(zip(names, cut[1:], strict=True))
                batches[i] = RowBatch.of(view, key, cut[0], values)
        for i, header in one_by_one:
            batches[i], offset = _rebuild(header, body, offset)
        return RowBatches(batches)

    def estimated_size(self, value: Any) -> int:
        return _estimated_sizes(value)


def _estimated_size(value: RowBatch) -> int:
    """What Beam's byte counters sample: the columns' bytes and the names, without
    encoding the batch (the header's pickle framing is left out)."""
    names = len(value.view) + len(value.entity_key) + sum(len(n) for n in value.values)
    arrays = value.valid_from.nbytes + sum(np.asarray(c).nbytes for c in value.values.values())
    return _HEADER.size + names + arrays


def _estimated_sizes(value: RowBatches) -> int:
    return sum(_estimated_size(b) for b in value.batches)


registry.register_coder(RowBatch, RowBatchCoder)
registry.register_coder(RowBatches, RowBatchesCoder)
