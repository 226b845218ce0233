"""Facts derived from per-GPU links: pair levels, NVLink domains, interconnect, bandwidth.

Pure functions over the detected `GpuInfo`s and the PCIe common-ancestor matrix, so they
are the same whether the data came from NVML, a recording or a cluster file.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.hardware.inventory import BandwidthClass, GpuInfo, PairLink

# nvidia-smi's names for nvmlGpuTopologyLevel_t values.
PCIE_LEVEL_NAMES = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
_PCIE_CLASS: dict[str, BandwidthClass] = {
    "PIX": "pcie-switch",
    "PXB": "pcie-switch",
    "PHB": "pcie-host",
    "NODE": "numa-local",
    "SYS": "cross-numa",
}
# Bidirectional GB/s of one NVLink by compute capability major (P100 .. Blackwell). Link
# version enums changed meaning across NVML releases, the architecture did not.
_NVLINK_GBS_BY_ARCH = {6: 40.0, 7: 50.0, 8: 50.0, 9: 50.0, 10: 100.0, 12: 100.0}
# Consumer/workstation Ampere (8.6) bridges: 112.5 GB/s over 4 links.
_NVLINK_GBS_SM86 = 28.125
# Bidirectional GB/s of one PCIe lane by generation.
_PCIE_LANE_GBS = {1: 0.5, 2: 1.0, 3: 1.97, 4: 3.94, 5: 7.88, 6: 15.13}


def nvlink_peers(gpu: GpuInfo) -> dict[int, int]:
    """Peer GPU index -> number of active direct links."""
    peers: dict[int, int] = {}
    for link in gpu.nvlinks:
        if link.active and link.remote_kind == "gpu" and link.peer is not None:
            peers[link.peer] = peers.get(link.peer, 0) + 1
    return peers


def switch_links(gpu: GpuInfo) -> dict[str, int]:
    """NVSwitch PCI bus id -> active links from this GPU to it."""
    switches: dict[str, int] = {}
    for link in gpu.nvlinks:
        if link.active and link.remote_kind == "switch":
            key = link.remote_pci_bus_id or "switch"
            switches[key] = switches.get(key, 0) + 1
    return switches


def _clique(gpu: GpuInfo) -> tuple[str | None, int | None] | None:
    fabric = gpu.fabric
    if fabric is None or fabric.state != "completed" or fabric.status != "SUCCESS":
        return None
    return (fabric.cluster_uuid, fabric.clique_id)


def switch_connected(a: GpuInfo, b: GpuInfo) -> int:
    """NVLinks usable between two GPUs through shared NVSwitches (0 when none)."""
    shared = set(switch_links(a)) & set(switch_links(b))
    if not shared:
        return 0
    # Two NVSwitch islands can share a bus id pattern; the fabric clique tells them apart.
    clique_a, clique_b = _clique(a), _clique(b)
    if clique_a is not None and clique_b is not None and clique_a != clique_b:
        return 0
    return min(sum(switch_links(a).values()), sum(switch_links(b).values()))


def nvlink_domains(gpus: Sequence[GpuInfo]) -> list[list[int]]:
    """Partition GPUs into groups in which every pair has NVLink (directly or via NVSwitch).

    Greedy by index: each group takes the next GPUs linked to all its members, which finds
    the fully connected quads of a hybrid cube mesh and the pairs of bridged PCIe cards.
    """
    by_index = {gpu.index: gpu for gpu in gpus}
    linked: dict[int, set[int]] = {gpu.index: set() for gpu in gpus}
    for gpu in gpus:
        for peer in nvlink_peers(gpu):
            if peer in linked:
                linked[gpu.index].add(peer)
                linked[peer].add(gpu.index)
        for other in gpus:
            if other.index != gpu.index and switch_connected(gpu, other):
                linked[gpu.index].add(other.index)
    domains: list[list[int]] = []
    assigned: set[int] = set()
    for index in sorted(by_index):
        if index in assigned:
            continue
        group = [index]
        for candidate in sorted(by_index):
            if candidate in assigned or candidate in group:
                continue
            if all(candidate in linked[member] for member in group):
                group.append(candidate)
        assigned.update(group)
        domains.append(group)
    return domains


def interconnect_of(gpus: Sequence[GpuInfo], domains: list[list[int]]) -> str:
    """`nvswitch` when one NVLink domain holds every GPU (through switches or a full mesh),
    `nvlink-pairs` when some GPUs share NVLink, `pcie` otherwise (a single GPU is `pcie`)."""
    if len(gpus) > 1 and len(domains) == 1:
        return "nvswitch"
    if any(len(domain) > 1 for domain in domains):
        return "nvlink-pairs"
    return "pcie"


def nvlink_gbs_per_link(gpu: GpuInfo) -> float:
    if gpu.compute_capability == "8.6":
        return _NVLINK_GBS_SM86
    major = int((gpu.compute_capability or "9.0").split(".")[0])
    return _NVLINK_GBS_BY_ARCH.get(major, 50.0)


def pcie_gbs(gpu: GpuInfo) -> float | None:
    if gpu.pcie_generation is None or gpu.pcie_width is None:
        return None
    lane = _PCIE_LANE_GBS.get(gpu.pcie_generation)
    return round(lane * gpu.pcie_width, 1) if lane else None


def pair_link(
    a: GpuInfo, b: GpuInfo, pcie_level: str | None, p2p: dict[str, str] | None = None
) -> PairLink:
    """Describe how GPUs `a` and `b` reach each other, as `nvidia-smi topo -m` would."""
    direct = nvlink_peers(a).get(b.index, 0)
    via_switch = switch_connected(a, b)
    links = direct or via_switch
    bandwidth: BandwidthClass
    if links:
        level = f"NV{links}"
        bandwidth = "nvlink"
        gbs: float | None = round(links * min(nvlink_gbs_per_link(a), nvlink_gbs_per_link(b)), 1)
    else:
        level = pcie_level or "N/A"
        bandwidth = _PCIE_CLASS.get(level, "cross-numa")
        speeds = [speed for speed in (pcie_gbs(a), pcie_gbs(b)) if speed is not None]
        gbs = min(speeds) if speeds else None
    return PairLink(
        a=min(a.index, b.index),
        b=max(a.index, b.index),
        level=level,
        pcie_level=pcie_level,
        nvlinks=links,
        via_switch=bool(via_switch) and not direct,
        bandwidth=bandwidth,
        bandwidth_gbs=gbs,
        p2p=p2p or {},
    )


def numa_node_count(gpus: Sequence[GpuInfo]) -> int:
    """How many CPU NUMA nodes the GPUs hang off (1 when unknown)."""
    return max(1, len({gpu.numa_node for gpu in gpus if gpu.numa_node is not None}))


def _gpu_list(indices: list[int]) -> str:
    return ("GPU " if len(indices) == 1 else "GPUs ") + ", ".join(str(i) for i in indices)


def warnings_for(gpus: Sequence[GpuInfo], pairs: Sequence[PairLink]) -> list[str]:
    """What an operator should know before serving on this node."""
    found: list[str] = []
    mig = [gpu.index for gpu in gpus if gpu.mig and gpu.mig.enabled]
    if mig:
        found.append(
            f"{_gpu_list(mig)}: MIG is enabled, engines see MIG instances, not whole GPUs "
            "(disable with nvidia-smi -i N -mig 0)"
        )
    pending = [gpu.index for gpu in gpus if gpu.mig and gpu.mig.enabled != gpu.mig.pending]
    if pending:
        found.append(f"{_gpu_list(pending)}: a MIG mode change waits for a GPU reset")
    stuck = [
        gpu.index
        for gpu in gpus
        if switch_links(gpu) and gpu.fabric is not None and gpu.fabric.state != "completed"
    ]
    if stuck:
        found.append(
            f"{_gpu_list(stuck)}: NVSwitch fabric registration is not complete; "
            "start nvidia-fabricmanager, CUDA fails until it finishes"
        )
    for gpu in gpus:
        active = sum(1 for link in gpu.nvlinks if link.active)
        if active and active < len(gpu.nvlinks):
            found.append(
                f"GPU {gpu.index}: {len(gpu.nvlinks) - active} of {len(gpu.nvlinks)} NVLinks are down"
            )
    blocked = sorted({p.p2p.get("read", "OK") for p in pairs if p.p2p.get("read", "OK") != "OK"})
    if blocked:
        found.append(
            f"peer-to-peer over PCIe is unavailable between some GPUs ({', '.join(blocked)}); "
            "tensor-parallel traffic goes through host memory"
        )
    return found
