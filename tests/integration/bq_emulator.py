"""The BigQuery emulator for integration tests that need nothing else from the stack.

`emulator_endpoint()` points the environment at the emulator and fails the test when
nothing answers there; `scratch_dataset()` gives a test its own dataset and deletes it
afterwards.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from google.cloud import bigquery

from feature_store.config import LOCAL_PROJECT, Endpoints

PROBE_TIMEOUT_S = 5.0


def emulator_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    """The emulator's REST endpoint, with BIGQUERY_EMULATOR_HOST and the project set.

    The endpoint comes from the platform config (FEATURE_STORE_BIGQUERY_PORT), as for
    the session `stack` fixture; BIGQUERY_EMULATOR_HOST is set to it for the caller's
    scope, whatever a previous test may have left there.
    """
    endpoint = Endpoints.from_env().bigquery
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", endpoint)
    if not os.environ.get("GOOGLE_CLOUD_PROJECT"):
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", LOCAL_PROJECT)
    url = f"{endpoint}/bigquery/v2/projects/{LOCAL_PROJECT}/datasets"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as response:
            json.load(response)
    except (OSError, ValueError) as exc:
        pytest.fail(f"the BigQuery emulator does not answer at {endpoint}: {exc}")
    return endpoint


@contextmanager
def scratch_dataset(client: bigquery.Client, prefix: str) -> Iterator[str]:
    """A new dataset `<prefix>_<random>`, deleted with its tables afterwards."""
    dataset = f"{prefix}_{uuid.uuid4().hex[:10]}"
    client.create_dataset(f"{client.project}.{dataset}")
    try:
        yield dataset
    finally:
        client.delete_dataset(
            f"{client.project}.{dataset}", delete_contents=True, not_found_ok=True
        )
