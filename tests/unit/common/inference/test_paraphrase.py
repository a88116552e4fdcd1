import numpy as np
import pytest
import torch

from common.inference import models, paraphrase

ort = pytest.importorskip("onnxruntime")  # a dev dependency, for this comparison only

TEXTS = [
    "The pasta was cold and the waiter ignored us.",
    "Great service, friendly staff, would come back!",
    "ok",
    "Shipping took three weeks and the box arrived crushed. " * 20,  # truncated at 128
]


@pytest.fixture(scope="module")
def encoder() -> paraphrase.ParaphraseEncoder:
    return paraphrase.ParaphraseEncoder()


def _tokens(texts: list[str]) -> dict[str, torch.Tensor]:
    return models.tokenizer()(
        texts, padding=True, truncation=True, max_length=128, return_tensors="pt"
    )


def test_matches_onnxruntime(encoder: paraphrase.ParaphraseEncoder) -> None:
    enc = _tokens(TEXTS)
    session = ort.InferenceSession(str(paraphrase.onnx_path()))
    feeds = {k: enc[k].numpy() for k in ("input_ids", "attention_mask")}
    # The graph's outputs: per-token hidden states and their masked mean.
    hidden_ref, pooled_ref = session.run(["onnx::Shape_422", "461"], feeds)
    with torch.no_grad():
        hidden = encoder.token_embeddings(enc["input_ids"], enc["attention_mask"]).numpy()
        ours = encoder(enc["input_ids"], enc["attention_mask"]).numpy()
    mask = feeds["attention_mask"].astype(bool)
    np.testing.assert_allclose(hidden[mask], hidden_ref[mask], atol=1e-5)
    expected = pooled_ref / np.linalg.norm(pooled_ref, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_texts(encoder) -> None:
    enc = _tokens(
        [
            "The food was delicious.",
            "The meal tasted great.",
            "My flight to Berlin was delayed by two hours.",
        ]
    )
    with torch.no_grad():
        v = encoder(enc["input_ids"], enc["attention_mask"]).numpy()
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_every_bert_parameter_comes_from_the_graph() -> None:
    state = paraphrase.state_dict_from_onnx(paraphrase.onnx_path())
    assert len(state) == 3 * 16 + 5  # 16 tensors per layer, 5 in the embeddings
    assert state["encoder.layer.2.output.dense.weight"].shape == (384, 1536)
