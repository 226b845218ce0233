"""`deploy up`, `status`, `logs`, `down`: thin click commands over `orchestrator.runtime`.

`up --dry-run` imports neither docker nor rich: it plans, builds the services and prints.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.options import allow_missing_secret_option, json_option, plan_options
from orchestrator.errors import DeployError


class Interrupted(DeployError):
    """Ctrl-C during `up`: the usual exit status of a process stopped by SIGINT."""

    exit_code = 130


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
    help="Restarts of a failing service (or engine group) before giving up.",
)
@click.option(
    "--watch", is_flag=True, help="Keep supervising (restarts) after ready; Ctrl-C detaches."
)
@allow_missing_secret_option
@all_owners_option
@json_option
def up(
    allow_missing_secrets: tuple[str, ...],
    all_owners: bool,
    dry_run: bool,
    simulate: bool,
    state_dir: Path | None,
    keep: bool,
    timeout: float | None,
    max_restarts: int,
    watch: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Plan, start and supervise MODEL until every service is ready; print its URL."""
    from orchestrator.engines import build_services
    from orchestrator.planner import build_plan
    from orchestrator.request import PlanRequest

    plan = build_plan(PlanRequest.from_options(**options))
    services = build_services(plan, simulate=simulate)
    if dry_run:
        from orchestrator.dryrun import format_dry_run
        from orchestrator.secrets_policy import missing_secret_warnings

        click.echo(format_dry_run(plan, services))
        for warning in missing_secret_warnings(plan, os.environ, allow_missing_secrets):
            click.echo(f"warning: {warning}", err=True)
        return

    from orchestrator.runtime.progress import default_reporter
    from orchestrator.runtime.supervisor import ServiceGaveUp, SupervisorOptions
    from orchestrator.runtime.up import run_up

    reporter = default_reporter(quiet=as_json)
    try:
        result = run_up(
            plan,
            services,
            simulate=simulate,
            state_dir=state_dir,
            keep=keep,
            timeout_s=timeout,
            reporter=reporter,
            watch=watch,
            options=SupervisorOptions(max_restarts=max_restarts, all_owners=all_owners),
            allow_missing_secrets=allow_missing_secrets,
        )
    except KeyboardInterrupt:
        reporter.close()
        done = "left what it started running (--keep)" if keep else "removed what it started"
        raise Interrupted(f"interrupted: `deploy up` {done}") from None
    except ServiceGaveUp as error:
        reporter.close()
        if error.log_tail:
            click.echo(f"last {len(error.log_tail)} log lines of {error.service}:", err=True)
            for line in error.log_tail:
                click.echo(f"  {line}", err=True)
        raise
    finally:
        reporter.close()
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


@click.command()
@click.option("--name", help="One deployment (default: all, from state files and labels).")
@state_dir_option
@all_owners_option
@json_option
def status(name: str | None, state_dir: Path | None, all_owners: bool, as_json: bool) -> None:
    """Services, state, health, restarts, uptime and GPU use of deployments."""
    from orchestrator.runtime.docker_ops import docker_errors_as_failures
    from orchestrator.runtime.endpoints import Endpoints
    from orchestrator.runtime.state import StateStore
    from orchestrator.runtime.status import collect, format_table

    store = StateStore(state_dir)
    with Endpoints() as endpoints, docker_errors_as_failures("deploy status", "deploy status"):
        statuses = collect(name, store=store, endpoints=endpoints, all_owners=all_owners)
    for problem in store.problems:
        click.echo(f"warning: {problem}", err=True)
    if as_json:
        click.echo(json.dumps([s.model_dump(mode="json") for s in statuses], indent=2))
    else:
        click.echo(format_table(statuses))


@click.command()
@click.argument("service", required=False)
@click.option("--name", help="The deployment (default: the only one).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", type=int, metavar="N", help="Only the last N lines of each service.")
@state_dir_option
def logs(
    service: str | None, name: str | None, follow: bool, tail: int | None, state_dir: Path | None
) -> None:
    """Show the logs of one SERVICE, or of every service of a deployment."""
    from orchestrator.runtime.docker_ops import docker_errors_as_failures
    from orchestrator.runtime.endpoints import Endpoints
    from orchestrator.runtime.logs import show_logs
    from orchestrator.runtime.state import StateStore

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
@click.option("--name", help="The deployment to remove.")
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
@all_owners_option
@json_option
def down(
    name: str | None,
    all_deployments: bool,
    extra_endpoints: tuple[str, ...],
    keep_volumes: bool,
    state_dir: Path | None,
    all_owners: bool,
    as_json: bool,
) -> None:
    """Stop and remove a deployment's containers (found by label), networks and state."""
    from orchestrator.runtime.docker_ops import docker_errors_as_failures
    from orchestrator.runtime.down import down as remove
    from orchestrator.runtime.endpoints import Endpoints
    from orchestrator.runtime.state import StateStore

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
