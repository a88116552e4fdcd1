"""`apply` creates every topic, table and Feast object; the Feast SDK lists exactly the
reference views with the right types; a second apply changes nothing."""

from __future__ import annotations

import pytest
from feast import FeatureStore
from google.cloud import pubsub_v1

from common.bigquery_client import make_client
from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.provision import feast_changes, infrastructure_changes, repo_path
from tests.unit.feature_store.test_definitions import FEATURES_MD

pytestmark = pytest.mark.integration
FEAST_TYPES = {
    "INT64": "Int64",
    "FLOAT64": "Float64",
    "TIMESTAMP": "UnixTimestamp",
    "FLOAT32_VECTOR": "Array(Float32)",
}


@pytest.mark.parametrize("store", ["redis", "bigtable"])
def test_feast_lists_exactly_the_reference_features(platform: PlatformConfig, store: str) -> None:
    fs = FeatureStore(repo_path=str(repo_path(platform, store)))
    got = {fv.name: {f.name: str(f.dtype) for f in fv.features} for fv in fs.list_feature_views()}
    expected = {
        view: {name: FEAST_TYPES[t] for name, t in features.items()}
        for view, features in FEATURES_MD.items()
    }
    assert got == expected
    assert sorted(s.name for s in fs.list_feature_services()) == [
        "account_risk_model",
        "review_fraud_model",
    ]
    assert {e.name: e.join_key for e in fs.list_entities()} == {
        "user": "user_id",
        "business": "business_id",
        "review": "review_id",
    }


def test_topics_subscriptions_and_tables_exist(platform: PlatformConfig) -> None:
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for topic in ("review-events", "user-events"):
        for name in (topic, f"{topic}-dlq", f"{topic}-late"):
            publisher.get_topic(
                topic=publisher.topic_path(platform.project, platform.topic_id(name))
            )
        sub = subscriber.get_subscription(
            subscription=subscriber.subscription_path(
                platform.project, platform.topic_id(f"{topic}-stream")
            )
        )
        assert sub.ack_deadline_seconds >= 10
    subscriber.close()
    client = make_client(platform.project, platform.endpoints.bigquery)
    table = client.get_table(f"{platform.project}.{platform.features_dataset}.user_review_stats")
    assert [f.name for f in table.schema][:2] == ["user_id", "valid_from"]
    assert table.time_partitioning.field == "valid_from"
    assert table.clustering_fields == ["user_id"]
    client.get_table(f"{platform.project}.{platform.archive_dataset}.review_events_raw")


def test_apply_again_changes_nothing(platform: PlatformConfig) -> None:
    changes = infrastructure_changes(platform, REGISTRY, apply=True)
    changes += feast_changes(platform, REGISTRY, apply=False)
    assert [str(c) for c in changes if c.action != "exists"] == []
