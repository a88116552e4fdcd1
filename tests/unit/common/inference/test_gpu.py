import numpy as np
import pytest
import torch

from common.inference import models
from common.inference.handlers import PackagedModelHandler, resolve_device

CUDA = torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("name", [models.SEMANTIC, models.PARAPHRASE])
def test_model_loads_on_cuda_and_matches_the_cpu(name: str) -> None:
    ids = models.tokenizer()("The staff were lovely and the room was spotless.")["input_ids"]
    batch = [{"input_ids": ids, "attention_mask": [1] * len(ids), "id": "x"}]
    results = {}
    for device in ("cuda", "cpu"):
        handler = PackagedModelHandler(name, device=device)
        model = handler.load_model()
        assert {p.device.type for p in model.parameters()} == {device}
        results[device] = next(iter(handler.run_inference(batch, model))).inference
    np.testing.assert_allclose(results["cuda"]["embedding"], results["cpu"]["embedding"], atol=1e-4)


def test_device_argument() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cuda").type == ("cuda" if CUDA else "cpu")  # falls back, warns
    with pytest.raises(ValueError, match="'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="'gpu'"):
        PackagedModelHandler(models.SEMANTIC, device="gpu")
