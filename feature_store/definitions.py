"""The feature definitions API: frozen, keyword-only, self-validating declarations.

Users declare entities, sources, windows, aggregations, features, views and services
once; the `Registry` checks the cross-references and generates everything else (Feast
objects, table schemas, the jobs' aggregation plans) from the same objects.

    user_review_stats = FeatureView(
        name="user_review_stats", entity="user", source="review-events",
        where=Condition(field="event_type", equals="review_created"),
        features=(
            Feature(name="review_count_1h", aggregation=count(), window="1h"),
            Feature(name="avg_rating_7d", aggregation=mean("rating"), window="7d"),
        ),
    )
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TypeVar

from feature_store.errors import FeatureDefinitionError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TOPIC = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_WINDOW = re.compile(r"^(\d+)(s|m|h|d|w)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _fail(message: str) -> None:
    raise FeatureDefinitionError(message)


def _check_name(kind: str, value: str, pattern: re.Pattern[str] = _NAME) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        msg = f"{kind} name must match {pattern.pattern}, got {value!r}"
        _fail(msg)


class DType(Enum):
    """Value types of event fields and features (mapped to Feast and BigQuery types)."""

    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    STRING = "STRING"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    FLOAT32_VECTOR = "FLOAT32_VECTOR"

    @property
    def numeric(self) -> bool:
        return self in (DType.INT64, DType.FLOAT64, DType.TIMESTAMP)


@dataclass(frozen=True, kw_only=True)
class Entity:
    """Something features describe, identified by one string join key."""

    name: str
    join_key: str
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("entity", self.name)
        _check_name(f"entity `{self.name}` join key", self.join_key)


Scalar = str | int | float | bool
EMPTY_POLICIES = ("value", "absent", "invalid")
CASES = ("", "upper", "lower")
# The fields every event carries; the parser always requires them.
ENVELOPE = {"event_id": DType.STRING, "event_type": DType.STRING, "event_time": DType.TIMESTAMP}
# Names the pipelines add to an event's record: no declared field may take them.
RESERVED = ("event_time_iso", "topic", "publish_us", "history")
_SCALAR_TYPES: dict[DType, tuple[type, ...]] = {
    DType.STRING: (str,),
    DType.INT64: (int,),
    DType.FLOAT64: (int, float),
    DType.BOOL: (bool,),
}


@dataclass(frozen=True, kw_only=True)
class EventField:
    """A field of a source's events: its type and the rules of the event contract.

    The parser (`feature_store.events.Contract`) is generated from these declarations:

    - `required`: absent or null is a dead letter; `required_for`: only on these event
      types; `only_for`: the field may appear only on these event types.
    - `default`: the value when absent; `empty`: what an empty string means (`value`,
      `absent` or `invalid`, a dead letter).
    - strings: `min_length` / `max_length` (characters), `one_of`, `pattern` (a full
      match, ASCII), `case` (`upper` / `lower`, applied before the checks);
      integers and floats: `min_value` / `max_value`; integers also one_of.
    - timestamps (RFC 3339 with an offset): `earliest`, and `bounded_by_receipt` (not
      after the message's receipt plus the allowed clock skew).
    - `invalid_reason`: the dead-letter reason when a value breaks its limits, enum or
      pattern (default `out_of_range` for limits, `bad_value` for enums and patterns);
      `expected` names a valid value in messages (`"a BCP 47 tag"`).

    Unknown fields in a message are kept in the raw archive and ignored by features.
    """

    name: str
    dtype: DType
    required: bool = False
    required_for: tuple[str, ...] = ()
    only_for: tuple[str, ...] = ()
    default: Scalar | None = None
    empty: str = "value"
    min_length: int | None = None
    max_length: int | None = None
    min_value: int | float | None = None
    max_value: int | float | None = None
    one_of: tuple[Scalar, ...] = ()
    pattern: str | None = None
    case: str = ""
    earliest: datetime | None = None
    bounded_by_receipt: bool = False
    invalid_reason: str = ""
    expected: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("event field", self.name)
        if not isinstance(self.dtype, DType):
            msg = f"event field `{self.name}` dtype must be a DType, got {self.dtype!r}"
            _fail(msg)
        for problem in _field_problems(self):
            msg = f"event field `{self.name}` ({self.dtype.value}): {problem}"
            _fail(msg)

    @property
    def conditional(self) -> bool:
        """Whether the field's presence depends on the event type."""
        return bool(self.required_for or self.only_for)


def _field_problems(f: EventField) -> list[str]:
    """What is wrong with an event field's rules (empty when nothing)."""
    string, number = f.dtype is DType.STRING, f.dtype in (DType.INT64, DType.FLOAT64)
    problems = [p for p in (_presence_problem(f), _default_problem(f)) if p]
    if f.empty not in EMPTY_POLICIES or (f.empty != "value" and not string):
        problems.append(f"empty must be one of {EMPTY_POLICIES} (strings only), got {f.empty!r}")
    if f.case not in CASES or (f.case and not string):
        problems.append(f"case must be one of {CASES} (strings only), got {f.case!r}")
    problems += _limit_problems(f, "length", f.min_length, f.max_length, string, int)
    problems += _limit_problems(f, "value", f.min_value, f.max_value, number, (int, float))
    if f.one_of and (f.dtype not in (DType.STRING, DType.INT64) or not _all_of_type(f, f.one_of)):
        problems.append(f"one_of needs strings or integers of the field's type, got {f.one_of!r}")
    if f.pattern is not None:
        problems += _pattern_problems(f.pattern, string)
    timestamp = f.dtype is DType.TIMESTAMP
    if f.earliest is not None and (
        not timestamp or not isinstance(f.earliest, datetime) or f.earliest.tzinfo is None
    ):
        problems.append(f"earliest must be an aware datetime on a TIMESTAMP, got {f.earliest!r}")
    if f.bounded_by_receipt and not timestamp:
        problems.append("bounded_by_receipt applies to TIMESTAMP fields only")
    if f.invalid_reason and not _NAME.match(f.invalid_reason):
        problems.append(f"invalid_reason must match {_NAME.pattern}, got {f.invalid_reason!r}")
    return problems


def _presence_problem(f: EventField) -> str:
    if not isinstance(f.required, bool):
        return f"required must be True or False, got {f.required!r}"
    for name, kinds in (("required_for", f.required_for), ("only_for", f.only_for)):
        if not isinstance(kinds, tuple) or not all(isinstance(k, str) and k for k in kinds):
            return f"{name} must be a tuple of event types, got {kinds!r}"
    if f.required and f.conditional:
        return f"a required field takes no required_for / only_for, got {f.required_for!r}"
    if f.only_for and not set(f.required_for) <= set(f.only_for):
        return f"required_for {f.required_for!r} names types outside only_for {f.only_for!r}"
    return ""


def _default_problem(f: EventField) -> str:
    if f.default is None:
        return ""
    if f.required:
        return f"a required field takes no default, got {f.default!r}"
    types = _SCALAR_TYPES.get(f.dtype)
    if types is None or not _all_of_type(f, (f.default,)):
        return f"default {f.default!r} is not a {f.dtype.value}"
    return ""


def _all_of_type(f: EventField, values: tuple[Scalar, ...]) -> bool:
    types = _SCALAR_TYPES.get(f.dtype, ())
    bool_ok = f.dtype is DType.BOOL
    return all(isinstance(v, types) and (bool_ok or not isinstance(v, bool)) for v in values)


def _limit_problems(
    f: EventField,
    what: str,
    low: float | None,
    high: float | None,
    applies: bool,
    types: type | tuple[type, ...],
) -> list[str]:
    given = [v for v in (low, high) if v is not None]
    if not given:
        return []
    if not applies:
        return [f"min_{what} / max_{what} do not apply to {f.dtype.value}"]
    if any(isinstance(v, bool) or not isinstance(v, types) for v in given):
        return [f"min_{what} / max_{what} must be numbers, got {low!r} and {high!r}"]
    if what == "length" and any(v < 0 for v in given):
        return [f"lengths must not be negative, got {low!r} and {high!r}"]
    if low is not None and high is not None and low > high:
        return [f"min_{what} {low!r} is above max_{what} {high!r}"]
    return []


def _pattern_problems(pattern: str, string: bool) -> list[str]:
    if not string or not isinstance(pattern, str):
        return [f"pattern applies to STRING fields only, got {pattern!r}"]
    try:
        re.compile(pattern, re.ASCII)
    except re.error as exc:
        return [f"pattern {pattern!r} does not compile: {exc}"]
    return []


@dataclass(frozen=True, kw_only=True)
class Source:
    """A Pub/Sub topic of events, its raw archive table and the fields its events carry."""

    name: str
    topic: str
    fields: tuple[EventField, ...]
    event_types: tuple[str, ...]
    archive_table: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("source", self.name, _TOPIC)
        _check_name(f"source `{self.name}` topic", self.topic, _TOPIC)
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"source `{self.name}` declares fields more than once: {dupes}"
            _fail(msg)
        reserved = sorted(set(names) & set(RESERVED))
        if reserved:
            msg = f"source `{self.name}` declares fields the pipelines reserve: {reserved}"
            _fail(msg)
        for required, dtype in ENVELOPE.items():
            declared = self.field(required)
            if declared is None:
                msg = f"source `{self.name}` must declare the `{required}` field"
                _fail(msg)
            elif declared.dtype is not dtype or declared.conditional:
                msg = (
                    f"source `{self.name}` field `{required}` must be a {dtype.value} on "
                    f"every event, got {declared.dtype.value} ({declared.required_for!r}, "
                    f"{declared.only_for!r})"
                )
                _fail(msg)
        if not self.event_types or len(set(self.event_types)) != len(self.event_types):
            msg = (
                f"source `{self.name}` must list its event types once each, "
                f"got {self.event_types!r}"
            )
            _fail(msg)
        for f in self.fields:
            unknown = sorted(set(f.required_for + f.only_for) - set(self.event_types))
            if unknown:
                msg = (
                    f"source `{self.name}` field `{f.name}` names event types {unknown} "
                    f"that are not among {list(self.event_types)}"
                )
                _fail(msg)

    def field(self, name: str) -> EventField | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def archive(self) -> str:
        """Archive table name (defaults to the topic with underscores)."""
        return self.archive_table or self.topic.replace("-", "_")


@dataclass(frozen=True, kw_only=True)
class Window:
    """A sliding window `t - duration < event_time <= t`; no duration means unbounded."""

    duration: timedelta | None

    def __post_init__(self) -> None:
        if self.duration is not None:
            if not isinstance(self.duration, timedelta):
                msg = f"window duration must be a timedelta or None, got {self.duration!r}"
                _fail(msg)
            if self.duration <= timedelta(0):
                msg = f"window must be positive, got {self.duration}"
                _fail(msg)
            if self.duration % timedelta(microseconds=1):
                msg = f"window must be a whole number of microseconds, got {self.duration}"
                _fail(msg)

    @classmethod
    def parse(cls, value: str | timedelta | Window | None) -> Window:
        """`"1h"`, `"7d"`, `"30m"`, a timedelta, or None / `"unbounded"`."""
        if isinstance(value, Window):
            return value
        if value is None or value == "unbounded":
            return cls(duration=None)
        if isinstance(value, timedelta):
            return cls(duration=value)
        match = _WINDOW.match(value) if isinstance(value, str) else None
        if not match:
            msg = f"window must look like 1h, 24h, 7d or be unbounded, got {value!r}"
            raise FeatureDefinitionError(msg)
        return cls(duration=timedelta(seconds=int(match[1]) * _UNITS[match[2]]))

    @property
    def micros(self) -> int | None:
        if self.duration is None:
            return None
        return self.duration // timedelta(microseconds=1)

    @property
    def label(self) -> str:
        if self.duration is None:
            return "unbounded"
        seconds = int(self.duration.total_seconds())
        for unit in ("d", "h", "m"):
            if seconds % _UNITS[unit] == 0:
                return f"{seconds // _UNITS[unit]}{unit}"
        return f"{seconds}s"


@dataclass(frozen=True, kw_only=True)
class Condition:
    """An event filter: `field == equals` (or `field in one_of`)."""

    field: str
    equals: str | int | float | bool | None = None
    one_of: tuple[str | int | float | bool, ...] = ()

    def __post_init__(self) -> None:
        _check_name("condition field", self.field)
        if (self.equals is None) == (not self.one_of):
            msg = f"condition on `{self.field}` needs exactly one of equals= or one_of="
            _fail(msg)

    @property
    def values(self) -> tuple[str | int | float | bool, ...]:
        return self.one_of if self.one_of else (self.equals,)  # type: ignore[return-value]

    def describe(self) -> str:
        if self.one_of:
            return f"{self.field} in {list(self.one_of)}"
        return f"{self.field} = {self.equals!r}"


@dataclass(frozen=True, kw_only=True)
class AggregationKind:
    """What a declaration may say about an aggregation kind and what it yields.

    The built-in kinds, and how each computes, are `feature_store.core.kinds.Kind`
    objects (a `Kind` is an `AggregationKind`); `register_kind` with metadata alone makes
    a kind declarable, and its computation plugs in with `kinds.register_implementation`.
    """

    name: str
    needs_field: bool
    numeric_field: bool = False
    field_shape: str = "scalar"  # "scalar", "vector" or "any"
    output: DType | None = None  # None: the field's own dtype
    needs_share_where: bool = False

    @property
    def foldable(self) -> bool:
        """Whether expired events fold into a summary (metadata alone: no)."""
        return False


_KINDS: dict[str, AggregationKind] = {}
_K = TypeVar("_K", bound=AggregationKind)


def register_kind(kind: _K) -> _K:
    """Make an aggregation kind available to declarations (the one registry of kinds)."""
    _check_name("aggregation kind", kind.name)
    _KINDS[kind.name] = kind
    return kind


def aggregation_kind(name: str) -> AggregationKind:
    if name not in _KINDS:
        msg = f"unknown aggregation kind {name!r}; known: {sorted(_KINDS)}"
        raise FeatureDefinitionError(msg)
    return _KINDS[name]


@dataclass(frozen=True, kw_only=True)
class Aggregation:
    """`kind` over `field` of the events matching `where` (all of the view's events if None).

    `share` is the fraction of the `where` events that also match `share_where`.
    """

    kind: str
    field: str | None = None
    where: Condition | None = None
    share_where: Condition | None = None

    def __post_init__(self) -> None:
        spec = aggregation_kind(self.kind)
        if spec.needs_field and not self.field:
            msg = f"aggregation `{self.kind}` needs a field"
            _fail(msg)
        if not spec.needs_field and self.field:
            msg = f"aggregation `{self.kind}` takes no field, got {self.field!r}"
            _fail(msg)
        if spec.needs_share_where != (self.share_where is not None):
            need = "needs" if spec.needs_share_where else "takes no"
            msg = f"aggregation `{self.kind}` {need} share_where"
            _fail(msg)

    @property
    def spec(self) -> AggregationKind:
        return aggregation_kind(self.kind)

    def describe(self) -> str:
        text = f"{self.kind}({self.field or ''})"
        if self.share_where:
            text = f"share({self.share_where.describe()})"
        return text + (f" where {self.where.describe()}" if self.where else "")


def count(where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="count", where=where)


def sum_(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="sum", field=field, where=where)


def mean(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="mean", field=field, where=where)


def stddev(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="stddev", field=field, where=where)


def count_distinct(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="count_distinct", field=field, where=where)


def max_(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="max", field=field, where=where)


def min_(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="min", field=field, where=where)


def last(field: str, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="last", field=field, where=where)


def share(share_where: Condition, where: Condition | None = None) -> Aggregation:
    return Aggregation(kind="share", where=where, share_where=share_where)


@dataclass(frozen=True, kw_only=True)
class DerivedField:
    """A per-event value computed by a pipeline stage from another field.

    `producer` is `length` (characters of a string, computed in the feature stage),
    `model:<name>` (written by the inference stage; a vector when `dim` is set), or
    `pca:<input>:<dim>` (a PCA reduction of the vector field `input` to `dim` dimensions,
    fitted by the batch job on a stated sample and applied by both jobs with the same
    saved matrix; see `feature_store.core.projection`).
    """

    name: str
    dtype: DType
    input: str
    producer: str
    dim: int | None = None

    def __post_init__(self) -> None:
        _check_name("derived field", self.name)
        if (
            self.producer != "length"
            and not re.match(r"^model:[a-z][a-z0-9_-]*$", self.producer)
            and not re.match(r"^pca:[a-z][a-z0-9_]*:[1-9][0-9]*$", self.producer)
        ):
            msg = (
                f"derived field `{self.name}` producer must be `length`, `model:<name>` or "
                f"`pca:<input>:<dim>`, got {self.producer!r}"
            )
            _fail(msg)
        reduction = self.projection
        if reduction is not None and (
            reduction != (self.input, self.dim) or self.dtype is not DType.FLOAT32_VECTOR
        ):
            msg = (
                f"derived field `{self.name}`: producer {self.producer!r} needs input "
                f"{reduction[0]!r}, dtype float32 vector and dim {reduction[1]}, got input "
                f"{self.input!r}, {self.dtype.value} and dim {self.dim}"
            )
            _fail(msg)
        if (self.dtype is DType.FLOAT32_VECTOR) != (self.dim is not None):
            msg = (
                f"derived field `{self.name}` needs dim exactly when it is a vector, "
                f"got dim={self.dim}"
            )
            _fail(msg)
        if self.dim is not None and self.dim <= 0:
            msg = f"derived field `{self.name}` dim must be positive, got {self.dim}"
            _fail(msg)

    @property
    def model(self) -> str | None:
        return self.producer.split(":", 1)[1] if self.producer.startswith("model:") else None

    @property
    def projection(self) -> tuple[str, int] | None:
        """(input field, dim) of a `pca:<input>:<dim>` producer; None for the others."""
        if not self.producer.startswith("pca:"):
            return None
        _, source_field, dim = self.producer.split(":")
        return source_field, int(dim)


@dataclass(frozen=True, kw_only=True)
class Feature:
    """One named value of a view: an aggregation over a sliding window."""

    name: str
    aggregation: Aggregation
    window: Window | str | timedelta | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature", self.name)
        if not isinstance(self.aggregation, Aggregation):
            msg = (
                f"feature `{self.name}` aggregation must be an Aggregation, "
                f"got {self.aggregation!r}"
            )
            _fail(msg)
        object.__setattr__(self, "window", Window.parse(self.window))

    @property
    def window_spec(self) -> Window:
        assert isinstance(self.window, Window)  # normalised in __post_init__
        return self.window


@dataclass(frozen=True, kw_only=True)
class FeatureView:
    """Features of one entity computed from one source's events (those matching `where`)."""

    name: str
    entity: str
    source: str
    features: tuple[Feature, ...]
    where: Condition | None = None
    description: str = ""
    online: bool = True

    def __post_init__(self) -> None:
        _check_name("feature view", self.name)
        if not self.features:
            msg = f"feature view `{self.name}` has no features"
            _fail(msg)
        names = [f.name for f in self.features]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"feature view `{self.name}` declares features more than once: {dupes}"
            _fail(msg)

    def feature(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        names = [f.name for f in self.features]
        msg = f"feature view `{self.name}` has no feature {name!r}; it has {names}"
        raise FeatureDefinitionError(msg)

    @property
    def longest_window_micros(self) -> int | None:
        """The longest finite window (None when all are unbounded)."""
        finite = [w for f in self.features if (w := f.window_spec.micros) is not None]
        return max(finite) if finite else None


@dataclass(frozen=True, kw_only=True)
class FeatureService:
    """A named set of features a model reads: `view` (all of it) or `view:feature`."""

    name: str
    features: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("feature service", self.name)
        if not self.features:
            msg = f"feature service `{self.name}` lists no features"
            _fail(msg)
