"""The multi-vector index: writes, idempotence, nearest neighbours against a brute force,
errors that name the value, and recall of the simulator's planted near-duplicates."""

import json
import multiprocessing
import os
from collections import defaultdict
from datetime import timedelta

import apache_beam as beam
import numpy as np
import pytest

from common import vector_index
from common.vector_index import IndexSettings, VectorIndexError, WriteVectorIndex

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture
def settings(tmp_path):
    s = IndexSettings(path=str(tmp_path / "index"), dims={"semantic": 8, "paraphrase": 4})
    yield s
    vector_index.close_all()


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _records(n: int, seed: int = 3) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    semantic, para = _unit(rng, n, 8), _unit(rng, n, 4)
    records = [
        {
            "review_id": f"r{i}",
            "business_id": f"b{i % 3}",
            "user_id": f"u{i}",
            "text": f"text {i}",
            "embedding_semantic": semantic[i].tolist(),
            "embedding_paraphrase": para[i].tolist(),
        }
        for i in range(n)
    ]
    return records, semantic


def test_nearest_reviews_equal_a_brute_force_cosine(settings) -> None:
    records, semantic = _records(40)
    vector_index.ensure_collection(settings)
    assert vector_index.upsert(settings, records) == 40
    got = vector_index.similar(settings, "r7", "semantic", 5)
    scores = semantic @ semantic[7]
    scores[7] = -np.inf  # the review itself is never its own neighbour
    want = np.argsort(-scores)[:5]
    assert [n.review_id for n in got] == [f"r{i}" for i in want]
    np.testing.assert_allclose([n.score for n in got], scores[want], atol=1e-5)
    assert got[0].business_id == f"b{want[0] % 3}"
    assert got[0].text == f"text {want[0]}"


def test_writing_a_review_again_overwrites_its_point(settings) -> None:
    records, _ = _records(5)
    vector_index.ensure_collection(settings)
    vector_index.upsert(settings, records)
    moved = dict(records[0], embedding_semantic=records[1]["embedding_semantic"])
    vector_index.upsert(settings, [moved, moved])
    client = vector_index.client(settings)
    assert client.count(settings.collection).count == 5
    nearest = vector_index.similar(settings, "r1", "semantic", 1)
    assert nearest[0].review_id == "r0"
    assert nearest[0].score == pytest.approx(1.0, abs=1e-6)


def test_records_without_every_vector_are_left_out(settings) -> None:
    records, _ = _records(3)
    records[1] = dict(records[1], embedding_paraphrase=None)
    vector_index.ensure_collection(settings)
    assert vector_index.upsert(settings, records) == 2
    with pytest.raises(VectorIndexError, match="'r1' is not in the vector index"):
        vector_index.similar(settings, "r1", "semantic", 3)


def test_errors_name_the_value(settings, tmp_path) -> None:
    with pytest.raises(VectorIndexError, match="is empty"):
        vector_index.similar(settings, "r0", "semantic", 3)
    with pytest.raises(VectorIndexError, match="'sparse'"):
        vector_index.similar(settings, "r0", "sparse", 3)
    with pytest.raises(ValueError, match="one of them"):
        IndexSettings(path=str(tmp_path), url="http://localhost:6333")
    with pytest.raises(ValueError, match="one of them"):
        IndexSettings()
    with pytest.raises(ValueError, match="'clip'"):
        IndexSettings(path=str(tmp_path), dims={"clip": 512})


def _hold(path: str, ready, done) -> None:
    vector_index.client(IndexSettings(path=path))
    ready.set()
    done.wait(30)


def test_a_folder_held_by_another_process_gives_a_clear_error(tmp_path) -> None:
    path = str(tmp_path / "held")
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(path, ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(VectorIndexError, match="Stop the job that holds it"):
            vector_index.client(IndexSettings(path=path))
    finally:
        done.set()
        holder.join(30)


def test_the_beam_transform_writes_every_record(settings) -> None:
    records, semantic = _records(25)
    with beam.Pipeline() as p:
        _ = p | beam.Create(records) | WriteVectorIndex(settings, max_batch_size=7)
    client = vector_index.client(settings)
    assert client.count(settings.collection).count == 25
    got = vector_index.similar(settings, "r3", "semantic", 1)
    scores = semantic @ semantic[3]
    scores[3] = -np.inf
    assert got[0].review_id == f"r{int(np.argmax(scores))}"


def _simulated_reviews() -> tuple[list[dict], dict[str, str]]:
    """Review records of a small simulation, and each fraud review's ring: a fraud
    scenario writes near-duplicates of one text, on one business (boost, campaign) or
    from one account (spam)."""
    from simulator.traffic import SimulationConfig, simulate

    config = SimulationConfig(
        seed=11, events=2_400, duration=timedelta(days=2), users=400, businesses=60,
        fraud_share=0.25,
    )  # fmt: skip
    records, ring = [], {}
    for message in simulate(config):
        event = json.loads(message.raw)
        if event.get("event_type") != "review_created":
            continue
        records.append(event)
        if message.fraud is not None:
            owner = event["user_id"] if message.fraud == "spam" else event["business_id"]
            ring[event["review_id"]] = f"{message.fraud}:{owner}"
    return records, ring


def test_similar_finds_the_planted_near_duplicates(tmp_path) -> None:
    """Every review through the model stage into the index, then recall@10 of each fraud
    review's ring-mates among its 10 nearest by the semantic vector."""
    from common.inference.stage import FEATURES, ComputeModelFeatures, InferenceSettings

    records, ring = _simulated_reviews()
    members: dict[str, list[str]] = defaultdict(list)
    for review, group in ring.items():
        members[group].append(review)
    assert len(members) >= 3, members.keys()
    settings = IndexSettings(path=str(tmp_path / "index"))
    try:
        with beam.Pipeline() as p:
            features = (
                p
                | beam.Create(records)
                | ComputeModelFeatures(InferenceSettings(device="cpu", accelerator=None))
            )
            _ = features[FEATURES] | WriteVectorIndex(settings)
        assert vector_index.client(settings).count(settings.collection).count == len(records)
        recalls, chance = [], []
        for review, group in ring.items():
            mates = set(members[group]) - {review}
            if not mates:
                continue
            found = {n.review_id for n in vector_index.similar(settings, review, "semantic", 10)}
            recalls.append(len(found & mates) / min(10, len(mates)))
            chance.append(min(10, len(mates)) / (len(records) - 1))
        assert len(recalls) >= 20
        recall = float(np.mean(recalls))
        # Near-duplicates of one text are nearer to each other than to anything else;
        # a random pick of 10 would find `chance` of them.
        assert recall >= 0.9, (recall, float(np.mean(chance)))
    finally:
        vector_index.close_all()
