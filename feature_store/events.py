"""The event contract, generated from the `Source` declarations: parsing, validation,
canonical form.

Every message is one UTF-8 JSON object. A source's `Contract` (`contract_for(source)`)
is compiled from its `EventField`s (type, required / required for some event types /
only allowed on some, limits, enums, patterns, timestamp bounds) and is the one parser
of every topic: `Contract.parse` turns raw bytes (and, when given, the Pub/Sub
attributes) into an `Event`, or raises `InvalidEventError` with a short reason code and
a detail naming the offending value. `validate` never raises for bad input: it returns a
`DeadLetter` that keeps the raw bytes, the attributes and the reason. `serialize_event`
writes the canonical body, the inverse of parsing. The module-level functions take a
`Source`, a `Contract` or a topic name (one of the reference sources).

Where the contract leaves room, this module decides:

- Timestamps are RFC 3339 with an explicit offset (`Z`, `z`, `+hh:mm`, `-00:00`),
  normalised to UTC. Fractions beyond microseconds (up to nanoseconds, as Go and Java
  producers write them) are truncated toward the past; ten or more fractional digits, a
  leap second (`:60`) or a space for `T` make a bad timestamp.
- JSON `null` is the same as an absent field; a field declared `empty="absent"` treats
  the empty string so too, and `empty="invalid"` refuses it.
- A repeated key in one object is invalid (parsers disagree about which value wins), and
  so are NaN/Infinity and string escapes that are lone surrogates.
- Unknown fields are kept (`Event.extra`, the raw archive) and ignored by features.
- An INT64 field holds 64-bit integers: a larger number is out of range.

Pure: no cloud client, no Beam.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Final

from feature_store.definitions import ENVELOPE, DType, EventField, Source
from feature_store.errors import InvalidEventError

REVIEW_TOPIC: Final = "review-events"
USER_TOPIC: Final = "user-events"
TOPICS: Final = (REVIEW_TOPIC, USER_TOPIC)  # the reference sources' topics

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# The reference bounds of event_time (declared in feature_store.reference): an
# event_time before this, or after its message's publish time plus the allowed clock
# skew, is a bad message: one event from a producer with a broken clock must never
# freeze its key (the stream measures lateness from a key's newest event, and
# newer-wins online writes refuse any row older than one labelled in the future).
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_CLOCK_SKEW: Final = timedelta(minutes=5)


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


_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)
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


def parse_timestamp(text: str, name: str = "event_time") -> datetime:
    """An RFC 3339 timestamp with an explicit offset, as an aware UTC datetime."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        msg = f"{name} {_show(text)} is not an RFC 3339 timestamp"
        raise InvalidEventError(Reason.BAD_TIMESTAMP, msg)
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        msg = f"{name} {_show(text)} has no UTC offset (add `Z` or `+hh:mm`)"
        raise InvalidEventError(Reason.NAIVE_TIMESTAMP, msg)
    fraction = fraction or ""
    if len(fraction) > _MAX_FRACTION_DIGITS:
        msg = f"{name} {_show(text)} has more than {_MAX_FRACTION_DIGITS} fractional digits"
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
        msg = f"{name} {_show(text)} is not a valid instant: {exc}"
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


