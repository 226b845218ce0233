"""What `deploy up|status|down --target slurm` print; the work is in `slurm_runtime`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec


def up_slurm(
    plan: Plan,
    services: list[ServiceSpec],
    overrides: dict[str, dict[str, Any]],
    cluster: Path | None,
    simulate: bool,
    state_dir: Path | None,
    timeout: float | None,
    keep: bool,
    as_json: bool,
    *,
    dry_run: bool = False,
    watch: bool = False,
) -> None:
    from orchestrator.errors import InputError
    from orchestrator.targets import slurm_runtime
    from orchestrator.targets.settings import load_settings

    if watch:
        raise InputError(
            "--watch supervises compose deployments; Slurm supervises its own jobs",
            "drop --watch, and follow the job with `deploy logs --target slurm -f`",
        )

    settings = load_settings(cluster, overrides).slurm
    if dry_run:  # the batch script `up` would submit
        from orchestrator.targets.compose.render import compose_project
        from orchestrator.targets.slurm import batch_script

        slug = compose_project(plan)
        click.echo(batch_script(plan, services, settings, slug, simulate=simulate), nl=False)
        return
    say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    job = slurm_runtime.up(
        plan,
        services,
        settings,
        simulate=simulate,
        state_dir=state_dir,
        timeout_s=timeout,
        keep=keep,
        say=say,
    )
    if as_json:
        click.echo(json.dumps(job.model_dump(mode="json"), indent=2))
        return
    click.echo(f"{job.name} is ready (Slurm job {job.job_id}): {job.endpoint}")


def status_slurm(name: str | None, state_dir: Path | None, as_json: bool) -> None:
    from orchestrator.targets import slurm_runtime

    rows = slurm_runtime.status(name, state_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no Slurm deployments")
        return
    table = [["NAME", "JOB", "STATE", "ELAPSED", "NODES", "READY", "ENDPOINT"]]
    for row in rows:
        table.append(
            [
                str(row["name"]),
                str(row["job_id"]),
                str(row["state"]),
                str(row["elapsed"] or "-"),
                str(row["nodes"] or "-"),
                "yes" if row["ready"] else "no",
                str(row["endpoint"] or "-"),
            ]
        )
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def down_slurm(name: str | None, all_jobs: bool, state_dir: Path | None, as_json: bool) -> None:
    from orchestrator.targets import slurm_runtime

    removed = slurm_runtime.down(name, state_dir, all_jobs=all_jobs)
    if as_json:
        click.echo(json.dumps({"deployments": removed}, indent=2))
    elif removed:
        click.echo(f"removed {', '.join(removed)} (Slurm job cancelled, state deleted)")
    else:
        click.echo(f"nothing to remove{f' for {name}' if name else ''}")
