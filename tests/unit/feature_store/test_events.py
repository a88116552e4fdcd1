"""The event contract (EVENTS.md): one test per rule, its boundaries, and round trips."""

from __future__ import annotations

import base64
import calendar
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.errors import InvalidEventError
from feature_store.events import (
    MAX_JSON_DEPTH,
    REVIEW_TOPIC,
    TOPICS,
    USER_TOPIC,
    DeadLetter,
    Event,
    Reason,
    attributes_for,
    contract_for,
    parse_event,
    serialize_event,
    validate,
)
from feature_store.reference import COUNTRIES, REVIEW_EVENTS, USER_EVENTS
from tests.unit.feature_store.bodies import DROP, overridden

REVIEW_FIELDS = tuple(f.name for f in REVIEW_EVENTS.fields)
USER_FIELDS = tuple(f.name for f in USER_EVENTS.fields)


def review(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": "review_created",
        "event_time": "2024-03-01T10:00:00.123456Z",
        "review_id": "r-1",
        "user_id": "u-1",
        "business_id": "b-1",
        "rating": 4,
        "text": "Great tacos, friendly staff.",
        "language": "en",
        "ip_hash": "ip-1",
        "device_id": "d-1",
    }
    return overridden(body, overrides)


def flag(**overrides: Any) -> dict[str, Any]:
    base = review(event_type="review_flagged", rating=DROP, text=DROP, reason="spam")
    return overridden(base, overrides)


def user(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "e-2",
        "event_type": "login",
        "event_time": "2024-03-01T10:00:00Z",
        "user_id": "u-1",
        "ip_hash": "ip-1",
        "country": "US",
    }
    return overridden(body, overrides)


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


def rejection(topic: str, data: bytes, attributes: dict[str, str] | None = None) -> DeadLetter:
    result = validate(topic, data, attributes)
    assert isinstance(result, DeadLetter), f"expected a dead letter, got {result!r}"
    with pytest.raises(InvalidEventError) as caught:
        parse_event(topic, data, attributes)
    assert caught.value.reason == result.reason
    return result


def reason(topic: str, body: object, attributes: dict[str, str] | None = None) -> str:
    return str(rejection(topic, raw(body), attributes).reason)


# ----------------------------------------------------------------------------- topics


def test_topics_are_the_two_contract_topics() -> None:
    assert (REVIEW_TOPIC, USER_TOPIC) == ("review-events", "user-events")
    assert TOPICS == (REVIEW_TOPIC, USER_TOPIC)


def test_unknown_topic_is_rejected() -> None:
    assert reason("reviews", review()) == "unknown_topic"


# ----------------------------------------------------------------------------- valid events


def test_valid_review_created_parses_every_field() -> None:
    event = parse_event(REVIEW_TOPIC, raw(review()))
    assert isinstance(event, Event)
    assert event.topic == REVIEW_TOPIC
    assert (event.event_id, event.event_type, event.review_id) == ("e-1", "review_created", "r-1")
    assert (event.user_id, event.business_id, event.rating) == ("u-1", "b-1", 4)
    assert (event.text, event.language, event.ip_hash, event.device_id) == (
        "Great tacos, friendly staff.",
        "en",
        "ip-1",
        "d-1",
    )
    assert event.reason is None
    assert event.event_time == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert event.event_time.tzinfo is UTC


def test_record_is_flat_with_epoch_microseconds() -> None:
    record = parse_event(REVIEW_TOPIC, raw(review())).record()
    expected_us = calendar.timegm((2024, 3, 1, 10, 0, 0)) * 1_000_000 + 123456
    assert record["event_time"] == expected_us
    assert record["event_time_iso"] == "2024-03-01T10:00:00.123456Z"
    assert set(record) == {*REVIEW_FIELDS, "event_time_iso"}
    user_record = parse_event(USER_TOPIC, raw(user())).record()
    assert set(user_record) == {*USER_FIELDS, "event_time_iso"}
    assert user_record["event_time"] == calendar.timegm((2024, 3, 1, 10, 0, 0)) * 1_000_000


@pytest.mark.parametrize("event_type", ["login", "signup", "profile_update"])
def test_each_user_event_type_is_valid(event_type: str) -> None:
    event = parse_event(USER_TOPIC, raw(user(event_type=event_type)))
    assert isinstance(event, Event)
    assert event.topic == USER_TOPIC
    assert event.event_type == event_type
    assert (event.user_id, event.ip_hash, event.country) == ("u-1", "ip-1", "US")


