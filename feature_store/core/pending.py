"""Vector features whose change points are known and whose values are not yet computed.

The exact-window steps (the stream's stateful step, the backfill's change points) find
every change point of a view from the kinds' values, but the vector kinds
(`max_similarity_to_newest`, `centroid_distance_of_newest`) are evaluated by JAX kernels
in a stage of their own. Their *signature* (the newest and first valid rows of the
window, `aggregation.newest_window_signature`) changes wherever their value may change,
so the exact step emits a row wherever a scalar value or a signature changes, and hands
the kernel stage what it needs on the `RowBatch`: the entity's vector rows that the
windows use, each row's signature and the signature just before it (at `c - 1 µs`), and
whether a scalar value (or a correction) already requires the row. The kernel stage
(`vector_rows.resolve`) computes both values, drops the rows where neither a scalar nor a
vector value changed, and what is left is exactly the rows of the definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from feature_store.core.aggregation import Evaluation
from feature_store.core.columns import AnyArray, EventColumns, IntArray
from feature_store.core.kinds import deferred_features
from feature_store.core.plan import FeaturePlan, ViewPlan

BoolArray = npt.NDArray[np.bool_]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class VectorGroup:
    """The vector rows the windows of one (field, condition) read, oldest first, with
    which of them count (non-null and matching the feature's conditions)."""

    vectors: Float32Array
    valid: BoolArray


@dataclass(frozen=True)
class PendingVectors:
    """What the kernel stage needs for the deferred features of one `RowBatch`.

    `kinds[name]` and `groups[group_of[name]]` say how and over which rows feature
    `name` is evaluated; `now[name]` and `before[name]` are (rows, 2) int arrays of
    (newest, first) row indices into that group (-1: no valid row in the window) at each
    row's change point and 1 µs before it; `required[i]` says row i is emitted whatever
    the vector values are (a scalar changed, or the row corrects the stores)."""

    groups: Mapping[str, VectorGroup]
    group_of: Mapping[str, str]
    kinds: Mapping[str, str]
    now: Mapping[str, IntArray]
    before: Mapping[str, IntArray]
    required: BoolArray

    def select(self, keep: BoolArray) -> PendingVectors:
        return PendingVectors(
            groups=self.groups,
            group_of=self.group_of,
            kinds=self.kinds,
            now={n: a[keep] for n, a in self.now.items()},
            before={n: a[keep] for n, a in self.before.items()},
            required=self.required[keep],
        )

    def force_last(self) -> PendingVectors:
        required = self.required.copy()
        if required.shape[0]:
            required[-1] = True
        return PendingVectors(
            groups=self.groups,
            group_of=self.group_of,
            kinds=self.kinds,
            now=self.now,
            before=self.before,
            required=required,
        )


def group_key(feature: FeaturePlan) -> str:
    return f"{feature.field}|{feature.where!r}"


@dataclass(frozen=True)
class VectorMasks:
    """Per group of a view's deferred features: its vector column and valid rows (over
    a whole evaluation's events, computed once)."""

    features: tuple[FeaturePlan, ...]
    columns: Mapping[str, Float32Array]
    valid: Mapping[str, BoolArray]

    @classmethod
    def of(cls, plan: ViewPlan, events: EventColumns) -> VectorMasks:
        features = deferred_features(plan)
        ev = Evaluation(plan, events, np.zeros(0, dtype=np.int64), {})
        columns, valid = {}, {}
        for f in features:
            key = group_key(f)
            columns[key] = np.asarray(ev.column(f.field or ""), dtype=np.float32)
            valid[key] = ev.mask(f, non_null=True)
        return cls(features=features, columns=columns, valid=valid)


def split_required(
    plan: ViewPlan, values: Mapping[str, AnyArray], changed: Mapping[str, BoolArray]
) -> BoolArray:
    """Rows that a non-deferred feature changes (`changed[name]` per feature)."""
    deferred = {f.name for f in deferred_features(plan)}
    n = next(iter(changed.values())).shape[0] if changed else 0
    required = np.zeros(n, dtype=bool)
    for name in values:
        if name not in deferred:
            required |= changed[name]
    return required


def pending_of(
    masks: VectorMasks,
    now: Mapping[str, AnyArray],
    before: Mapping[str, AnyArray],
    required: BoolArray,
) -> PendingVectors:
    """The pending part of one entity's rows: signatures are row indices into the
    evaluation's events; only the rows they reach are kept (and the indices shifted)."""
    group_of = {f.name: group_key(f) for f in masks.features}
    now_i = {f.name: np.asarray(now[f.name], dtype=np.int64) for f in masks.features}
    before_i = {f.name: np.asarray(before[f.name], dtype=np.int64) for f in masks.features}
    groups, shifted_now, shifted_before = {}, {}, {}
    for key in set(group_of.values()):
        names = [n for n, k in group_of.items() if k == key]
        used = np.concatenate([a.ravel() for n in names for a in (now_i[n], before_i[n])])
        used = used[used >= 0]
        first, stop = (int(used.min()), int(used.max()) + 1) if used.shape[0] else (0, 0)
        groups[key] = VectorGroup(
            vectors=masks.columns[key][first:stop], valid=masks.valid[key][first:stop]
        )
        for n in names:
            shifted_now[n] = np.where(now_i[n] >= 0, now_i[n] - first, -1)
            shifted_before[n] = np.where(before_i[n] >= 0, before_i[n] - first, -1)
    return PendingVectors(
        groups=groups,
        group_of=group_of,
        kinds={f.name: f.kind for f in masks.features},
        now=shifted_now,
        before=shifted_before,
        required=np.asarray(required, dtype=bool),
    )
