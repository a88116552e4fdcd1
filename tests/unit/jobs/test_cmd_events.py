"""`feature-store validate` and `feature-store simulate`, through click's CliRunner."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jobs.cli import main  # first: it registers the command modules

EMULATOR_ENV = (
    "PUBSUB_EMULATOR_HOST",
    "BIGTABLE_EMULATOR_HOST",
    "BIGQUERY_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
)


@pytest.fixture(autouse=True)
def _keep_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The CLI group points the Google clients at the emulators; undo that afterwards."""
    for name in EMULATOR_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FEATURE_STORE_HOME", str(tmp_path / "state"))


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def body(**fields: Any) -> bytes:
    event = {
        "event_id": "e1",
        "event_type": "review_created",
        "event_time": "2024-03-01T10:00:00Z",
        "review_id": "r1",
        "user_id": "u1",
        "business_id": "b1",
        "rating": 5,
        "text": "Lovely.",
    }
    event.update(fields)
    return json.dumps(event).encode()


LINES: list[tuple[bytes, str]] = [  # (line, what validate should make of it)
    (body(), "valid"),
    (body(event_id="e2", rating=1), "valid"),
    (body(), "duplicate"),  # same event_id as the first line
    (body(event_id="e2", rating=2), "duplicate"),  # a repeated id is a duplicate delivery
    (body(event_id="e3", rating=7), "rating_out_of_range"),
    (body(event_id="e4", event_time="2024-03-01T10:00:00"), "naive_timestamp"),
    (b"this is not json", "not_json"),
    (b"", "not_json"),  # an empty line is an empty message
    (b"[1, 2]", "not_object"),
    (body(event_id="e5", text="x" * 20_001), "text_too_long"),
    (body(event_id="e6", event_type="review_deleted"), "unknown_event_type"),
    (b'{"event_id": "e7", "text": "caf\xe9"}', "not_utf8"),
    (body(event_id="e8") + b"\r", "valid"),  # CRLF line endings: \r is JSON whitespace
    (body(event_id="e9", language="en", note={"kept": True}), "valid"),
    (body(event_id="e10", event_time="9999-12-31T23:59:59Z"), "timestamp_out_of_range"),
    (body(event_id="e11", event_time="1999-12-31T23:59:59Z"), "timestamp_out_of_range"),
]


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "review-events-2024.jsonl"
    path.write_bytes(b"\n".join(line for line, _ in LINES))  # no newline after the last line
    return path


def test_validate_counts_add_up_and_match_an_independent_count(
    event_file: Path, tmp_path: Path
) -> None:
    dlq = tmp_path / "out" / "dead.jsonl"
    result = run("validate", str(event_file), "--dlq", str(dlq))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    expected = Counter(kind for _, kind in LINES)
    assert summary["valid"] == expected["valid"] == 4
    assert summary["duplicates"] == expected["duplicate"] == 2
    reasons = {k: v for k, v in expected.items() if k not in ("valid", "duplicate")}
    assert summary["reasons"] == reasons
    assert summary["invalid"] == sum(reasons.values()) == 10
    assert summary["valid"] + summary["invalid"] + summary["duplicates"] == len(LINES)


def test_dead_letter_file_holds_each_invalid_line_with_its_reason(
    event_file: Path, tmp_path: Path
) -> None:
    dlq = tmp_path / "dead.jsonl"
    assert (
        run("validate", "--topic", "review-events", str(event_file), "--dlq", str(dlq)).exit_code
        == 0
    )
    letters = [json.loads(line) for line in dlq.read_text(encoding="utf-8").splitlines()]
    invalid = [(line, kind) for line, kind in LINES if kind not in ("valid", "duplicate")]
    assert [letter["reason"] for letter in letters] == [kind for _, kind in invalid]
    for letter, (line, _) in zip(letters, invalid, strict=True):
        assert base64.b64decode(letter["raw_base64"]) == line
        assert letter["topic"] == "review-events"
        assert letter["attributes"] == {}
        assert letter["detail"]
        try:
            assert letter["raw_text"] == line.decode("utf-8")
        except UnicodeDecodeError:
            assert letter["raw_text"] is None


def test_validate_bounds_event_time_by_now_plus_the_clock_skew(tmp_path: Path) -> None:
    review = tmp_path / "review-events.jsonl"
    review.write_bytes(body(event_time="2024-03-01T10:00:00Z"))
    early = json.loads(run("validate", str(review), "--now", "2024-03-01T09:00:00Z").output)
    assert early["reasons"] == {"timestamp_out_of_range": 1}
    skewed = run("--clock-skew", "3600", "validate", str(review), "--now", "2024-03-01T09:00:00Z")
    assert json.loads(skewed.output)["valid"] == 1
    on_time = json.loads(run("validate", str(review), "--now", "2024-03-01T09:56:00Z").output)
    assert on_time["valid"] == 1


