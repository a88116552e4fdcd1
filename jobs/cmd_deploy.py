"""`feature-store deploy`: the two jobs on Dataflow Prime."""

from __future__ import annotations

import json
from pathlib import Path

import click

from feature_store.errors import ConfigError
from jobs.cli import CliContext


@click.command()
@click.argument("job", type=click.Choice(["stream", "backfill"]))
@click.option("--project", "gcp_project", required=True, help="The GCP project to run in.")
@click.option("--region", required=True, help="Dataflow region, e.g. europe-west1.")
@click.option(
    "--temp-location", help="gs:// path for temporary files (default: gs://P-dataflow/tmp)."
)
@click.option(
    "--staging-location", help="gs:// path for staged files (default: the temp location)."
)
@click.option(
    "--image",
    help="Worker image (sdk_container_image): REGION-docker.pkg.dev/P/feature-store/worker:TAG.",
)
@click.option(
    "--service-account",
    help="Worker service account (default: feature-store-<job>@P.iam.gserviceaccount.com).",
)
@click.option("--network", help="VPC network.")
@click.option("--subnetwork", help="Subnetwork, e.g. regions/R/subnetworks/S.")
@click.option("--job-name", help="Dataflow job name (default: feature-store-<job>).")
@click.option("--max-workers", type=int, help="Upper bound for Horizontal Autoscaling.")
@click.option("--redis-url", help="Memorystore host:port the jobs write (production).")
@click.option(
    "--qdrant-url",
    help="Qdrant server for the reviews' embeddings (without one, no index is written).",
)
@click.option(
    "--redis-password-secret",
    help="Secret Manager version of Memorystore's AUTH string "
    "(projects/P/secrets/S/versions/latest); the workers read it when they connect.",
)
@click.option(
    "--update", is_flag=True, help="Replace the running streaming job in place (compatible state)."
)
@click.option(
    "--rename",
    "renames",
    multiple=True,
    help="OLD=NEW transform name mapping for --update (repeatable).",
)
@click.option(
    "--drain-first",
    is_flag=True,
    help="Drain the running job of this name, then start the new one (incompatible state).",
)
@click.option(
    "--dry-run", is_flag=True, help="Touch no cloud API: print the graph, write the proto."
)
@click.option(
    "--proto",
    type=click.Path(path_type=Path),
    help="Where --dry-run writes the pipeline proto (default: STATE/deploy/<job>.pb).",
)
@click.pass_obj
def deploy(
    ctx: CliContext,
    job: str,
    gcp_project: str,
    region: str,
    temp_location: str | None,
    staging_location: str | None,
    image: str | None,
    service_account: str | None,
    network: str | None,
    subnetwork: str | None,
    job_name: str | None,
    max_workers: int | None,
    redis_url: str | None,
    redis_password_secret: str | None,
    qdrant_url: str | None,
    update: bool,
    renames: tuple[str, ...],
    drain_first: bool,
    dry_run: bool,
    proto: Path | None,
) -> None:
    """Deploy JOB (stream or backfill) to Dataflow Prime, right-fitted per stage."""
    from dataclasses import replace

    from jobs.deploy import DataflowTarget, launch
    from jobs.deploy import dry_run as run_dry

    if update and drain_first:
        msg = "--update and --drain-first exclude each other: pick one way to replace the job"
        raise click.BadParameter(msg)
    mapping = {}
    for item in renames:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            msg = f"--rename must be OLD=NEW, got {item!r}"
            raise click.BadParameter(msg)
        mapping[old] = new
    config = ctx.config.for_project(gcp_project)
    if redis_url:
        config = replace(config, redis_url=redis_url)
    if redis_password_secret:
        config = replace(config, redis_password_secret=redis_password_secret)
    if qdrant_url:
        config = replace(config, vector_index_url=qdrant_url)
    try:
        target = DataflowTarget(
            project=gcp_project,
            region=region,
            temp_location=temp_location or f"gs://{gcp_project}-dataflow/tmp",
            staging_location=staging_location,
            image=image,
            service_account=service_account
            or f"feature-store-{job}@{gcp_project}.iam.gserviceaccount.com",
            network=network,
            subnetwork=subnetwork,
            job_name=job_name or f"feature-store-{job}",
            max_workers=max_workers,
            update=update,
            transform_name_mapping=mapping,
        )
        if dry_run:
            path = proto or ctx.config.state_dir / "deploy" / f"{job}.pb"
            click.echo(run_dry(job, target, config, ctx.registry, path))
            return
        job_id = launch(job, target, config, ctx.registry, drain_running=drain_first)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps({"job": job, "job_name": target.job_name, "job_id": job_id}))


@click.command("cost-plan")
@click.argument("profile")
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Price data file (default: infra/gcp_prices.json).",
)
def cost_plan(profile: str, prices: Path | None) -> None:
    """Price PROFILE (a JSON profile, or `talk` for the talk's example) as a uniform pool
    and as right-fitted Prime pools; print both, the saving and every assumption."""
    from infra.cost_plan import PRICES, Profile, load_prices, plan, report, talk_example

    try:
        if profile == "talk":
            parsed = talk_example()
        else:
            path = Path(profile)
            if not path.is_file():
                msg = f"PROFILE must be a JSON file or `talk`, got {profile!r}"
                raise click.BadParameter(msg)
            parsed = Profile.from_json(json.loads(path.read_text()))
        result = plan(parsed, load_prices(prices or PRICES))
    except (ConfigError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(report(parsed, result))


COMMANDS = [deploy, cost_plan]
