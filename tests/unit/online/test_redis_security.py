"""Redis AUTH and TLS: the password is read from the environment where the connection
is made, and is in no pickled spec and no error message."""

from __future__ import annotations

import pickle

import pytest
from redis.connection import SSLConnection

from feature_store.errors import ConfigError
from online.redis_settings import PASSWORD_ENV, RedisSecurity, strip_password
from online.redis_writer import connect_redis
from online.sink import OnlineStoreSpec
from tests.unit.online.test_sink import config
from tests.unit.online.views import user_view

SECRET = "hunter2-not-in-any-pickle"


def test_a_password_in_the_feast_config_is_not_pickled() -> None:
    redis = config({"type": "redis", "connection_string": f"cache:6379,password={SECRET},db=1"})
    spec = OnlineStoreSpec.create(redis=redis, feature_views=[user_view()])
    assert SECRET.encode() not in pickle.dumps(spec)
    assert spec.repo_configs["redis"]["online_store"]["connection_string"] == "cache:6379,db=1"


@pytest.mark.parametrize(
    "connection", [f"cache:6379,password={SECRET}", f"redis://user:{SECRET}@cache:6379/0"]
)
def test_an_inline_password_for_the_writer_is_refused_without_repeating_it(
    connection: str,
) -> None:
    redis = config({"type": "redis", "connection_string": "cache:6379"})
    with pytest.raises(ConfigError, match=PASSWORD_ENV) as caught:
        OnlineStoreSpec.create(
            redis=redis, feature_views=[user_view()], redis_connection=connection
        )
    assert SECRET not in str(caught.value)


def test_the_password_comes_from_the_environment_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis = config({"type": "redis", "connection_string": "cache:6379"})
    client, target, _ = connect_redis(redis, None)
    assert client.connection_pool.connection_kwargs.get("password") is None
    monkeypatch.setenv(PASSWORD_ENV, SECRET)
    client, target, _ = connect_redis(redis, None)
    assert client.connection_pool.connection_kwargs["password"] == SECRET
    assert SECRET not in target


def test_tls_uses_ssl_connections_with_the_ca() -> None:
    redis = config({"type": "redis", "connection_string": "cache:6379"})
    security = RedisSecurity(tls=True, ca_certs="/etc/ca.pem")
    client, _, _ = connect_redis(redis, None, security=security)
    pool = client.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"


def test_strip_password_keeps_the_other_parameters() -> None:
    assert strip_password("a:1,db=2,password=x,ssl=true") == "a:1,db=2,ssl=true"
    assert strip_password("a:1") == "a:1"


VERSION = "projects/p/secrets/feature-store-redis-auth/versions/latest"


def test_the_password_comes_from_secret_manager_when_a_secret_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from online import redis_settings

    asked: list[str] = []

    def access(version: str) -> str:
        asked.append(version)
        return SECRET

    monkeypatch.setattr(redis_settings, "read_secret", access)
    monkeypatch.setenv(PASSWORD_ENV, "not-this-one")
    redis = config({"type": "redis", "connection_string": "cache:6379"})
    security = RedisSecurity(password_secret=VERSION)
    spec = OnlineStoreSpec.create(redis=redis, feature_views=[user_view()], redis_security=security)
    assert SECRET.encode() not in pickle.dumps(spec)  # only the secret's name travels
    client, target, _ = connect_redis(redis, None, security=security)
    assert client.connection_pool.connection_kwargs["password"] == SECRET
    assert asked == [VERSION]
    assert SECRET not in target


def test_a_secret_that_is_no_version_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="'feature-store-redis-auth' is not a Secret Manager"):
        RedisSecurity(password_secret="feature-store-redis-auth")
