"""`--models` and `--model-sample`, shared by the commands that run jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from common.inference.settings import ModelSettings

Command = TypeVar("Command", bound=Callable[..., Any])


def model_options(
    default_sample: float = 1.0, default_models: str = "semantic,paraphrase"
) -> Callable[[Command], Command]:
    """`--models` and `--model-sample` (see `model_settings`)."""

    def decorate(command: Command) -> Command:
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
