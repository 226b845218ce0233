"""Cluster inventory files: the shipped examples, and every bad case as one exact line."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from orchestrator.errors import HardwareError
from orchestrator.hardware import resolve_cluster
from orchestrator.hardware.cluster_file import load_cluster

EXAMPLES = Path(__file__).resolve().parents[2] / "profiles" / "clusters"


def _write(tmp_path: Path, text: str, name: str = "cluster.yaml") -> Path:
    path = tmp_path / name
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _error(path: Path) -> str:
    with pytest.raises(HardwareError) as caught:
        load_cluster(path)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_two_node_h100_example_used_by_make_run() -> None:
    cluster = load_cluster(EXAMPLES / "two-node-h100-ib.yaml")
    assert cluster.name == "two-node-h100-ib"
    assert cluster.fabric == "infiniband" and cluster.has_rdma
    assert [node.name for node in cluster.nodes] == ["h100-a", "h100-b"]
    assert [node.address for node in cluster.nodes] == ["192.0.2.10", "192.0.2.11"]
    assert [node.docker for node in cluster.nodes] == [
        "unix:///var/run/docker.sock",
        "ssh://ops@192.0.2.11",
    ]
    for node in cluster.nodes:
        assert node.gpu.name == "H100-80GB-SXM"
        assert node.gpu_count == 8
        assert node.interconnect == "nvswitch"
        assert node.nvlink_domains == [list(range(8))]
        assert node.network_interface == "ib0"
        assert node.rdma_devices == [f"mlx5_{i}" for i in range(8)]
        assert node.numa_nodes == 2
    assert cluster.total_gpus == 16


@pytest.mark.parametrize(
    ("file", "nodes", "gpu", "per_node", "interconnect", "fabric"),
    [
        ("single-node-h200.yaml", 1, "H200-141GB-SXM", 8, "nvswitch", "none"),
        ("twelve-node-h100-ib.yaml", 12, "H100-80GB-SXM", 8, "nvswitch", "infiniband"),
        ("rtx4090-workstation.yaml", 1, "RTX4090-24GB", 4, "pcie", "none"),
        ("rtx-pro-6000-2x.yaml", 1, "RTX-PRO-6000-96GB", 2, "pcie", "none"),
        ("l40s-4x.yaml", 1, "L40S-48GB", 4, "pcie", "none"),
        ("cpu-two-node.yaml", 2, "CPU", 0, "pcie", "ethernet"),
    ],
)
def test_examples_load(
    file: str, nodes: int, gpu: str, per_node: int, interconnect: str, fabric: str
) -> None:
    cluster = load_cluster(EXAMPLES / file)
    assert len(cluster.nodes) == nodes
    assert cluster.gpu.name == gpu
    assert cluster.gpus_per_node == per_node
    assert cluster.nodes[0].interconnect == interconnect
    assert cluster.fabric == fabric


def test_every_example_is_covered() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.yaml")) == [
        "cpu-two-node.yaml",
        "l40s-4x.yaml",
        "rtx-pro-6000-2x.yaml",
        "rtx4090-workstation.yaml",
        "single-node-h200.yaml",
        "twelve-node-h100-ib.yaml",
        "two-node-h100-ib.yaml",
    ]


def test_inventory_by_path_keeps_detected_topology() -> None:
    node = load_cluster(EXAMPLES / "rtx4090-workstation.yaml").nodes[0]
    assert node.numa_nodes == 2
    assert [gpu.numa_node for gpu in node.gpus] == [0, 0, 1, 1]
    assert node.gpus[2].pci_bus_id == "00000000:41:00.0"
    assert node.network_interface == "enp5s0"
    assert node.nvlink_domains == [[0], [1], [2], [3]]


def test_inline_inventory_and_overrides(tmp_path: Path, detect_recorded) -> None:  # type: ignore[no-untyped-def]
    inventory = detect_recorded("a100-pcie-8-nvlink-pairs").model_dump(mode="json")
    text = "nodes:\n  - name: a100\n    address: 192.0.2.40\n    network_interface: ens1f0np0\n"
    text += "    inventory: " + json.dumps(inventory) + "\n"
    node = load_cluster(_write(tmp_path, text)).nodes[0]
    assert node.gpu.name == "A100-80GB-PCIE"
    assert node.interconnect == "nvlink-pairs"
    assert node.nvlink_domains == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert node.network_interface == "ens1f0np0"  # the file wins over detection
    assert node.rdma_devices == ["mlx5_0", "mlx5_1"]


def test_mig_inventory_marks_gpus(tmp_path: Path, detect_recorded) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mig.json").write_text(detect_recorded("a100-sxm-4-mig").model_dump_json())
    path = _write(tmp_path, "nodes:\n  - {name: hgx, address: 192.0.2.5, inventory: mig.json}\n")
    node = load_cluster(path).nodes[0]
    assert [gpu.mig_enabled for gpu in node.gpus] == [True, True, False, False]


def test_defaults_apply_and_nodes_override(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        fabric: roce
        defaults:
          gpus: 8xH200
          network_interface: eth0
        nodes:
          - name: a
            address: 192.0.2.10
          - name: b
            address: 192.0.2.11
            network_interface: eth1
            docker: tcp://192.0.2.11:2375
        """,
    )
    cluster = load_cluster(path)
    assert cluster.name == "cluster"
    assert [node.network_interface for node in cluster.nodes] == ["eth0", "eth1"]
    assert [node.docker for node in cluster.nodes] == [
        "unix:///var/run/docker.sock",
        "tcp://192.0.2.11:2375",
    ]
    assert cluster.gpu.name == "H200-141GB-SXM" and cluster.fabric == "roce"


