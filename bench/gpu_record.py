"""Which version of the code a recorded GPU run ran: the sha256 of the sources its checks
exercise, written next to its results (`sources.txt`, in `sha256sum`'s format).

    python bench/gpu_record.py OUT_DIR     # bench/gpu_run.sh calls it

`make bench` quotes the last GPU run from `bench/gpu_results/`; `provenance()` says
whether that run's sources are this tree's, so a record older than a change to the
kernels or the model stage says so.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "gpu_results"
SOURCES = (
    "feature_store/core/linalg.py",
    "feature_store/core/vector_rows.py",
    "common/inference/*.py",
    "bench/bench_inference.py",
    "bench/bench_linalg.py",
    "bench/gpu_*.py",
)


def digests(root: Path = ROOT) -> dict[str, str]:
    """sha256 of every file the patterns name, by path relative to `root`."""
    found = sorted({p for pattern in SOURCES for p in root.glob(pattern) if p.is_file()})
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in found
    }


def write(out: Path, root: Path = ROOT) -> Path:
    path = out / "sources.txt"
    path.write_text("".join(f"{sha}  {name}\n" for name, sha in digests(root).items()))
    return path


def provenance(results: Path = RESULTS, root: Path = ROOT) -> str:
    """One sentence: whether the recorded run ran this tree's version of its sources."""
    recorded = results / "sources.txt"
    if not recorded.exists():
        return (
            "That record does not say which version of the code it ran (it has no `sources.txt`)."
        )
    then: dict[str, str] = {}
    for line in recorded.read_text(encoding="utf-8").splitlines():
        if line.strip():
            sha, name = line.split(maxsplit=1)
            then[name] = sha
    now = digests(root)
    changed = sorted(name for name in then.keys() | now.keys() if then.get(name) != now.get(name))
    if not changed:
        return "That run ran this tree's version of the sources it checks (`sources.txt`)."
    return (
        "That run ran another version of "
        + ", ".join(f"`{name}`" for name in changed)
        + " than this tree's (`sources.txt`)."
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python bench/gpu_record.py OUT_DIR")
    print(write(Path(sys.argv[1])))
