"""What the window tests share: `things_view`, a small view over every scalar kind with
windows in units of `W` µs, the hypothesis strategy of its events (with re-deliveries),
and the checks of emitted rows against the brute force (`bruteforce.values_at`)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.definitions import (
    Condition,
    DType,
    Entity,
    EventField,
    Feature,
    FeatureView,
    Source,
    count,
    count_distinct,
    last,
    max_,
    mean,
    min_,
    share,
    stddev,
    sum_,
)
from feature_store.registry import Registry
from tests.unit.feature_store.core.bruteforce import values_at

W = 10  # window unit in µs keeps hypothesis' examples small and dense

SOURCE = Source(
    name="things",
    topic="things",
    event_types=("a", "b"),
    fields=(
        EventField(name="event_id", dtype=DType.STRING),
        EventField(name="event_type", dtype=DType.STRING),
        EventField(name="event_time", dtype=DType.TIMESTAMP),
        EventField(name="key", dtype=DType.STRING),
        EventField(name="x", dtype=DType.INT64),
        EventField(name="tag", dtype=DType.STRING),
    ),
)
IS_A = Condition(field="event_type", equals="a")


def in_units_of_w(plan: ViewPlan) -> ViewPlan:
    """`plan` with its windows, declared in seconds, counted in µs instead: a window of
    `W`s lasts W µs, so that hypothesis' examples stay small."""
    return ViewPlan(
        **{
            **plan.__dict__,
            "features": tuple(
                type(f)(
                    **{**f.__dict__, "window": None if f.window is None else f.window // 1_000_000}
                )
                for f in plan.features
            ),
        }
    )


VIEW = FeatureView(
    name="things_view",
    entity="thing",
    source="things",
    features=(
        Feature(name="n_short", aggregation=count(), window=f"{W}s"),
        Feature(name="n_a", aggregation=count(where=IS_A), window=f"{3 * W}s"),
        Feature(name="sum_x", aggregation=sum_("x"), window=f"{2 * W}s"),
        Feature(name="mean_x", aggregation=mean("x", where=IS_A), window=f"{3 * W}s"),
        Feature(name="sd_x", aggregation=stddev("x"), window=f"{2 * W}s"),
        Feature(name="tags", aggregation=count_distinct("tag"), window=f"{2 * W}s"),
        Feature(name="max_x", aggregation=max_("x"), window=f"{W}s"),
        Feature(name="min_x", aggregation=min_("x"), window=f"{3 * W}s"),
        Feature(name="last_tag", aggregation=last("tag"), window=f"{2 * W}s"),
        Feature(
            name="share_3",
            aggregation=share(Condition(field="x", equals=3), where=IS_A),
            window=f"{W}s",
        ),
        Feature(name="newest", aggregation=max_("event_time")),
        Feature(name="n_all", aggregation=count()),
        Feature(name="mean_all", aggregation=mean("x")),
        Feature(name="last_x_ever", aggregation=last("x")),
    ),
)
REG = Registry(entities=(Entity(name="thing", join_key="key"),), sources=(SOURCE,), views=(VIEW,))
PLAN = in_units_of_w(ViewPlan.build(REG, "things_view"))

events_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "event_id": st.integers(0, 40).map(lambda i: f"e{i:02d}"),
            "event_type": st.sampled_from(["a", "b"]),
            "event_time": st.integers(0, 8 * W),
            "x": st.one_of(st.none(), st.integers(1, 5)),
            "tag": st.one_of(st.none(), st.sampled_from(["p", "q", "r"])),
        }
    ),
    max_size=30,
    unique_by=lambda e: e["event_id"],
).flatmap(
    lambda evs: (
        st.lists(st.sampled_from(evs), max_size=5).map(lambda dupes: evs + dupes)
        if evs
        else st.just(evs)
    )
)  # exact re-deliveries of some events


def row_value_at(rows: list[tuple[int, dict[str, Any]]], t: int) -> dict[str, Any] | None:
    """The last row (in emission order among equal valid_from) with valid_from <= t."""
    best: tuple[int, dict[str, Any]] | None = None
    for valid_from, row in rows:
        if valid_from <= t and (best is None or valid_from >= best[0]):
            best = (valid_from, row)
    return best[1] if best else None


def as_rows(batch: RowBatch) -> list[tuple[int, dict[str, Any]]]:
    return [(int(batch.valid_from[i]), batch.row(i)) for i in range(len(batch))]


def same(a: Any, b: Any) -> bool:
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


EMPTY = {"n_short": 0, "n_a": 0, "sum_x": 0, "tags": 0, "n_all": 0}


def check_at(rows: list[tuple[int, dict[str, Any]]], events: list[dict[str, Any]], t: int) -> None:
    """The row read at `t` (the last with valid_from <= t) holds the definition at `t`."""
    _check(row_value_at(rows, t), rows, events, t)


def check_newest(
    rows: list[tuple[int, dict[str, Any]]], events: list[dict[str, Any]], t: int
) -> None:
    """What an online store holds: the row with the largest valid_from (the later of
    equal ones), whatever order the writes arrive in."""
    newest = max(range(len(rows)), key=lambda i: (rows[i][0], i)) if rows else None
    _check(rows[newest][1] if newest is not None else None, rows, events, t)


def _check(
    got: dict[str, Any] | None,
    rows: list[tuple[int, dict[str, Any]]],
    events: list[dict[str, Any]],
    t: int,
) -> None:
    """`got` (no row: every feature empty) equals the brute force at `t`."""
    expected = values_at(PLAN, events, t)
    got = got if got is not None else {name: EMPTY.get(name) for name in expected}
    for name, value in expected.items():
        assert same(got[name], value), (
            name,
            t,
            got[name],
            value,
            [(vf, r[name]) for vf, r in rows],
        )
