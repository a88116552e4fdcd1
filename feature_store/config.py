"""Where the platform runs: project ids, dataset and instance names, local endpoints.

One `PlatformConfig` is shared by every command and job. The local profile points the
Google clients at the emulators through the environment variables they honour; the
production profile leaves them unset and names a real GCP project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from feature_store.errors import ConfigError

LOCAL_PROJECT = "local-project"


@dataclass(frozen=True, kw_only=True)
class Endpoints:
    """Host:port of each local emulator (the docker-compose ports)."""

    host: str = "127.0.0.1"
    pubsub_port: int = 8085
    bigtable_port: int = 8086
    bigquery_port: int = 9050
    bigquery_grpc_port: int = 9060
    redis_port: int = 6379

    @classmethod
    def from_env(cls) -> Endpoints:
        """Ports may be moved with FEATURE_STORE_<SERVICE>_PORT (e.g. when one is taken)."""
        values: dict[str, Any] = {}
        for name in ("pubsub", "bigtable", "bigquery", "bigquery_grpc", "redis"):
            raw = os.environ.get(f"FEATURE_STORE_{name.upper()}_PORT")
            if raw is None:
                continue
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                msg = f"FEATURE_STORE_{name.upper()}_PORT must be a port number, got {raw!r}"
                raise ConfigError(msg)
            values[f"{name}_port"] = int(raw)
        return cls(**values)

    @property
    def pubsub(self) -> str:
        return f"{self.host}:{self.pubsub_port}"

    @property
    def bigtable(self) -> str:
        return f"{self.host}:{self.bigtable_port}"

    @property
    def bigquery(self) -> str:
        return f"http://{self.host}:{self.bigquery_port}"

    @property
    def redis(self) -> str:
        return f"{self.host}:{self.redis_port}"

    def env(self) -> dict[str, str]:
        """The environment variables the Google clients honour for emulators."""
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub,
            "BIGTABLE_EMULATOR_HOST": self.bigtable,
            "BIGQUERY_EMULATOR_HOST": self.bigquery,
            "GOOGLE_CLOUD_PROJECT": LOCAL_PROJECT,
        }


@dataclass(frozen=True, kw_only=True)
class PlatformConfig:
    """Names and endpoints of everything the jobs read and write."""

    project: str = LOCAL_PROJECT
    local: bool = True
    bigtable_instance: str = "feature-store"
    features_dataset: str = "features"
    archive_dataset: str = "events"
    feast_project: str = "reviews"
    online_stores: tuple[str, ...] = ("redis", "bigtable")
    redis_url: str | None = None
    # Secret Manager version of the Redis AUTH string (production), read by the workers.
    redis_password_secret: str | None = None
    # A Qdrant server for the vector index; locally, without one, an embedded index in
    # the state folder; in production, without one, no index is written.
    vector_index_url: str | None = None
    topic_prefix: str = ""  # isolates several platforms on one Pub/Sub project (tests)
    state_dir: Path = field(default_factory=lambda: Path(".local"))
    endpoints: Endpoints = field(default_factory=Endpoints)
    # How far an event_time may lie after its message's publish time (EVENTS.md).
    clock_skew_s: float = 300.0
    # Where fitted artefacts (projections) live for both jobs; default: the state
    # directory locally, the Dataflow bucket (gs://<project>-dataflow) in production.
    artifacts: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.clock_skew_s < 366 * 86_400:
            msg = f"clock_skew_s must be between 0 and a year in seconds, got {self.clock_skew_s}"
            raise ConfigError(msg)
        unknown = [s for s in self.online_stores if s not in ("redis", "bigtable")]
        if unknown or not self.online_stores:
            msg = (
                "online_stores must be a non-empty subset of redis, bigtable; "
                f"got {self.online_stores}"
            )
            raise ConfigError(msg)

    @classmethod
    def local_default(cls, state_dir: Path | str = ".local") -> PlatformConfig:
        return cls(
            state_dir=Path(state_dir),
            endpoints=Endpoints.from_env(),
            vector_index_url=os.environ.get("FEATURE_STORE_QDRANT_URL") or None,
        )

    def for_project(self, project: str) -> PlatformConfig:
        """The production profile: real GCP, no emulator endpoints."""
        return replace(self, project=project, local=False)

    @property
    def redis_connection(self) -> str:
        if self.redis_url:
            return self.redis_url
        return self.endpoints.redis

    @property
    def bigquery_endpoint(self) -> str | None:
        """The BigQuery emulator's endpoint locally; None (Google's) in production."""
        return self.endpoints.bigquery if self.local else None

    def topic_id(self, name: str) -> str:
        """The Pub/Sub id of a topic or subscription named by the registry."""
        return f"{self.topic_prefix}{name}"

    @property
    def artifacts_root(self) -> str:
        if self.artifacts:
            return self.artifacts
        if self.local:
            return str(self.state_dir / "artifacts")
        return f"gs://{self.project}-dataflow/artifacts"

    @property
    def feast_repo(self) -> Path:
        return self.state_dir / "feast_repo"

    def apply_env(self) -> None:
        """Point the Google clients of this process at the emulators (local profile)."""
        if self.local:
            os.environ.update(self.endpoints.env())
