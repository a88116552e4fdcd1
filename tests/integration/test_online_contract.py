"""Contract: what our writers put in Redis and Bigtable, Feast's SDK reads back.

Every test runs against both online stores (the running Redis and Bigtable emulator),
each in a fresh Feast repo with a project of its own, and reads only through
`FeatureStore.get_online_features`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feature_store.config import Endpoints
from online.rows import OnlineRow
from tests.integration.online_repos import (
    VIEWS,
    OnlineRepo,
    make_repo,
    point_clients_at_emulators,
    whole_seconds,
)
from tests.unit.online.views import FEATURES

pytestmark = pytest.mark.integration

T0 = datetime(2024, 6, 1, 9, 30, 0, 123_456, tzinfo=UTC)
NAMES = [f.name for f in FEATURES]


@pytest.fixture(scope="module")
def endpoints() -> Endpoints:
    found = Endpoints.from_env()
    point_clients_at_emulators(found)
    return found


@pytest.fixture(params=["redis", "bigtable"])
def repo(
    request: pytest.FixtureRequest, tmp_path: Path, endpoints: Endpoints
) -> Iterator[OnlineRepo]:
    made = make_repo(request.param, tmp_path / request.param, endpoints)
    yield made
    made.close()


def features(count: int, rating: float | None, category: str | None) -> dict[str, object]:
    return {
        "review_count": count,
        "avg_rating": rating,
        "last_category": category,
        "last_review_at": T0 + timedelta(minutes=count),
        "embedding": [0.5, -1.25, float(count)],
        "is_verified": count % 2 == 0,
    }


def row(user: str, values: dict[str, object], at: datetime = T0, view: str = VIEWS[0]) -> OnlineRow:
    return OnlineRow(view=view, entity_key=(["user_id"], [user]), features=values, valid_from=at)


def expected(values: dict[str, object]) -> list[object]:
    """What Feast returns for `values`: timestamps to the second, float32 vectors."""
    out = []
    for name in NAMES:
        value = values[name]
        out.append(whole_seconds(value) if isinstance(value, datetime) else value)
    return out


def read_row(repo: OnlineRepo, user: str, view: str = VIEWS[0]) -> list[object]:
    response = repo.read([user], view)
    return [response[name][0] for name in NAMES]


def test_written_rows_read_back_through_feast(repo: OnlineRepo) -> None:
    alice = features(3, 4.5, "books")
    bob = features(8, None, None)
    weekly = features(20, 3.25, "music")
    stats = repo.writer.write(
        [
            row("alice", alice),
            row("bob", bob, T0 + timedelta(hours=1)),
            row("alice", weekly, view=VIEWS[1]),
        ]
    )
    assert (stats.rows, stats.written) == (3, 3)
    response = repo.read(["alice", "bob", "nobody"], event_ts=True)
    for i, values in enumerate([expected(alice), expected(bob), [None] * len(NAMES)]):
        assert [response[name][i] for name in NAMES] == values
    # Feast returns event timestamps as whole unix seconds
    assert response["review_count__ts"][:2] == [int(T0.timestamp()), int(T0.timestamp()) + 3600]
    assert read_row(repo, "alice", VIEWS[1]) == expected(weekly)


def test_older_row_never_overwrites_newer(repo: OnlineRepo) -> None:
    newer, older = features(5, 4.0, "games"), features(1, 1.0, "toys")
    repo.writer.write([row("carol", newer, T0 + timedelta(seconds=1))])
    late = repo.writer.write([row("carol", older, T0)])
    assert read_row(repo, "carol") == expected(newer)
    if repo.store == "redis":
        assert (late.written, late.stale) == (0, 1)
    same_call = repo.writer.write(
        [row("dave", newer, T0 + timedelta(seconds=1)), row("dave", older)]
    )
    assert same_call.coalesced == 1
    assert read_row(repo, "dave") == expected(newer)


def test_equal_valid_from_rewrite_is_idempotent(repo: OnlineRepo) -> None:
    values = features(2, 2.5, "garden")
    first = repo.writer.write([row("erin", values)])
    again = repo.writer.write([row("erin", values)])
    assert (first.written, again.written, again.stale) == (1, 1, 0)
    assert read_row(repo, "erin") == expected(values)


def test_none_and_left_out_features_read_as_none(repo: OnlineRepo) -> None:
    repo.writer.write([row("frank", features(4, 3.5, "films"))])
    repo.writer.write([row("frank", {"review_count": 6, "avg_rating": None}, T0 + timedelta(1))])
    assert read_row(repo, "frank") == [6, *[None] * (len(NAMES) - 1)]
