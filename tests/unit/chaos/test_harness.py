"""The fault run's own machinery (tests/chaos/run.py), where it can be checked without
the emulators."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from feature_store.events import DeadLetter, validate
from feature_store.limits import oversized
from tests.chaos import run
from tests.unit.common import test_validate_fuzz as fuzz

# A run started in the background by a shell without job control (`make chaos &`, a CI
# step) has SIGINT ignored; it starts a stream and stops it with Ctrl-C.
_DRIVER = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tests.chaos.run import interruptible_children
    interruptible_children()
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    child.stdout.readline()
    os.killpg(child.pid, signal.SIGINT)
    try:
        print(child.wait(timeout=20))
    except subprocess.TimeoutExpired:
        child.kill()
        print("still running 20 s after Ctrl-C")
    """
)


def test_a_stream_started_by_a_background_run_stops_at_ctrl_c() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == str(-signal.SIGINT), done.stdout + done.stderr


def test_the_burst_is_reproducible_and_every_message_a_dead_letter_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run, "FUZZ_PER_KIND", 4)
    burst = run.fuzz_messages()
    assert burst == run.fuzz_messages()
    kinds = Counter(kind for kind, *_ in burst)
    assert set(kinds) == set(fuzz.KINDS) - {"valid event"}
    assert max(kinds.values()) <= 4
    for _, topic, raw, reason in burst:
        assert raw
        letter = oversized(topic, raw, {}) or validate(topic, raw, {})
        assert isinstance(letter, DeadLetter)
        assert letter.reason == reason
