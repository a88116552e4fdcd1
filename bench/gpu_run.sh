#!/usr/bin/env bash
# The GPU checks and figures, on a bare CUDA machine with no registry access.
# Usage: bench/gpu_run.sh WHEEL_DIR OUT_DIR   (WHEEL_DIR from bench/gpu_wheels.sh)
# Writes sources.txt (sha256 of the sources checked), gpu.txt, tests.txt (the gpu tests,
# then the kernels' tests with JAX on the GPU), inference.json, linalg.md and linalg_cpu.md
# to OUT_DIR;
# exits non-zero when a check fails or a goal is missed.
set -uo pipefail
wheels=${1:?usage: bench/gpu_run.sh WHEEL_DIR OUT_DIR}
out=${2:?usage: bench/gpu_run.sh WHEEL_DIR OUT_DIR}
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl || exit 1
export PYTHONPATH="$site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
status=0
python3 bench/gpu_record.py "$out" || status=1  # sources.txt: which version of the code ran
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, jax, apache_beam as b; print("torch", torch.__version__, "jax", jax.__version__, "beam", b.__version__, "JAX devices", jax.devices())' | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider --noconftest -m gpu -rs \
    tests/unit/common/inference/test_gpu.py 2>&1 | tee "$out/tests.txt" || status=1
# The kernels' and the vector features' tests (float32 against float64 brute force) with
# JAX on the GPU, its default device there.
python3 -m pytest -q -p no:cacheprovider --noconftest \
    tests/unit/feature_store/core/test_linalg.py tests/unit/feature_store/core/test_vector_rows.py \
    2>&1 | tee -a "$out/tests.txt" || status=1
python3 bench/gpu_inference.py --texts 4096 --batch 256 | tee "$out/inference.json" || status=1
python3 bench/gpu_linalg.py | tee "$out/linalg.md" || status=1
python3 bench/gpu_linalg.py --cpu | tee "$out/linalg_cpu.md" || status=1
exit $status
