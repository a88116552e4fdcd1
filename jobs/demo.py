"""The demo: the whole loop on the local platform, ending by itself.

up → apply → simulate three days of history and import it into the raw archive →
backfill from the archive (BigQuery + online stores) → start the streaming job (it
warm-starts from the archive and archives what it receives) → publish live traffic for
the same users and businesses → show their features read through Feast as they change
→ the job's counters → the nightly backfill again (history + live, from the archive)
and a consistency check of the online values against it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel

from common.inference.settings import ModelSettings
from feature_store.config import PlatformConfig
from feature_store.registry import Registry
from jobs import output, summaries
from jobs.output import fmt, run_with_progress
from jobs.stream import StreamProgress
from simulator.traffic import (
    SimulatedMessage,
    SimulationConfig,
    reviews_created,
    simulate,
    write_jsonl,
)

log = logging.getLogger(__name__)
console = Console(highlight=False)
SHOWN = {
    "user_review_stats": (
        "review_count_1h",
        "review_count_24h",
        "avg_rating_7d",
        "distinct_businesses_24h",
    ),
    "user_activity": ("login_count_24h", "distinct_ips_24h"),
    "business_review_stats": ("review_count_1h", "review_count_24h", "one_star_share_7d"),
}
# Model features, shown for the busiest users in the model sample.
MODEL_SHOWN = {
    "user_content_stats": ("avg_sentiment_7d", "max_text_similarity_7d", "centroid_distance_30d")
}


@dataclass(frozen=True)
class DemoSettings:
    history_events: int = 20_000
    live_seconds: float = 60.0
    live_rate: float = 40.0
    users: int = 400
    businesses: int = 60
    seed: int | None = None  # default: a new seed each run (event ids stay unique)
    # Both models on the reviews of 2% of the users (about 120 of the 6,000 history
    # reviews and a dozen live ones): the model views stay exact for those users, and the
    # demo stays quick on 2 CPU cores.
    models: ModelSettings = field(default_factory=lambda: ModelSettings(sample=0.02))


def _step(text: str) -> None:
    console.rule(f"[bold]{text}")


def _seed(settings: DemoSettings) -> int:
    return settings.seed if settings.seed is not None else int(time.time())


def _history(settings: DemoSettings, folder: Path) -> list[SimulatedMessage]:
    start = datetime.now(UTC) - timedelta(days=3)
    config = SimulationConfig(
        seed=_seed(settings),
        start=start,
        duration=timedelta(days=3) - timedelta(minutes=5),
        events=settings.history_events,
        users=settings.users,
        businesses=settings.businesses,
        bad_share=0.01,
        duplicate_share=0.01,
    )
    messages = list(simulate(config))
    write_jsonl(messages, folder)
    return messages


def _live(settings: DemoSettings, first_review: int) -> list[SimulatedMessage]:
    """Live traffic whose reviews are new ones, numbered after the history's."""
    count = int(settings.live_seconds * settings.live_rate)
    config = SimulationConfig(
        seed=_seed(settings) + 1,
        start=datetime.now(UTC),
        duration=timedelta(seconds=settings.live_seconds),
        events=count,
        users=settings.users,
        businesses=settings.businesses,
        bad_share=0.02,
        duplicate_share=0.02,
        first_review=first_review,
    )
    return list(simulate(config))


