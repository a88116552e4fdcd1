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
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from feature_store.definitions import ENVELOPE, EventField, Source
from feature_store.errors import InvalidEventError
from feature_store.event_json import MAX_JSON_DEPTH, _load, _show, _wrong_type
from feature_store.event_reasons import Reason
from feature_store.event_rules import _TIME, _Rule
from feature_store.timestamps import (
    EPOCH,
    _utc,
    format_timestamp,
    from_micros,
    parse_timestamp,
    to_micros,
)

# The contract's public names, wherever they are defined: reasons in `event_reasons`,
# the JSON body in `event_json`, timestamps in `timestamps`, field rules in `event_rules`.
__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "EARLIEST_EVENT_TIME",
    "EPOCH",
    "MAX_JSON_DEPTH",
    "REVIEW_TOPIC",
    "TOPICS",
    "USER_TOPIC",
    "Contract",
    "DeadLetter",
    "Event",
    "FrozenMapping",
    "Reason",
    "attributes_for",
    "contract_for",
    "contracts_of",
    "format_timestamp",
    "from_micros",
    "parse_event",
    "parse_timestamp",
    "serialize_event",
    "to_micros",
    "validate",
]

REVIEW_TOPIC: Final = "review-events"
USER_TOPIC: Final = "user-events"
TOPICS: Final = (REVIEW_TOPIC, USER_TOPIC)  # the reference sources' topics

# The reference bounds of event_time (declared in feature_store.reference): an
# event_time before this, or after its message's publish time plus the allowed clock
# skew, is a bad message: one event from a producer with a broken clock must never
# freeze its key (the stream measures lateness from a key's newest event, and
# newer-wins online writes refuse any row older than one labelled in the future).
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_CLOCK_SKEW: Final = timedelta(minutes=5)


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
