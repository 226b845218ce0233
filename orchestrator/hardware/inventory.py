"""The node inventory document: what `deploy detect --json` writes and cluster files embed.

It is versioned (`schema_version`, `kind: node-inventory`) so a cluster file written by one
version of `deploy` is either read faithfully or refused with a clear message. Queries a GPU
does not support are facts too: they land in `unsupported` (query name -> NVML error name)
instead of failing detection.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.base import Strict
from orchestrator.hardware.formats import INVENTORY_KIND
from orchestrator.hardware.formats import SCHEMA_VERSION as SCHEMA_VERSION

KIND = INVENTORY_KIND

# Pairwise link classes, fastest first. `nvlink` covers direct links and NVSwitch paths.
BandwidthClass = Literal["self", "nvlink", "pcie-switch", "pcie-host", "numa-local", "cross-numa"]
RemoteKind = Literal["gpu", "switch", "npu", "unknown"]


class NvLinkInfo(Strict):
    """One NVLink of a GPU."""

    link: int = Field(ge=0)
    active: bool
    version: int | None = None
    remote_kind: RemoteKind | None = None
    remote_pci_bus_id: str | None = None
    # Index of the GPU at the other end, when it is a GPU of this node.
    peer: int | None = None


class MigDevice(Strict):
    uuid: str | None = None
    memory_bytes: int | None = None


class MigInfo(Strict):
    enabled: bool
    pending: bool = Field(description="the mode after the next GPU reset")
    devices: list[MigDevice] = []


class FabricInfo(Strict):
    """GPU fabric registration (multi-node NVLink: GB200 NVL72, GH200 NVL32)."""

    state: Literal["not-supported", "not-started", "in-progress", "completed"]
    status: str = Field(description="NVML return name of the registration, e.g. SUCCESS")
    cluster_uuid: str | None = None
    clique_id: int | None = None


class GpuInfo(Strict):
    index: int = Field(ge=0)
    name: str
    uuid: str | None = None
    memory_bytes: int = Field(gt=0)
    memory_gib: float = Field(gt=0)
    compute_capability: str | None = None
    pci_bus_id: str | None = None
    pcie_generation: int | None = None
    pcie_width: int | None = None
    numa_node: int | None = Field(default=None, description="CPU NUMA node closest to the GPU")
    # Coherent platforms (Grace Hopper) expose GPU memory as its own NUMA node.
    memory_numa_node: int | None = None
    cpu_affinity: str | None = Field(default=None, description="CPU list, e.g. 0-55,112-167")
    mig: MigInfo | None = None
    nvlinks: list[NvLinkInfo] = []
    fabric: FabricInfo | None = None
    # Catalog name when the GPU is known (e.g. H100-80GB-SXM).
    catalog_name: str | None = None
    # NVML query -> error name (NOT_SUPPORTED, NO_PERMISSION, FUNCTION_NOT_FOUND, ...).
    unsupported: dict[str, str] = {}


class PairLink(Strict):
    """How two GPUs of the node reach each other."""

    a: int
    b: int
    level: str = Field(
        description="as `nvidia-smi topo -m` shows it: NV#, PIX, PXB, PHB, NODE, SYS"
    )
    pcie_level: str | None = Field(
        default=None, description="PCIe common ancestor, ignoring NVLink"
    )
    nvlinks: int = 0
    via_switch: bool = False
    bandwidth: BandwidthClass
    # Rough bidirectional GB/s of the path: NVLink links x per-link rate, or the PCIe link.
    bandwidth_gbs: float | None = None
    # `nvidia-smi topo -p2p` codes per capability: OK, CNS, GNS, TNS, DR, NS, U.
    p2p: dict[str, str] = {}
    # NVML query -> error name, for the pair queries that failed.
    unsupported: dict[str, str] = {}


class RdmaPort(Strict):
    port: int
    state: str
    link_layer: str
    rate_gbps: float | None = None


class RdmaDevice(Strict):
    name: str
    pci_bus_id: str | None = None
    numa_node: int | None = None
    netdevs: list[str] = []
    ports: list[RdmaPort] = []

    @property
    def active(self) -> bool:
        return any(port.state == "ACTIVE" for port in self.ports)

    @property
    def link_layer(self) -> str | None:
        return self.ports[0].link_layer if self.ports else None


class NetInterface(Strict):
    name: str
    operstate: str
    kind: Literal["ethernet", "infiniband", "loopback", "other"]
    virtual: bool = False
    speed_mbps: int | None = None
    mtu: int | None = None
    default_route: bool = False


class NodeInventory(Strict):
    """One machine as `deploy detect --json` sees it."""

    schema_version: int
    kind: Literal["node-inventory"] = "node-inventory"
    hostname: str | None = None
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    nvml_version: str | None = None
    gpus: list[GpuInfo] = Field(min_length=1)
    pairs: list[PairLink] = []
    nvlink_domains: list[list[int]]
    interconnect: Literal["nvswitch", "nvlink-pairs", "pcie"]
    numa_nodes: int = Field(ge=1)
    rdma_devices: list[RdmaDevice] = []
    network_interfaces: list[NetInterface] = []
    # The interface for NCCL/GLOO socket traffic: the default route's, unless none.
    network_interface: str | None = None
    # GPU index -> nearest active RDMA device (same PCIe switch first, then NUMA node).
    gpu_rdma: dict[int, str] = {}
    fabric: Literal["infiniband", "roce", "ethernet", "none"] = "ethernet"
    # Things an operator should fix or know before serving (MIG on, fabric manager down...).
    warnings: list[str] = []

    def pair(self, a: int, b: int) -> PairLink | None:
        low, high = min(a, b), max(a, b)
        for pair in self.pairs:
            if pair.a == low and pair.b == high:
                return pair
        return None

    @property
    def active_rdma_devices(self) -> list[str]:
        return [device.name for device in self.rdma_devices if device.active]