def test_user_event_optional_fields_may_be_absent() -> None:
    event = parse_event(USER_TOPIC, raw(user(ip_hash=DROP, country=DROP)))
    assert (event.ip_hash, getattr(event, "country", "?")) == (None, None)


# ----------------------------------------------------------------------------- event_id


@pytest.mark.parametrize("length", [1, 128])
def test_event_id_of_1_to_128_chars_is_valid(length: int) -> None:
    assert parse_event(REVIEW_TOPIC, raw(review(event_id="x" * length))).event_id == "x" * length


@pytest.mark.parametrize("event_id", ["", "x" * 129])
def test_event_id_outside_1_to_128_chars_is_bad(event_id: str) -> None:
    assert reason(REVIEW_TOPIC, review(event_id=event_id)) == "bad_event_id"
    assert reason(USER_TOPIC, user(event_id=event_id)) == "bad_event_id"


def test_event_id_length_counts_characters_not_bytes() -> None:
    event_id = "é" * 128  # 256 bytes of UTF-8
    assert parse_event(USER_TOPIC, raw(user(event_id=event_id))).event_id == event_id


# ----------------------------------------------------------------------------- required fields

REVIEW_REQUIRED = ["event_id", "event_type", "event_time", "review_id", "user_id", "business_id"]
USER_REQUIRED = ["event_id", "event_type", "event_time", "user_id"]


@pytest.mark.parametrize("name", REVIEW_REQUIRED)
def test_missing_required_review_field_is_rejected(name: str) -> None:
    assert reason(REVIEW_TOPIC, review(**{name: DROP})) == "missing_field"
    assert reason(REVIEW_TOPIC, review(**{name: None})) == "missing_field"
    assert reason(REVIEW_TOPIC, flag(**{name: DROP})) == "missing_field"


@pytest.mark.parametrize("name", USER_REQUIRED)
def test_missing_required_user_field_is_rejected(name: str) -> None:
    assert reason(USER_TOPIC, user(**{name: DROP})) == "missing_field"
    assert reason(USER_TOPIC, user(**{name: None})) == "missing_field"


@pytest.mark.parametrize("name", ["review_id", "user_id", "business_id"])
def test_empty_required_key_is_rejected(name: str) -> None:
    assert reason(REVIEW_TOPIC, review(**{name: ""})) == "empty_field"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("event_id", 17),
        ("event_type", ["review_created"]),
        ("event_time", 1709287200),
        ("review_id", {"id": 1}),
        ("user_id", 1),
        ("business_id", True),
        ("text", 42),
        ("language", 1),
        ("ip_hash", 1.5),
        ("device_id", ["d"]),
    ],
)
def test_review_field_of_the_wrong_type_is_rejected(name: str, value: object) -> None:
    assert reason(REVIEW_TOPIC, review(**{name: value})) == "wrong_type"


@pytest.mark.parametrize(("name", "value"), [("user_id", 7), ("ip_hash", {}), ("country", 840)])
def test_user_field_of_the_wrong_type_is_rejected(name: str, value: object) -> None:
    assert reason(USER_TOPIC, user(**{name: value})) == "wrong_type"


# ----------------------------------------------------------------------------- event_type


@pytest.mark.parametrize("event_type", ["review_deleted", "REVIEW_CREATED", "login", ""])
def test_unknown_review_event_type_is_rejected(event_type: str) -> None:
    assert reason(REVIEW_TOPIC, review(event_type=event_type)) == "unknown_event_type"


@pytest.mark.parametrize("event_type", ["logout", "Login", "review_created"])
def test_unknown_user_event_type_is_rejected(event_type: str) -> None:
    assert reason(USER_TOPIC, user(event_type=event_type)) == "unknown_event_type"


