"""Connection settings of the Redis online writer that are not in Feast's config:
bounded socket timeouts, so a hung server fails a write instead of blocking a bundle
forever, and AUTH/TLS with the password read on the worker, never pickled.

A Redis that accepts connections and never answers (a paused VM, a full network buffer,
a failover in progress) would otherwise hold a worker thread for good: redis-py has no
socket timeout unless one is given. With these, each attempt fails within
`connect_s` + `read_s`, the writer's `RetryPolicy` retries it with backoff, and the last
failure fails the bundle, which Beam retries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from feature_store.errors import ConfigError

DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class RedisTimeouts:
    """Socket timeouts of every connection the writer opens, in seconds. A timeout the
    connection string sets itself (`host:port,socket_timeout=2`) wins."""

    connect_s: float = DEFAULT_CONNECT_TIMEOUT_S
    read_s: float = DEFAULT_READ_TIMEOUT_S

    def __post_init__(self) -> None:
        for name, value in (("connect_s", self.connect_s), ("read_s", self.read_s)):
            if not value > 0:
                msg = f"redis timeout {name} must be positive, got {value!r}"
                raise ConfigError(msg)

    def apply(self, connection_kwargs: dict[str, Any]) -> None:
        """Set the timeouts in a connection pool's kwargs (before it connects)."""
        for name, default in (
            ("socket_connect_timeout", self.connect_s),
            ("socket_timeout", self.read_s),
        ):
            given = connection_kwargs.get(name)
            try:
                connection_kwargs[name] = float(given) if given is not None else default
            except (TypeError, ValueError) as err:
                msg = f"redis {name} must be a number of seconds, got {given!r}"
                raise ConfigError(msg) from err


PASSWORD_ENV = "FEATURE_STORE_REDIS_PASSWORD"
_SECRET_VERSION = re.compile(r"projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+")


@cache
def read_secret(version: str) -> str:
    """A Secret Manager secret version's value, read once per worker process."""
    from google.cloud import secretmanager

    client = secretmanager.SecretManagerServiceClient()
    payload: bytes = client.access_secret_version(name=version).payload.data
    return payload.decode("utf-8")


USERNAME_ENV = "FEATURE_STORE_REDIS_USERNAME"


@dataclass(frozen=True, kw_only=True)
class RedisSecurity:
    """AUTH and TLS of the writer's Redis connections.

    The password is never a setting, only where the worker finds it when it connects:
    `password_secret`, a Secret Manager version (`projects/P/secrets/S/versions/latest`,
    read with the worker's own credentials; what a Dataflow job uses), else the
    environment variable `password_env` (local runs). So it is in no pickled pipeline, no
    job graph, no template parameter, no log line. `tls` switches to TLS (Memorystore's
    in-transit encryption); `ca_certs` is the server CA file on the worker.
    """

    password_env: str = PASSWORD_ENV
    username_env: str = USERNAME_ENV
    password_secret: str | None = None
    tls: bool = False
    ca_certs: str | None = None

    def __post_init__(self) -> None:
        if self.password_secret is not None and not _SECRET_VERSION.fullmatch(self.password_secret):
            msg = (
                f"redis password secret {self.password_secret!r} is not a Secret Manager "
                "version name: projects/PROJECT/secrets/SECRET/versions/VERSION"
            )
            raise ConfigError(msg)

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        if self.password_secret is not None:
            return read_secret(self.password_secret)
        env = os.environ if environ is None else environ
        return env.get(self.password_env) or None

    def apply(self, pool: Any, environ: Mapping[str, str] | None = None) -> None:
        """Configure a connection pool before it connects."""
        env = os.environ if environ is None else environ
        kwargs = pool.connection_kwargs
        password = self.password(env)
        if password:
            kwargs["password"] = password
            username = env.get(self.username_env)
            if username:
                kwargs["username"] = username
        if self.tls:
            from redis.connection import SSLConnection

            pool.connection_class = SSLConnection
            kwargs["ssl_cert_reqs"] = "required"
            if self.ca_certs:
                kwargs["ssl_ca_certs"] = self.ca_certs


_SECRET_IN_STRING = re.compile(r"(^|,)\s*password\s*=|://[^/@]*:[^/@]+@", re.IGNORECASE)


def refuse_inline_password(connection: str | None, where: str) -> None:
    """A Redis connection string that carries a password would be pickled into the
    pipeline (and shown in its graph): refuse it, naming where it came from and the
    variable to use instead. The password itself is not repeated."""
    if connection and _SECRET_IN_STRING.search(connection):
        msg = (
            f"the redis connection of {where} carries a password; remove it and set "
            f"{PASSWORD_ENV} on the workers instead"
        )
        raise ConfigError(msg)


_PASSWORD_PARAM = re.compile(r",\s*password\s*=[^,]*", re.IGNORECASE)


def strip_password(connection: str) -> str:
    """A Feast connection string (`host:port,db=0,password=...`) without its password:
    what may be pickled. The writer takes the password from the environment."""
    return _PASSWORD_PARAM.sub("", connection)
