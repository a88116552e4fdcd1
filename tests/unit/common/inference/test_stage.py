"""The stage in a TestPipeline against direct calls of the same models.

Expected values are computed outside Beam: the semantic embedding with
sentence-transformers' own `encode` (its tokenisation, padding and pooling), the paraphrase
embedding with onnxruntime on the package's ONNX graph. Tolerance: 1e-5 absolute per
component (float32; the stage pads per batch, `encode` per call).
"""

import apache_beam as beam
import numpy as np
import pytest
import torch
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from common.inference import models, paraphrase
from common.inference.enrich import ModelFeatures
from common.inference.handlers import padded_inference
from common.inference.settings import ModelSettings
from common.inference.stage import (
    DEAD_LETTER,
    FEATURES,
    Batching,
    ComputeModelFeatures,
    InferenceSettings,
    keyed_handler,
)
from feature_store.reference import REGISTRY

ATOL = 1e-5
GOOD = {
    "e1": "Absolutely wonderful: friendly staff, delicious food, I loved every minute.",
    "e2": "Terrible. Rude waiter, cold food, dirty tables. Never again, a total waste of money.",
    "e3": "We ordered at seven and got the bill at nine.",
    "e4": "Shipping was quick but the box arrived crushed and the manual is missing. " * 12,
}
POSITIVE, NEGATIVE = "e1", "e2"
BAD = [
    ({"event_id": "b1", "text": ""}, "empty_text"),
    ({"event_id": "b2", "text": "   \n"}, "empty_text"),
    ({"event_id": "b3", "text": None}, "empty_text"),
    ({"event_id": "b4", "text": "word " * 600}, "oversized_text"),
    ({"text": "no id at all"}, "no_id"),
]


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, np.ndarray]]:
    from sentence_transformers import SentenceTransformer

    ort = pytest.importorskip("onnxruntime")
    texts = list(GOOD.values())
    st = SentenceTransformer(str(models.semantic_path()), device="cpu")
    semantic = st.encode(texts, normalize_embeddings=True)
    session = ort.InferenceSession(str(paraphrase.onnx_path()))
    para = []
    for text in texts:  # one at a time: no padding at all
        enc = models.tokenizer()(text, truncation=True, max_length=128, return_tensors="np")
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
        pooled = session.run(["461"], feeds)[0][0]
        para.append(pooled / np.linalg.norm(pooled))
    return {key: {"semantic": semantic[i], "paraphrase": para[i]} for i, key in enumerate(GOOD)}


def _settings() -> InferenceSettings:
    small = Batching(min_batch_size=1, max_batch_size=3)
    return InferenceSettings(
        device="cpu", batching={"semantic": small, "paraphrase": small}, accelerator=None
    )


def test_stage_outputs_match_direct_model_calls(expected) -> None:
    records = [{"event_id": k, "review_id": f"r-{k}", "text": t} for k, t in GOOD.items()]
    records += [r for r, _ in BAD]

    def check_features(rows: list[dict]) -> None:
        assert sorted(r["event_id"] for r in rows) == sorted(GOOD)
        for row in rows:
            want = expected[row["event_id"]]
            assert row["review_id"] == f"r-{row['event_id']}"
            assert row["text"] == GOOD[row["event_id"]]
            assert len(row["embedding_semantic"]) == 384
            assert len(row["embedding_paraphrase"]) == 384
            np.testing.assert_allclose(row["embedding_semantic"], want["semantic"], atol=ATOL)
            np.testing.assert_allclose(row["embedding_paraphrase"], want["paraphrase"], atol=ATOL)
            assert -1.0 <= row["sentiment"] <= 1.0
        by_id = {r["event_id"]: r["sentiment"] for r in rows}
        assert by_id[POSITIVE] > 0.3, by_id
        assert by_id[NEGATIVE] < -0.3, by_id

    with BeamTestPipeline() as p:
        out = p | beam.Create(records) | ComputeModelFeatures(_settings())
        assert_that(out[FEATURES], check_features, label="Features")
        reasons = out[DEAD_LETTER] | beam.Map(
            lambda d: (d["record"].get("event_id"), d["reason"], bool(d["detail"]))
        )
        want = [(r.get("event_id"), reason, True) for r, reason in BAD]
        assert_that(reasons, equal_to(want), label="DeadLetters")


def test_records_keep_their_timestamps_through_the_stage() -> None:
    """`BatchElements` stamps the model batches at the end of the global window; the
    records leave the stage at their own timestamps, refused ones included."""
    stamped = [
        TimestampedValue({"event_id": k, "text": t}, 1_700_000_000 + i)
        for i, (k, t) in enumerate(GOOD.items())
    ] + [TimestampedValue({"event_id": "empty", "text": " "}, 1_700_000_100)]

    def stamps(pcoll: beam.PCollection, label: str) -> beam.PCollection:
        return pcoll | f"Stamps{label}" >> beam.ParDo(_WithTimestamp())

    with BeamTestPipeline() as p:
        out = p | beam.Create(stamped) | ComputeModelFeatures(_settings())
        want = [(k, 1_700_000_000 + i) for i, k in enumerate(GOOD)]
        assert_that(stamps(out[FEATURES], "F"), equal_to(want), label="Features")
        refused = out[DEAD_LETTER] | "Records" >> beam.Map(lambda d: d["record"])
        assert_that(stamps(refused, "R"), equal_to([("empty", 1_700_000_100)]), label="Refused")


class _WithTimestamp(beam.DoFn):
    def process(self, record: dict, timestamp=beam.DoFn.TimestampParam):  # type: ignore[no-untyped-def]
        yield record["event_id"], int(timestamp.micros // 1_000_000)


def test_settings_refuse_unknown_models_and_limits() -> None:
    with pytest.raises(ValueError, match="'lexical'"):
        InferenceSettings(models=("semantic", "lexical"))
    with pytest.raises(ValueError, match="1000"):
        InferenceSettings(max_tokens=1000)


def test_the_models_are_shared_across_processes_only_when_asked() -> None:
    """Beam shares a multi-model handler's models across processes whatever it is told;
    a local job keeps them in its own process (Beam's local runner sets the stage up per
    bundle), a Dataflow worker keeps one copy per VM."""
    both = ("semantic", "paraphrase")
    shared = keyed_handler(InferenceSettings(models=both))
    assert shared.share_model_across_processes() is True
    local = keyed_handler(InferenceSettings(models=both, share_across_processes=False))
    assert local.share_model_across_processes() is False
    semantic = ModelSettings(models=("semantic",))
    assert not ModelFeatures(REGISTRY, [], semantic, local=True).inference.share_across_processes
    assert ModelFeatures(REGISTRY, [], semantic).inference.share_across_processes


class _Mean(torch.nn.Module):
    """A stand-in model: the mean of an embedding of the token ids."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(100, 4)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"embedding": (self.table(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, True)}


def test_inputs_go_where_the_model_is() -> None:
    """A handler copy that did not load the shared model still holds the device of its
    construction (CUDA for `auto`): the batch follows the model, on the CPU here."""
    model = _Mean()
    batch = [{"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1], "id": "a"}]
    (result,) = padded_inference(batch, model, torch.device("cuda"))
    want = model.table.weight[[1, 2, 3]].mean(0).detach().numpy()
    np.testing.assert_allclose(result.inference["embedding"], want, rtol=1e-6)
    assert result.example == "a"
