"""The reference registry: the features the platform ships (see FEATURES.md).

The demo, the tests and the benchmarks use it; users declare their own features the
same way and point the CLI at them with `--definitions module:object`.
"""

from __future__ import annotations

from typing import Final

from feature_store.definitions import (
    Aggregation,
    Condition,
    DerivedField,
    DType,
    Entity,
    EventField,
    Feature,
    FeatureService,
    FeatureView,
    Source,
    count,
    count_distinct,
    last,
    max_,
    mean,
    share,
    stddev,
)
from feature_store.events import EARLIEST_EVENT_TIME, REVIEW_TOPIC, USER_TOPIC
from feature_store.registry import Registry

STR, INT, TS = DType.STRING, DType.INT64, DType.TIMESTAMP

USER = Entity(name="user", join_key="user_id", description="An account that writes reviews.")
BUSINESS = Entity(name="business", join_key="business_id", description="A reviewed business.")
REVIEW = Entity(name="review", join_key="review_id", description="One review.")


# ISO 3166-1 alpha-2, the officially assigned codes, plus XK (Kosovo), which GeoIP
# databases emit.
_ISO_3166_ALPHA_2 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN
    BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE
    DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN
    GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE
    KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
    ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA
    PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK
    SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG
    UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW"""
COUNTRIES: Final = tuple(_ISO_3166_ALPHA_2.split())
# BCP 47 well-formedness, simplified: a 2-8 letter primary subtag (or x/i for private
# use and the grandfathered tags), then alphanumeric subtags of 1-8 characters.
BCP_47: Final = r"(?:[A-Za-z]{2,8}|[xXiI])(?:-[A-Za-z0-9]{1,8})*"
FLAG_REASONS: Final = ("spam", "fake", "abuse", "other")
MAX_TEXT_CHARS: Final = 20_000
MAX_EVENT_ID_CHARS: Final = 128

# The envelope every event carries (EVENTS.md): a unique id, a type among the source's,
# and an RFC 3339 time, not before 2000 nor after its receipt plus the clock skew.
ENVELOPE_FIELDS: Final = (
    EventField(
        name="event_id",
        dtype=STR,
        required=True,
        min_length=1,
        max_length=MAX_EVENT_ID_CHARS,
        invalid_reason="bad_event_id",
    ),
    EventField(name="event_type", dtype=STR, required=True),
    EventField(
        name="event_time",
        dtype=TS,
        required=True,
        earliest=EARLIEST_EVENT_TIME,
        bounded_by_receipt=True,
    ),
)


def _key(name: str) -> EventField:
    """A required id: the empty string is invalid."""
    return EventField(name=name, dtype=STR, required=True, empty="invalid")


def _optional_id(name: str) -> EventField:
    """An optional id: the empty string means absent."""
    return EventField(name=name, dtype=STR, empty="absent")


REVIEW_EVENTS = Source(
    name="review-events",
    topic=REVIEW_TOPIC,
    archive_table="review_events_raw",
    event_types=("review_created", "review_flagged"),
    fields=(
        *ENVELOPE_FIELDS,
        _key("review_id"),
        _key("user_id"),
        _key("business_id"),
        EventField(
            name="rating",
            dtype=INT,
            required_for=("review_created",),
            min_value=1,
            max_value=5,
            invalid_reason="rating_out_of_range",
        ),
        EventField(
            name="text",
            dtype=STR,
            required_for=("review_created",),
            max_length=MAX_TEXT_CHARS,
            invalid_reason="text_too_long",
        ),
        EventField(
            name="language",
            dtype=STR,
            default="und",
            empty="absent",
            pattern=BCP_47,
            expected="a BCP 47 tag",
            invalid_reason="bad_language",
        ),
        _optional_id("ip_hash"),
        _optional_id("device_id"),
        EventField(
            name="reason",
            dtype=STR,
            only_for=("review_flagged",),
            one_of=FLAG_REASONS,
            invalid_reason="bad_reason",
        ),
    ),
    description="Reviews written and reviews flagged.",
)
USER_EVENTS = Source(
    name="user-events",
    topic=USER_TOPIC,
    archive_table="user_events_raw",
    event_types=("login", "signup", "profile_update"),
    fields=(
        *ENVELOPE_FIELDS,
        _key("user_id"),
        _optional_id("ip_hash"),
        EventField(
            name="country",
            dtype=STR,
            case="upper",
            one_of=COUNTRIES,
            expected="an ISO 3166 alpha-2 code",
            invalid_reason="bad_country",
        ),
    ),
    description="Account activity: logins, sign-ups, profile updates.",
)

CREATED = Condition(field="event_type", equals="review_created")
FLAGGED = Condition(field="event_type", equals="review_flagged")

# Per-review values computed by pipeline stages: text length in the feature stage, the
# model outputs in the inference stage (several models sharing one device).
REVIEW_DERIVED = (
    DerivedField(name="text_length", dtype=INT, input="text", producer="length"),
    DerivedField(name="sentiment", dtype=DType.FLOAT64, input="text", producer="model:sentiment"),
    DerivedField(
        name="embedding_semantic",
        dtype=DType.FLOAT32_VECTOR,
        input="text",
        producer="model:semantic",
        dim=384,
    ),
    DerivedField(
        name="embedding_paraphrase",
        dtype=DType.FLOAT32_VECTOR,
        input="text",
        producer="model:paraphrase",
        dim=384,
    ),
    # A PCA reduction of the semantic embedding, fitted by the backfill on a stated
    # sample and applied by both jobs with the same saved matrix (common.projections).
    DerivedField(
        name="embedding_semantic_pca32",
        dtype=DType.FLOAT32_VECTOR,
        input="embedding_semantic",
        producer="pca:embedding_semantic:32",
        dim=32,
    ),
)

USER_REVIEW_STATS = FeatureView(
    name="user_review_stats",
    entity="user",
    source="review-events",
    where=CREATED,
    description="How much and how a user reviews.",
    features=(
        Feature(name="review_count_1h", aggregation=count(), window="1h"),
        Feature(name="review_count_24h", aggregation=count(), window="24h"),
        Feature(name="review_count_7d", aggregation=count(), window="7d"),
        Feature(name="avg_rating_7d", aggregation=mean("rating"), window="7d"),
        Feature(name="rating_stddev_7d", aggregation=stddev("rating"), window="7d"),
        Feature(
            name="distinct_businesses_24h", aggregation=count_distinct("business_id"), window="24h"
        ),
        Feature(name="distinct_devices_7d", aggregation=count_distinct("device_id"), window="7d"),
        Feature(name="last_review_at", aggregation=max_("event_time"), window=None),
    ),
)

USER_ACTIVITY = FeatureView(
    name="user_activity",
    entity="user",
    source="user-events",
    description="Account activity: logins and where they come from.",
    features=(
        Feature(
            name="login_count_24h",
            aggregation=count(where=Condition(field="event_type", equals="login")),
            window="24h",
        ),
        Feature(name="distinct_ips_24h", aggregation=count_distinct("ip_hash"), window="24h"),
        Feature(name="distinct_countries_7d", aggregation=count_distinct("country"), window="7d"),
    ),
)

BUSINESS_REVIEW_STATS = FeatureView(
    name="business_review_stats",
    entity="business",
    source="review-events",
    description="Review traffic a business receives.",
    features=(
        Feature(name="review_count_1h", aggregation=count(where=CREATED), window="1h"),
        Feature(name="review_count_24h", aggregation=count(where=CREATED), window="24h"),
        Feature(name="avg_rating_30d", aggregation=mean("rating", where=CREATED), window="30d"),
        Feature(
            name="one_star_share_7d",
            aggregation=share(Condition(field="rating", equals=1), where=CREATED),
            window="7d",
        ),
        Feature(
            name="five_star_share_7d",
            aggregation=share(Condition(field="rating", equals=5), where=CREATED),
            window="7d",
        ),
        Feature(name="flagged_count_30d", aggregation=count(where=FLAGGED), window="30d"),
    ),
)

REVIEW_CONTENT = FeatureView(
    name="review_content",
    entity="review",
    source="review-events",
    where=CREATED,
    description="What a review says: length, sentiment and embeddings (one row per review).",
    features=(
        Feature(name="text_length", aggregation=last("text_length")),
        Feature(name="sentiment", aggregation=last("sentiment")),
        Feature(name="embedding_semantic", aggregation=last("embedding_semantic")),
        Feature(name="embedding_paraphrase", aggregation=last("embedding_paraphrase")),
        Feature(name="embedding_semantic_pca32", aggregation=last("embedding_semantic_pca32")),
    ),
)

USER_CONTENT_STATS = FeatureView(
    name="user_content_stats",
    entity="user",
    source="review-events",
    where=CREATED,
    description="What a user's reviews say, over time: tone and repetition.",
    features=(
        Feature(name="avg_sentiment_7d", aggregation=mean("sentiment"), window="7d"),
        Feature(
            name="max_text_similarity_7d",
            aggregation=Aggregation(kind="max_similarity_to_newest", field="embedding_semantic"),
            window="7d",
        ),
        Feature(
            name="centroid_distance_30d",
            aggregation=Aggregation(kind="centroid_distance_of_newest", field="embedding_semantic"),
            window="30d",
        ),
    ),
)

REGISTRY = Registry(
    entities=(USER, BUSINESS, REVIEW),
    sources=(REVIEW_EVENTS, USER_EVENTS),
    derived=tuple(("review-events", d) for d in REVIEW_DERIVED),
    views=(
        USER_REVIEW_STATS,
        USER_ACTIVITY,
        BUSINESS_REVIEW_STATS,
        REVIEW_CONTENT,
        USER_CONTENT_STATS,
    ),
    services=(
        FeatureService(
            name="review_fraud_model",
            features=(
                "user_review_stats",
                "user_activity",
                "business_review_stats",
                "review_content:text_length",
                "review_content:sentiment",
            ),
        ),
        FeatureService(name="account_risk_model", features=("user_review_stats", "user_activity")),
    ),
)
