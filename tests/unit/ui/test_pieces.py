"""The page's pure parts: the step chart, how side-topic messages are read and tallied,
how values are shown, and the saved results."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.last_results import CONSISTENCY, load_result, result_path, save_result
from common.side_topics import SideTopics, reason_of
from feature_store.config import PlatformConfig
from feature_store.events import DeadLetter, validate
from feature_store.reference import REGISTRY
from ui.app import age, display
from ui.chart import HEIGHT, PAD, WIDTH, step_chart

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_step_chart_holds_each_value_until_the_next_point() -> None:
    points = [(T0, 1), (T0 + timedelta(hours=1), 3), (T0 + timedelta(hours=2), 0)]
    svg = step_chart(points, T0 + timedelta(hours=4), "x")
    circles = re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert len(circles) == 3
    xs = [float(x) for x, _ in circles]
    ys = [float(y) for _, y in circles]
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    assert xs == pytest.approx([PAD, PAD + plot_w / 4, PAD + plot_w / 2], abs=0.1)
    # 0 is the bottom, 3 the top; 1 a third of the way up
    assert ys == pytest.approx([HEIGHT - PAD - plot_h / 3, PAD, HEIGHT - PAD], abs=0.1)
    path = re.search(r'<path d="([^"]+)"', svg)
    assert path is not None
    # a step: at the second point the line first runs flat at the old value
    assert f"L{xs[1]:.1f},{ys[0]:.1f} L{xs[1]:.1f},{ys[1]:.1f}" in path.group(1)
    assert path.group(1).endswith(f"L{WIDTH - PAD:.1f},{ys[2]:.1f}")


def test_step_chart_without_numbers_says_so() -> None:
    assert "no numeric history" in step_chart([(T0, "a")], T0, "v:f")


def test_display_and_age() -> None:
    assert display(None) == "-"
    assert display(float("nan")) == "-"
    assert display(4.695652173913044) == "4.69565"
    assert display(7) == "7"
    assert display([1.0, 2.0, 3.0, 4.0, 5.0]) == "[1, 2, 3, 4, …] (5)"
    assert age(None) == "-"
    assert age(42) == "42 s"
    assert age(150) == "2.5 min"
    assert age(7200) == "2.0 h"
    assert age(86400 * 1.5) == "1.5 d"


def test_reasons_are_read_as_the_jobs_publish_them() -> None:
    from online.pubsub_io import dead_letter_message, late_message

    letter = validate("review-events", b"not json")
    assert isinstance(letter, DeadLetter)
    message = dead_letter_message(letter)
    assert reason_of("dead letters", message.data, message.attributes) == (
        str(letter.reason),
        letter.detail,
    )
    late = late_message(("user_activity", "u1", {"event_id": "e9", "topic": "user-events"}))
    assert reason_of("late", late.data, late.attributes) == (
        "late for user_activity",
        "event e9 for u1",
    )
    assert reason_of("late", b"\xff", {})[0] == "late (unreadable body)"


def test_tally_counts_keeps_the_latest_and_survives_a_restart(tmp_path: Path) -> None:
    config = PlatformConfig.local_default(tmp_path)
    sides = SideTopics(config, REGISTRY)
    tally = sides.tallies["review-events-dlq"]
    for i in range(12):
        tally.add(T0 + timedelta(seconds=i), "not_json" if i % 3 else "missing_field", f"#{i}")
    sides._save()
    again = SideTopics(config, REGISTRY).tallies["review-events-dlq"]
    assert again.count == 12
    assert dict(again.reasons) == {"not_json": 8, "missing_field": 4}
    assert [m["detail"] for m in again.latest] == [f"#{i}" for i in range(11, 3, -1)]
    assert SideTopics(config, REGISTRY).tallies["user-events-late"].count == 0


def test_results_are_saved_whole_and_read_back(tmp_path: Path) -> None:
    config = PlatformConfig.local_default(tmp_path)
    assert load_result(config, CONSISTENCY) is None
    path = save_result(config, CONSISTENCY, {"values": 3, "mismatches": 0})
    assert path == result_path(config, CONSISTENCY)
    saved = json.loads(path.read_text())
    assert (saved["values"], saved["mismatches"]) == (3, 0)
    assert datetime.fromisoformat(saved["saved_at"]).tzinfo is not None
    assert load_result(config, CONSISTENCY) == saved
    assert list(path.parent.iterdir()) == [path]  # nothing left aside
    path.write_text("{half")
    assert load_result(config, CONSISTENCY) is None
