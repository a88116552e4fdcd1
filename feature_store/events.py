"""The event contract of the two Pub/Sub topics: parsing, validation, canonical form.

Every message is one UTF-8 JSON object; `parse_event` turns its raw bytes (and, when
given, its Pub/Sub attributes) into a `ReviewEvent` or a `UserEvent`, or raises
`InvalidEventError` with a short reason code (a `Reason`) and a detail naming the
offending value. `validate` never raises for bad input: it returns a `DeadLetter` that
keeps the raw bytes, the attributes and the reason. `serialize_event` writes the
canonical body, the inverse of `parse_event`.

Where the contract leaves room, this module decides:

- Timestamps are RFC 3339 with an explicit offset (`Z`, `z`, `+hh:mm`, `-00:00`),
  normalised to UTC. Fractions beyond microseconds (up to nanoseconds, as Go and Java
  producers write them) are truncated toward the past; ten or more fractional digits, a
  leap second (`:60`) or a space for `T` make a bad timestamp.
- JSON `null` is the same as an absent field. An empty `ip_hash`, `device_id` or
  `language` is absent too; an empty `review_id`, `user_id` or `business_id` is invalid.
- A repeated key in one object is invalid (parsers disagree about which value wins), and
  so are NaN/Infinity and string escapes that are lone surrogates.
- `country` must be an ISO 3166-1 alpha-2 code (upper-cased on the way in); `language` a
  well-formed BCP 47 tag (kept as sent); `rating` and `text` may appear on
  `review_flagged`, with the same rules, but `reason` may not appear on `review_created`.

Pure: no cloud client, no Beam.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import ClassVar, Final

from feature_store.errors import InvalidEventError

REVIEW_TOPIC: Final = "review-events"
USER_TOPIC: Final = "user-events"
TOPICS: Final = (REVIEW_TOPIC, USER_TOPIC)

REVIEW_EVENT_TYPES: Final = ("review_created", "review_flagged")
USER_EVENT_TYPES: Final = ("login", "signup", "profile_update")
FLAG_REASONS: Final = ("spam", "fake", "abuse", "other")
MAX_TEXT_CHARS: Final = 20_000
MAX_EVENT_ID_CHARS: Final = 128
DEFAULT_LANGUAGE: Final = "und"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# An event_time before this, or after its message's publish time plus the allowed clock
# skew, is a bad message: one event from a producer with a broken clock must never freeze
# its key (the stream measures lateness from a key's newest event, and newer-wins online
# writes refuse any row older than one labelled in the future).
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_CLOCK_SKEW: Final = timedelta(minutes=5)

REVIEW_FIELDS: Final = (
    "event_id", "event_type", "event_time", "review_id", "user_id", "business_id",
    "rating", "text", "language", "ip_hash", "device_id", "reason",
)  # fmt: skip
USER_FIELDS: Final = ("event_id", "event_type", "event_time", "user_id", "ip_hash", "country")


class Reason(StrEnum):
    """Why a message is invalid: the `reason` of `InvalidEventError` and `DeadLetter`."""

    UNKNOWN_TOPIC = "unknown_topic"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    DUPLICATE_KEY = "duplicate_key"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    EMPTY_FIELD = "empty_field"
    BAD_EVENT_ID = "bad_event_id"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    NAIVE_TIMESTAMP = "naive_timestamp"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    RATING_OUT_OF_RANGE = "rating_out_of_range"
    TEXT_TOO_LONG = "text_too_long"
    BAD_LANGUAGE = "bad_language"
    BAD_REASON = "bad_reason"
    BAD_COUNTRY = "bad_country"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    ATTRIBUTE_MISMATCH = "attribute_mismatch"


# ISO 3166-1 alpha-2, the officially assigned codes, plus XK (Kosovo), which GeoIP
# databases emit.
_ISO_3166_ALPHA_2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE
    DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN
    GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE
    KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
    ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA
    PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK
    SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
    UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW"""