# ----------------------------------------------------------------------------- event_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01t10:00:00z", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
        ("2024-03-01T10:00:00+05:30", datetime(2024, 3, 1, 4, 30, tzinfo=UTC)),
        ("2024-03-01T02:00:00.5-08:00", datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2024-03-01T00:15:00+00:30", datetime(2024, 2, 29, 23, 45, tzinfo=UTC)),
        ("2024-03-01T10:00:00-00:00", datetime(2024, 3, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_event_time_with_an_offset_is_normalised_to_utc(text: str, expected: datetime) -> None:
    event = parse_event(REVIEW_TOPIC, raw(review(event_time=text)))
    assert event.event_time == expected
    assert event.event_time.utcoffset() == timedelta(0)
    assert event.record()["event_time_iso"] == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("text", ["2024-03-01T10:00:00", "2024-03-01T10:00:00.123456"])
def test_naive_event_time_is_rejected(text: str) -> None:
    assert reason(REVIEW_TOPIC, review(event_time=text)) == "naive_timestamp"
    assert reason(USER_TOPIC, user(event_time=text)) == "naive_timestamp"


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2024-03-01",
        "2024-03-01 10:00:00Z",
        "2024-02-30T10:00:00Z",
        "2024-13-01T10:00:00Z",
        "2024-03-01T24:00:00Z",
        "2024-03-01T10:00:60Z",  # a leap second: not representable, rejected
        "2024-03-01T10:00:00+24:00",
        "2024-03-01T10:00:00+05:60",
        "2024-03-01T10:00:00+0530",
        "2024-03-01T10:00:00.Z",
        "2024-03-01T10:00:00.1234567890Z",
        "٢٠٢٤-03-01T10:00:00Z",  # non-ASCII digits
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "",
    ],
)
def test_unparsable_event_time_is_rejected(text: str) -> None:
    assert reason(REVIEW_TOPIC, review(event_time=text)) == "bad_timestamp"


def test_sub_microsecond_digits_are_truncated_toward_the_past() -> None:
    event = parse_event(REVIEW_TOPIC, raw(review(event_time="2024-03-01T10:00:00.123456999Z")))
    assert event.event_time == datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    event = parse_event(REVIEW_TOPIC, raw(review(event_time="2000-01-01T00:00:00.0000009Z")))
    assert event.record()["event_time"] == 946_684_800_000_000  # the earliest allowed instant
    late = "1999-12-31T23:59:59.9999999Z"  # truncates to one microsecond before 2000
    assert reason(REVIEW_TOPIC, review(event_time=late)) == "timestamp_out_of_range"


# ----------------------------------------------------------------------------- bounds

RECEIVED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def bounded(body: object, received: datetime = RECEIVED, **kwargs: Any) -> object:
    return validate(REVIEW_TOPIC, raw(body), received=received, **kwargs)


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59Z",  # a broken producer clock
        "2024-03-02T12:00:00Z",  # a producer one day ahead
        "2024-03-01T12:05:00.000001Z",  # one microsecond past the default 5-minute skew
        "2024-03-01T13:05:00.000001+01:00",  # the same instant in another offset
    ],
)
def test_event_time_after_receipt_plus_skew_is_a_dead_letter(text: str) -> None:
    result = bounded(review(event_time=text))
    assert isinstance(result, DeadLetter)
    assert result.reason == "timestamp_out_of_range"
    assert "2024-03-01T12:00:00.000000Z" in result.detail  # names the receipt time
    assert "300 s" in result.detail
    user_result = validate(USER_TOPIC, raw(user(event_time=text)), received=RECEIVED)
    assert isinstance(user_result, DeadLetter)
    assert user_result.reason == "timestamp_out_of_range"


@pytest.mark.parametrize(
    "text", ["2024-03-01T12:05:00Z", "2024-03-01T12:00:00Z", "2000-01-01T00:00:00Z"]
)
def test_event_time_within_bounds_is_valid(text: str) -> None:
    result = bounded(review(event_time=text))
    assert not isinstance(result, DeadLetter), result


def test_clock_skew_is_a_setting() -> None:
    body = review(event_time="2024-03-01T12:30:00Z")
    assert isinstance(bounded(body), DeadLetter)
    assert not isinstance(bounded(body, clock_skew=timedelta(hours=1)), DeadLetter)
    strict = bounded(review(event_time="2024-03-01T12:00:00.000001Z"), clock_skew=timedelta(0))
    assert isinstance(strict, DeadLetter)
    assert "0 s" in strict.detail


def test_without_a_receipt_time_the_wall_clock_bounds_event_time() -> None:
    assert reason(REVIEW_TOPIC, review(event_time="9999-12-31T23:59:59Z")) == (
        "timestamp_out_of_range"
    )
    soon = datetime.now(UTC) + timedelta(minutes=1)
    assert not isinstance(
        validate(REVIEW_TOPIC, raw(review(event_time=soon.isoformat()))), DeadLetter
    )