class FrozenMapping(Mapping[str, object]):
    """A read-only mapping (the fields of an event) that pickles, unlike
    `types.MappingProxyType`, so events can travel between Beam workers."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object] | None = None) -> None:
        self._data = dict(data or {})

    @classmethod
    def owning(cls, data: dict[str, object]) -> FrozenMapping:
        """A mapping over `data` itself, not a copy (the caller gives it up)."""
        mapping = cls.__new__(cls)
        mapping._data = data
        return mapping

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def items(self) -> ItemsView[str, object]:
        return self._data.items()

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def values(self) -> ValuesView[object]:
        return self._data.values()

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


_EMPTY: Final = FrozenMapping()


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


MAX_JSON_DEPTH: Final = 64
"""Deepest nesting of arrays and objects a message may have (an event is a flat object).
Checked before parsing: the JSON scanner's own limit is the interpreter's recursion
limit less the caller's stack, so without this bound the same deep message would be
`not_object` in one call and `not_json` in a deeper one."""
_STRINGS: Final = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS: Final = re.compile(r"[\[\]{}]")


def _nested_deeper_than(text: str, limit: int) -> bool:
    if text.count("[") + text.count("{") <= limit:  # the common case: no scan
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _load(raw: bytes) -> dict[str, object]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 4]
        msg = f"byte {raw[exc.start]:#04x} at offset {exc.start} is not UTF-8 ({bad!r}...)"
        raise InvalidEventError(Reason.NOT_UTF8, msg) from None
    if _nested_deeper_than(text, MAX_JSON_DEPTH):
        msg = f"body {_show(text)} nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
        raise InvalidEventError(Reason.NOT_JSON, msg)
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


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """A valid message of one source: the envelope, the declared fields (`values`, in
    declaration order, None when absent) and the unknown fields (`extra`).

    A declared field reads as an attribute too (`event.rating`). Build one with
    `Contract.parse` or `Contract.event`, which check every rule of the contract.
    """

    topic: str
    event_id: str
    event_type: str
    event_time: datetime
    values: Mapping[str, object] = field(default_factory=FrozenMapping, hash=False)
    extra: Mapping[str, object] = field(default_factory=FrozenMapping, hash=False)

    def __post_init__(self) -> None:
        if self.event_time.__class__ is not datetime or self.event_time.tzinfo is not UTC:
            object.__setattr__(self, "event_time", _utc("event_time", self.event_time))
        for name in ("values", "extra"):
            value = getattr(self, name)
            if not isinstance(value, FrozenMapping):
                object.__setattr__(self, name, FrozenMapping(value))

    def __getattr__(self, name: str) -> object:
        try:
            values = object.__getattribute__(self, "values")
        except AttributeError:  # not yet set (unpickling)
            raise AttributeError(name) from None
        if name in values:
            return values[name]
        msg = f"events of `{object.__getattribute__(self, 'topic')}` have no field {name!r}"
        raise AttributeError(msg)

    def record(self) -> dict[str, object]:
        """The flat row the aggregation core reads: every declared field (None when
        absent); timestamps in UTC microseconds, `event_time_iso` the canonical text."""
        record: dict[str, object] = {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_time": to_micros(self.event_time),
            "event_time_iso": format_timestamp(self.event_time),
        }
        values = self.values._data if isinstance(self.values, FrozenMapping) else self.values
        record.update(values)
        for name, value in values.items():
            if value.__class__ is datetime:
                record[name] = to_micros(value)
        return record


# ----------------------------------------------------------------------------- rules

_STRING, _INT, _FLOAT, _BOOL, _TIME, _VECTOR = range(6)
_KINDS: Final = {
    DType.STRING: _STRING,
    DType.INT64: _INT,
    DType.FLOAT64: _FLOAT,
    DType.BOOL: _BOOL,
    DType.TIMESTAMP: _TIME,
    DType.FLOAT32_VECTOR: _VECTOR,
}
_EXPECTED: Final = (
    "a string",
    "an integer",
    "a number",
    "a boolean",
    "a string",
    "an array of numbers",
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class _Rule:
    """One declared field compiled for the parser: `check` returns its value or raises."""

    __slots__ = (
        "any_string",
        "bounded",
        "case",
        "default",
        "earliest",
        "empty_absent",
        "empty_invalid",
        "expected",
        "kind",
        "max_length",
        "max_value",
        "min_length",
        "min_value",
        "name",
        "one_of",
        "only_for",
        "optional",
        "pattern",
        "plain",
        "range_reason",
        "reason",
        "required",
        "required_for",
    )  # fmt: skip

    def __init__(self, spec: EventField) -> None:
        self.name, self.kind = spec.name, _KINDS[spec.dtype]
        self.required = spec.required or spec.name in ENVELOPE
        self.required_for = frozenset(spec.required_for)
        self.only_for = frozenset(spec.only_for)
        self.default = spec.default
        self.empty_absent, self.empty_invalid = spec.empty == "absent", spec.empty == "invalid"
        self.case = spec.case
        self.min_length, self.max_length = spec.min_length, spec.max_length
        self.min_value, self.max_value = spec.min_value, spec.max_value
        if self.kind == _INT:  # what BigQuery, Feast and numpy can hold
            self.min_value = max(
                _INT64_MIN, _INT64_MIN if spec.min_value is None else spec.min_value
            )
            self.max_value = min(
                _INT64_MAX, _INT64_MAX if spec.max_value is None else spec.max_value
            )
        self.one_of = frozenset(spec.one_of) if spec.one_of else None
        self.pattern = re.compile(spec.pattern, re.ASCII) if spec.pattern is not None else None
        self.earliest, self.bounded = spec.earliest, spec.bounded_by_receipt
        self.reason = spec.invalid_reason or Reason.BAD_VALUE
        self.range_reason = spec.invalid_reason or Reason.OUT_OF_RANGE
        self.expected = spec.expected or (
            f"one of {', '.join(map(str, spec.one_of))}" if spec.one_of else ""
        )
        unchecked = (
            not self.case and self.min_length is None and self.max_length is None
            and self.one_of is None and self.pattern is None
        )  # fmt: skip
        # nothing to check beyond the type: the common cases take one branch
        self.plain = (
            unchecked and not self.empty_absent and not self.empty_invalid
            and self.kind in (_STRING, _BOOL)
        )  # fmt: skip
        # any non-empty string is valid, on every event type
        self.any_string = unchecked and self.kind == _STRING and not self.only_for
        self.optional = not self.required and not self.required_for

    def absent(self, obj: Mapping[str, object], event_type: str) -> object:
        """The value of an absent (or null, or empty-means-absent) field."""
        if self.required:
            state = "null" if obj.get(self.name, 0) is None else "absent"
            if self.empty_absent and obj.get(self.name) == "":
                state = "the empty string"
            msg = f"required field `{self.name}` is {state}"
            raise InvalidEventError(Reason.MISSING_FIELD, msg)
        if event_type in self.required_for:
            msg = f"field `{self.name}` is required for {event_type} events"
            raise InvalidEventError(Reason.MISSING_FIELD, msg)
        return self.default

    def check(self, value: object, event_type: str) -> object:
        """`value` (not None) checked and normalised; None when it means absent."""
        kind = self.kind
        if kind in (_STRING, _TIME):
            if value.__class__ is not str and not isinstance(value, str):
                raise _wrong_type(self.name, value, _EXPECTED[kind])
        elif kind == _INT:
            if not isinstance(value, int) or isinstance(value, bool):
                raise _wrong_type(self.name, value, "an integer")  # a JSON true is not 1
        elif kind == _FLOAT:
            if not _number(value):
                raise _wrong_type(self.name, value, "a number")
        elif kind == _BOOL:
            if not isinstance(value, bool):
                raise _wrong_type(self.name, value, "a boolean")
        elif not isinstance(value, list) or not all(_number(v) for v in value):
            raise _wrong_type(self.name, value, "an array of numbers")
        if self.only_for and event_type not in self.only_for:
            allowed = ", ".join(sorted(self.only_for))
            msg = f"field `{self.name}` ({_show(value)}) is only allowed on {allowed}"
            raise InvalidEventError(Reason.FIELD_NOT_ALLOWED, msg)
        if self.plain:
            return value
        return self._value(value)

    def _value(self, value: object) -> object:
        if self.kind == _STRING:
            return self._string(value)  # type: ignore[arg-type]
        if self.kind == _TIME:
            return parse_timestamp(value, self.name)  # type: ignore[arg-type]
        if self.kind == _VECTOR:
            return [float(v) for v in value]  # type: ignore[attr-defined]
        if self.kind == _FLOAT:
            value = float(value)  # type: ignore[arg-type]
        self._range(value)  # type: ignore[arg-type]
        if self.one_of is not None and value not in self.one_of:
            msg = f"{self.name} {_show(value)} is not {self.expected}"
            raise InvalidEventError(self.reason, msg)
        return value

    def _range(self, value: float) -> None:
        low, high = self.min_value, self.max_value
        if (low is None or value >= low) and (high is None or value <= high):
            return
        if low is not None and high is not None:
            msg = f"{self.name} {_show(value)} is outside {low}-{high}"
        elif low is not None:
            msg = f"{self.name} {_show(value)} is below {low}"
        else:
            msg = f"{self.name} {_show(value)} is above {high}"
        raise InvalidEventError(self.range_reason, msg)

    def _string(self, value: str) -> str | None:
        if not value:
            if self.empty_absent:
                return None
            if self.empty_invalid:
                state = "required field" if self.required else "field"
                msg = f"{state} `{self.name}` is the empty string"
                raise InvalidEventError(Reason.EMPTY_FIELD, msg)
        shown = value
        if self.case:
            value = value.upper() if self.case == "upper" else value.lower()
        self._length(shown)
        if (self.one_of is not None and value not in self.one_of) or (
            self.pattern is not None and self.pattern.fullmatch(value) is None
        ):
            expected = self.expected or f"matching {self.pattern.pattern}"  # type: ignore[union-attr]
            msg = f"{self.name} {_show(shown)} is not {expected}"
            raise InvalidEventError(self.reason, msg)
        return value

    def _length(self, value: str) -> None:
        low, high, size = self.min_length, self.max_length, len(value)
        if (low is None or size >= low) and (high is None or size <= high):
            return
        if low is not None and high is not None:
            msg = f"{self.name} {_show(value)} must be {low}-{high} chars, got {size}"
        elif high is not None:  # the value may be long, and personal: not shown
            msg = f"{self.name} of {size} chars is longer than {high}"
        else:
            msg = f"{self.name} {_show(value)} is shorter than {low} chars, got {size}"
        raise InvalidEventError(self.range_reason, msg)

    def bound(self, moment: datetime, received: datetime | None, skew: timedelta) -> None:
        """A timestamp's bounds: `earliest`, and the receipt time plus the clock skew."""
        if self.earliest is not None and moment < self.earliest:
            shown = format_timestamp(moment)
            msg = f"{self.name} {shown} is before {format_timestamp(self.earliest)}"
            raise InvalidEventError(Reason.TIMESTAMP_OUT_OF_RANGE, msg)
        if not self.bounded:
            return
        received = datetime.now(UTC) if received is None else _utc("received", received)
        if moment > received + skew:
            msg = (
                f"{self.name} {format_timestamp(moment)} is after the message was received "
                f"({format_timestamp(received)}) plus the allowed clock skew of "
                f"{skew.total_seconds():g} s"
            )
            raise InvalidEventError(Reason.TIMESTAMP_OUT_OF_RANGE, msg)


