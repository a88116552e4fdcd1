"""Every command's output at 100 columns: no line longer, no name cut with `…`, no raw
JSON unless `--json` is asked for (then it parses), no INFO lines.

The jobs themselves are replaced by functions returning results of the real types with
long names and many entities, so that these tests need no emulator; the jobs are
tested end to end in tests/integration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from feature_store.reference import REGISTRY
from jobs.cli import main

WIDTH = 100
AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
USERS = [f"user-with-a-long-identifier-{i:03d}" for i in range(7)]


def run(*args: str, tmp_path: Path) -> Result:
    env = {"COLUMNS": str(WIDTH), "FEATURE_STORE_HOME": str(tmp_path / "state")}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def check_readable(result: Result) -> str:
    assert result.exit_code in (0, 1), result.output
    text = result.output
    for line in text.splitlines():
        assert len(line) <= WIDTH, f"{len(line)} columns: {line!r}"
        assert " INFO " not in line, line
        assert not line.lstrip().startswith(("{", '"')), f"raw JSON: {line!r}"
    assert "…" not in text, text
    return text


def online_rows(n: int) -> list[dict[str, Any]]:
    refs = REGISTRY.resolve("user_review_stats")
    return [
        {"user_id": USERS[i]}
        | {f"{r.view}__{r.feature}": (i * 1.25 if r.dtype.numeric else None) for r in refs}
        for i in range(n)
    ]


def test_get_puts_every_feature_name_whole_and_every_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import jobs.retrieval

    rows = online_rows(7)
    monkeypatch.setattr(jobs.retrieval, "get_online", lambda *a, **k: rows)
    args = ["get", "--features", "user_review_stats"]
    for user in USERS:
        args += ["--entity", f"user_id={user}"]
    text = check_readable(run(*args, tmp_path=tmp_path))
    for feature in REGISTRY.view("user_review_stats").features:
        assert feature.name in text
    for user in USERS:
        assert user in text
    assert "7.5" in text  # the 7th user's value (6 x 1.25)
    as_json = run(*args, "--json", tmp_path=tmp_path)
    assert json.loads(as_json.output) == rows


def test_backfill_summary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import jobs.backfill

    summary = jobs.backfill.BackfillSummary(
        events_read=123_456,
        invalid=12,
        duplicates=34,
        change_points=98_765,
        rows_written={"a_view_with_a_rather_long_name_for_a_table": 50_000, "user_activity": 7},
        online_rows={"redis": 400, "bigtable": 401},
        skipped_views={"review_content": "needs the inference stage (models: " + "m, " * 30},
        dead_letters=str(tmp_path / "a" / "deep" / "folder" / "for" / "dead" / "letters"),
        elapsed_s=12.5,
        as_of=AT,
    )
    monkeypatch.setattr(jobs.backfill, "run_backfill", lambda *a, **k: summary)
    text = check_readable(run("backfill", tmp_path=tmp_path))
    assert "123,456" in text
    assert "a_view_with_a_rather_long_name_for_a_table" in text
    assert "401" in text
    as_json = run("backfill", "--json", tmp_path=tmp_path).output
    assert json.loads(as_json[as_json.index("{") :])["events_read"] == 123_456


def test_consistency_summary_and_saved_result(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import jobs.consistency
    from common.last_results import CONSISTENCY, load_result
    from feature_store.config import PlatformConfig

    report = jobs.consistency.ConsistencyReport(at=AT, entities=40, values=320)
    report.mismatches.append(
        jobs.consistency.Mismatch("user_review_stats", "distinct_businesses_24h", USERS[0], 3, 2)
    )
    monkeypatch.setattr(jobs.consistency, "check_consistency", lambda *a, **k: report)
    result = run("consistency", "--at", "2024-05-01T12:00:00Z", tmp_path=tmp_path)
    text = check_readable(result)
    assert result.exit_code == 1
    assert "320 values of 40 entities" in text
    assert "user_review_stats:distinct_businesses_24h" in text
    saved = load_result(PlatformConfig.local_default(tmp_path / "state"), CONSISTENCY)
    assert saved is not None
    assert (saved["values"], saved["mismatches"]) == (320, 1)


def test_import_and_stream_summaries(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import jobs.importer
    import jobs.stream

    counters = {"events_valid": 1000, "events_invalid": 3, "archived_events_review_events": 700}
    monkeypatch.setattr(
        jobs.importer,
        "run_import",
        lambda *a, **k: jobs.importer.ImportSummary(counters=counters, dead_letters="dl/x"),
    )
    events = tmp_path / "review-events.jsonl"
    events.write_text("{}\n" * 3)
    text = check_readable(run("import", "--events", str(events), tmp_path=tmp_path))
    assert "archived_events_review_events" in text
    assert "1,000" in text

    summary = jobs.stream.StreamSummary(
        counters=counters,
        distributions={"online_write_latency_ms_for_a_long_metric": {"count": 9, "mean": 2.5}},
        skipped_views={"review_content": "needs the inference stage"},
        ran_s=61.0,
    )
    monkeypatch.setattr(jobs.stream, "run_stream", lambda *a, **k: summary)
    text = check_readable(run("stream", "--duration", "1", tmp_path=tmp_path))
    assert "online_write_latency_ms_for_a_long_metric" in text
    assert "61.0 s" in text


def test_validate_and_simulate(tmp_path: Path) -> None:
    out = tmp_path / "events"
    simulated = run(
        "simulate", "--out", str(out), "--events", "500", "--bad-share", "0.1", tmp_path=tmp_path
    )
    text = check_readable(simulated)
    assert "500 messages" in text
    text = check_readable(run("validate", str(out / "review-events.jsonl"), tmp_path=tmp_path))
    checked = json.loads(
        run("validate", str(out / "review-events.jsonl"), "--json", tmp_path=tmp_path).output
    )
    assert f"{checked['valid']:,} valid" in text
    assert f"{checked['invalid']:,} invalid" in text


def test_the_demo_screens_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    import jobs.retrieval
    from feature_store.config import PlatformConfig
    from jobs import demo
    from jobs.backfill import BackfillSummary
    from jobs.consistency import ConsistencyReport

    def fake_online(config: Any, refs: list[str], entity_rows: list[dict[str, str]]) -> Any:
        return [{r.replace(":", "__"): 12.345678 for r in refs} for _ in entity_rows]

    monkeypatch.setattr(jobs.retrieval, "get_online", fake_online)
    console = Console(width=WIDTH, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    config = PlatformConfig.local_default(Path("state"))
    console.print(demo._table(config, USERS[:4], ["business-with-a-long-id-1", "b2"], USERS[:2]))
    console.print(
        demo._closing(
            config,
            20_000,
            2_400,
            BackfillSummary(change_points=5000),
            BackfillSummary(change_points=5100),
            {"events_valid": 2300, "events_invalid": 50},
            ConsistencyReport(at=AT, entities=300, values=4000),
            USERS[:1],
        )
    )
    text = console.export_text()
    for line in text.splitlines():
        assert len(line) <= WIDTH, line
    assert "…" not in text
    for names in demo.SHOWN.values():
        for name in names:
            assert name in text
    assert "4,000 values of 300 entities: equal" in text
    assert "feature-store ui" in text