COUNTRIES: Final = frozenset(_ISO_3166_ALPHA_2.split())

_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)
# BCP 47 well-formedness, simplified: a 2-8 letter primary subtag (or x/i for private
# use and the grandfathered tags), then alphanumeric subtags of 1-8 characters.
_LANGUAGE = re.compile(r"(?:[A-Za-z]{2,8}|[xXiI])(?:-[A-Za-z0-9]{1,8})*", re.ASCII)
_MAX_FRACTION_DIGITS = 9
_SHOWN_CHARS = 80


def _show(value: object) -> str:
    """A value as it appears in JSON, cut short for error messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"
    return text


def _json_type(value: object) -> str:
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, Mapping) else type(value).__name__)


# ----------------------------------------------------------------------------- time


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp with an explicit offset, as an aware UTC datetime."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        msg = f"event_time {_show(text)} is not an RFC 3339 timestamp"
        raise InvalidEventError(Reason.BAD_TIMESTAMP, msg)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        msg = f"event_time {_show(text)} has no UTC offset (add `Z` or `+hh:mm`)"
        raise InvalidEventError(Reason.NAIVE_TIMESTAMP, msg)
    fraction = fraction or ""
    if len(fraction) > _MAX_FRACTION_DIGITS:
        msg = f"event_time {_show(text)} has more than {_MAX_FRACTION_DIGITS} fractional digits"
        raise InvalidEventError(Reason.BAD_TIMESTAMP, msg)
    try:
        tz = UTC
        if offset not in ("Z", "z"):
            off_hours, off_minutes = int(offset[1:3]), int(offset[4:6])
            if off_hours > 23 or off_minutes > 59:
                msg = f"offset {offset} is out of range"
                raise ValueError(msg)
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=off_hours, minutes=off_minutes))
        micros = int(fraction[:6].ljust(6, "0"))
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        )
        return local if tz is UTC else local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        msg = f"event_time {_show(text)} is not a valid instant: {exc}"
        raise InvalidEventError(Reason.BAD_TIMESTAMP, msg) from None


def format_timestamp(moment: datetime) -> str:
    """The canonical form: UTC, six fractional digits, `Z` (fixed width, sorts as text)."""
    utc = (moment if moment.tzinfo is UTC else moment.astimezone(UTC)).replace(tzinfo=None)
    return f"{utc.isoformat(timespec='microseconds')}Z"


def to_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (UTC), exactly."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    """The UTC moment `micros` microseconds after the Unix epoch."""
    return EPOCH + timedelta(microseconds=int(micros))


def _utc(name: str, moment: object) -> datetime:
    if not isinstance(moment, datetime):
        msg = f"`{name}` must be a datetime, got {moment!r}"
        raise InvalidEventError(Reason.WRONG_TYPE, msg)
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"`{name}` {moment.isoformat()} is naive; a timezone-aware datetime is required"
        raise InvalidEventError(Reason.NAIVE_TIMESTAMP, msg)
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


# ----------------------------------------------------------------------------- checks


def _check_event_id(event_id: str) -> None:
    if not 1 <= len(event_id) <= MAX_EVENT_ID_CHARS:
        limit = MAX_EVENT_ID_CHARS
        msg = f"event_id {_show(event_id)} must be 1-{limit} chars, got {len(event_id)}"
        raise InvalidEventError(Reason.BAD_EVENT_ID, msg)


def _check_event_type(event_type: str, allowed: tuple[str, ...], topic: str) -> None:
    if event_type not in allowed:
        msg = f"event_type {_show(event_type)} is not one of {', '.join(allowed)} on `{topic}`"
        raise InvalidEventError(Reason.UNKNOWN_EVENT_TYPE, msg)


def _check_key(name: str, value: str) -> None:
    if not value:
        msg = f"required field `{name}` is the empty string"
        raise InvalidEventError(Reason.EMPTY_FIELD, msg)


def _require(name: str, value: object, event_type: str) -> None:
    if value is None:
        msg = f"field `{name}` is required for {event_type} events"
        raise InvalidEventError(Reason.MISSING_FIELD, msg)


class FrozenMapping(Mapping[str, object]):
    """A read-only mapping (the unknown fields of an event) that pickles, unlike
    `types.MappingProxyType`, so events can travel between Beam workers."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object] | None = None) -> None:
        self._data = dict(data or {})

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"

    def __getstate__(self) -> dict[str, object]:
        return self._data

    def __setstate__(self, state: dict[str, object]) -> None:
        self._data = state


