"""`feature-store training-set`: labelled entities joined with a feature service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from jobs.cli import CliContext
    from offline.training_set import TrainingSetSummary

WIDTH = 100


def _summary_table(summary: TrainingSetSummary) -> Table:
    from offline.training_set import null_share

    table = Table(title=f"nulls per feature ({summary.rows} rows)", title_justify="left")
    table.add_column("feature", overflow="fold")
    table.add_column("nulls", justify="right")
    table.add_column("share", justify="right")
    for column, nulls in summary.nulls.items():
        share = null_share(summary, column)
        style = "red" if share == 1 else "yellow" if share > 0 else ""
        table.add_row(column, str(nulls), f"{share:.1%}", style=style)
    return table


def _print_summary(console: Console, summary: TrainingSetSummary) -> None:
    empty = [c for c, n in summary.nulls.items() if n == summary.rows]
    console.print(
        f"[bold]{escape(str(summary.path))}[/bold]: {summary.rows} rows, "
        f"{len(summary.label_columns)} label columns, "
        f"{len(summary.nulls)} features of service `{summary.service}`"
    )
    if summary.start and summary.end:
        console.print(f"labels from {summary.start.isoformat()} to {summary.end.isoformat()}")
    console.print(_summary_table(summary))
    if empty:
        console.print(
            f"{len(empty)} feature(s) have no value at any row's time: nothing computes "
            "them yet, or the labels predate their history."
        )


@click.command(name="training-set")
@click.option(
    "--entities",
    "entities",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV of labelled rows: the service's join keys, event_timestamp, any labels.",
)
@click.option("--service", required=True, help="Feast feature service, e.g. review_fraud_model.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Parquet."
)
@click.option(
    "--batch-rows",
    default=50_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Label rows per Feast retrieval.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def training_set(
    ctx: CliContext, entities: Path, service: str, out: Path, batch_rows: int, as_json: bool
) -> None:
    """Point-in-time correct training set: each labelled row gets the service's
    features as of its event_timestamp, read through Feast's historical retrieval."""
    from feast.errors import FeatureServiceNotFoundException

    from jobs.provision import feature_store
    from offline.training_set import (
        TrainingSetError,
        build_training_set,
        read_labels,
        service_join_keys,
    )

    store = feature_store(ctx.config)
    try:
        keys = service_join_keys(store, service)
    except FeatureServiceNotFoundException as exc:
        names = sorted(s.name for s in store.list_feature_services())
        msg = f"no feature service {service!r}; known: {names}"
        raise click.BadParameter(msg, param_hint="--service") from exc
    console = Console(width=min(WIDTH, Console().width), stderr=as_json)
    try:
        labels = read_labels(entities, keys)
        columns = [
            TextColumn("joining"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
        ]
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("join", total=len(labels))
            summary = build_training_set(
                store,
                service,
                labels,
                out,
                batch_rows=batch_rows,
                progress=lambda n: bar.advance(task, n),
            )
    except TrainingSetError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        _print_summary(console, summary)


COMMANDS = [training_set]