# ----------------------------------------------------------------------------- rating


@pytest.mark.parametrize("rating", [1, 2, 3, 4, 5])
def test_rating_1_to_5_is_valid(rating: int) -> None:
    assert parse_event(REVIEW_TOPIC, raw(review(rating=rating))).rating == rating


@pytest.mark.parametrize("rating", [0, 6, 7, -1, 10**30])
def test_rating_outside_1_to_5_is_rejected(rating: int) -> None:
    dead = rejection(REVIEW_TOPIC, raw(review(rating=rating)))
    assert dead.reason == "rating_out_of_range"
    assert str(rating) in dead.detail


@pytest.mark.parametrize("rating", [True, False, 4.0, 4.5, "5", [5]])
def test_rating_must_be_an_integer_and_bool_is_not(rating: object) -> None:
    assert reason(REVIEW_TOPIC, review(rating=rating)) == "wrong_type"


def test_rating_and_text_are_required_for_review_created() -> None:
    assert reason(REVIEW_TOPIC, review(rating=DROP)) == "missing_field"
    assert reason(REVIEW_TOPIC, review(text=DROP)) == "missing_field"
    assert reason(REVIEW_TOPIC, review(text=None)) == "missing_field"


def test_rating_and_text_are_optional_for_review_flagged() -> None:
    event = parse_event(REVIEW_TOPIC, raw(flag()))
    assert (event.event_type, event.rating, event.text) == ("review_flagged", None, None)
    assert reason(REVIEW_TOPIC, flag(rating=9)) == "rating_out_of_range"


# ----------------------------------------------------------------------------- text


def test_text_of_exactly_20000_chars_is_valid() -> None:
    text = "a" * 20_000
    assert parse_event(REVIEW_TOPIC, raw(review(text=text))).text == text


def test_text_of_20001_chars_is_rejected_not_truncated() -> None:
    dead = rejection(REVIEW_TOPIC, raw(review(text="a" * 20_001)))
    assert dead.reason == "text_too_long"
    assert "20001" in dead.detail


def test_text_length_counts_characters() -> None:
    text = "😀" * 20_000  # 80,000 bytes of UTF-8, 20,000 characters
    assert parse_event(REVIEW_TOPIC, raw(review(text=text))).text == text
    assert reason(REVIEW_TOPIC, review(text="😀" * 20_001)) == "text_too_long"


def test_empty_text_is_valid() -> None:
    assert parse_event(REVIEW_TOPIC, raw(review(text=""))).text == ""


# ----------------------------------------------------------------------------- language


def test_language_defaults_to_und() -> None:
    assert parse_event(REVIEW_TOPIC, raw(review(language=DROP))).language == "und"
    assert parse_event(REVIEW_TOPIC, raw(review(language=None))).language == "und"
    assert parse_event(REVIEW_TOPIC, raw(review(language=""))).language == "und"


@pytest.mark.parametrize("tag", ["en", "en-US", "zh-Hant-TW", "es-419", "und", "x-private"])
def test_bcp47_language_tags_are_valid(tag: str) -> None:
    assert parse_event(REVIEW_TOPIC, raw(review(language=tag))).language == tag


@pytest.mark.parametrize("tag", ["en_US", "English (US)", "12", "e", "en-", "en-toolongsubtag"])
def test_malformed_language_tag_is_rejected(tag: str) -> None:
    assert reason(REVIEW_TOPIC, review(language=tag)) == "bad_language"


# ----------------------------------------------------------------------------- ip, device


def test_ip_hash_and_device_id_are_optional() -> None:
    event = parse_event(REVIEW_TOPIC, raw(review(ip_hash=DROP, device_id=None)))
    assert (event.ip_hash, event.device_id) == (None, None)


def test_empty_optional_identifiers_mean_absent() -> None:
    event = parse_event(REVIEW_TOPIC, raw(review(ip_hash="", device_id="")))
    assert (event.ip_hash, event.device_id) == (None, None)
    assert parse_event(USER_TOPIC, raw(user(ip_hash=""))).ip_hash is None


# ----------------------------------------------------------------------------- reason


