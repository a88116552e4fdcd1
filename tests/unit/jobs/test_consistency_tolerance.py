"""`consistency` compares values computed from model outputs with the model stage's
tolerance, and everything else as strictly as before."""

from feature_store.definitions import DType
from feature_store.reference import REGISTRY
from jobs.consistency import MODEL_TOLERANCE, _equal, _from_models


def test_model_derived_features_are_known() -> None:
    assert _from_models(REGISTRY, "review_content", "sentiment")
    assert _from_models(REGISTRY, "review_content", "embedding_semantic_pca32")
    assert _from_models(REGISTRY, "user_content_stats", "avg_sentiment_7d")
    assert not _from_models(REGISTRY, "review_content", "text_length")
    assert not _from_models(REGISTRY, "user_review_stats", "avg_rating_7d")


def test_tolerances() -> None:
    a, b = 0.5755781, 0.5755784  # a float32 model's output padded in two batches
    assert _equal(a, b, DType.FLOAT64, MODEL_TOLERANCE)
    assert not _equal(a, b, DType.FLOAT64, 1e-9)
    assert not _equal(0.5, 0.5 + 3 * MODEL_TOLERANCE, DType.FLOAT64, MODEL_TOLERANCE)
    assert _equal([0.1, 0.2], [0.1 + 5e-6, 0.2], DType.FLOAT32_VECTOR, MODEL_TOLERANCE)
    assert not _equal([0.1, 0.2], [0.1 + 5e-6, 0.2], DType.FLOAT32_VECTOR, 1e-9)
    assert not _equal(None, 1.0, DType.FLOAT64, MODEL_TOLERANCE)
