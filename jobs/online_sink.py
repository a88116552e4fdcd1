"""The online sink both jobs end in, configured from the platform's Feast repos."""

from __future__ import annotations

from feature_store.config import PlatformConfig
from jobs.provision import repo_path, write_feast_repos
from online.redis_settings import RedisSecurity
from online.sink import OnlineStoreSpec, WriteToOnlineStores


def online_store_spec(config: PlatformConfig) -> OnlineStoreSpec:
    write_feast_repos(config)
    repos = {store: repo_path(config, store) for store in config.online_stores}
    return OnlineStoreSpec.create(
        redis=repos.get("redis"),
        bigtable=repos.get("bigtable"),
        redis_connection=config.redis_connection,
        bigtable_project=config.project,
        bigtable_instance=config.bigtable_instance,
        redis_security=RedisSecurity(password_secret=config.redis_password_secret),
    )


def online_sink(config: PlatformConfig) -> WriteToOnlineStores:
    return WriteToOnlineStores(online_store_spec(config))
