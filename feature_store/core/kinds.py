"""One object per aggregation kind, registered in one place.

A `Kind` is everything about an aggregation kind (Chronon's `SimpleAggregator` is the
model): what a declaration may say about it (its `AggregationKind` metadata: whether it
needs a field, of which shape, what it yields), how it evaluates over windows at many
points (`evaluate`), and what the events an entity's state drops fold into for its
unbounded windows (`summarize`; a kind without one keeps every event of an unbounded
window). `register` puts it in the registry that declarations validate against and both
jobs compute from, so a new kind (a user's, or a vector kind backed by a kernel) touches
this one place.

`summarize` returns the tuple that `Evaluation.base_of` hands back to `evaluate` on the
next call: the two must agree on its layout, which is why they live side by side here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from feature_store.core import aggregation as agg
from feature_store.core.aggregation import Base, Evaluation, Segments, window_sum
from feature_store.core.columns import AnyArray, EventColumns, IntArray
from feature_store.core.plan import FeaturePlan, ViewPlan
from feature_store.definitions import AggregationKind, DType, aggregation_kind, register_kind
from feature_store.errors import FeatureDefinitionError

Evaluate = Callable[[Evaluation, FeaturePlan], AnyArray]
Summarize = Callable[[Evaluation, FeaturePlan], tuple[Any, ...] | None]


@dataclass(frozen=True, kw_only=True)
class Kind(AggregationKind):
    """An aggregation kind with its computation.

    `evaluate(ev, f)`: the feature's value at every point of `ev` (NaN for null).
    `summarize(ev, f)`: the summary of all of `ev`'s events (evaluated at one point, the
    newest dropped event), merged with `ev.base_of(f)`; None keeps the previous summary.
    `signature(ev, f)`: for a kind evaluated by a later stage (a kernel), a column that
    changes wherever the value may change (equal signatures, equal values), so that the
    change points are found without evaluating it (`evaluate(..., deferred=True)`).
    """

    evaluate: Evaluate
    summarize: Summarize | None = None
    signature: Evaluate | None = None

    @property
    def foldable(self) -> bool:
        return self.summarize is not None


def register(kind: Kind) -> Kind:
    """Make `kind` declarable and computable (replaces a kind of the same name)."""
    return register_kind(kind)


def kind_of(name: str) -> Kind:
    found = aggregation_kind(name)
    if not isinstance(found, Kind):
        msg = f"no computation registered for aggregation kind {name!r}"
        raise FeatureDefinitionError(msg)
    return found


def register_implementation(name: str, evaluate: Evaluate) -> Kind:
    """Plug a computation (e.g. a kernel) into a kind already declared by name."""
    declared = aggregation_kind(name)
    metadata = {f.name: getattr(declared, f.name) for f in fields(AggregationKind)}
    summarize = declared.summarize if isinstance(declared, Kind) else None
    signature = declared.signature if isinstance(declared, Kind) else None
    return register(Kind(**metadata, evaluate=evaluate, summarize=summarize, signature=signature))


def evaluate(
    plan: ViewPlan,
    events: EventColumns,
    points: IntArray,
    base: Base | None = None,
    segments: Segments | None = None,
    *,
    deferred: bool = False,
) -> dict[str, AnyArray]:
    """Every feature of the view at every point (points need not be sorted); with
    `deferred`, the features of `deferred_features(plan)` give their signature instead."""
    ev = Evaluation(plan, events, np.asarray(points, dtype=np.int64), base or {}, segments)
    out = {}
    for f in plan.features:
        kind = kind_of(f.kind)
        compute = kind.signature if deferred and kind.signature is not None else kind.evaluate
        out[f.name] = compute(ev, f)
    return out


def deferred_features(plan: ViewPlan) -> tuple[FeaturePlan, ...]:
    """The view's features whose kinds a later stage evaluates (they have a signature)."""
    return tuple(f for f in plan.features if kind_of(f.kind).signature is not None)


def _count_summary(ev: Evaluation, f: FeaturePlan) -> tuple[Any, ...]:
    return (float(window_sum(ev, f, ev.mask(f).astype(np.float64), 0)[0]),)


def _share_summary(ev: Evaluation, f: FeaturePlan) -> tuple[Any, ...]:
    den = window_sum(ev, f, ev.mask(f).astype(np.float64), 0)[0]
    num = window_sum(ev, f, ev.mask(f, share=True).astype(np.float64), 1)[0]
    return (float(den), float(num))


def _moments_summary(ev: Evaluation, f: FeaturePlan) -> tuple[Any, ...]:
    mask = ev.mask(f, non_null=True)
    x = np.where(mask, ev.column(f.field or ""), 0.0).astype(np.float64)
    return (
        float(window_sum(ev, f, mask.astype(np.float64), 0)[0]),
        float(window_sum(ev, f, x, 1)[0]),
        float(window_sum(ev, f, x * x, 2)[0]),
    )


def _value_summary(evaluate: Evaluate) -> Summarize:
    """Kinds whose value over the dropped events (and the previous summary) is itself
    the summary: max, min, last. A null value keeps the previous summary."""

    def summarize(ev: Evaluation, f: FeaturePlan) -> tuple[Any, ...] | None:
        value = evaluate(ev, f)[0]
        if isinstance(value, float) and np.isnan(value):
            return None
        return (value,)

    return summarize


BUILT_IN: tuple[Kind, ...] = (
    Kind(
        name="count",
        needs_field=False,
        output=DType.INT64,
        evaluate=agg.count,
        summarize=_count_summary,
    ),
    Kind(
        name="sum",
        needs_field=True,
        numeric_field=True,
        evaluate=agg.total,
        summarize=_moments_summary,
    ),
    Kind(
        name="mean",
        needs_field=True,
        numeric_field=True,
        output=DType.FLOAT64,
        evaluate=agg.mean,
        summarize=_moments_summary,
    ),
    Kind(
        name="stddev",
        needs_field=True,
        numeric_field=True,
        output=DType.FLOAT64,
        evaluate=agg.stddev,
        summarize=_moments_summary,
    ),
    Kind(
        name="count_distinct",
        needs_field=True,
        output=DType.INT64,
        evaluate=agg.count_distinct,
    ),
    Kind(
        name="max",
        needs_field=True,
        numeric_field=True,
        evaluate=agg.extreme,
        summarize=_value_summary(agg.extreme),
    ),
    Kind(
        name="min",
        needs_field=True,
        numeric_field=True,
        evaluate=agg.extreme,
        summarize=_value_summary(agg.extreme),
    ),
    Kind(
        name="last",
        needs_field=True,
        field_shape="any",
        evaluate=agg.last,
        summarize=_value_summary(agg.last),
    ),
    Kind(
        name="share",
        needs_field=False,
        output=DType.FLOAT64,
        needs_share_where=True,
        evaluate=agg.share,
        summarize=_share_summary,
    ),
    # The vector kinds keep every event of an unbounded window (no summary); their
    # evaluation runs the JAX kernels of `linalg` (`linalg.newest_vector_stats`), in the
    # jobs in a stage of its own (their signature finds the change points without it).
    Kind(
        name="max_similarity_to_newest",
        needs_field=True,
        field_shape="vector",
        output=DType.FLOAT64,
        evaluate=agg.max_similarity_to_newest,
        signature=agg.newest_window_signature,
    ),
    Kind(
        name="centroid_distance_of_newest",
        needs_field=True,
        field_shape="vector",
        output=DType.FLOAT64,
        evaluate=agg.centroid_distance_of_newest,
        signature=agg.newest_window_signature,
    ),
)

for _kind in BUILT_IN:
    register(_kind)
