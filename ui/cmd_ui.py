"""`feature-store ui`."""

from __future__ import annotations

import click

from jobs.cli import CliContext


@click.command()
@click.option("--port", default=8080, show_default=True, help="Port to serve the page on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.pass_obj
def ui(ctx: CliContext, port: int, host: str) -> None:
    """Serve a page: features, freshness, dead letters, consistency, entity lookups."""
    from ui.app import serve

    click.echo(f"serving the page at http://{host}:{port}/ (Ctrl-C stops it)")
    serve(ctx.config, ctx.registry, host, port)


COMMANDS = [ui]
