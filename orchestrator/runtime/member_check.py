"""One look at one member of a unit (its container's state, Docker's restarts, its probe),
and the rows the progress display shows for all units.

How each rank is judged (docs/supervision.md says why):
- every rank, whatever it serves: its container. Any exit is a death, exit code 0 included
  (vLLM's API server exits 0 when its engine dies);
- a rank that serves HTTP: its health path, from where it can be reached (the host for a
  local loopback port, inside the container otherwise), with liveness separate from
  readiness (`ProbeTracker`);
- rank 0 of a multi-rank instance (ranks in several containers, or several DP engines behind
  one API server), once ready: a real one-token request now and then, because its `/health`
  stays 200 after a follower or an engine died; two failures in a row make it unhealthy;
- headless ranks (`process`): the container running. No rank is judged by rank 0's
  `--data-parallel-rpc-port`, which vLLM closes after the start-up handshake.
"""

from __future__ import annotations

import time

from orchestrator.runtime.probes import SERVING, check_ready
from orchestrator.runtime.progress import Row
from orchestrator.runtime.units import Member, Unit

# Checks inside a container cost an exec each: at most one a second while starting.
START_PROBE_EVERY_S = 1.0
REQUEST_EVERY_S = 30.0  # a real request on an idle rank 0, at most this often
REQUEST_RETRY_S = 5.0  # after a failed one, confirm soon
REQUEST_TIMEOUT_S = 30.0  # an idle engine answers one token far sooner than this
REQUEST_FAILURES = 2  # consecutive failed requests that make rank 0 unhealthy


def _flag(args: list[str], name: str) -> str | None:
    for index, word in enumerate(args):
        if word == name and index + 1 < len(args):
            return args[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def engines_behind(member: Member) -> int:
    """How many engines answer through this member's API server (its DP engines here)."""
    args = member.spec.command
    for name in ("--data-parallel-size-local", "--data-parallel-size"):
        value = _flag(args, name)
        if value is not None and value.isdigit():
            return max(1, int(value))
    return 1


def needs_request_check(member: Member, unit_size: int) -> bool:
    """Rank 0 of an instance whose `/health` may lie: its ranks live in several containers,
    or several DP engines answer behind its API server. Serving roles only: a prefill or
    decode instance answers a plain completion differently, and the PD check covers them."""
    spec = member.spec
    if spec.role != "serve" or spec.probe.kind != "http" or spec.rank != 0:
        return False
    return unit_size > 1 or engines_behind(member) > 1


def _logged_since(container: object, since_wall: float) -> bool:
    """The container wrote a log line since `since_wall` (it is working, not hung)."""
    try:
        recent = container.logs(since=int(since_wall), tail=1)  # type: ignore[attr-defined]
    except Exception:
        return False
    return bool(recent)


def check_member(member: Member, unit_size: int = 1) -> None:
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
        state = container.attrs.get("State", {}) if status != "removed" else {}
        code = state.get("ExitCode", "?")
        if state.get("OOMKilled", False):
            detail = "killed by the OOM killer"
        elif code == 0 and status == "exited":
            # Not a clean stop: vLLM's API server exits 0 when its engine dies.
            detail = "exited with code 0 (an engine that exits is dead, whatever its code)"
        else:
            detail = f"{status}, exit code {code}"
        member.verdict = member.tracker.observe(alive=False, ok=False, detail=detail)
        return
    if member.spec.probe.kind == "process":
        member.verdict = member.tracker.observe(alive=True, ok=True, detail="running")
        return
    now = time.monotonic()
    if now < member.next_probe_at:
        return  # keep the last verdict until the next check is due
    if member.spec.probe.kind == "peer":
        # Docker runs the rank's own check (rank 0 reachable); "unhealthy" = group lost.
        health = container.attrs.get("State", {}).get("Health", {}).get("Status", "")
        ok = health != "unhealthy"
        detail = "running" if ok else "lost its group (rank 0 does not answer)"
        member.verdict = member.tracker.observe(alive=True, ok=ok, detail=detail)
        return
    probe = member.spec.probe
    serving = member.verdict in SERVING or member.tracker.ever_ready
    member.next_probe_at = now + (probe.interval_s if serving else START_PROBE_EVERY_S)
    since = member.last_probe_wall
    member.last_probe_wall = time.time()
    ok, detail = check_ready(container, member.spec, member.node, float(probe.timeout_s))
    active = (
        not ok
        and detail == "timed out"
        and member.tracker.ever_ready
        and _logged_since(container, since - 1.0)
    )
    member.verdict = member.tracker.observe(alive=True, ok=ok, detail=detail, active=active)
    if member.verdict == "ready" and needs_request_check(member, unit_size):
        _request_check(member, now)


def _request_check(member: Member, now: float) -> None:
    if now < member.next_request_at:
        return
    from orchestrator.runtime.incontainer import real_request
    from orchestrator.runtime.probes import inside_url

    url = inside_url(member.spec)
    if url is None:
        return
    base = url[: len(url) - len(member.spec.probe.path or "/health")]
    outcome, detail = real_request(
        member.container, base, REQUEST_TIMEOUT_S, engines_behind(member)
    )
    if outcome != "failed":
        member.request_failures = 0
        member.next_request_at = time.monotonic() + REQUEST_EVERY_S
        return
    member.request_failures += 1
    member.next_request_at = time.monotonic() + REQUEST_RETRY_S
    if member.request_failures >= REQUEST_FAILURES:
        member.request_failures = 0
        member.verdict = "unhealthy"
        member.tracker.detail = f"health answers 200 but {detail}"


def rows_of(units: dict[str, Unit]) -> list[Row]:
    rows = []
    for unit in units.values():
        for member in unit.members:
            state = unit.state
            if state in ("running", "ready"):
                state = member.verdict
            detail = member.tracker.detail
            if unit.state in ("backoff", "failed"):
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
