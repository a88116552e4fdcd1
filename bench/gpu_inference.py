"""The model stage on a CUDA device: one short script for a bare GPU machine.

    python bench/gpu_inference.py [--texts 4096] [--batch 256]

Needs only the project's installed packages (the models come in their wheels; nothing
is fetched). It asserts that each model loads once, on the GPU, and reports the GPU
memory each one takes, texts/s of each model alone, then of both in the stage's one
`KeyedModelHandler` (the per-model batches interleaved, as `RunInference` gets them),
and whether shared throughput reaches 90% of the sum of each alone run back to back. Then
the whole `ComputeModelFeatures` stage on Beam's local runner with the device `cuda`, and
torch and JAX in one process: the models stay on the GPU while the JAX kernels run there,
and JAX must not take the device's memory ahead (`feature_store.core.linalg` sets
`XLA_PYTHON_CLIENT_PREALLOCATE=false` before it imports JAX).
Prints one JSON object; exits 1 when there is no CUDA device or a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GOAL = 0.9


def main() -> int:
    import torch

    from bench.bench_inference import batches, examples, review_texts
    from common.inference import models
    from common.inference.handlers import PackagedModelHandler
    from common.inference.stage import InferenceSettings, keyed_handler

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.stdout.write(json.dumps({"error": "no CUDA device"}) + "\n")
        return 1
    names = (models.SEMANTIC, models.PARAPHRASE)
    texts = review_texts(args.texts, 7)
    prepared = {n: batches(examples(texts, n), args.batch) for n in names}
    report: dict[str, object] = {"gpu": torch.cuda.get_device_name(0), "texts": args.texts}

    def timed_run(run_batch, items) -> float:  # type: ignore[no-untyped-def]
        for batch in items[:2]:  # warm-up: CUDA kernels and allocator
            run_batch(batch)
        torch.cuda.synchronize()
        began = time.perf_counter()
        for batch in items:
            run_batch(batch)
        torch.cuda.synchronize()
        return time.perf_counter() - began

    alone: dict[str, float] = {}
    for name in names:
        before = torch.cuda.memory_allocated()
        handler = PackagedModelHandler(name, device="cuda")
        model = handler.load_model()
        assert all(p.device.type == "cuda" for p in model.parameters()), name
        report[f"{name}_memory_mib"] = round((torch.cuda.memory_allocated() - before) / 2**20, 1)
        wall = timed_run(lambda b, h=handler, m=model: list(h.run_inference(b, m)), prepared[name])
        alone[name] = wall
        report[f"{name}_alone_texts_per_s"] = round(args.texts / wall, 1)
        del model
        torch.cuda.empty_cache()
    keyed = keyed_handler(InferenceSettings(device="cuda"))
    keyed.override_metrics("bench_inference")  # what RunInference does first
    before = torch.cuda.memory_allocated()
    shared_model = keyed.load_model()
    report["shared_memory_mib"] = round((torch.cuda.memory_allocated() - before) / 2**20, 1)
    interleaved = [
        [(name, e) for e in batch]
        for pair in zip(*(prepared[n] for n in names), strict=True)
        for name, batch in zip(names, pair, strict=True)
    ]
    shared = timed_run(lambda b: keyed.run_inference(b, shared_model), interleaved)
    report["shared_texts_per_s_each_model"] = round(args.texts / shared, 1)
    report["shared_vs_sum_of_alone"] = round(sum(alone.values()) / shared, 3)
    report["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    report["goal_met"] = report["shared_vs_sum_of_alone"] >= GOAL  # type: ignore[operator]

    from bench.bench_inference import _stage_row

    stage = _stage_row(texts, device="cuda")
    report["stage_end_to_end"] = {
        "variant": stage.variant,
        "texts_per_s": round(args.texts / (stage.wall_s or 1.0), 1),
        "check": stage.check,
    }
    report["torch_and_jax"] = torch_and_jax(shared_model, keyed, interleaved[:2])
    both = report["torch_and_jax"]
    ok = (  # type: ignore[index]
        report["goal_met"]
        and not stage.check.startswith("FAILED")
        and both["jax_platform"] == "gpu"
        and both["jax_took_memory_ahead"] is False
    )
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


def torch_and_jax(model, keyed, batches) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The JAX kernels on the GPU in the process that holds the torch models there."""
    import subprocess

    import numpy as np
    import torch

    from feature_store.core import linalg  # sets XLA_PYTHON_CLIENT_PREALLOCATE, then imports JAX

    device = linalg.jax.devices()[0]
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16_000, 384)).astype(np.float32)
    y = rng.normal(size=(500, 384)).astype(np.float32)
    projected = linalg.pca_transform(linalg.pca_fit(x, 32), x)
    kernel = linalg.rbf(x, y)
    for batch in batches:  # the models still run after JAX has worked on the device
        keyed.run_inference(batch, model)
    torch.cuda.synchronize()
    total = torch.cuda.get_device_properties(0).total_memory
    # The whole device's used memory: this process is the only one on the machine.
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    used_mib = int(smi[0]) if smi else None
    stats = device.memory_stats() or {}
    return {
        "jax_platform": device.platform,
        "jax_device": str(device),
        "xla_python_client_preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE"),
        "jax_peak_bytes_in_use_mib": round(stats.get("peak_bytes_in_use", 0) / 2**20, 1),
        "torch_allocated_mib": round(torch.cuda.memory_allocated() / 2**20, 1),
        "device_used_memory_mib": used_mib,
        "device_memory_mib": round(total / 2**20),
        # None (a failed check) when nvidia-smi gave nothing to judge by.
        "jax_took_memory_ahead": None if used_mib is None else used_mib * 2**20 > total / 2,
        "shapes": [list(projected.shape), list(kernel.shape)],
    }


if __name__ == "__main__":
    sys.exit(main())
