"""A small Feast feature view with one field of each dtype the writers handle."""

from __future__ import annotations

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Bool, Float32, Float64, Int64, String, UnixTimestamp

USER = Entity(name="user", join_keys=["user_id"], value_type=ValueType.STRING)

FEATURES = (
    Field(name="review_count", dtype=Int64),
    Field(name="avg_rating", dtype=Float64),
    Field(name="last_category", dtype=String),
    Field(name="last_review_at", dtype=UnixTimestamp),
    Field(name="embedding", dtype=Array(Float32)),
    Field(name="is_verified", dtype=Bool),
)


def user_view(name: str = "user_activity", source_path: str = "unused.parquet") -> FeatureView:
    return FeatureView(
        name=name,
        entities=[USER],
        schema=[Field(name="user_id", dtype=String), *FEATURES],
        source=FileSource(path=source_path, timestamp_field="event_ts"),
        online=True,
    )
