"""Build `Node`s from a detected inventory or from a GPU shorthand (`8xH100`).

The shorthand has no topology, so it is inferred from the GPU's form factor:
- SXM and OAM boards (HGX/DGX, MI300X platform) are fully connected: `nvswitch`, one NVLink
  domain with every GPU. 4-GPU HGX boards are a full NVLink mesh and plan the same way.
- NVL cards (H100 NVL) come in NVLink-bridged pairs: `nvlink-pairs`.
- Other PCIe cards: `pcie`, one domain per GPU. Declare bridges in a cluster file with
  `interconnect: nvlink-pairs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.errors import HardwareError
from orchestrator.hardware.model import GpuDevice, Node
from orchestrator.schema import GpuSpec, Interconnect

if TYPE_CHECKING:  # the inventory models are only needed for detected or file-declared nodes
    from orchestrator.hardware.inventory import NodeInventory

DEFAULT_DOCKER = "unix:///var/run/docker.sock"


def default_interconnect(gpu: GpuSpec, count: int) -> Interconnect:
    if count < 2:
        return "pcie"
    if gpu.form_factor in ("sxm", "oam"):
        return "nvswitch"
    if gpu.form_factor == "nvl" or (gpu.nvlink is not None and gpu.form_factor != "pcie"):
        return "nvlink-pairs"
    return "pcie"


def domains_for(interconnect: Interconnect, count: int) -> list[list[int]]:
    if interconnect == "nvswitch":
        return [list(range(count))]
    if interconnect == "nvlink-pairs":
        return [list(range(start, min(start + 2, count))) for start in range(0, count, 2)]
    return [[index] for index in range(count)]


def shorthand_node(
    name: str,
    gpu: GpuSpec,
    count: int,
    *,
    interconnect: Interconnect | None = None,
    address: str = "127.0.0.1",
    docker: str = DEFAULT_DOCKER,
    network_interface: str | None = None,
    rdma_devices: list[str] | None = None,
    numa_nodes: int = 1,
    nvlink_domain: str | None = None,
) -> Node:
    chosen = interconnect or default_interconnect(gpu, count)
    return Node(
        name=name,
        address=address,
        docker=docker,
        gpu=gpu,
        gpus=[GpuDevice(index=i, name=gpu.name, memory_gib=gpu.memory_gib) for i in range(count)],
        interconnect=chosen,
        nvlink_domains=domains_for(chosen, count),
        network_interface=network_interface,
        rdma_devices=list(rdma_devices or []),
        numa_nodes=numa_nodes,
        nvlink_domain=nvlink_domain,
    )


def shorthand_domains(gpu: GpuSpec, count: int, nodes: int) -> list[str | None]:
    """NVLink domain names of `nodes` shorthand nodes: racks of `domain_gpus` GPUs for a GPU
    whose NVLink crosses nodes (NVL72: 18 trays of 4), None otherwise."""
    span = gpu.nvlink.domain_gpus if gpu.nvlink is not None else None
    if span is None or count >= span or nodes < 2:
        return [None] * nodes
    per_domain = max(1, span // count)
    return [f"nvl{rank // per_domain + 1}" for rank in range(nodes)]


def catalog_gpu(inventory: NodeInventory, where: str) -> GpuSpec:
    """The catalog entry for the node's GPUs; nodes must be homogeneous."""
    from orchestrator.hardware.gpus import gpu_from_nvml_name

    names = sorted({gpu.name for gpu in inventory.gpus})
    if len(names) > 1:
        raise HardwareError(
            f"{where}: the node mixes GPU models ({', '.join(names)})",
            "describe the GPUs to use with --gpus SPEC or a cluster file",
        )
    first = inventory.gpus[0]
    spec = gpu_from_nvml_name(first.name, first.memory_bytes)
    if spec is None:
        # Planned from what NVML reports, with the assumptions stated (see `assumed_gpu`).
        from orchestrator.hardware.unknown_gpu import assumed_gpu

        return assumed_gpu(first)
    return spec


def inventory_node(
    inventory: NodeInventory,
    *,
    name: str,
    gpu: GpuSpec,
    address: str = "127.0.0.1",
    docker: str = DEFAULT_DOCKER,
    interconnect: Interconnect | None = None,
    network_interface: str | None = None,
    rdma_devices: list[str] | None = None,
) -> Node:
    """A `Node` from a detected inventory; explicit arguments override detected facts."""
    devices = [
        GpuDevice(
            index=info.index,
            name=info.name,
            memory_gib=info.memory_gib,
            uuid=info.uuid,
            pci_bus_id=info.pci_bus_id,
            numa_node=info.numa_node,
            mig_enabled=bool(info.mig and info.mig.enabled),
        )
        for info in inventory.gpus
    ]
    chosen = interconnect or inventory.interconnect
    domains = inventory.nvlink_domains
    if interconnect is not None and interconnect != inventory.interconnect:
        domains = domains_for(interconnect, len(devices))
    return Node(
        name=name,
        address=address,
        docker=docker,
        gpu=gpu,
        gpus=devices,
        interconnect=chosen,
        nvlink_domains=domains,
        network_interface=network_interface or inventory.network_interface,
        rdma_devices=list(rdma_devices)
        if rdma_devices is not None
        else inventory.active_rdma_devices,
        numa_nodes=inventory.numa_nodes,
        nvlink_domain=fabric_domain(inventory),
        gpu_assumptions=list(gpu.notes) if gpu.assumed else [],
    )


def fabric_domain(inventory: NodeInventory) -> str | None:
    """The multi-node NVLink domain NVML's GPU fabric registration names (GB200/GB300 NVL72:
    the fabric manager's cluster UUID and clique), or None. A single-node NVSwitch board
    registers too, with a zero cluster UUID: its NVLink ends at the node."""
    for info in inventory.gpus:
        fabric = getattr(info, "fabric", None)
        if fabric is None or fabric.state != "completed" or not fabric.cluster_uuid:
            continue
        if fabric.cluster_uuid.strip("0-"):
            return f"{fabric.cluster_uuid}/{fabric.clique_id or 0}"
    return None
