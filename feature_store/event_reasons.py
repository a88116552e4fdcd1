"""Why a message breaks the event contract: the reason codes of `InvalidEventError` and
`DeadLetter` (re-exported by `feature_store.events`)."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a message is invalid: the `reason` of `InvalidEventError` and `DeadLetter`.

    A field may name its own reason (`EventField.invalid_reason`); the reference
    sources name the field-specific ones below."""

    UNKNOWN_TOPIC = "unknown_topic"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    DUPLICATE_KEY = "duplicate_key"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_FIELD = "empty_field"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NAIVE_TIMESTAMP = "naive_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    ATTRIBUTE_MISMATCH = "attribute_mismatch"
    OUT_OF_RANGE = "out_of_range"  # a declared limit (length or value)
    BAD_VALUE = "bad_value"  # not among a declared enum, or not matching a pattern
    # the reference sources' own reasons (their fields' invalid_reason)
    BAD_EVENT_ID = "bad_event_id"
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    TEXT_TOO_LONG = "text_too_long"
    BAD_LANGUAGE = "bad_language"
    BAD_REASON = "bad_reason"
    BAD_COUNTRY = "bad_country"
