"""An independent, direct computation of FEATURES.md's window semantics (for tests)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from feature_store.core.plan import FeaturePlan, ViewPlan


def _matches(event: Mapping[str, Any], cond: Any) -> bool:
    if cond is None:
        return True
    value = event["event_time"] if cond.field == "event_time" else event.get(cond.field)
    return value in cond.values


def _dedup_sorted(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    seen: dict[str, Mapping[str, Any]] = {}
    for e in events:
        seen.setdefault(e["event_id"], e)
    return sorted(seen.values(), key=lambda e: (e["event_time"], e["event_id"]))


def value_at(
    plan: ViewPlan, feature: FeaturePlan, events: Sequence[Mapping[str, Any]], t: int
) -> Any:
    rows = [
        e
        for e in _dedup_sorted(events)
        if e["event_time"] <= t
        and (feature.window is None or e["event_time"] > t - feature.window)
        and _matches(e, plan.where)
        and _matches(e, feature.where)
    ]
    field = feature.field
    get = (lambda e: e["event_time"]) if field == "event_time" else (lambda e: e.get(field))
    vals = [get(e) for e in rows if get(e) is not None] if field else []
    kind = feature.kind
    if kind == "count":
        return len(rows)
    if kind == "sum":
        return float(sum(vals))
    if kind == "mean":
        return sum(vals) / len(vals) if vals else None
    if kind == "stddev":
        if not vals:
            return None
        m = sum(vals) / len(vals)
        return math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))
    if kind == "count_distinct":
        return len(set(vals))
    if kind == "max":
        return max(vals) if vals else None
    if kind == "min":
        return min(vals) if vals else None
    if kind == "last":
        return vals[-1] if vals else None
    if kind == "share":
        return (
            sum(1 for e in rows if _matches(e, feature.share_where)) / len(rows) if rows else None
        )
    if kind == "max_similarity_to_newest":
        vecs = [np.asarray(v, dtype=np.float64) for v in vals]
        if len(vecs) < 2:
            return None
        q = vecs[-1]
        return max(float(o @ q / (np.linalg.norm(o) * np.linalg.norm(q))) for o in vecs[:-1])
    if kind == "centroid_distance_of_newest":
        vecs = [np.asarray(v, dtype=np.float64) for v in vals]
        if not vecs:
            return None
        return float(np.linalg.norm(vecs[-1] - np.mean(vecs, axis=0)))
    raise AssertionError(kind)


def values_at(plan: ViewPlan, events: Sequence[Mapping[str, Any]], t: int) -> dict[str, Any]:
    return {f.name: value_at(plan, f, events, t) for f in plan.features}