def test_duplicate_node_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        nodes:
          - name: gpu-a
            address: 192.0.2.10
            gpus: 8xH100
          - name: gpu-a
            address: 192.0.2.11
            gpus: 8xH100
        """,
    )
    assert _error(path) == (
        f"{path}:5: nodes[1].name: node name 'gpu-a' is used twice (also nodes[0]); "
        "give every node a unique name"
    )


def test_unknown_gpu(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        name: bad-gpu
        nodes:
          - name: a
            address: 192.0.2.10
            gpus: 8xH1000
        """,
    )
    message = _error(path)
    assert message.startswith(
        f"{path}:5: nodes[0].gpus: unknown GPU 'H1000'; did you mean H100-80GB-SXM"
    )


def test_unknown_gpu_in_defaults_points_at_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        defaults:
          gpus: 4xTPUv5
        nodes:
          - {name: a, address: 192.0.2.10}
        """,
    )
    assert _error(path).startswith(f"{path}:2: defaults.gpus: unknown GPU 'TPUv5'")


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://192.0.2.11:2375",
        "ssh://",
        "tcp://192.0.2.11:99999",
        "unix://var/run/docker.sock",
        "192.0.2.11",
    ],
)
def test_malformed_docker_endpoint(tmp_path: Path, endpoint: str) -> None:
    path = _write(
        tmp_path,
        f"""
        nodes:
          - name: a
            address: 192.0.2.10
            gpus: 8xH100
          - name: b
            address: 192.0.2.11
            docker: "{endpoint}"
            gpus: 8xH100
        """,
    )
    message = _error(path)
    assert message.startswith(f"{path}:7: nodes[1].docker: '{endpoint}' ")
    assert message.endswith("use unix:///var/run/docker.sock, tcp://HOST:PORT or ssh://USER@HOST")


@pytest.mark.parametrize(
    "endpoint",
    [
        "unix:///run/user/1000/docker.sock",
        "tcp://gpu-b:2376",
        "ssh://gpu-b",
        "ssh://ops@[2001:db8::1]:22",
    ],
)
def test_good_docker_endpoints(tmp_path: Path, endpoint: str) -> None:
    path = _write(
        tmp_path, f"nodes:\n  - {{name: a, address: x, gpus: H100, docker: '{endpoint}'}}\n"
    )
    assert load_cluster(path).nodes[0].docker == endpoint


def test_inventory_of_another_schema_version(tmp_path: Path, detect_recorded) -> None:  # type: ignore[no-untyped-def]
    document = detect_recorded("l40s-2").model_dump(mode="json")
    document["schema_version"] = 2
    (tmp_path / "inventories").mkdir()
    (tmp_path / "inventories" / "l40s.json").write_text(json.dumps(document, indent=2))
    path = _write(
        tmp_path,
        "nodes:\n  - name: a\n    address: 192.0.2.10\n    inventory: inventories/l40s.json\n",
    )
    assert _error(path) == (
        f"{tmp_path / 'inventories' / 'l40s.json'}:2: schema_version: node inventory schema_version 2 "
        "is not supported (this deploy reads 1); re-run `deploy detect --json` with this version of deploy"
    )


def test_inline_inventory_of_another_schema_version(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        nodes:
          - name: a
            address: 192.0.2.10
            inventory:
              kind: node-inventory
              schema_version: 3
        """,
    )
    assert _error(path).startswith(
        f"{path}:6: nodes[0].inventory.schema_version: node inventory schema_version 3 is not supported"
    )


