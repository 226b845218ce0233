"""Bytes on a CPU node: weights and KV space in host memory, as vLLM's CPU build sizes them.

vLLM's CPU worker (vllm/v1/worker/cpu_worker.py, vllm/platforms/cpu.py, 0.32.0) takes the KV
space of every rank from `VLLM_CPU_KVCACHE_SPACE` (whole GiB; unset, it reserves
`--gpu-memory-utilization` = 0.92 of the NUMA node's memory and fails when that much is not
free). The engine core then turns each rank's space into blocks of 128 tokens (16 for MLA) and
keeps the smallest count over the ranks (vllm/v1/core/kv_cache_utils.py):

    blocks = space_bytes // (block_size x KV bytes per token on the most loaded rank)
    logged tokens = int(blocks / ceil(max_model_len / block_size) * max_model_len)

which is what the engine logs as "CPU KV cache size: N tokens". Weights live in the same host
memory as the KV space, so a node holds, for every rank on it, its weight shard, its KV space
and its process' own memory, plus an API server and an engine core per engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.errors import PlanError
from orchestrator.plan import MemoryEstimate, Parallelism
from orchestrator.planning.memory.estimate import kv_bytes_per_token_per_gpu
from orchestrator.planning.memory.weights import weight_bytes_per_gpu
from orchestrator.schema import ModelProfile

GIB = 2**30
# vllm/platforms/cpu.py check_and_update_config: 128 unless the user sets it; CPU MLA: 16.
BLOCK_SIZE, MLA_BLOCK_SIZE = 128, 16
# Resident memory besides weights and KV space, per process of a vLLM CPU engine. Source:
# `docker stats` of `vllm serve` with a 4 MB model and 1 GiB of KV space in
# deploy-vllm-cpu:0.32.0 on a 2-core AVX-512 host: TP1 2.40 GiB, TP2 3.93, PP2 3.89, DP2 5.36
# (one API server and engine core per DP engine; one worker per rank).
API_SERVER_GIB = 0.6
ENGINE_CORE_GIB = 0.4
WORKER_GIB = 1.5
# Share of host memory a plan may fill: the OS, Docker and page cache keep the rest.
DEFAULT_MEMORY_FRACTION = 0.9
# The KV space deploy asks for when the user gives no concurrency: this many full-context
# requests per engine (vLLM CPU serves small batches; a larger cache only costs memory).
DEFAULT_KV_REQUESTS = 16
MAX_KV_SPACE_GIB = 4096


def block_size_for(model: ModelProfile) -> int:
    return MLA_BLOCK_SIZE if model.attention == "mla" else BLOCK_SIZE


def logged_kv_tokens(space_gib: int, bytes_per_token: int, block: int, context: int) -> int:
    """What a vLLM CPU engine logs as its KV cache size, in tokens, for `space_gib` per rank."""
    if bytes_per_token <= 0:
        return 0
    blocks = space_gib * GIB // (block * bytes_per_token)
    return int(blocks / math.ceil(context / block) * context)


@dataclass(frozen=True)
class NodeLoad:
    """One node's share of an engine instance: its ranks and the engines whose front ends run
    there (an API server and engine core per DP engine whose rank 0 is on the node)."""

    ranks: int
    engines: int
    memory_gib: float


@dataclass(frozen=True)
class CpuMemory:
    estimate: MemoryEstimate
    kvcache_space_gib: int
    tokens_per_engine: int
    block_size: int


def runtime_gib(load: NodeLoad) -> float:
    return load.ranks * WORKER_GIB + load.engines * (API_SERVER_GIB + ENGINE_CORE_GIB)


def size(
    model: ModelProfile,
    par: Parallelism,
    loads: list[NodeLoad],
    *,
    context: int,
    quantization: str | None,
    kv_cache_dtype: str,
    memory_fraction: float | None,
    concurrency: int | None,
) -> CpuMemory:
    """Weights, KV space and capacity of one instance spread as `loads` over its nodes.

    The KV space is the same on every rank (one `VLLM_CPU_KVCACHE_SPACE` per container would
    do, and vLLM keeps the smallest pool anyway): enough for the requested concurrency (or
    `DEFAULT_KV_REQUESTS`) at full context, at most what the tightest node has room for."""
    fraction = memory_fraction or DEFAULT_MEMORY_FRACTION
    weights = weight_bytes_per_gpu(model, par, quantization=quantization, engine="vllm")
    per_token = kv_bytes_per_token_per_gpu(model, par, kv_cache_dtype)
    block = block_size_for(model)
    blocks_per_request = math.ceil(context / block)
    request_bytes = blocks_per_request * block * per_token
    # Room per rank on each node after weights and runtime; the tightest node decides.
    rooms = [
        (load.memory_gib * fraction * GIB - load.ranks * weights - runtime_gib(load) * GIB)
        / load.ranks
        for load in loads
    ]
    room = min(rooms)
    engines_per_instance = max(1, par.dp)
    wanted_requests = max(1, math.ceil((concurrency or DEFAULT_KV_REQUESTS) / engines_per_instance))
    wanted_gib = max(1, math.ceil(wanted_requests * request_bytes / GIB))
    space = int(min(wanted_gib, max(1, math.floor(room / GIB)), MAX_KV_SPACE_GIB))
    tokens = logged_kv_tokens(space, per_token, block, context)
    held = tokens / context if context else 0.0
    needed = max(1, math.ceil((concurrency or 1) / engines_per_instance))
    margin = room - max(space * GIB, needed * request_bytes)
    fits = room >= GIB and tokens >= needed * context
    tight = min(loads, key=lambda load: rooms[loads.index(load)])
    estimate = MemoryEstimate(
        weights_gib_per_gpu=round(weights / GIB, 3),
        kv_bytes_per_token_per_gpu=per_token,
        kv_cache_gib_per_gpu=float(space),
        kv_cache_tokens=tokens * engines_per_instance,
        max_concurrency=round(held * engines_per_instance, 2),
        overhead_gib_per_gpu=round(runtime_gib(tight) / tight.ranks, 3),
        gpu_memory_gib=round(tight.memory_gib / tight.ranks, 3),
        memory_fraction=fraction,
        context=context,
        kv_gib_per_request=round(request_bytes / GIB, 4),
        fits=fits,
        margin_gib_per_gpu=round(margin / GIB, 3),
    )
    return CpuMemory(estimate, space, tokens, block)


def check_fits(model: ModelProfile, memory: CpuMemory, node_memory_gib: float) -> None:
    """A one-line error when not even the weights and one GiB of KV fit a node."""
    estimate = memory.estimate
    if estimate.fits:
        return
    raise PlanError(
        f"{model.name} does not fit the host memory: each rank needs "
        f"{estimate.weights_gib_per_gpu:.2f} GiB of weights, {estimate.overhead_gib_per_gpu:.2f}"
        f" GiB of runtime and KV space for {estimate.context} tokens, short by "
        f"{-estimate.margin_gib_per_gpu:.2f} GiB (node memory {node_memory_gib:g} GiB)",
        "add nodes (--nodes, pipeline stages across them), lower --context, or quantize",
    )
