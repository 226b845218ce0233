"""`deploy render`: write compose files, launch scripts and a README for a plan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orchestrator.cli.options import allow_missing_secret_option, plan_options
from orchestrator.targets.options import settings_options, target_option


@click.command("render")
@plan_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory to write into: new, empty, or an earlier render (replaced).",
)
@click.option(
    "--simulate",
    is_flag=True,
    help="Render for the engine simulator image (no GPUs, no RDMA) to rehearse the layout.",
)
@target_option()
@settings_options
@allow_missing_secret_option
def render(
    out_dir: Path,
    simulate: bool,
    target: str,
    allow_missing_secrets: tuple[str, ...],
    **options: Any,
) -> None:
    """Write DIR/plan.json, DIR/<node>/compose.yaml and launch.sh, DIR/README.md."""
    from orchestrator import execution
    from orchestrator.planning.request import PlanRequest
    from orchestrator.targets.options import overrides

    paths = execution.render(
        PlanRequest.from_options(**options),
        out_dir,
        target=target,
        simulate=simulate,
        cluster=options.get("cluster"),
        settings=overrides(options),
        allow_missing_secrets=allow_missing_secrets,
    )
    for path in paths:
        click.echo(str(path))
