"""`deploy calibrate`: learn the performance model's factors from your own bench runs."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.options import json_option


@click.command("calibrate")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@click.option("--reset", is_flag=True, help="Forget every run filed before.")
@json_option
def calibrate(results: tuple[Path, ...], reset: bool, as_json: bool) -> None:
    """File `deploy bench` results (result.json or --out dirs) and show the learned factors.

    Factors are kept per GPU, engine and engine version in calibration.json in the state
    directory ($DEPLOY_CALIBRATION, else $XDG_STATE_HOME/deploy); later plans on the same GPU
    and engine version use them and say so. Without RESULTS, show what is stored.
    """
    from orchestrator.planning.calibration import command

    path, factors = command.calibrate(list(results), reset=reset)
    click.echo(command.as_json(path, factors) if as_json else command.report(path, factors))
