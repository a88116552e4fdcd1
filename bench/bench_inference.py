"""The model stage on the CPU: texts/s of each model alone and of all models in one step.

Texts: English review texts of the seeded simulator (`simulator.vocabulary`,
1 to 5 sentences, about 20 to 90 tokens). Every model runs through its Beam model
handler (`common.inference.handlers.PackagedModelHandler`, device `cpu`), loaded once
before the clock starts, on token ids prepared before the clock starts:

- **semantic alone**: all-MiniLM-L6-v2 with the sentiment head in the same forward pass;
- **paraphrase alone**: paraphrase-MiniLM-L3-v2 (rebuilt from its ONNX graph);
- **both models, one step**: the stage's `KeyedModelHandler` (one `KeyModelMapping` per
  model, `max_models_per_worker_hint=2`) given the same per-model batches, interleaved,
  as the stage's `RunInference` gets them. Its check compares its wall time with the sum
  of the two alone (sharing one step should cost nothing: ratio near 100%).
- **stage end to end**: `ComputeModelFeatures` on Beam's local runner from records to
  joined features (tokenising, reshuffle, batching, `RunInference`, join), model loading
  included, so it is a cold figure.

Batch sizes are stated in each row (padding is per batch, texts sorted by nothing). CPU
threads: torch's default (one per core). GPU figures come from `bench/gpu_inference.py`.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any

from bench import gpu_record
from bench.harness import Context, Row, timed

log = logging.getLogger(__name__)
BATCH = 32
GROUP = "texts/s on the CPU (events = texts)"


def review_texts(count: int, seed: int) -> list[str]:
    from simulator.vocabulary import CATEGORIES, TextPools

    pools, rng = TextPools(seed), random.Random(seed)
    return [
        pools.compose(rng.randrange(len(CATEGORIES)), rng.randint(1, 5), "en", rng.getrandbits(62))
        for _ in range(count)
    ]


def examples(texts: Sequence[str], name: str) -> list[dict[str, Any]]:
    from common.inference import models

    tok, limit = models.tokenizer(), models.specs()[name].max_seq_length
    out = []
    for i, text in enumerate(texts):
        ids = tok(text, truncation=True, max_length=limit)["input_ids"]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "id": str(i)})
    return out


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run(ctx: Context) -> list[Row]:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from common.inference import models
    from common.inference.handlers import PackagedModelHandler
    from common.inference.stage import InferenceSettings, keyed_handler

    n = ctx.size(full=512, quick=64)
    texts = review_texts(n, ctx.seed)
    names = (models.SEMANTIC, models.PARAPHRASE)
    prepared = {name: batches(examples(texts, name), BATCH) for name in names}
    rows, alone = [], {}
    for name in names:
        handler = PackagedModelHandler(name, device="cpu")
        model = handler.load_model()
        with timed() as took:
            produced = sum(len(list(handler.run_inference(b, model))) for b in prepared[name])
        alone[name] = took()
        rows.append(_row(f"{name} alone, batch {BATCH}", n, alone[name], produced, n))
    keyed = keyed_handler(InferenceSettings(device="cpu", accelerator=None))
    keyed.override_metrics("bench_inference")  # what RunInference does first
    shared_model = keyed.load_model()
    with timed() as took:
        produced = 0
        for pair in zip(*(prepared[name] for name in names), strict=True):
            for name, batch in zip(names, pair, strict=True):
                produced += len(keyed.run_inference([(name, e) for e in batch], shared_model))
    shared = took()
    share = sum(alone.values()) / shared
    rows.append(
        _row(
            f"both models, one KeyedModelHandler, batch {BATCH} per model",
            n,
            shared,
            produced,
            2 * n,
            extra=f"; sum of alone / shared = {share:.0%}",
        )
    )
    rows.append(_stage_row(texts))
    ctx.section("Sentiment head against VADER", sentiment_table())
    ctx.section("On a GPU", gpu_note())
    return rows


def sentiment_table() -> str:
    """The shipped head's evaluation, written by its training script next to its weights."""
    import json

    from common.inference.sentiment import EVALUATION

    results = json.loads(EVALUATION.read_text(encoding="utf-8"))
    sizes = results["data"]
    lines = [
        f"From `{EVALUATION.name}` (written by `common/inference/training/train.py`, seed "
        f"{results['seed']}): trained on {sizes['train']:,} Rotten Tomatoes sentences, "
        f"evaluated on {sizes['held_out']:,} sentences of held-out movies and "
        f"{sizes['imdb']:,} IMDB reviews (cross-domain, class-balanced sample). "
        "Accuracy: sign of the score; AUC: of the score.",
        "",
        "| scorer | held-out movies acc | AUC | IMDB acc | AUC |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    names = {
        "head_semantic": "linear head on all-MiniLM-L6-v2 (shipped)",
        "head_paraphrase": "linear head on paraphrase-MiniLM-L3-v2",
        "head_both": "linear head on both embeddings",
        "vader": "VADER 3.3.2 (compound)",
    }
    for key, label in names.items():
        if key in results:
            h, i = results[key]["held_out"], results[key]["imdb"]
            lines.append(
                f"| {label} | {h['accuracy']:.3f} | {h['auc']:.3f} "
                f"| {i['accuracy']:.3f} | {i['auc']:.3f} |"
            )
    return "\n".join(lines)


