"""The hardware the planner works with: a cluster of nodes, each with GPUs.

Detection (NVML), cluster inventory files and the `--gpus 8xH100 --nodes 2` shorthand all
produce a `Cluster`. The resolver reads only this model, never NVML.
"""

# No `from __future__ import annotations` in this module: pydantic would then evaluate each
# field's annotation string when the class is created, a quarter of this import's cost on every
# `deploy` run.

from typing import Literal

from pydantic import Field

from orchestrator.base import Strict
from orchestrator.hardware.cpu import CpuSpec
from orchestrator.schema import GpuSpec, Interconnect

# How nodes talk to each other: RDMA fabrics allow TP across nodes and fast PD KV transfer.
Fabric = Literal["infiniband", "roce", "ethernet", "none"]


class GpuDevice(Strict):
    """One GPU in a node, as detected or declared."""

    index: int = Field(ge=0)
    name: str = Field(description="as NVML reports it, or the catalog name when declared")
    memory_gib: float = Field(gt=0)
    uuid: str | None = None
    pci_bus_id: str | None = None
    numa_node: int | None = None
    mig_enabled: bool = False


class Node(Strict):
    """One machine."""

    name: str = Field(min_length=1)
    address: str = Field(default="127.0.0.1", description="IP or hostname for rendezvous")
    docker: str = Field(
        default="unix:///var/run/docker.sock",
        description="Docker endpoint: unix:// socket, tcp://host:port or ssh://user@host",
    )
    gpu: GpuSpec = Field(description="the catalog entry of this node's GPUs (homogeneous nodes)")
    gpus: list[GpuDevice]
    interconnect: Interconnect
    # GPU index groups fully connected by NVLink/NVSwitch. PCIe-only nodes: one group per GPU.
    nvlink_domains: list[list[int]]
    network_interface: str | None = None
    rdma_devices: list[str] = []
    numa_nodes: int = Field(default=1, ge=1)
    # The NVLink domain this node's GPUs share with other nodes (an NVL72 rack's name, or the
    # fabric's cluster UUID/clique NVML reports); None: NVLink ends at the node.
    nvlink_domain: str | None = Field(default=None, min_length=1, max_length=128)
    # Assumptions made for a GPU the catalog does not know (planned from what NVML reports).
    gpu_assumptions: list[str] = []
    # Set on a node that serves on its CPUs (vLLM's CPU build): then `gpus` is empty and `gpu`
    # is the pseudo entry `hardware.cpu.pseudo_gpu` made from it.
    cpu: CpuSpec | None = None

    @property
    def gpu_count(self) -> int:
        return len(self.gpus)

    @property
    def largest_nvlink_domain(self) -> int:
        return max((len(domain) for domain in self.nvlink_domains), default=1)


class Cluster(Strict):
    """The nodes a deployment may use."""

    name: str = "local"
    nodes: list[Node] = Field(min_length=1)
    fabric: Fabric = Field(default="ethernet", description="inter-node network")
    source: str = Field(default="shorthand", description="'nvml', 'shorthand' or a file path")

    @property
    def gpu(self) -> GpuSpec:
        return self.nodes[0].gpu

    @property
    def gpus_per_node(self) -> int:
        return self.nodes[0].gpu_count

    @property
    def total_gpus(self) -> int:
        return sum(node.gpu_count for node in self.nodes)

    @property
    def is_cpu(self) -> bool:
        """Every node serves on its CPUs (clusters are all-CPU or all-GPU)."""
        return all(node.cpu is not None for node in self.nodes)

    @property
    def has_rdma(self) -> bool:
        return self.fabric in ("infiniband", "roce")

    def share_nvlink_domain(self, names: list[str]) -> bool:
        """Whether the named nodes are all in one multi-node NVLink domain (an NVL72 rack)."""
        by_name = {node.name: node.nvlink_domain for node in self.nodes}
        domains = {by_name.get(name) for name in names}
        return len(domains) == 1 and None not in domains

    @property
    def nodes_per_nvlink_domain(self) -> int:
        """Nodes of the smallest multi-node NVLink domain (1 when NVLink ends at the node)."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            if node.nvlink_domain is not None:
                counts[node.nvlink_domain] = counts.get(node.nvlink_domain, 0) + 1
        return min(counts.values(), default=1)
