"""Change-point rows of the aggregation core as `OnlineRow`s for the writers."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import apache_beam as beam
import numpy as np

from common.beam_types import Transform
from common.metrics import JobCounter
from common.stages import IO_HINTS
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import ChangeRows, RowBatch
from feature_store.definitions import DType
from feature_store.events import from_micros
from online.rows import OnlineRow

METRICS_NAMESPACE = "online_stores"  # the writers' (`online.sink`)


def python_value(value: object, dtype: DType) -> object:
    """A core value (float64 with NaN for null, vectors as arrays; or already a Python
    value, None for null) as a Python value."""
    if value is None:
        return None
    if dtype is DType.FLOAT32_VECTOR:
        vector = np.asarray(value, dtype=np.float32)
        return None if np.isnan(vector).any() else vector.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None
    if dtype is DType.INT64:
        return int(value)  # type: ignore[call-overload]
    if dtype is DType.FLOAT64:
        return float(value)  # type: ignore[arg-type]
    if dtype is DType.BOOL:
        return bool(value)
    if dtype is DType.TIMESTAMP:
        return from_micros(int(value))  # type: ignore[call-overload]
    return value


def online_rows(
    plan: ViewPlan, batch: RowBatch | ChangeRows, latest_only: bool = True
) -> list[OnlineRow]:
    if isinstance(batch, ChangeRows):
        return _change_rows(plan, batch, latest_only)
    indices = [len(batch) - 1] if latest_only and len(batch) else range(len(batch))
    out = []
    for i in indices:
        features = {f.name: python_value(batch.values[f.name][i], f.dtype) for f in plan.features}
        out.append(
            OnlineRow(
                view=plan.view,
                entity_key=((plan.join_key,), (batch.entity_key,)),
                features=features,
                valid_from=from_micros(int(batch.valid_from[i])),
            )
        )
    return out


def _change_rows(plan: ViewPlan, batch: ChangeRows, latest_only: bool) -> list[OnlineRow]:
    """`ChangeRows` hold Python values already, in the order of `batch.names`."""
    features = plan.features
    if batch.names != plan.feature_names:
        msg = (
            f"rows of view {batch.view!r} name the features {batch.names!r}, "
            f"not the plan's {plan.feature_names!r}"
        )
        raise ValueError(msg)
    rows = batch.rows[-1:] if latest_only else batch.rows
    key = ((plan.join_key,), (batch.entity_key,))
    return [
        OnlineRow(
            view=plan.view,
            entity_key=key,
            features={
                f.name: python_value(v, f.dtype) for f, v in zip(features, values, strict=True)
            },
            valid_from=from_micros(at),
        )
        for at, values in rows
    ]


ROWS_FOLDED = "online_rows_folded"
"""Change points a batch held before its latest (the writers take only that one): with
the sink's `online.sink.ROWS_TAKEN`, what accounts for every row a job's stateful step
handed out (`jobs.stream.StreamProgress`)."""


class _LatestRows(beam.DoFn):
    """Change rows (a `RowBatch` or `ChangeRows`) → their latest `OnlineRow`; the rows
    folded away are counted per bundle."""

    def __init__(self, plans: Sequence[ViewPlan]) -> None:
        self.plans = {p.view: p for p in plans}
        self.folded = JobCounter(METRICS_NAMESPACE, ROWS_FOLDED)
        self._pending = 0

    def start_bundle(self) -> None:
        self._pending = 0

    def process(self, batch: RowBatch | ChangeRows) -> Iterator[OnlineRow]:
        rows = online_rows(self.plans[batch.view], batch)
        self._pending += len(batch) - len(rows)
        yield from rows

    def finish_bundle(self) -> None:
        if self._pending:
            self.folded.inc(self._pending)
            self._pending = 0


def to_online_rows(plans: Sequence[ViewPlan]) -> Transform:
    """Change rows (`RowBatch`es or `ChangeRows`) → the latest `OnlineRow` of each (both
    jobs' `ToOnlineRows` stage)."""
    rows: Transform = beam.ParDo(_LatestRows(plans))
    return rows.with_resource_hints(**IO_HINTS)
