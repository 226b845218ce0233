"""Each recorded broken machine is caught by the check meant for it, with its fix; the
healthy recordings pass. The recordings replay through the probe's own code (NVML stand-in,
a materialized /sys, /proc and /dev)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.doctor.replay import replay_doctor
from orchestrator.doctor.report import Check, DoctorReport


def check(report: DoctorReport, node: str, name: str) -> Check:
    return next(c for c in report.checks if c.node == node and c.check == name)


def failing(report: DoctorReport) -> list[tuple[str, str]]:
    return [(c.node, c.check) for c in report.checks if c.status == "fail"]


@pytest.fixture
def l40s_tp2(planned: Any) -> Any:
    return planned(model="qwen3-8b", gpus="2xL40S", tp=2)


@pytest.fixture
def h100_two_nodes(planned: Any, two_node_ib: Path) -> Any:
    return planned(model="llama-3.1-405b", cluster=two_node_ib, nodes=2)


def test_healthy_l40s_passes(l40s_tp2: Any, recording: Any, tmp_path: Path) -> None:
    plan, services = l40s_tp2
    machine = recording("l40s-2")
    machine["sysfs"]["net"]["ens3"]["ipv4"] = ["192.0.2.30/24"]
    report = replay_doctor(plan, services, {"local": machine}, tmp_path)
    assert report.ok, failing(report)
    assert check(report, "local", "gpus").detail == "GPUs 0,1 visible: NVIDIA L40S"
    assert check(report, "local", "p2p").status == "pass"
    assert check(report, "local", "shm").detail == "/dev/shm 16.0 GiB"


def test_shm_64m_fails_with_the_host_remount(l40s_tp2: Any, recording: Any, tmp_path: Path) -> None:
    plan, services = l40s_tp2
    report = replay_doctor(plan, services, {"local": recording("broken-shm-64m")}, tmp_path)
    assert failing(report) == [("local", "shm")]
    shm = check(report, "local", "shm")
    assert shm.detail == "/dev/shm 64 MiB: NCCL across GPUs needs at least 1 GiB"
    assert shm.fix == (
        "the container shares node local's /dev/shm (ipc: host): enlarge it there"
        " (mount -o remount,size=16G /dev/shm, and in /etc/fstab)"
    )


def test_p2p_disabled_warns_with_the_custom_all_reduce_fix(
    l40s_tp2: Any, recording: Any, tmp_path: Path
) -> None:
    plan, services = l40s_tp2
    report = replay_doctor(plan, services, {"local": recording("broken-p2p-disabled")}, tmp_path)
    p2p = check(report, "local", "p2p")
    assert p2p.status == "warn"
    assert p2p.detail == (
        "GPUs 0 and 1 (TP group 0,1): P2P read DR (disabled by a driver registry key)"
    )
    assert "--disable-custom-all-reduce" in p2p.fix


def test_old_driver_fails_against_the_image_cuda(
    l40s_tp2: Any, recording: Any, tmp_path: Path
) -> None:
    plan, services = l40s_tp2
    report = replay_doctor(plan, services, {"local": recording("broken-old-driver")}, tmp_path)
    assert failing(report) == [("local", "driver-cuda")]
    driver = check(report, "local", "driver-cuda")
    assert driver.detail == (
        f"driver 535.183.01 runs CUDA 12.2; {plan.engine.image} needs CUDA 12.9"
    )
    assert driver.fix.startswith("upgrade the NVIDIA driver to a branch that supports CUDA 12.9")
    assert "VLLM_ENABLE_CUDA_COMPATIBILITY=1" in driver.fix


def test_old_driver_names_the_last_cuda12_sglang_tag(
    planned: Any, recording: Any, tmp_path: Path
) -> None:
    plan, services = planned(model="qwen3-8b", gpus="2xL40S", tp=2, engine="sglang")
    machine = recording("broken-old-driver")
    machine["container_env"] = {"CUDA_VERSION": "13.0.1"}
    report = replay_doctor(plan, services, {"local": machine}, tmp_path)
    assert "lmsysorg/sglang:v0.5.19-cu129" in check(report, "local", "driver-cuda").fix


def test_gpu_memory_held_by_another_process(l40s_tp2: Any, recording: Any, tmp_path: Path) -> None:
    plan, services = l40s_tp2
    report = replay_doctor(plan, services, {"local": recording("broken-gpu-memory-held")}, tmp_path)
    assert failing(report) == [("local", "gpu-memory")]
    held = check(report, "local", "gpu-memory")
    assert held.detail == "GPU 1: 30.0 GiB held by 1 other process(es) (pid 48213)"
    assert held.fix.startswith("stop what runs on GPU 1 (nvidia-smi shows it)")


def _two_nodes(h100: Any, recording: Any, tmp_path: Path, broken: str) -> DoctorReport:
    plan, services = h100
    healthy = recording("broken-ib-port-down")
    healthy["sysfs"]["infiniband"]["mlx5_3"]["ports"]["1"]["state"] = "4: ACTIVE"
    healthy["sysfs"]["net"]["ib0"]["ipv4"] = ["192.0.2.10/24"]
    return replay_doctor(plan, services, {"h100-a": healthy, "h100-b": recording(broken)}, tmp_path)


def test_healthy_ib_node_passes(h100_two_nodes: Any, recording: Any, tmp_path: Path) -> None:
    report = _two_nodes(h100_two_nodes, recording, tmp_path, "broken-ib-port-down")
    a_checks = [c for c in report.checks if c.node == "h100-a"]
    assert [c.check for c in a_checks if c.status == "fail"] == []
    assert check(report, "h100-a", "rdma").detail == (
        "mlx5_0, mlx5_1, mlx5_2, mlx5_3, mlx5_4, mlx5_5, mlx5_6, mlx5_7 ACTIVE (InfiniBand)"
    )
    assert check(report, "h100-a", "interface").detail == "ib0 holds 192.0.2.10"
    assert check(report, "h100-a", "p2p").detail == "NVLink between the GPUs of 1 TP group(s)"


def test_ib_port_down_fails_rdma(h100_two_nodes: Any, recording: Any, tmp_path: Path) -> None:
    report = _two_nodes(h100_two_nodes, recording, tmp_path, "broken-ib-port-down")
    assert failing(report) == [("h100-b", "rdma"), ("h100-b", "nccl-ib-hca")]
    hca = check(report, "h100-b", "nccl-ib-hca")
    assert hca.detail.startswith(
        "NCCL_IB_HCA==mlx5_0,mlx5_1,mlx5_2,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7 names mlx5_3,"
        " not active here"
    )
    rdma = check(report, "h100-b", "rdma")
    assert rdma.detail == "mlx5_3 port 1 is DOWN"
    assert rdma.fix.startswith("bring mlx5_3 up on node h100-b (cable, switch port, subnet manager")


def test_interface_without_address_names_the_one_to_use(
    h100_two_nodes: Any, recording: Any, tmp_path: Path
) -> None:
    report = _two_nodes(h100_two_nodes, recording, tmp_path, "broken-interface-no-address")
    assert ("h100-b", "interface") in failing(report)
    interface = check(report, "h100-b", "interface")
    assert interface.detail == "ib0 has no IPv4 address"
    assert interface.fix == (
        "set `network_interface: eno1` for node h100-b in the cluster file: ib0 has no IPv4 address"
    )


@pytest.fixture
def roce_cluster(tmp_path: Path) -> Path:
    path = tmp_path / "roce.yaml"
    path.write_text(
        "fabric: roce\n"
        "defaults:\n  gpus: 8xA100-80GB-PCIe\n  interconnect: nvlink-pairs\n"
        "  network_interface: eno1\n"
        "nodes:\n"
        "  - {name: a100-a, address: 192.0.2.21, rdma_devices: [mlx5_0, mlx5_1]}\n"
        "  - {name: a100-b, address: 192.0.2.22, rdma_devices: [mlx5_1]}\n",
        encoding="utf-8",
    )
    return path


def test_roce_without_gid_fails_and_with_gid_passes(
    planned: Any, roce_cluster: Path, recording: Any, tmp_path: Path
) -> None:
    plan, services = planned(model="llama-3.1-405b", cluster=roce_cluster, nodes=2)
    assert plan.hardware.fabric == "roce"
    a = recording("broken-roce-no-gid")
    b = recording("broken-roce-no-gid")
    b["sysfs"]["net"]["eno1"]["ipv4"] = ["192.0.2.22/24"]
    report = replay_doctor(plan, services, {"a100-a": a, "a100-b": b}, tmp_path)
    rdma_a = check(report, "a100-a", "rdma")
    assert rdma_a.status == "fail"
    assert rdma_a.detail == "mlx5_0 port 1 (RoCE) has no RoCE v2 GID with an IPv4 address"
    assert rdma_a.fix == (
        "give ens1f0np0 on node a100-a an IPv4 address: NCCL's RoCE v2 GID comes from it"
    )
    rdma_b = check(report, "a100-b", "rdma")
    assert rdma_b.status == "pass"
    assert rdma_b.detail == "mlx5_1 ACTIVE (Ethernet), RoCE v2 GID index 3"


def test_every_check_line_is_one_line_with_a_fix_when_not_passing(
    l40s_tp2: Any, recording: Any, tmp_path: Path
) -> None:
    plan, services = l40s_tp2
    for name in ("broken-shm-64m", "broken-old-driver", "broken-gpu-memory-held"):
        report = replay_doctor(plan, services, {"local": recording(name)}, tmp_path / name)
        for item in report.checks:
            assert "\n" not in item.detail and "\n" not in item.fix
            if item.status == "fail":
                assert item.fix


def test_a_node_unlike_its_declaration_fails_inventory(
    planned: Any, recording: Any, tmp_path: Path
) -> None:
    plan, services = planned(model="qwen3-8b", gpus="2xH100", tp=2)
    report = replay_doctor(plan, services, {"local": recording("broken-p2p-disabled")}, tmp_path)
    inventory = check(report, "local", "inventory")
    assert inventory.status == "fail"
    assert inventory.detail == "node local has L40S-48GB, the plan was made for H100-80GB-SXM"


def test_a_pcie_tp_group_across_sockets_warns(planned: Any, recording: Any, tmp_path: Path) -> None:
    plan, services = planned(model="qwen3-8b", gpus="4xRTX4090", tp=4)
    machine = recording("rtx4090-4-pcie-2numa")
    # P2P allowed, so what is left is the placement: GPUs 0-1 on socket 0, 2-3 on socket 1.
    machine["p2p"]["read"] = [["X" if a == b else "OK" for b in range(4)] for a in range(4)]
    report = replay_doctor(plan, services, {"local": machine}, tmp_path)
    p2p = check(report, "local", "p2p")
    assert p2p.status == "warn"
    assert p2p.detail == (
        "TP group 0,1,2,3 spans NUMA nodes 0, 1: its all-reduce crosses the CPU interconnect"
    )
