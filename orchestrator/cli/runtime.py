"""`deploy up`, `status`, `logs`, `down`: thin click commands. `up` is one call of
`orchestrator.execution` (which owns its stages and the re-plan loop); the others read
`orchestrator.runtime`.

`up --dry-run` imports neither docker nor rich: it plans, builds the services and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.options import (
    allow_missing_secret_option,
    checked_name,
    json_option,
    plan_options,
)
from orchestrator.errors import DeployError
from orchestrator.targets.options import settings_options, target_option

# `--target slurm` runs the deployment as a Slurm job (orchestrator/targets/slurm_runtime.py).
runtime_target = target_option(("compose", "slurm"))


class Interrupted(DeployError):
    """A signal stopped `up`: the usual exit status of a process stopped by it (128 + N)."""

    def __init__(self, message: str, signal_name: str = "SIGINT") -> None:
        import signal

        super().__init__(message)
        self.exit_code = 128 + int(signal.Signals[signal_name])


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where deployments are recorded (default: $XDG_STATE_HOME/deploy or ~/.local/state/deploy).",
)
all_owners_option = click.option(
    "--all-owners",
    is_flag=True,
    help="Also act on deployments of other state directories and users (default: only this one's).",
)


@click.command()
@plan_options
@click.option("--dry-run", is_flag=True, help="Print what would run; touch nothing.")
@click.option("--simulate", is_flag=True, help="Run the engine simulator instead of the engines.")
@state_dir_option
@click.option("--keep", is_flag=True, help="On Ctrl-C or failure, leave what was started.")
@click.option("--timeout", type=float, metavar="S", help="Give up if not ready in S seconds.")
@click.option(
    "--max-restarts",
    type=click.IntRange(0, 100),
    default=3,
    show_default=True,
    help="Failures of a service (or engine group) within --restart-window before giving up.",
)
@click.option(
    "--restart-window",
    type=click.FloatRange(1, None),
    default=600,
    show_default=True,
    metavar="S",
    help="Count failures over the last S seconds: a service healthy that long starts afresh.",
)
@click.option(
    "--foreground",
    "--watch",
    "foreground",
    is_flag=True,
    help="Supervise from this terminal instead of a detached supervisor; Ctrl-C detaches.",
)
@click.option(
    "--copy-images",
    is_flag=True,
    help="Copy images a node lacks from one that has them (docker save | load), e.g. deploy-sim.",
)
@click.option(
    "--replan",
    is_flag=True,
    help="If a start fails for lack of memory, apply the planner's re-plan and start once more.",
)
@click.option(
    "--skip-doctor", is_flag=True, help="Start without the pre-flight checks of `deploy doctor`."
)
@runtime_target
@settings_options
@allow_missing_secret_option
@all_owners_option
@json_option
def up(
    target: str,
    allow_missing_secrets: tuple[str, ...],
    all_owners: bool,
    dry_run: bool,
    simulate: bool,
    state_dir: Path | None,
    keep: bool,
    timeout: float | None,
    max_restarts: int,
    restart_window: float,
    foreground: bool,
    copy_images: bool,
    replan: bool,
    skip_doctor: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Plan, start and supervise MODEL until every service is ready; print its URL."""
    from orchestrator import execution
    from orchestrator.planning.request import PlanRequest

    request = PlanRequest.from_options(**options)
    if target == "slurm":
        from orchestrator.cli.slurm import up_slurm
        from orchestrator.targets.options import overrides

        ready = execution.prepare(
            request,
            simulate=simulate,
            allow_missing_secrets=allow_missing_secrets,
            secrets_required=not dry_run,
        )
        for warning in ready.warnings:
            click.echo(f"warning: {warning}", err=True)
        up_slurm(
            ready.plan,
            ready.services,
            overrides(options),
            options.get("cluster"),
            simulate,
            state_dir,
            timeout,
            keep,
            as_json,
            dry_run=dry_run,
            watch=foreground,
        )
        return
    if dry_run:
        from orchestrator.cli.dryrun import format_dry_run

        ready = execution.dry_run(
            request, simulate=simulate, allow_missing_secrets=allow_missing_secrets
        )
        click.echo(format_dry_run(ready.plan, ready.services))
        for warning in ready.warnings:
            click.echo(f"warning: {warning}", err=True)
        return

    from orchestrator.runtime.interrupts import Interrupted as Signalled
    from orchestrator.runtime.interrupts import signals_as_interrupts
    from orchestrator.runtime.progress import default_reporter
    from orchestrator.runtime.supervisor import SupervisorOptions

    try:
        with signals_as_interrupts():
            result = execution.up(
                request,
                execution.UpOptions(
                    state_dir=state_dir,
                    keep=keep,
                    timeout_s=timeout,
                    watch=foreground,
                    doctor=not skip_doctor,
                    replan=replan,
                    allow_missing_secrets=allow_missing_secrets,
                    supervisor=SupervisorOptions(
                        max_restarts=max_restarts,
                        restart_window_s=restart_window,
                        copy_images=copy_images,
                        all_owners=all_owners,
                    ),
                ),
                simulate=simulate,
                reporter=lambda: default_reporter(quiet=as_json),
                say=lambda line: click.echo(line, err=True),
            )
    except KeyboardInterrupt as stopped:
        name = stopped.signal_name if isinstance(stopped, Signalled) else "SIGINT"
        done = (
            "left what it started running (--keep)"
            if keep
            else "removed what it started (containers, network, state)"
        )
        raise Interrupted(f"interrupted by {name}: `deploy up` {done}", name) from None
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    changes = []
    if result.kept:
        changes.append(f"{len(result.kept)} unchanged")
    if result.replaced:
        changes.append(f"{len(result.replaced)} replaced")
    summary = f" ({', '.join(changes)})" if changes else ""
    click.echo(f"{result.name} is ready{summary}: {result.url or '(no HTTP endpoint)'}")
    if result.pd_check:
        click.echo(result.pd_check, err=True)
    if result.supervisor:
        click.echo(f"supervised by {result.supervisor}", err=True)


