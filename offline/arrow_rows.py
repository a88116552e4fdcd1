"""Change-point `RowBatch`es as Arrow tables shaped like the view's BigQuery table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.definitions import DType
from feature_store.feast_repo import COMPUTED_AT, VALID_FROM

TIMESTAMP = pa.timestamp("us", tz="UTC")


def _arrow_type(dtype: DType) -> pa.DataType:
    return {
        DType.INT64: pa.int64(),
        DType.FLOAT64: pa.float64(),
        DType.STRING: pa.string(),
        DType.BOOL: pa.bool_(),
        DType.TIMESTAMP: TIMESTAMP,
        DType.FLOAT32_VECTOR: pa.list_(pa.float64()),
    }[dtype]


def arrow_schema(plan: ViewPlan) -> pa.Schema:
    fields = [
        pa.field(plan.join_key, pa.string(), nullable=False),
        pa.field(VALID_FROM, TIMESTAMP, nullable=False),
    ]
    fields += [pa.field(f.name, _arrow_type(f.dtype)) for f in plan.features]
    fields.append(pa.field(COMPUTED_AT, TIMESTAMP, nullable=False))
    return pa.schema(fields)


def _column(values: np.ndarray, dtype: DType) -> pa.Array:
    if dtype is DType.FLOAT32_VECTOR:
        rows = [None if np.isnan(v).any() else v.astype(np.float64) for v in values]
        return pa.array(rows, type=pa.list_(pa.float64()))
    if dtype is DType.STRING:
        return pa.array(values.tolist(), type=pa.string())
    mask = np.isnan(values)
    if dtype is DType.FLOAT64:
        return pa.array(values, mask=mask, type=pa.float64())
    if dtype is DType.BOOL:
        return pa.array(values.astype(bool), mask=mask, type=pa.bool_())
    ints = np.where(mask, 0, values).astype(np.int64)
    return pa.array(ints, mask=mask, type=TIMESTAMP if dtype is DType.TIMESTAMP else pa.int64())


def to_arrow(plan: ViewPlan, batches: Sequence[RowBatch], computed_at_us: int) -> pa.Table:
    """One table for many entities' rows (all of the same view)."""
    schema = arrow_schema(plan)
    if not batches:
        return schema.empty_table()
    valid_from = np.concatenate([b.valid_from for b in batches])
    keys = np.concatenate([np.full(len(b), b.entity_key, dtype=object) for b in batches])
    columns = [pa.array(keys.tolist(), type=pa.string()), pa.array(valid_from, type=TIMESTAMP)]
    for feature in plan.features:
        values = np.concatenate([b.values[feature.name] for b in batches])
        columns.append(_column(values, feature.dtype))
    columns.append(
        pa.array(np.full(valid_from.shape[0], computed_at_us, dtype=np.int64), type=TIMESTAMP)
    )
    return pa.Table.from_arrays(columns, schema=schema)
