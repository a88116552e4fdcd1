"""The JAX kernels' table (`bench/bench_linalg.py`) with JAX on a CUDA device.

    python bench/gpu_linalg.py [--sizes 1000,4000,16000] [--cpu]

The same work, inputs and checks as `make bench`'s linalg table: JAX runs on the first
GPU, scikit-learn and numpy on the machine's CPU cores. Prints the device, the versions and
the markdown table; exits 1 when JAX sees no GPU or a result differs from scikit-learn's
beyond the stated tolerance (the check raises). `--cpu` runs JAX on the same machine's CPU
threads instead, for the comparison on a many-core CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,4000,16000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cpu", action="store_true", help="JAX on the CPU threads instead")
    args = parser.parse_args()
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"  # before JAX is imported

    from bench.bench_linalg import measure, versions
    from feature_store.core import linalg  # sets XLA_PYTHON_CLIENT_PREALLOCATE, then imports JAX

    device = linalg.jax.devices()[0]
    if device.platform != ("cpu" if args.cpu else "gpu"):
        sys.stdout.write(f"JAX runs on {device.platform}, not as asked\n")
        return 1
    sizes = tuple(int(s) for s in args.sizes.split(","))
    _, table = measure(sizes, args.seed)
    where = f"{os.cpu_count()} CPU threads" if args.cpu else device.device_kind
    sys.stdout.write(
        f"JAX on {where}; scikit-learn and numpy on {os.cpu_count()} CPU threads; "
        f"{versions()}.\n\n" + "\n".join(table) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