def _freeze_extra(extra: Mapping[str, object], known: tuple[str, ...]) -> FrozenMapping:
    if not extra:  # the common case: no unknown fields
        return extra if isinstance(extra, FrozenMapping) else FrozenMapping()
    clash = sorted(set(extra) & set(known))
    if clash:
        msg = f"extra fields {clash} are contract fields, not extras"
        raise InvalidEventError(Reason.FIELD_NOT_ALLOWED, msg)
    return extra if isinstance(extra, FrozenMapping) else FrozenMapping(extra)


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewEvent:
    """A message of `review-events`. Constructing one checks every rule of the contract."""

    topic: ClassVar[str] = REVIEW_TOPIC

    event_id: str
    event_type: str
    event_time: datetime
    review_id: str
    user_id: str
    business_id: str
    rating: int | None = None
    text: str | None = None
    language: str = DEFAULT_LANGUAGE
    ip_hash: str | None = None
    device_id: str | None = None
    reason: str | None = None
    extra: Mapping[str, object] = field(default_factory=FrozenMapping, hash=False)

    def __post_init__(self) -> None:
        _check_event_id(self.event_id)
        _check_event_type(self.event_type, REVIEW_EVENT_TYPES, REVIEW_TOPIC)
        object.__setattr__(self, "event_time", _utc("event_time", self.event_time))
        for name in ("review_id", "user_id", "business_id"):
            _check_key(name, getattr(self, name))
        if self.event_type == "review_created":
            _require("rating", self.rating, self.event_type)
            _require("text", self.text, self.event_type)
            if self.reason is not None:
                msg = f"field `reason` ({_show(self.reason)}) is only allowed on review_flagged"
                raise InvalidEventError(Reason.FIELD_NOT_ALLOWED, msg)
        if self.rating is not None:
            if type(self.rating) is not int:
                msg = f"field `rating` must be an integer, got {_show(self.rating)}"
                raise InvalidEventError(Reason.WRONG_TYPE, msg)
            if not 1 <= self.rating <= 5:
                msg = f"rating {self.rating} is outside 1-5"
                raise InvalidEventError(Reason.RATING_OUT_OF_RANGE, msg)
        if self.text is not None and len(self.text) > MAX_TEXT_CHARS:
            msg = f"text of {len(self.text)} chars is longer than {MAX_TEXT_CHARS}"
            raise InvalidEventError(Reason.TEXT_TOO_LONG, msg)
        if _LANGUAGE.fullmatch(self.language) is None:
            msg = f"language {_show(self.language)} is not a BCP 47 tag"
            raise InvalidEventError(Reason.BAD_LANGUAGE, msg)
        if self.reason is not None and self.reason not in FLAG_REASONS:
            msg = f"reason {_show(self.reason)} is not one of {', '.join(FLAG_REASONS)}"
            raise InvalidEventError(Reason.BAD_REASON, msg)
        for name in ("ip_hash", "device_id"):  # an empty optional value means absent
            if getattr(self, name) == "":
                object.__setattr__(self, name, None)
        object.__setattr__(self, "extra", _freeze_extra(self.extra, REVIEW_FIELDS))

    def record(self) -> dict[str, object]:
        """The flat row the aggregation core reads; `event_time` in UTC microseconds."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_time": to_micros(self.event_time),
            "event_time_iso": format_timestamp(self.event_time),
            "review_id": self.review_id,
            "user_id": self.user_id,
            "business_id": self.business_id,
            "rating": self.rating,
            "text": self.text,
            "language": self.language,
            "ip_hash": self.ip_hash,
            "device_id": self.device_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UserEvent:
    """A message of `user-events`. Constructing one checks every rule of the contract."""

    topic: ClassVar[str] = USER_TOPIC

    event_id: str
    event_type: str
    event_time: datetime
    user_id: str
    ip_hash: str | None = None
    country: str | None = None
    extra: Mapping[str, object] = field(default_factory=FrozenMapping, hash=False)

    def __post_init__(self) -> None:
        _check_event_id(self.event_id)
        _check_event_type(self.event_type, USER_EVENT_TYPES, USER_TOPIC)
        object.__setattr__(self, "event_time", _utc("event_time", self.event_time))
        _check_key("user_id", self.user_id)
        if self.ip_hash == "":
            object.__setattr__(self, "ip_hash", None)
        if self.country is not None:
            country = self.country.upper()
            if country not in COUNTRIES:
                msg = f"country {_show(self.country)} is not an ISO 3166 alpha-2 code"
                raise InvalidEventError(Reason.BAD_COUNTRY, msg)
            object.__setattr__(self, "country", country)
        object.__setattr__(self, "extra", _freeze_extra(self.extra, USER_FIELDS))

    def record(self) -> dict[str, object]:
        """The flat row the aggregation core reads; `event_time` in UTC microseconds."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_time": to_micros(self.event_time),
            "event_time_iso": format_timestamp(self.event_time),
            "user_id": self.user_id,
            "ip_hash": self.ip_hash,
            "country": self.country,
        }


