"""`deploy doctor`: the pre-flight of every node of a plan, in the engine's own container."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.options import json_option, plan_options


@click.command()
@plan_options
@click.option("--simulate", is_flag=True, help="Check the rehearsal (simulator image, no GPUs).")
@click.option(
    "--fast", is_flag=True, help="Only the subset `deploy up` runs (no peer connections, no Hub)."
)
@json_option
def doctor(simulate: bool, fast: bool, as_json: bool, **options: Any) -> None:
    """Check every node of MODEL's plan before starting it: Docker, GPUs, driver against the
    image's CUDA, P2P, /dev/shm, memlock, RDMA, the NCCL/Gloo interface, ports, peers
    reaching each other, clocks, disk and the Hub token. Exit 2 when a check fails."""
    from orchestrator import execution
    from orchestrator.planning.request import PlanRequest

    report = execution.doctor(PlanRequest.from_options(**options), simulate=simulate, fast=fast)
    emit(report, as_json=as_json)


def emit(report: Any, *, as_json: bool, statuses: list[Any] | None = None) -> None:
    """Print the report (with `deploy status`'s rows under "services" when given); exit 2
    when a check failed."""
    import json

    from orchestrator.doctor.report import format_report

    if as_json:
        data = report.model_dump(mode="json")
        if statuses is not None:
            data = {"services": statuses, **data}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_report(report))
    if not report.ok:
        raise click.exceptions.Exit(2)
