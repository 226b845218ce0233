"""The real detection code against recorded topologies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.hardware.inventory import NodeInventory

Detect = Callable[[str], NodeInventory]


def _levels(inventory: NodeInventory) -> list[list[str]]:
    count = len(inventory.gpus)
    rows = []
    for a in range(count):
        row = []
        for b in range(count):
            pair = inventory.pair(a, b)
            row.append("X" if a == b else pair.level if pair else "?")
        rows.append(row)
    return rows


def test_h100_nvswitch_node(detect_recorded: Detect) -> None:
    inventory = detect_recorded("h100-sxm-8-nvswitch")
    assert inventory.schema_version == 1 and inventory.kind == "node-inventory"
    assert inventory.hostname == "dgx-h100-01"
    assert inventory.driver_version == "550.90.07"
    assert inventory.cuda_driver_version == "12.4"
    assert inventory.interconnect == "nvswitch"
    assert inventory.nvlink_domains == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert all(cell in ("X", "NV18") for row in _levels(inventory) for cell in row)
    pair = inventory.pair(0, 7)
    assert pair is not None
    assert pair.via_switch and pair.nvlinks == 18 and pair.bandwidth == "nvlink"
    assert pair.bandwidth_gbs == 900.0  # 18 links x 50 GB/s, H100's NVLink 4 figure
    assert pair.pcie_level == "SYS"  # NVML's PCIe view under the NVLink path
    assert pair.p2p == {"read": "OK", "write": "OK", "nvlink": "OK", "atomics": "OK", "prop": "OK"}
    gpu = inventory.gpus[5]
    assert gpu.catalog_name == "H100-80GB-SXM"
    assert gpu.compute_capability == "9.0"
    assert gpu.pci_bus_id == "00000000:C3:00.0"
    assert gpu.memory_gib == 79.65
    assert (gpu.pcie_generation, gpu.pcie_width) == (5, 16)
    assert gpu.numa_node == 1 and gpu.cpu_affinity == "56-111,168-223"
    assert gpu.memory_numa_node is None
    assert gpu.mig is not None and not gpu.mig.enabled
    assert len(gpu.nvlinks) == 18 and all(link.remote_kind == "switch" for link in gpu.nvlinks)
    assert {link.remote_pci_bus_id for link in gpu.nvlinks} == {
        "00000000:05:00.0",
        "00000000:06:00.0",
        "00000000:07:00.0",
        "00000000:08:00.0",
    }
    assert gpu.fabric is not None and gpu.fabric.state == "completed"
    assert gpu.fabric.status == "SUCCESS" and gpu.fabric.clique_id == 0
    assert gpu.unsupported == {"numa_node_id": "NOT_SUPPORTED"}
    assert inventory.numa_nodes == 2
    assert inventory.fabric == "infiniband"
    assert inventory.active_rdma_devices == [f"mlx5_{i}" for i in range(8)]
    # Each GPU's NIC sits under its own PCIe switch.
    assert inventory.gpu_rdma == {i: f"mlx5_{i}" for i in range(8)}
    assert inventory.network_interface == "eno1"
    device = inventory.rdma_devices[3]
    assert device.link_layer == "InfiniBand" and device.ports[0].rate_gbps == 400.0
    assert device.netdevs == ["ib3"] and device.numa_node == 0
    kinds = {interface.name: interface.kind for interface in inventory.network_interfaces}
    assert (
        kinds["ib0"] == "infiniband" and kinds["eno1"] == "ethernet" and kinds["lo"] == "loopback"
    )
    assert inventory.warnings == []


def test_a100_pcie_nvlink_bridge_pairs(detect_recorded: Detect) -> None:
    inventory = detect_recorded("a100-pcie-8-nvlink-pairs")
    assert inventory.interconnect == "nvlink-pairs"
    assert inventory.nvlink_domains == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert _levels(inventory)[0] == ["X", "NV12", "NODE", "NODE", "SYS", "SYS", "SYS", "SYS"]
    assert _levels(inventory)[2][:4] == ["NODE", "NODE", "X", "NV12"]
    bridged = inventory.pair(2, 3)
    assert bridged is not None and not bridged.via_switch and bridged.bandwidth_gbs == 600.0
    same_socket = inventory.pair(1, 3)
    assert same_socket is not None
    assert same_socket.bandwidth == "numa-local" and same_socket.p2p["nvlink"] == "NS"
    assert same_socket.bandwidth_gbs == 63.0  # PCIe 4.0 x16, both directions
    cross = inventory.pair(0, 7)
    assert cross is not None and cross.bandwidth == "cross-numa"
    assert inventory.numa_nodes == 2
    assert inventory.fabric == "roce"
    assert inventory.gpu_rdma == {0: "mlx5_0", 1: "mlx5_0", 2: "mlx5_0", 3: "mlx5_0"} | {
        4: "mlx5_1",
        5: "mlx5_1",
        6: "mlx5_1",
        7: "mlx5_1",
    }
    assert all(link.peer == 1 for link in inventory.gpus[0].nvlinks)
    assert inventory.gpus[0].catalog_name == "A100-80GB-PCIE"


def test_rtx4090_pcie_across_numa_nodes(detect_recorded: Detect) -> None:
    inventory = detect_recorded("rtx4090-4-pcie-2numa")
    assert inventory.interconnect == "pcie"
    assert inventory.nvlink_domains == [[0], [1], [2], [3]]
    assert _levels(inventory) == [
        ["X", "NODE", "SYS", "SYS"],
        ["NODE", "X", "SYS", "SYS"],
        ["SYS", "SYS", "X", "NODE"],
        ["SYS", "SYS", "NODE", "X"],
    ]
    assert [gpu.numa_node for gpu in inventory.gpus] == [0, 0, 1, 1]
    assert inventory.numa_nodes == 2
    gpu = inventory.gpus[0]
    assert gpu.nvlinks == [] and gpu.mig is None and gpu.fabric is None
    assert gpu.unsupported == {
        "numa_node_id": "NOT_SUPPORTED",
        "mig_mode": "NOT_SUPPORTED",
        "nvlink": "NOT_SUPPORTED",
        "fabric": "NOT_SUPPORTED",
    }
    pair = inventory.pair(1, 2)
    assert pair is not None and pair.p2p["read"] == "CNS" and pair.bandwidth == "cross-numa"
    assert inventory.rdma_devices == [] and inventory.fabric == "ethernet"
    assert inventory.network_interface == "enp5s0"
    assert inventory.warnings == [
        "peer-to-peer over PCIe is unavailable between some GPUs (CNS); "
        "tensor-parallel traffic goes through host memory"
    ]


def test_l40s_pair(detect_recorded: Detect) -> None:
    inventory = detect_recorded("l40s-2")
    assert inventory.interconnect == "pcie"
    assert inventory.nvlink_domains == [[0], [1]]
    assert _levels(inventory) == [["X", "NODE"], ["NODE", "X"]]
    assert inventory.numa_nodes == 1
    gpu = inventory.gpus[1]
    assert gpu.catalog_name == "L40S-48GB"
    # Recent drivers answer the fabric query with state NOT_SUPPORTED instead of an error.
    assert gpu.fabric is not None and gpu.fabric.state == "not-supported"
    assert gpu.unsupported == {
        "numa_node_id": "NOT_SUPPORTED",
        "mig_mode": "NOT_SUPPORTED",
        "nvlink": "NOT_SUPPORTED",
    }
    assert inventory.warnings == []


def test_mig_node(detect_recorded: Detect) -> None:
    inventory = detect_recorded("a100-sxm-4-mig")
    # Four GPUs in a full NVLink mesh (no switch) form one domain.
    assert inventory.interconnect == "nvswitch"
    assert inventory.nvlink_domains == [[0, 1, 2, 3]]
    pair = inventory.pair(1, 2)
    assert pair is not None and pair.level == "NV4" and not pair.via_switch
    mig = [
        (gpu.mig.enabled, gpu.mig.pending, len(gpu.mig.devices))
        for gpu in inventory.gpus
        if gpu.mig
    ]
    assert mig == [(True, True, 2), (True, True, 2), (False, True, 0), (False, False, 0)]
    first = inventory.gpus[0].mig
    assert first is not None
    assert first.devices[1].uuid == "MIG-3c01a9f1-7d2e-5b4c-8a0f-1e2d3c4b5a61"
    assert first.devices[1].memory_bytes == 42144366592
    assert inventory.warnings == [
        "GPUs 0, 1: MIG is enabled, engines see MIG instances, not whole GPUs "
        "(disable with nvidia-smi -i N -mig 0)",
        "GPU 2: a MIG mode change waits for a GPU reset",
    ]


def test_gpu_whose_nvlink_and_affinity_queries_are_unsupported(detect_recorded: Detect) -> None:
    inventory = detect_recorded("h100-pcie-vm-nvlink-unsupported")
    assert inventory.interconnect == "pcie"
    assert inventory.nvlink_domains == [[0], [1]]
    gpu = inventory.gpus[1]
    assert gpu.nvlinks == []
    assert gpu.numa_node is None and gpu.cpu_affinity is None
    assert gpu.fabric is None
    assert gpu.unsupported == {
        "cpu_affinity": "NOT_SUPPORTED",
        "memory_affinity": "NOT_SUPPORTED",
        "numa_node_id": "NOT_SUPPORTED",
        "nvlink": "NOT_SUPPORTED",
        "fabric": "FUNCTION_NOT_FOUND",
    }
    assert gpu.catalog_name == "H100-80GB-PCIE"
    assert inventory.numa_nodes == 1
    assert inventory.network_interface == "ens4"


@pytest.mark.parametrize(
    "name",
    [
        "h100-sxm-8-nvswitch",
        "a100-pcie-8-nvlink-pairs",
        "rtx4090-4-pcie-2numa",
        "l40s-2",
        "a100-sxm-4-mig",
        "h100-pcie-vm-nvlink-unsupported",
    ],
)
def test_inventory_survives_a_json_round_trip(detect_recorded: Detect, name: str) -> None:
    inventory = detect_recorded(name)
    again = NodeInventory.model_validate_json(inventory.model_dump_json())
    assert again == inventory
    count = len(inventory.gpus)
    assert len(inventory.pairs) == count * (count - 1) // 2