def _busiest(
    messages: list[SimulatedMessage],
    key: str,
    n: int,
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> list[str]:
    import json

    counts: Counter[str] = Counter()
    for m in messages:
        try:
            body = json.loads(m.raw)
        except ValueError:
            continue
        if isinstance(body, dict) and isinstance(body.get(key), str) and keep(body):
            counts[body[key]] += 1
    return [k for k, _ in counts.most_common(n)]


def _table(
    config: PlatformConfig, users: list[str], businesses: list[str], sampled: list[str]
) -> Group:
    """One small table per view: features down, the busiest entities across, so that
    every name shows whole at 100 columns (model views: the busiest sampled users)."""
    from jobs.retrieval import get_online

    tables: list[RenderableType] = [
        f"features read through Feast at {datetime.now(UTC):%H:%M:%S} UTC"
    ]
    shown = {**SHOWN, **(MODEL_SHOWN if sampled else {})}
    for view, names in shown.items():
        keys, join_key = (
            (businesses, "business_id") if view.startswith("business") else (users, "user_id")
        )
        if view in MODEL_SHOWN:
            keys = sampled
        rows = get_online(config, [f"{view}:{n}" for n in names], [{join_key: k} for k in keys])
        out = output.table(view, *keys, numeric=keys)
        for name in names:
            out.add_row(name, *(fmt(row.get(f"{view}__{name}")) for row in rows))
        tables += ["", out]
    return Group(*tables)


def _reset_online(config: PlatformConfig, registry: Registry) -> list[Any]:
    """Feast's own teardown of the online stores (Redis keys, Bigtable tables) of every
    view the definitions declare, after applying them: a state directory that never
    applied them (a new checkout) still removes the rows an earlier run left on the same
    stack, e.g. another checkout's demo. `apply` recreates the tables right after.
    Returns the apply's changes."""
    from jobs.provision import feast_changes, feature_store

    changes = feast_changes(config, registry, apply=True)
    for store in config.online_stores:
        feature_store(config, store).teardown()
    return changes


def _clear_archive(config: PlatformConfig, registry: Registry) -> int:
    """Empties the local archive tables so that each demo run tells one story."""
    from common.bigquery_client import make_client
    from feature_store.schemas import archive_table_ids

    client = make_client(config.project, config.endpoints.bigquery)
    cleared = 0
    for table in archive_table_ids(config, registry).values():
        job = client.query(f"DELETE FROM `{table}` WHERE TRUE")
        job.result()
        cleared += int(job.num_dml_affected_rows or 0)
    return cleared


def _prepare(config: PlatformConfig, registry: Registry) -> None:
    from infra import stack
    from jobs.provision import feast_changes, infrastructure_changes

    _step("1/7 starting the local platform")
    for s in stack.up(config, timeout=120):
        console.print(f"  {s.name:9} port {s.port}: {'up' if s.healthy else 'DOWN'}")
    _step("2/7 applying the feature definitions (the demo starts from empty stores)")
    changes = infrastructure_changes(config, registry, apply=True)
    changes += _reset_online(config, registry)
    cleared = _clear_archive(config, registry)
    feast_changes(config, registry, apply=True)
    from common.side_topics import SideTopics

    SideTopics(config, registry).ensure_subscriptions()  # the page counts this run's too
    console.print(
        f"  {len(changes)} resources in place "
        f"({sum(c.action != 'exists' for c in changes)} created or updated); "
        f"online stores and archive emptied ({cleared} archived rows)"
    )


def _start_stream(
    config: PlatformConfig, registry: Registry, models: ModelSettings
) -> tuple[Any, list[str]]:
    from common.metrics import reset_local
    from feature_store.resources import stream_subscription
    from jobs.online_sink import online_sink
    from jobs.runner import make_pipeline
    from jobs.stream import StreamSettings, build_stream, plans_for
    from online.pubsub_admin import drain

    reset_local()
    for source in registry.sources:  # start from what is published from now on
        drain(config.project, config.topic_id(stream_subscription(source.topic)))
    plans, _ = plans_for(registry, None, models)
    pipeline = make_pipeline([], streaming=True)
    settings = StreamSettings(models=models)
    build_stream(pipeline, config, registry, plans, settings, online_sink(config))
    return pipeline.run(), [p.view for p in plans]


MAX_UNREAD = 100
"""Messages the demo lets wait in the subscriptions, and records in the model stage.
Beam's local runner moves its watermark with the wall clock however many messages wait,
so a message read minutes after it was published is late for its key; the demo
publishes no faster than the job reads (at most `MAX_UNREAD` ahead), and no faster than
its models take the sampled reviews, so its live events arrive on time on a busy
machine too."""
PACE_PATIENCE_S = 300.0
"""How long the publisher waits for a job that makes no progress (starting up: loading
its models, reading its warm start) before it publishes on regardless."""


@dataclass
class _Pace:
    """`wait(sent)` blocks while the job has read `MAX_UNREAD` fewer messages than were
    sent, or holds `MAX_UNREAD` records in its model stage, as long as it made progress
    (read a message, or a record left the models) within `PACE_PATIENCE_S`; a job stalled
    longer does not stop the demo (it publishes on, and says so once)."""

    seen: tuple[int, int] = (-1, -1)
    progressed: float = field(default_factory=time.monotonic)
    gave_up: bool = False

    def wait(self, sent: int) -> None:
        from common.inference.settings import BACK, SENT
        from common.metrics import local_counts

        while True:
            counts = local_counts()
            read, back = counts.get("events_received", 0), counts.get(BACK, 0)
            inside = counts.get(SENT, 0) - back
            now = time.monotonic()
            if (read, back) != self.seen:
                self.seen, self.progressed, self.gave_up = (read, back), now, False
            if (sent - read < MAX_UNREAD and inside < MAX_UNREAD) or self.gave_up:
                return
            if now - self.progressed > PACE_PATIENCE_S:
                log.warning("the job made no progress for %.0f s; publishing on", PACE_PATIENCE_S)
                self.gave_up = True
                return
            time.sleep(0.1)


def _publisher(
    config: PlatformConfig, live: list[SimulatedMessage], rate: float
) -> threading.Thread:
    from simulator.publisher import publish_messages

    return threading.Thread(
        target=publish_messages,
        daemon=True,
        kwargs={
            "project": config.project,
            "messages": live,
            "rate": rate,
            "realtime": True,
            "topic_ids": {t: config.topic_id(t) for t in ("review-events", "user-events")},
            "pace": _Pace().wait,
        },
    )


COMPLETE_WAIT_S = 120.0
"""How long the demo waits, once the live traffic is published, for the stream's rows to
be complete past it."""


def _wait_for_traffic(
    publisher: threading.Thread, progress: StreamProgress, refresh: Callable[[], None]
) -> None:
    """Until the traffic is published, the job caught up and its rows complete past the
    traffic's end, or caught up `COMPLETE_WAIT_S` after it (the check then compares the
    rows complete earlier, fewer of them)."""
    published: datetime | None = None
    while True:
        time.sleep(2)
        refresh()
        progress.poll_job()
        if publisher.is_alive():
            continue
        published = published or datetime.now(UTC)
        complete = progress.complete_until()
        if complete is not None and complete > published:
            return
        waited = (datetime.now(UTC) - published).total_seconds()
        if progress.caught_up() and waited > COMPLETE_WAIT_S:
            return


def run_demo(config: PlatformConfig, registry: Registry, settings: DemoSettings) -> int:
    from common.last_results import CONSISTENCY, save_result
    from jobs.backfill import run_backfill
    from jobs.consistency import check_consistency
    from jobs.importer import run_import
    from jobs.stream import collect

    if not config.local:
        msg = f"the demo runs on the local emulators, not on GCP project {config.project}"
        raise SystemExit(msg)
    _prepare(config, registry)
    _step("3/7 simulating three days of history, importing it into the archive")
    folder = config.state_dir / "demo" / "history"
    history = _history(settings, folder)
    imported = run_with_progress(
        "import", lambda: run_import(config, registry, [str(folder)]), total=len(history)
    )
    console.print(f"  {len(history):,} messages simulated into {folder}")
    console.print(summaries.imported(imported.counters, imported.dead_letters))
    _step("4/7 backfilling BigQuery and the online stores from the archive")
    models = settings.models
    console.print(
        f"  models: {models.label}, on the reviews of {models.sample:.0%} of the users "
        "(a stable hash of user_id)"
    )
    first = run_with_progress(
        "backfill", lambda: run_backfill(config, registry, [], models=models), total=None
    )
    console.print(summaries.backfill(first.as_dict()))
    _step("5/7 starting the streaming job and publishing live traffic")
    started = datetime.now(UTC)
    result, views = _start_stream(config, registry, models)
    users = _busiest(history, "user_id", 4)
    sampled = _busiest(history, "user_id", 2, models.sampled) if models.models else []
    businesses = _busiest(history, "business_id", 2)
    live = _live(settings, reviews_created(history))
    publisher = _publisher(config, live, settings.live_rate)
    time.sleep(3)
    publisher.start()
    console.print(f"  publishing {len(live):,} messages at {settings.live_rate:g} per second")
    _step("6/7 live features (Feast online) while the stream runs")
    began = time.monotonic()
    progress = StreamProgress()
    with Live(
        _table(config, users, businesses, sampled), console=console, refresh_per_second=1
    ) as view:
        _wait_for_traffic(
            publisher, progress, lambda: view.update(_table(config, users, businesses, sampled))
        )
    console.line()
    job = collect(result)
    result.cancel()
    ran_s = time.monotonic() - began
    console.print(summaries.stream(ran_s, job.counters, job.distributions, job.skipped_views))
    _step("7/7 the nightly backfill from the archive, and online vs offline consistency")
    # The stream's rows are compared where they are complete; without a fired change
    # timer, at its start (its rows all come later, and are not compared).
    at = progress.complete_until() or started
    nightly = run_with_progress(
        "backfill",
        lambda: run_backfill(config, registry, [], online=False, end=at, models=models),
        total=None,
    )
    report = check_consistency(config, registry, views, at)
    save_result(config, CONSISTENCY, {"views": views, **report.as_dict()})
    console.print(summaries.consistency(report.as_dict(examples=5)))
    console.print(
        _closing(config, len(history), len(live), first, nightly, job.counters, report, users)
    )
    return 0 if not report.mismatches else 1


def _closing(
    config: PlatformConfig,
    history: int,
    live: int,
    first: Any,
    nightly: Any,
    counters: dict[str, int],
    report: Any,
    users: list[str],
) -> Panel:
    """The last screen: what ran, what was checked, where to look next."""
    verdict = "equal" if not report.mismatches else f"{len(report.mismatches):,} MISMATCHES"
    invalid = counters.get("events_invalid", 0)
    lines = [
        "[bold]What ran[/bold]",
        f"  {history:,} simulated messages imported into the raw archive (BigQuery)",
        f"  a backfill: {first.change_points:,} change points into BigQuery and the online stores",
        f"  the streaming job on {live:,} live messages: "
        f"{counters.get('events_valid', 0):,} valid, {invalid:,} to the dead-letter topic, "
        f"{counters.get('events_late', 0):,} late",
        f"  the nightly backfill over history and live: {nightly.change_points:,} change points",
        "",
        "[bold]What was checked[/bold]",
        f"  online (Feast, Redis) vs offline (Feast, BigQuery point-in-time) at "
        f"{report.at:%H:%M:%S} UTC:",
        f"  {report.values:,} values of {report.entities:,} entities: {verdict}",
        "",
        "[bold]Where to look next[/bold]",
        "  the page (freshness, dead letters, this check, entity lookups):",
        "    feature-store ui --port 8080   then open http://127.0.0.1:8080/",
        "  the features from Python, with plain Feast:",
        "    from feast import FeatureStore",
        f'    fs = FeatureStore(repo_path="{config.feast_repo.resolve()}")',
        "    fs.get_online_features(",
        '        features=["user_review_stats:review_count_24h"],',
        f'        entity_rows=[{{"user_id": "{users[0] if users else "u000001"}"}}],',
        "    ).to_dict()",
    ]
    return Panel("\n".join(lines), title="demo done", title_align="left", expand=False)
