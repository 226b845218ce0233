"""Readiness judged from the host: URLs, HTTP checks against real loopback servers, budgets."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from orchestrator.runtime.probes import ProbeTracker, entry_url, http_check, probe_url, service_url
from orchestrator.spec import PortBinding, Probe, ServiceSpec
from orchestrator.state import NodeInfo


def spec(name: str = "s", role: str = "serve", **changes: object) -> ServiceSpec:
    data: dict[str, object] = {
        "name": name,
        "node": "n0",
        "role": role,
        "image": "i",
        "command": [],
        "ports": [PortBinding(container=8000, host=18000)],
        "probe": Probe(
            kind="http", path="/health", port=8000, start_period_s=60, interval_s=10, retries=3
        ),
    }
    data.update(changes)
    return ServiceSpec.model_validate(data)


LOCAL = NodeInfo(name="n0")
REMOTE = NodeInfo(name="n1", address="10.0.0.7", docker="ssh://ops@gpu-b")


def test_urls_for_published_host_network_and_remote_services() -> None:
    assert probe_url(spec(), LOCAL) == "http://127.0.0.1:18000/health"
    public = spec(ports=[PortBinding(container=8000, host=18000, host_ip="0.0.0.0")])
    assert service_url(public, REMOTE) == "http://10.0.0.7:18000"
    assert service_url(spec(), REMOTE) == "http://10.0.0.7:18000"
    host = spec(network_mode="host", ports=[])
    assert probe_url(host, REMOTE) == "http://10.0.0.7:8000/health"
    assert probe_url(host, LOCAL) == "http://127.0.0.1:8000/health"
    assert probe_url(spec(probe=Probe(kind="process", start_period_s=1)), LOCAL) is None
    assert probe_url(spec(ports=[]), LOCAL) is None  # unpublished: Docker's healthcheck decides


def test_entry_url_prefers_the_router_then_the_first_server() -> None:
    nodes = {"n0": LOCAL}
    servers = [
        spec("serve-1", replica=1, ports=[PortBinding(container=8000, host=18001)]),
        spec("serve-0", replica=0),
    ]
    assert entry_url(servers, nodes) == "http://127.0.0.1:18000"
    router = spec("router", role="router", ports=[PortBinding(container=8000, host=19000)])
    assert entry_url([*servers, router], nodes) == "http://127.0.0.1:19000"


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_http_check_against_real_servers(server: int) -> None:
    assert http_check(f"http://127.0.0.1:{server}/health", 2) == (True, "HTTP 200")
    assert http_check(f"http://127.0.0.1:{server}/warming", 2) == (False, "HTTP 503")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert http_check(f"http://127.0.0.1:{closed}/health", 2) == (False, "connection refused")


def test_http_check_ignores_a_proxy_in_the_environment(server: int) -> None:
    # A fresh interpreter: urllib reads the proxy variables once, at its first request.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    env.update(http_proxy=dead_proxy, HTTP_PROXY=dead_proxy)
    script = (
        "import sys; from orchestrator.runtime.probes import http_check; "
        "print(http_check(sys.argv[1], 2))"
    )
    url = f"http://127.0.0.1:{server}/health"
    result = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout == "(True, 'HTTP 200')\n", result.stderr


def test_a_loading_engine_is_not_restarted_inside_its_start_period() -> None:
    tracker = ProbeTracker(spec(), started_at=0.0)
    for t in range(0, 60, 2):  # refused for the whole start period: still loading
        assert (
            tracker.observe(alive=True, ok=False, detail="connection refused", now=t) == "loading"
        )
    assert tracker.failures == 0
    # After the start period, `retries` failures spaced by `interval_s` make it unhealthy.
    assert tracker.observe(alive=True, ok=False, detail="refused", now=60) == "loading"
    assert tracker.observe(alive=True, ok=False, detail="refused", now=65) == "loading"
    assert tracker.observe(alive=True, ok=False, detail="refused", now=70) == "loading"
    assert tracker.observe(alive=True, ok=False, detail="refused", now=80) == "unhealthy"
    assert tracker.startup_budget_s() == 90


def test_ready_then_hung_then_dead() -> None:
    tracker = ProbeTracker(spec(), started_at=0.0)
    assert tracker.observe(alive=True, ok=True, detail="HTTP 200", now=5) == "ready"
    # Once ready, failed checks make it not ready, not dead: liveness needs the failures to
    # span a generous window (3 x interval x retries here, at least 60 s).
    assert tracker.liveness_window_s == 90
    assert tracker.observe(alive=True, ok=False, detail="timed out", now=6) == "unready"
    assert tracker.observe(alive=True, ok=False, detail="timed out", now=16) == "unready"
    assert tracker.observe(alive=True, ok=False, detail="timed out", now=26) == "unready"
    assert tracker.observe(alive=True, ok=False, detail="timed out", now=95) == "unready"
    assert tracker.observe(alive=True, ok=False, detail="timed out", now=96) == "unhealthy"
    assert tracker.detail == "timed out for 90s"
    assert tracker.observe(alive=False, ok=False, detail="exited, exit code 1", now=97) == "dead"
    tracker.reset(now=30)
    assert tracker.failures == 0 and not tracker.ever_ready
    assert tracker.observe(alive=True, ok=False, detail="refused", now=31) == "loading"


def test_busy_is_not_dead() -> None:
    """A saturated engine answers its health check late but keeps logging: never unhealthy."""
    tracker = ProbeTracker(spec(), started_at=0.0)
    assert tracker.observe(alive=True, ok=True, detail="HTTP 200", now=5) == "ready"
    for t in range(10, 1000, 10):
        verdict = tracker.observe(alive=True, ok=False, detail="timed out", now=t, active=True)
        assert verdict == "busy"
    assert tracker.failures == 0 and tracker.failing_since is None
    # The log stops as well: now the window runs, and a hung engine is found after it.
    verdicts = [
        tracker.observe(alive=True, ok=False, detail="timed out", now=t)
        for t in range(1000, 1200, 10)
    ]
    assert verdicts.index("unhealthy") == 9  # at t=1090: 90 s of silence and failures
    # A refusal is no sign of work, whatever the log says.
    tracker.reset(now=0)
    tracker.observe(alive=True, ok=True, detail="HTTP 200", now=1)
    refused = tracker.observe(alive=True, ok=False, detail="connection refused", now=2, active=True)
    assert refused == "unready"


def test_which_ranks_get_a_real_request_check() -> None:
    """Rank 0 of an instance whose /health can lie: several containers, or DP engines."""
    from orchestrator.runtime.member_check import engines_behind, needs_request_check
    from orchestrator.runtime.units import Member

    def member(**changes: object) -> Member:
        one = spec(**changes)
        return Member(spec=one, node=LOCAL, tracker=ProbeTracker(one))

    single = member(command=["serve", "m"])
    assert engines_behind(single) == 1 and not needs_request_check(single, 1)
    dp = member(command=["serve", "m", "--data-parallel-size", "4"])
    assert engines_behind(dp) == 4 and needs_request_check(dp, 1)
    local = member(command=["--data-parallel-size=8", "--data-parallel-size-local", "2"])
    assert engines_behind(local) == 2
    assert needs_request_check(single, 2)  # rank 0 of a two-container group
    assert not needs_request_check(member(rank=1), 2)
    assert not needs_request_check(member(role="decode", command=dp.spec.command), 1)
    headless = member(probe=Probe(kind="process", start_period_s=1))
    assert not needs_request_check(headless, 2)


def test_inside_urls_use_the_probe_host_in_the_container() -> None:
    from orchestrator.runtime.probes import host_reachable, inside_url

    assert inside_url(spec()) == "http://127.0.0.1:8000/health"
    bound = spec(probe=Probe(kind="http", path="/h", port=9000, host="10.0.0.5", start_period_s=1))
    assert inside_url(bound) == "http://10.0.0.5:9000/h"
    assert host_reachable(spec(), LOCAL)
    # A remote endpoint, or a port published on the node's address: probed from inside.
    assert not host_reachable(spec(), REMOTE)
    public = spec(ports=[PortBinding(container=8000, host=18000, host_ip="0.0.0.0")])
    assert not host_reachable(public, NodeInfo(name="n", address="192.0.2.10"))
