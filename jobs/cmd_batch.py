"""`feature-store backfill` and `feature-store get`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from feature_store.errors import ConfigError
from jobs import summaries
from jobs.cli import CliContext
from jobs.model_options import model_options, model_settings
from jobs.output import console, count_lines, json_option, print_json, run_with_progress


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        msg = (
            f"--{name} needs an explicit UTC offset (e.g. 2024-05-01T00:00:00Z), "
            f"got {value.isoformat()}"
        )
        raise click.BadParameter(msg)
    return value.astimezone(UTC)


def _parse_time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")), name)
    except ValueError as exc:
        msg = f"--{name} must be an RFC 3339 timestamp, got {text!r}"
        raise click.BadParameter(msg) from exc


@click.command()
@click.option(
    "--events",
    "events",
    multiple=True,
    help="Event files or folders (JSON lines named <topic>*.jsonl, or Parquet); "
    "default: the raw archive in BigQuery.",
)
@click.option("--start", help="Replace rows from this time on (RFC 3339); default: all.")
@click.option("--end", help="Compute up to this time (default and at most: now).")
@click.option("--views", default="", help="Comma-separated views (default: every view).")
@click.option("--no-online", is_flag=True, help="Do not write the online stores.")
@click.option("--dead-letters", help="Dead-letter file prefix (default under the state dir).")
@click.option(
    "--bigquery-sink",
    type=click.Choice(["client", "beam"]),
    default="client",
    show_default=True,
    help="client: load jobs through google-cloud-bigquery "
    "(emulator and BigQuery, range replace); beam: Beam's WriteToBigQuery file loads.",
)
@click.option(
    "--profile",
    type=click.Path(dir_okay=False),
    help="Write the run's per-stage profile here (JSON, for `feature-store cost-plan`).",
)
@click.option(
    "--now",
    "now",
    help="When the event files count as received (RFC 3339); an event_time after it plus "
    "the clock skew is invalid. Default: when the run starts.",
)
@model_options()
@json_option
@click.argument("pipeline_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def backfill(
    ctx: CliContext,
    events: tuple[str, ...],
    start: str | None,
    end: str | None,
    views: str,
    no_online: bool,
    dead_letters: str | None,
    bigquery_sink: str,
    profile: str | None,
    now: str | None,
    models: str,
    model_sample: float,
    as_json: bool,
    pipeline_args: tuple[str, ...],
) -> None:
    """Recompute features from the event archive into BigQuery and the online stores.

    Extra arguments after `--` go to Beam (e.g. `-- --runner DataflowRunner ...`).
    """
    from jobs.backfill import run_backfill
    from jobs.watch import JobFailedError

    settings = model_settings(models, model_sample)
    since, until, received = (
        _parse_time(start, "start"),
        _parse_time(end, "end"),
        _parse_time(now, "now"),
    )
    try:
        summary = run_with_progress(
            "backfill",
            lambda: run_backfill(
                ctx.config,
                ctx.registry,
                events,
                views=[v for v in views.split(",") if v],
                start=since,
                end=until,
                online=not no_online,
                dead_letters=dead_letters,
                bigquery_sink=bigquery_sink,
                pipeline_args=pipeline_args,
                received=received,
                profile=profile,
                models=settings,
            ),
            total=count_lines(events) if events else None,
        )
    except (ConfigError, JobFailedError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json(summary.as_dict())
    else:
        console.print(summaries.backfill(summary.as_dict()))


@click.command()
@click.option("--entity", "entities", multiple=True, help="join_key=value (repeatable).")
@click.option(
    "--entities",
    "entities_file",
    type=click.Path(exists=True, path_type=Path),
    help="CSV with join key columns (and event_timestamp for history).",
)
@click.option(
    "--features",
    "features",
    multiple=True,
    required=True,
    help="view or view:feature, comma-separated.",
)
@click.option("--at", "at", help="Read history as of this time (RFC 3339) instead of online.")
@click.option("--store", type=click.Choice(["redis", "bigtable"]), help="Online store to read.")
@json_option
@click.pass_obj
def get(
    ctx: CliContext,
    entities: tuple[str, ...],
    entities_file: Path | None,
    features: tuple[str, ...],
    at: str | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Read features through Feast: online (now) or point-in-time history (--at)."""
    import pandas as pd

    from jobs.retrieval import feature_refs, get_historical, get_online

    refs = feature_refs(ctx.registry, features)
    rows: list[dict[str, str]] = []
    for item in entities:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            msg = f"--entity must look like user_id=U1, got {item!r}"
            raise click.BadParameter(msg)
        rows.append({key: value})
    frame = pd.read_csv(entities_file, dtype=str) if entities_file else pd.DataFrame(rows)
    if frame.empty:
        msg = "name at least one --entity or an --entities file"
        raise click.UsageError(msg)
    when = _parse_time(at, "at")
    if when is None and "event_timestamp" not in frame.columns:
        result = get_online(ctx.config, refs, frame.to_dict("records"), store)
    else:
        if "event_timestamp" not in frame.columns:
            frame["event_timestamp"] = when
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        result = get_historical(ctx.config, refs, frame)
    if as_json:
        print_json(result)
    else:
        console.print(summaries.feature_rows(result))