def test_validate_without_dlq_writes_nothing(event_file: Path) -> None:
    before = set(event_file.parent.iterdir())
    assert run("validate", str(event_file)).exit_code == 0
    assert set(event_file.parent.iterdir()) == before


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--topic", "reviews", "{file}"],
        ["validate", "{dir}/events.jsonl"],  # no topic in the name, none given
        ["validate", "{dir}/review-events-missing.jsonl"],
        ["validate", "{file}", "--dlq", "{file}"],
    ],
)
def test_validate_exits_1_on_unusable_arguments(
    args: list[str], event_file: Path, tmp_path: Path
) -> None:
    filled = [a.format(file=event_file, dir=tmp_path) for a in args]
    (tmp_path / "events.jsonl").write_bytes(body())
    result = run(*filled)
    assert result.exit_code == 1
    assert "Error" in result.output


def test_simulate_writes_files_that_validate_as_simulated(tmp_path: Path) -> None:
    out = tmp_path / "events"
    args = [
        "simulate",
        "--out",
        str(out),
        "--events",
        "6000",
        "--users",
        "500",
        "--businesses",
        "60",
        "--days",
        "2",
        "--seed",
        "3",
        "--bad-share",
        "0.05",
        "--duplicate-share",
        "0.04",
        "--late-share",
        "0.02",
    ]
    result = run(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert summary["messages"] == 6000
    assert summary["files"] == {
        "review-events": str(out / "review-events.jsonl"),
        "user-events": str(out / "user-events.jsonl"),
    }
    kinds = summary["by_topic_and_kind"]
    for topic in ("review-events", "user-events"):
        checked = json.loads(run("validate", str(out / f"{topic}.jsonl")).output)
        assert checked["valid"] == kinds[f"{topic}/valid"] + kinds[f"{topic}/late"]
        assert checked["duplicates"] == kinds[f"{topic}/duplicate"]
        assert checked["invalid"] == kinds[f"{topic}/malformed"]
    assert sum(kinds.values()) == 6000
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run(*args).exit_code == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first  # deterministic by seed


def test_simulate_start_sets_the_first_event_time(tmp_path: Path) -> None:
    result = run(
        "simulate",
        "--out",
        str(tmp_path),
        "--events",
        "200",
        "--users",
        "50",
        "--start",
        "2025-02-03T04:05:06+01:00",
        "--days",
        "0.5",
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "user-events.jsonl").read_bytes().splitlines()
    times = sorted(json.loads(line)["event_time"] for line in lines)
    assert "2025-02-03T03:05:06Z" <= times[0] < times[-1] < "2025-02-03T15:05:06Z"


@pytest.mark.parametrize(
    "args",
    [
        ["simulate"],  # neither --out nor --publish
        ["simulate", "--out", "{dir}", "--publish"],
        ["simulate", "--out", "{dir}", "--rate", "10"],
        ["simulate", "--out", "{dir}", "--realtime"],
        ["simulate", "--out", "{dir}", "--bad-share", "1.5"],
        ["simulate", "--out", "{dir}", "--start", "2024-01-01T00:00:00"],  # naive
        ["simulate", "--out", "{dir}", "--days", "0"],
    ],
)
def test_simulate_refuses_bad_arguments(args: list[str], tmp_path: Path) -> None:
    result = run(*[a.format(dir=tmp_path) for a in args])
    assert result.exit_code == 1
    assert "Error" in result.output


def test_simulate_publish_hands_the_stream_to_the_publisher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from simulator import publisher
    from simulator.traffic import SimulatedMessage

    calls: list[dict[str, Any]] = []

    def fake_publish(
        project: str,
        messages: Iterator[SimulatedMessage],
        rate: float | None = None,
        progress: object = None,
        *,
        realtime: bool = False,
    ) -> publisher.PublishStats:
        sent = list(messages)
        calls.append({"project": project, "rate": rate, "realtime": realtime, "sent": sent})
        return publisher.PublishStats(published=len(sent), failed=0, elapsed_s=1.0)

    monkeypatch.setattr(publisher, "publish_messages", fake_publish)
    result = run(
        "--project",
        "my-project",
        "simulate",
        "--publish",
        "--rate",
        "250",
        "--realtime",
        "--events",
        "300",
        "--users",
        "40",
    )
    assert result.exit_code == 0, result.output
    [call] = calls
    assert (call["project"], call["rate"], call["realtime"]) == ("my-project", 250.0, True)
    assert len(call["sent"]) == 300
    assert json.loads(result.output[result.output.index("{") :])["published"] == 300


def test_simulate_publish_reports_a_missing_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator import publisher

    def missing(*args: object, **kwargs: object) -> publisher.PublishStats:
        msg = (
            "Pub/Sub topic `projects/p/topics/review-events` is missing; run `feature-store apply`"
        )
        raise publisher.TopicNotFoundError(msg)

    monkeypatch.setattr(publisher, "publish_messages", missing)
    result = run("simulate", "--publish", "--events", "10", "--users", "5")
    assert result.exit_code == 1
    assert "review-events" in result.output
    assert "feature-store apply" in result.output