RESULTS = gpu_record.RESULTS  # the last GPU run, as bench/gpu_run.sh wrote it
# pytest's last line: "2 passed, 1 deselected in 20.74s" (between "=" rules with -v or -r)
SUMMARY = re.compile(r"^=*\s*\d+ (passed|failed|errors?|skipped|deselected)\b.* in [\d.]+s\b")


def gpu_note() -> str:
    """The last GPU run's figures (`bench/gpu_run.sh` writes them to `bench/gpu_results/`)."""
    import json

    import torch

    here = (
        f"This run had a CUDA device ({torch.cuda.get_device_name(0)}): "
        "`bench/gpu_run.sh` measures it."
        if torch.cuda.is_available()
        else "This run had no CUDA device."
    )
    path = RESULTS / "inference.json"
    if not path.exists():
        return here + " No GPU run is recorded."
    r = json.loads(path.read_text(encoding="utf-8"))
    machine = (RESULTS / "gpu.txt").read_text(encoding="utf-8").strip().splitlines()
    lines = (RESULTS / "tests.txt").read_text(encoding="utf-8").strip().splitlines()
    # pytest's summary lines: the gpu tests', then the kernels' tests' with JAX on the GPU
    outcomes = [line.strip("= ") for line in lines if SUMMARY.match(line)]
    both = r["torch_and_jax"]
    stage = r["stage_end_to_end"]
    return "\n".join(
        [
            here + " The figures below are those of the last GPU run, recorded in "
            f"`bench/gpu_results/` by `bench/gpu_run.sh` ({r['texts']:,} texts of the "
            "simulator's pools, batch 256 per model, warm: two batches run first). "
            + gpu_record.provenance(RESULTS),
            "",
            f"Machine: {machine[1]} ({machine[2]}).",
            "",
            "| | semantic (MiniLM-L6 + sentiment) | paraphrase (MiniLM-L3) |",
            "| --- | ---: | ---: |",
            f"| texts/s alone | {r['semantic_alone_texts_per_s']:,.0f} "
            f"| {r['paraphrase_alone_texts_per_s']:,.0f} |",
            f"| GPU memory of the weights (MiB) | {r['semantic_memory_mib']} "
            f"| {r['paraphrase_memory_mib']} |",
            "| texts/s each, both in the one KeyedModelHandler | "
            + " | ".join([f"{r['shared_texts_per_s_each_model']:,.0f}"] * 2)
            + " |",
            "",
            f"- Shared step against the two alone back to back: {r['shared_vs_sum_of_alone']:.1%} "
            f"(goal 90%: {'met' if r['goal_met'] else 'missed'}). Peak GPU memory "
            f"{r['peak_memory_mib']} MiB; each model is loaded once, on the GPU (asserted). Beam's "
            "multi-model handler loads each model at its first batch (its `load_model` "
            "returns a manager), so the load step itself allocates nothing.",
            f"- The whole `ComputeModelFeatures` stage on Beam's local runner, device `cuda`: "
            f"{stage['texts_per_s']:,.0f} texts/s ({stage['check']}; {stage['variant']}): the "
            "local runner's bundles and the CPU tokenising step, not the GPU, set that pace.",
            f"- torch and JAX in one process: JAX ran on `{both['jax_device']}` beside the "
            f"loaded models, peak {both['jax_peak_bytes_in_use_mib']} MiB, the whole device "
            f"using {both['device_used_memory_mib']:,} of {both['device_memory_mib']:,} MiB "
            f"(`XLA_PYTHON_CLIENT_PREALLOCATE={both['xla_python_client_preallocate']}`, set by "
            "`feature_store.core.linalg`): JAX took no memory ahead.",
            f"- GPU tests (`-m gpu`: each model on CUDA equals the CPU within 1e-4): "
            f"{outcomes[0] if outcomes else 'no summary recorded'}",
            *(
                [
                    "- The JAX kernels' and vector features' tests (`test_linalg.py`, "
                    "`test_vector_rows.py`: float32 against float64 brute force, compilations "
                    f"bounded) with JAX on the GPU: {outcomes[1]}"
                ]
                if len(outcomes) > 1
                else []
            ),
        ]
    )


def _row(variant: str, n: int, wall: float, produced: int, want: int, extra: str = "") -> Row:
    check = f"{produced} predictions of {want}" + extra
    if produced != want:
        check = "FAILED: " + check
    return Row(
        benchmark="inference",
        group=GROUP,
        system="feature-store",
        variant=variant,
        events=n,
        wall_s=wall,
        reference=variant.startswith("semantic alone"),
        check=check,
    )


def _stage_row(texts: Sequence[str], device: str = "cpu") -> Row:
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    from common.inference.stage import (
        FEATURES,
        Batching,
        ComputeModelFeatures,
        InferenceSettings,
    )

    batching = Batching(min_batch_size=BATCH, max_batch_size=BATCH)
    settings = InferenceSettings(
        device=device,
        accelerator=None,
        batching={"semantic": batching, "paraphrase": batching},
    )
    records = [{"event_id": f"e{i}", "text": t} for i, t in enumerate(texts)]
    with timed() as took:
        p = beam.Pipeline()
        out = p | beam.Create(records) | ComputeModelFeatures(settings)
        _ = out[FEATURES] | beam.Map(_count)
        result = p.run()
        result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("features"))["counters"]
    wall = took()
    variant = f"stage end to end on the local runner ({device}), batch {BATCH} per model, cold"
    produced = sum(c.committed for c in counters)
    return _row(variant, len(texts), wall, produced, len(texts))


def _count(_: object) -> None:
    from apache_beam.metrics import Metrics

    Metrics.counter("bench_inference", "features").inc()
