"""The loop between online and offline: history imported and backfilled, a stream that
warm-starts from the archive, live events (some of a user's history leaves its 1 h and
24 h windows during the run), the stream killed mid-stream and restarted, and the next
backfill read from the archive. Online, offline and a brute-force computation agree."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.metrics import local_event_time, reset_local
from feature_store.config import PlatformConfig
from feature_store.events import Event, attributes_for, contract_for, serialize_event
from feature_store.reference import REGISTRY, REVIEW_EVENTS, USER_EVENTS
from jobs.backfill import plans_for, run_backfill
from jobs.consistency import check_consistency
from jobs.importer import run_import
from jobs.online_sink import online_sink
from jobs.runner import make_pipeline
from jobs.stream import StreamSettings, build_stream
from online.stateful import WATERMARK_REACHED
from simulator.publisher import publish_messages
from simulator.traffic import (
    MessageKind,
    SimulatedMessage,
    SimulationConfig,
    simulate,
    write_jsonl,
)
from tests.integration.checks import VIEWS, check_online, us
from tests.integration.history import two_days_of_history
from tests.integration.streams import wait_settled
from tests.unit.jobs.test_local_workers import sized_for_workers

pytestmark = pytest.mark.integration
LOOP_USER = "u-loop"


def _message(event: Event) -> SimulatedMessage:
    return SimulatedMessage(
        topic=event.topic,
        raw=serialize_event(event),
        attributes=attributes_for(event),
        kind=MessageKind.VALID,
        arrival_us=us(event.event_time),
    )


def _leaving(now: datetime) -> list[SimulatedMessage]:
    """A user whose history leaves the 1 h and 24 h windows while the stream runs."""
    out = []
    for i, age in enumerate((timedelta(hours=24), timedelta(hours=1))):
        moment = now - age + timedelta(seconds=70 + 5 * i)
        out.append(
            _message(
                contract_for(REVIEW_EVENTS).event(
                    event_id=f"loop-review-{i}",
                    event_type="review_created",
                    event_time=moment,
                    review_id=f"r-loop-{i}",
                    user_id=LOOP_USER,
                    business_id="b-loop",
                    rating=1 + i,
                    text="The service was slow and the food arrived cold.",
                    device_id="d-loop",
                )
            )
        )
        out.append(
            _message(
                contract_for(USER_EVENTS).event(
                    event_id=f"loop-login-{i}",
                    event_type="login",
                    event_time=moment,
                    user_id=LOOP_USER,
                    ip_hash=f"ip-{i}",
                    country="FR",
                )
            )
        )
    return out


def _start_stream(platform: PlatformConfig) -> Any:
    plans, _ = plans_for(REGISTRY, VIEWS)
    pipeline = make_pipeline([], streaming=True)
    build_stream(pipeline, platform, REGISTRY, plans, StreamSettings(), online_sink(platform))
    return pipeline.run()


def _check_online(platform: PlatformConfig, messages: list[SimulatedMessage]) -> dict[str, Any]:
    """Every entity's online value equals the definition at an instant from the event time
    the stream's rows are proven complete to, to now; the loop user's rows."""
    rows = check_online(platform, messages, since_us=local_event_time(WATERMARK_REACHED))
    return {view: row for (view, key), row in rows.items() if key == LOOP_USER}


def test_the_loop_is_exact_through_restarts(platform: PlatformConfig, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    users, businesses = 12, 5
    history = two_days_of_history(now, seed=21, users=users, businesses=businesses)
    history += _leaving(now)
    write_jsonl(history, tmp_path / "history")
    run_import(platform, REGISTRY, [str(tmp_path / "history")])
    run_backfill(platform, REGISTRY, [], views=VIEWS)

    topics = {t: platform.topic_id(t) for t in ("review-events", "user-events")}
    live = list(
        simulate(
            SimulationConfig(
                seed=22,
                start=now - timedelta(seconds=20),
                duration=timedelta(seconds=20),
                events=600,
                users=users,
                businesses=businesses,
                duplicate_share=0.05,
            )
        )
    )
    first, second = live[:300], live[300:]

    reset_local()
    job = _start_stream(platform)
    publish_messages(platform.project, first, rate=200, topic_ids=topics)
    wait_settled(quiet_polls=4)
    before = _check_online(platform, history + first)
    assert before["user_review_stats"]["user_review_stats__review_count_24h"] == 2

    publish_messages(platform.project, second[:150], rate=300, topic_ids=topics)
    # Killed while the traffic goes on. The local runner acknowledges a message as soon
    # as it pulls it (Dataflow only once the bundle is durable), and a cancelled local job
    # can finish a pull already under way (30 s at most): so the kill comes once what it
    # pulled is archived, and the next messages are published once it is surely gone;
    # they wait in the subscription for the new job.
    wait_settled(quiet_polls=4)
    job.cancel()
    time.sleep(35)
    publish_messages(platform.project, second[150:], rate=300, topic_ids=topics)
    reset_local()
    job = _start_stream(platform)
    try:
        # the loop user's 1 h and 24 h windows end while the new job runs (at now + 70 s
        # and now + 75 s): its rows are checked once the job is complete past both
        time.sleep(max(0.0, (now + timedelta(seconds=80) - datetime.now(UTC)).total_seconds()))
        complete = wait_settled(quiet_polls=4, past=now + timedelta(seconds=76))
        after = _check_online(platform, history + live)
    finally:
        job.cancel()
    # the loop user's history left its windows while the stream ran, with no new event
    assert after["user_review_stats"]["user_review_stats__review_count_24h"] == 1
    assert after["user_review_stats"]["user_review_stats__review_count_1h"] == 0
    assert after["user_activity"]["user_activity__login_count_24h"] == 1

    # Where the job's rows are complete: a check at the wall clock after it stopped would
    # also see values that changed later (events leaving their windows), written by no one.
    assert complete is not None
    at = complete
    # this backfill reads the archive on two worker processes, as the job picks them for
    # a large archive (its threshold lowered to this one's row count)
    with pytest.MonkeyPatch.context() as patch:
        sized_for_workers(patch, len(history) + len(live) // 2)
        summary = run_backfill(platform, REGISTRY, [], views=VIEWS, online=False, end=at)
    assert summary.local_workers == 2
    for store in platform.online_stores:
        report = check_consistency(platform, REGISTRY, VIEWS, at, store=store)
        assert report.entities >= users
        assert report.mismatches == [], report.as_dict()
