"""Hardware: what the planner may use, as a `Cluster` (see `model.py`).

Three sources, in this order of precedence:
- `--cluster FILE`: a cluster inventory (profiles/clusters/ has examples); `--nodes N` keeps
  the first N nodes.
- `--gpus SPEC [--nodes N]`: a shorthand such as `8xH100`, `h200` or `4xRTX4090`. The count
  defaults to 1 when omitted. The interconnect follows the GPU's form factor (SXM/OAM boards:
  nvswitch, NVL cards: nvlink-pairs, PCIe cards: pcie). Nodes are named node1..nodeN; the
  inter-node fabric is `ethernet` (declare InfiniBand/RoCE in a cluster file).
- `--cpus SPEC [--nodes N]`: CPU nodes served by vLLM's CPU build (`all`, `16`, `16:64g`; see
  `cpu.py`), named like the GPU shorthand's nodes.
- none of these: detect this machine through NVML (one node; `--nodes` above 1 is an error).

Submodules are imported on use: `deploy plan --gpus ...` never loads pynvml.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import CatalogError, HardwareError
from orchestrator.hardware.model import Cluster, GpuDevice, Node

__all__ = [
    "Cluster",
    "GpuDevice",
    "Node",
    "cluster_from_cpus",
    "cluster_from_shorthand",
    "detect_cluster",
    "resolve_cluster",
]


def cluster_from_shorthand(gpus: str, nodes: int = 1) -> Cluster:
    from orchestrator.hardware.gpus import parse_gpu_spec, tray_problem
    from orchestrator.hardware.nodes import (
        DEFAULT_DOCKER,
        shorthand_domains,
        shorthand_node,
    )

    try:
        count, spec = parse_gpu_spec(gpus)
    except CatalogError as error:
        raise HardwareError(f"--gpus {gpus!r}: {error.message}", error.hint) from error
    count = count or 1
    problem = tray_problem(spec, count)
    if problem is not None:
        raise HardwareError(f"--gpus {gpus!r}: {problem}")
    if nodes == 1:
        members = [shorthand_node("local", spec, count)]
    else:
        # Placeholder host names: rendered files name them, the operator maps them (DNS,
        # /etc/hosts) or writes a cluster file with real addresses.
        # GB200/GB300 trays of one NVL72 rack share its NVLink domain.
        domains = shorthand_domains(spec, count, nodes)
        members = [
            shorthand_node(
                f"node{rank}",
                spec,
                count,
                address=f"node{rank}",
                docker=DEFAULT_DOCKER if rank == 1 else f"ssh://node{rank}",
                nvlink_domain=domains[rank - 1],
            )
            for rank in range(1, nodes + 1)
        ]
    return Cluster(
        name=f"{nodes}x{count}x{spec.name}", nodes=members, fabric="ethernet", source="shorthand"
    )


def cluster_from_cpus(cpus: str, nodes: int = 1) -> Cluster:
    """CPU nodes from the `--cpus` shorthand (see `orchestrator.hardware.cpu`)."""
    from orchestrator.hardware.cpu import parse_cpus, pseudo_gpu
    from orchestrator.hardware.nodes import DEFAULT_DOCKER

    spec = parse_cpus(cpus)

    def member(name: str, address: str, docker: str) -> Node:
        return Node(
            name=name,
            address=address,
            docker=docker,
            gpu=pseudo_gpu(spec),
            gpus=[],
            interconnect="pcie",
            nvlink_domains=[],
            numa_nodes=spec.numa_nodes,
            cpu=spec,
        )

    if nodes == 1:
        members = [member("local", "127.0.0.1", DEFAULT_DOCKER)]
    else:
        members = [
            member(
                f"node{rank}", f"node{rank}", DEFAULT_DOCKER if rank == 1 else f"ssh://node{rank}"
            )
            for rank in range(1, nodes + 1)
        ]
    return Cluster(
        name=f"{nodes}x{spec.cores}cpu", nodes=members, fabric="ethernet", source="shorthand"
    )


def detect_cluster(nvml: object = None) -> Cluster:
    """This machine as a one-node cluster, through NVML (or a provider answering like it)."""
    from orchestrator.hardware.detect import detect_node
    from orchestrator.hardware.nodes import catalog_gpu, inventory_node

    inventory = detect_node(nvml)
    name = inventory.hostname or "local"
    node = inventory_node(
        inventory, name=name, gpu=catalog_gpu(inventory, f"detected node {name!r}")
    )
    return Cluster(name=name, nodes=[node], fabric=inventory.fabric, source="nvml")


def resolve_cluster(
    gpus: str | None, nodes: int | None, cluster: Path | None, cpus: str | None = None
) -> Cluster:
    """The hardware for `--gpus/--cpus/--nodes/--cluster` (NVML detection when none is given)."""
    from orchestrator.input_limits import check_gpus_per_node, check_node_count

    if nodes is not None and nodes < 1:
        raise HardwareError(f"--nodes {nodes} is not a node count", "use --nodes 1 or more")
    if nodes is not None:
        check_node_count(nodes)
    if cpus is not None:
        if gpus is not None or cluster is not None:
            other = "--gpus" if gpus is not None else "--cluster"
            raise HardwareError(
                f"--cpus and {other} both describe the hardware",
                "use --cpus SPEC [--nodes N] alone, or a cluster file whose nodes list `cpus:`",
            )
        if nodes is not None and nodes > 64:
            raise HardwareError(f"--nodes {nodes} is more than 64 nodes", "use --nodes 64 or fewer")
        return cluster_from_cpus(cpus, nodes or 1)
    if cluster is not None and gpus is not None:
        raise HardwareError(
            "--gpus and --cluster both describe the hardware",
            "use --cluster FILE alone (its nodes list their GPUs) or --gpus SPEC --nodes N",
        )
    if cluster is not None:
        from orchestrator.hardware.cluster_file import load_cluster

        loaded = load_cluster(cluster)
        check_node_count(len(loaded.nodes), str(cluster))
        for node in loaded.nodes:
            check_gpus_per_node(len(node.gpus), f"{cluster} node {node.name}")
        if nodes is None:
            return loaded
        if nodes > len(loaded.nodes):
            raise HardwareError(
                f"--nodes {nodes} but {cluster} lists {len(loaded.nodes)} node(s)",
                f"use --nodes {len(loaded.nodes)} or fewer, or add nodes to the file",
            )
        return loaded.model_copy(update={"nodes": loaded.nodes[:nodes]})
    if gpus is not None:
        return cluster_from_shorthand(gpus, nodes or 1)
    if nodes is not None and nodes > 1:
        raise HardwareError(
            f"--nodes {nodes} needs a description of the other nodes",
            "detection sees only this machine: use --cluster FILE or --gpus SPEC --nodes N",
        )
    return detect_cluster()
