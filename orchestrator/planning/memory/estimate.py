"""Bytes per GPU: KV cache per token, engine overheads, the KV budget and its capacity.

Weights come from `weights.weight_bytes_per_gpu`, SGLang's reserve from `sglang_defaults`.

Pure arithmetic on a `ModelProfile`, a `GpuSpec` and a `Parallelism`, so the resolver can call
`estimate` hundreds of times while it sweeps candidates. The rules follow how the engines size
memory (vLLM `gpu_worker.determine_available_memory`, SGLang `profile_max_num_token`):

* vLLM:   KV = total * gpu_memory_utilization - weights - activation peak - non-torch
            - CUDA-graph estimate (subtracted since vLLM 0.21)
* SGLang: KV = free_before_load * mem_fraction_static - weights

Every size is per GPU (rank) unless a name says otherwise. GiB = 2**30 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.engines.versions import default_version
from orchestrator.errors import InputError
from orchestrator.plan import MemoryEstimate, Parallelism
from orchestrator.planning.memory import cache_kinds, sglang_defaults
from orchestrator.planning.memory.weights import (
    BF16_BYTES,
    attention_tp,
    moe_shards,
    weight_bytes_per_gpu,
)
from orchestrator.schema import GpuSpec, ModelProfile
from orchestrator.versioning import version_key

GIB = 2**30
MIB = 2**20

KV_DTYPE_BYTES = {"auto": 2, "bf16": 2, "bfloat16": 2, "fp16": 2, "float16": 2}
KV_DTYPE_BYTES.update({"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1})

# vLLM runtime overheads measured on H100 (v0.11, llm-d report): allocations outside torch
# (CUDA context growth, NCCL, custom all-reduce buffers) grow once ranks talk to each other.
VLLM_NON_TORCH_SINGLE = 0.13 * GIB
VLLM_NON_TORCH_MULTI = 0.55 * GIB
# The profiling forward pass computes fp32 logits for every token of the batch; the rest of the
# activation peak (hidden states, attention workspace) was ~0.9 GiB at 8192 tokens on dense
# models from 0.6B to 70B, so it is scaled with the batch and not with model size.
VLLM_ACTIVATION_BASE_AT_8K = 0.9 * GIB
LOGIT_BYTES = 4
# CUDA-graph pools profiled and subtracted since vLLM 0.21; MoE graphs hold larger workspaces.
VLLM_CUDAGRAPH_DENSE = 0.5 * GIB
VLLM_CUDAGRAPH_MOE = 1.0 * GIB
VLLM_CUDAGRAPH_SINCE = (0, 21)
VLLM_DEFAULT_UTILIZATION = 0.9
# Memory in use before the engine loads anything (CUDA context of the process).
CUDA_CONTEXT = 0.6 * GIB
# SGLang keeps a hybrid model's sliding-window pool at this fraction of the full pool.
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8


# ---------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------


def kv_dtype_bytes(kv_cache_dtype: str) -> int:
    try:
        return KV_DTYPE_BYTES[kv_cache_dtype.lower()]
    except KeyError:
        known = "auto, fp8, fp8_e4m3, fp8_e5m2"
        raise InputError(
            f"unknown KV cache dtype {kv_cache_dtype!r}", f"use one of: {known}"
        ) from None


def _kv_bytes_per_layer_token(
    model: ModelProfile, par: Parallelism, dtype_bytes: int, kind: str = "full"
) -> int:
    if model.attention == "mla":
        # One latent per token, identical on every TP rank (vLLM max_tp_shards=1).
        assert model.kv_lora_rank is not None and model.qk_rope_head_dim is not None
        latent = (model.kv_lora_rank + model.qk_rope_head_dim) * dtype_bytes
        if model.indexer is not None:
            # DeepSeek sparse attention: the indexer's FP8 key plus an fp32 scale per 128.
            latent += model.indexer.head_dim + model.indexer.head_dim // 128 * 4
        return latent
    # Per-layer heads: Gemma 4 global layers, MiMo-V2 sliding layers have their own.
    shape = model.full_attention_heads if kind == "full" else None
    if kind == "local" and model.local_attention is not None:
        shape = model.local_attention.heads
    if shape is not None:
        heads = max(1, shape.num_kv_heads // attention_tp(par))
        return heads * (shape.head_dim + shape.v_head_dim) * dtype_bytes
    heads = max(1, model.num_kv_heads // attention_tp(par))
    v_dim = model.v_head_dim or model.head_dim
    return heads * (model.head_dim + v_dim) * dtype_bytes


def _stage_layers(model: ModelProfile, par: Parallelism) -> tuple[int, int]:
    """(full-attention layers, local-attention layers) on the most loaded PP stage."""
    local = model.local_attention.layers if model.local_attention else 0
    linear = model.linear_attention.layers if model.linear_attention else 0
    full = max(0, model.num_layers - local - linear - cache_kinds.other_cache_layers(model))
    return math.ceil(full / par.pp), math.ceil(local / par.pp)


def kv_bytes_per_token_per_gpu(
    model: ModelProfile, par: Parallelism, kv_cache_dtype: str = "auto"
) -> int:
    """KV bytes one token costs on one GPU in the layers that grow with context.

    Local (sliding/chunked) layers cost a bounded window per request instead; see
    `local_kv_bytes_per_request_per_gpu`.
    """
    dtype_bytes = kv_dtype_bytes(kv_cache_dtype)
    stated = cache_kinds.override_bytes_per_token(model, par, attention_tp(par))
    if stated is not None:
        return stated  # the user's figure for a cache deploy cannot size
    full_layers, _ = _stage_layers(model, par)
    full = full_layers * _kv_bytes_per_layer_token(model, par, dtype_bytes)
    return full + cache_kinds.per_token_bytes(model, par)


def local_kv_tokens_per_request(
    model: ModelProfile, context: int, max_num_batched_tokens: int, engine: str = "vllm"
) -> int:
    """Tokens a request keeps in each local-attention layer (vLLM hybrid KV manager rule)."""
    local = model.local_attention
    if local is None:
        return 0
    if local.kind == "sliding":
        return min(local.window - 1 + max_num_batched_tokens, context)
    return min(local.window + max_num_batched_tokens, context)


def local_kv_bytes_per_token_layers(
    model: ModelProfile, par: Parallelism, kv_cache_dtype: str = "auto"
) -> int:
    """Bytes one token costs across the local layers of one GPU (0 without local attention)."""
    _, local_layers = _stage_layers(model, par)
    dtype_bytes = kv_dtype_bytes(kv_cache_dtype)
    return local_layers * _kv_bytes_per_layer_token(model, par, dtype_bytes, "local")


def linear_state_bytes_per_request_per_gpu(
    model: ModelProfile, par: Parallelism, engine: str = "vllm"
) -> int:
    """Fixed state a request keeps in the linear-attention layers of one GPU (0 without them).

    Gated DeltaNet keeps a convolution window ((kernel - 1) x conv channels, BF16) and a
    recurrent state (value heads x key dim x value dim) per layer, split over TP by heads;
    vLLM stores the recurrent state in the model dtype, SGLang in fp32.
    """
    tp = attention_tp(par)
    other = cache_kinds.state_bytes_per_request(model, par, tp)
    linear = model.linear_attention
    if linear is None:
        return other
    key_dim = linear.num_key_heads * linear.key_head_dim
    value_dim = linear.num_value_heads * linear.value_head_dim
    conv = (linear.conv_kernel - 1) * (2 * key_dim + value_dim) * 2
    state_bytes = linear.state_dtype_bytes or (4 if engine == "sglang" else 2)
    state = linear.num_value_heads * linear.key_head_dim * linear.value_head_dim * state_bytes
    layers = math.ceil(linear.layers / par.pp)
    return layers * (conv + state) // tp + other


# ---------------------------------------------------------------------------------------------
# Engine budgets and overheads
# ---------------------------------------------------------------------------------------------


def vllm_large_defaults(gpu: GpuSpec) -> bool:
    """Whether vLLM's V1 scheduler takes its larger API-server defaults on this GPU.

    `engine/arg_utils.py`: 8192 batched tokens and 1024 sequences on GPUs with at least 70 GiB
    whose name does not contain "a100", else 2048 and 256 (the memory rule since vLLM PR 17073,
    0.8.5; A100s kept on the smaller budget since PR 17885, 0.9, which measured +36 % token
    throughput for Llama-70B TP2 with it).
    """
    return gpu.memory_gib >= 70 and "a100" not in gpu.name.lower()


def default_max_num_batched_tokens(
    engine: str, gpu: GpuSpec, engine_version: str | None = None
) -> int:
    """vLLM's API-server default (`vllm_large_defaults`); SGLang's chunked prefill size."""
    if engine == "sglang":
        return sglang_defaults.chunked_prefill_size(
            gpu.memory_gib, engine_version or default_version("sglang")
        )
    return 8192 if vllm_large_defaults(gpu) else 2048


def default_memory_fraction(
    engine: str,
    gpu: GpuSpec,
    par: Parallelism,
    engine_version: str | None = None,
    *,
    mla: bool = False,
    phase: str = "both",
    chunked_prefill: int | None = None,
    cuda_graph_max_bs: int | None = None,
    draft_tokens: int = 0,
    deepep: bool = False,
    cuda_graphs: bool = True,
    engine_rule: bool = False,
) -> float:
    """vLLM gpu_memory_utilization (0.9) or SGLang's mem_fraction_static default rule.

    SGLang 0.5.x reserves for activations and CUDA graphs by GPU memory, layout and role
    (`planning.memory.sglang_defaults`); 0.4.x used fixed fractions. The fraction deploy renders
    leaves out SGLang's attention-DP reserve, which wide deployments override (see there);
    `engine_rule=True` is exactly what SGLang picks when it is given no fraction.
    """
    if engine == "vllm":
        return VLLM_DEFAULT_UTILIZATION
    version = engine_version or default_version("sglang")
    if version_key(version) < (0, 5):
        if gpu.memory_gib > 80:
            return (gpu.memory_gib - 13) / gpu.memory_gib
        table = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))
        return next(fraction for size, fraction in table if par.tp >= size)
    reserved = sglang_defaults.reserved_mib(
        gpu.memory_gib,
        tp=par.tp,
        pp=par.pp,
        attn_dp=par.attn_dp,
        version=version,
        mla=mla,
        phase=phase,
        chunk=chunked_prefill,
        graph_cap=cuda_graph_max_bs,
        draft_tokens=draft_tokens,
        deepep=deepep,
        cuda_graphs=cuda_graphs,
        deploy_reserve=not engine_rule,
        amd=gpu.vendor == "amd",
    )
    return sglang_defaults.mem_fraction_static(gpu.memory_gib, reserved)


@lru_cache(maxsize=64)
def _uses_cudagraph_estimate(engine_version: str | None) -> bool:
    version = version_key(engine_version or default_version("vllm"))
    return version >= VLLM_CUDAGRAPH_SINCE


@dataclass(frozen=True)
class Overhead:
    activation: float
    non_torch: float
    cudagraph: float

    @property
    def total(self) -> float:
        return self.activation + self.non_torch + self.cudagraph


def vllm_overhead(
    model: ModelProfile,
    gpu: GpuSpec,
    par: Parallelism,
    *,
    engine_version: str | None = None,
    max_num_batched_tokens: int | None = None,
    enforce_eager: bool = False,
) -> Overhead:
    tokens = max_num_batched_tokens or default_max_num_batched_tokens("vllm", gpu)
    # Logits are gathered over the whole vocabulary on every TP rank.
    activation = float(tokens * model.vocab_size * LOGIT_BYTES)
    activation += VLLM_ACTIVATION_BASE_AT_8K * tokens / 8192
    if model.moe is not None:
        # Fused-MoE intermediate cache: tokens x top-k x (gate+up) of this rank's expert slice.
        shards = max(1, moe_shards(par, "vllm") // max(1, par.ep))
        width = 2 * model.moe.moe_intermediate_size // shards
        activation += tokens * model.moe.experts_per_token * width * BF16_BYTES
    non_torch = VLLM_NON_TORCH_MULTI if par.tp * par.pp > 1 else VLLM_NON_TORCH_SINGLE
    cudagraph = 0.0
    # --enforce-eager captures no CUDA graphs.
    if _uses_cudagraph_estimate(engine_version) and not enforce_eager:
        cudagraph = VLLM_CUDAGRAPH_MOE if model.moe is not None else VLLM_CUDAGRAPH_DENSE
    return Overhead(activation, non_torch, cudagraph)


def overhead_bytes_per_gpu(
    model: ModelProfile,
    gpu: GpuSpec,
    engine: str,
    par: Parallelism,
    *,
    memory_fraction: float | None = None,
    engine_version: str | None = None,
    max_num_batched_tokens: int | None = None,
    enforce_eager: bool = False,
) -> float:
    """Memory per GPU that is neither weights nor KV cache.

    vLLM: activation peak + non-torch + CUDA graphs. SGLang: what mem_fraction_static leaves
    out of the pre-load free memory, plus what was in use before loading.
    """
    if engine == "vllm":
        return vllm_overhead(
            model,
            gpu,
            par,
            engine_version=engine_version,
            max_num_batched_tokens=max_num_batched_tokens,
            enforce_eager=enforce_eager,
        ).total
    fraction = memory_fraction or default_memory_fraction(engine, gpu, par, engine_version)
    total = gpu.memory_gib * GIB
    free_before = _sglang_free_before_load(gpu, par)
    return total - free_before * fraction


def _sglang_free_before_load(gpu: GpuSpec, par: Parallelism) -> float:
    non_torch = VLLM_NON_TORCH_MULTI if par.tp * par.pp > 1 else VLLM_NON_TORCH_SINGLE
    return gpu.memory_gib * GIB - CUDA_CONTEXT - non_torch


def kv_budget_bytes_per_gpu(
    model: ModelProfile,
    gpu: GpuSpec,
    engine: str,
    par: Parallelism,
    weights: float,
    *,
    memory_fraction: float,
    engine_version: str | None = None,
    max_num_batched_tokens: int | None = None,
    enforce_eager: bool = False,
) -> tuple[float, float]:
    """(KV bytes available per GPU, overhead bytes per GPU)."""
    total = gpu.memory_gib * GIB
    overhead = overhead_bytes_per_gpu(
        model,
        gpu,
        engine,
        par,
        memory_fraction=memory_fraction,
        engine_version=engine_version,
        max_num_batched_tokens=max_num_batched_tokens,
        enforce_eager=enforce_eager,
    )
    if engine == "vllm":
        return total * memory_fraction - weights - overhead, overhead
    return _sglang_free_before_load(gpu, par) * memory_fraction - weights, overhead


# ---------------------------------------------------------------------------------------------
# The estimate
# ---------------------------------------------------------------------------------------------


def _default_block_size(model: ModelProfile, engine: str) -> int:
    if engine == "sglang":
        return 1
    # FlashMLA-style backends use 64-token pages; standard attention uses 16 on CUDA.
    return 64 if model.attention == "mla" else 16


@dataclass(frozen=True)
class KvCapacity:
    """What one KV pool (one GPU's share of a TP/PP group) holds."""

    bytes_per_token: int  # full-attention layers, per GPU
    bytes_per_request: float  # one `context`-token request, per GPU, block-rounded
    tokens_per_pool: int
    requests_per_pool: float


def kv_capacity(
    model: ModelProfile,
    par: Parallelism,
    engine: str,
    available_bytes: float,
    *,
    context: int,
    kv_cache_dtype: str = "auto",
    block_size: int | None = None,
    max_num_batched_tokens: int = 8192,
) -> KvCapacity:
    """Tokens and `context`-token requests that `available_bytes` of KV memory per GPU holds.

    Every TP/PP rank stores its share of every token, so one GPU's count is the whole pool's.
    """
    full = kv_bytes_per_token_per_gpu(model, par, kv_cache_dtype)
    local = local_kv_bytes_per_token_layers(model, par, kv_cache_dtype)
    block = block_size or _default_block_size(model, engine)
    state = linear_state_bytes_per_request_per_gpu(model, par, engine)
    if state:
        # Hybrid linear attention: KV on the full-attention layers plus one state per request.
        per_request = full * context + local * min(context, max_num_batched_tokens) + state
        requests = max(0.0, available_bytes / per_request)
        return KvCapacity(full, per_request, int(requests * context), requests)
    if engine == "sglang":
        # SGLang sizes the sliding-window pool as a fixed ratio of the full pool.
        cell = full + local * SGLANG_SWA_FULL_TOKENS_RATIO
        tokens = max(0, math.floor(available_bytes / cell))
        return KvCapacity(full, cell * context, tokens, tokens / context)
    blocks_per_request = math.ceil(context / block)
    if not local:
        per_block = block * full
        num_blocks = max(0, math.floor(available_bytes / per_block))
        return KvCapacity(
            full,
            blocks_per_request * per_block,
            num_blocks * block,
            num_blocks / blocks_per_request,
        )
    # Hybrid models: vLLM reports tokens as concurrency x max_model_len.
    local_tokens = local_kv_tokens_per_request(model, context, max_num_batched_tokens, engine)
    local_blocks = math.ceil(local_tokens / block) + 1
    per_request = blocks_per_request * block * full + local_blocks * block * local
    requests = max(0.0, available_bytes / per_request)
    return KvCapacity(full, per_request, int(requests * context), requests)


def instance_dp_factor(par: Parallelism) -> int:
    """KV pools per engine instance: DP replicas and attention-DP ranks each hold their own."""
    return max(par.dp, par.attn_dp)


def estimate(
    model: ModelProfile,
    gpu: GpuSpec,
    engine: str,
    par: Parallelism,
    *,
    context: int,
    kv_cache_dtype: str = "auto",
    quantization: str | None = None,
    memory_fraction: float | None = None,
    engine_version: str | None = None,
    concurrency: int | None = None,
    block_size: int | None = None,
    max_num_batched_tokens: int | None = None,
    enforce_eager: bool = False,
    redundant_experts: int = 0,
    phase: str = "both",
    cuda_graph_max_bs: int | None = None,
    draft_tokens: int = 0,
    deepep: bool = False,
) -> MemoryEstimate:
    """Memory of one engine instance, per GPU, and how many `context`-token requests it holds.

    `fits` means the weights and overheads fit and at least one full-context request (or
    `concurrency` requests, spread over the instance's DP ranks) fits in the KV budget.
    `phase` ("prefill", "decode": a disaggregated worker), `cuda_graph_max_bs`, `draft_tokens`
    and `deepep` (experts across nodes over DeepEP) shape SGLang's default reserve.
    """
    if engine not in ("vllm", "sglang"):
        raise InputError(f"unknown engine {engine!r}", "use vllm or sglang")
    cache_kinds.check_sized(model)
    if context < 1:
        raise InputError(f"context must be at least 1 token, got {context}")
    fraction = memory_fraction or default_memory_fraction(
        engine,
        gpu,
        par,
        engine_version,
        mla=model.attention == "mla",
        phase=phase,
        chunked_prefill=max_num_batched_tokens,
        cuda_graph_max_bs=cuda_graph_max_bs,
        draft_tokens=draft_tokens,
        deepep=deepep,
        cuda_graphs=not enforce_eager,
    )
    if not 0 < fraction <= 1:
        raise InputError(
            f"memory fraction {fraction} is out of range", "use a value in (0, 1], e.g. 0.9"
        )
    batch = max_num_batched_tokens or default_max_num_batched_tokens(engine, gpu, engine_version)
    weights = weight_bytes_per_gpu(
        model,
        par,
        quantization=quantization,
        engine=engine,
        gpu=gpu,
        redundant_experts=redundant_experts,
    )
    available, overhead = kv_budget_bytes_per_gpu(
        model,
        gpu,
        engine,
        par,
        weights,
        memory_fraction=fraction,
        engine_version=engine_version,
        max_num_batched_tokens=batch,
        enforce_eager=enforce_eager,
    )
    block = block_size or _default_block_size(model, engine)
    capacity = kv_capacity(
        model,
        par,
        engine,
        available,
        context=context,
        kv_cache_dtype=kv_cache_dtype,
        block_size=block,
        max_num_batched_tokens=batch,
    )
    full, per_request = capacity.bytes_per_token, capacity.bytes_per_request
    tokens_per_gpu, concurrency_per_gpu = capacity.tokens_per_pool, capacity.requests_per_pool
    pools = instance_dp_factor(par)
    wanted = max(1, math.ceil((concurrency or 1) / pools))
    margin = available - wanted * per_request
    return MemoryEstimate(
        weights_gib_per_gpu=round(weights / GIB, 3),
        kv_bytes_per_token_per_gpu=full,
        kv_cache_gib_per_gpu=round(available / GIB, 3),
        kv_cache_tokens=tokens_per_gpu * pools,
        max_concurrency=round(concurrency_per_gpu * pools, 2),
        overhead_gib_per_gpu=round(overhead / GIB, 3),
        gpu_memory_gib=gpu.memory_gib,
        memory_fraction=round(fraction, 4),
        context=context,
        kv_gib_per_request=round(per_request / GIB, 4),
        fits=margin >= 0,
        margin_gib_per_gpu=round(margin / GIB, 3),
    )
