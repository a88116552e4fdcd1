"""Plain Feast on the local stack, as a notebook uses it, and the training-set command.

After a small backfill, a subprocess with a clean environment (the emulator variables,
and the interpreter's own package path, nothing else) runs a script that imports only
`feast` and `pandas`: `FeatureStore(repo_path=...)`, online features for some entities,
and a point-in-time history for others. Its answers are checked here against the
brute-force reading of the definitions. Feast finds the emulator-bound offline store
and the newer-wins online stores from the repo's feature_store.yaml alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from feature_store.config import PlatformConfig
from feature_store.core.plan import ViewPlan
from feature_store.reference import REGISTRY
from jobs.backfill import BackfillSummary, run_backfill
from jobs.cli import main
from jobs.provision import repo_path
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS, empty, records, same, us
from tests.unit.feature_store.core.bruteforce import values_at

pytestmark = pytest.mark.integration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000

NOTEBOOK = """
import json, sys
import pandas as pd
from feast import FeatureStore

request = json.load(sys.stdin)
store = FeatureStore(repo_path=request["repo"])
online = store.get_online_features(
    features=request["features"], entity_rows=request["entity_rows"], full_feature_names=True
).to_dict()
entity_df = pd.DataFrame(request["lookups"])
entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
history = store.get_historical_features(
    entity_df=entity_df, features=request["features"], full_feature_names=True
).to_df()
packages = ("jobs", "feature_store", "online", "offline")
ours = sorted(m for m in sys.modules if m.split(".")[0] in packages)
print(json.dumps({
    "online": online,
    "history": json.loads(history.to_json(orient="records", date_format="iso", date_unit="us")),
    "project_modules": ours,
}, default=str))
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    config = SimulationConfig(
        seed=11,
        start=start,
        duration=timedelta(days=1, hours=20),
        events=1500,
        users=15,
        businesses=6,
        bad_share=0.02,
        duplicate_share=0.02,
    )
    messages = list(simulate(config))
    folder = tmp_path_factory.mktemp("history")
    write_jsonl(messages, folder)
    return folder, messages


@pytest.fixture(scope="module")
def backfilled(platform: PlatformConfig, history: tuple[Path, list[Any]]) -> BackfillSummary:
    return run_backfill(platform, REGISTRY, [str(history[0])], views=VIEWS)


