"""Each command's stages, in order, in one place (as SkyPilot's `sky/execution.py`):

    plan -> check fit -> render -> pre-flight -> start -> watch -> re-plan

`deploy plan`, `render` and `up` each make one call here and print what it returns; the CLI
holds no sequence of its own. The stages below this module never call upward: `runtime/`
starts and supervises what it is handed and receives the renderer and the pre-flight as
callbacks (`runtime.up.Stages`), and a failed start is classified by runtime but re-planned
here, by the planner.

The rules every command shares live here once:
- a user's `--engine-arg` flags are checked against the engine version's schema at planning
  time, so `deploy plan` refuses a flag `deploy up` would refuse;
- a plan that does not fit is refused (exit 2) by every command that renders or starts it;
- required secrets are checked before anything is written or started.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import PlanError

if TYPE_CHECKING:
    from orchestrator.plan import Plan
    from orchestrator.planning.request import PlanRequest
    from orchestrator.runtime.diagnose import Replan
    from orchestrator.runtime.progress import Reporter
    from orchestrator.runtime.supervisor import SupervisorOptions
    from orchestrator.runtime.up import Stages, UpResult
    from orchestrator.spec import ServiceSpec

FIT_HINT = "add GPUs, lower --context, or quantize (deploy plan explains)"


# --------------------------------------------------------------------------------------------
# Stage 1: plan


def plan(request: PlanRequest) -> Plan:
    """The planner's `Plan` for `request`, with the user's engine flags checked against the
    engine version's schema (a wrong flag fails here, not at the first start)."""
    from orchestrator.planning.build import build_plan

    planned = build_plan(request)
    check_engine_args(planned)
    return planned


def check_engine_args(planned: Plan) -> None:
    """Raise `FlagError` (exit 2, with the nearest flag) for an `--engine-arg` the engine
    version does not accept. The full command line is checked again when it is rendered."""
    args = planned.request.engine_args
    if not args:
        return
    from orchestrator.engines.common import split_user_args
    from orchestrator.engines.flags import check_argv

    words = [word for group in split_user_args(args) for word in group]
    check_argv(planned.engine.name, planned.engine.version, words, part=True)


# --------------------------------------------------------------------------------------------
# Stage 2: check fit


def check_fit(planned: Plan) -> None:
    """Refuse a plan that does not fit: nothing is rendered or started for it."""
    if not planned.fits:
        raise PlanError(
            f"{planned.model.name} does not fit the planned hardware",
            planned.suggestion or FIT_HINT,
        )


def check_secrets(
    planned: Plan, allow_missing: tuple[str, ...], env: Mapping[str, str] | None = None
) -> None:
    """Before anything is written or started: an endpoint asked to be protected never runs
    open (`--api-key-env` unset in the environment is refused unless allowed)."""
    from orchestrator.secrets_policy import check_secrets as check

    check(planned, os.environ if env is None else env, allow_missing)


@dataclass
class Deployment:
    """A plan that passed its checks and the services rendered from it."""

    request: PlanRequest
    plan: Plan
    services: list[ServiceSpec]
    simulate: bool
    warnings: list[str] = field(default_factory=list)


def services_for(planned: Plan, simulate: bool) -> list[ServiceSpec]:
    """The engines' `ServiceSpec`s (every command line checked against its version)."""
    from orchestrator.engines import build_services

    return build_services(planned, simulate=simulate)


def prepare(
    request: PlanRequest,
    *,
    simulate: bool = False,
    allow_missing_secrets: tuple[str, ...] = (),
    secrets_required: bool = True,
) -> Deployment:
    """Stages 1-2 for every command that renders or starts: plan, secrets, fit, services.
    `secrets_required=False` (dry runs) turns a missing secret into a warning."""
    planned = plan(request)
    warnings: list[str] = []
    if secrets_required:
        check_secrets(planned, allow_missing_secrets)
    else:
        from orchestrator.secrets_policy import missing_secret_warnings

        warnings = missing_secret_warnings(planned, os.environ, allow_missing_secrets)
    check_fit(planned)
    return Deployment(
        request, planned, services_for(planned, simulate), simulate, warnings=warnings
    )


# --------------------------------------------------------------------------------------------
# Stage 3: render


def render(
    request: PlanRequest,
    out_dir: Path,
    *,
    target: str = "compose",
    simulate: bool = False,
    cluster: Path | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    allow_missing_secrets: tuple[str, ...] = (),
) -> list[Path]:
    """`deploy render`: the files of `target` under `out_dir`, in order."""
    ready = prepare(request, simulate=simulate, allow_missing_secrets=allow_missing_secrets)
    return write_target(ready, out_dir, target=target, cluster=cluster, settings=settings)


def write_target(
    ready: Deployment,
    out_dir: Path,
    *,
    target: str = "compose",
    cluster: Path | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
) -> list[Path]:
    from orchestrator.targets.render import render_target
    from orchestrator.targets.settings import load_settings

    chosen = target if target in ("k8s", "slurm") else "compose"
    if chosen == "compose":
        return write_compose(ready)(out_dir)
    loaded = load_settings(cluster, settings or {})
    return render_target(
        "k8s" if chosen == "k8s" else "slurm",
        ready.plan,
        ready.services,
        out_dir,
        loaded,
        simulate=ready.simulate,
    )


