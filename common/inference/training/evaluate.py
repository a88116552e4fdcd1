"""Accuracy and AUC of a score against labels, and the VADER baseline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class Scores:
    accuracy: float
    auc: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"accuracy": round(self.accuracy, 4), "auc": round(self.auc, 4), "n": self.n}


def scores(labels: np.ndarray, score: np.ndarray) -> Scores:
    """`score` in [-1, 1] (or any real): positive predicted when score > 0."""
    from sklearn.metrics import roc_auc_score

    predicted = (score > 0).astype(np.int64)
    return Scores(
        accuracy=float((predicted == labels).mean()),
        auc=float(roc_auc_score(labels, score)),
        n=len(labels),
    )


def vader(texts: list[str]) -> np.ndarray:
    """VADER's compound score in [-1, 1] (vaderSentiment==3.3.2, a dev dependency)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.array([analyzer.polarity_scores(t)["compound"] for t in texts])