def _clean_env(platform: PlatformConfig) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **platform.endpoints.env()}
    if "PYTHONPATH" in os.environ:  # where the packages are, when run from a checkout
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _notebook(platform: PlatformConfig, request: dict[str, Any], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=_clean_env(platform),
        cwd=cwd,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _expected(
    plan: ViewPlan, events: list[dict[str, Any]], at_us: int, online: bool
) -> dict[str, Any]:
    expected = values_at(plan, events, at_us)
    for f in plan.features:
        if online and f.dtype.value == "TIMESTAMP" and expected[f.name] is not None:
            expected[f.name] -= expected[f.name] % 1_000_000  # Feast online: whole seconds
    return expected


def test_a_notebook_reads_online_and_history_with_feast_alone(
    platform: PlatformConfig,
    backfilled: BackfillSummary,
    history: tuple[Path, list[Any]],
    tmp_path: Path,
) -> None:
    plan = ViewPlan.build(REGISTRY, "user_review_stats")
    per_key = records(history[1])
    users = sorted(k for v, k in per_key if v == plan.view)[:6]
    lookups = []
    for user in users:
        times = sorted(r["event_time"] for r in per_key[(plan.view, user)])
        for t in (times[0] - 1, times[0], times[len(times) // 2] + HOUR_US, times[-1]):
            lookups.append(
                {
                    "user_id": user,
                    "event_timestamp": (EPOCH + timedelta(microseconds=t)).isoformat(),
                }
            )
    request = {
        "repo": str(repo_path(platform, "redis").resolve()),
        "features": [f"{plan.view}:{f.name}" for f in plan.features],
        "entity_rows": [{"user_id": u} for u in users],
        "lookups": lookups,
    }
    answer = _notebook(platform, request, tmp_path)

    # Feast imported our store classes by their type, and nothing else of ours.
    assert not [m for m in answer["project_modules"] if m.startswith("jobs")]
    assert "offline.feast_bigquery" in answer["project_modules"]
    assert "online.feast_stores" in answer["project_modules"]

    online = answer["online"]
    assert online["user_id"] == users
    for i, user in enumerate(users):
        expected = _expected(plan, per_key[(plan.view, user)], us(backfilled.as_of), online=True)
        for name, value in expected.items():
            assert same(online[f"{plan.view}__{name}"][i], value), ("online", user, name, value)

    rows = answer["history"]
    assert len(rows) == len(lookups)
    got = {(r["user_id"], us(datetime.fromisoformat(r["event_timestamp"]))): r for r in rows}
    for lookup in lookups:
        at = us(datetime.fromisoformat(lookup["event_timestamp"]))
        row = got[(lookup["user_id"], at)]
        expected = _expected(plan, per_key[(plan.view, lookup["user_id"])], at, online=False)
        if all(row[f"{plan.view}__{n}"] is None for n in expected):
            assert expected == empty(plan), (lookup, expected)  # no change point yet
            continue
        for name, value in expected.items():
            assert same(row[f"{plan.view}__{name}"], value), ("history", lookup, name, value, row)


def _review_labels(messages: list[Any]) -> list[dict[str, Any]]:
    """One label row per review_created event, at the review's time and 1 µs before."""
    reviews = [
        r
        for (view, _), rs in records(messages).items()
        if view == "business_review_stats"
        for r in rs
        if r.get("event_type") == "review_created" and r.get("user_id")
    ][:40]
    rows = []
    for i, r in enumerate(reviews):
        for t in (r["event_time"], r["event_time"] - 1):
            rows.append(
                {
                    "user_id": r["user_id"],
                    "business_id": r["business_id"],
                    "review_id": r["review_id"],
                    "event_timestamp": (EPOCH + timedelta(microseconds=t)).isoformat(),
                    "is_fraud": i % 2,
                }
            )
    return rows


def _timestamp_us(value: Any) -> Any:
    if isinstance(value, datetime):
        return us(value if value.tzinfo else value.replace(tzinfo=UTC))
    return value


def test_training_set_command_writes_the_point_in_time_join(
    platform: PlatformConfig,
    backfilled: BackfillSummary,
    history: tuple[Path, list[Any]],
    tmp_path: Path,
) -> None:
    del backfilled
    labels = _review_labels(history[1])
    assert len(labels) >= 40
    csv = tmp_path / "labels.csv"
    pd.DataFrame(labels).to_csv(csv, index=False)
    out = tmp_path / "train.parquet"
    args = ["--state-dir", str(platform.state_dir), "training-set", "--entities", str(csv)]
    args += ["--service", "review_fraud_model", "--out", str(out), "--batch-rows", "32"]
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)

    table = pq.read_table(out).to_pylist()
    assert len(table) == len(labels) == summary["rows"]
    assert [r["review_id"] for r in table] == [r["review_id"] for r in labels]  # labels' order
    assert [r["is_fraud"] for r in table] == [r["is_fraud"] for r in labels]
    # This backfill computes no review_content (views=VIEWS): every value null, and said so.
    for name in ("text_length", "sentiment"):
        assert summary["nulls"][f"review_content__{name}"] == len(labels)
        assert all(r[f"review_content__{name}"] is None for r in table)

    per_key = records(history[1])
    nulls: dict[str, int] = {}
    for view, key_column in (
        ("user_review_stats", "user_id"),
        ("user_activity", "user_id"),
        ("business_review_stats", "business_id"),
    ):
        plan = ViewPlan.build(REGISTRY, view)
        for row in table:
            at = us(datetime.fromisoformat(row["event_timestamp"].isoformat()))
            events = per_key.get((view, row[key_column]), [])
            expected = _expected(plan, events, at, online=False)
            got = {n: _timestamp_us(row[f"{view}__{n}"]) for n in expected}
            for n, value in got.items():
                nulls[f"{view}__{n}"] = nulls.get(f"{view}__{n}", 0) + (value is None)
            if all(v is None for v in got.values()):
                assert expected == empty(plan), (view, row, expected)
                continue
            for n, value in expected.items():
                assert same(got[n], value), (view, row[key_column], at, n, value, got[n])
    for column, count in nulls.items():
        assert summary["nulls"][column] == count, column
    first = min(datetime.fromisoformat(r["event_timestamp"]) for r in labels)
    assert datetime.fromisoformat(summary["start"]) == first


def test_training_set_summary_reads_at_100_columns(
    platform: PlatformConfig,
    backfilled: BackfillSummary,
    history: tuple[Path, list[Any]],
    tmp_path: Path,
) -> None:
    del backfilled
    csv = tmp_path / "labels.csv"
    pd.DataFrame(_review_labels(history[1])[:6]).to_csv(csv, index=False)
    args = ["--state-dir", str(platform.state_dir), "training-set", "--entities", str(csv)]
    args += ["--service", "review_fraud_model", "--out", str(tmp_path / "t.parquet")]
    result = CliRunner().invoke(main, args, catch_exceptions=False, terminal_width=100)
    assert result.exit_code == 0, result.output
    shown = result.stdout
    assert max(len(line) for line in shown.splitlines()) <= 100, shown
    assert "6 rows" in shown
    for name in ("user_review_stats__distinct_businesses_24h", "review_content__sentiment"):
        assert name in shown  # full names, not cut
    assert "no value at any row's time" in shown


def test_training_set_names_a_missing_column(platform: PlatformConfig, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("user_id,business_id,event_timestamp\nu1,b1,2024-05-01T00:00:00Z\n")
    args = ["--state-dir", str(platform.state_dir), "training-set", "--entities", str(csv)]
    args += ["--service", "review_fraud_model", "--out", str(tmp_path / "t.parquet")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "lacks column(s) ['review_id']" in result.output
