"""ValidateEvents bounds event_time by when each message was received, in both jobs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from common.transforms import DEAD_LETTER, ValidateEvents
from feature_store.events import to_micros

PUBLISHED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def body(event_id: str, event_time: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "event_type": "login",
            "event_time": event_time,
            "user_id": "u-1",
        }
    ).encode()


def check(
    messages: list[tuple[Any, ...]], valid: list[str], dead: list[str], **kwargs: Any
) -> None:
    """`messages` through ValidateEvents give exactly these valid event ids and these
    dead letters ('event_id:reason')."""
    with TestPipeline() as p:
        checked = p | beam.Create(messages) | ValidateEvents("test", **kwargs)
        ids = checked.valid | "Ids" >> beam.Map(lambda r: r["event_id"])
        letters = checked[DEAD_LETTER] | "Reasons" >> beam.Map(
            lambda d: f"{json.loads(d.raw)['event_id']}:{d.reason}"
        )
        assert_that(ids, equal_to(valid), label="Valid")
        assert_that(letters, equal_to(dead), label="DeadLetters")


def test_stream_messages_are_bounded_by_their_publish_time() -> None:
    publish_us = to_micros(PUBLISHED)
    messages = [
        ("user-events", body("ok", "2024-03-01T12:04:59Z"), {}, publish_us),
        ("user-events", body("ahead", "2024-03-01T12:05:01Z"), {}, publish_us),
        ("user-events", body("broken", "9999-12-31T23:59:59Z"), {}, publish_us),
        ("user-events", body("ancient", "1999-12-31T23:59:59Z"), {}, publish_us),
    ]
    dead = ["ahead", "ancient", "broken"]
    check(messages, ["ok"], [f"{i}:timestamp_out_of_range" for i in dead])


def test_files_are_bounded_by_the_run_start_and_the_skew_is_a_setting() -> None:
    messages = [
        ("user-events", body("ok", "2024-03-01T12:00:00Z"), {}),
        ("user-events", body("ahead", "2024-03-01T12:30:00Z"), {}),
    ]
    received_us = to_micros(PUBLISHED)
    check(messages, ["ok"], ["ahead:timestamp_out_of_range"], received_us=received_us)
    check(messages, ["ahead", "ok"], [], received_us=received_us, clock_skew_s=3600)


def test_a_publish_time_wins_over_the_run_start() -> None:
    late_publish = to_micros(datetime(2024, 3, 2, tzinfo=UTC))
    messages = [("user-events", body("ok", "2024-03-01T18:00:00Z"), {}, late_publish)]
    check(messages, ["ok"], [], received_us=to_micros(PUBLISHED))