COMMANDS = [backfill, get]


@click.command()
@click.option("--views", default="", help="Comma-separated views (default: every computed view).")
@click.option(
    "--at",
    "at",
    help="Compare offline values at this time with the online rows already valid then "
    "(default: now); rows written later are counted as newer_than_at, not compared. "
    "The online writers must have reached it (a streaming job's watermark).",
)
@click.option("--store", type=click.Choice(["redis", "bigtable"]), help="Online store to check.")
@click.option("--page-size", default=1000, show_default=True, help="Entities read per page.")
@json_option
@click.pass_obj
def consistency(
    ctx: CliContext, views: str, at: str | None, store: str | None, page_size: int, as_json: bool
) -> None:
    """Compare online rows (Feast online) with offline point-in-time values (Feast
    historical) for every entity, and report entities online but absent offline.
    Exit 1 on any mismatch."""
    from common.last_results import CONSISTENCY, save_result
    from jobs.backfill import plans_for
    from jobs.consistency import check_consistency

    names = [v for v in views.split(",") if v] or [p.view for p in plans_for(ctx.registry, None)[0]]
    when = _parse_time(at, "at") or datetime.now(UTC)
    try:
        report = check_consistency(
            ctx.config, ctx.registry, names, when, store=store, page_size=page_size
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    save_result(ctx.config, CONSISTENCY, {"views": names, **report.as_dict()})
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(summaries.consistency(json.loads(json.dumps(report.as_dict(), default=str))))
    if report.mismatches:
        raise SystemExit(1)


COMMANDS.append(consistency)


@click.command(name="import")
@click.option(
    "--events",
    "events",
    multiple=True,
    required=True,
    help="Event files or folders (JSON lines named <topic>*.jsonl).",
)
@click.option("--dead-letters", help="Dead-letter file prefix (default under the state dir).")
@click.option(
    "--now",
    "now",
    help="When the event files count as received (RFC 3339); an event_time after it plus "
    "the clock skew is invalid. Default: when the run starts.",
)
@json_option
@click.argument("pipeline_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def import_events(
    ctx: CliContext,
    events: tuple[str, ...],
    dead_letters: str | None,
    now: str | None,
    as_json: bool,
    pipeline_args: tuple[str, ...],
) -> None:
    """Load event files into the raw archive (validated, de-duplicated by event_id)."""
    from jobs.importer import run_import

    received = _parse_time(now, "now")
    try:
        summary = run_with_progress(
            "import",
            lambda: run_import(
                ctx.config,
                ctx.registry,
                events,
                dead_letters=dead_letters,
                pipeline_args=pipeline_args,
                received=received,
            ),
            total=count_lines(events),
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        print_json({"counters": summary.counters, "dead_letters": summary.dead_letters})
    else:
        console.print(summaries.imported(summary.counters, summary.dead_letters))


COMMANDS.append(import_events)
