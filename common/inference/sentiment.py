"""The project's sentiment head: a linear layer on a sentence embedding, scored in [-1, 1].

`score = tanh(z / 2) = 2 sigmoid(z) - 1`, so it is the logistic model's probability of
"positive" mapped to [-1, 1]: 0 is undecided, the sign is the predicted class. Weights are
trained by `common/inference/training/train.py` and shipped as package data.
"""

from __future__ import annotations

from pathlib import Path

import torch

from common.inference.checksums import verify_sha256

WEIGHTS = Path(__file__).resolve().parent / "weights" / "sentiment_head.safetensors"
EVALUATION = WEIGHTS.with_suffix(".json")  # what these weights scored (train.py --out)
# Written by training/train.py; see BENCHMARKS.md for its accuracy.
WEIGHTS_SHA256 = "e690d79ed1cce5dfba3028af578ce74d4e7cfe9469bb787d1a0d5136b04da1db"


class SentimentHead(torch.nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(dim, 1)

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.linear(embedding).squeeze(-1)
        return z

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(embedding) / 2)


def load_head(dim: int, path: Path = WEIGHTS, sha256: str | None = None) -> SentimentHead:
    from safetensors.torch import load_file

    verify_sha256(path, sha256 or WEIGHTS_SHA256)
    head = SentimentHead(dim)
    head.load_state_dict(load_file(str(path)))
    head.requires_grad_(False)
    return head.eval()


def save_head(head: SentimentHead, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path))
