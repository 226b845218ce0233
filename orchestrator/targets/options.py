"""Command-line options of the targets (`--target` and the settings it may override).

Imports only click: these decorate commands whose `--help` must stay fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

TARGET_NAMES = ("compose", "k8s", "slurm")


def target_option(choices: tuple[str, ...] = TARGET_NAMES) -> Callable[[F], F]:
    default = choices[0]
    return click.option(
        "--target",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="Where it runs: Docker hosts (compose), Kubernetes with LeaderWorkerSet (k8s), "
        "or a Slurm job (slurm)."
        if "k8s" in choices
        else "Where it runs: Docker hosts (compose) or a Slurm job (slurm).",
    )


def settings_options(func: F) -> F:
    """Overrides of the cluster file's `kubernetes:` and `slurm:` sections."""
    for option in reversed(
        [
            click.option("--namespace", metavar="NS", help="Kubernetes namespace (k8s)."),
            click.option("--partition", metavar="NAME", help="Slurm partition (slurm)."),
            click.option("--time-limit", metavar="D-HH:MM:SS", help="Slurm time limit (slurm)."),
        ]
    ):
        func = option(func)
    return func


def overrides(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pop the settings options out of a command's keyword arguments."""
    return {
        "kubernetes": {"namespace": options.pop("namespace", None)},
        "slurm": {
            "partition": options.pop("partition", None),
            "time_limit": options.pop("time_limit", None),
        },
    }
