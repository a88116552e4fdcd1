"""The simulator: deterministic, valid where it says so, bad where asked, fraud inside."""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feature_store.errors import ConfigError
from feature_store.events import (
    REVIEW_TOPIC,
    USER_TOPIC,
    DeadLetter,
    Event,
    parse_event,
    serialize_event,
    validate,
)
from simulator.traffic import (
    MessageKind,
    Retimer,
    SimulatedMessage,
    SimulationConfig,
    reviews_created,
    simulate,
    write_jsonl,
)

EVENTS = 40_000
CONFIG = SimulationConfig(
    events=EVENTS,
    duration=timedelta(days=3),
    users=3_000,
    businesses=300,
    seed=11,
    bad_share=0.04,
    duplicate_share=0.03,
    late_share=0.02,
    attribute_defects=True,
)


@pytest.fixture(scope="module")
def messages() -> list[SimulatedMessage]:
    return list(simulate(CONFIG))


@pytest.fixture(scope="module")
def events(messages: list[SimulatedMessage]) -> list[tuple[Event, str | None]]:
    """Each valid event once (late ones included, re-deliveries not), with its fraud label."""
    return [
        (parse_event(m.topic, m.raw), m.fraud)
        for m in messages
        if m.kind in (MessageKind.VALID, MessageKind.LATE)
    ]


@pytest.fixture(scope="module")
def reviews(
    events: list[tuple[Event, str | None]],
) -> list[tuple[Event, str | None]]:
    return [
        (e, label)
        for e, label in events
        if e.topic == REVIEW_TOPIC and e.event_type == "review_created"
    ]


# ----------------------------------------------------------------------------- determinism


def _digest(config: SimulationConfig) -> list[tuple[str, bytes, dict[str, str], str]]:
    return [(m.topic, m.raw, m.attributes, m.kind) for m in simulate(config)]


def test_same_seed_gives_the_same_stream() -> None:
    small = SimulationConfig(
        events=3_000,
        users=200,
        businesses=30,
        seed=5,
        bad_share=0.1,
        duplicate_share=0.1,
        late_share=0.1,
    )
    assert _digest(small) == _digest(small)
    other = _digest(SimulationConfig(events=3_000, users=200, businesses=30, seed=6))
    assert other != _digest(small)


# ----------------------------------------------------------------------------- counts


def test_total_and_shares_are_as_configured(messages: list[SimulatedMessage]) -> None:
    kinds = Counter(m.kind for m in messages)
    assert len(messages) == EVENTS
    assert kinds[MessageKind.MALFORMED] == pytest.approx(0.04 * EVENTS, rel=0.01)
    assert kinds[MessageKind.DUPLICATE] == pytest.approx(0.03 * EVENTS, rel=0.01)
    assert kinds[MessageKind.LATE] == pytest.approx(0.02 * EVENTS, rel=0.01)
    topics = Counter(m.topic for m in messages if m.kind == MessageKind.VALID)
    assert 0.25 < topics[REVIEW_TOPIC] / sum(topics.values()) < 0.45


def test_no_bad_messages_unless_asked() -> None:
    kinds = Counter(m.kind for m in simulate(SimulationConfig(events=5_000, users=500)))
    assert kinds == {MessageKind.VALID: 5_000}


# ----------------------------------------------------------------------------- validity


def test_every_valid_message_passes_and_is_canonical(messages: list[SimulatedMessage]) -> None:
    for m in messages:
        if m.kind == MessageKind.MALFORMED:
            continue
        event = validate(m.topic, m.raw, m.attributes)
        assert not isinstance(event, DeadLetter), (m, event)
        assert event.topic == m.topic
        assert serialize_event(event) == m.raw


def test_every_malformed_message_fails_with_its_defect(messages: list[SimulatedMessage]) -> None:
    malformed = [m for m in messages if m.kind == MessageKind.MALFORMED]
    for m in malformed:
        result = validate(m.topic, m.raw, m.attributes)
        assert isinstance(result, DeadLetter), m
        assert result.reason == m.defect, (m, result)
    defects = Counter(m.defect for m in malformed)
    expected = {
        "not_utf8",
        "not_json",
        "not_object",
        "duplicate_key",
        "missing_field",
        "wrong_type",
        "empty_field",
        "bad_event_id",
        "unknown_event_type",
        "naive_timestamp",
        "bad_timestamp",
        "rating_out_of_range",
        "text_too_long",
        "bad_language",
        "bad_reason",
        "field_not_allowed",
        "bad_country",
        "attribute_mismatch",
    }
    assert set(defects) == expected


