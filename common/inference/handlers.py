"""Beam model handlers of the packaged models: Beam's PyTorch keyed-tensor handler, loading
from the installed packages (sha256-checked) instead of a pickled state dict.

An example is one tokenised text, unpadded, as plain lists (cheap through a shuffle):
`{"input_ids": [n ints], "attention_mask": [n ints], "id": str}`. `padded_inference` pads
each batch to its longest text (not to the model's limit), so short reviews cost little;
the stage batches texts of similar length together (`length_fn` and buckets). A prediction is
`PredictionResult(example=id, inference={"embedding": float32[d], "sentiment"?: float})`.

The device is an argument: `auto` (CUDA when the worker has it, else CPU), `cuda` (falls
back to CPU with a warning, as Beam's handlers do) or `cpu`. It is resolved on the worker,
in `load_model`, which is also the only place a model is built.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from apache_beam.ml.inference.base import PredictionResult
from apache_beam.ml.inference.pytorch_inference import PytorchModelHandlerKeyedTensor

from common.inference import models

log = logging.getLogger(__name__)
DEVICES = ("auto", "cuda", "cpu")
Example = dict[str, Any]


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        msg = f"device must be one of {', '.join(DEVICES)}, got {device!r}"
        raise ValueError(msg)
    if device == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if device == "cuda":
        log.warning("device `cuda` was asked for but no CUDA device is usable: using the CPU")
    return torch.device("cpu")


def padded_inference(
    batch: Sequence[Example],
    model: torch.nn.Module,
    device: torch.device,
    inference_args: dict[str, Any] | None = None,
    model_id: str | None = None,
) -> Iterable[PredictionResult]:
    # The inputs go where the model is. Not `device`, the handler's: Beam's local runner
    # copies the handler per bundle while the loaded model is shared, so a copy that did
    # not load it still holds the device of its construction (CUDA for `auto`).
    device = next(model.parameters()).device
    pad = torch.nn.utils.rnn.pad_sequence
    ids = pad([_longs(e["input_ids"]) for e in batch], batch_first=True, padding_value=0)
    mask = pad([_longs(e["attention_mask"]) for e in batch], batch_first=True, padding_value=0)
    with torch.inference_mode():
        out = model(ids.to(device), mask.to(device), **(inference_args or {}))
    arrays = {key: value.float().cpu().numpy() for key, value in out.items()}
    for row, example in enumerate(batch):
        inference: dict[str, Any] = {"embedding": arrays["embedding"][row].astype(np.float32)}
        if "sentiment" in arrays:
            inference["sentiment"] = float(arrays["sentiment"][row])
        yield PredictionResult(example=example["id"], inference=inference, model_id=model_id)


def _longs(values: Sequence[int] | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.long)


class PackagedModelHandler(PytorchModelHandlerKeyedTensor):
    """One model of `common.inference.models`, by key, on the device the worker has."""

    def __init__(self, name: str, *, device: str = "auto") -> None:
        spec = models.specs()[name]
        resolve_device(device)  # an unknown device fails at construction, not on a worker
        super().__init__(
            state_dict_path=spec.weights,
            model_class=models.build,
            model_params={"name": name},
            device="GPU" if device != "cpu" else "CPU",
            inference_fn=padded_inference,
        )
        self.name = name
        self.requested_device = device

    def load_model(self) -> torch.nn.Module:
        device = resolve_device(self.requested_device)
        model = models.build(self.name).to(device)
        self._device = device
        log.info("model %s loaded on %s", self.name, device)
        return model

    # Beam annotates the batch as tensors; this handler's batch is of tokenized examples.
    def get_num_bytes(self, batch: Sequence[Any]) -> int:
        return sum(
            8 * (len(example["input_ids"]) + len(example["attention_mask"])) for example in batch
        )

    def get_metrics_namespace(self) -> str:
        return f"BeamML_PyTorch_{self.name}"
