"""The JAX kernels' table (`bench/bench_linalg.py`) with JAX on a CUDA device.

    python bench/gpu_linalg.py [--sizes 1000,4000,16000] [--cpu]

The same work, inputs and checks as `make bench`'s linalg table: JAX runs on the first
GPU, scikit-learn and numpy on the machine's CPU cores. Prints the device, the versions,
the markdown table, the vector features' share of the feature stage (`make bench`'s
figure, with the kernels on the same device) and, on a GPU, the rate of copies between
host and device; exits 1 when JAX sees no GPU or a result
differs from scikit-learn's beyond the stated tolerance (the check raises). `--cpu` runs
JAX on the same machine's CPU threads instead, for the comparison on a many-core CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def copy_rates(mib: int = 64, repeats: int = 5) -> str:
    """Host to device and back for `mib` MiB of float32, median of `repeats`: what the
    library's numpy interface pays on top of the kernels (the table's two JAX columns)."""
    import statistics
    import time

    import jax
    import numpy as np

    host = np.ones(mib * 2**18, dtype=np.float32)
    to_device, to_host = [], []
    for _ in range(repeats):
        began = time.perf_counter()
        on_device = jax.device_put(host).block_until_ready()
        to_device.append(time.perf_counter() - began)
        began = time.perf_counter()
        np.asarray(on_device)
        to_host.append(time.perf_counter() - began)
    rate = [mib / 1024 / statistics.median(t) for t in (to_device, to_host)]
    return (
        f"Copies of {mib} MiB of float32 (median of {repeats}): host to device "
        f"{rate[0]:.1f} GiB/s, device to host {rate[1]:.1f} GiB/s."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,4000,16000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reviews", type=int, default=20_000, help="for the features' share")
    parser.add_argument("--cpu", action="store_true", help="JAX on the CPU threads instead")
    args = parser.parse_args()
    if args.cpu:
        os.environ["JAX_PLATFORMS"] = "cpu"  # before JAX is imported

    from bench.bench_linalg import features_share_line, measure, versions
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
        f"{versions()}.\n\n"
        + "\n".join(table)
        + "\n\n"
        + features_share_line(args.reviews, args.seed)
        + ("" if args.cpu else "\n\n" + copy_rates())  # on a CPU, no copy to speak of
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
