"""One entity's events as sorted, de-duplicated columns: the input of the aggregation core.

Numeric and timestamp fields are float64 with NaN for null (timestamps as microseconds
since the epoch: exact in float64), strings are object arrays with None for null,
vectors are 2-D float32 arrays (a row of NaN for null).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from feature_store.definitions import DType

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
AnyArray = npt.NDArray[np.generic]


@dataclass(frozen=True)
class FieldSpec:
    """How to hold one field in columns."""

    name: str
    dtype: DType
    dim: int | None = None


def column_of(values: Sequence[object], spec: FieldSpec) -> AnyArray:
    """One field's values as a column (see the module docstring for the layout)."""
    if spec.dtype is DType.FLOAT32_VECTOR:
        out = np.full((len(values), spec.dim or 0), np.nan, dtype=np.float32)
        for i, value in enumerate(values):
            if value is not None:
                out[i] = np.asarray(value, dtype=np.float32)
        return out
    if spec.dtype.numeric or spec.dtype is DType.BOOL:
        return _numbers(values)
    return np.array(values, dtype=object)


def _numbers(values: Sequence[object]) -> FloatArray:
    """float64 with NaN for None, in one C-level conversion where numpy can (it reads None
    as NaN); anything else falls back to `float()` per value, which names a bad one."""
    try:
        out = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        out = None
    if out is None or out.ndim != 1:
        out = np.array(
            [np.nan if v is None else float(v) for v in values],  # type: ignore[arg-type]
            dtype=np.float64,
        )
    return out


def _first_per_id(records: Iterable[Mapping[str, object]]) -> list[Mapping[str, object]]:
    unique: dict[object, Mapping[str, object]] = {}
    for record in records:
        unique.setdefault(record["event_id"], record)
    return list(unique.values())


@dataclass(frozen=True)
class EventColumns:
    """Events of one entity sorted by (event_time, event_id), each event_id once."""

    times: IntArray
    event_ids: AnyArray
    columns: Mapping[str, AnyArray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @classmethod
    def empty(cls, specs: Iterable[FieldSpec]) -> EventColumns:
        return cls.from_records([], specs)

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, object]], specs: Iterable[FieldSpec]
    ) -> EventColumns:
        """Records carry `event_id`, `event_time` (int µs) and the fields; first id wins."""
        unique = _first_per_id(records)
        unique.sort(key=itemgetter("event_time", "event_id"))
        times = np.array([r["event_time"] for r in unique], dtype=np.int64)
        ids = np.array([r["event_id"] for r in unique], dtype=object)
        cols = {s.name: column_of([r.get(s.name) for r in unique], s) for s in specs}
        return cls(times=times, event_ids=ids, columns=cols)

    def merge(self, other: EventColumns) -> EventColumns:
        """Union of both, sorted, keeping the first of any event_id (self before other)."""
        if len(other) == 0:
            return self
        if len(self) == 0:
            return other
        fresh = ~np.isin(other.event_ids, self.event_ids)
        times = np.concatenate([self.times, other.times[fresh]])
        ids = np.concatenate([self.event_ids, other.event_ids[fresh]])
        order = np.lexsort((ids.astype(str), times))
        cols = {
            name: np.concatenate([col, other.columns[name][fresh]])[order]
            for name, col in self.columns.items()
        }
        return EventColumns(times=times[order], event_ids=ids[order], columns=cols)

    def select(self, keep: npt.NDArray[np.bool_] | slice) -> EventColumns:
        return EventColumns(
            times=self.times[keep],
            event_ids=self.event_ids[keep],
            columns={n: c[keep] for n, c in self.columns.items()},
        )
