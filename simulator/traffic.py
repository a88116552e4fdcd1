"""A seeded, deterministic stream of review and user events for demos, tests and benchmarks.

`simulate(config)` yields `SimulatedMessage`s (topic, raw body, attributes, kind) in
arrival order. The world: users with home countries, a few IPs and devices each (some
households share an IP), businesses in eight categories with a popularity and a quality,
diurnal and weekly activity. Legitimate users log in, sign up, update profiles and write
reviews whose English text (composed from sentence templates per category and rating)
matches their rating. Fraud scenarios are mixed in:

- `boost`: a ring of new accounts sharing a few IPs and devices posts a burst of
  near-duplicate five-star reviews on one business within an hour or three;
- `campaign`: a ring posts near-duplicate one-star reviews against one business over a day;
- `spam`: one account posts near-duplicate promotional reviews on many businesses.

`review_flagged` events mostly target the fraudulent reviews. On top of the valid events,
shares of malformed messages (each with the reason `validate` will give), exact
re-deliveries (`duplicate`) and `late` messages (delivered `late_by` or more after their
event time) can be asked for. Every message is in event-time order except the late ones
and, when `redelivery_max` is positive, the duplicates (behind by at most that much).

Valid bodies are byte-for-byte the canonical form `serialize_event` writes. The columns
are drawn with numpy; only the final rendering of each body is per-event Python.
"""

from __future__ import annotations

import json
import logging
import random
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final

import numpy as np

from feature_store.errors import ConfigError
from feature_store.events import (
    REVIEW_TOPIC,
    TOPICS,
    USER_TOPIC,
    Reason,
    attributes_for,
    format_timestamp,
    from_micros,
    parse_event,
    serialize_event,
    to_micros,
)
from feature_store.reference import MAX_TEXT_CHARS
from simulator import vocabulary as vocab
from simulator.world import (
    COLUMNS,
    CREATED,
    FRAUD_LABELS,
    LOGIN,
    REASONS,
    REVIEW_NUMBERS,
    TYPE_NAMES,
    Array,
    Keys,
    Rows,
    World,
    diurnal_times,
    plan_valid_events,
)

logger = logging.getLogger(__name__)

DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_EVENTS: Final = 100_000
DEFAULT_DURATION: Final = timedelta(days=7)
DEFAULT_RATE: Final = 1.0  # events per second of event time
_CHUNK: Final = 32_768


class MessageKind(StrEnum):
    VALID = "valid"
    MALFORMED = "malformed"
    DUPLICATE = "duplicate"
    LATE = "late"


