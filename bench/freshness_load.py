"""The freshness bench's load: publisher and probe reader, in a process of their own.

`python -m bench.freshness_load SPEC.json` reads what to do from the file the bench
wrote (the platform, the rate, the seconds), publishes simulated traffic with probes
among it at that rate and polls Feast for the probes, then prints one JSON line: when
publishing started, reached a quarter of the messages and ended (wall clock, the
`time.time()` the job's process shares), how many went out, and each probe's
freshness. With `rate` 0 it publishes the traffic as fast as it can, with no probes
(the trivial pipeline's ceiling). Kept apart from the job so that neither the
publisher's nor the reader's Python competes with the job's for one interpreter lock.
"""

from __future__ import annotations

import json
import logging
import pickle
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.freshness import ProbeWatcher, probe_message, topic_ids, traffic
from simulator.traffic import SimulatedMessage

log = logging.getLogger(__name__)
READY_S = 180.0


def main(spec_path: str) -> int:
    spec: dict[str, Any] = pickle.loads(Path(spec_path).read_bytes())
    platform, rate = spec["platform"], spec["rate"]
    platform.apply_env()
    if rate > 0:
        seconds, label, drain_s = spec["seconds"], spec["label"], spec["drain_s"]
        result = _probed(platform, rate, seconds, spec["seed"], label, drain_s)
    else:
        result = _flood(platform, spec["messages"], spec["seed"])
    print(json.dumps(result), flush=True)
    return 0


def _flood(platform: Any, count: int, seed: int) -> dict[str, Any]:
    from simulator.publisher import publish_messages

    messages = [m for m, _ in traffic(count, 1.0, seed, "unused-", probes=False)]
    marks: list[float] = []
    started = time.time()
    stats = publish_messages(
        platform.project, _marked(messages, marks), topic_ids=topic_ids(platform)
    )
    return {
        "started": started,
        "quarter": marks[0],
        "ended": time.time(),
        "published": stats.published,
    }


def _probed(
    platform: Any, rate: float, seconds: float, seed: int, label: str, drain_s: float
) -> dict[str, Any]:
    from jobs.provision import feature_store
    from simulator.publisher import publish_messages

    watcher = ProbeWatcher(feature_store(platform))
    watcher.start()
    try:
        ready = f"probe-{platform.feast_project}-ready-{label}"
        watcher.announce(ready)
        began = time.time()
        publish_messages(
            platform.project,
            [probe_message(ready)],
            progress=watcher.published,
            topic_ids=topic_ids(platform),
        )
        if not watcher.wait([ready], READY_S):
            return {"error": f"the streaming job did not make a probe readable in {READY_S} s"}
        ready_s = time.time() - began
        messages = traffic(rate, seconds, seed, f"probe-{platform.feast_project}-{label}-")
        probes = [user for _, user in messages if user is not None]
        marks: list[float] = []
        started = time.time()
        stats = publish_messages(
            platform.project,
            _announcing(messages, watcher, marks),
            rate=rate,
            realtime=True,
            topic_ids=topic_ids(platform),
            progress=watcher.published,
        )
        ended = time.time()
        fresh = watcher.wait(probes, drain_s)
    finally:
        watcher.stop()
    return {
        "ready_s": ready_s,
        "started": started,
        "quarter": marks[0],
        "ended": ended,
        "published": stats.published,
        "fresh_ms": sorted(fresh.values()),
        "unseen": len(probes) - len(fresh),
    }


def _marked(messages: Sequence[SimulatedMessage], marks: list[float]) -> Iterator[SimulatedMessage]:
    for n, message in enumerate(messages):
        if n == len(messages) // 4:
            marks.append(time.time())
        yield message


def _announcing(
    messages: Sequence[tuple[SimulatedMessage, str | None]],
    watcher: ProbeWatcher,
    marks: list[float],
) -> Iterator[SimulatedMessage]:
    """The messages, each announced to the watcher; the time a quarter of the way
    through goes to `marks`."""
    for n, (message, probe) in enumerate(messages):
        if n == len(messages) // 4:
            marks.append(time.time())
        watcher.announce(probe)
        yield message


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.exit(main(sys.argv[1]))
