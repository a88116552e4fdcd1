"""The parser generated from a user's `Source`: every declared rule, its reason, and a
message naming the value; and the declarations' own checks."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feature_store.definitions import DType, EventField, Source
from feature_store.errors import FeatureDefinitionError
from feature_store.events import Contract, DeadLetter, Event, contract_for, serialize_event
from feature_store.reference import ENVELOPE_FIELDS, REVIEW_EVENTS
from tests.unit.feature_store.bodies import overridden

RECEIVED = datetime(2024, 3, 1, 12, tzinfo=UTC)
SHOP = Source(
    name="shop-events",
    topic="shop-events",
    event_types=("order", "refund"),
    fields=(
        *ENVELOPE_FIELDS,
        EventField(name="shop_id", dtype=DType.STRING, required=True, empty="invalid"),
        EventField(name="amount", dtype=DType.FLOAT64, required_for=("order",), min_value=0),
        EventField(name="items", dtype=DType.INT64, min_value=1, max_value=100),
        EventField(
            name="coupon",
            dtype=DType.STRING,
            only_for=("order",),
            max_length=8,
            pattern="[A-Z0-9]+",
        ),
        EventField(
            name="channel",
            dtype=DType.STRING,
            one_of=("web", "app"),
            default="web",
            empty="absent",
            case="lower",
        ),
        EventField(name="gift", dtype=DType.BOOL),
        EventField(name="priority", dtype=DType.INT64, one_of=(1, 2, 3)),
        EventField(
            name="shipped_at",
            dtype=DType.TIMESTAMP,
            earliest=datetime(2020, 1, 1, tzinfo=UTC),
            bounded_by_receipt=True,
        ),
        EventField(name="sku", dtype=DType.STRING, min_length=3, invalid_reason="bad_sku"),
    ),
)


def order(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "o-1",
        "event_type": "order",
        "event_time": "2024-03-01T10:00:00Z",
        "shop_id": "s-1",
        "amount": 12.5,
        "items": 2,
    }
    return overridden(body, overrides, drop=None)


def dead(body: dict[str, Any]) -> DeadLetter:
    result = contract_for(SHOP).validate(json.dumps(body).encode(), received=RECEIVED)
    assert isinstance(result, DeadLetter), f"expected a dead letter, got {result!r}"
    assert result.topic == "shop-events"
    return result


def parsed(body: dict[str, Any]) -> Event:
    return contract_for(SHOP).parse(json.dumps(body).encode(), received=RECEIVED)


def test_a_valid_message_gives_every_declared_field() -> None:
    event = parsed(order(coupon="SPRING24", gift=True, sku="abc"))
    assert event.record() == {
        "event_id": "o-1",
        "event_type": "order",
        "event_time": 1_709_287_200_000_000,
        "event_time_iso": "2024-03-01T10:00:00.000000Z",
        "shop_id": "s-1",
        "amount": 12.5,
        "items": 2,
        "coupon": "SPRING24",
        "channel": "web",  # its default
        "gift": True,
        "priority": None,
        "shipped_at": None,
        "sku": "abc",
    }
    assert (event.amount, event.coupon) == (12.5, "SPRING24")


def test_an_integer_is_a_float64_value() -> None:
    assert parsed(order(amount=3)).amount == 3.0
    assert isinstance(parsed(order(amount=3)).amount, float)


@pytest.mark.parametrize("state", ["absent", "null"])
def test_a_required_field_missing_is_a_dead_letter(state: str) -> None:
    body = order()
    if state == "null":
        body["shop_id"] = None
        letter = contract_for(SHOP).validate(json.dumps(body).encode(), received=RECEIVED)
    else:
        del body["shop_id"]
        letter = dead(body)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "missing_field"
    assert letter.detail == f"required field `shop_id` is {state}"


def test_empty_means_what_the_field_declares() -> None:
    letter = dead(order(shop_id=""))
    assert (letter.reason, letter.detail) == (
        "empty_field",
        "required field `shop_id` is the empty string",
    )
    assert parsed(order(channel="")).channel == "web"  # empty="absent": the default


def test_a_field_required_for_one_event_type_only() -> None:
    letter = dead(order(amount=None))
    assert (letter.reason, letter.detail) == (
        "missing_field",
        "field `amount` is required for order events",
    )
    assert parsed(order(event_type="refund", amount=None, coupon=None)).amount is None


def test_a_field_only_allowed_on_some_event_types() -> None:
    letter = dead(order(event_type="refund", coupon="X1"))
    assert letter.reason == "field_not_allowed"
    assert '"X1"' in letter.detail
    assert "order" in letter.detail


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("shop_id", 7, "a string"),
        ("amount", "12.5", "a number"),
        ("amount", True, "a number"),
        ("items", 2.0, "an integer"),
        ("items", False, "an integer"),
        ("gift", "yes", "a boolean"),
        ("shipped_at", 1_700_000_000, "a string"),
    ],
)
def test_a_value_of_the_wrong_type(name: str, value: object, expected: str) -> None:
    letter = dead(order(**{name: value}))
    assert letter.reason == "wrong_type"
    assert f"field `{name}` must be {expected}" in letter.detail
    assert json.dumps(value) in letter.detail


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("items", 0, "items 0 is outside 1-100"),
        ("items", 101, "items 101 is outside 1-100"),
        ("amount", -0.5, "amount -0.5 is below 0"),
        ("items", 2**63, f"items {2**63} is outside 1-100"),
    ],
)
def test_numbers_outside_their_limits(name: str, value: object, message: str) -> None:
    letter = dead(order(**{name: value}))
    assert (letter.reason, letter.detail) == ("out_of_range", message)


def test_an_int64_without_limits_holds_64_bits() -> None:
    source = dataclasses.replace(
        SHOP, fields=(*ENVELOPE_FIELDS, EventField(name="n", dtype=DType.INT64))
    )
    contract = Contract(source)
    body = {k: v for k, v in order().items() if k in ("event_id", "event_type", "event_time")}
    top = contract.parse(json.dumps({**body, "n": 2**63 - 1}).encode(), received=RECEIVED)
    assert top.n == 2**63 - 1
    letter = contract.validate(json.dumps({**body, "n": 2**63}).encode(), received=RECEIVED)
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, str(2**63) in letter.detail) == ("out_of_range", True)


def test_string_limits_and_patterns() -> None:
    letter = dead(order(coupon="SPRING2024"))
    assert (letter.reason, letter.detail) == ("out_of_range", "coupon of 10 chars is longer than 8")
    letter = dead(order(coupon="spring"))
    assert (letter.reason, letter.detail) == (
        "bad_value",
        'coupon "spring" is not matching [A-Z0-9]+',
    )
    letter = dead(order(sku="ab"))  # a reason of the field's own
    assert (letter.reason, letter.detail) == ("bad_sku", 'sku "ab" is shorter than 3 chars, got 2')


def test_enums_of_strings_and_integers() -> None:
    assert parsed(order(channel="APP")).channel == "app"  # case="lower" first
    letter = dead(order(channel="Phone"))
    assert (letter.reason, letter.detail) == ("bad_value", 'channel "Phone" is not one of web, app')
    assert parsed(order(priority=2)).priority == 2
    letter = dead(order(priority=4))
    assert (letter.reason, letter.detail) == ("bad_value", "priority 4 is not one of 1, 2, 3")


def test_event_types_are_the_sources() -> None:
    letter = dead(order(event_type="return"))
    assert letter.reason == "unknown_event_type"
    assert letter.detail == 'event_type "return" is not one of order, refund on `shop-events`'


def test_timestamps_have_their_declared_bounds() -> None:
    shipped = parsed(order(shipped_at="2024-03-01T11:00:00+01:00"))
    assert shipped.shipped_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert shipped.record()["shipped_at"] == 1_709_287_200_000_000
    early = dead(order(shipped_at="2019-12-31T23:59:59Z"))
    assert (early.reason, early.detail) == (
        "timestamp_out_of_range",
        "shipped_at 2019-12-31T23:59:59.000000Z is before 2020-01-01T00:00:00.000000Z",
    )
    ahead = dead(order(shipped_at="2024-03-01T12:05:01Z"))
    assert ahead.reason == "timestamp_out_of_range"
    assert "shipped_at 2024-03-01T12:05:01.000000Z is after" in ahead.detail
    naive = dead(order(shipped_at="2024-03-01T10:00:00"))
    assert naive.reason == "naive_timestamp"
    assert '"2024-03-01T10:00:00"' in naive.detail


def test_unknown_fields_are_kept_and_ignored() -> None:
    event = parsed(order(note="gift wrap", items=3))
    assert event.extra == {"note": "gift wrap"}
    assert "note" not in event.record()
    assert json.loads(serialize_event(event))["note"] == "gift wrap"


def test_serialize_then_parse_is_the_same_event() -> None:
    event = parsed(order(shipped_at="2024-03-01T11:00:00Z", gift=False, note=[1]))
    assert contract_for(SHOP).parse(serialize_event(event), received=RECEIVED) == event


def test_a_new_field_on_the_reference_source_is_read() -> None:
    votes = EventField(name="helpful_votes", dtype=DType.INT64, min_value=0)
    reviews = dataclasses.replace(REVIEW_EVENTS, fields=(*REVIEW_EVENTS.fields, votes))
    body = {
        "event_id": "e",
        "event_type": "review_created",
        "event_time": "2024-03-01T10:00:00Z",
        "review_id": "r",
        "user_id": "u",
        "business_id": "b",
        "rating": 5,
        "text": "ok",
        "helpful_votes": 12,
    }
    record = contract_for(reviews).parse(json.dumps(body).encode(), received=RECEIVED).record()
    assert record["helpful_votes"] == 12
    old = contract_for(REVIEW_EVENTS).parse(json.dumps(body).encode(), received=RECEIVED)
    assert "helpful_votes" not in old.record()  # there, an unknown field: kept, ignored
    assert old.extra == {"helpful_votes": 12}


def test_contracts_are_built_once_per_source_and_pickle() -> None:
    import pickle

    contract = contract_for(SHOP)
    assert contract_for(SHOP) is contract
    assert pickle.loads(pickle.dumps(contract)).field_names == contract.field_names
    moment = datetime(2024, 3, 1, 10, tzinfo=UTC)
    built = contract.event(
        event_id="o-1", event_type="order", event_time=moment, shop_id="s-1", amount=12.5, items=2
    )
    assert built == parsed(order())
    with pytest.raises(ValueError, match="not fields of `shop-events`"):
        contract.event(event_id="o", event_type="order", event_time=moment, colour="red")


# ----------------------------------------------------------------------------- declarations


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"dtype": DType.INT64, "max_length": 3}, "do not apply to INT64"),
        ({"dtype": DType.STRING, "min_value": 1}, "do not apply to STRING"),
        ({"dtype": DType.STRING, "min_length": 5, "max_length": 2}, "min_length 5 is above"),
        ({"dtype": DType.STRING, "pattern": "[a-"}, "pattern '[a-' does not compile"),
        ({"dtype": DType.STRING, "empty": "none"}, "empty must be one of"),
        ({"dtype": DType.INT64, "empty": "absent"}, "empty must be one of"),
        ({"dtype": DType.STRING, "case": "title"}, "case must be one of"),
        ({"dtype": DType.STRING, "required": True, "default": "x"}, "takes no default"),
        ({"dtype": DType.INT64, "default": "3"}, "default '3' is not a INT64"),
        ({"dtype": DType.STRING, "required": True, "only_for": ("a",)}, "required_for / only_for"),
        ({"dtype": DType.STRING, "only_for": ("a",), "required_for": ("b",)}, "outside only_for"),
        ({"dtype": DType.STRING, "one_of": (1, 2)}, "one_of needs"),
        ({"dtype": DType.FLOAT64, "one_of": (1.5,)}, "one_of needs"),
        ({"dtype": DType.STRING, "earliest": datetime(2020, 1, 1, tzinfo=UTC)}, "earliest"),
        ({"dtype": DType.TIMESTAMP, "earliest": datetime(2020, 1, 1)}, "earliest"),  # noqa: DTZ001
        ({"dtype": DType.STRING, "bounded_by_receipt": True}, "TIMESTAMP fields only"),
        ({"dtype": DType.STRING, "invalid_reason": "Bad Thing"}, "invalid_reason must match"),
        ({"dtype": DType.INT64, "min_value": True}, "must be numbers"),
    ],
)
def test_a_field_declaration_is_checked(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(FeatureDefinitionError, match="event field `f`") as caught:
        EventField(name="f", **kwargs)
    assert words in str(caught.value)


def test_a_source_checks_its_fields_against_its_event_types() -> None:
    with pytest.raises(FeatureDefinitionError, match=r"names event types \['refnd'\]"):
        dataclasses.replace(
            SHOP,
            fields=(
                *ENVELOPE_FIELDS,
                EventField(name="x", dtype=DType.STRING, required_for=("refnd",)),
            ),
        )
    with pytest.raises(FeatureDefinitionError, match="`event_time` must be a TIMESTAMP"):
        dataclasses.replace(
            SHOP,
            fields=(*ENVELOPE_FIELDS[:2], EventField(name="event_time", dtype=DType.STRING)),
        )
    with pytest.raises(FeatureDefinitionError, match=r"reserve: \['topic'\]"):
        dataclasses.replace(
            SHOP, fields=(*ENVELOPE_FIELDS, EventField(name="topic", dtype=DType.STRING))
        )
    with pytest.raises(FeatureDefinitionError, match="event types once each"):
        dataclasses.replace(SHOP, event_types=("order", "order"))


def test_a_declared_skew_bound_uses_the_given_clock_skew() -> None:
    body = json.dumps(order(shipped_at="2024-03-01T12:30:00Z")).encode()
    assert isinstance(contract_for(SHOP).validate(body, received=RECEIVED), DeadLetter)
    late = contract_for(SHOP).parse(body, received=RECEIVED, clock_skew=timedelta(hours=1))
    assert late.shipped_at == datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
