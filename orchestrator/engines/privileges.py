"""The container privileges an engine's cross-node traffic needs, and no more.

- NCCL, Mooncake and NIXL/UCX over InfiniBand or RoCE register (pin) memory with the NIC: they
  need the RDMA devices (`/dev/infiniband`), IPC_LOCK and an unlimited memlock limit
  (`common.RDMA_DEVICES`, `RDMA_ULIMITS`), not a privileged container.
- DeepEP's internode kernels run on NVSHMEM over IBGDA: the GPU itself rings the NIC's doorbell
  and polls its completion queues, which needs the NIC's queue and doorbell pages mapped for
  GPU access (nvidia-peermem / dma-buf, GDRCopy's `/dev/gdrdrv`). Docker's device cgroup and
  default capability set do not cover those mappings, and SGLang's DeepSeek guide states it
  plainly: "`--network host` and `--privileged` are required by RDMA"
  (sgl-project/sglang benchmark/deepseek_v3/README.md; vLLM's EP examples run the same way).
  So exactly the services that run DeepEP across nodes are privileged; everything else keeps
  the narrow RDMA set.
"""

from __future__ import annotations

from collections.abc import Sequence

# Flags whose value selects DeepEP all-to-all kernels, per engine.
_DEEPEP_FLAGS = {"sglang": "--moe-a2a-backend", "vllm": "--all2all-backend"}


def runs_deepep(engine: str, command: Sequence[str]) -> bool:
    flag = _DEEPEP_FLAGS.get(engine)
    if flag is None:
        return False
    words = list(command)
    for index, word in enumerate(words):
        value = None
        if word == flag and index + 1 < len(words):
            value = words[index + 1]
        elif word.startswith(flag + "="):
            value = word.split("=", 1)[1]
        if value is not None and value.startswith("deepep"):
            return True
    return False