@pytest.mark.parametrize("flag_reason", ["spam", "fake", "abuse", "other"])
def test_flag_reasons_are_valid_on_review_flagged(flag_reason: str) -> None:
    assert parse_event(REVIEW_TOPIC, raw(flag(reason=flag_reason))).reason == flag_reason


def test_reason_is_optional_on_review_flagged() -> None:
    assert parse_event(REVIEW_TOPIC, raw(flag(reason=DROP))).reason is None


@pytest.mark.parametrize("flag_reason", ["scam", "Spam", "", "fake review"])
def test_unknown_flag_reason_is_rejected(flag_reason: str) -> None:
    dead = rejection(REVIEW_TOPIC, raw(flag(reason=flag_reason)))
    assert dead.reason == "bad_reason"
    assert json.dumps(flag_reason) in dead.detail


def test_reason_on_review_created_is_not_allowed() -> None:
    assert reason(REVIEW_TOPIC, review(reason="spam")) == "field_not_allowed"
    assert parse_event(REVIEW_TOPIC, raw(review(reason=None))).reason is None


# ----------------------------------------------------------------------------- country


@pytest.mark.parametrize("code", ["US", "GB", "DE", "BR", "XK"])
def test_iso_3166_alpha2_country_is_valid(code: str) -> None:
    assert parse_event(USER_TOPIC, raw(user(country=code))).country == code


def test_lowercase_country_is_normalised() -> None:
    assert parse_event(USER_TOPIC, raw(user(country="gb"))).country == "GB"


@pytest.mark.parametrize("code", ["USA", "United States", "ZZ", "U1", "", "UK"])
def test_other_country_codes_are_rejected(code: str) -> None:
    dead = rejection(USER_TOPIC, raw(user(country=code)))
    assert dead.reason == "bad_country"
    assert json.dumps(code) in dead.detail


def test_country_list_is_iso_3166_alpha2() -> None:
    assert len(COUNTRIES) == 250  # 249 assigned codes and XK
    assert all(len(code) == 2 and code.isupper() for code in COUNTRIES)


# ----------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "data",
    [b"\xff\xfe{}", '{"text": "caf\xe9"}'.encode("latin-1"), b'{"a":"\xc3"}'],
)
def test_body_that_is_not_utf8_is_rejected(data: bytes) -> None:
    assert rejection(REVIEW_TOPIC, data).reason == "not_utf8"


def test_escaped_lone_surrogate_is_rejected_as_not_utf8() -> None:
    data = raw(review())[:-1] + b',"note":"\\ud800"}'
    assert rejection(REVIEW_TOPIC, data).reason == "not_utf8"
    paired = raw(review())[:-1] + b',"note":"\\ud83d\\ude00"}'  # a valid pair is fine
    assert parse_event(REVIEW_TOPIC, paired).extra == {"note": "😀"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"not json",
        raw(review())[:-1],
        b"{'event_id': 'e'}",
        b'{"a":NaN}',
        b"[" * 100_000,
    ],
)
def test_body_that_is_not_json_is_rejected(data: bytes) -> None:
    assert rejection(REVIEW_TOPIC, data).reason == "not_json"


def _reason_at_stack_depth(frames: int, data: bytes) -> str:
    if frames:
        return _reason_at_stack_depth(frames - 1, data)
    return str(rejection(REVIEW_TOPIC, data).reason)


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 900, 980, 5000])
def test_deep_json_gets_one_reason_whatever_the_callers_stack(levels: int) -> None:
    """Found by the fault run's fuzz burst: Python's JSON scanner gives up at the
    recursion limit less the caller's stack, so `[` * 980 was `not_object` called from
    a shallow stack and `not_json` from a deep one."""
    data = b"[" * levels + b"]" * levels
    inner = b"[" * (levels - 1) + b"]" * (levels - 1)
    nested = raw(review())[:-1] + b', "extra": ' + inner + b"}"
    for message in (data, nested):
        reasons = {_reason_at_stack_depth(frames, message) for frames in (0, 150, 400)}
        assert reasons == {"not_json"}
    assert "deeper than" in rejection(REVIEW_TOPIC, nested).detail


def test_json_as_deep_as_the_limit_is_parsed() -> None:
    levels = MAX_JSON_DEPTH - 1  # the event object itself is the first level
    extra = json.loads("[" * levels + '"[{ in a string"' + "]" * levels)
    assert isinstance(validate(REVIEW_TOPIC, raw({**review(), "extra": extra})), Event)


