"""Liveness and readiness of one service, judged from the host.

Liveness is the container's state. Readiness is an HTTP GET from the host on the engine's
endpoint (the published port on the node's address; the node address and port for host-network
services), or, for `process` probes (headless ranks), the container running. Engines refuse
connections while they load weights (vLLM binds without listening until the engine is built),
so inside `probe.start_period_s` a refused connection or a 503 means "loading", never "failed".
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.runtime.endpoints import is_local
from orchestrator.runtime.state import NodeInfo
from orchestrator.spec import ServiceSpec

Verdict = Literal["starting", "loading", "ready", "unhealthy", "dead"]

_ENTRY_ROLES = ("lb", "router", "serve", "decode", "prefill")

# Probes go straight to the nodes: an HTTP(S)_PROXY in the operator's shell (common on
# servers) would otherwise route them through a proxy that cannot reach the node's ports.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _host_for(binding_ip: str, node: NodeInfo) -> str:
    if binding_ip in ("0.0.0.0", "", "::"):
        return node.address
    if binding_ip in ("127.0.0.1", "localhost", "::1"):
        # Loopback bindings are reachable from here only when the daemon is on this machine.
        return "127.0.0.1" if is_local(node.docker) else node.address
    return binding_ip


def service_url(spec: ServiceSpec, node: NodeInfo) -> str | None:
    """`http://host:port` where the host reaches this service's HTTP port, if it has one."""
    port = spec.probe.port
    if port is None:
        return None
    if spec.network_mode == "host":
        host = (
            "127.0.0.1" if is_local(node.docker) and node.address == "127.0.0.1" else node.address
        )
        return f"http://{host}:{port}"
    for binding in spec.ports:
        if binding.container == port:
            return f"http://{_host_for(binding.host_ip, node)}:{binding.host}"
    return None


def probe_url(spec: ServiceSpec, node: NodeInfo) -> str | None:
    if spec.probe.kind != "http":
        return None
    base = service_url(spec, node)
    if base is None:
        return None
    return base + (spec.probe.path or "/health")


def entry_url(specs: list[ServiceSpec], nodes: dict[str, NodeInfo]) -> str | None:
    """The deployment's front door: its load balancer or router, else its first server."""
    for role in _ENTRY_ROLES:
        candidates = sorted(
            (spec for spec in specs if spec.role == role and spec.probe.kind == "http"),
            key=lambda spec: (spec.replica, spec.rank, spec.name),
        )
        for spec in candidates:
            node = nodes.get(spec.node)
            if node is not None and (url := service_url(spec, node)) is not None:
                return url
    return None


def http_check(url: str, timeout_s: float) -> tuple[bool, str]:
    """(ready, detail). 200..299 is ready; anything else says why not, in a few words."""
    try:
        with _DIRECT.open(url, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        if isinstance(error, http.client.RemoteDisconnected):
            return False, "not listening yet"
        reason = getattr(error, "reason", error)
        if isinstance(reason, ConnectionRefusedError):
            return False, "connection refused"
        if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected)):
            # Docker's port proxy accepts, then drops the connection while nothing listens.
            return False, "not listening yet"
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            return False, "timed out"
        return False, str(reason)[:80] or type(reason).__name__
    if 200 <= status < 300:
        return True, f"HTTP {status}"
    return False, f"HTTP {status}"


@dataclass
class ProbeTracker:
    """Turns a stream of raw checks into a verdict, honouring the start period and retries.

    Before the first success, failures inside `start_period_s` are loading. After it, or after
    the service was ready once, `retries` failures spaced at least `interval_s` apart make it
    unhealthy (hung); only then does the supervisor restart it.
    """

    spec: ServiceSpec
    started_at: float = field(default_factory=time.monotonic)
    ever_ready: bool = False
    failures: int = 0
    last_failure_at: float | None = None
    detail: str = "starting"

    def reset(self, now: float | None = None) -> None:
        self.started_at = time.monotonic() if now is None else now
        self.ever_ready = False
        self.failures = 0
        self.last_failure_at = None
        self.detail = "starting"

    def observe(self, *, alive: bool, ok: bool, detail: str, now: float | None = None) -> Verdict:
        now = time.monotonic() if now is None else now
        self.detail = detail
        if not alive:
            return "dead"
        if ok:
            self.ever_ready = True
            self.failures = 0
            return "ready"
        probe = self.spec.probe
        if not self.ever_ready and now - self.started_at < probe.start_period_s:
            return "loading"
        if self.last_failure_at is None or now - self.last_failure_at >= probe.interval_s:
            self.failures += 1
            self.last_failure_at = now
        if self.failures >= probe.retries:
            return "unhealthy"
        return "loading" if not self.ever_ready else "ready"

    def startup_budget_s(self) -> float:
        """How long a start may take before it counts as hung."""
        probe = self.spec.probe
        return probe.start_period_s + probe.interval_s * probe.retries
