"""Connection settings of the Redis online writer that are not in Feast's config:
bounded socket timeouts, so a hung server fails a write instead of blocking a bundle
forever.

A Redis that accepts connections and never answers (a paused VM, a full network buffer,
a failover in progress) would otherwise hold a worker thread for good: redis-py has no
socket timeout unless one is given. With these, each attempt fails within
`connect_s` + `read_s`, the writer's `RetryPolicy` retries it with backoff, and the last
failure fails the bundle, which Beam retries.
"""

from __future__ import annotations

from dataclasses import dataclass
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
