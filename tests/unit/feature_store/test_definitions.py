"""Declarations validate themselves; the registry checks cross-references."""

from __future__ import annotations

from datetime import timedelta

import pytest

from feature_store.definitions import (
    Condition,
    DType,
    Entity,
    EventField,
    Feature,
    FeatureService,
    FeatureView,
    Source,
    Window,
    count,
    mean,
    share,
)
from feature_store.errors import FeatureDefinitionError
from feature_store.reference import REGISTRY, REVIEW_EVENTS, USER
from feature_store.registry import Registry, load_registry


def view(**overrides: object) -> FeatureView:
    spec: dict[str, object] = {
        "name": "v",
        "entity": "user",
        "source": "review-events",
        "features": (Feature(name="n", aggregation=count(), window="1h"),),
    }
    spec.update(overrides)
    return FeatureView(**spec)  # type: ignore[arg-type]


def registry(*views: FeatureView, services: tuple[FeatureService, ...] = ()) -> Registry:
    return Registry(entities=(USER,), sources=(REVIEW_EVENTS,), views=views, services=services)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("30m", timedelta(minutes=30)),
        (None, None),
        ("unbounded", None),
    ],
)
def test_windows_parse(text: str | None, expected: timedelta | None) -> None:
    assert Window.parse(text).duration == expected


@pytest.mark.parametrize("bad", ["0h", "1y", "h", "-1h", "", "1.5h"])
def test_bad_windows_name_the_value(bad: str) -> None:
    with pytest.raises(FeatureDefinitionError, match=repr(bad) if bad != "0h" else "positive"):
        Window.parse(bad)


def test_a_window_of_zero_is_refused() -> None:
    with pytest.raises(FeatureDefinitionError, match="window must be positive, got 0:00:00"):
        Feature(name="f", aggregation=count(), window=timedelta(0))


def test_duplicate_feature_names_in_a_view() -> None:
    with pytest.raises(FeatureDefinitionError, match=r"more than once: \['n'\]"):
        view(
            features=(
                Feature(name="n", aggregation=count(), window="1h"),
                Feature(name="n", aggregation=count(), window="2h"),
            )
        )


def test_duplicate_view_names_in_a_registry() -> None:
    with pytest.raises(FeatureDefinitionError, match="feature view 'v' is declared more than once"):
        registry(view(), view())


def test_a_feature_on_an_unknown_field() -> None:
    bad = view(features=(Feature(name="m", aggregation=mean("stars"), window="1h"),))
    with pytest.raises(
        FeatureDefinitionError, match="unknown field 'stars' of source `review-events`"
    ):
        registry(bad)


def test_an_entity_the_view_does_not_have() -> None:
    with pytest.raises(FeatureDefinitionError, match="unknown entity 'shop'"):
        registry(view(entity="shop"))


def test_an_entity_whose_key_the_source_lacks() -> None:
    shop = Entity(name="shop", join_key="shop_id")
    with pytest.raises(FeatureDefinitionError, match="has no field 'shop_id' for entity `shop`"):
        Registry(entities=(USER, shop), sources=(REVIEW_EVENTS,), views=(view(entity="shop"),))


def test_a_numeric_aggregation_on_a_string_field() -> None:
    bad = view(features=(Feature(name="m", aggregation=mean("business_id"), window="1h"),))
    with pytest.raises(
        FeatureDefinitionError, match="needs a numeric field, `business_id` is STRING"
    ):
        registry(bad)


def test_share_needs_its_condition_and_conditions_need_a_value() -> None:
    with pytest.raises(FeatureDefinitionError, match="exactly one of equals= or one_of="):
        Condition(field="rating")
    assert share(Condition(field="rating", equals=1)).share_where is not None


def test_a_service_naming_an_unknown_feature() -> None:
    service = FeatureService(name="s", features=("v:nope",))
    with pytest.raises(FeatureDefinitionError, match=r"feature service `s`: .*no feature 'nope'"):
        registry(view(), services=(service,))


def test_names_are_checked() -> None:
    with pytest.raises(FeatureDefinitionError, match="must match"):
        Entity(name="User Name", join_key="user_id")
    with pytest.raises(FeatureDefinitionError, match="must declare the `event_time` field"):
        Source(
            name="s",
            topic="s",
            event_types=("a",),
            fields=(
                EventField(name="event_id", dtype=DType.STRING),
                EventField(name="event_type", dtype=DType.STRING),
            ),
        )


def test_load_registry_from_module_object() -> None:
    assert load_registry("feature_store.reference:REGISTRY") is REGISTRY
    with pytest.raises(FeatureDefinitionError, match="module:object"):
        load_registry("feature_store.reference")
    with pytest.raises(FeatureDefinitionError, match="cannot import definitions module 'nope'"):
        load_registry("nope:X")


FEATURES_MD = {  # FEATURES.md, read independently of the code
    "user_review_stats": {
        "review_count_1h": "INT64",
        "review_count_24h": "INT64",
        "review_count_7d": "INT64",
        "avg_rating_7d": "FLOAT64",
        "rating_stddev_7d": "FLOAT64",
        "distinct_businesses_24h": "INT64",
        "distinct_devices_7d": "INT64",
        "last_review_at": "TIMESTAMP",
    },
    "user_activity": {
        "login_count_24h": "INT64",
        "distinct_ips_24h": "INT64",
        "distinct_countries_7d": "INT64",
    },
    "business_review_stats": {
        "review_count_1h": "INT64",
        "review_count_24h": "INT64",
        "avg_rating_30d": "FLOAT64",
        "one_star_share_7d": "FLOAT64",
        "five_star_share_7d": "FLOAT64",
        "flagged_count_30d": "INT64",
    },
    "review_content": {
        "text_length": "INT64",
        "sentiment": "FLOAT64",
        "embedding_semantic": "FLOAT32_VECTOR",
        "embedding_paraphrase": "FLOAT32_VECTOR",
        # beyond FEATURES.md: the declared PCA projection of the semantic embedding
        "embedding_semantic_pca32": "FLOAT32_VECTOR",
    },
    "user_content_stats": {
        "avg_sentiment_7d": "FLOAT64",
        "max_text_similarity_7d": "FLOAT64",
        "centroid_distance_30d": "FLOAT64",
    },
}


def test_the_reference_registry_is_features_md() -> None:
    got = {
        v.name: {r.feature: r.dtype.value for r in REGISTRY.feature_refs(v)} for v in REGISTRY.views
    }
    assert got == FEATURES_MD
    assert {e.name: e.join_key for e in REGISTRY.entities} == {
        "user": "user_id",
        "business": "business_id",
        "review": "review_id",
    }