def test_duplicates_are_exact_redeliveries(messages: list[SimulatedMessage]) -> None:
    first: dict[str, SimulatedMessage] = {}
    for m in messages:
        if m.kind == MessageKind.MALFORMED:
            continue
        event_id = m.attributes["event_id"]
        if m.kind == MessageKind.DUPLICATE:
            original = first[event_id]  # delivered before
            assert (m.topic, m.raw, m.attributes) == (
                original.topic,
                original.raw,
                original.attributes,
            )
        else:
            assert event_id not in first, "valid event ids are unique"
            first[event_id] = m


def test_event_time_order_except_late_ones(messages: list[SimulatedMessage]) -> None:
    position = datetime.min.replace(tzinfo=UTC)
    lags = []
    for m in messages:
        if m.kind == MessageKind.MALFORMED:
            continue
        moment = parse_event(m.topic, m.raw).event_time
        if m.kind == MessageKind.LATE:
            lags.append(position - moment)
            continue
        assert moment >= position
        position = moment
    assert min(lags) >= CONFIG.late_by - timedelta(minutes=5)  # minus the gap between events


def test_arrival_is_nondecreasing(messages: list[SimulatedMessage]) -> None:
    arrivals = [m.arrival_us for m in messages]
    assert arrivals == sorted(arrivals)


# ----------------------------------------------------------------------------- realism


def test_ratings_and_languages_look_like_real_reviews(
    reviews: list[tuple[Event, str | None]],
) -> None:
    ratings = Counter(e.rating for e, label in reviews if label is None)
    assert set(ratings) == {1, 2, 3, 4, 5}
    assert ratings[5] > ratings[4] > ratings[3]  # J-shaped
    assert ratings[1] > ratings[2]
    languages = Counter(e.language for e, _ in reviews)
    assert languages["en"] / len(reviews) > 0.85
    assert len(languages) > 1


def test_texts_are_varied_english_matching_the_rating(
    reviews: list[tuple[Event, str | None]],
) -> None:
    texts = [e.text or "" for e, _ in reviews]
    assert len(set(texts)) > 0.7 * len(texts)
    english = [(e.rating, e.text or "") for e, label in reviews if e.language == "en" and not label]
    assert all(20 < len(text) < 1_000 for _, text in english)
    common = {
        "the",
        "a",
        "and",
        "was",
        "we",
        "i",
        "it",
        "this",
        "for",
        "with",
        "here",
        "in",
        "us",
        "our",
        "my",
        "you",
        "to",
        "of",
    }
    assert all(common & set(text.lower().replace(".", " ").split()) for _, text in english)
    assert all(text.isascii() and text[-1] in ".!?" for _, text in english)
    assert all("lorem" not in text.lower() for text in texts)
    praise = ("Highly recommend!", "Five stars without hesitation.", "Best ")
    assert not any(p in text for rating, text in english if rating == 1 for p in praise)
    scorn = ("Never again.", "Stay away", "Worst ")
    assert not any(s in text for rating, text in english if rating == 5 for s in scorn)


def test_users_and_businesses_are_as_many_as_configured(
    events: list[tuple[Event, str | None]],
) -> None:
    users = {e.user_id for e, _ in events}
    businesses = {e.business_id for e, _ in events if e.topic == REVIEW_TOPIC}
    assert 0.5 * CONFIG.users < len(users) <= CONFIG.users
    assert 0.8 * CONFIG.businesses < len(businesses) <= CONFIG.businesses


def test_activity_follows_the_time_of_day(
    events: list[tuple[Event, str | None]],
) -> None:
    hours = Counter(e.event_time.hour for e, label in events if label is None)
    evening = sum(hours[h] for h in range(17, 22))
    night = sum(hours[h] for h in range(5, 10))
    assert evening > 2 * night


def test_signups_come_before_the_accounts_other_events(
    events: list[tuple[Event, str | None]],
) -> None:
    signup = {e.user_id: e.event_time for e, _ in events if e.event_type == "signup"}
    assert signup
    assert (
        Counter(e.user_id for e, _ in events if e.event_type == "signup").most_common(1)[0][1] == 1
    )
    for e, _ in events:
        if e.user_id in signup:
            assert e.event_time >= signup[e.user_id]


