"""`feature-store env`: the emulator variables and the Feast repo's stable location."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobs.cli import main

VARIABLES = (
    "PUBSUB_EMULATOR_HOST",
    "BIGTABLE_EMULATOR_HOST",
    "BIGQUERY_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
)


def test_env_prints_the_feast_repo_as_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in VARIABLES:  # the CLI exports them; monkeypatch restores them afterwards
        monkeypatch.setenv(name, "unset")
    monkeypatch.setenv("FEATURE_STORE_BIGQUERY_PORT", "9123")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--state-dir", "state", "env"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    exported = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in result.output.splitlines()
    )
    repo = str(tmp_path.resolve() / "state" / "feast_repo")
    assert exported["FEATURE_STORE_FEAST_REPO"] == repo
    assert exported["FEATURE_REPO_DIR_ENV_VAR"] == repo  # the `feast` CLI's --chdir
    assert exported["BIGQUERY_EMULATOR_HOST"] == "http://127.0.0.1:9123"
