"""A field a user declares on a source, and features on it: streamed and backfilled,
read back through Feast with the values the events carry (not zeros and nulls).

`review-events` gains `helpful_votes` (an optional INT64, at least 0); a view sums,
maxes and keeps the last of it per business. Nothing else in the platform names it.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from common.metrics import local_counts, reset_local
from feature_store.config import PlatformConfig
from feature_store.definitions import DType, EventField, Feature, FeatureView, last, max_, sum_
from feature_store.events import Event, contract_for
from feature_store.reference import BUSINESS, CREATED, REVIEW_EVENTS, USER, USER_EVENTS
from feature_store.registry import Registry
from jobs.backfill import plans_for, run_backfill
from jobs.online_sink import online_sink
from jobs.retrieval import get_historical, get_online
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from simulator.publisher import publish_messages
from simulator.traffic import MessageKind, SimulatedMessage, write_jsonl
from tests.integration.platforms import own_platform
from tests.integration.streams import wait_settled
from tests.integration.test_loop import _message

pytestmark = pytest.mark.integration

VOTES = EventField(
    name="helpful_votes",
    dtype=DType.INT64,
    min_value=0,
    description="How many readers found the review helpful.",
)
REVIEWS = dataclasses.replace(REVIEW_EVENTS, fields=(*REVIEW_EVENTS.fields, VOTES))
VIEW = FeatureView(
    name="business_votes",
    entity="business",
    source="review-events",
    where=CREATED,
    features=(
        Feature(name="helpful_votes_24h", aggregation=sum_("helpful_votes"), window="24h"),
        Feature(name="max_helpful_votes_7d", aggregation=max_("helpful_votes"), window="7d"),
        Feature(name="last_helpful_votes", aggregation=last("helpful_votes")),
    ),
)
REGISTRY = Registry(entities=(USER, BUSINESS), sources=(REVIEWS, USER_EVENTS), views=(VIEW,))
REFS = [f"business_votes:{f.name}" for f in VIEW.features]
BUSINESS_ID = "b-votes"
NOW = datetime.now(UTC).replace(microsecond=0)
# (age, helpful_votes): None leaves the field out of the message
HISTORY = (
    (timedelta(hours=30), 7),
    (timedelta(hours=2), None),
    (timedelta(hours=1), 3),
    (timedelta(minutes=30), 5),
)


def _review(i: int, age: timedelta, votes: int | None) -> Event:
    extra = {} if votes is None else {"helpful_votes": votes}
    return contract_for(REVIEWS).event(
        event_id=f"votes-{i}",
        event_type="review_created",
        event_time=NOW - age,
        review_id=f"r-votes-{i}",
        user_id=f"u-votes-{i}",
        business_id=BUSINESS_ID,
        rating=4,
        text="Helpful staff.",
        **extra,
    )


def _bad(event_id: str, votes: object) -> SimulatedMessage:
    body = (
        f'{{"event_id":"{event_id}","event_type":"review_created",'
        f'"event_time":"{NOW.isoformat()}","review_id":"r-{event_id}","user_id":"u",'
        f'"business_id":"{BUSINESS_ID}","rating":4,"text":"t","helpful_votes":{votes}}}'
    )
    return SimulatedMessage(
        "review-events", body.encode(), {}, MessageKind.MALFORMED, int(NOW.timestamp() * 1e6)
    )


MESSAGES = [_message(_review(i, age, votes)) for i, (age, votes) in enumerate(HISTORY)]
BAD = [_bad("votes-negative", -1), _bad("votes-text", '"3"')]


def expected(at: datetime) -> dict[str, Any]:
    """The features at `at`, computed from HISTORY directly."""
    seen = [(NOW - age, v) for age, v in HISTORY if NOW - age <= at]
    day = [v for t, v in seen if v is not None and t > at - timedelta(hours=24)]
    week = [v for t, v in seen if v is not None and t > at - timedelta(days=7)]
    with_votes = [v for _, v in seen if v is not None]
    return {
        "business_votes__helpful_votes_24h": sum(day),
        "business_votes__max_helpful_votes_7d": max(week),
        "business_votes__last_helpful_votes": with_votes[-1],
    }


@pytest.fixture(scope="module")
def platform(stack: PlatformConfig, tmp_path_factory: pytest.TempPathFactory) -> PlatformConfig:
    """A platform of its own, applied with the registry that declares the new field."""
    return own_platform(stack, tmp_path_factory, REGISTRY)


def _wait_for(counter: str, value: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while local_counts().get(counter, 0) < value and time.monotonic() < deadline:
        time.sleep(0.5)
    assert local_counts().get(counter, 0) >= value, local_counts()


def _online(platform: PlatformConfig) -> dict[str, Any]:
    [row] = get_online(platform, REFS, [{"business_id": BUSINESS_ID}])
    return {k: v for k, v in row.items() if k != "business_id"}


def test_the_parser_reads_the_declared_field() -> None:
    record = contract_for(REVIEWS).parse(MESSAGES[0].raw, received=NOW).record()
    assert record["helpful_votes"] == HISTORY[0][1]
    dead = contract_for(REVIEWS).validate(BAD[0].raw, received=NOW)
    assert (dead.reason, "-1" in getattr(dead, "detail", "")) == ("out_of_range", True)


def test_streamed_values_read_through_feast(platform: PlatformConfig) -> None:
    plans, _ = plans_for(REGISTRY, [VIEW.name])
    settings = StreamSettings(allowed_lateness_s=3 * 86400, warm_start=False, views=(VIEW.name,))
    reset_local()
    pipeline = make_pipeline([], streaming=True)
    build_stream(pipeline, platform, REGISTRY, plans, settings, online_sink(platform))
    topics = {s.topic: platform.topic_id(s.topic) for s in REGISTRY.sources}
    job = pipeline.run()
    try:
        time.sleep(3)
        publish_messages(platform.project, [*MESSAGES, *BAD], topic_ids=topics)
        _wait_for("events_invalid", len(BAD))
        _wait_for("events_aggregated", len(MESSAGES))
        wait_settled(120)  # everything read, aggregated and written
        row = _online(platform)
    finally:
        job.cancel()
    assert row == expected(NOW)


def test_backfilled_values_read_through_feast(platform: PlatformConfig, tmp_path: Path) -> None:
    write_jsonl([*MESSAGES, *BAD], tmp_path)
    summary = run_backfill(platform, REGISTRY, [str(tmp_path)], views=[VIEW.name])
    assert (summary.events_read, summary.invalid) == (len(MESSAGES) + len(BAD), len(BAD))
    moments = [NOW - timedelta(minutes=45), NOW]
    frame = pd.DataFrame(
        {"business_id": [BUSINESS_ID] * 2, "event_timestamp": [pd.Timestamp(t) for t in moments]}
    )
    rows = get_historical(platform, REFS, frame)
    got = [{k: r[k] for k in expected(NOW)} for r in rows]
    assert got == [expected(t) for t in moments]
    assert _online(platform) == expected(NOW)