def test_missing_inventory_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "nodes:\n  - {name: a, address: 192.0.2.10, inventory: nowhere.json}\n")
    assert _error(path) == (
        f"{path}:2: nodes[0].inventory: inventory file 'nowhere.json' not found; "
        "give a path relative to the cluster file"
    )


def test_malformed_yaml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        nodes:
          - name: a
            address: 192.0.2.10
             gpus: 8xH100
        """,
    )
    # libyaml says "... not allowed in this context", the pure-Python parser "... not allowed here".
    message = _error(path)
    assert message.startswith(f"{path}:4: invalid YAML: mapping values are not allowed ")
    assert message.endswith("; fix the syntax")
    assert "\n" not in message


def test_unknown_field_lists_the_valid_ones(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "nodes:\n  - name: a\n    address: x\n    gpus: H100\n    gpu_count: 8\n"
    )
    assert _error(path) == (
        f"{path}:5: nodes[0].gpu_count: unknown field; the fields here are: docker, gpus, inventory, "
        "cpus, interconnect, network_interface, rdma_devices, numa_nodes, name, address"
    )


def test_bad_fabric(tmp_path: Path) -> None:
    path = _write(tmp_path, "nodes:\n  - {name: a, address: x, gpus: H100}\nfabric: nvlink\n")
    assert (
        _error(path)
        == f"{path}:3: fabric: input should be 'infiniband', 'roce', 'ethernet' or 'none'"
    )


def test_missing_address_and_missing_gpus(tmp_path: Path) -> None:
    path = _write(tmp_path, "nodes:\n  - name: a\n    gpus: H100\n")
    assert _error(path) == f"{path}:2: nodes[0].address: missing required field; add it"
    path = _write(tmp_path, "nodes:\n  - name: a\n    address: x\n", name="b.yaml")
    assert (
        _error(path)
        == f"{path}:2: nodes[0]: missing gpus (or inventory); e.g. gpus: 8xH100-80GB-SXM"
    )


def test_mixed_gpu_models(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "nodes:\n  - {name: a, address: x, gpus: 8xH100}\n  - {name: b, address: y, gpus: 8xH200}\n",
    )
    assert _error(path) == (
        f"{path}:3: nodes[1].gpus: node 'b' has H200-141GB-SXM but 'a' has H100-80GB-SXM; "
        "a cluster uses one GPU model; list the nodes of one model"
    )


def test_not_a_mapping_and_unreadable(tmp_path: Path) -> None:
    path = _write(tmp_path, "- just\n- a list\n")
    assert (
        _error(path)
        == f"{path}:1: expected a mapping with `nodes:`; see profiles/clusters/ for examples"
    )
    missing = tmp_path / "absent.yaml"
    assert (
        _error(missing)
        == f"{missing}: cannot read the file (No such file or directory); check the path given to --cluster"
    )


def test_nodes_option_takes_the_first_nodes() -> None:
    cluster = resolve_cluster(None, 5, EXAMPLES / "twelve-node-h100-ib.yaml")
    assert [node.name for node in cluster.nodes] == [f"h100-0{i}" for i in range(1, 6)]
    with pytest.raises(HardwareError) as caught:
        resolve_cluster(None, 3, EXAMPLES / "two-node-h100-ib.yaml")
    assert str(caught.value) == (
        f"--nodes 3 but {EXAMPLES / 'two-node-h100-ib.yaml'} lists 2 node(s); "
        "use --nodes 2 or fewer, or add nodes to the file"
    )


@pytest.mark.parametrize(
    ("address", "interface", "message"),
    [
        (
            "http://192.0.2.10",
            "eth0",
            "3: nodes[0].address: 'http://192.0.2.10' is not a host name or IP address; "
            "write it without scheme or port",
        ),
        (
            "192.0.2.10:8000",
            "eth0",
            "3: nodes[0].address: '192.0.2.10:8000' is not a host name or IP address; "
            "write it without scheme or port",
        ),
        (
            "192.0.2.10",
            "eth 0",
            "5: nodes[0].network_interface: string should match pattern '^[A-Za-z0-9_.@-]{1,15}$'",
        ),
    ],
)
def test_bad_address_and_interface(
    tmp_path: Path, address: str, interface: str, message: str
) -> None:
    path = _write(
        tmp_path,
        f"""
        nodes:
          - name: a
            address: "{address}"
            gpus: 8xH100
            network_interface: "{interface}"
        """,
    )
    assert _error(path) == f"{path}:{message}"


def test_rdma_device_with_port(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "nodes:\n  - {name: a, address: a.example, gpus: 8xH100, rdma_devices: ['mlx5_0:1', mlx5_1]}\n",
    )
    assert load_cluster(path).nodes[0].rdma_devices == ["mlx5_0:1", "mlx5_1"]
