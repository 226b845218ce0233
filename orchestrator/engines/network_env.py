"""NCCL settings that follow the cluster file's RDMA devices.

`NCCL_IB_HCA` lists the node's `rdma_devices:` with NCCL's `=` prefix (exact names): without
it NCCL's prefix match takes `mlx5_1` to mean mlx5_1, mlx5_10, mlx5_11..., which on nodes
with storage NICs numbered after the GPU-facing ones sends collective traffic over them.

On RoCE the GID index is left to NCCL: since NCCL 2.21 `NCCL_IB_GID_INDEX` defaults to -1,
selecting the RoCE v2 GID that holds an IPv4 address (`NCCL_IB_ROCE_VERSION_NUM=2`,
`NCCL_IB_ADDR_FAMILY=AF_INET`), which the engine images' NCCL does. A fixed index written
here would be a guess (it differs per port and per address); `deploy doctor` checks on each
node that such a GID exists, and that an index you set yourself points at it.
"""

from __future__ import annotations

import re

from orchestrator.plan import NodeSummary

# IPoIB interface names: ib0, ib1 (kernel) and ibp<bus>s<slot>, ibs<slot> (predictable names).
_IPOIB = re.compile(r"^ib(\d+(\.\w+)?|p\d+\S*|s\d+\S*)$")


def socket_environment(node: NodeSummary) -> dict[str, str]:
    """The interfaces NCCL's and Gloo's TCP sockets use, from the cluster file's
    `network_interface`. Gloo (the CPU process groups: vLLM's and SGLang's control traffic)
    stays off IPoIB: vLLM's multi-node and expert-parallel docs have Gloo on the Ethernet
    interface on InfiniBand clusters (`GLOO_SOCKET_IFNAME=eth0`), and left unset Gloo binds the
    interface of the node's host name, its management (Ethernet) network."""
    interface = node.network_interface
    if not interface:
        return {}
    env = {"NCCL_SOCKET_IFNAME": interface}
    if not _IPOIB.match(interface):
        env["GLOO_SOCKET_IFNAME"] = interface
    return env


def rdma_environment(node: NodeSummary, *, rdma: bool) -> dict[str, str]:
    """Variables for a service whose traffic crosses nodes over RDMA."""
    if not rdma or not node.rdma_devices:
        return {}
    return {"NCCL_IB_HCA": "=" + ",".join(node.rdma_devices)}