def test_user_events_come_from_a_few_ips_per_user_with_countries(
    events: list[tuple[Event, str | None]],
) -> None:
    ips: defaultdict[str, set[str]] = defaultdict(set)
    countries = Counter()
    for e, label in events:
        if e.topic == USER_TOPIC and label is None:
            if e.ip_hash:
                ips[e.user_id].add(e.ip_hash)
            countries[e.country] += 1
    per_user = sorted(len(v) for v in ips.values())
    assert per_user[len(per_user) // 2] <= 3
    assert countries[None] / sum(countries.values()) < 0.05
    assert len(countries) > 10


# ----------------------------------------------------------------------------- fraud


def test_a_business_gets_a_burst_of_reviews(reviews: list[tuple[Event, str | None]]) -> None:
    """15 or more reviews within an hour, a third or more of all its reviews in the span."""
    times: defaultdict[str, list[datetime]] = defaultdict(list)
    for e, _ in reviews:
        times[e.business_id].append(e.event_time)
    burst = 0
    for stamps in times.values():
        stamps.sort()
        start = 0
        for end, moment in enumerate(stamps):
            while moment - stamps[start] > timedelta(hours=1):
                start += 1
            if 3 * (end - start + 1) >= len(stamps):
                burst = max(burst, end - start + 1)
    assert burst >= 15


def test_rings_of_accounts_share_ips_and_devices(
    events: list[tuple[Event, str | None]],
) -> None:
    by_ip: defaultdict[str, set[str]] = defaultdict(set)
    by_device: defaultdict[str, set[str]] = defaultdict(set)
    for e, _ in events:
        if e.ip_hash:
            by_ip[e.ip_hash].add(e.user_id)
        if e.topic == REVIEW_TOPIC and e.device_id:
            by_device[e.device_id].add(e.user_id)
    assert max(len(u) for u in by_ip.values()) >= 6  # households share by two or three
    assert max(len(u) for u in by_device.values()) >= 4  # people do not share phones


def test_near_duplicate_texts_are_posted(reviews: list[tuple[Event, str | None]]) -> None:
    """Long texts on one business with the same words but for an edit or two."""
    by_business: defaultdict[str, list[frozenset[str]]] = defaultdict(list)
    for e, _ in reviews:
        words = (e.text or "").lower().split()
        if len(words) >= 20:
            by_business[e.business_id].append(frozenset(words))
    near = 0
    for texts in by_business.values():
        for a, b in itertools.islice(itertools.combinations(texts[:60], 2), 2_000):
            if a != b and len(a & b) / len(a | b) > 0.8:
                near += 1
    assert near >= 200  # legitimate texts of one business reach a few dozen


def test_one_star_campaign_against_a_business(
    reviews: list[tuple[Event, str | None]],
) -> None:
    """Several accounts on one device post one-star reviews of one business within 36 h."""
    campaign: defaultdict[tuple[str, str], list[Event]] = defaultdict(list)
    for e, _ in reviews:
        if e.rating == 1 and e.device_id:
            campaign[e.business_id, e.device_id].append(e)
    largest = max(campaign.values(), key=len)
    assert len(largest) >= 5
    assert len({e.user_id for e in largest}) >= 2
    stamps = sorted(e.event_time for e in largest)
    assert stamps[-1] - stamps[0] <= timedelta(hours=36)


def test_flags_mostly_target_fraudulent_reviews(
    events: list[tuple[Event, str | None]],
    reviews: list[tuple[Event, str | None]],
) -> None:
    created = {e.review_id: (e, label) for e, label in reviews}
    flags = [e for e, _ in events if e.event_type == "review_flagged"]
    assert flags
    on_fraud = 0
    for flagged in flags:
        assert flagged.topic == REVIEW_TOPIC
        original, label = created[flagged.review_id]
        assert (flagged.business_id, flagged.user_id) == (original.business_id, original.user_id)
        assert flagged.event_time >= original.event_time
        assert flagged.reason in {"spam", "fake", "abuse", "other"}
        on_fraud += label is not None
    assert on_fraud / len(flags) > 0.6
    fraud_share = sum(label is not None for _, label in reviews) / len(reviews)
    assert 0.02 < fraud_share < 0.15


# ----------------------------------------------------------------------------- review ids


def _review_ids(config: SimulationConfig) -> tuple[list[str], list[str]]:
    """The review ids of a run's `review_created` events and of its flags, in order."""
    created, flagged = [], []
    for m in simulate(config):
        if m.kind is MessageKind.VALID and m.topic == REVIEW_TOPIC:
            body = json.loads(m.raw)
            (created if body["event_type"] == "review_created" else flagged).append(
                body["review_id"]
            )
    return created, flagged


def _numbered(n: int) -> str:
    """The simulator's id of review number `n` (a bijection of 32-bit numbers)."""
    return f"rv-{(n * 0x9E3779B1) % 2**32:08x}"


def test_a_run_going_on_from_another_numbers_its_reviews_after_it() -> None:
    """Two runs number their reviews from 0 alike: seeded apart, their first reviews
    share ids, each a different review. `first_review` starts the second after the
    first's, and changes nothing else: every flag still names a review of its run."""
    small = {"events": 600, "users": 40, "businesses": 5, "duration": timedelta(hours=2)}
    earlier, _ = _review_ids(SimulationConfig(seed=30, **small))  # type: ignore[arg-type]
    assert reviews_created(simulate(SimulationConfig(seed=30, **small))) == len(earlier)  # type: ignore[arg-type]
    assert set(earlier) == {_numbered(i) for i in range(len(earlier))}
    colliding, _ = _review_ids(SimulationConfig(seed=31, **small))  # type: ignore[arg-type]
    assert set(earlier) & set(colliding)
    later, flagged = _review_ids(
        SimulationConfig(seed=31, first_review=len(earlier), **small)  # type: ignore[arg-type]
    )
    assert set(later) == {_numbered(len(earlier) + i) for i in range(len(colliding))}
    assert set(earlier).isdisjoint(later)
    assert flagged and set(flagged) <= set(later)
    plain = [m.raw for m in simulate(SimulationConfig(seed=31, **small))]  # type: ignore[arg-type]
    offset = simulate(SimulationConfig(seed=31, first_review=len(earlier), **small))  # type: ignore[arg-type]
    renamed = dict(zip(colliding, later, strict=True))
    for raw, moved in zip(plain, offset, strict=True):
        body = json.loads(raw)
        if "review_id" in body:
            body["review_id"] = renamed[body["review_id"]]
        assert json.loads(moved.raw) == body


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "settings",
    [
        {"bad_share": 1.5},
        {"duplicate_share": -0.1},
        {"bad_share": 0.6, "duplicate_share": 0.6},
        {"users": 0},
        {"events": 10, "duration": timedelta(days=1), "rate": 2.0},
        {"start": datetime(2024, 1, 1)},  # noqa: DTZ001 - naive on purpose
        {"duration": timedelta(0)},
        {"first_review": -1},
        {"first_review": 2**32},
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SimulationConfig(**settings)  # type: ignore[arg-type]


def test_count_and_span_from_events_duration_and_rate() -> None:
    assert SimulationConfig(events=7_200, rate=2.0).resolved() == (7_200, timedelta(hours=1))
    assert SimulationConfig(duration=timedelta(hours=1), rate=3.0).resolved() == (
        10_800,
        timedelta(hours=1),
    )
    assert SimulationConfig(events=5, duration=timedelta(days=2)).resolved() == (
        5,
        timedelta(days=2),
    )


def test_events_stay_inside_the_span() -> None:
    start = datetime(2025, 6, 1, 12, tzinfo=UTC)
    config = SimulationConfig(events=2_000, users=300, start=start, duration=timedelta(hours=6))
    moments = [parse_event(m.topic, m.raw).event_time for m in simulate(config)]
    assert start <= min(moments)
    assert max(moments) < start + timedelta(hours=6)


@pytest.mark.parametrize("events", [0, 1, 7, 60])
def test_tiny_streams_work(events: int) -> None:
    config = SimulationConfig(events=events, users=3, businesses=1, bad_share=0.3)
    produced = list(simulate(config))
    assert len(produced) == events


# ----------------------------------------------------------------------------- outputs


def test_write_jsonl_writes_one_body_per_line_per_topic(
    tmp_path: Path, messages: list[SimulatedMessage]
) -> None:
    paths = write_jsonl(messages[:5_000], tmp_path)
    assert paths == {
        REVIEW_TOPIC: tmp_path / "review-events.jsonl",
        USER_TOPIC: tmp_path / "user-events.jsonl",
    }
    for topic, path in paths.items():
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b""
        assert lines[:-1] == [m.raw for m in messages[:5_000] if m.topic == topic]


def test_write_jsonl_refuses_a_body_with_a_newline(tmp_path: Path) -> None:
    message = SimulatedMessage(REVIEW_TOPIC, b"{\n}", {}, MessageKind.MALFORMED, 0)
    with pytest.raises(ValueError, match="newline"):
        write_jsonl([message], tmp_path)


def test_retimer_moves_events_to_now_keeping_lateness_and_duplicates(
    messages: list[SimulatedMessage],
) -> None:
    retime = Retimer()
    now = datetime(2030, 1, 1, tzinfo=UTC)
    sent: dict[str, bytes] = {}
    for i, m in enumerate(messages[:20_000]):
        moment = now + timedelta(milliseconds=i)
        out = retime(m, moment)
        if m.kind == MessageKind.MALFORMED:
            assert out == m
            continue
        event = parse_event(out.topic, out.raw, out.attributes, received=moment)
        original = parse_event(m.topic, m.raw)
        assert json.loads(out.raw) | {"event_time": None} == json.loads(m.raw) | {
            "event_time": None
        }
        if m.kind == MessageKind.VALID:
            assert event.event_time == moment
        elif m.kind == MessageKind.LATE:
            assert event.event_time == moment - (m.arrival - original.event_time)
            assert moment - event.event_time >= CONFIG.late_by
        if m.kind == MessageKind.DUPLICATE:
            assert out.raw == sent[event.event_id]
        else:
            sent[event.event_id] = out.raw
