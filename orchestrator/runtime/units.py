"""Units of supervision: the services that start, fail and restart together.

All ranks of one multi-node engine instance (`ServiceSpec.group`) form one unit: a rank that
comes back alone cannot rejoin its peers' collectives, so a death restarts the whole unit.
Units depend on units (routers on their engines) and start in that order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import InputError
from orchestrator.runtime.probes import ProbeTracker, Verdict
from orchestrator.spec import ServiceSpec
from orchestrator.state import NodeInfo


@dataclass
class Member:
    spec: ServiceSpec
    node: NodeInfo
    tracker: ProbeTracker
    container: Any = None  # docker.models.containers.Container
    verdict: Verdict = "starting"
    started_at: float = 0.0  # wall clock, for the state file
    # Docker's RestartCount when last seen: a rise is a crash Docker's own policy restarted.
    docker_restarts: int = 0
    restarted_by_docker: bool = False  # the current death is being restarted by Docker
    next_probe_at: float = 0.0  # monotonic: checks inside the container are rate-limited
    last_probe_wall: float = 0.0  # wall clock of the last check, for "logged since then"
    next_request_at: float = 0.0  # monotonic: the next real-request check
    request_failures: int = 0  # consecutive failed real-request checks


@dataclass
class Unit:
    key: str
    members: list[Member]
    depends_on: set[str] = field(default_factory=set)  # unit keys
    state: str = "waiting"  # waiting | backoff | running | ready | failed
    restarts: int = 0  # failures inside the restart window, for the bound
    failures: list[float] = field(default_factory=list)  # monotonic times, inside the window
    total_restarts: int = 0
    next_start_at: float = 0.0
    ready_since: float | None = None
    since: float = field(default_factory=time.monotonic)
    last_failure: str = ""
    last_logs: list[str] = field(default_factory=list)
    last_logs_service: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def failures_in_window(unit: Unit, now: float, window_s: float) -> int:
    """Record a failure at `now` and count those in the last `window_s` seconds: a unit that
    ran well for a while starts with a fresh budget, however many crashes it had before."""
    unit.failures = [t for t in unit.failures if now - t < window_s] + [now]
    return len(unit.failures)


def backoff_delay(restart: int, base_s: float, max_s: float) -> float:
    """0 for the first restart (a one-off crash costs nothing), then base, 2*base, ... max."""
    if restart <= 1:
        return 0.0
    return float(min(base_s * 2 ** (restart - 2), max_s))


def build_units(specs: list[ServiceSpec], nodes: Mapping[str, NodeInfo]) -> dict[str, Unit]:
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(
            f"duplicate service names: {', '.join(duplicates)}", "names must be unique"
        )
    unit_of = {spec.name: spec.group or spec.name for spec in specs}
    units: dict[str, Unit] = {}
    for spec in specs:
        node = nodes.get(spec.node)
        if node is None:
            raise InputError(
                f"service {spec.name} runs on unknown node '{spec.node}'",
                f"known nodes: {', '.join(sorted(nodes)) or 'none'}",
            )
        key = unit_of[spec.name]
        unit = units.setdefault(key, Unit(key=key, members=[]))
        unit.members.append(Member(spec=spec, node=node, tracker=ProbeTracker(spec)))
        for dependency in spec.depends_on:
            if dependency not in unit_of:
                raise InputError(
                    f"service {spec.name} depends on unknown service '{dependency}'",
                    "fix depends_on in the service list",
                )
            if unit_of[dependency] != key:
                unit.depends_on.add(unit_of[dependency])
    _check_acyclic(units)
    return units


def dependency_depth(units: dict[str, Unit]) -> int:
    """Layers of units that must become ready one after another (engines, then routers)."""
    depth: dict[str, int] = {}
    for _ in range(len(units)):
        for key, unit in units.items():
            if key not in depth and all(dep in depth for dep in unit.depends_on):
                depth[key] = 1 + max((depth[dep] for dep in unit.depends_on), default=0)
    return max(depth.values(), default=1)


def _check_acyclic(units: dict[str, Unit]) -> None:
    done: set[str] = set()
    for _ in range(len(units) + 1):
        progress = [k for k, u in units.items() if k not in done and u.depends_on <= done]
        if not progress:
            break
        done.update(progress)
    if len(done) != len(units):
        stuck = sorted(set(units) - done)
        raise InputError(f"services depend on each other in a cycle: {', '.join(stuck)}")