Event = ReviewEvent | UserEvent


# ----------------------------------------------------------------------------- parsing


def _reject_constant(name: str) -> object:
    msg = f"non-standard JSON constant {name}"
    raise InvalidEventError(Reason.NOT_JSON, msg)


def _unique_object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                msg = f"key {_show(key)} appears more than once in one object"
                raise InvalidEventError(Reason.DUPLICATE_KEY, msg)
            seen.add(key)
    return obj


# One decoder for every message (`json.loads` with hooks builds a new one per call); a
# leading BOM goes through `json.loads` itself, which rejects it with its own message.
_DECODER: Final = json.JSONDecoder(
    object_pairs_hook=_unique_object, parse_constant=_reject_constant
)
_REVIEW_KNOWN: Final = frozenset(REVIEW_FIELDS)
_USER_KNOWN: Final = frozenset(USER_FIELDS)


def _load(raw: bytes) -> dict[str, object]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 4]
        msg = f"byte {raw[exc.start]:#04x} at offset {exc.start} is not UTF-8 ({bad!r}...)"
        raise InvalidEventError(Reason.NOT_UTF8, msg) from None
    try:
        obj = _DECODER.decode(text) if not text.startswith("\ufeff") else json.loads(text)
    except InvalidEventError:
        raise
    except (ValueError, RecursionError) as exc:
        msg = f"body {_show(text)} is not JSON: {exc}"
        raise InvalidEventError(Reason.NOT_JSON, msg) from None
    if not isinstance(obj, dict):
        msg = f"body is a JSON {_json_type(obj)}, not an object: {_show(obj)}"
        raise InvalidEventError(Reason.NOT_OBJECT, msg)
    if "\\u" in text:  # escapes may encode lone surrogates, which UTF-8 cannot carry
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            msg = f"a string escape encodes a lone surrogate U+{ord(exc.object[exc.start]):04X}"
            raise InvalidEventError(Reason.NOT_UTF8, msg) from None
    return obj


