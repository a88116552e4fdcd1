"""The online sink both jobs end in, configured from the platform's Feast repos."""

from __future__ import annotations

from feature_store.config import PlatformConfig
from jobs.provision import repo_path, write_feast_repos
from online.redis_settings import RedisSecurity
from online.sink import OnlineStoreSpec, WriteToOnlineStores
from online.write_support import RetryPolicy

JOB_RETRY = RetryPolicy(attempts=10)
"""The jobs' writers retry a transient store error for 21 to 43 s (0.2 s doubling up to
10 s, jittered) before they fail their bundle: a store restarted within that time costs
no bundle. The local runner gives a bundle 4 attempts, then fails the job: with the
default 5 attempts (1.5 to 3 s each) a 20 s Redis restart killed the local stream."""


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
        retry=JOB_RETRY,
    )


def online_sink(config: PlatformConfig) -> WriteToOnlineStores:
    return WriteToOnlineStores(online_store_spec(config))
