"""The warm start from the backfill's snapshot: a user's `last_review_at` that only an
event older than the archive read knows, the archive read bounded (counted), and every
online value equal to the brute force; with no snapshot, the whole archive is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.metrics import local_counts, local_event_time, reset_local
from feature_store.config import PlatformConfig
from feature_store.events import contract_for
from feature_store.reference import REGISTRY, REVIEW_EVENTS
from jobs.backfill import plans_for, run_backfill
from jobs.importer import run_import
from jobs.online_sink import online_sink
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from online.stateful import WATERMARK_REACHED
from simulator.traffic import SimulationConfig, simulate, write_jsonl
from tests.integration.checks import VIEWS, check_online, us
from tests.integration.streams import wait_settled
from tests.integration.test_loop import _message

pytestmark = pytest.mark.integration
OLD_USER = "u-old"


def _old_review(at: datetime) -> Any:
    return _message(
        contract_for(REVIEW_EVENTS).event(
            event_id="old-review",
            event_type="review_created",
            event_time=at,
            review_id="r-old",
            user_id=OLD_USER,
            business_id="b-old",
            rating=4,
            text="Lovely place, we came back twice.",
            device_id="d-old",
        )
    )


def _warm_start(platform: PlatformConfig, started: datetime) -> dict[str, int]:
    """Runs the stream with no live traffic until its warm start settled; its counters."""
    reset_local()
    plans, _ = plans_for(REGISTRY, VIEWS)
    pipeline = make_pipeline([], streaming=True)
    build_stream(
        pipeline, platform, REGISTRY, plans, StreamSettings(), online_sink(platform), us(started)
    )
    job = pipeline.run()
    try:
        wait_settled(240.0)
    finally:
        job.cancel()
    return dict(local_counts())


def test_a_warm_start_reads_the_snapshot_and_a_bounded_archive(
    platform: PlatformConfig, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    recent = list(
        simulate(
            SimulationConfig(
                seed=31,
                start=now - timedelta(days=2),
                duration=timedelta(days=1),
                events=300,
                users=6,
                businesses=3,
            )
        )
    )
    old = list(
        simulate(
            SimulationConfig(
                seed=32,
                start=now - timedelta(days=200),
                duration=timedelta(days=100),
                events=200,
                users=6,
                businesses=3,
            )
        )
    )
    history = [*old, *recent, _old_review(now - timedelta(days=90))]
    write_jsonl(history, tmp_path / "history")
    run_import(platform, REGISTRY, [str(tmp_path / "history")])
    archived = len(history)

    # never backfilled: no snapshot, the whole archive is read (and exact)
    counts = _warm_start(platform, now)
    assert counts["archive_rows_read"] == archived
    check_online(platform, history, since_us=local_event_time(WATERMARK_REACHED))

    run_backfill(platform, REGISTRY, [], views=VIEWS, end=now)
    counts = _warm_start(platform, now)
    # the read is bounded: only the recent events (the old ones are 100+ days back, the
    # longest window 30 d), every key of the snapshot read besides
    assert counts["archive_rows_read"] == len(recent)
    assert counts["snapshot_rows_read"] >= 7  # 6 simulated users and the old one
    rows = check_online(platform, history, since_us=local_event_time(WATERMARK_REACHED))
    # the old user's last review is 90 days back: only the snapshot knows it
    got = rows[("user_review_stats", OLD_USER)]["user_review_stats__last_review_at"]
    assert datetime.fromisoformat(got) == now - timedelta(days=90)
