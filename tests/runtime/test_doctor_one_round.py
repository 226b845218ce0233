"""`deploy doctor` reports every fault of a node in one round: on a node where Docker cannot
give the container GPUs (this machine has no NVIDIA runtime), the checks that need no GPU
(interface, shm, memlock, ports, disk) still run; a rehearsal asks no disk for a checkpoint
it never downloads."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.endpoints import Endpoints
from orchestrator.doctor.containers import LABEL_DOCTOR
from orchestrator.doctor.report import DoctorReport
from orchestrator.doctor.run import DoctorOptions, run_doctor
from orchestrator.engines import build_services
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest

from .test_doctor import _on_free_ports

pytestmark = pytest.mark.docker


def _check(report: DoctorReport, node: str, name: str) -> tuple[str, str]:
    found = next(c for c in report.checks if c.node == node and c.check == name)
    return found.status, found.detail


@pytest.fixture
def engine_stand_in(docker_client: Any, sim_image: str) -> Iterator[str]:
    """The simulator image under a tag of its own: an "engine image" with python3 on the node."""
    tag = f"deploy-hard-probe:{uuid.uuid4().hex[:8]}"
    repository, version = tag.split(":")
    docker_client.images.get(sim_image).tag(repository, version)
    yield tag
    docker_client.images.remove(tag)


def test_a_node_without_the_gpu_runtime_still_reports_its_other_faults(
    docker_client: Any, engine_stand_in: str, endpoints: Endpoints, tmp_path: Path
) -> None:
    info = docker_client.info()
    if "nvidia" in (info.get("Runtimes") or {}) or info.get("CDISpecDirs"):
        pytest.skip("this Docker Engine can give containers GPUs; the test needs one that cannot")
    cluster = tmp_path / "two.yaml"
    cluster.write_text(
        "name: two\nfabric: ethernet\ndefaults:\n  gpus: 1xH100-80GB-SXM\n"
        "  network_interface: nosuch0\nnodes:\n"
        "  - {name: node0, address: 127.0.0.1, docker: 'unix:///var/run/docker.sock'}\n"
        "  - {name: node1, address: 127.0.0.1, docker: 'unix:///var/run/docker.sock'}\n",
        encoding="utf-8",
    )
    plan = build_plan(PlanRequest(model="qwen3-8b", cluster=cluster, nodes=2, tp=1))
    services = [
        spec.model_copy(update={"image": engine_stand_in})
        for spec in _on_free_ports(build_services(plan))
    ]
    engines = {spec.node for spec in services if spec.gpus is not None}
    assert engines == {"node0", "node1"}
    report = run_doctor(
        plan, services, endpoints=endpoints, options=DoctorOptions(fast=True), host_env={}
    )
    for node in ("node0", "node1"):
        assert _check(report, node, "gpu-runtime")[0] == "fail"
        status, detail = _check(report, node, "gpus")
        assert status == "fail" and detail.startswith("Docker gave the container no GPUs: ")
        # The same round names the interface the cluster file got wrong ...
        status, detail = _check(report, node, "interface")
        assert status == "fail", detail
        assert detail.startswith("nosuch0 does not exist in the container's network namespace")
        # ... and looked at shm, memlock, ports and disk from inside the container.
        for name in ("shm", "memlock", "ports", "disk"):
            status, detail = _check(report, node, name)
            assert "the probe did not run" not in detail, (name, detail)
    assert list(docker_client.containers.list(all=True, filters={"label": LABEL_DOCTOR})) == []


def test_a_rehearsal_asks_no_disk_for_the_checkpoint(
    docker_client: Any, sim_image: str, endpoints: Endpoints
) -> None:
    # DeepSeek-R1's checkpoint is about 640 GiB: no disk of a test machine holds it.
    plan = build_plan(PlanRequest(model="deepseek-r1", gpus="8xH200", nodes=1))
    services = _on_free_ports(build_services(plan, simulate=True))
    report = run_doctor(
        plan, services, endpoints=endpoints, options=DoctorOptions(simulate=True), host_env={}
    )
    node = services[0].node
    assert _check(report, node, "disk") == (
        "skip",
        "a rehearsal (--simulate) downloads no checkpoint",
    )
