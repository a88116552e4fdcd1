"""`feature-store validate` and `feature-store simulate`: the event contract at the shell."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from feature_store.errors import ConfigError, FeatureStoreError, InvalidEventError
from feature_store.events import TOPICS, DeadLetter, contracts_of, parse_timestamp
from jobs.output import console, counters, fmt, json_option, table
from simulator.traffic import (
    DEFAULT_START,
    SimulatedMessage,
    SimulationConfig,
    write_jsonl,
)
from simulator.traffic import simulate as simulate_events

if TYPE_CHECKING:
    from jobs.cli import CliContext

stderr = Console(stderr=True)


def _lines(path: Path) -> Iterator[bytes]:
    """Each line's raw bytes, without its trailing newline (nothing else is stripped)."""
    with path.open("rb") as file:
        for line in file:
            yield line[:-1] if line.endswith(b"\n") else line


def _topic_of(path: Path, topics: Iterable[str] = TOPICS) -> str | None:
    return next((t for t in sorted(topics, key=len, reverse=True) if path.name.startswith(t)), None)


@click.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--topic",
    default=None,
    help="review-events or user-events; by default taken from the file name.",
)
@click.option(
    "--dlq",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write each invalid message with its reason here (JSON lines).",
)
@click.option(
    "--now",
    "now",
    help="When the event files count as received (RFC 3339); an event_time after it plus "
    "the clock skew is invalid. Default: when the run starts.",
)
@json_option
@click.pass_obj
def validate(
    ctx: CliContext,
    file: Path,
    topic: str | None,
    dlq: Path | None,
    now: str | None,
    as_json: bool,
) -> None:
    """Check a JSON-lines event file against the event contract and print a summary."""
    received = _start(now, "--now") if now is not None else datetime.now(UTC)
    skew = timedelta(seconds=ctx.config.clock_skew_s)
    contracts = contracts_of(ctx.registry.sources)  # the contract of --definitions
    topic = topic or _topic_of(file, contracts)
    if topic is None:
        msg = f"cannot tell the topic from the file name {file.name!r}; use --topic"
        raise click.ClickException(msg)
    if topic not in contracts:
        msg = f"--topic {topic!r} is not one of {', '.join(contracts)}"
        raise click.ClickException(msg)
    if not file.is_file():
        msg = f"no event file at {file}"
        raise click.ClickException(msg)
    if dlq is not None and dlq.resolve() == file.resolve():
        msg = f"the dead-letter file {dlq} would overwrite the input"
        raise click.ClickException(msg)
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    out = None
    if dlq is not None:
        dlq.parent.mkdir(parents=True, exist_ok=True)
        out = dlq.open("w", encoding="utf-8")
    try:
        for raw in _lines(file):
            result = contracts[topic].validate(raw, received=received, clock_skew=skew)
            if isinstance(result, DeadLetter):
                counts["invalid"] += 1
                reasons[str(result.reason)] += 1
                if out is not None:
                    out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            elif result.event_id in seen:
                counts["duplicates"] += 1
            else:
                seen.add(result.event_id)
                counts["valid"] += 1
    finally:
        if out is not None:
            out.close()
    summary = {name: counts[name] for name in ("valid", "invalid", "duplicates")}
    if as_json:
        click.echo(json.dumps({**summary, "reasons": dict(sorted(reasons.items()))}))
        return
    console.print(
        f"{file.name} ({topic}): {sum(summary.values()):,} lines, {summary['valid']:,} valid, "
        f"{summary['invalid']:,} invalid, {summary['duplicates']:,} duplicates"
        + (f"; dead letters in {dlq}" if dlq is not None and summary["invalid"] else "")
    )
    if reasons:
        console.print(counters("why invalid", reasons))


def _start(value: str | None, option: str = "--start") -> datetime:
    if value is None:
        return DEFAULT_START
    try:
        if len(value) == 10:  # a date: its midnight, UTC
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        return parse_timestamp(value)
    except (ValueError, InvalidEventError) as exc:
        msg = f"{option} {value!r} is neither a date nor an RFC 3339 time with an offset: {exc}"
        raise click.ClickException(msg) from None


