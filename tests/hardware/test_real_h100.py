"""What a real H100 (one SXM module passed through to a VM, driver 580.159.04) answered.

`real-h100-detect.json` is `deploy detect --json` from that machine; `real-h100-recording.json`
is `deploy detect --record` from the same run. Replaying the recording through the detection
code must give the real output exactly: the stand-in answers as the driver did.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.hardware.cluster_file import load_cluster
from orchestrator.hardware.detect import detect_node
from orchestrator.hardware.inventory import NodeInventory
from orchestrator.hardware.replay.nvml import FakeNvml
from orchestrator.hardware.replay.sysfs import write_sysfs


def test_real_output_is_a_node_inventory(fixtures_dir: Path) -> None:
    inventory = NodeInventory.model_validate_json(
        (fixtures_dir / "real-h100-detect.json").read_text()
    )
    assert inventory.schema_version == 1 and inventory.kind == "node-inventory"
    assert inventory.driver_version == "580.159.04" and inventory.cuda_driver_version == "13.0"
    gpu = inventory.gpus[0]
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.catalog_name == "H100-80GB-SXM"
    assert gpu.memory_bytes == 85520809984
    assert (gpu.pcie_generation, gpu.pcie_width) == (5, 16)
    assert gpu.numa_node == 0 and gpu.cpu_affinity == "0-15"
    # A lone SXM module: NVLink queries fail with NOT_SUPPORTED, the fabric query succeeds
    # with state NOT_SUPPORTED, nvmlDeviceGetNumaNodeId is NOT_SUPPORTED on x86.
    assert gpu.unsupported == {"numa_node_id": "NOT_SUPPORTED", "nvlink": "NOT_SUPPORTED"}
    assert gpu.fabric is not None and gpu.fabric.state == "not-supported"
    assert gpu.mig is not None and not gpu.mig.enabled
    assert inventory.interconnect == "pcie" and inventory.nvlink_domains == [[0]]
    assert inventory.network_interface == "eth0" and inventory.rdma_devices == []


def test_real_output_as_a_cluster_node(fixtures_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "h100.json").write_text((fixtures_dir / "real-h100-detect.json").read_text())
    (tmp_path / "cluster.yaml").write_text(
        "nodes:\n  - {name: h100, address: 127.0.0.1, inventory: h100.json}\n"
    )
    node = load_cluster(tmp_path / "cluster.yaml").nodes[0]
    assert node.gpu.name == "H100-80GB-SXM"
    assert node.gpu_count == 1 and node.largest_nvlink_domain == 1
    assert node.gpus[0].uuid == "GPU-1ac79018-57a5-3784-1d09-55224b18ca65"
    assert node.network_interface == "eth0"


def test_replaying_the_real_recording_reproduces_the_real_output(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    recording = json.loads((fixtures_dir / "real-h100-recording.json").read_text())
    paths = write_sysfs(recording["sysfs"], tmp_path)
    replayed = detect_node(FakeNvml(recording), paths)
    real = json.loads((fixtures_dir / "real-h100-detect.json").read_text())
    assert replayed.model_dump(mode="json") == real