def write_compose(ready: Deployment) -> Callable[[Path], list[Path]]:
    """The compose renderer bound to one deployment: what `up` writes next to its state."""

    def write(out_dir: Path) -> list[Path]:
        from orchestrator.targets.compose.render import render_deployment

        return render_deployment(ready.plan, ready.services, out_dir)

    return write


def dry_run(
    request: PlanRequest,
    *,
    simulate: bool = False,
    allow_missing_secrets: tuple[str, ...] = (),
) -> Deployment:
    """`deploy up --dry-run`: what would run (the CLI prints it); missing secrets are warnings
    (`Deployment.warnings`), as nothing starts."""
    return prepare(
        request,
        simulate=simulate,
        allow_missing_secrets=allow_missing_secrets,
        secrets_required=False,
    )


# --------------------------------------------------------------------------------------------
# Stages 4-7: pre-flight, start, watch, re-plan


def doctor(request: PlanRequest, *, simulate: bool = False, fast: bool = False) -> Any:
    """`deploy doctor`: every check on every node of the plan, in the engine's container (the
    report; the CLI prints it). A plan that does not fit is refused like everywhere else."""
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.doctor.run import DoctorOptions, run_doctor

    planned = plan(request)
    check_fit(planned)
    services = services_for(planned, simulate)
    with Endpoints() as endpoints:
        return run_doctor(
            planned,
            services,
            endpoints=endpoints,
            options=DoctorOptions(simulate=simulate, fast=fast),
        )


def preflight_for(ready: Deployment) -> Callable[[Any, bool], object]:
    """The fast subset of `deploy doctor` on every node, bound to one deployment."""
    command = f"deploy doctor {ready.plan.model.name}{' --simulate' if ready.simulate else ''}"

    def check(endpoints: Any, running: bool) -> object:
        from orchestrator.doctor.gate import preflight

        return preflight(
            ready.plan,
            ready.services,
            endpoints=endpoints,
            simulate=ready.simulate,
            running=running,
            command=command,
        )

    return check


def replan_for(request: PlanRequest, planned: Plan) -> Callable[[str, list[str]], Replan | None]:
    """The re-plan a failed start's cause (a `runtime.diagnose` key) and log lines point at."""

    def find(cause: str, lines: list[str]) -> Replan | None:
        from orchestrator.planning.replan import replan
        from orchestrator.runtime.diagnose import Replan

        found = replan(cause, lines, request, planned)
        return None if found is None else Replan(plan=found[0], knobs=found[1])

    return find


@dataclass(frozen=True)
class UpOptions:
    """How `deploy up` starts and supervises (the CLI's options, as data)."""

    state_dir: Path | None = None
    keep: bool = False
    timeout_s: float | None = None
    watch: bool = False
    doctor: bool = True
    replan: bool = False
    allow_missing_secrets: tuple[str, ...] = ()
    supervisor: SupervisorOptions | None = None


def up(
    request: PlanRequest,
    options: UpOptions,
    *,
    simulate: bool = False,
    reporter: Callable[[], Reporter] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> UpResult:
    """`deploy up`: plan, check, render, pre-flight, start, watch; on a start that fails for
    lack of memory, re-plan and (with `options.replan`) start once more.

    `reporter` makes the progress display of each attempt; `say` receives the lines a user
    reads about a failure (the log tail, the cause, the re-plan)."""
    from orchestrator.runtime.diagnose import explain_failure
    from orchestrator.runtime.progress import QuietReporter
    from orchestrator.runtime.supervisor import ServiceGaveUp, SupervisorOptions
    from orchestrator.runtime.up import run_up

    ready = prepare(request, simulate=simulate, allow_missing_secrets=options.allow_missing_secrets)
    attempts = 2 if options.replan else 1
    for attempt in range(attempts):
        shown = reporter() if reporter is not None else QuietReporter()
        try:
            return run_up(
                ready.plan,
                ready.services,
                _stages(ready, options),
                simulate=simulate,
                state_dir=options.state_dir,
                keep=options.keep,
                timeout_s=options.timeout_s,
                reporter=shown,
                watch=options.watch,
                options=options.supervisor or SupervisorOptions(),
            )
        except ServiceGaveUp as error:
            shown.close()
            tail = error.log_tail[-20:]
            if tail:
                say(f"last {len(tail)} log lines of {error.service}:")
                for line in tail:
                    say(f"  {line}")
            explained = explain_failure(error, replan_for(request, ready.plan))
            if explained is None:
                raise
            say(explained.line())
            if explained.replan is None or attempt + 1 >= attempts:
                raise explained.as_error(error) from None
            say(f"re-planning with {explained.replan.knobs} and starting again")
            check_fit(explained.replan.plan)
            ready = Deployment(
                request,
                explained.replan.plan,
                services_for(explained.replan.plan, simulate),
                simulate,
            )
        finally:
            shown.close()
    raise AssertionError("unreachable: the last attempt returns or raises")


def _stages(ready: Deployment, options: UpOptions) -> Stages:
    from orchestrator.runtime.up import Stages

    if options.doctor:
        return Stages(write_files=write_compose(ready), preflight=preflight_for(ready))
    from orchestrator.doctor.gate import skipped_message

    return Stages(write_files=write_compose(ready), skipped=skipped_message())
