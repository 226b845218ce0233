"""Link figures for communication time: bandwidth per GPU (one direction) and latency.

Intra-node bandwidth comes from the GPU catalog (`nvlink.bandwidth_gbs` is bidirectional, so
one direction is half) or the PCIe generation; the latencies and fabric bandwidths below are
the usual published figures:
- NVLink/NVSwitch small-message all-reduce: about 5 us with vLLM's and SGLang's one-shot custom
  all-reduce (vLLM docs, "custom all-reduce"; NCCL tests on HGX H100 show 5-10 us at 8 GPUs).
- PCIe peer traffic: about 15 us per collective step; x16 Gen4 carries about 25 GB/s and Gen5
  about 50 GB/s in one direction after protocol overhead (PCI-SIG 16/32 GT/s per lane).
- InfiniBand/RoCE NDR: one 400 Gb/s adapter per GPU on HGX nodes, 50 GB/s, about 10 us per step.
- Ethernet without RDMA: TCP sockets, about 3 GB/s per GPU and 50 us per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.schema import GpuSpec

PCIE_GBS = {3: 12.0, 4: 25.0, 5: 50.0, 6: 100.0}
NVLINK_LATENCY_S = 5e-6
PCIE_LATENCY_S = 15e-6
FABRIC = {"infiniband": (50.0, 10e-6), "roce": (50.0, 12e-6), "ethernet": (3.0, 50e-6)}
FABRIC_DEFAULT = (3.0, 50e-6)


@dataclass(frozen=True)
class Link:
    bandwidth_gbs: float  # one direction, per GPU
    latency_s: float

    def seconds(self, nbytes: float, steps: int = 1) -> float:
        return steps * self.latency_s + nbytes / (self.bandwidth_gbs * 1e9)


def intra_node_link(gpu: GpuSpec, interconnect: str, in_domain: bool) -> Link:
    """The link a TP/EP group inside one node uses."""
    if gpu.nvlink is not None and interconnect != "pcie" and in_domain:
        return Link(gpu.nvlink.bandwidth_gbs / 2, NVLINK_LATENCY_S)
    return Link(PCIE_GBS.get(gpu.pcie_generation, 25.0), PCIE_LATENCY_S)


def fabric_link(fabric: str) -> Link:
    """The link between nodes."""
    bandwidth, latency = FABRIC.get(fabric, FABRIC_DEFAULT)
    return Link(bandwidth, latency)


def all_reduce_seconds(link: Link, nbytes: float, ranks: int) -> float:
    """Ring all-reduce: 2(n-1)/n of the buffer over the link; one-shot latency up to 8 ranks."""
    if ranks <= 1:
        return 0.0
    steps = 1 if ranks <= 8 else 2 * (ranks - 1).bit_length()
    return link.seconds(2 * (ranks - 1) / ranks * nbytes, steps)


def all_to_all_seconds(link: Link, nbytes: float, ranks: int) -> float:
    """Dispatch or combine: each rank sends (n-1)/n of its tokens' bytes to the others."""
    if ranks <= 1:
        return 0.0
    return link.seconds((ranks - 1) / ranks * nbytes)
