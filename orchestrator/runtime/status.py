"""`deploy status`: what runs, how healthy, since when, on which GPUs.

Deployments come from state files and from container labels (so one started elsewhere, or
whose state file was lost, still shows). GPU figures come from NVML for services on a local
endpoint; without NVML they are left out silently.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from orchestrator.base import Strict
from orchestrator.docker.endpoints import Endpoints, is_local, local_endpoint
from orchestrator.docker.ops import labelled_containers, started_at
from orchestrator.errors import DockerUnavailableError, InputError
from orchestrator.runtime.containers import LABEL_GPUS
from orchestrator.runtime.ownership import labels_of, split_owned
from orchestrator.runtime.probes import check_ready
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_NODE, LABEL_ROLE, LABEL_SERVICE, ServiceSpec
from orchestrator.state import DeploymentState, NodeInfo, StateStore


class GpuUsage(Strict):
    index: int
    memory_used_gib: float
    memory_total_gib: float
    utilization_pct: int


class ServiceStatus(Strict):
    service: str
    node: str
    role: str
    state: str  # the container's: running, exited, missing ...
    health: str  # ready, not ready (why), or the Docker healthcheck's word
    restarts: int
    uptime_s: float | None
    container_id: str | None
    gpus: list[GpuUsage] = []


class DeploymentStatus(Strict):
    name: str
    endpoint_url: str | None
    services: list[ServiceStatus]
    unreachable: list[str] = []
    supervisor: str = ""  # who supervises it and since when

    def down(self) -> list[str]:
        """Services that are not running (a running one that is still loading is not down)."""
        return [s.service for s in self.services if s.state != "running"]


def gpu_usage(indices: list[int]) -> list[GpuUsage]:
    """NVML figures for local GPU indices; [] when NVML or the driver is absent."""
    if not indices:
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    usage = []
    try:
        for index in indices:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            rates = pynvml.nvmlDeviceGetUtilizationRates(handle)
            usage.append(
                GpuUsage(
                    index=index,
                    memory_used_gib=round(memory.used / 2**30, 2),
                    memory_total_gib=round(memory.total / 2**30, 2),
                    utilization_pct=int(rates.gpu),
                )
            )
    except Exception:
        return usage
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return usage


def _health(container: Any, spec: ServiceSpec | None, node: NodeInfo | None) -> str:
    if container is None:
        return "missing"
    if container.status != "running":
        return "down"
    if spec is not None and spec.probe.kind == "process":
        return "ready"
    if spec is not None and node is not None and spec.probe.kind == "http":
        # From where the service can be reached: inside its container unless the port is
        # this machine's loopback. A slow answer is not a failure: busy engines answer late.
        ok, detail = check_ready(container, spec, node, float(spec.probe.timeout_s))
        if ok:
            return "ready"
        return "busy (health check timed out)" if detail == "timed out" else f"not ready ({detail})"
    health = container.attrs.get("State", {}).get("Health", {}).get("Status")
    return str(health) if health else "running"


def _given_up(state: DeploymentState | None, spec: ServiceSpec | None) -> str:
    """The supervisor's note on a service it stopped restarting (kept, with its logs)."""
    if state is None or spec is None:
        return ""
    reason = state.gave_up.get(spec.group or spec.name)
    return f"gave up, kept for `deploy logs`: {reason}" if reason else ""


