"""`deploy doctor` through real Docker Engines: the probe runs in the service's own container
(here the simulator image, `--simulate`), on one node and on two daemons, and leaves nothing
behind."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.endpoints import Endpoints
from orchestrator.doctor.containers import LABEL_DOCTOR
from orchestrator.doctor.report import DoctorReport
from orchestrator.doctor.run import DoctorOptions, run_doctor
from orchestrator.engines import build_services
from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest
from orchestrator.spec import PortBinding, ServiceSpec

pytestmark = pytest.mark.docker

# The address the suite's second dockerd gives its bridge (tests/runtime/conftest.py).
SECOND_DAEMON_ADDRESS = "10.213.255.1"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _on_free_ports(services: list[ServiceSpec]) -> list[ServiceSpec]:
    """Published host ports moved to free ones: the shared daemon may run other tests."""
    return [
        spec.model_copy(
            update={
                "ports": [
                    PortBinding(container=b.container, host=_free_port(), host_ip=b.host_ip)
                    for b in spec.ports
                ]
            }
        )
        for spec in services
    ]


def _rehearsal(**options: Any) -> tuple[Plan, list[ServiceSpec]]:
    plan = build_plan(PlanRequest.from_options(**options))
    return plan, _on_free_ports(build_services(plan, simulate=True))


def _status(report: DoctorReport, node: str, check: str) -> tuple[str, str]:
    found = next(c for c in report.checks if c.node == node and c.check == check)
    return found.status, found.detail


def _probes_left(client: Any) -> list[Any]:
    return list(client.containers.list(all=True, filters={"label": LABEL_DOCTOR}))


def test_single_node_rehearsal(docker_client: Any, sim_image: str, endpoints: Endpoints) -> None:
    plan, services = _rehearsal(model="qwen3-8b", gpus="1xH100")
    report = run_doctor(
        plan, services, endpoints=endpoints, options=DoctorOptions(simulate=True), host_env={}
    )
    assert [c.check for c in report.failures] == []
    assert _status(report, "local", "docker")[0] == "pass"
    assert _status(report, "local", "image") == ("pass", f"{sim_image} present")
    # GPU, driver and RDMA checks do not apply to a rehearsal: skipped, not failed.
    for name in ("gpu-runtime", "gpus", "driver-cuda", "p2p", "rdma", "nccl-ib-hca"):
        assert _status(report, "local", name) == (
            "skip",
            "not needed in a rehearsal (--simulate)"
            if name == "gpu-runtime"
            else "not checked in a rehearsal (--simulate)",
        )
    status, detail = _status(report, "local", "shm")
    assert status == "pass" and detail.startswith("/dev/shm ")
    assert _status(report, "local", "clock")[0] == "pass"
    # A rehearsal downloads no checkpoint: no disk is asked for it.
    assert _status(report, "local", "disk") == (
        "skip",
        "a rehearsal (--simulate) downloads no checkpoint",
    )
    assert _probes_left(docker_client) == []


def test_a_taken_port_fails_the_ports_check(
    docker_client: Any, sim_image: str, endpoints: Endpoints
) -> None:
    plan, services = _rehearsal(model="qwen3-8b", gpus="1xH100")
    port = services[0].ports[0].host
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        report = run_doctor(
            plan,
            services,
            endpoints=endpoints,
            options=DoctorOptions(simulate=True, fast=True),
            host_env={},
        )
    assert not report.ok
    assert [(c.node, c.check) for c in report.failures] == [("local", "ports")]
    assert _probes_left(docker_client) == []


def test_two_nodes_reach_each_other(
    docker_client: Any, sim_image: str, second_daemon: str, endpoints: Endpoints, tmp_path: Path
) -> None:
    cluster = tmp_path / "two.yaml"
    cluster.write_text(
        "defaults: {gpus: 1xH100-80GB-SXM}\n"
        "nodes:\n"
        "  - {name: node0, address: 127.0.0.1, docker: 'unix:///var/run/docker.sock'}\n"
        f"  - {{name: node1, address: {SECOND_DAEMON_ADDRESS}, docker: '{second_daemon}'}}\n",
        encoding="utf-8",
    )
    plan, services = _rehearsal(model="qwen3-8b", cluster=cluster, nodes=2)
    published = next(s for s in services if s.node == "node1").ports[0].host
    report = run_doctor(
        plan, services, endpoints=endpoints, options=DoctorOptions(simulate=True), host_env={}
    )
    assert [c.check for c in report.failures] == []
    assert _status(report, "node1", "reachability") == (
        "pass",
        f"reached from peers: node0 -> {SECOND_DAEMON_ADDRESS}:{published}",
    )
    assert _status(report, "node1", "docker")[1].endswith(f"at {second_daemon}")
    import docker

    second = docker.DockerClient(base_url=second_daemon, timeout=30)
    try:
        assert _probes_left(second) == []
    finally:
        second.close()
    assert _probes_left(docker_client) == []