@pytest.mark.parametrize("body", [[review()], "review", 42, None, True])
def test_body_that_is_not_an_object_is_rejected(body: object) -> None:
    assert reason(REVIEW_TOPIC, body) == "not_object"
    assert reason(USER_TOPIC, body) == "not_object"


def test_repeated_key_is_rejected() -> None:
    data = raw(user())[:-1] + b',"user_id":"u-2"}'
    dead = rejection(USER_TOPIC, data)
    assert dead.reason == "duplicate_key"
    assert '"user_id"' in dead.detail


def test_extra_unknown_fields_are_kept_but_not_in_the_record() -> None:
    extra = {"client": {"app": "ios", "version": [1, 2]}, "score": 0.5, "country": "US"}
    event = parse_event(REVIEW_TOPIC, raw(review(**extra)))
    assert event.extra == extra  # `country` is not a review-events field
    assert "client" not in event.record()
    assert json.loads(serialize_event(event))["client"] == extra["client"]


def test_extra_fields_cannot_be_mutated() -> None:
    event = parse_event(USER_TOPIC, raw(user(note="x")))
    with pytest.raises(TypeError):
        event.extra["note"] = "y"  # type: ignore[index]


# ----------------------------------------------------------------------------- attributes


def test_matching_attributes_are_accepted() -> None:
    attributes = {
        "event_type": "review_created",
        "event_id": "e-1",
        "event_time": "2024-03-01T15:30:00.123456+05:30",  # the same instant
        "source": "mobile",
    }
    assert parse_event(REVIEW_TOPIC, raw(review()), attributes).event_id == "e-1"
    assert parse_event(REVIEW_TOPIC, raw(review()), {}).event_id == "e-1"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("event_type", "review_flagged"),
        ("event_id", "e-2"),
        ("event_time", "2024-03-01T10:00:00.123457Z"),
        ("event_time", "2024-03-01T10:00:00.123456"),
        ("event_time", "soon"),
    ],
)
def test_attribute_that_disagrees_with_the_body_is_rejected(name: str, value: str) -> None:
    dead = rejection(REVIEW_TOPIC, raw(review()), {name: value})
    assert dead.reason == "attribute_mismatch"
    assert value in dead.detail
    assert dead.attributes == {name: value}


def test_the_body_is_checked_before_the_attributes() -> None:
    assert reason(REVIEW_TOPIC, review(rating=9), {"event_id": "other"}) == "rating_out_of_range"


def test_attributes_for_agree_with_the_body() -> None:
    event = parse_event(REVIEW_TOPIC, raw(review(event_time="2024-03-01T15:30:00+05:30")))
    attributes = attributes_for(event)
    assert attributes == {
        "event_type": "review_created",
        "event_id": "e-1",
        "event_time": "2024-03-01T10:00:00.000000Z",
    }
    assert parse_event(REVIEW_TOPIC, serialize_event(event), attributes) == event


# ----------------------------------------------------------------------------- dead letters


def test_dead_letter_keeps_raw_bytes_attributes_and_reason() -> None:
    data = b'{"event_id": "e", "rating": 7 \xff'
    dead = validate(REVIEW_TOPIC, data, {"event_id": "e"})
    assert isinstance(dead, DeadLetter)
    assert (dead.topic, dead.raw, dead.attributes, dead.reason) == (
        REVIEW_TOPIC,
        data,
        {"event_id": "e"},
        "not_utf8",
    )
    payload = dead.to_json()
    assert json.loads(json.dumps(payload)) == payload
    assert payload["raw_text"] is None
    assert base64.b64decode(str(payload["raw_base64"])) == data
    assert DeadLetter.from_json(payload) == dead


def test_dead_letter_json_has_text_when_utf8() -> None:
    data = raw(review(rating=0))
    payload = rejection(REVIEW_TOPIC, data).to_json()
    assert payload["raw_text"] == data.decode()
    assert base64.b64decode(str(payload["raw_base64"])) == data
    assert payload["reason"] == "rating_out_of_range"


# ----------------------------------------------------------------------------- construction


