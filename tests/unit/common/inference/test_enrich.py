"""`ModelFeatures` as the jobs run it: which records go to the models, what comes back,
and the dead letters; and the settings that choose the models and the sample.

Expected embeddings come from sentence-transformers' own `encode` (1e-5 absolute per
component, as in test_stage.py); the sample from a crc32 computed here.
"""

import json
import zlib

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from common.inference import models
from common.inference.enrich import KEY, ModelFeatures
from common.inference.settings import BACK, SENT, ModelSettings, skip_reason
from common.inference.stage import Batching, InferenceSettings
from common.metrics import local_counts, reset_local
from common.transforms import KeyByViewEntity
from feature_store.core.plan import ViewPlan
from feature_store.reference import REGISTRY
from jobs.backfill import plans_for

ATOL = 1e-5
SEMANTIC_ONLY = ModelSettings(models=("semantic",))
TEXTS = {
    "e1": "Absolutely wonderful: friendly staff, delicious food, I loved every minute.",
    "e2": "Terrible. Rude waiter, cold food, dirty tables. Never again.",
    "e3": "We ordered at seven and got the bill at nine.",
}


def _review(event_id: str, text: str, user: str = "u1", kind: str = "review_created") -> dict:
    return {
        "topic": "review-events",
        "event_id": event_id,
        "event_type": kind,
        "event_time": 1_700_000_000_000_000,
        "event_time_iso": "2023-11-14T22:13:20.000000Z",
        "review_id": f"r-{event_id}",
        "user_id": user,
        "business_id": "b1",
        "rating": 4,
        "text": text,
        "language": "en",
        "ip_hash": "ip",
        "device_id": "d",
        "reason": None,
    }


RECORDS = [
    *(_review(k, t) for k, t in TEXTS.items()),
    _review("empty", "   "),
    _review("flag", "", kind="review_flagged"),
    {"topic": "user-events", "event_id": "l1", "event_type": "login", "user_id": "u1"},
]


def _inference() -> InferenceSettings:
    small = Batching(min_batch_size=1, max_batch_size=2)
    return InferenceSettings(
        models=("semantic",),
        device="cpu",
        accelerator=None,
        id_field=KEY,
        batching={"semantic": small},
    )


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(models.semantic_path()), device="cpu")
    vectors = st.encode(list(TEXTS.values()), normalize_embeddings=True)
    return dict(zip(TEXTS, vectors, strict=True))


def _check(expected: dict[str, np.ndarray]):
    def check(records: list[dict]) -> None:
        by_id = {r["event_id"]: r for r in records}
        assert sorted(by_id) == sorted(r["event_id"] for r in RECORDS)
        for key, vector in expected.items():
            row = by_id[key]
            assert KEY not in row
            np.testing.assert_allclose(row["embedding_semantic"], vector, atol=ATOL)
            assert -1.0 <= row["sentiment"] <= 1.0
            assert "embedding_paraphrase" not in row  # that model did not run
        assert by_id["e1"]["sentiment"] > 0.3 > -0.3 > by_id["e2"]["sentiment"]
        for key in ("empty", "flag", "l1"):  # refused or read by no model view: unchanged
            original = next(r for r in RECORDS if r["event_id"] == key)
            assert by_id[key] == original

    return check


def _stage() -> ModelFeatures:
    plans, _ = plans_for(REGISTRY, None, SEMANTIC_ONLY)
    return ModelFeatures(REGISTRY, plans, SEMANTIC_ONLY, _inference(), batched=False)


def test_model_views_records_come_back_enriched_and_refusals_are_dead_letters(expected) -> None:
    reset_local()
    with BeamTestPipeline() as p:
        (out,), dead = p | beam.Create(RECORDS) | _stage()
        assert_that(out, _check(expected), label="Records")
        letters = dead | beam.Map(
            lambda d: (d.topic, d.reason, json.loads(d.raw)["event_id"], json.loads(d.raw))
        )
        want = {k: v for k, v in _review("empty", "   ").items() if v is not None}
        want["event_time"] = want.pop("event_time_iso")
        del want["topic"]
        assert_that(
            letters, equal_to([("review-events", "empty_text", "empty", want)]), label="Dead"
        )
    # what the stage took and gave back: the four reviews a model view reads (the flag and
    # the login it does not), three enriched and one refused
    counts = local_counts()
    assert (counts[SENT], counts[BACK]) == (4, 4)


def test_batched_lists_keep_every_record(expected) -> None:
    plans, _ = plans_for(REGISTRY, None, SEMANTIC_ONLY)
    stage = ModelFeatures(REGISTRY, plans, SEMANTIC_ONLY, _inference(), batched=True)
    with BeamTestPipeline() as p:
        lists = p | beam.Create([RECORDS[:3], RECORDS[3:]])
        (out,), _ = lists | stage
        flat = out | beam.FlatMap(lambda batch: batch)
        assert_that(flat, _check(expected))


def test_the_sample_takes_whole_users_by_a_stable_hash() -> None:
    settings = ModelSettings(sample=0.3)
    users = [f"u{i:05d}" for i in range(2000)]
    chosen = [u for u in users if settings.sampled({"user_id": u})]
    assert chosen == [u for u in users if zlib.crc32(u.encode()) / 2**32 < 0.3]
    assert 500 < len(chosen) < 700
    assert not settings.sampled({"user_id": None})
    assert ModelSettings().sampled({})  # 1.0: every record, with or without the field


def test_settings_parse_and_refuse_bad_values() -> None:
    assert ModelSettings.parse("none").models == ()
    assert ModelSettings.parse("semantic, paraphrase").models == ("semantic", "paraphrase")
    for bad in ("sentiment", "semantic,semantic", "none,semantic"):
        with pytest.raises(ValueError, match=r"semantic|sentiment"):
            ModelSettings.parse(bad)
    with pytest.raises(ValueError, match=r"1\.5"):
        ModelSettings(sample=1.5)


def test_views_are_computed_only_when_every_model_they_read_runs() -> None:
    content = ViewPlan.build(REGISTRY, "review_content")
    stats = ViewPlan.build(REGISTRY, "user_content_stats")
    counts = ViewPlan.build(REGISTRY, "user_review_stats")
    assert skip_reason(REGISTRY, content, ModelSettings()) is None
    assert skip_reason(REGISTRY, stats, SEMANTIC_ONLY) is None
    reason = skip_reason(REGISTRY, content, SEMANTIC_ONLY)
    assert reason is not None and "paraphrase" in reason
    off = ModelSettings.parse("none")
    for plan in (content, stats):
        reason = skip_reason(REGISTRY, plan, off)
        assert reason is not None and "models: none" in reason
    assert skip_reason(REGISTRY, counts, off) is None
    _, skipped = plans_for(REGISTRY, None, off)
    assert set(skipped) == {"review_content", "user_content_stats"}


def test_a_model_view_takes_only_records_with_its_model_fields() -> None:
    plans = [ViewPlan.build(REGISTRY, v) for v in ("user_review_stats", "user_content_stats")]
    keyer = KeyByViewEntity(REGISTRY, plans)
    plain = _review("e1", TEXTS["e1"])
    assert [k for k, _ in keyer.process(plain)] == [("user_review_stats", "u1")]
    enriched = {**plain, "sentiment": 0.5, "embedding_semantic": [0.1] * 384}
    views = [k for k, _ in keyer.process(enriched)]
    assert views == [("user_review_stats", "u1"), ("user_content_stats", "u1")]
