"""`resolve_cluster`: the --gpus shorthand, --nodes, and NVML detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import HardwareError
from orchestrator.hardware import cluster_from_shorthand, detect_cluster, resolve_cluster
from orchestrator.hardware.nodes import default_interconnect, domains_for
from orchestrator.hardware.replay.nvml import FakeNvml


def _nvml_works() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.parametrize(
    ("spec", "gpu", "count", "interconnect", "domains"),
    [
        ("8xH100", "H100-80GB-SXM", 8, "nvswitch", [list(range(8))]),
        ("8x H200", "H200-141GB-SXM", 8, "nvswitch", [list(range(8))]),
        ("H200", "H200-141GB-SXM", 1, "pcie", [[0]]),  # no count: one GPU
        ("4xRTX4090", "RTX4090-24GB", 4, "pcie", [[0], [1], [2], [3]]),
        ("2xrtx-pro-6000", "RTX-PRO-6000-96GB", 2, "pcie", [[0], [1]]),
        ("4xH100-NVL", "H100-94GB-NVL", 4, "nvlink-pairs", [[0, 1], [2, 3]]),
        ("8xMI300X", "MI300X-192GB", 8, "nvswitch", [list(range(8))]),
    ],
)
def test_shorthand(
    spec: str, gpu: str, count: int, interconnect: str, domains: list[list[int]]
) -> None:
    cluster = resolve_cluster(spec, None, None)
    assert cluster.source == "shorthand"
    assert cluster.gpu.name == gpu
    node = cluster.nodes[0]
    assert (node.name, node.address, node.docker) == (
        "local",
        "127.0.0.1",
        "unix:///var/run/docker.sock",
    )
    assert node.gpu_count == count
    assert node.interconnect == interconnect
    assert node.nvlink_domains == domains
    assert all(device.memory_gib == cluster.gpu.memory_gib for device in node.gpus)
    assert cluster.fabric == "ethernet"


def test_shorthand_many_nodes() -> None:
    cluster = resolve_cluster("8xH100", 3, None)
    assert cluster.name == "3x8xH100-80GB-SXM"
    assert [node.name for node in cluster.nodes] == ["node1", "node2", "node3"]
    assert [node.address for node in cluster.nodes] == ["node1", "node2", "node3"]
    assert [node.docker for node in cluster.nodes] == [
        "unix:///var/run/docker.sock",
        "ssh://node2",
        "ssh://node3",
    ]
    assert cluster.total_gpus == 24 and cluster.fabric == "ethernet" and not cluster.has_rdma


def test_shorthand_unknown_gpu() -> None:
    with pytest.raises(HardwareError) as caught:
        cluster_from_shorthand("8xH1000")
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(
        "--gpus '8xH1000': unknown GPU 'H1000'; did you mean H100-80GB-SXM"
    )


def test_odd_gpu_count_pairs() -> None:
    assert domains_for("nvlink-pairs", 3) == [[0, 1], [2]]
    assert domains_for("pcie", 0) == []


def test_default_interconnect_single_gpu_is_pcie() -> None:
    from orchestrator.hardware.gpus import find_gpu

    assert default_interconnect(find_gpu("H100"), 1) == "pcie"
    assert default_interconnect(find_gpu("A100-80GB-PCIE"), 8) == "pcie"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("8xH100", None, Path("c.yaml")),
            "--gpus and --cluster both describe the hardware; use --cluster FILE alone (its nodes "
            "list their GPUs) or --gpus SPEC --nodes N",
        ),
        (("8xH100", 0, None), "--nodes 0 is not a node count; use --nodes 1 or more"),
        (
            (None, 2, None),
            "--nodes 2 needs a description of the other nodes; detection sees only this machine: "
            "use --cluster FILE or --gpus SPEC --nodes N",
        ),
    ],
)
def test_option_conflicts(args: tuple[str | None, int | None, Path | None], message: str) -> None:
    with pytest.raises(HardwareError) as caught:
        resolve_cluster(*args)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_no_options_detects_and_fails_without_nvml() -> None:
    if _nvml_works():
        pytest.skip("this machine has a working NVML")
    with pytest.raises(HardwareError) as caught:
        resolve_cluster(None, None, None)
    assert str(caught.value) == (
        "cannot detect GPUs: NVML is unavailable (library not found); "
        "describe the hardware with --cluster FILE or --gpus SPEC (e.g. --gpus 8xH100), "
        "or serve on this machine's CPUs with --cpus all"
    )
    assert caught.value.exit_code == 2


def test_detected_cluster_from_a_recording(fixtures_dir: Path) -> None:
    cluster = detect_cluster(FakeNvml.from_file(fixtures_dir / "h100-sxm-8-nvswitch.json"))
    assert cluster.source == "nvml" and cluster.name == "dgx-h100-01"
    node = cluster.nodes[0]
    assert node.gpu.name == "H100-80GB-SXM"
    assert node.interconnect == "nvswitch" and node.largest_nvlink_domain == 8
    assert node.numa_nodes == 2
    assert [gpu.numa_node for gpu in node.gpus] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert node.gpus[0].uuid == "GPU-7e1c0a52-3f0b-c41d-8e2a-51d9b004f7c3e"


def test_detected_node_with_unknown_gpu_is_planned_from_nvml(fixtures_dir: Path) -> None:
    import json

    topology = json.loads((fixtures_dir / "l40s-2.json").read_text())
    for gpu in topology["gpus"]:
        gpu["name"] = "NVIDIA Quantum Q1"
    node = detect_cluster(FakeNvml(topology)).nodes[0]
    # What NVML reports is kept; what it cannot report is borrowed and said so.
    assert node.gpu.name == "NVIDIA Quantum Q1" and node.gpu.assumed
    assert node.gpu.memory_gib == round(topology["gpus"][0]["memory_total"] / 2**30, 2)
    assert node.gpu.compute_capability == "8.9" and node.gpu.supports_fp8
    assert node.gpu_assumptions[0].startswith("GPU 'NVIDIA Quantum Q1' is not in the catalog")
    assert "assumed like L40S" in node.gpu_assumptions[1]


def test_zero_gpus_and_driver_not_loaded(fixtures_dir: Path) -> None:
    import json

    topology = json.loads((fixtures_dir / "l40s-2.json").read_text())
    with pytest.raises(HardwareError) as caught:
        detect_cluster(FakeNvml(topology | {"gpus": []}))
    assert str(caught.value).startswith("cannot detect GPUs: NVML sees no GPU on this machine; ")
    with pytest.raises(HardwareError) as caught:
        detect_cluster(FakeNvml(topology | {"init_error": "DRIVER_NOT_LOADED"}))
    assert str(caught.value).startswith(
        "cannot detect GPUs: NVML is unavailable (driver not loaded); "
    )


def test_shorthand_and_cluster_files_never_load_pynvml(repo_root: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from orchestrator.hardware import resolve_cluster\n"
        "resolve_cluster('8xH100', 2, None)\n"
        "resolve_cluster(None, None, Path('profiles/clusters/two-node-h100-ib.yaml'))\n"
        "print(sorted(m for m in ('pynvml', 'docker', 'aiohttp', 'rich') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == "[]\n"
