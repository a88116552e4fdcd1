"""The nightly backfill end to end: simulated events → exact features in BigQuery,
read back through Feast's historical retrieval, latest values in both online stores."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.reference import REGISTRY
from jobs.backfill import BackfillSummary, run_backfill
from jobs.retrieval import get_historical
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS, check_online, empty, records, same, us
from tests.unit.feature_store.core.bruteforce import values_at
from tests.unit.jobs.test_local_workers import sized_for_workers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    config = SimulationConfig(
        seed=7,
        start=start,
        duration=timedelta(days=2, hours=20),
        events=4000,
        users=40,
        businesses=15,
        bad_share=0.03,
        duplicate_share=0.03,
        late_share=0.02,
    )
    messages = list(simulate(config))
    folder = tmp_path_factory.mktemp("history")
    write_jsonl(messages, folder)
    return folder, messages


@pytest.fixture(scope="module", params=[1, 2], ids=["one_worker", "two_workers"])
def workers(request: pytest.FixtureRequest) -> int:
    """The local runner's worker processes: every test runs on both."""
    return int(request.param)


@pytest.fixture(scope="module")
def platform(
    stack: PlatformConfig, tmp_path_factory: pytest.TempPathFactory, workers: int
) -> PlatformConfig:
    """A platform of its own for each worker count, so neither run reads the other's rows."""
    from tests.integration.platforms import own_platform

    return own_platform(stack, tmp_path_factory, REGISTRY)


@pytest.fixture(scope="module")
def backfilled(
    platform: PlatformConfig, history: tuple[Path, list[Any]], workers: int
) -> BackfillSummary:
    """Two workers as the backfill chooses them for a large input (its threshold lowered
    to this input: the choice by size is what runs, on a machine of two cores)."""
    with pytest.MonkeyPatch.context() as patch:
        if workers == 2:
            sized_for_workers(patch, 1)
        summary = run_backfill(platform, REGISTRY, [str(history[0])], views=VIEWS)
    assert summary.local_workers == workers
    return summary


def test_summary_counts_every_message(
    backfilled: BackfillSummary, history: tuple[Path, list[Any]]
) -> None:
    messages = history[1]
    kinds = defaultdict(int)
    for message in messages:
        kinds[str(message.kind)] += 1
    assert backfilled.events_read == len(messages)
    assert backfilled.invalid == sum(v for k, v in kinds.items() if "malformed" in k)
    assert backfilled.duplicates == sum(v for k, v in kinds.items() if "duplicate" in k)
    assert set(backfilled.rows_written) == set(VIEWS)


def test_history_through_feast_equals_brute_force(
    platform: PlatformConfig, backfilled: BackfillSummary, history: tuple[Path, list[Any]]
) -> None:
    per_key = records(history[1])
    rnd = random.Random(3)
    for view in VIEWS:
        plan = ViewPlan.build(REGISTRY, view)
        keys = rnd.sample(sorted(k for v, k in per_key if v == view), 6)
        lookups = []
        for key in keys:
            times = sorted(r["event_time"] for r in per_key[(view, key)])
            probes = [times[0] - 1, times[0], times[len(times) // 2] + 1, times[-1]]
            probes += [t + 3_600_000_000 for t in times[:2]] + [
                t + 3_600_000_000 - 1 for t in times[:2]
            ]
            lookups += [(key, t) for t in probes]
        frame = pd.DataFrame(
            {
                plan.join_key: [k for k, _ in lookups],
                "event_timestamp": [pd.Timestamp(t, unit="us", tz="UTC") for _, t in lookups],
            }
        )
        refs = [f"{view}:{f.name}" for f in plan.features]
        rows = get_historical(platform, refs, frame)
        assert len(rows) == len(lookups)
        got = {
            (r[plan.join_key], us(pd.Timestamp(r["event_timestamp"]).to_pydatetime())): r
            for r in rows
        }
        for key, t in lookups:
            expected = values_at(plan, per_key[(view, key)], t)
            row = got[(key, t)]
            if all(row[f"{view}__{name}"] is None for name in expected):
                # no change point yet at t: Feast has no row, the definition gives the
                # values of an empty window
                assert expected == empty(plan), (view, key, t, expected)
                continue
            for name, value in expected.items():
                assert same(row[f"{view}__{name}"], value), (view, key, t, name, value, repr(row))


@pytest.mark.parametrize("store", ["redis", "bigtable"])
def test_online_stores_hold_the_latest_values(
    platform: PlatformConfig,
    backfilled: BackfillSummary,
    history: tuple[Path, list[Any]],
    store: str,
) -> None:
    check_online(platform, history[1], us(backfilled.as_of), store, keys_per_view=8)


def test_rerunning_the_backfill_changes_nothing(
    platform: PlatformConfig, backfilled: BackfillSummary, history: tuple[Path, list[Any]]
) -> None:
    from common.bigquery_client import make_client

    client = make_client(platform.project, platform.endpoints.bigquery)

    def snapshot() -> dict[str, list[tuple[Any, ...]]]:
        out = {}
        for view in VIEWS:
            table = f"{platform.project}.{platform.features_dataset}.{view}"
            rows = client.query(f"SELECT * EXCEPT (computed_at) FROM `{table}`").result()
            out[view] = sorted(tuple(str(v) for v in r.values()) for r in rows)
        return out

    before = snapshot()
    again = run_backfill(platform, REGISTRY, [str(history[0])], views=VIEWS, end=backfilled.as_of)
    assert again.rows_written == backfilled.rows_written
    assert snapshot() == before


def test_a_range_backfill_replaces_only_that_range(
    platform: PlatformConfig, backfilled: BackfillSummary, history: tuple[Path, list[Any]]
) -> None:
    from common.bigquery_client import make_client

    client = make_client(platform.project, platform.endpoints.bigquery)
    table = f"{platform.project}.{platform.features_dataset}.user_review_stats"
    middle = backfilled.as_of - timedelta(days=1)

    def rows() -> list[tuple[str, ...]]:
        result = client.query(f"SELECT * EXCEPT (computed_at) FROM `{table}`").result()
        return sorted(tuple(str(v) for v in r.values()) for r in result)

    before = rows()
    client.query(
        f"DELETE FROM `{table}` WHERE valid_from >= TIMESTAMP_MICROS({us(middle)})"
    ).result()  # lose the last day, as a failed night would
    assert len(rows()) < len(before)
    again = run_backfill(
        platform,
        REGISTRY,
        [str(history[0])],
        views=("user_review_stats",),
        start=middle,
        end=backfilled.as_of,
        online=False,
    )
    assert (
        0 < again.rows_written["user_review_stats"] < backfilled.rows_written["user_review_stats"]
    )
    assert rows() == before
