"""Limits inside the engine's container: `/dev/shm` (NCCL's intra-node transport and
vLLM's worker queues live there) and the locked-memory limit RDMA registration needs."""

from __future__ import annotations

from orchestrator.doctor.context import NodeContext
from orchestrator.doctor.report import Check, failed, passed, skipped, warned

# NCCL allocates shared-memory segments per peer pair; Docker's default 64 MB is the classic
# cause of "unhandled system error" and bus errors with more than one GPU.
MIN_SHM_BYTES = 1024**3


def _size(value: int) -> str:
    if value >= 1024**3:
        return f"{value / 1024**3:.1f} GiB"
    return f"{value / 1024**2:.0f} MiB"


def container_checks(context: NodeContext) -> list[Check]:
    node = context.node
    if context.probe is None:
        return [skipped(node, name, "the probe did not run") for name in ("shm", "memlock")]
    return [_shm(context), _memlock(context)]


def _shm(context: NodeContext) -> Check:
    node = context.node
    size = context.probe.get("shm_bytes") if context.probe else None
    if size is None:
        return warned(node, "shm", "/dev/shm not found in the container", "")
    spec = context.target.spec
    detail = f"/dev/shm {_size(size)}"
    if size >= MIN_SHM_BYTES:
        return passed(node, "shm", detail)
    if spec is not None and spec.ipc_mode == "host":
        fix = (
            f"the container shares node {node}'s /dev/shm (ipc: host): enlarge it there"
            " (mount -o remount,size=16G /dev/shm, and in /etc/fstab)"
        )
    else:
        fix = "give the container --shm-size 16g (compose: shm_size) or ipc: host"
    several = len(context.target.gpus) > 1 or context.multi_node
    if several:
        return failed(node, "shm", f"{detail}: NCCL across GPUs needs at least 1 GiB", fix)
    return warned(node, "shm", f"{detail}: small for the engine's worker queues", fix)


def _memlock(context: NodeContext) -> Check:
    node = context.node
    limit = context.probe.get("memlock_bytes") if context.probe else None
    if limit is None:
        return warned(node, "memlock", "the locked-memory limit is unknown", "")
    detail = "memlock unlimited" if limit == -1 else f"memlock {_size(limit)}"
    if limit == -1 or not context.uses_rdma:
        return passed(node, "memlock", detail)
    return failed(
        node,
        "memlock",
        f"{detail}: RDMA registers GPU and host buffers as locked memory",
        "start the container with --ulimit memlock=-1 (compose: ulimits: memlock: -1) and"
        " check dockerd's default-ulimits and the node's /etc/security/limits.conf",
    )
