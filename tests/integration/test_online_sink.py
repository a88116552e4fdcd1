"""The Beam sink writes both online stores through a pipeline; Feast reads the result."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from feature_store.config import Endpoints
from online.rows import OnlineRow, RejectedRow
from online.sink import METRICS_NAMESPACE, OnlineStoreSpec, WriteToOnlineStores
from tests.integration.online_repos import (
    VIEWS,
    OnlineRepo,
    make_repo,
    point_clients_at_emulators,
)

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)


def row(user: str, count: int, at: datetime, **extra: object) -> OnlineRow:
    values = {"review_count": count, "embedding": [0.5, float(count)], **extra}
    return OnlineRow(VIEWS[0], (["user_id"], [user]), values, at)


def rejected_users(rejected: RejectedRow) -> tuple[str, str]:
    _, (user,) = rejected.row.entity_key  # type: ignore[misc]
    return user, "mood" if "mood" in rejected.reason else rejected.reason.split("`")[1]


def counters(result: beam.runners.runner.PipelineResult) -> dict[str, int]:
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    return {c.key.metric.name: c.committed for c in query["counters"]}


@pytest.fixture
def repos(tmp_path: Path) -> Iterator[list[OnlineRepo]]:
    """A Redis and a Bigtable Feast repo sharing one fresh project name."""
    endpoints = Endpoints.from_env()
    point_clients_at_emulators(endpoints)
    project = f"t{uuid.uuid4().hex[:10]}"
    made = [make_repo(s, tmp_path / s, endpoints, project) for s in ("redis", "bigtable")]
    yield made
    for repo in made:
        repo.close()


def test_pipeline_writes_rows_feast_reads_from_both_stores(repos: list[OnlineRepo]) -> None:
    spec = OnlineStoreSpec.create(redis=repos[0].path, bigtable=repos[1].path, batch_size=2)
    second = timedelta(seconds=1)
    rows = [
        row("u0", 1, T0),
        row("u0", 2, T0 + second),
        row("u1", 5, T0),
        row("u1", 3, T0 - second),
        row("u2", 7, T0),
        row("u3", 9, T0, mood="happy"),
        row("u4", 4, T0, avg_rating="great"),
    ]
    pipeline = test_pipeline.TestPipeline()
    rejected = pipeline | beam.Create(rows) | WriteToOnlineStores(spec)
    assert_that(
        rejected | beam.Map(rejected_users),
        equal_to([("u3", "mood"), ("u4", "user_activity:avg_rating")]),
    )
    result = pipeline.run()
    result.wait_until_finish()

    for repo in repos:
        response = repo.read(["u0", "u1", "u2", "u3", "u4"])
        assert response["review_count"] == [2, 5, 7, None, None], repo.store
        assert response["embedding"] == [[0.5, 2.0], [0.5, 5.0], [0.5, 7.0], None, None]
    found = counters(result)
    assert found["rows_rejected"] == 2
    assert 3 <= found["rows_written_redis"] <= 5  # coalescing depends on bundle boundaries
    assert 3 <= found["rows_written_bigtable"] <= 5


def test_batches_in_flight_keep_newer_wins_across_batches(repos: list[OnlineRepo]) -> None:
    """One row a batch: each batch is sent while the next is built, and a stale row in a
    later batch leaves the newer one in place."""
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import Timestamp

    from common.metrics import local_counts, reset_local
    from online.sink import _WriteRowsFn

    spec = OnlineStoreSpec.create(redis=repos[0].path, bigtable=repos[1].path, batch_size=1)
    fn = _WriteRowsFn(spec)
    fn.setup()
    second = timedelta(seconds=1)
    rows = [row("u0", 1, T0), row("u0", 2, T0 + second), row("u0", 3, T0 - second)]
    rows += [row("u1", n, T0 + n * second) for n in range(20)]
    reset_local()
    fn.start_bundle()
    for each in rows:
        assert list(fn.process(each, Timestamp(0), GlobalWindow())) == []
    assert list(fn.finish_bundle()) == []
    for repo in repos:
        assert repo.read(["u0", "u1"])["review_count"] == [2, 19], repo.store
    counts = local_counts()
    assert counts.get("rows_written_redis") == len(rows) - 1  # u0's stale row is refused
    assert counts.get("online_rows_taken") == len(rows)
