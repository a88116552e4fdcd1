"""`feature-store similar`: the reviews nearest to one review in the multi-vector index."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from common.vector_index import IndexSettings
    from feature_store.config import PlatformConfig
    from jobs.cli import CliContext

WIDTH = 100


def index_settings(config: PlatformConfig, url: str | None, api_key: str | None) -> IndexSettings:
    """The index to read: the server named here, else the platform's (`settings_for`)."""
    from common.vector_index import IndexSettings, settings_for

    if url:
        return IndexSettings(url=url, api_key=api_key)
    found = settings_for(config, api_key)
    if found is None:
        msg = "in production the index is a Qdrant server: give --qdrant-url"
        raise click.UsageError(msg)
    return found


@click.command(name="similar")
@click.option("--review-id", required=True, help="The review to start from.")
@click.option(
    "--vector",
    default="semantic",
    show_default=True,
    type=click.Choice(["semantic", "paraphrase"]),
    help="Which model's embedding to compare by.",
)
@click.option("--k", default=10, show_default=True, type=click.IntRange(min=1, max=1000))
@click.option(
    "--qdrant-url",
    envvar="FEATURE_STORE_QDRANT_URL",
    default=None,
    help="A Qdrant server; without it, the embedded index in the state folder.",
)
@click.option("--qdrant-api-key", envvar="FEATURE_STORE_QDRANT_API_KEY", default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the neighbours as JSON.")
@click.pass_obj
def similar(
    ctx: CliContext,
    review_id: str,
    vector: str,
    k: int,
    qdrant_url: str | None,
    qdrant_api_key: str | None,
    as_json: bool,
) -> None:
    """The K reviews nearest to REVIEW_ID by one model's embedding (cosine), best first."""
    from common import vector_index

    settings = index_settings(ctx.config, qdrant_url, qdrant_api_key)
    try:
        found = vector_index.similar(settings, review_id, vector, k)
    except vector_index.VectorIndexError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps([asdict(n) for n in found], indent=2))
        return
    console = Console(width=min(WIDTH, Console().width))
    table = Table(title=f"nearest to {review_id} by {vector}", title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("review")
    table.add_column("business")
    table.add_column("text", overflow="fold")
    for n in found:
        text = n.text if len(n.text) <= 60 else n.text[:57] + "..."
        table.add_row(f"{n.score:.3f}", n.review_id, n.business_id or "", escape(text))
    console.print(table)


COMMANDS = [similar]
