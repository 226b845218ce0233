"""The pre-flight `deploy up` runs before it starts anything: the fast doctor subset on every
node, refusing the start on a failure with the first problem and its fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.doctor.report import CHECK_IDS, DoctorReport
from orchestrator.doctor.run import DoctorOptions, run_doctor
from orchestrator.errors import InputError
from orchestrator.spec import ServiceSpec

if TYPE_CHECKING:
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.plan import Plan

# What the fast subset leaves out (`deploy doctor` runs them).
NOT_IN_FAST = ("reachability", "hub-token")


class PreflightFailed(InputError):
    """A node is not ready for this plan: fix it (or pass --skip-doctor) and rerun."""


def skipped_message() -> str:
    checked = [name for name in CHECK_IDS if name not in NOT_IN_FAST and name != "probe"]
    return f"--skip-doctor: not checking {', '.join(checked)} before starting"


def preflight(
    plan: Plan,
    services: list[ServiceSpec],
    *,
    endpoints: Endpoints,
    simulate: bool,
    running: bool,
    command: str,
) -> DoctorReport:
    """Run the fast subset; raise `PreflightFailed` naming the first failure and its fix."""
    # An unreachable endpoint is the same one-line error `up` always gave.
    endpoints.connect_all(sorted({node.docker for node in plan.hardware.node_list}))
    report = run_doctor(
        plan,
        services,
        endpoints=endpoints,
        options=DoctorOptions(simulate=simulate, fast=True, running=running),
    )
    failures = report.failures
    if failures:
        first = failures[0]
        more = f" ({len(failures) - 1} more)" if len(failures) > 1 else ""
        raise PreflightFailed(
            f"pre-flight failed on node {first.node}: {first.check}: {first.detail}{more}",
            f"{first.fix}; then rerun (`{command}` lists every check, --skip-doctor starts anyway)",
        )
    return report