def _counted(
    messages: Iterator[SimulatedMessage], advance: Callable[[int], None], counts: Counter[str]
) -> Iterator[SimulatedMessage]:
    for i, message in enumerate(messages, 1):
        counts[f"{message.topic}/{message.kind}"] += 1
        if i % 1000 == 0:
            advance(1000)
        yield message


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
    )


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Folder for review-events.jsonl and user-events.jsonl.",
)
@click.option(
    "--events",
    type=int,
    default=100_000,
    show_default=True,
    help="Messages in total, bad ones included.",
)
@click.option("--users", type=int, default=10_000, show_default=True)
@click.option("--businesses", type=int, default=1_000, show_default=True)
@click.option(
    "--start",
    default=None,
    help="First event time: RFC 3339 with an offset, or a date (UTC midnight). "
    "Default 2024-01-01T00:00:00Z.",
)
@click.option("--days", type=float, default=7.0, show_default=True, help="Span of event time.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--bad-share", type=float, default=0.0, show_default=True, help="Share of malformed messages."
)
@click.option(
    "--duplicate-share",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of re-deliveries of earlier messages (same event_id).",
)
@click.option(
    "--late-share",
    type=float,
    default=0.0,
    show_default=True,
    help="Share of messages delivered two hours or more after their event time.",
)
@click.option(
    "--first-review",
    type=int,
    default=0,
    show_default=True,
    help="Number the reviews from N (review ids are a bijection of the number): traffic "
    "that goes on from an earlier run starts after its reviews instead of reusing their ids.",
)
@click.option(
    "--publish", is_flag=True, help="Publish to the Pub/Sub topics instead of writing files."
)
@click.option(
    "--rate",
    type=float,
    default=None,
    help="With --publish: at most this many messages per second.",
)
@click.option(
    "--realtime",
    is_flag=True,
    help="With --publish: rewrite event times to now as messages go out.",
)
@json_option
@click.pass_obj
def simulate(
    ctx: CliContext,
    *,
    as_json: bool,
    out: Path | None,
    events: int,
    users: int,
    businesses: int,
    start: str | None,
    days: float,
    seed: int,
    bad_share: float,
    duplicate_share: float,
    late_share: float,
    first_review: int,
    publish: bool,
    rate: float | None,
    realtime: bool,
) -> None:
    """Simulate review and user events, with fraud, into files or onto Pub/Sub."""
    if publish == (out is not None):
        msg = "give exactly one of --out DIR and --publish"
        raise click.ClickException(msg)
    if not publish and (rate is not None or realtime):
        msg = "--rate and --realtime only apply with --publish"
        raise click.ClickException(msg)
    try:
        config = SimulationConfig(
            events=events,
            start=_start(start),
            duration=timedelta(days=days),
            users=users,
            businesses=businesses,
            seed=seed,
            bad_share=bad_share,
            duplicate_share=duplicate_share,
            late_share=late_share,
            first_review=first_review,
        )
    except (ConfigError, ValueError, OverflowError) as exc:
        raise click.ClickException(str(exc)) from None
    counts: Counter[str] = Counter()
    began = time.monotonic()
    with _progress() as progress:
        task = progress.add_task("publishing" if publish else "simulating", total=events)
        messages = _counted(simulate_events(config), lambda n: progress.advance(task, n), counts)
        if out is not None:
            files = write_jsonl(messages, out)
            summary: dict[str, object] = {"files": {t: str(p) for t, p in files.items()}}
        else:
            summary = _publish(ctx.config.project, messages, rate, realtime)
        progress.update(task, completed=sum(counts.values()))
    seconds = time.monotonic() - began
    report = {"messages": sum(counts.values()), "by_topic_and_kind": dict(sorted(counts.items()))}
    if as_json:
        click.echo(json.dumps({**report, **summary, "seconds": round(seconds, 2)}, indent=2))
        return
    kinds = table("topic", "kind", "messages", numeric=("messages",))
    for name, n in sorted(counts.items()):
        topic_name, _, kind = name.partition("/")
        kinds.add_row(topic_name, kind, fmt(n))
    console.print(kinds)
    for name, path in summary.get("files", {}).items():  # type: ignore[attr-defined]
        console.print(f"{name}: {path}")
    if "published" in summary:
        console.print(
            f"published {summary['published']:,} messages ({summary['published_per_s']} per second)"
        )
    console.print(f"{report['messages']:,} messages in {seconds:.1f} s")


def _publish(
    project: str, messages: Iterator[SimulatedMessage], rate: float | None, realtime: bool
) -> dict[str, object]:
    from simulator.publisher import publish_messages

    try:
        stats = publish_messages(project, messages, rate, realtime=realtime)
    except FeatureStoreError as exc:
        raise click.ClickException(str(exc)) from None
    return {"published": stats.published, "published_per_s": round(stats.rate, 1)}


COMMANDS = [validate, simulate]
