"""Event time as the contract writes it: RFC 3339 with an explicit offset in, the
canonical UTC text out, and exact microseconds since the epoch (`feature_store.events`
documents the rules and re-exports these)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from feature_store.errors import InvalidEventError
from feature_store.event_json import _show
from feature_store.event_reasons import Reason

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?([Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)
_MAX_FRACTION_DIGITS = 9


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
