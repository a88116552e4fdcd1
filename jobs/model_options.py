"""`--models` and `--model-sample`, shared by the commands that run jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from common.inference.settings import ModelSettings


def model_options(  # type: ignore[no-untyped-def]
    default_sample: float = 1.0, default_models: str = "semantic,paraphrase"
):
    """`--models` and `--model-sample` (see `model_settings`)."""

    def decorate(command):  # type: ignore[no-untyped-def]
        command = click.option(
            "--model-sample",
            type=float,
            default=default_sample,
            show_default=True,
            help="Share of users (a stable hash of user_id) whose reviews go through the "
            "models; the model views of the other users are not computed.",
        )(command)
        return click.option(
            "--models",
            "models",
            default=default_models,
            show_default=True,
            help="Models to run: semantic,paraphrase | semantic | paraphrase | none. A view "
            "that reads a model that does not run is skipped with the reason.",
        )(command)

    return decorate


def model_settings(models: str, sample: float) -> ModelSettings:
    """The `ModelSettings` of `--models` and `--model-sample`; a bad value names itself."""
    from common.inference.settings import ModelSettings

    try:
        return ModelSettings.parse(models, sample)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
