"""`deploy render`: write compose files, launch scripts and a README for a plan."""

from __future__ import annotations

import os
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
    from orchestrator.engines import build_services
    from orchestrator.errors import PlanError
    from orchestrator.planner import build_plan
    from orchestrator.render import render_deployment
    from orchestrator.request import PlanRequest
    from orchestrator.secrets_policy import check_secrets
    from orchestrator.targets.options import overrides

    settings = overrides(options)
    plan = build_plan(PlanRequest.from_options(**options))
    check_secrets(plan, os.environ, allow_missing_secrets)
    if not plan.fits:
        hint = plan.suggestion or "add GPUs, lower --context, or quantize (deploy plan explains)"
        raise PlanError(f"{plan.model.name} does not fit the planned hardware", hint)
    if target != "compose":
        from orchestrator.targets.render import render_for_cli

        paths = render_for_cli(target, plan, simulate, out_dir, options.get("cluster"), settings)
        for path in paths:
            click.echo(str(path))
        return
    for path in render_deployment(plan, build_services(plan, simulate=simulate), out_dir):
        click.echo(str(path))
