"""Every row the stateful step hands out is accounted for on its way to the stores:
folded into its batch's latest (`ROWS_FOLDED`) or taken by the sink once its write
returned, written or refused (`ROWS_TAKEN`); `jobs.stream.StreamProgress` waits on it."""

from __future__ import annotations

from datetime import UTC, datetime

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from common.metrics import local_counts, reset_local
from feature_store.core.plan import ViewPlan
from feature_store.core.windows import RowBatch
from feature_store.reference import REGISTRY
from online.from_rows import ROWS_FOLDED, to_online_rows
from online.rows import OnlineRow
from online.sink import ROWS_TAKEN, OnlineStoreSpec, WriteToOnlineStores
from tests.unit.online.test_rejected import REDIS
from tests.unit.online.views import user_view

PLAN = ViewPlan.build(REGISTRY, "review_content")
WHEN = datetime(2024, 5, 1, 12, tzinfo=UTC)


def _batch(review: str, lengths: list[int]) -> RowBatch:
    n = len(lengths)
    values = {f.name: np.full(n, np.nan) for f in PLAN.features}
    values["text_length"] = np.asarray(lengths, dtype=np.float64)
    return RowBatch.of("review_content", review, np.arange(n, dtype=np.int64) + 1, values)


def test_the_rows_a_batch_folds_into_its_latest_are_counted() -> None:
    reset_local()
    batches = [_batch("rv-1", [139, 121]), _batch("rv-2", [64]), _batch("rv-3", [5, 6, 7])]
    with BeamTestPipeline() as pipeline:
        rows = pipeline | beam.Create(batches) | to_online_rows([PLAN])
        got = rows | beam.Map(lambda r: (r.entity_key[1][0], r.features["text_length"]))
        assert_that(got, equal_to([("rv-1", 121), ("rv-2", 64), ("rv-3", 7)]))
    assert local_counts().get(ROWS_FOLDED) == (2 - 1) + (1 - 1) + (3 - 1)


def test_rows_the_stores_refuse_are_taken_too() -> None:
    """No Redis answers here: every row is refused before a write, and each is taken."""
    reset_local()
    spec = OnlineStoreSpec.create(redis=REDIS, feature_views=[user_view("user_activity")])
    rows = [
        OnlineRow(
            view="user_activity",
            entity_key=(["user_id"], [f"u{i}"]),
            features={"review_count": "not a number"},
            valid_from=WHEN,
        )
        for i in range(3)
    ]
    rows.append(
        OnlineRow(
            view="unknown_view", entity_key=(["user_id"], ["u9"]), features={}, valid_from=WHEN
        )
    )
    with BeamTestPipeline() as pipeline:
        rejected = pipeline | beam.Create(rows) | WriteToOnlineStores(spec)
        assert_that(rejected | beam.combiners.Count.Globally(), equal_to([4]))
    assert local_counts().get(ROWS_TAKEN) == 4