# ----------------------------------------------------------------------------- contracts


class Contract:
    """The event contract of one `Source`, generated from its field declarations: one
    parser for every source, so a user's fields get the checks the reference ones get."""

    def __init__(self, source: Source) -> None:
        self.source, self.topic = source, source.topic
        self.event_types: tuple[str, ...] = tuple(source.event_types)
        self._allowed = frozenset(self.event_types)
        self._id = _Rule(_declared(source, "event_id"))
        self._time = _Rule(_declared(source, "event_time"))
        self._rules = tuple(_Rule(f) for f in source.fields if f.name not in ENVELOPE)
        self.field_names: tuple[str, ...] = tuple(ENVELOPE) + tuple(r.name for r in self._rules)
        self._known = frozenset(f.name for f in source.fields)
        self._bounded = tuple(r for r in (self._time, *self._rules) if r.kind == _TIME)

    def __repr__(self) -> str:
        return f"Contract({self.topic!r}, fields={list(self.field_names)})"

    def __reduce__(self) -> tuple[type[Contract], tuple[Source]]:
        return Contract, (self.source,)

    def parse(
        self,
        raw: bytes,
        attributes: Mapping[str, str] | None = None,
        *,
        received: datetime | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> Event:
        """The event in `raw`, or `InvalidEventError` saying why not.

        The body is checked first, field by field in declaration order (event_id and
        event_type first: they name the message in every later error); then each of
        the `event_type`, `event_id` and `event_time` attributes that is present must
        agree with it (times as instants); then the timestamps' bounds, where
        `received` is the message's publish time (for files: when the run started) and
        None means now.
        """
        event = self.from_object(_load(raw))
        if attributes:
            _check_attributes(event, attributes)
        for rule in self._bounded:
            moment = event.event_time if rule is self._time else event.values[rule.name]
            if moment is not None:
                rule.bound(moment, received, clock_skew)  # type: ignore[arg-type]
        return event

    def validate(
        self,
        raw: bytes,
        attributes: Mapping[str, str] | None = None,
        *,
        received: datetime | None = None,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
    ) -> Event | DeadLetter:
        """`parse`, with an invalid message returned as a `DeadLetter` instead of raised."""
        try:
            return self.parse(raw, attributes, received=received, clock_skew=clock_skew)
        except InvalidEventError as exc:
            return DeadLetter(
                self.topic, bytes(raw), dict(attributes or {}), exc.reason, exc.detail
            )

    def from_object(self, obj: Mapping[str, object]) -> Event:
        """The event in a decoded JSON object (no bounds checked)."""
        get = obj.get
        value = get("event_id")
        event_id = self._id.check(value, "") if value is not None else None
        if event_id is None:
            self._id.absent(obj, "")
        value = get("event_type")
        if value is None or value.__class__ is not str:
            event_type = self._type(obj, value)
        else:
            event_type = value
        if event_type not in self._allowed:
            shown, allowed = _show(event_type), ", ".join(self.event_types)
            msg = f"event_type {shown} is not one of {allowed} on `{self.topic}`"
            raise InvalidEventError(Reason.UNKNOWN_EVENT_TYPE, msg)
        value = get("event_time")
        event_time = self._time.check(value, event_type) if value is not None else None
        if event_time is None:
            self._time.absent(obj, event_type)
        values: dict[str, object] = {}
        for rule in self._rules:  # the hot loop: the common cases take one branch
            value = get(rule.name)
            if value is None:
                values[rule.name] = rule.default if rule.optional else rule.absent(obj, event_type)
            elif rule.any_string and value.__class__ is str and value:
                values[rule.name] = value
            else:
                value = rule.check(value, event_type)
                values[rule.name] = rule.absent(obj, event_type) if value is None else value
        unknown = obj.keys() - self._known
        extra = FrozenMapping({k: obj[k] for k in obj if k in unknown}) if unknown else _EMPTY
        return Event(
            topic=self.topic,
            event_id=event_id,  # type: ignore[arg-type]
            event_type=event_type,
            event_time=event_time,  # type: ignore[arg-type]
            values=FrozenMapping.owning(values),
            extra=extra,
        )

    def _type(self, obj: Mapping[str, object], value: object) -> str:
        if value is None:
            msg = f"required field `event_type` is {'null' if 'event_type' in obj else 'absent'}"
            raise InvalidEventError(Reason.MISSING_FIELD, msg)
        if not isinstance(value, str):
            name = "event_type"
            raise _wrong_type(name, value, "a string")
        return value

    def event(
        self,
        *,
        event_id: str,
        event_type: str,
        event_time: datetime,
        extra: Mapping[str, object] | None = None,
        **values: object,
    ) -> Event:
        """An event built from Python values, checked by the same rules as a message
        (bounds excepted); timestamps are aware datetimes."""
        moment = _utc("event_time", event_time)
        unknown = sorted(set(values) - set(self.field_names))
        if unknown:
            msg = (
                f"{unknown} are not fields of `{self.topic}`; its fields: {list(self.field_names)}"
            )
            raise InvalidEventError(Reason.FIELD_NOT_ALLOWED, msg)
        clash = sorted(set(extra or {}) & self._known)
        if clash:
            msg = f"extra fields {clash} are contract fields, not extras"
            raise InvalidEventError(Reason.FIELD_NOT_ALLOWED, msg)
        obj: dict[str, object] = {
            name: format_timestamp(_utc(name, value)) if isinstance(value, datetime) else value
            for name, value in values.items()
        }
        obj.update(event_id=event_id, event_type=event_type, event_time=format_timestamp(moment))
        return self.from_object({**obj, **(extra or {})})


def _declared(source: Source, name: str) -> EventField:
    declared = source.field(name)
    if declared is None:  # Source checks this; a mutated one may not
        msg = f"source `{source.name}` declares no `{name}` field"
        raise InvalidEventError(Reason.MISSING_FIELD, msg)
    return declared


_CONTRACTS: dict[int, tuple[Source, Contract]] = {}
_REFERENCE: dict[str, Contract] = {}  # the reference sources' contracts, by topic


def contract_for(source: Source | Contract | str) -> Contract:
    """The contract of a source (built once per source object); a topic name means one
    of the reference sources (`feature_store.reference`)."""
    if isinstance(source, Contract):
        return source
    if isinstance(source, str):
        return _REFERENCE.get(source) or _reference_contract(source)
    cached = _CONTRACTS.get(id(source))
    if cached is None or cached[0] is not source:
        cached = _CONTRACTS[id(source)] = (source, Contract(source))
    return cached[1]


def contracts_of(sources: Iterable[Source]) -> dict[str, Contract]:
    """Each source's contract, by topic."""
    return {s.topic: contract_for(s) for s in sources}


def _reference_contract(topic: str) -> Contract:
    from feature_store.reference import REGISTRY  # it imports this module

    if not _REFERENCE:
        _REFERENCE.update(contracts_of(REGISTRY.sources))
    if topic not in _REFERENCE:
        msg = f"topic {topic!r} is not one of {', '.join(TOPICS)}"
        raise InvalidEventError(Reason.UNKNOWN_TOPIC, msg)
    return _REFERENCE[topic]


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


def parse_event(
    source: Source | Contract | str,
    raw: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    received: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Event:
    """`Contract.parse` of the source's contract (a topic name: a reference source)."""
    contract = contract_for(source)
    return contract.parse(raw, attributes, received=received, clock_skew=clock_skew)


def serialize_event(event: Event) -> bytes:
    """The canonical body: the envelope, the declared fields in declaration order (absent
    ones left out, timestamps canonical), then the extra fields; compact UTF-8 JSON."""
    body: dict[str, object] = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "event_time": format_timestamp(event.event_time),
    }
    for name, value in event.values.items():
        if value is not None:
            body[name] = format_timestamp(value) if isinstance(value, datetime) else value
    body.update(event.extra)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def attributes_for(event: Event) -> dict[str, str]:
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
    source: Source | Contract | str,
    raw: bytes,
    attributes: Mapping[str, str] | None = None,
    *,
    received: datetime | None = None,
    clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
) -> Event | DeadLetter:
    """`parse_event`, with an invalid message returned as a `DeadLetter` instead of raised."""
    try:
        contract = contract_for(source)
    except InvalidEventError as exc:  # an unknown topic
        topic = source if isinstance(source, str) else ""
        return DeadLetter(topic, bytes(raw), dict(attributes or {}), exc.reason, exc.detail)
    return contract.validate(raw, attributes, received=received, clock_skew=clock_skew)
