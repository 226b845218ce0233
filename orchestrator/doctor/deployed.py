"""`deploy status --doctor`: rerun the doctor for a deployment from its state file.

The plan and service specs come from the state `up` wrote, so the probe runs in exactly the
containers that run; ports and GPU memory held by the deployment itself are not faults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.doctor.report import DoctorReport
from orchestrator.doctor.run import DoctorOptions, run_doctor
from orchestrator.engines.common import SIM_IMAGE
from orchestrator.errors import InputError

if TYPE_CHECKING:
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.state import StateStore


def doctor_deployment(name: str | None, *, store: StateStore, endpoints: Endpoints) -> DoctorReport:
    from orchestrator.plan import Plan

    names = [name] if name else store.names()
    if len(names) != 1:
        raise InputError(
            "--doctor checks one deployment" if names else "no deployment is recorded here",
            "name it with --name" if names else "start one with `deploy up`",
        )
    state = store.load(names[0])
    if state is None or state.plan is None:
        raise InputError(
            f"no state for deployment {names[0]!r} (with its plan) in {store.directory}",
            "pass the --state-dir `deploy up` used",
        )
    plan = Plan.model_validate(state.plan)
    simulate = any(spec.image == SIM_IMAGE for spec in state.specs)
    options = DoctorOptions(simulate=simulate, running=True)
    return run_doctor(plan, list(state.specs), endpoints=endpoints, options=options)
