"""The supervisor's way out of a failing unit, and its record of the deployment.

- while `up` starts the deployment, a unit that spends its restart budget, or does not become
  ready in time, fails `up` with its last log lines (`ServiceGaveUp`);
- under supervision, a unit that spends its budget is given up and kept: its containers stay
  (Docker's restart policy switched off), their logs with them, and the state says why.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, NoReturn

from orchestrator.docker.ops import log_tail
from orchestrator.errors import RuntimeFailure
from orchestrator.runtime import kept_logs
from orchestrator.runtime.units import Unit
from orchestrator.state import ContainerRecord, DeploymentState

if TYPE_CHECKING:
    from orchestrator.runtime.supervisor import Supervisor


class ServiceGaveUp(RuntimeFailure):
    """A service kept failing; `log_tail` holds its last log lines."""

    def __init__(self, message: str, hint: str, *, service: str, log_tail: list[str]) -> None:
        super().__init__(message, hint)
        self.service = service
        self.log_tail = log_tail


def keep_given_up(sup: Supervisor, unit: Unit) -> None:
    """Stop restarting `unit` and keep its containers and logs as they are."""
    for member in unit.members:
        if member.container is None:
            continue
        # Docker's own policy would go on restarting it: switch it off, keep the container.
        with contextlib.suppress(Exception):
            member.container.update(restart_policy={"Name": "no"})
    if unit.last_logs:
        kept_logs.keep(sup.store, sup.name, unit.last_logs_service or unit.key, unit.last_logs)
    unit.state = "failed"
    reason = (
        f"gave up after {unit.restarts} failures in "
        f"{sup.options.restart_window_s:.0f}s: {unit.last_failure}"
    )
    sup.gave_up[unit.key] = reason
    sup.reporter.message(
        f"{unit.key}: {reason}; not restarting it any more, its containers and logs are "
        f"kept (`deploy logs --name {sup.name}`); `deploy up` tries again"
    )
    save_state(sup)


def give_up(sup: Supervisor, unit: Unit) -> NoReturn:
    last = unit.last_logs[-1] if unit.last_logs else "(no log output)"
    if unit.last_logs:
        kept_logs.keep(sup.store, sup.name, unit.last_logs_service or unit.key, unit.last_logs)
    raise ServiceGaveUp(
        f"{unit.key} failed {unit.restarts} times, giving up: {unit.last_failure}; "
        f"last log line: {last}",
        "fix the cause shown in its log and run `deploy up` again",
        service=unit.last_logs_service or unit.key,
        log_tail=unit.last_logs,
    )


def fail_timeout(sup: Supervisor) -> NoReturn:
    waiting = [u for u in sup.units.values() if not u.ready]
    parts = []
    for unit in waiting[:3]:
        detail = unit.members[0].tracker.detail if unit.members else ""
        parts.append(f"{unit.key} ({unit.state}: {detail})")
    # The log of the first waiting service, read before its container is removed.
    service, lines = "", []
    for member in (m for unit in waiting for m in unit.members):
        if member.container is not None:
            secrets = [sup.host_env.get(name, "") for name in member.spec.secret_env]
            service = member.spec.name
            lines = log_tail(member.container, sup.options.log_tail, secrets)
            kept_logs.keep(sup.store, sup.name, service, lines)
            break
    raise ServiceGaveUp(
        f"deployment {sup.name} not ready in time; waiting for {', '.join(parts)}",
        f"raise --timeout for large models; `deploy logs --name {sup.name}` shows the kept log",
        service=service or (waiting[0].key if waiting else sup.name),
        log_tail=lines,
    )


def save_state(sup: Supervisor) -> None:
    records = {}
    for member in sup.members():
        if member.container is not None:
            records[member.spec.name] = ContainerRecord(
                service=member.spec.name,
                node=member.node.name,
                endpoint=member.node.docker,
                id=member.container.id,
                spec_hash=member.spec.spec_hash(),
                started_at=member.started_at or time.time(),
            )
    previous = sup.previous
    networks = dict(previous.networks) if previous else {}
    networks.update(sup.created_networks)
    volumes = dict(previous.volumes) if previous else {}
    for endpoint, names in sup.created_volumes.items():
        volumes[endpoint] = sorted(set(volumes.get(endpoint, [])) | set(names))
    state = DeploymentState(
        name=sup.name,
        plan=sup.plan,
        plan_hash=sup.plan_hash,
        specs=sup.specs,
        nodes=list(sup.nodes.values()),
        containers=records,
        restarts={
            m.spec.name: unit.total_restarts for unit in sup.units.values() for m in unit.members
        },
        networks=networks,
        volumes=volumes,
        endpoint_url=sup.url or (previous.endpoint_url if previous else None),
        gave_up=dict(sup.gave_up),
        created_at=previous.created_at if previous else time.time(),
    )
    sup.store.save(state)
