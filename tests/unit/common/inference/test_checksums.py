import hashlib
from pathlib import Path

import pytest

from common.inference import checksums, models, paraphrase, sentiment
from common.inference.errors import ModelIntegrityError, ModelSourceError


def test_mismatch_names_the_file_and_both_digests(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"not the model")
    actual = hashlib.sha256(b"not the model").hexdigest()
    expected = "ab" * 32
    with pytest.raises(ModelIntegrityError) as err:
        checksums.verify_sha256(path, expected)
    assert str(path) in str(err.value)
    assert actual in str(err.value)
    assert expected in str(err.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.onnx"
    with pytest.raises(ModelSourceError, match=r"absent\.onnx"):
        checksums.verify_sha256(path, "00" * 32)


def test_matching_file_passes(tmp_path: Path) -> None:
    path = tmp_path / "ok.bin"
    path.write_bytes(b"x" * 3_000_000)  # more than one read chunk
    assert checksums.verify_sha256(path, hashlib.sha256(b"x" * 3_000_000).hexdigest()) == path


@pytest.mark.parametrize(
    ("path", "digest"),
    [
        (lambda: models.semantic_path() / "model.safetensors", checksums.SEMANTIC_WEIGHTS_SHA256),
        (paraphrase.onnx_path, checksums.PARAPHRASE_ONNX_SHA256),
        (lambda: sentiment.WEIGHTS, sentiment.WEIGHTS_SHA256),
    ],
    ids=["semantic", "paraphrase", "sentiment-head"],
)
def test_installed_files_have_the_pinned_digests(path, digest) -> None:
    data = Path(path()).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest


def test_a_tampered_head_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "head.safetensors"
    copy.write_bytes(sentiment.WEIGHTS.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match=r"head\.safetensors"):
        sentiment.load_head(384, copy)