def collect(
    name: str | None = None,
    *,
    store: StateStore | None = None,
    endpoints: Endpoints | None = None,
    all_owners: bool = False,
) -> list[DeploymentStatus]:
    """Deployments of this state directory (of every one with `all_owners`)."""
    store = store if store is not None else StateStore()
    pool = endpoints if endpoints is not None else Endpoints()
    states: dict[str, DeploymentState] = {}
    if name is not None:
        state = store.load(name)
        if state is not None:
            states[name] = state
    else:
        states = {state.name: state for state in store.all()}
    targets = {local_endpoint()} | {e for s in states.values() for e in s.endpoints()}
    label = LABEL_DEPLOYMENT if name is None else f"{LABEL_DEPLOYMENT}={name}"
    found: dict[str, dict[str, tuple[str, Any]]] = {}  # deployment -> service -> (endpoint, c)
    containers, errors = labelled_containers(pool, targets, label)
    if not all_owners:
        containers = split_owned(
            containers, store, lambda pair: labels_of(pair[1]), recorded=set(states)
        )[0]
    unreachable = list(errors)
    for endpoint, container in containers:
        deployment = container.labels.get(LABEL_DEPLOYMENT, "")
        service = container.labels.get(LABEL_SERVICE, container.name)
        found.setdefault(deployment, {})[service] = (endpoint, container)
    if len(unreachable) == len(targets):
        raise DockerUnavailableError(
            f"cannot reach any Docker daemon ({', '.join(unreachable)})", "start dockerd"
        )
    names = sorted(set(states) | set(found))
    if name is not None and not names:
        raise InputError(
            f"no deployment named '{name}'",
            "list them with `deploy status`, start with `deploy up`",
        )
    from orchestrator.runtime import detached

    results = [_one(n, states.get(n), found.get(n, {}), unreachable) for n in names]
    for result in results:
        if result.name in states:
            result.supervisor = detached.describe(detached.read_record(store, result.name))
    return results


def _one(
    name: str,
    state: DeploymentState | None,
    found: dict[str, tuple[str, Any]],
    unreachable: list[str],
) -> DeploymentStatus:
    specs = {spec.name: spec for spec in state.specs} if state else {}
    nodes = {node.name: node for node in state.nodes} if state else {}
    services = sorted(set(specs) | set(found))
    now = time.time()

    def row(service: str) -> ServiceStatus:
        endpoint, container = found.get(service, ("", None))
        spec = specs.get(service)
        labels = container.labels if container is not None else {}
        node_name = spec.node if spec else labels.get(LABEL_NODE, "?")
        node = nodes.get(node_name)
        started = started_at(container) if container is not None else None
        gpus: list[GpuUsage] = []
        gpu_label = labels.get(LABEL_GPUS)
        if container is not None and gpu_label and is_local(endpoint):
            gpus = gpu_usage([int(i) for i in gpu_label.split(",") if i.strip().isdigit()])
        return ServiceStatus(
            service=service,
            node=node_name,
            role=spec.role if spec else labels.get(LABEL_ROLE, "?"),
            state=container.status if container is not None else "missing",
            health=_given_up(state, spec) or _health(container, spec, node),
            restarts=state.restarts.get(service, 0) if state else 0,
            uptime_s=round(now - started, 1) if started and container.status == "running" else None,
            container_id=container.short_id if container is not None else None,
            gpus=gpus,
        )

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(services)))) as executor:
        rows = list(executor.map(row, services))
    return DeploymentStatus(
        name=name,
        endpoint_url=state.endpoint_url if state else None,
        services=rows,
        unreachable=[e for e in unreachable if state and e in state.endpoints()],
    )


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_table(statuses: list[DeploymentStatus]) -> str:
    if not statuses:
        return "no deployments"
    lines: list[str] = []
    for status in statuses:
        lines.append(f"{status.name}  {status.endpoint_url or '(no endpoint)'}")
        if status.supervisor:
            lines.append(f"  {status.supervisor}")
        header = ("SERVICE", "NODE", "ROLE", "STATE", "HEALTH", "RESTARTS", "UPTIME", "GPU")
        table = [header]
        for svc in status.services:
            gpu = " ".join(
                f"{g.index}:{g.memory_used_gib:.1f}/{g.memory_total_gib:.0f}GiB {g.utilization_pct}%"
                for g in svc.gpus
            )
            table.append(
                (
                    svc.service,
                    svc.node,
                    svc.role,
                    svc.state,
                    svc.health,
                    str(svc.restarts),
                    format_uptime(svc.uptime_s),
                    gpu or "-",
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            lines.append(
                "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            )
        for endpoint in status.unreachable:
            lines.append(f"  (could not reach {endpoint})")
    return "\n".join(lines)
