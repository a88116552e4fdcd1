"""The `feature-store` command line (also `python -m jobs`).

Subcommands live in `jobs/cmd_*.py`, one module per area; this module only builds the
group and the shared context. Heavy imports (Beam, Feast) happen inside commands.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from feature_store.config import PlatformConfig

if TYPE_CHECKING:
    from feature_store.registry import Registry

DEFAULT_DEFINITIONS = "feature_store.reference:REGISTRY"
_COMMAND_MODULES = (
    "jobs.cmd_stack",
    "jobs.cmd_events",
    "jobs.cmd_registry",
    "jobs.cmd_batch",
    "jobs.cmd_stream",
    "jobs.cmd_demo",
    "jobs.cmd_training",
    "jobs.cmd_deploy",
    "ui.cmd_ui",
    "jobs.cmd_similar",
)


@dataclass
class CliContext:
    """What every subcommand gets: the platform config and the user's definitions."""

    config: PlatformConfig
    definitions: str = DEFAULT_DEFINITIONS
    _registry: Registry | None = field(default=None, repr=False)

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            from feature_store.registry import load_registry

            self._registry = load_registry(self.definitions)
        return self._registry


def _is_local_notice(message: Warning | str, category: type[Warning], filename: str) -> bool:
    """The Bigtable client's emulator notice, or a deprecation inside Google's clients."""
    if issubclass(category, RuntimeWarning):
        return str(message).startswith("Connecting to Bigtable emulator")
    google = f"{os.sep}google{os.sep}"
    return issubclass(category, DeprecationWarning) and google in filename


def _hide_local_notices(show: Callable[..., None]) -> Callable[..., None]:
    if getattr(show, "hides_local_notices", False):
        return show

    def filtered(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not _is_local_notice(message, category, filename):
            show(message, category, filename, lineno, file, line)

    filtered.hides_local_notices = True  # type: ignore[attr-defined]
    return filtered


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--definitions",
    default=DEFAULT_DEFINITIONS,
    envvar="FEATURE_STORE_DEFINITIONS",
    show_default=True,
    help="Feature definitions to use, as module:object (a Registry).",
)
@click.option(
    "--state-dir",
    default=".local",
    envvar="FEATURE_STORE_HOME",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where local state, logs and pid files live.",
)
@click.option(
    "--project",
    default=None,
    envvar="FEATURE_STORE_GCP_PROJECT",
    help="A real GCP project; without it everything runs against the local emulators.",
)
@click.option(
    "--clock-skew",
    type=click.FloatRange(min=0),
    default=300.0,
    envvar="FEATURE_STORE_CLOCK_SKEW_S",
    show_default=True,
    help="Seconds an event_time may lie after its message's publish time (or a file's "
    "receipt); later ones are dead letters.",
)
@click.option("-v", "--verbose", count=True, help="Log INFO lines (-vv: DEBUG).")
@click.pass_context
def main(
    ctx: click.Context,
    definitions: str,
    state_dir: Path,
    project: str | None,
    clock_skew: float,
    verbose: int,
) -> None:
    """Streaming feature store for review and user-activity data."""
    levels = {0: logging.WARNING, 1: logging.INFO}
    logging.basicConfig(
        level=levels.get(verbose, logging.DEBUG),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if verbose < 2:  # the libraries' progress chatter, even with -v
        for noisy in ("apache_beam", "feast", "google", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:  # notices about the local set-up itself, not about the user's data
        quiet = "ignore:Connecting to Bigtable emulator:RuntimeWarning,ignore::DeprecationWarning"
        os.environ.setdefault("PYTHONWARNINGS", quiet)  # the job's own worker processes
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights" bars
        warnings.filterwarnings("ignore", message="Connecting to Bigtable emulator")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="google")
        # Feast's modules put `simplefilter("once", ...)` in front of every filter when they
        # are imported (later, inside the commands), which undoes the two lines above.
        warnings.showwarning = _hide_local_notices(warnings.showwarning)
        # Beam cannot prove the stateful steps' (view, entity) string keys deterministic
        # from a type hint; their coder is deterministic for such keys.
        logging.getLogger("apache_beam.transforms.core").setLevel(logging.ERROR)
    config = dataclasses.replace(PlatformConfig.local_default(state_dir), clock_skew_s=clock_skew)
    if project:
        config = config.for_project(project)
    config.apply_env()
    ctx.obj = CliContext(config=config, definitions=definitions)


for _name in _COMMAND_MODULES:
    for _command in importlib.import_module(_name).COMMANDS:
        main.add_command(_command)