def _wrong_type(name: str, value: object, expected: str) -> InvalidEventError:
    msg = f"field `{name}` must be {expected}, got {_json_type(value)} {_show(value)}"
    return InvalidEventError(Reason.WRONG_TYPE, msg)


def _required_str(obj: Mapping[str, object], name: str) -> str:
    value = obj.get(name)
    if value is None:
        state = "null" if name in obj else "absent"
        msg = f"required field `{name}` is {state}"
        raise InvalidEventError(Reason.MISSING_FIELD, msg)
    if not isinstance(value, str):
        raise _wrong_type(name, value, "a string")
    return value


def _str(obj: Mapping[str, object], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _wrong_type(name, value, "a string")


def _int(obj: Mapping[str, object], name: str) -> int | None:
    value = obj.get(name)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value  # a JSON true is not a rating
    raise _wrong_type(name, value, "an integer")


def _common(obj: Mapping[str, object], allowed: tuple[str, ...], topic: str) -> tuple[str, str]:
    """event_id and event_type, checked first: they name the message in every later error."""
    event_id = _required_str(obj, "event_id")
    _check_event_id(event_id)
    event_type = _required_str(obj, "event_type")
    _check_event_type(event_type, allowed, topic)
    return event_id, event_type


def _extra(obj: Mapping[str, object], known: frozenset[str]) -> dict[str, object]:
    return {key: value for key, value in obj.items() if key not in known}


def _parse_review(obj: Mapping[str, object]) -> ReviewEvent:
    event_id, event_type = _common(obj, REVIEW_EVENT_TYPES, REVIEW_TOPIC)
    return ReviewEvent(
        event_id=event_id,
        event_type=event_type,
        event_time=parse_timestamp(_required_str(obj, "event_time")),
        review_id=_required_str(obj, "review_id"),
        user_id=_required_str(obj, "user_id"),
        business_id=_required_str(obj, "business_id"),
        rating=_int(obj, "rating"),
        text=_str(obj, "text"),
        language=_str(obj, "language") or DEFAULT_LANGUAGE,
        ip_hash=_str(obj, "ip_hash"),
        device_id=_str(obj, "device_id"),
        reason=_str(obj, "reason"),
        extra=_extra(obj, _REVIEW_KNOWN),
    )


def _parse_user(obj: Mapping[str, object]) -> UserEvent:
    event_id, event_type = _common(obj, USER_EVENT_TYPES, USER_TOPIC)
    return UserEvent(
        event_id=event_id,
        event_type=event_type,
        event_time=parse_timestamp(_required_str(obj, "event_time")),
        user_id=_required_str(obj, "user_id"),
        ip_hash=_str(obj, "ip_hash"),
        country=_str(obj, "country"),
        extra=_extra(obj, _USER_KNOWN),
    )


def _check_attributes(event: Event, attributes: Mapping[str, str]) -> None:
    for name in ("event_type", "event_id"):
        value = attributes.get(name)
        if value is not None and value != getattr(event, name):
            msg = f"attribute {name}={_show(value)} but the body says {_show(getattr(event, name))}"
            raise InvalidEventError(Reason.ATTRIBUTE_MISMATCH, msg)
    value = attributes.get("event_time")
    if value is None:
        return
    try:
        moment = parse_timestamp(value)
    except InvalidEventError as exc:
        msg = f"attribute event_time={_show(value)} is not a valid timestamp ({exc.reason})"
        raise InvalidEventError(Reason.ATTRIBUTE_MISMATCH, msg) from None
    if moment != event.event_time:
        body = format_timestamp(event.event_time)
        msg = f"attribute event_time={_show(value)} but the body says {body}"
        raise InvalidEventError(Reason.ATTRIBUTE_MISMATCH, msg)


def _check_bounds(event: Event, received: datetime | None, clock_skew: timedelta) -> None:
    moment = event.event_time
    if moment < EARLIEST_EVENT_TIME:
        shown = format_timestamp(moment)
        msg = f"event_time {shown} is before {format_timestamp(EARLIEST_EVENT_TIME)}"
        raise InvalidEventError(Reason.TIMESTAMP_OUT_OF_RANGE, msg)
    received = datetime.now(UTC) if received is None else _utc("received", received)
    if moment > received + clock_skew:
        msg = (
            f"event_time {format_timestamp(moment)} is after the message was received "
            f"({format_timestamp(received)}) plus the allowed clock skew of "
            f"{clock_skew.total_seconds():g} s"
        )
        raise InvalidEventError(Reason.TIMESTAMP_OUT_OF_RANGE, msg)


def parse_event(
    topic: str,
    raw: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    received: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> ReviewEvent | UserEvent:
    """The event in `raw` (one message of `topic`), or `InvalidEventError` saying why not.

    The body is checked first; then each of the `event_type`, `event_id` and
    `event_time` attributes that is present must agree with it (times as instants).
    `event_time` must lie in [2000-01-01, received + clock_skew], where `received` is the
    message's publish time (for files: when the run started); None means now.
    """
    if topic == REVIEW_TOPIC:
        event: Event = _parse_review(_load(raw))
    elif topic == USER_TOPIC:
        event = _parse_user(_load(raw))
    else:
        msg = f"topic {topic!r} is not one of {', '.join(TOPICS)}"
        raise InvalidEventError(Reason.UNKNOWN_TOPIC, msg)
    if attributes:
        _check_attributes(event, attributes)
    _check_bounds(event, received, clock_skew)
    return event


def serialize_event(event: ReviewEvent | UserEvent) -> bytes:
    """The canonical body: contract fields in contract order, absent ones left out,
    canonical `event_time`, then the extra fields; compact UTF-8 JSON."""
    record = event.record()
    record["event_time"] = record.pop("event_time_iso")
    names = REVIEW_FIELDS if isinstance(event, ReviewEvent) else USER_FIELDS
    body = {name: record[name] for name in names if record[name] is not None}
    body.update(event.extra)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def attributes_for(event: ReviewEvent | UserEvent) -> dict[str, str]:
    """The Pub/Sub attributes to publish `event` with."""
    return {
        "event_type": event.event_type,
        "event_id": event.event_id,
        "event_time": format_timestamp(event.event_time),
    }


# ----------------------------------------------------------------------------- dead letters


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An invalid message with everything needed to inspect or replay it."""

    topic: str
    raw: bytes
    attributes: dict[str, str] = field(hash=False)
    reason: str
    detail: str

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; the raw bytes as base64 always, and as text when UTF-8."""
        try:
            raw_text: str | None = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            raw_text = None
        return {
            "topic": self.topic,
            "reason": str(self.reason),
            "detail": self.detail,
            "attributes": dict(self.attributes),
            "raw_text": raw_text,
            "raw_base64": base64.b64encode(self.raw).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> DeadLetter:
        """The inverse of `to_json` (for replaying a dead-letter file)."""
        raw_base64, attributes = data["raw_base64"], data.get("attributes") or {}
        if not isinstance(raw_base64, str) or not isinstance(attributes, dict):
            msg = f"not a dead letter: {_show(dict(data))}"
            raise ValueError(msg)
        return cls(
            topic=str(data["topic"]),
            raw=base64.b64decode(raw_base64, validate=True),
            attributes={str(k): str(v) for k, v in attributes.items()},
            reason=str(data["reason"]),
            detail=str(data["detail"]),
        )


def validate(
    topic: str,
    raw: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    received: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> ReviewEvent | UserEvent | DeadLetter:
    """`parse_event`, with an invalid message returned as a `DeadLetter` instead of raised."""
    try:
        return parse_event(topic, raw, attributes, received=received, clock_skew=clock_skew)
    except InvalidEventError as exc:
        return DeadLetter(topic, bytes(raw), dict(attributes or {}), exc.reason, exc.detail)
