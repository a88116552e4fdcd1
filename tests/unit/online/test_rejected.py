"""Rows an online store refuses leave the sink as dead letters with their reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that

from feature_store.errors import ConfigError
from feature_store.events import DeadLetter
from online.rejected import REASON, RejectedToDeadLetters, rejected_dead_letter
from online.rows import OnlineRow, RejectedRow
from online.sink import OnlineStoreSpec, WriteToOnlineStores
from tests.unit.online.test_sink import config
from tests.unit.online.views import user_view

WHEN = datetime(2024, 5, 1, 12, tzinfo=UTC)
# No Redis answers here: the test passes only if no row reaches a writer.
REDIS = config({"type": "redis", "connection_string": "127.0.0.1:1"})


def row(view: str, user: str, **features: object) -> OnlineRow:
    return OnlineRow(
        view=view, entity_key=(["user_id"], [user]), features=features, valid_from=WHEN
    )


def test_a_rejected_row_becomes_a_dead_letter_naming_it() -> None:
    rejected = RejectedRow(row("user_activity", "u1", review_count="many"), "bad int64: 'many'")
    letter = rejected_dead_letter(rejected, {"user_activity": "review-events"})
    assert (letter.topic, letter.reason, letter.detail) == (
        "review-events",
        REASON,
        "bad int64: 'many'",
    )
    body = json.loads(letter.raw)
    assert body == {
        "view": "user_activity",
        "entity_key": {"user_id": "u1"},
        "valid_from": "2024-05-01T12:00:00+00:00",
        "features": {"review_count": "many"},
    }
    assert DeadLetter.from_json(letter.to_json()) == letter


def test_no_topics_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\{\}"):
        RejectedToDeadLetters({})


def test_every_refused_row_of_a_pipeline_reaches_the_dead_letter_output() -> None:
    spec = OnlineStoreSpec.create(redis=REDIS, feature_views=[user_view("user_activity")])
    rows = [
        row("user_activity", "u1", review_count="not a number"),
        row("user_activity", "u2", avg_rating=object()),
        row("unknown_view", "u3", review_count=1),
    ]
    topics = {"user_activity": "user-events", "unknown_view": "review-events"}

    def check(letters: list[DeadLetter]) -> None:
        got = sorted(
            (json.loads(d.raw)["view"], json.loads(d.raw)["entity_key"]["user_id"], d.topic)
            for d in letters
        )
        assert got == [
            ("unknown_view", "u3", "review-events"),
            ("user_activity", "u1", "user-events"),
            ("user_activity", "u2", "user-events"),
        ]
        assert {d.reason for d in letters} == {REASON}
        assert all(d.detail for d in letters)

    with BeamTestPipeline() as pipeline:
        letters = (
            pipeline | beam.Create(rows) | WriteToOnlineStores(spec) | RejectedToDeadLetters(topics)
        )
        assert_that(letters, check)
