"""Fuzzing `ValidateEvents`: whatever bytes arrive, nothing crashes, every message
leaves exactly once, and every invalid one is a dead letter carrying its raw bytes and
a reason. Messages above the size limit are dead letters without being parsed."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import apache_beam as beam
import pytest
from apache_beam import pvalue
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import feature_store.limits
from common.archive import ARCHIVE
from common.transforms import DEAD_LETTER, ValidateEvents, _Validate
from feature_store.events import DEFAULT_CLOCK_SKEW, DeadLetter, validate
from feature_store.limits import MAX_MESSAGE_BYTES, TOO_LARGE, oversized
from feature_store.reference import MAX_TEXT_CHARS, REGISTRY
from tests.unit.feature_store.test_events import review, user

TOPICS = ("review-events", "user-events")
EDGE_TIMES = [
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999999Z",
    "2000-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
    "9999-12-31T23:59:59.999999999Z",
    "10000-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2024-03-01T10:00:00+14:00",
    "2024-03-01T10:00:00-12:00",
    "2024-03-01T10:00:00+99:99",
    "2024-03-01T10:00:00",
    "2024-03-01T24:00:00Z",
    "2016-12-31T23:59:60Z",
]
UNICODE = st.sampled_from(
    ["\x00", "\u200f", "\ufeff", "\U0001f600", "e\u0301", "\uffff", "\u2028", "İ", "ß"]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated_event(draw: st.DrawFn) -> bytes:
    body = draw(st.sampled_from([review, user]))()
    name = draw(st.sampled_from(sorted(body)))
    change = draw(st.integers(0, 4))
    if change == 0:
        body[name] = draw(JSON_VALUES)  # wrong types, wrong values
    elif change == 1:
        body["event_time"] = draw(st.sampled_from(EDGE_TIMES))
    elif change == 2:
        body[name] = str(body[name]) + draw(UNICODE) * draw(st.integers(1, 3))
    elif change == 3:
        body[name] = "x" * draw(st.sampled_from([MAX_TEXT_CHARS, MAX_TEXT_CHARS + 1, 300_000]))
    else:
        del body[name]
    return _dumps(body)


def duplicate_keys(body: dict[str, Any]) -> bytes:
    text = json.dumps(body)
    return (text[:-1] + ', "event_id": "other"}').encode()


KINDS: dict[str, st.SearchStrategy[bytes]] = {
    "random bytes": st.binary(max_size=300),
    "invalid UTF-8": st.binary(min_size=1, max_size=50).map(lambda b: b + b"\xff\xfe" + b),
    "deep JSON": st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    "wide JSON": st.integers(1, 3000).map(lambda n: _dumps({f"k{i}": i for i in range(n)})),
    "duplicate keys": st.sampled_from([review, user]).map(lambda f: duplicate_keys(f())),
    "lone surrogate escape": st.just(b'{"event_id": "\\ud800"}'),
    "mutated event (wrong types and values, edge timestamps, unicode, huge and missing "
    "fields)": mutated_event(),
    "valid event": st.sampled_from([review, user]).map(lambda f: _dumps(f())),
}
"""The kinds of input tried, by name (RELIABILITY.md counts them per kind)."""
MESSAGES = st.one_of(*KINDS.values())


def _outputs(topic: str, raw: bytes) -> list[Any]:
    fn = _Validate("fuzz", None, history=False, received_us=None, clock_skew=DEFAULT_CLOCK_SKEW)
    return list(fn.process((topic, raw, {})))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), raw=MESSAGES)
def test_every_message_leaves_once_and_invalid_ones_with_raw_bytes_and_reason(
    topic: str, raw: bytes
) -> None:
    outputs = _outputs(topic, raw)
    assert len(outputs) == 1
    (out,) = outputs
    if isinstance(out, pvalue.TaggedOutput):
        assert out.tag == DEAD_LETTER
        letter = out.value
        assert isinstance(letter, DeadLetter)
        assert letter.raw == raw
        assert letter.reason
        assert letter.detail
        assert DeadLetter.from_json(json.loads(json.dumps(letter.to_json()))) == letter
    else:
        assert isinstance(out, dict)
        assert out["topic"] == topic
        assert len(raw) <= MAX_MESSAGE_BYTES


def test_the_limit_is_far_above_the_largest_valid_event() -> None:
    largest = _dumps(review(text="\x01" * MAX_TEXT_CHARS))  # six bytes a character
    assert not isinstance(validate("review-events", largest), DeadLetter)
    assert 2 * len(largest) <= MAX_MESSAGE_BYTES


def test_a_message_over_the_limit_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*_: Any, **__: Any) -> Any:
        msg = "parsed"
        raise AssertionError(msg)

    monkeypatch.setattr("common.transforms.validate", parse)
    raw = _dumps(review(text="x" * MAX_MESSAGE_BYTES))
    (out,) = _outputs("review-events", raw)
    assert (out.value.reason, out.value.raw) == (TOO_LARGE, raw)
    assert str(len(raw)) in out.value.detail
    assert oversized("review-events", raw[:MAX_MESSAGE_BYTES], {}) is None


def test_a_validation_bug_is_a_dead_letter_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        msg = "boom"
        raise KeyError(msg)

    monkeypatch.setattr("common.transforms.validate", broken)
    (out,) = _outputs("user-events", b"{}")
    assert out.value.reason == feature_store.limits.VALIDATION_FAILED
    assert "KeyError" in out.value.detail


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(st.tuples(st.sampled_from(TOPICS), MESSAGES), min_size=20, max_size=60))
def test_a_pipeline_loses_nothing(batch: list[tuple[str, bytes]]) -> None:
    """Through the transform in a pipeline: dead letters and archived valid events are,
    together, exactly the input messages."""
    sent = Counter(raw for _, raw in batch)

    def check(outputs: list[bytes]) -> None:
        assert Counter(outputs) == sent

    with BeamTestPipeline() as pipeline:
        checked = (
            pipeline
            | beam.Create([(topic, raw, {}) for topic, raw in batch])
            | ValidateEvents("fuzz", REGISTRY, archive=True)
        )
        dead = checked[DEAD_LETTER] | "DeadRaw" >> beam.Map(lambda d: d.raw)
        kept = checked[ARCHIVE] | "KeptRaw" >> beam.Map(lambda t: t[1]["payload"].encode())
        assert_that((dead, kept) | beam.Flatten(), check)
