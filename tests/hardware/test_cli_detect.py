"""`deploy detect` through the real click root, against recordings and this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.hardware.inventory import NodeInventory


def _nvml_works() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_detect_without_nvml_exits_2_with_one_line() -> None:
    if _nvml_works():
        pytest.skip("this machine has a working NVML")
    for args in (["detect"], ["detect", "--json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr == (
            "error: cannot detect GPUs: NVML is unavailable (library not found); describe the "
            "hardware with --cluster FILE or --gpus SPEC (e.g. --gpus 8xH100), or serve on this "
            "machine's CPUs with --cpus all\n"
        )


def test_detect_driver_not_loaded(tmp_path: Path, fixtures_dir: Path) -> None:
    topology = json.loads((fixtures_dir / "l40s-2.json").read_text())
    topology["init_error"] = "DRIVER_NOT_LOADED"
    recording = tmp_path / "broken.json"
    recording.write_text(json.dumps(topology))
    result = CliRunner().invoke(cli, ["detect", "--replay", str(recording)])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: cannot detect GPUs: NVML is unavailable (driver not loaded); describe the "
        "hardware with --cluster FILE or --gpus SPEC (e.g. --gpus 8xH100), or serve on this "
        "machine's CPUs with --cpus all\n"
    )


def test_detect_matrix_for_a_pcie_box(fixtures_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["detect", "--replay", str(fixtures_dir / "rtx4090-4-pcie-2numa.json")]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[0]
        == "ws-4090: 4x NVIDIA GeForce RTX 4090 (RTX4090-24GB), driver 550.107.02, CUDA 12.4"
    )
    assert lines[2:7] == [
        "      GPU0  GPU1  GPU2  GPU3  CPU Affinity  NUMA  NIC",
        "GPU0  X     NODE  SYS   SYS   0-15,32-47    0     -",
        "GPU1  NODE  X     SYS   SYS   0-15,32-47    0     -",
        "GPU2  SYS   SYS   X     NODE  16-31,48-63   1     -",
        "GPU3  SYS   SYS   NODE  X     16-31,48-63   1     -",
    ]
    assert lines[-8:] == [
        "Interconnect: pcie",
        "NVLink domains: [0] [1] [2] [3]",
        "NUMA nodes with GPUs: 2",
        "Network interface: enp5s0",
        "Fabric: ethernet",
        "RDMA devices: none",
        "Not reported by this driver/GPU: fabric, mig_mode, nvlink",
        "warning: peer-to-peer over PCIe is unavailable between some GPUs (CNS); tensor-parallel "
        "traffic goes through host memory",
    ]


def test_detect_matrix_for_an_nvswitch_node(fixtures_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["detect", "--replay", str(fixtures_dir / "h100-sxm-8-nvswitch.json")]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        lines[2]
        == "      GPU0  GPU1  GPU2  GPU3  GPU4  GPU5  GPU6  GPU7  CPU Affinity    NUMA  NIC"
    )
    assert (
        lines[3]
        == "GPU0  X     NV18  NV18  NV18  NV18  NV18  NV18  NV18  0-55,112-167    0     mlx5_0"
    )
    assert (
        lines[10]
        == "GPU7  NV18  NV18  NV18  NV18  NV18  NV18  NV18  X     56-111,168-223  1     mlx5_7"
    )
    assert "NVLink domains: [0-7]" in lines
    assert "Interconnect: nvswitch" in lines
    assert "RDMA devices: mlx5_0..mlx5_7 (InfiniBand 400 Gb/s, ACTIVE)" in lines
    assert "Fabric: infiniband" in lines
    assert not [line for line in lines if line.startswith(("warning:", "Not reported"))]


def test_detect_json_is_a_node_inventory(fixtures_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["detect", "--json", "--replay", str(fixtures_dir / "a100-pcie-8-nvlink-pairs.json")]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1 and document["kind"] == "node-inventory"
    inventory = NodeInventory.model_validate(document)
    assert inventory.nvlink_domains == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert inventory.gpu_rdma[5] == "mlx5_1"
    # The same document, referenced from a cluster file, becomes a node.
    (tmp_path / "a100.json").write_text(result.stdout)
    (tmp_path / "cluster.yaml").write_text(
        "fabric: roce\nnodes:\n  - {name: a100, address: 192.0.2.7, inventory: a100.json}\n"
    )
    from orchestrator.hardware import resolve_cluster

    cluster = resolve_cluster(None, None, tmp_path / "cluster.yaml")
    assert cluster.nodes[0].interconnect == "nvlink-pairs"
    assert cluster.nodes[0].largest_nvlink_domain == 2
    assert cluster.fabric == "roce"


def test_detect_is_registered_with_help() -> None:
    result = CliRunner().invoke(cli, ["detect", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.stdout
    assert "--replay" not in result.stdout  # a testing seam, hidden from users


def test_a_replay_file_that_is_not_a_recording_is_one_line(tmp_path: Path) -> None:
    hint = "record one with `deploy detect --record FILE` on the GPU machine"
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = CliRunner().invoke(cli, ["detect", "--replay", str(broken)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: cannot read the recorded topology {broken} (Expecting property name enclosed "
        f"in double quotes: line 1 column 2 (char 1)); {hint}\n"
    )
    other = tmp_path / "other.json"
    other.write_text('{"kind": "node-inventory"}')
    result = CliRunner().invoke(cli, ["detect", "--replay", str(other)])
    assert result.exit_code == 2
    assert result.output == f'error: {other} is not a recorded topology (no "gpus" list); {hint}\n'
