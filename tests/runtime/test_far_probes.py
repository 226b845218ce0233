"""Readiness and liveness from where the engine can be reached.

The node here is a Docker Engine in its own network namespace, reached at a non-loopback
address over tcp:// and ssh://. Its engine publishes on the node's loopback (the safe default),
which the deploying host cannot reach: probing `http://<node address>:<port>` from here fails,
so a supervisor that did would never see it ready. The probe must go through the endpoint.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.docker.endpoints import Endpoints
from orchestrator.engines.common import SIM_IMAGE
from orchestrator.runtime.probes import check_ready, http_check, probe_url
from orchestrator.runtime.status import collect
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
from orchestrator.state import NodeInfo, StateStore

from .conftest import REPO_ROOT, server_spec
from .netns_node import NetnsNode
from .test_cli_up import SIM_ENV, services

pytestmark = pytest.mark.docker

FAST = SupervisorOptions(timeout_s=120, max_restarts=1, backoff_base_s=0.2, poll_s=0.2)


@pytest.mark.parametrize("via", ["tcp", "ssh"])
def test_a_node_elsewhere_becomes_ready_through_its_docker_endpoint(
    far_node: NetnsNode,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    monkeypatch: pytest.MonkeyPatch,
    request: Any,
    via: str,
) -> None:
    import docker

    endpoint = far_node.tcp if via == "tcp" else far_node.ssh
    if via == "ssh":
        assert far_node.ssh_bin_dir is not None
        monkeypatch.setenv("PATH", f"{far_node.ssh_bin_dir}{os.pathsep}{os.environ['PATH']}")
    request.node.extra_endpoints = [far_node.tcp]
    node = NodeInfo(name="far", address=far_node.address, docker=endpoint)
    spec = server_spec("serve-0", sim_image, node="far", load_s=1.0, interval_s=1)
    with Endpoints() as endpoints:
        supervisor = Supervisor(
            deployment, [spec], [node], store=state_store, endpoints=endpoints, options=FAST
        )
        url = supervisor.up()
        # The entry URL names the node's address; from here nothing answers there.
        assert url == f"http://{far_node.address}:{spec.ports[0].host}"
        direct = probe_url(spec, node)
        assert direct is not None and not http_check(direct, 2.0)[0]
        container = supervisor.units["serve-0"].members[0].container
        assert check_ready(container, spec, node, 5.0) == (True, "HTTP 200")
        [status] = collect(deployment, store=state_store, endpoints=endpoints)
        assert [(s.service, s.state, s.health) for s in status.services] == [
            ("serve-0", "running", "ready")
        ]
        # Supervised there too: a killed engine comes back, and is seen ready again.
        far = docker.DockerClient(base_url=far_node.tcp, timeout=30)
        try:
            far.containers.get(container.id).kill()
            # Over ssh a restart and its first probes take longer than over TCP: supervise in
            # short spells until the engine is back and ready, up to a generous deadline.
            unit = supervisor.units["serve-0"]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                supervisor.watch(duration_s=5)
                if unit.total_restarts and unit.state == "ready":
                    break
            assert supervisor.units["serve-0"].total_restarts == 1
            assert supervisor.units["serve-0"].state == "ready"
        finally:
            far.close()
        supervisor.teardown_created()


def test_the_bundled_two_node_example_is_ready_when_its_nodes_are_reachable(
    far_node: NetnsNode,
    second_daemon: str,
    sim_image: str,
    tmp_path: Path,
    deployment: str,
    request: Any,
) -> None:
    """The design card's `deploy up deepseek-r1 --nodes 2` on the bundled cluster file, its
    192.0.2.x addresses unchanged (nothing answers there), its Docker endpoints pointed at two
    reachable daemons: rank 0's node elsewhere over tcp://, rank 1's a second local daemon."""
    import docker

    request.node.extra_endpoints = [far_node.tcp, second_daemon]
    if sim_image != SIM_IMAGE:  # the second daemon is this session's own
        subprocess.run(["docker", "-H", second_daemon, "tag", sim_image, SIM_IMAGE], check=True)
    example = (REPO_ROOT / "profiles/clusters/two-node-h100-ib.yaml").read_text()
    assert "address: 192.0.2.10" in example and "address: 192.0.2.11" in example
    cluster = tmp_path / "two-node.yaml"
    cluster.write_text(
        example.replace("docker: unix:///var/run/docker.sock", f"docker: {far_node.tcp}").replace(
            "docker: ssh://ops@192.0.2.11", f"docker: {second_daemon}"
        )
    )
    state = str(tmp_path / "state")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), env=SIM_ENV, catch_exceptions=False)

    up = run(
        "up", "deepseek-r1", "--nodes", "2", "--cluster", str(cluster), "--simulate",
        "--name", deployment, "--state-dir", state, "--timeout", "240",
        # Pre-flight is not the subject here (it checks disk for a checkpoint a rehearsal
        # never downloads); readiness is.
        "--skip-doctor",
    )  # fmt: skip
    try:
        assert up.exit_code == 0, up.output
        assert "restarting" not in up.output
        far = docker.DockerClient(base_url=far_node.tcp, timeout=30)
        assert sorted(services(far, deployment)) == ["serve-0-rank0"]
        far.close()
        status = run("status", "--name", deployment, "--state-dir", state)
        row = next(line for line in status.stdout.splitlines() if "serve-0-rank0" in line)
        assert row.split()[:5] == ["serve-0-rank0", "h100-a", "serve", "running", "ready"]
    finally:
        down = run("down", "--name", deployment, "--state-dir", state)
        assert down.exit_code == 0, down.output
