"""The model stage on a CUDA device: one short script for a bare GPU machine.

    python bench/gpu_inference.py [--texts 4096] [--batch 256]

Needs only the project's installed packages (the models come in their wheels; nothing
is fetched). It asserts that each model loads once, on the GPU, and reports the GPU
memory each one takes, texts/s of each model alone, then of both in the stage's one
`KeyedModelHandler` (the per-model batches interleaved, as `RunInference` gets them),
and whether shared throughput reaches 90% of the sum of each alone run back to back.
Prints one JSON object; exits 1 when there is no CUDA device or the goal is missed.
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
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0 if report["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