def test_constructing_an_event_checks_the_contract() -> None:
    moment = datetime(2024, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(InvalidEventError) as caught:
        contract_for(USER_EVENTS).event(
            event_id="e", event_type="login", event_time=moment.replace(tzinfo=None), user_id="u"
        )
    assert caught.value.reason == Reason.NAIVE_TIMESTAMP
    with pytest.raises(InvalidEventError) as caught:
        contract_for(USER_EVENTS).event(
            event_id="e",
            event_type="login",
            event_time=moment,
            user_id="u",
            extra={"country": "US"},
        )
    assert caught.value.reason == Reason.FIELD_NOT_ALLOWED
    local = moment.astimezone(timezone(timedelta(hours=-5)))
    event = contract_for(USER_EVENTS).event(
        event_id="e", event_type="login", event_time=local, user_id="u"
    )
    assert event.event_time == moment
    assert event.event_time.tzinfo is UTC


def test_events_pickle_and_hash() -> None:
    event = parse_event(REVIEW_TOPIC, raw(review(extra_field=[1, {"a": None}])))
    assert pickle.loads(pickle.dumps(event)) == event
    assert hash(event) == hash(pickle.loads(pickle.dumps(event)))
    dead = rejection(REVIEW_TOPIC, b"{")
    assert pickle.loads(pickle.dumps(dead)) == dead


# ----------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
# The contract's range: from 2000-01-01 to the receipt time (plus the clock skew), which
# the round trip below sets at the end of year 9999.
FAR_RECEIPT = datetime(9999, 12, 31, tzinfo=UTC)
times = st.datetimes(
    min_value=datetime(2000, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)
ids = st.text(min_size=1, max_size=128)
languages = st.from_regex(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8}){0,2}", fullmatch=True)


def extras(known: tuple[str, ...]) -> st.SearchStrategy[dict[str, object]]:
    keys = st.text(max_size=12).filter(lambda key: key not in known)
    return st.dictionaries(keys, json_values, max_size=3)


@st.composite
def review_events(draw: st.DrawFn) -> Event:
    created = draw(st.booleans())
    optional = st.none() | st.text(min_size=1, max_size=20)
    return contract_for(REVIEW_EVENTS).event(
        event_id=draw(ids),
        event_type="review_created" if created else "review_flagged",
        event_time=draw(times),
        review_id=draw(st.text(min_size=1, max_size=20)),
        user_id=draw(st.text(min_size=1, max_size=20)),
        business_id=draw(st.text(min_size=1, max_size=20)),
        rating=draw(st.integers(1, 5) if created else st.none() | st.integers(1, 5)),
        text=draw(st.text(max_size=200) if created else st.none() | st.text(max_size=50)),
        language=draw(languages),
        ip_hash=draw(optional),
        device_id=draw(optional),
        reason=None if created else draw(st.none() | st.sampled_from(["spam", "fake", "other"])),
        extra=draw(extras(REVIEW_FIELDS)),
    )


@st.composite
def user_events(draw: st.DrawFn) -> Event:
    return contract_for(USER_EVENTS).event(
        event_id=draw(ids),
        event_type=draw(st.sampled_from(["login", "signup", "profile_update"])),
        event_time=draw(times),
        user_id=draw(st.text(min_size=1, max_size=20)),
        ip_hash=draw(st.none() | st.text(min_size=1, max_size=20)),
        country=draw(st.none() | st.sampled_from(sorted(COUNTRIES))),
        extra=draw(extras(USER_FIELDS)),
    )


@settings(max_examples=300)
@given(review_events() | user_events())
def test_serialize_then_parse_gives_the_event_back(event: Event) -> None:
    body = serialize_event(event)
    parsed = parse_event(event.topic, body, attributes_for(event), received=FAR_RECEIPT)
    assert parsed == event
    assert parsed.record() == event.record()
    assert serialize_event(parsed) == body  # the canonical form is a fixed point


@settings(max_examples=300)
@given(st.sampled_from(TOPICS), st.binary(max_size=200))
def test_validate_never_raises_on_arbitrary_bytes(topic: str, data: bytes) -> None:
    result = validate(topic, data)
    assert isinstance(result, DeadLetter | Event)


@settings(max_examples=300)
@given(
    st.sampled_from(TOPICS),
    st.dictionaries(st.sampled_from(REVIEW_FIELDS + USER_FIELDS), json_values, max_size=12),
)
def test_validate_never_raises_on_arbitrary_objects(topic: str, body: dict[str, object]) -> None:
    result = validate(topic, raw(body))
    if isinstance(result, DeadLetter):
        assert result.reason in set(Reason)
        assert result.raw == raw(body)
