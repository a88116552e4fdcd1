"""The generated feature_store.yaml: which store types each profile names, and that
Feast resolves them to the classes meant."""

from __future__ import annotations

import yaml
from feast.repo_config import RepoConfig

from feature_store.config import Endpoints, PlatformConfig
from feature_store.feast_repo import repo_config, repo_yaml

LOCAL = PlatformConfig(endpoints=Endpoints(bigquery_port=9123, redis_port=6390))
PRODUCTION = LOCAL.for_project("real-project")


def test_local_repo_names_the_emulator_bound_offline_store_with_its_endpoint() -> None:
    offline = repo_config(LOCAL)["offline_store"]
    assert offline == {
        "type": "offline.feast_bigquery.EmulatorBigQueryOfflineStore",
        "project_id": "local-project",
        "dataset": "features",
        "location": "US",
        "endpoint": "http://127.0.0.1:9123",
    }


def test_production_repo_names_feasts_own_bigquery_store() -> None:
    offline = repo_config(PRODUCTION)["offline_store"]
    assert offline == {
        "type": "bigquery",
        "project_id": "real-project",
        "dataset": "features",
        "location": "US",
    }
    assert repo_config(PRODUCTION)["provider"] == "gcp"


def test_feast_resolves_every_type_of_the_generated_yaml() -> None:
    for platform in (LOCAL, PRODUCTION):
        for store in ("redis", "bigtable"):
            content = yaml.safe_load(repo_yaml(platform, store))
            config = RepoConfig(**content)
            online, offline = config.online_store, config.offline_store
            assert f"{type(online).__module__}.{type(online).__name__}" == (
                content["online_store"]["type"] + "Config"
            )
            expected = {
                "bigquery": "feast.infra.offline_stores.bigquery.BigQueryOfflineStore",
            }.get(content["offline_store"]["type"], content["offline_store"]["type"])
            assert f"{type(offline).__module__}.{type(offline).__name__}" == expected + "Config"
    assert RepoConfig(**yaml.safe_load(repo_yaml(LOCAL))).online_store.connection_string == (
        "127.0.0.1:6390"
    )
