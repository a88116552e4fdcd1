"""Compare two change-point row sets of one view: same (key, valid_from) rows, same values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Comparison:
    """How two row sets of one view differ."""

    view: str
    left_rows: int
    right_rows: int
    only_left: int
    only_right: int
    value_mismatches: int  # rows present on both sides with a value apart

    @property
    def mismatches(self) -> int:
        return self.only_left + self.only_right + self.value_mismatches

    @property
    def ok(self) -> bool:
        return self.mismatches == 0


def _numeric(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (timestamps in µs since the epoch) and a null mask."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.timestamp("us")).cast(pa.int64())
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    values = column.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
    nulls = nulls | np.isnan(values)
    return values, nulls


def _keyed(table: pa.Table, key: str, features: tuple[str, ...], side: str) -> pa.Table:
    valid_from = table["valid_from"].cast(pa.timestamp("us")).cast(pa.int64())
    columns = {
        "k": table[key].cast(pa.string()),
        "t": valid_from,
        side: pa.array(np.ones(table.num_rows, dtype=bool)),
    }
    columns.update({f"{side}.{name}": table[name] for name in features})
    return pa.table(columns)


def compare_rows(
    view: str,
    key: str,
    features: tuple[str, ...],
    left: pa.Table,
    right: pa.Table,
    tolerance: float = TOLERANCE,
) -> Comparison:
    """Outer-join both on (key, valid_from); values agree within `tolerance` (absolute
    or relative), null equals null (NaN counts as null)."""
    joined = _keyed(left, key, features, "l").join(
        _keyed(right, key, features, "r"), keys=["k", "t"], join_type="full outer"
    )
    in_left = pc.fill_null(joined["l"], False).to_numpy(zero_copy_only=False)
    in_right = pc.fill_null(joined["r"], False).to_numpy(zero_copy_only=False)
    both = in_left & in_right
    bad = np.zeros(joined.num_rows, dtype=bool)
    for name in features:
        a, a_null = _numeric(joined[f"l.{name}"])
        b, b_null = _numeric(joined[f"r.{name}"])
        close = np.abs(a - b) <= tolerance * np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))
        bad |= both & ((a_null != b_null) | (~a_null & ~close))
    return Comparison(
        view=view,
        left_rows=left.num_rows,
        right_rows=right.num_rows,
        only_left=int((in_left & ~in_right).sum()),
        only_right=int((in_right & ~in_left).sum()),
        value_mismatches=int(bad.sum()),
    )