@dataclass(frozen=True, slots=True)
class SimulatedMessage:
    """One message as it would be published, with what the simulator knows about it."""

    topic: str
    raw: bytes
    attributes: dict[str, str]
    kind: MessageKind
    arrival_us: int  # position in the stream: when it is delivered, UTC microseconds
    defect: str | None = None  # for malformed messages: the reason `validate` gives
    fraud: str | None = None  # the fraud scenario that produced the event, if any

    @property
    def arrival(self) -> datetime:
        return from_micros(self.arrival_us)


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """What to simulate. Give at most two of `events`, `duration` and `rate`."""

    seed: int = 0
    start: datetime = DEFAULT_START
    duration: timedelta | None = None
    events: int | None = None  # messages in total, bad ones included
    rate: float | None = None  # mean messages per second of event time
    users: int = 10_000
    businesses: int = 1_000
    bad_share: float = 0.0
    duplicate_share: float = 0.0
    late_share: float = 0.0
    late_by: timedelta = timedelta(hours=2)  # late messages arrive 1-2x this after their time
    redelivery_max: timedelta = timedelta(0)  # duplicates arrive up to this after the original
    review_share: float = 0.3  # of valid events: review_created
    flag_share: float = 0.02  # of valid events: review_flagged
    profile_share: float = 0.03  # of valid events: profile_update
    fraud_share: float = 0.06  # of review_created: written by fraud scenarios
    new_user_share: float = 0.1  # of users: sign up during the span
    attribute_defects: bool = False  # malformed messages may also disagree with attributes
    # The number of the run's first review: reviews are numbered from it (`rv-...` is a
    # bijection of the number), so a run that goes on from another's traffic, seeded
    # apart, starts after that run's reviews instead of reusing their review ids.
    first_review: int = 0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            msg = f"start {self.start.isoformat()} must be timezone-aware"
            raise ConfigError(msg)
        if None not in (self.events, self.duration, self.rate):
            msg = f"give at most two of events ({self.events}), duration, rate ({self.rate})"
            raise ConfigError(msg)
        checks = {
            "events": self.events is None or self.events >= 0,
            "duration": self.duration is None or self.duration > timedelta(0),
            "rate": self.rate is None or self.rate > 0,
            "users": self.users >= 1,
            "businesses": self.businesses >= 1,
            "late_by": self.late_by > timedelta(0),
            "redelivery_max": self.redelivery_max >= timedelta(0),
            "first_review": 0 <= self.first_review < REVIEW_NUMBERS,
        }
        for name in ("bad_share", "duplicate_share", "late_share", "review_share"):
            checks[name] = 0.0 <= getattr(self, name) <= 1.0
        for name in ("flag_share", "profile_share", "fraud_share", "new_user_share"):
            checks[name] = 0.0 <= getattr(self, name) <= 0.5
        checks["shares"] = self.bad_share + self.duplicate_share + self.late_share <= 1.0
        checks["shares"] &= self.review_share + self.flag_share + self.profile_share <= 0.9
        for name, ok in checks.items():
            if not ok:
                value = getattr(self, name, None)
                msg = f"simulation setting `{name}` is out of range, got {value!r}"
                raise ConfigError(msg)

    def resolved(self) -> tuple[int, timedelta]:
        """The number of messages and the span of event time."""
        events, duration, rate = self.events, self.duration, self.rate
        if events is not None:
            if duration is None:
                duration = timedelta(seconds=events / rate) if rate else DEFAULT_DURATION
            return events, duration
        if duration is not None:
            return round(duration.total_seconds() * (rate or DEFAULT_RATE)), duration
        if rate is not None:
            return DEFAULT_EVENTS, timedelta(seconds=DEFAULT_EVENTS / rate)
        return DEFAULT_EVENTS, DEFAULT_DURATION


# ----------------------------------------------------------------------------- malformed

