"""One look at one member of a unit (its container's state, Docker's restarts, its probe),
and the rows the progress display shows for all units."""

from __future__ import annotations

from orchestrator.runtime.probes import http_check, probe_url
from orchestrator.runtime.progress import Row
from orchestrator.runtime.units import Member, Unit


def check_member(member: Member) -> None:
    container = member.container
    if container is None:
        member.verdict = "dead"
        member.tracker.detail = "no container"
        return
    import docker.errors

    try:
        container.reload()
        status = container.status
    except docker.errors.NotFound:
        status = "removed"
    # Any other error means the daemon is unreachable: that is not the service failing,
    # so it propagates (the detached supervisor waits for the daemon and adopts again).
    if member.spec.restarted_by == "docker" and status != "removed":
        count = int(container.attrs.get("RestartCount") or 0)
        if count > member.docker_restarts:
            # Docker's policy already restarts it; count the crash against the budget.
            member.docker_restarts = count
            member.restarted_by_docker = True
            code = container.attrs.get("State", {}).get("ExitCode", "?")
            member.verdict = "dead"
            member.tracker.detail = f"exited, exit code {code}"
            return
        if status == "restarting":
            member.verdict = "starting"
            member.tracker.detail = "Docker is restarting it"
            return
    alive = status == "running"
    if not alive:
        code = container.attrs.get("State", {}).get("ExitCode", "?")
        oom = container.attrs.get("State", {}).get("OOMKilled", False)
        detail = "killed by the OOM killer" if oom else f"{status}, exit code {code}"
        member.verdict = member.tracker.observe(alive=False, ok=False, detail=detail)
        return
    if member.spec.probe.kind == "process":
        member.verdict = member.tracker.observe(alive=True, ok=True, detail="running")
        return
    if member.spec.probe.kind == "peer":
        # Docker runs the rank's own check (rank 0 reachable); "unhealthy" = group lost.
        health = container.attrs.get("State", {}).get("Health", {}).get("Status", "")
        ok = health != "unhealthy"
        detail = "running" if ok else "lost its group (rank 0 does not answer)"
        member.verdict = member.tracker.observe(alive=True, ok=ok, detail=detail)
        return
    url = probe_url(member.spec, member.node)
    if url is not None:
        ok, detail = http_check(url, min(member.spec.probe.timeout_s, 2.0))
    else:
        # No port the host can reach: fall back to the container's own healthcheck.
        health = container.attrs.get("State", {}).get("Health", {}).get("Status", "")
        ok, detail = health == "healthy", f"docker health: {health or 'none'}"
    member.verdict = member.tracker.observe(alive=True, ok=ok, detail=detail)


def rows_of(units: dict[str, Unit]) -> list[Row]:
    rows = []
    for unit in units.values():
        for member in unit.members:
            state = unit.state
            if state in ("running", "ready"):
                state = member.verdict
            detail = member.tracker.detail
            if unit.state == "backoff":
                detail = unit.last_failure
            rows.append(
                Row(
                    service=member.spec.name,
                    node=member.node.name,
                    state=state,
                    detail=detail,
                    restarts=unit.total_restarts,
                    since=unit.since,
                )
            )
    return rows
