"""What a Flex Template launch runs: the template's parameters, then the same job that
`feature-store deploy` submits. Dataflow's launcher passes the template parameters and
the Beam options (project, region, temp location, worker image, ...) as one argument
list; ours are taken out, the rest go to Beam."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import replace

import apache_beam as beam
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
)

from common.stages import DEFAULT_HINTS, as_option
from feature_store.config import PlatformConfig
from feature_store.errors import ConfigError

log = logging.getLogger(__name__)


def parser(job: str) -> argparse.ArgumentParser:
    """The template parameters of `job` (infra/templates/<job>-metadata.json lists the same)."""
    p = argparse.ArgumentParser(prog=f"feature-store-{job}", add_help=False)
    p.add_argument(
        "--definitions",
        default="feature_store.reference:REGISTRY",
        help="Feature definitions as module:object (a Registry installed in the image).",
    )
    p.add_argument("--redis_url", required=True, help="Memorystore as host:port (no AUTH).")
    p.add_argument(
        "--redis_password_secret",
        default=None,
        help="Secret Manager version of the AUTH string, read by the workers.",
    )
    p.add_argument("--bigtable_instance", default="feature-store", help="Bigtable instance id.")
    p.add_argument(
        "--vector_index_url",
        default=None,
        help="Qdrant server for the reviews' embeddings (none: no index is written).",
    )
    p.add_argument("--views", default="", help="Comma-separated views (default: every view).")
    if job == "stream":
        p.add_argument(
            "--allowed_lateness_s",
            type=float,
            default=300.0,
            help="Seconds an event may trail its key and still be exact.",
        )
    else:
        p.add_argument(
            "--dead_letters", required=True, help="gs:// prefix of the dead-letter files."
        )
    return p


def run(job: str, argv: Sequence[str]) -> None:
    """Parses the launch arguments, builds `job` and submits it (without waiting)."""
    from feature_store.registry import load_registry
    from jobs.deploy import build_job

    known, beam_args = parser(job).parse_known_args(list(argv))
    if not any(a.startswith("--resource_hints") for a in beam_args):
        beam_args += [f"--resource_hints={h}" for h in as_option(DEFAULT_HINTS)]
    options = PipelineOptions(beam_args)
    if job == "stream":
        options.view_as(StandardOptions).streaming = True
    project = options.view_as(GoogleCloudOptions).project
    if not project:
        msg = f"the launch arguments name no --project: {list(argv)}"
        raise ConfigError(msg)
    config = replace(
        PlatformConfig().for_project(project),
        redis_url=known.redis_url,
        redis_password_secret=known.redis_password_secret,
        vector_index_url=known.vector_index_url,
        bigtable_instance=known.bigtable_instance,
    )
    pipeline = beam.Pipeline(options=options)
    skipped = build_job(
        job,
        pipeline,
        config,
        load_registry(known.definitions),
        views=[v for v in known.views.split(",") if v] or None,
        dead_letters=getattr(known, "dead_letters", None),
        allowed_lateness_s=getattr(known, "allowed_lateness_s", 300.0),
    )
    for view, reason in skipped.items():
        log.warning("view %s is skipped: %s", view, reason)
    pipeline.run()