_COMMON_DEFECTS: Final = (
    Reason.NOT_UTF8,
    Reason.NOT_JSON,
    Reason.NOT_OBJECT,
    Reason.DUPLICATE_KEY,
    Reason.MISSING_FIELD,
    Reason.WRONG_TYPE,
    Reason.EMPTY_FIELD,
    Reason.BAD_EVENT_ID,
    Reason.UNKNOWN_EVENT_TYPE,
    Reason.NAIVE_TIMESTAMP,
    Reason.BAD_TIMESTAMP,
)
DEFECTS: Final = {
    REVIEW_TOPIC: (
        *_COMMON_DEFECTS,
        Reason.RATING_OUT_OF_RANGE,
        Reason.TEXT_TOO_LONG,
        Reason.BAD_LANGUAGE,
        Reason.BAD_REASON,
        Reason.FIELD_NOT_ALLOWED,
    ),
    USER_TOPIC: (*_COMMON_DEFECTS, Reason.BAD_COUNTRY),
}
_REQUIRED: Final = {
    REVIEW_TOPIC: (
        "event_id",
        "event_type",
        "event_time",
        "review_id",
        "user_id",
        "business_id",
        "rating",
        "text",
    ),
    USER_TOPIC: ("event_id", "event_type", "event_time", "user_id"),
}
_WRONG_TYPES: Final = {
    REVIEW_TOPIC: (("rating", "5"), ("rating", 4.5), ("rating", True), ("user_id", 12345)),
    USER_TOPIC: (("user_id", 12345), ("event_time", 1704067200), ("ip_hash", ["a", "b"])),
}
_DEFECT_VALUES: Final[dict[str, tuple[object, ...]]] = {
    Reason.NOT_OBJECT: ("a string", 42, None, True),
    Reason.BAD_EVENT_ID: ("", "x" * 129),
    Reason.BAD_TIMESTAMP: (
        "2024-13-01T00:00:00Z",
        "yesterday",
        "2024-02-30T10:00:00Z",
        "1704067200",
        "2024-05-01 10:00:00Z",
    ),
    Reason.RATING_OUT_OF_RANGE: (0, 6, 7, -1, 10),
    Reason.BAD_LANGUAGE: ("en_US", "English (US)", "12", "e"),
    Reason.BAD_REASON: ("scam", "Spam", "fake review", ""),
    Reason.BAD_COUNTRY: ("USA", "United States", "ZZ", "U1"),
}
_UNKNOWN_TYPES: Final = {
    REVIEW_TOPIC: ("review_deleted", "review_updated", "REVIEW_CREATED"),
    USER_TOPIC: ("logout", "password_reset", "Login"),
}


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _malformed(
    prng: random.Random, topic: str, defect: str, body: dict[str, object]
) -> tuple[bytes, dict[str, str]]:
    """`body` (a valid event) broken so that `validate` gives `defect`, and its attributes."""
    attrs = {name: str(body[name]) for name in ("event_type", "event_id", "event_time")}
    targets: dict[str, str] = {
        Reason.BAD_EVENT_ID: "event_id",
        Reason.BAD_TIMESTAMP: "event_time",
        Reason.RATING_OUT_OF_RANGE: "rating",
        Reason.BAD_LANGUAGE: "language",
        Reason.BAD_REASON: "reason",
        Reason.BAD_COUNTRY: "country",
    }
    target = targets.get(defect)
    if target is not None:
        body[target] = prng.choice(_DEFECT_VALUES[defect])
        if defect == Reason.BAD_REASON:
            body["event_type"] = "review_flagged"
    elif defect == Reason.NOT_UTF8:  # a producer that wrote Windows-1252
        body["text" if topic == REVIEW_TOPIC else "display_name"] = "Café crème, très bon"
        return json.dumps(body, ensure_ascii=False).encode("cp1252"), attrs
    elif defect == Reason.NOT_JSON:
        text = json.dumps(body, ensure_ascii=False)
        return text[: prng.randrange(1, len(text))].encode(), attrs
    elif defect == Reason.NOT_OBJECT:
        return _dumps(prng.choice([[body], *_DEFECT_VALUES[defect]])), attrs
    elif defect == Reason.DUPLICATE_KEY:
        return _dumps(body)[:-1] + b',"user_id":"u-other"}', attrs
    elif defect == Reason.MISSING_FIELD:
        del body[prng.choice(_REQUIRED[topic])]
    elif defect == Reason.WRONG_TYPE:
        name, value = prng.choice(_WRONG_TYPES[topic])
        body[name] = value
    elif defect == Reason.EMPTY_FIELD:
        body["user_id"] = ""
    elif defect == Reason.UNKNOWN_EVENT_TYPE:
        body["event_type"] = prng.choice(_UNKNOWN_TYPES[topic])
    elif defect == Reason.NAIVE_TIMESTAMP:
        body["event_time"] = str(body["event_time"])[: prng.choice((-1, -8))]
    elif defect == Reason.TEXT_TOO_LONG:
        size = MAX_TEXT_CHARS + 1 + prng.choice((0, prng.randrange(5000)))
        body["text"] = (f"{body['text']} " * (size // 10))[:size]
    elif defect == Reason.FIELD_NOT_ALLOWED:
        body["reason"] = prng.choice(REASONS)
    elif defect == Reason.ATTRIBUTE_MISMATCH:
        name = prng.choice(("event_type", "event_id", "event_time"))
        attrs[name] = {
            "event_type": "review_flagged" if topic == REVIEW_TOPIC else "signup",
            "event_id": f"{attrs['event_id']}-0",
            "event_time": "1999-12-31T23:59:59Z",
        }[name]
    return _dumps(body), attrs


# ----------------------------------------------------------------------------- rendering

Rendered = tuple[str, bytes, dict[str, str], str | None]  # topic, raw, attributes, fraud


def _ids(prefix: str, count: int, rng: np.random.Generator) -> list[str]:
    width = max(6, len(str(count - 1)))
    return [f"{prefix}{i:0{width}d}" for i in rng.permutation(count).tolist()]


class _Renderer:
    """Turns rows into canonical bodies; ids, hashes and texts are made here, lazily."""

    def __init__(
        self,
        rng: np.random.Generator,
        rows: Rows,
        world: World,
        *,
        keys: Keys,
        texts: list[str],
        seed: int,
        n_ids: int,
    ) -> None:
        self.rows, self.world, self.texts = rows, world, texts
        self.pools = vocab.TextPools(seed)
        self.user_ids = _ids("u", world.user_weight.size, rng)
        self.business_ids = _ids("b", world.popularity.size, rng)
        self.ip_key = rng.integers(0, 2**63, size=keys.ips + 1)
        self.device_key = rng.integers(0, 2**48, size=keys.devices + 1)
        self.event_key = rng.integers(0, 2**63, size=n_ids)
        self.prng = random.Random(seed + 1)

    def event_id(self, k: int) -> str:
        return f"ev-{int(self.event_key[k]):016x}-{k:08x}"

    def valid(self, refs: Array) -> list[Rendered]:
        """The canonical bodies of valid rows `refs`, with attributes and fraud labels."""
        col = {name: self.rows[name][refs] for name in COLUMNS}
        stamps = np.datetime_as_string(col["t"].astype("datetime64[us]"), unit="us").tolist()
        keys = self.event_key[refs].tolist()
        fields = [""] * refs.size
        on_user_topic = col["etype"] >= LOGIN
        for mask, render in (
            (on_user_topic, self._user_fields),
            (~on_user_topic, self._review_fields),
        ):
            at = np.flatnonzero(mask)
            part = {name: column[at] for name, column in col.items()}
            for i, text in zip(at.tolist(), render(part), strict=True):
                fields[i] = text
        out: list[Rendered] = []
        for k, key, stamp, etype, rest, fraud in zip(
            refs.tolist(),
            keys,
            stamps,
            col["etype"].tolist(),
            fields,
            col["fraud"].tolist(),
            strict=True,
        ):
            eid, ts, kind = f"ev-{key:016x}-{k:08x}", f"{stamp}Z", TYPE_NAMES[etype]
            raw = f'{{"event_id":"{eid}","event_type":"{kind}","event_time":"{ts}",{rest}}}'
            attrs = {"event_type": kind, "event_id": eid, "event_time": ts}
            topic = USER_TOPIC if etype >= LOGIN else REVIEW_TOPIC
            out.append((topic, raw.encode(), attrs, FRAUD_LABELS[fraud]))
        return out

    def _ip_hashes(self, ips: Array) -> list[str | None]:
        keys = np.where(ips >= 0, self.ip_key[ips], -1).tolist()
        return [f"{key:016x}" if key >= 0 else None for key in keys]

    def _user_fields(self, col: Rows) -> Iterator[str]:
        for user, ip, country in zip(
            col["user"].tolist(), self._ip_hashes(col["ip"]), col["country"].tolist(), strict=True
        ):
            text = f'"user_id":"{self.user_ids[user]}"'
            if ip is not None:
                text += f',"ip_hash":"{ip}"'
            if country >= 0:
                text += f',"country":"{vocab.COUNTRIES[country]}"'
            yield text

    def _review_fields(self, col: Rows) -> Iterator[str]:
        devices = np.where(col["device"] >= 0, self.device_key[col["device"]], -1).tolist()
        categories = self.world.category[np.maximum(col["business"], 0)].tolist()
        # a bijection of the numbers below REVIEW_NUMBERS (the multiplier is odd)
        reviews = ((col["review"] * 0x9E3779B1) & (REVIEW_NUMBERS - 1)).tolist()
        for (
            etype,
            user,
            business,
            review,
            category,
            rating,
            lang,
            text_id,
            rnd,
            ip,
            device,
            reason,
        ) in zip(
            col["etype"].tolist(),
            col["user"].tolist(),
            col["business"].tolist(),
            reviews,
            categories,
            col["rating"].tolist(),
            col["lang"].tolist(),
            col["text"].tolist(),
            col["rnd"].tolist(),
            self._ip_hashes(col["ip"]),
            devices,
            col["reason"].tolist(),
            strict=True,
        ):
            text = (
                f'"review_id":"rv-{review:08x}","user_id":"{self.user_ids[user]}",'
                f'"business_id":"{self.business_ids[business]}"'
            )
            if etype == CREATED:
                language = vocab.LANGUAGES[lang]
                content = (
                    self.texts[text_id]
                    if text_id >= 0
                    else self.pools.compose(category, rating, language, rnd)
                )
                text += f',"rating":{rating},"text":"{content}","language":"{language}"'
            else:
                text += ',"language":"und"'
            if ip is not None:
                text += f',"ip_hash":"{ip}"'
            if device >= 0:
                text += f',"device_id":"dev-{device:012x}"'
            if reason >= 0:
                text += f',"reason":"{REASONS[reason]}"'
            yield text

    def malformed(self, k: int, arrival: int, attribute_defects: bool) -> Rendered:
        prng = self.prng
        topic = prng.choice(TOPICS)
        defects = DEFECTS[topic] + ((Reason.ATTRIBUTE_MISMATCH,) if attribute_defects else ())
        defect = prng.choice(defects)
        body: dict[str, object] = {
            "event_id": self.event_id(k),
            "event_type": "review_created" if topic == REVIEW_TOPIC else "login",
            "event_time": format_timestamp(from_micros(arrival)),
        }
        user = prng.choice(self.user_ids)
        if topic == REVIEW_TOPIC:
            rating = prng.randint(1, 5)
            category = prng.randrange(len(vocab.CATEGORIES))
            text = self.pools.compose(category, rating, "en", prng.getrandbits(62))
            body |= {
                "review_id": f"rv-x{k:08x}",
                "user_id": user,
                "business_id": prng.choice(self.business_ids),
                "rating": rating,
                "text": json.loads(f'"{text}"'),
                "language": "en",
            }
        else:
            body |= {
                "user_id": user,
                "ip_hash": f"{prng.getrandbits(63):016x}",
                "country": prng.choice(vocab.COUNTRIES),
            }
        raw, attrs = _malformed(prng, topic, defect, body)
        return topic, raw, attrs, defect


# ----------------------------------------------------------------------------- the stream

_VALID, _LATE, _DUPLICATE, _MALFORMED = range(4)
_KINDS: Final = (MessageKind.VALID, MessageKind.LATE, MessageKind.DUPLICATE, MessageKind.MALFORMED)


def _schedule(
    rng: np.random.Generator,
    config: SimulationConfig,
    t: Array,
    *,
    n_late: int,
    n_dup: int,
    n_bad: int,
    start: int,
    span: int,
) -> tuple[Array, Array, Array]:
    """Arrival order of every message: (arrival time, kind code, row or malformed number)."""
    late_by, end = config.late_by // timedelta(microseconds=1), start + span
    candidates = np.flatnonzero(t <= end - late_by)
    if candidates.size < n_late:
        logger.warning("only %d of %d late messages fit in the span", candidates.size, n_late)
    late = np.sort(rng.permutation(candidates)[:n_late])
    late_arrival = np.minimum(t[late] + late_by + rng.integers(0, late_by + 1, late.size), end)
    on_time = np.ones(t.size, dtype=bool)
    on_time[late] = False
    on_time_rows = np.flatnonzero(on_time)
    if on_time_rows.size == 0 and n_dup:
        logger.warning("no valid message to duplicate; %d duplicates left out", n_dup)
        n_dup = 0
    originals = rng.choice(on_time_rows, size=n_dup, replace=n_dup > on_time_rows.size)
    redelivery = config.redelivery_max // timedelta(microseconds=1)
    dup_arrival = t[originals] + rng.integers(0, redelivery + 1, size=n_dup)
    arrival = np.concatenate(
        [t[on_time_rows], late_arrival, dup_arrival, diurnal_times(rng, n_bad, start, span)]
    )
    kind = np.repeat(np.arange(4), [on_time_rows.size, late.size, n_dup, n_bad])
    ref = np.concatenate([on_time_rows, late, originals, np.arange(n_bad) + t.size])
    order = np.argsort(arrival, kind="stable")
    return arrival[order], kind[order], ref[order]


def simulate(config: SimulationConfig) -> Iterator[SimulatedMessage]:
    """The simulated stream, in arrival order; the same config gives the same bytes."""
    n, duration = config.resolved()
    start, span = to_micros(config.start), max(1, duration // timedelta(microseconds=1))
    rng = np.random.default_rng(config.seed)
    n_bad, n_dup = round(n * config.bad_share), round(n * config.duplicate_share)
    n_valid = n - n_bad - n_dup
    rows, world, keys, texts = plan_valid_events(rng, config, n_valid, start, span)
    n_late = min(round(n * config.late_share), n_valid)
    arrival, kind, ref = _schedule(
        rng, config, rows["t"], n_late=n_late, n_dup=n_dup, n_bad=n_bad, start=start, span=span
    )
    renderer = _Renderer(
        rng, rows, world, keys=keys, texts=texts, seed=config.seed, n_ids=n_valid + n_bad
    )
    logger.info(
        "simulating %d messages (%d valid, %d late, %d duplicates, %d malformed)",
        arrival.size,
        n_valid,
        n_late,
        kind.size - n_valid - n_bad,
        n_bad,
    )
    pending = np.bincount(ref[kind == _DUPLICATE], minlength=n_valid)
    cache: dict[int, Rendered] = {}
    for first in range(0, arrival.size, _CHUNK):
        chunk = slice(first, first + _CHUNK)
        kinds, refs, arrivals = kind[chunk], ref[chunk], arrival[chunk]
        fresh = refs[kinds <= _LATE]
        batch = renderer.valid(fresh)
        for i in np.flatnonzero(pending[fresh] > 0).tolist():
            cache[int(fresh[i])] = batch[i]  # an original, to be delivered again later
        rendered = iter(batch)
        for code, row, at in zip(kinds.tolist(), refs.tolist(), arrivals.tolist(), strict=True):
            defect = None
            if code <= _LATE:
                topic, raw, attrs, fraud = next(rendered)
            elif code == _DUPLICATE:
                topic, raw, attrs, fraud = cache[row]
                pending[row] -= 1
                if not pending[row]:
                    del cache[row]
            else:
                topic, raw, attrs, defect = renderer.malformed(row, at, config.attribute_defects)
                fraud = None
            yield SimulatedMessage(topic, raw, dict(attrs), _KINDS[code], at, defect, fraud)


# ----------------------------------------------------------------------------- outputs


class Retimer:
    """Rewrites event times to the wall clock as messages go out (a live demo).

    A message's new time is `now` minus how far behind the stream it was (zero for
    on-time messages, the lateness for late ones), so order and lateness are kept.
    Duplicates get the very bytes their original was rewritten to. Malformed messages
    pass unchanged.
    """

    def __init__(self, remember: int = 200_000) -> None:
        self._remember = remember
        self._rewritten: OrderedDict[bytes, tuple[bytes, dict[str, str]]] = OrderedDict()
        self._last = datetime.min.replace(tzinfo=UTC)

    def __call__(self, message: SimulatedMessage, now: datetime) -> SimulatedMessage:
        if message.kind is MessageKind.MALFORMED:
            return message
        self._last = now = max(now, self._last)
        known = self._rewritten.get(message.raw)
        if known is None:
            event = parse_event(message.topic, message.raw)
            behind = from_micros(message.arrival_us) - event.event_time
            event = replace(event, event_time=now - behind)
            known = (serialize_event(event), attributes_for(event))
            self._rewritten[message.raw] = known
            if len(self._rewritten) > self._remember:
                self._rewritten.popitem(last=False)
        raw, attrs = known
        return replace(message, raw=raw, attributes=dict(attrs), arrival_us=to_micros(now))


def reviews_created(messages: Iterable[SimulatedMessage]) -> int:
    """How many reviews a run created (re-deliveries and malformed messages aside): the
    `first_review` of a run that goes on from it."""
    return sum(
        m.kind in (MessageKind.VALID, MessageKind.LATE)
        and m.topic == REVIEW_TOPIC
        and m.attributes.get("event_type") == "review_created"
        for m in messages
    )


def event_file(out_dir: Path, topic: str) -> Path:
    return out_dir / f"{topic}.jsonl"


def write_jsonl(messages: Iterable[SimulatedMessage], out_dir: Path | str) -> dict[str, Path]:
    """One JSON-lines file per topic (`<topic>.jsonl`), one raw body per line, as published.

    Attributes are not part of event files, so an attribute-only defect does not survive.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {topic: event_file(out, topic) for topic in TOPICS}
    files = {topic: path.open("wb") for topic, path in paths.items()}
    try:
        for message in messages:
            if b"\n" in message.raw:
                msg = f"message {message.raw[:80]!r} holds a newline; it cannot be one JSON line"
                raise ValueError(msg)
            files[message.topic].write(message.raw + b"\n")
    finally:
        for file in files.values():
            file.close()
    return paths
