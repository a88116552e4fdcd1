"""The backfill with the model stage, read back through Feast: `review_content`'s vectors
online (Redis and Bigtable) and point-in-time (BigQuery), against direct calls of the
models on the same texts; and `user_content_stats` against numpy on those vectors.

Tolerances: 1e-5 absolute per vector component and for the sentiment (float32 models;
the stage pads per batch, the direct calls per text), 1e-5 for the user statistics
(float32 vectors, computed here in float64).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from common.inference import models, paraphrase
from common.inference.settings import ModelSettings
from feature_store.config import PlatformConfig
from feature_store.reference import REGISTRY
from jobs.backfill import BackfillSummary, run_backfill
from jobs.consistency import check_consistency
from jobs.retrieval import get_historical, get_online
from simulator.traffic import SimulationConfig, simulate, write_jsonl

pytestmark = pytest.mark.integration
ATOL = 1e-5
VIEWS = ("review_content", "user_content_stats")
CONTENT = [f"review_content:{n}" for n in ("text_length", "sentiment")] + [
    "review_content:embedding_semantic",
    "review_content:embedding_paraphrase",
]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    config = SimulationConfig(
        seed=5,
        start=start,
        duration=timedelta(days=1),
        events=120,
        users=5,
        businesses=4,
        bad_share=0.0,
        duplicate_share=0.0,
    )
    messages = list(simulate(config))
    folder = tmp_path_factory.mktemp("reviews")
    write_jsonl(messages, folder)
    bodies = [json.loads(m.raw) for m in messages]
    created = [b for b in bodies if b.get("event_type") == "review_created"]
    return folder, created


@pytest.fixture(scope="module")
def backfilled(
    platform: PlatformConfig, reviews: tuple[Path, list[dict[str, Any]]]
) -> BackfillSummary:
    return run_backfill(platform, REGISTRY, [str(reviews[0])], views=VIEWS, models=ModelSettings())


@pytest.fixture(scope="module")
def direct(reviews: tuple[Path, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The models called directly, outside Beam: sentence-transformers' `encode` (and the
    shipped head on its embedding), onnxruntime on the paraphrase package's graph."""
    import torch
    from sentence_transformers import SentenceTransformer

    from common.inference.sentiment import load_head

    ort = pytest.importorskip("onnxruntime")
    texts = [r["text"] for r in reviews[1]]
    st = SentenceTransformer(str(models.semantic_path()), device="cpu")
    semantic = st.encode(texts, normalize_embeddings=True)
    with torch.inference_mode():
        sentiment = load_head(384)(torch.from_numpy(semantic)).numpy()
    session = ort.InferenceSession(str(paraphrase.onnx_path()))
    out = {}
    for i, review in enumerate(reviews[1]):
        enc = models.tokenizer()(texts[i], truncation=True, max_length=128, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
        pooled = session.run(["461"], feeds)[0][0]
        out[review["review_id"]] = {
            "semantic": semantic[i],
            "paraphrase": pooled / np.linalg.norm(pooled),
            "sentiment": float(sentiment[i]),
            "length": len(texts[i]),
        }
    return out


def _check_content(row: dict[str, Any], want: dict[str, Any]) -> None:
    assert row["review_content__text_length"] == want["length"]
    assert abs(row["review_content__sentiment"] - want["sentiment"]) <= ATOL
    semantic = np.asarray(row["review_content__embedding_semantic"])
    assert semantic.shape == (384,)
    np.testing.assert_allclose(semantic, want["semantic"], atol=ATOL)
    np.testing.assert_allclose(
        row["review_content__embedding_paraphrase"], want["paraphrase"], atol=ATOL
    )


def test_the_backfill_computes_the_model_views(backfilled: BackfillSummary, direct) -> None:
    assert backfilled.skipped_views == {}
    assert backfilled.rows_written["review_content"] == len(direct)
    assert backfilled.rows_written["user_content_stats"] > 0
    assert backfilled.model_refused == 0


@pytest.mark.parametrize("store", ["redis", "bigtable"])
def test_online_vectors_through_feast_equal_the_models(
    platform: PlatformConfig, backfilled: BackfillSummary, direct, store: str
) -> None:
    ids = sorted(direct)
    rows = get_online(platform, CONTENT, [{"review_id": r} for r in ids], store=store)
    for review_id, row in zip(ids, rows, strict=True):
        _check_content(row, direct[review_id])


def test_point_in_time_vectors_through_feast_equal_the_models(
    platform: PlatformConfig, backfilled: BackfillSummary, reviews, direct
) -> None:
    created = reviews[1]
    frame = pd.DataFrame(
        {
            "review_id": [r["review_id"] for r in created],
            "event_timestamp": pd.to_datetime([r["event_time"] for r in created], utc=True),
        }
    )
    before = frame.assign(event_timestamp=frame.event_timestamp - pd.Timedelta(seconds=1))
    rows = get_historical(platform, CONTENT, frame)
    for review, row in zip(created, rows, strict=True):
        _check_content(row, direct[review["review_id"]])
    for row in get_historical(platform, CONTENT, before):  # not yet written
        assert row["review_content__sentiment"] is None
        # BigQuery has no NULL array: a REPEATED column reads back empty
        assert row["review_content__embedding_semantic"] in (None, [])


def test_user_content_stats_from_the_vectors(
    platform: PlatformConfig, backfilled: BackfillSummary, reviews, direct
) -> None:
    """At the backfill's as-of every review is inside the 7-day and 30-day windows."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for review in sorted(reviews[1], key=lambda r: r["event_time"]):
        by_user.setdefault(review["user_id"], []).append(review)
    users = sorted(by_user)
    refs = [
        f"user_content_stats:{n}"
        for n in ("avg_sentiment_7d", "max_text_similarity_7d", "centroid_distance_30d")
    ]
    rows = get_online(platform, refs, [{"user_id": u} for u in users])
    for user, row in zip(users, rows, strict=True):
        mine = [direct[r["review_id"]] for r in by_user[user]]
        sentiments = [m["sentiment"] for m in mine]
        assert abs(row["user_content_stats__avg_sentiment_7d"] - np.mean(sentiments)) <= ATOL
        vectors = np.array([m["semantic"] for m in mine], dtype=np.float64)
        newest, others = vectors[-1], vectors[:-1]
        if len(others):
            cosines = others @ newest / (np.linalg.norm(others, axis=1) * np.linalg.norm(newest))
            got = row["user_content_stats__max_text_similarity_7d"]
            assert abs(got - cosines.max()) <= ATOL, user
        else:
            assert row["user_content_stats__max_text_similarity_7d"] is None
        distance = np.linalg.norm(newest - vectors.mean(axis=0))
        assert abs(row["user_content_stats__centroid_distance_30d"] - distance) <= ATOL, user


def test_online_and_offline_agree_on_the_model_views(
    platform: PlatformConfig, backfilled: BackfillSummary
) -> None:
    report = check_consistency(platform, REGISTRY, list(VIEWS), backfilled.as_of)
    assert report.entities > 0
    assert not report.mismatches, report.as_dict(examples=3)


def test_the_backfill_fills_the_vector_index(
    platform: PlatformConfig, backfilled: BackfillSummary, direct
) -> None:
    """One point per review, each named vector equal to the model's, and `similar`
    ranks by the semantic vector exactly as a brute-force cosine over the direct vectors."""
    from common import vector_index

    settings = vector_index.settings_for(platform)
    assert settings is not None
    client = vector_index.client(settings)
    assert client.count(settings.collection).count == len(direct)
    ids = sorted(direct)
    points = client.retrieve(
        settings.collection, ids=[vector_index.point_id(r) for r in ids], with_vectors=True
    )
    stored = {p.payload["review_id"]: p.vector for p in points}
    for review_id in ids:
        np.testing.assert_allclose(
            stored[review_id]["semantic"], direct[review_id]["semantic"], atol=ATOL
        )
        np.testing.assert_allclose(
            stored[review_id]["paraphrase"], direct[review_id]["paraphrase"], atol=ATOL
        )
    first = ids[0]
    got = vector_index.similar(settings, first, "semantic", 3)
    matrix = np.stack([direct[r]["semantic"] for r in ids])
    scores = matrix @ direct[first]["semantic"]
    ranked = [ids[i] for i in np.argsort(-scores) if ids[i] != first][:3]
    assert [n.review_id for n in got] == ranked
