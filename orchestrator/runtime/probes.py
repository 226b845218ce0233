"""Liveness and readiness of one service, judged where the service can be reached.

Readiness is an HTTP GET of the engine's health path. It is sent from this machine only when
the node's Docker is this machine's (a unix socket) and the port is published on loopback;
everywhere else (tcp://, ssh://, a port bound to the node's own loopback or an address this
machine is not on) it runs inside the container, through the node's Docker endpoint
(`orchestrator.runtime.incontainer`), so it never depends on the host reaching the node.
`process` probes (headless ranks) are the container running.

Liveness is not readiness. Engines refuse connections while they load weights, so inside
`probe.start_period_s` a refused connection or a 503 means "loading". After the first success
a failing probe makes the service not ready, and makes it unhealthy (restarted) only when it
keeps failing for a generous window; a probe that merely times out while the engine keeps
writing its log is a busy engine, never a dead one (a saturated vLLM answers `/health` late).
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Literal

from orchestrator.docker.endpoints import is_local
from orchestrator.group_health import liveness_window_s
from orchestrator.spec import ServiceSpec
from orchestrator.state import NodeInfo

Verdict = Literal["starting", "loading", "ready", "busy", "unready", "unhealthy", "dead"]
# Verdicts of a service that serves (a unit whose members all say one of these is ready).
SERVING: frozenset[str] = frozenset({"ready", "busy"})

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


def host_reachable(spec: ServiceSpec, node: NodeInfo) -> bool:
    """True when this machine reaches the service's published port for certain: the node's
    Docker is this machine's and the port is bound on loopback (or all interfaces)."""
    if not is_local(node.docker):
        return False
    url = service_url(spec, node)
    return url is not None and url.startswith("http://127.0.0.1:")


def inside_url(spec: ServiceSpec) -> str | None:
    """The probe URL as seen inside the service's own network namespace."""
    probe = spec.probe
    if probe.kind != "http" or probe.port is None:
        return None
    host = probe.host if probe.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{probe.port}{probe.path or '/health'}"


def check_ready(
    container: Any, spec: ServiceSpec, node: NodeInfo, timeout_s: float
) -> tuple[bool, str]:
    """(ready, detail) of one readiness GET, from where the service can be reached."""
    if host_reachable(spec, node):
        url = probe_url(spec, node)
        if url is not None:
            return http_check(url, timeout_s)
    inside = inside_url(spec)
    if inside is None or container is None:
        return False, "no HTTP probe"
    from orchestrator.runtime.incontainer import http_get

    return http_get(container, inside, timeout_s)


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

    Before the first success, failures inside `start_period_s` are loading; after it,
    `retries` failures spaced at least `interval_s` apart make the start hung (unhealthy).
    After the service was ready once, readiness and liveness part: a failing probe makes it
    `unready` (or `busy`, when the check timed out while the engine still writes its log), and
    only `retries` spaced failures that also span `liveness_window_s` without a success make
    it unhealthy. A busy engine resets the count: it is serving, not hung.
    """

    spec: ServiceSpec
    started_at: float = field(default_factory=time.monotonic)
    ever_ready: bool = False
    failures: int = 0
    last_failure_at: float | None = None
    failing_since: float | None = None
    detail: str = "starting"

    def reset(self, now: float | None = None) -> None:
        self.started_at = time.monotonic() if now is None else now
        self.ever_ready = False
        self.failures = 0
        self.last_failure_at = None
        self.failing_since = None
        self.detail = "starting"

    @property
    def liveness_window_s(self) -> float:
        probe = self.spec.probe
        return float(liveness_window_s(probe.interval_s, probe.retries))

    def observe(
        self,
        *,
        alive: bool,
        ok: bool,
        detail: str,
        now: float | None = None,
        active: bool = False,
    ) -> Verdict:
        """`active`: the service showed it is working since the last check (new log lines)."""
        now = time.monotonic() if now is None else now
        self.detail = detail
        if not alive:
            return "dead"
        if ok:
            self.ever_ready = True
            self.failures = 0
            self.failing_since = None
            return "ready"
        probe = self.spec.probe
        if not self.ever_ready:
            if now - self.started_at < probe.start_period_s:
                return "loading"
            self._count(now)
            return "unhealthy" if self.failures >= probe.retries else "loading"
        if active and detail == "timed out":
            # Too busy to answer in time, and still working: busy is not dead.
            self.failures = 0
            self.failing_since = None
            self.detail = "busy (health check timed out; the engine is still logging)"
            return "busy"
        if self.failing_since is None:
            self.failing_since = now
        self._count(now)
        if self.failures >= probe.retries and now - self.failing_since >= self.liveness_window_s:
            self.detail = f"{detail} for {now - self.failing_since:.0f}s"
            return "unhealthy"
        return "unready"

    def _count(self, now: float) -> None:
        if self.last_failure_at is None or now - self.last_failure_at >= self.spec.probe.interval_s:
            self.failures += 1
            self.last_failure_at = now

    def startup_budget_s(self) -> float:
        """How long a start may take before it counts as hung."""
        probe = self.spec.probe
        return probe.start_period_s + probe.interval_s * probe.retries
