"""The streaming job with the model stage, as a deployment runs it: history imported and
backfilled (which fits and saves the declared projection), then the stream warm-starts
and takes live reviews. Each live review gets its `review_content` row online and counts
in `user_content_stats`, equal to the backfill of the same archive at the time the
stream's rows are complete (the consistency check, model tolerance)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.inference.settings import ModelSettings
from common.metrics import local_counts, reset_local
from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.backfill import plans_for, run_backfill
from jobs.consistency import check_consistency
from jobs.importer import run_import
from jobs.online_sink import online_sink
from jobs.retrieval import get_online
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from simulator.publisher import publish_messages
from simulator.traffic import (
    SimulatedMessage,
    SimulationConfig,
    reviews_created,
    simulate,
    write_jsonl,
)
from tests.integration.streams import wait_settled

pytestmark = pytest.mark.integration
VIEWS = ("review_content", "user_content_stats")
MODELS = ModelSettings()


def _traffic(
    seed: int, start: datetime, duration: timedelta, events: int, first_review: int = 0
) -> list[SimulatedMessage]:
    """Clean traffic of the test's four users and three businesses."""
    config = SimulationConfig(
        seed=seed,
        start=start,
        duration=duration,
        events=events,
        users=4,
        businesses=3,
        bad_share=0.0,
        duplicate_share=0.0,
        first_review=first_review,
    )
    return list(simulate(config))


def test_live_reviews_get_their_model_rows(platform: PlatformConfig, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    history = _traffic(30, now - timedelta(days=1), timedelta(hours=23), 80)
    write_jsonl(history, tmp_path)
    run_import(platform, REGISTRY, [str(tmp_path)])
    run_backfill(platform, REGISTRY, [], views=VIEWS, models=MODELS)
    # The live reviews are new ones: numbered after the history's, not sharing its ids
    # (a second `review_created` of an id is a newer row of that review, superseding it).
    first = reviews_created(history)
    live = _traffic(31, now - timedelta(seconds=30), timedelta(seconds=30), 60, first)
    reviews = [m for m in live if b'"review_created"' in m.raw]
    assert len(reviews) >= 5
    old = {json.loads(m.raw)["review_id"] for m in history if b'"review_created"' in m.raw}
    assert old.isdisjoint(json.loads(m.raw)["review_id"] for m in reviews)
    plans, _ = plans_for(REGISTRY, VIEWS, MODELS)
    reset_local()
    pipeline = make_pipeline([], streaming=True)
    build_stream(
        pipeline, platform, REGISTRY, plans, StreamSettings(models=MODELS), online_sink(platform)
    )
    job = pipeline.run()
    try:
        topics = {t: platform.topic_id(t) for t in ("review-events", "user-events")}
        publish_messages(platform.project, live, rate=100, topic_ids=topics)
        at = wait_settled(420.0)
        assert at is not None, "no change timer fired: the stream proved no event time"
    finally:
        job.cancel()
    counts = local_counts()
    # every review went through the models and came back (the warm start's too)
    assert counts["model_records_sent"] == counts["model_records_back"] >= len(reviews)

    ids = [{"review_id": json.loads(m.raw)["review_id"]} for m in reviews]
    refs = ["review_content:text_length", "review_content:sentiment"]
    for row in get_online(platform, refs, ids):
        assert row["review_content__text_length"] is not None, row
        assert row["review_content__sentiment"] is not None, row

    run_backfill(platform, REGISTRY, [], views=VIEWS, online=False, end=at, models=MODELS)
    report = check_consistency(platform, REGISTRY, VIEWS, at)
    assert report.entities >= len(reviews)
    assert report.mismatches == [], report.as_dict()
