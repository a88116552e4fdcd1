"""One declared field's rules, compiled: its type, presence, limits, enums, patterns and
timestamp bounds, checked on a parsed value (`feature_store.events.Contract` holds one
per field)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from feature_store.definitions import ENVELOPE, DType, EventField
from feature_store.errors import InvalidEventError
from feature_store.event_json import _show, _wrong_type
from feature_store.event_reasons import Reason
from feature_store.timestamps import _utc, format_timestamp, parse_timestamp

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
