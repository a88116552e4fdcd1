"""OnlineRow validation and the conversion of rows to Feast's encoding."""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import FloatList
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from online.rows import (
    NULL_VALUE,
    EncodedRow,
    OnlineRow,
    RowEncoder,
    ValueConversionError,
    newest_per_key,
)
from tests.unit.online.views import user_view

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEY = (["user_id"], ["u-1"])


def row(features: dict[str, object], at: datetime = AT, view: str = "user_activity") -> OnlineRow:
    return OnlineRow(view=view, entity_key=KEY, features=features, valid_from=at)


@pytest.fixture(scope="module")
def encoder() -> RowEncoder:
    return RowEncoder([user_view()])


def test_valid_from_must_be_aware_and_is_kept_in_utc() -> None:
    with pytest.raises(ValueConversionError, match="2024, 5, 1"):
        row({}, at=datetime(2024, 5, 1))  # noqa: DTZ001 - the case under test
    local = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert row({}, at=local).valid_from.tzinfo is UTC
    assert row({}, at=local).valid_from == AT


def test_rows_pickle_for_beam() -> None:
    original = row({"review_count": 3, "embedding": [0.5]})
    assert pickle.loads(pickle.dumps(original)) == original


def test_python_values_become_the_feast_protos(encoder: RowEncoder) -> None:
    protos = encoder.to_value_protos(
        "user_activity",
        {
            "review_count": 12,
            "avg_rating": 4.5,
            "last_category": "books",
            "last_review_at": datetime(2024, 5, 1, 0, 0, 30, tzinfo=UTC),
            "embedding": [0.25, -1.0],
            "is_verified": None,
        },
    )
    assert protos == {
        "review_count": ValueProto(int64_val=12),
        "avg_rating": ValueProto(double_val=4.5),
        "last_category": ValueProto(string_val="books"),
        "last_review_at": ValueProto(unix_timestamp_val=1_714_521_630),
        "embedding": ValueProto(float_list_val=FloatList(val=[0.25, -1.0])),
        "is_verified": ValueProto(),
    }


def test_encoded_values_follow_view_order_with_nulls(encoder: RowEncoder) -> None:
    encoded = encoder.encode(row({"avg_rating": 2.0, "review_count": None}))
    assert encoded.values == (
        NULL_VALUE,
        ValueProto(double_val=2.0).SerializeToString(),
        NULL_VALUE,
        NULL_VALUE,
        NULL_VALUE,
        NULL_VALUE,
    )
    assert encoded.entity_key == serialize_entity_key(
        EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val="u-1")]),
        entity_key_serialization_version=3,
    )
    assert encoded.valid_from == AT


def test_entity_key_proto_is_serialized_by_feast(encoder: RowEncoder) -> None:
    key = EntityKeyProto(join_keys=["user_id"], entity_values=[ValueProto(string_val="u-9")])
    encoded = encoder.encode(OnlineRow("user_activity", key, {}, AT))
    assert encoded.entity_key == serialize_entity_key(key, entity_key_serialization_version=3)
    assert encoded == encoder.encode(OnlineRow("user_activity", (["user_id"], ["u-9"]), {}, AT))


@pytest.mark.parametrize(
    ("bad_row", "named"),
    [
        (row({"no_such_feature": 1}), "no_such_feature"),
        (row({}, view="no_such_view"), "no_such_view"),
        (row({"review_count": "many"}), "many"),
        (row({"embedding": ["a", "b"]}), "embedding"),
        (OnlineRow("user_activity", (["user_id"], []), {}, AT), "user_id"),
    ],
)
def test_bad_rows_raise_naming_the_offender(
    encoder: RowEncoder, bad_row: OnlineRow, named: str
) -> None:
    with pytest.raises(ValueConversionError, match=named):
        encoder.encode(bad_row)


def test_newest_per_key_keeps_newest_and_later_of_equals() -> None:
    def encoded(at: datetime, tag: bytes) -> EncodedRow:
        return EncodedRow("v", b"key", (tag,), at)

    older, newer = encoded(AT, b"old"), encoded(AT + timedelta(seconds=1), b"new")
    tie = encoded(AT + timedelta(seconds=1), b"tie")
    other = encoded(AT, b"other")
    newest = newest_per_key([("a", newer), ("a", older), ("b", other), ("a", tie)])
    assert newest == {"a": tie, "b": other}
    assert newest_per_key([("a", older), ("a", newer)]) == {"a": newer}


def test_encode_valid_keeps_good_rows_and_names_bad_ones(encoder: RowEncoder) -> None:
    good, bad = row({"review_count": 1}), row({"review_count": "lots"})
    encoded, rejected = encoder.encode_valid([good, bad, good])
    assert encoded == [encoder.encode(good)] * 2
    assert [(r, "lots" in reason) for r, reason in rejected] == [(bad, True)]


def test_rows_of_several_views_keep_their_order(encoder: RowEncoder) -> None:
    two_views = RowEncoder([user_view("a"), user_view("b")])
    rows = [row({"review_count": i}, view=v) for i, v in enumerate("abab")]
    encoded = two_views.encode_all(rows)
    assert [e.view for e in encoded] == list("abab")
    assert [e.values[0] for e in encoded] == [
        ValueProto(int64_val=i).SerializeToString() for i in range(4)
    ]


def test_mappings_that_answer_for_left_out_features_still_write_null(
    encoder: RowEncoder,
) -> None:
    """Rows of plain dicts holding every feature take a faster path; a `Counter` (which
    answers 0 for a feature left out) must still write a left-out feature as null."""
    names = encoder.feature_names("user_activity")
    full = {name: None for name in names} | {"review_count": 3}
    counter: Counter[str] = Counter({"review_count": 3})
    assert counter["avg_rating"] == 0  # what a look-up by key would have written
    by_dict, by_counter = (
        encoder.encode_all([row(features), row(features)])[0].values for features in (full, counter)
    )
    assert by_dict == by_counter == encoder.encode(row({"review_count": 3})).values
    assert by_dict.count(NULL_VALUE) == len(names) - 1
