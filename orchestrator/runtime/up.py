"""Start a deployment: a plan and its services in, a running deployment out.

The stages around the start (planning, the fit check, rendering the files, the pre-flight) are
`orchestrator.execution`'s: they arrive here as `Stages` callbacks, so runtime never plans,
renders or runs doctor itself."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.docker.endpoints import Endpoints
from orchestrator.runtime import detached
from orchestrator.runtime.lock import deployment_lock
from orchestrator.runtime.progress import Reporter
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
from orchestrator.spec import ServiceSpec
from orchestrator.state import NodeInfo, StateStore

if TYPE_CHECKING:
    from orchestrator.plan import Plan

SIM_ENV_PREFIX = "DEPLOY_SIM_"


@dataclass(frozen=True)
class Stages:
    """What `run_up` runs that is not runtime's own, passed in by `orchestrator.execution`."""

    # Write the deployment's files (compose, launch scripts, nginx.conf) into this directory:
    # what `./file` mounts refer to, and a record of exactly what runs.
    write_files: Callable[[Path], object]
    # The pre-flight: (endpoints, already running) -> raises to refuse the start. None: skipped.
    preflight: Callable[[Endpoints, bool], object] | None = None
    skipped: str = ""  # reported when `preflight` is None


@dataclass
class UpResult:
    name: str
    url: str | None
    started: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    state_file: str = ""
    supervisor: str = ""  # who supervises now: the detached process, or this terminal
    pd_check: str = ""  # the result of the prefill/decode check, for PD deployments

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "started": self.started,
            "kept": self.kept,
            "replaced": self.replaced,
            "state_file": self.state_file,
            "supervisor": self.supervisor,
            "pd_check": self.pd_check,
        }


def nodes_of(plan: Plan) -> list[NodeInfo]:
    return [
        NodeInfo(name=node.name, address=node.address, docker=node.docker)
        for node in plan.hardware.node_list
    ]


def with_sim_knobs(services: list[ServiceSpec], host_env: Mapping[str, str]) -> list[ServiceSpec]:
    """In `--simulate` mode the host's DEPLOY_SIM_* variables reach every simulated engine, so
    `DEPLOY_SIM_LOAD_SECONDS=60 deploy up --simulate ...` rehearses a slow load."""
    knobs = {k: v for k, v in host_env.items() if k.startswith(SIM_ENV_PREFIX)}
    if not knobs:
        return services
    return [
        spec.model_copy(update={"environment": {**spec.environment, **knobs}}) for spec in services
    ]


def run_up(
    plan: Plan,
    services: list[ServiceSpec],
    stages: Stages,
    *,
    simulate: bool = False,
    state_dir: Path | None = None,
    keep: bool = False,
    timeout_s: float | None = None,
    reporter: Reporter | None = None,
    watch: bool = False,
    stop: threading.Event | None = None,
    options: SupervisorOptions | None = None,
    detach: bool = True,
) -> UpResult:
    """Start `services` and return once ready. Then, by default (`detach`), a detached
    supervisor process keeps the deployment alive after this returns; `watch` supervises in
    this process instead (`up --foreground`) until `stop` or Ctrl-C."""
    host_env = dict(os.environ)
    if simulate:
        services = with_sim_knobs(services, host_env)
    options = options or SupervisorOptions()
    options.timeout_s = timeout_s if timeout_s is not None else options.timeout_s
    options.with_gpus = not simulate
    options.keep_on_failure = keep
    store = StateStore(state_dir)
    with contextlib.ExitStack() as held:
        # Files first: an unwritable state directory is reported for the files it holds.
        files_dir = store.files_dir(plan.name)
        stages.write_files(files_dir)
        held.enter_context(deployment_lock(store, plan.name))
        endpoints = held.enter_context(Endpoints())
        # The pre-flight (deploy doctor's fast subset) refuses a start on a broken node.
        if stages.preflight is not None:
            stages.preflight(endpoints, store.load(plan.name) is not None)
        elif reporter is not None and stages.skipped:
            reporter.message(stages.skipped)
        # The previous supervisor would fight this `up` over the containers it replaces.
        detached.stop(store, plan.name)
        supervisor = Supervisor(
            plan.name,
            services,
            nodes_of(plan),
            store=store,
            endpoints=endpoints,
            options=options,
            reporter=reporter,
            plan=plan.model_dump(mode="json"),
            plan_hash=plan.plan_hash(),
            host_env=host_env,
            files_dir=files_dir,
        )
        url = supervisor.up()
        result = UpResult(
            name=plan.name,
            url=url,
            started=sorted(s.name for s in services if s.name not in supervisor.kept),
            kept=sorted(supervisor.kept),
            replaced=sorted(supervisor.replaced),
            state_file=str(store.path(plan.name)),
        )
        if url is not None:
            from orchestrator.runtime.pd_check import check_pd

            key = host_env.get(plan.request.api_key_env or "") or None
            checked = check_pd(services, supervisor.nodes, url, key)
            if checked is not None:
                result.pd_check = checked.message
        if watch:
            result.supervisor = f"this terminal (pid {os.getpid()}, --foreground)"
        elif detach:
            record = detached.spawn(
                plan.name,
                store,
                max_restarts=options.max_restarts,
                restart_window_s=options.restart_window_s,
                with_gpus=options.with_gpus,
            )
            result.supervisor = f"pid {record.pid} (log: {detached.log_path(store, plan.name)})"
        if not watch:
            return result
        # The lock stays held while this terminal supervises: a second `up` would fight it.
        if reporter is not None:
            reporter.message(f"{plan.name} is up at {url}; supervising (Ctrl-C to detach)")
        with contextlib.suppress(KeyboardInterrupt):  # detach: the deployment keeps running
            supervisor.watch(stop=stop)
        return result