@click.command()
@click.option(
    "--name",
    callback=checked_name,
    help="One deployment (default: all, from state files and labels).",
)
@state_dir_option
@click.option("--doctor", is_flag=True, help="Also rerun `deploy doctor` on its nodes.")
@runtime_target
@all_owners_option
@json_option
def status(
    name: str | None,
    state_dir: Path | None,
    doctor: bool,
    target: str,
    all_owners: bool,
    as_json: bool,
) -> None:
    """Services, state, health, restarts, uptime and GPU use of deployments."""
    if target == "slurm":
        from orchestrator.cli.slurm import status_slurm

        status_slurm(name, state_dir, as_json)
        return
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.docker.ops import docker_errors_as_failures
    from orchestrator.runtime.status import collect, format_table
    from orchestrator.state import StateStore

    store = StateStore(state_dir)
    with Endpoints() as endpoints, docker_errors_as_failures("deploy status", "deploy status"):
        statuses = collect(name, store=store, endpoints=endpoints, all_owners=all_owners)
    for problem in store.problems:
        click.echo(f"warning: {problem}", err=True)
    if doctor:
        from orchestrator.cli.doctor import emit
        from orchestrator.doctor.deployed import doctor_deployment

        with Endpoints() as endpoints:
            report = doctor_deployment(name, store=store, endpoints=endpoints)
        if not as_json:
            click.echo(format_table(statuses))
        emit(report, as_json=as_json, statuses=[s.model_dump(mode="json") for s in statuses])
        return
    if as_json:
        click.echo(json.dumps([s.model_dump(mode="json") for s in statuses], indent=2))
    else:
        click.echo(format_table(statuses))
    down = [f"{s.name}/{service}" for s in statuses for service in s.down()]
    if down:
        from orchestrator.errors import RuntimeFailure

        raise RuntimeFailure(
            f"{len(down)} service{'s' if len(down) > 1 else ''} down: {', '.join(down)}",
            "`deploy logs SERVICE --name NAME` shows why; `deploy up` starts it again",
        )


@click.command()
@click.argument("service", required=False)
@click.option("--name", callback=checked_name, help="The deployment (default: the only one).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=int, metavar="N", help="Only the last N lines of each service.")
@state_dir_option
@runtime_target
def logs(
    service: str | None,
    name: str | None,
    follow: bool,
    tail: int | None,
    state_dir: Path | None,
    target: str,
) -> None:
    """Show the logs of one SERVICE, or of every service of a deployment."""
    if target == "slurm":
        from orchestrator.targets.slurm_runtime import logs as slurm_logs

        slurm_logs(service, name, state_dir, tail, follow, click.echo)
        return
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.docker.ops import docker_errors_as_failures
    from orchestrator.runtime.logs import show_logs
    from orchestrator.state import StateStore

    with Endpoints() as endpoints, docker_errors_as_failures("deploy logs", "deploy logs"):
        show_logs(
            service,
            name=name,
            follow=follow,
            tail=tail,
            echo=click.echo,
            store=StateStore(state_dir),
            endpoints=endpoints,
        )


@click.command()
@click.option("--name", callback=checked_name, help="The deployment to remove.")
@click.option("--all", "all_deployments", is_flag=True, help="Remove every deployment.")
@click.option(
    "--docker",
    "extra_endpoints",
    multiple=True,
    metavar="URL",
    help="Also search this Docker endpoint (when the state file is lost; repeatable).",
)
@click.option("--keep-volumes", is_flag=True, help="Leave the volumes `up` created.")
@state_dir_option
@runtime_target
@all_owners_option
@json_option
def down(
    name: str | None,
    all_deployments: bool,
    extra_endpoints: tuple[str, ...],
    keep_volumes: bool,
    state_dir: Path | None,
    target: str,
    all_owners: bool,
    as_json: bool,
) -> None:
    """Stop and remove a deployment's containers (found by label), networks and state."""
    if target == "slurm":
        from orchestrator.cli.slurm import down_slurm

        down_slurm(name, all_deployments, state_dir, as_json)
        return
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.docker.ops import docker_errors_as_failures
    from orchestrator.runtime.down import down as remove
    from orchestrator.state import StateStore

    store = StateStore(state_dir)
    with Endpoints() as endpoints, docker_errors_as_failures("deploy down", "deploy down"):
        result = remove(
            name,
            all_deployments=all_deployments,
            store=store,
            endpoints=endpoints,
            extra_endpoints=list(extra_endpoints),
            remove_volumes=not keep_volumes,
            all_owners=all_owners,
        )
    for problem in store.problems:
        click.echo(f"warning: {problem}", err=True)
    if result.other_owners:
        click.echo(
            f"note: left {', '.join(result.other_owners)} of other state directories "
            "(--all-owners removes them too)",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(result.__dict__, indent=2))
        return
    if not result.deployments:
        click.echo(f"nothing to remove{f' for {name}' if name else ''}")
        return
    click.echo(
        f"removed {', '.join(result.deployments)}: {result.containers} containers, "
        f"{result.networks} networks, {result.volumes} volumes"
    )
