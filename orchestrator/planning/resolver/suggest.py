"""When nothing fits: the smallest catalog hardware that would, found with the same rules.

The search walks GPU counts per node (1, 2, 4, 8) and then whole nodes of 8, for the user's
GPU first and then for every catalog GPU of the same vendor, and stops at the first size on
which some valid layout holds the weights and the workload's KV. A cheap lower bound (the
whole model's weights against the hardware's total memory) skips most sizes without a
memory estimate.
"""

from __future__ import annotations

from orchestrator.hardware.model import Cluster, GpuDevice, Node
from orchestrator.planning.resolver.candidates import shape_space
from orchestrator.planning.resolver.context import Shape, Workload
from orchestrator.planning.resolver.rules import validate
from orchestrator.schema import GpuSpec

COUNTS_PER_NODE = (1, 2, 4, 8)
MAX_NODES = 16
GIB = 2**30


def hypothetical_cluster(gpu: GpuSpec, per_node: int, nodes: int) -> Cluster:
    """A shorthand cluster of `nodes` x `per_node` x `gpu` (RDMA between nodes)."""
    if gpu.nvlink is not None and gpu.form_factor in ("sxm", "oam"):
        interconnect, domains = "nvswitch", [list(range(per_node))]
    elif gpu.nvlink is not None and gpu.form_factor == "nvl":
        interconnect = "nvlink-pairs"
        domains = [list(range(i, min(i + 2, per_node))) for i in range(0, per_node, 2)]
    else:
        interconnect, domains = "pcie", [[i] for i in range(per_node)]
    members = [
        Node(
            name=f"node{rank}",
            gpu=gpu,
            gpus=[
                GpuDevice(index=i, name=gpu.name, memory_gib=gpu.memory_gib)
                for i in range(per_node)
            ],
            interconnect=interconnect,  # type: ignore[arg-type]
            nvlink_domains=domains,
        )
        for rank in range(1, nodes + 1)
    ]
    fabric = "infiniband" if nodes > 1 else "none"
    return Cluster(name="suggestion", nodes=members, fabric=fabric, source="shorthand")


def _sizes() -> list[tuple[int, int]]:
    """(GPUs per node, nodes), smallest total first."""
    sizes = [(count, 1) for count in COUNTS_PER_NODE]
    sizes += [(COUNTS_PER_NODE[-1], nodes) for nodes in range(2, MAX_NODES + 1)]
    return sizes


def _fits_on(work: Workload) -> bool:
    # Smaller instances were tried on a smaller size already: only one instance over the
    # whole hardware, so no placement is needed to know its capacity.
    for shape in shape_space(work, exact_gpus=work.usable_gpus):
        if validate(shape, work):
            continue
        memory = work.memory(shape)
        if memory.fits and memory.max_concurrency >= work.needed_concurrency:
            return True
    return False


def smallest_fit(work: Workload, gpu: GpuSpec, weights_gib: float) -> tuple[int, int] | None:
    tray = gpu.nvlink.gpus_per_node if gpu.nvlink is not None else None
    for per_node, nodes in _sizes():
        if per_node * nodes * gpu.memory_gib < weights_gib:
            continue
        if tray is not None and per_node > tray:
            continue  # NVL72 trays hold 4 GPUs; more are more nodes of the rack
        trial = work.with_cluster(hypothetical_cluster(gpu, per_node, nodes), pins={})
        if _fits_on(trial):
            return per_node, nodes
    return None


def describe(gpu: GpuSpec, per_node: int, nodes: int) -> str:
    if nodes == 1:
        return f"{per_node}×{gpu.name}"
    return f"{nodes} nodes of {per_node}×{gpu.name}"


def suggest(work: Workload) -> str | None:
    """A one-line hint naming the smallest hardware that fits, or None when none in range does."""
    from orchestrator.hardware.gpus import load_gpus

    weights_gib = work.memory(Shape()).weights_gib_per_gpu
    current = work.gpu
    own = smallest_fit(work, current, weights_gib)
    best: tuple[int, float, str] | None = None
    for gpu in sorted(load_gpus().values(), key=lambda g: (g.memory_gib, g.name)):
        if gpu.vendor != current.vendor:
            continue
        found = own if gpu == current else smallest_fit(work, gpu, weights_gib)
        if found is None:
            continue
        key = (found[0] * found[1], gpu.memory_gib, describe(gpu, *found))
        if best is None or key < best:
            best = key
    if own is None and best is None:
        return None
    parts = []
    if own is not None:
        parts.append(describe(current, *own))
    if best is not None and (own is None or best[2] != parts[0]):
        parts.append(best[2])
    pinned = " (pins ignored)" if work.pins else ""
    return "fits on " + " or ".join(parts) + pinned
