"""The benchmark's SQL peer computes what the core computes, and the check can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from bench.backfill_runs import in_process
from bench.compare import compare_rows
from bench.sql_peer import run_queries, view_query, write_clean_files
from common.inference.settings import NO_MODELS
from feature_store.core.plan import ViewPlan
from feature_store.errors import FeatureDefinitionError
from feature_store.reference import REGISTRY
from jobs.backfill import plans_for
from offline.arrow_rows import to_arrow
from simulator.traffic import SimulationConfig, simulate, write_jsonl

PLANS = plans_for(REGISTRY, None, NO_MODELS)[0]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, pa.Table], Any]:
    folder = tmp_path_factory.mktemp("events")
    config = SimulationConfig(seed=3, events=4_000, bad_share=0.02, duplicate_share=0.05)
    write_jsonl(simulate(config), folder)
    write_clean_files(folder, folder / "clean")
    peer = {
        view: table for view, (_, table) in run_queries(REGISTRY, PLANS, folder / "clean").items()
    }
    ours = in_process(REGISTRY, PLANS, Path(folder))
    return peer, ours


def ours_as_arrow(ours: Any, plan: ViewPlan) -> pa.Table:
    return to_arrow(plan, ours.rows[plan.view], computed_at_us=0)


@pytest.mark.parametrize("plan", PLANS, ids=[p.view for p in PLANS])
def test_sql_rows_equal_the_core_rows(both: Any, plan: ViewPlan) -> None:
    peer, ours = both
    result = compare_rows(
        plan.view, plan.join_key, plan.feature_names, ours_as_arrow(ours, plan), peer[plan.view]
    )
    assert result.left_rows > 100
    assert result.ok, result


def test_the_check_sees_a_changed_value_and_a_missing_row(both: Any) -> None:
    peer, ours = both
    plan = PLANS[0]
    table = peer[plan.view]
    name = plan.feature_names[0]
    bumped = pc.add(table[name], 1)
    changed = table.set_column(table.schema.get_field_index(name), name, bumped)
    result = compare_rows(
        plan.view, plan.join_key, plan.feature_names, ours_as_arrow(ours, plan), changed.slice(1)
    )
    assert result.only_left == 1
    assert result.value_mismatches == table.num_rows - 1


def test_kinds_sql_cannot_express_are_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="no SQL for aggregation kind"):
        view_query(REGISTRY, ViewPlan.build(REGISTRY, "review_content"))
