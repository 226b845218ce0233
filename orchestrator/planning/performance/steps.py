"""Time of one decode step and of one prefill on one engine instance: pure arithmetic.

A decode step reads, on every GPU, its share of the weights (for a MoE only the experts the
batch's tokens are routed to) and the running requests' KV cache, and does 2 FLOPs per active
parameter and token; it takes the longer of the two (roofline), plus a fixed cost per layer
and the step's communication: two TP all-reduces per layer, an EP dispatch and combine per
MoE layer, a hand-off between pipeline stages. With PP the batch runs as `pp` micro-batches,
so each GPU reads its weights `pp` times per round of tokens. A prefill is the same forward
pass over the prompt, dominated by FLOPs (attention over the context included).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from orchestrator.engines.versions import default_version
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.sglang_defaults import decode_graph_cap
from orchestrator.planning.performance.efficiency import Efficiency, engine_features
from orchestrator.planning.performance.links import (
    Link,
    all_reduce_seconds,
    all_to_all_seconds,
    fabric_link,
    intra_node_link,
)
from orchestrator.schema import GpuSpec, ModelProfile

ACTIVATION_BYTES = 2  # BF16 hidden states on the wire
DISPATCH_BYTES = 1.5  # FP8 dispatch (1 byte) and BF16 combine (2 bytes), on average
# Rows of one grouped-GEMM tile: an expert that gets m tokens computes ceil(m / 64) x 64 rows
# (Triton fused_moe BLOCK_SIZE_M and the CUTLASS/DeepGEMM grouped kernels' M tile are 16-128;
# 64 is their common decode choice).
MOE_TILE_ROWS = 64
# EAGLE/MTP: mean accepted draft tokens per verification step at the usual 3-4 draft tokens
# (SGLang and vLLM speculative-decoding docs report acceptance lengths of about 2.5-3.5 on chat
# data, i.e. 1.5-2.5 accepted drafts plus the verified token).
SPEC_ACCEPTED_DRAFTS = 2.0


@dataclass(frozen=True)
class Instance:
    """One engine instance: what the step arithmetic needs to know about it."""

    model: ModelProfile
    gpu: GpuSpec
    engine: str
    par: Parallelism
    weight_bytes_per_gpu: float
    kv_bytes_per_token_per_gpu: float
    nnodes: int = 1
    interconnect: str = "nvswitch"
    fabric: str = "none"
    tp_in_domain: bool = True
    quantization: str | None = None
    # Prefill tokens per engine step (chunked prefill); None: the whole prompt in one step.
    max_num_batched_tokens: int | None = None
    # No CUDA graphs: every kernel is launched from Python each step.
    eager: bool = False
    # The engine's version: which MoE kernels and scheduler it runs (efficiency.ENGINE_FEATURES).
    engine_version: str | None = None
    # Draft tokens per step with speculative decoding (EAGLE, MTP); 0: none.
    speculative_tokens: int = 0
    # Decode steps per streamed chunk (SGLang's --stream-interval): the front end's work per
    # token divides by it.
    stream_interval: int = 1
    # The largest decode batch with a CUDA graph, when the command sets it; None: the engine's
    # default (graph_max_batch).
    cuda_graph_max_bs: int | None = None

    @property
    def gpus(self) -> int:
        return self.par.gpus

    @property
    def kv_pools(self) -> int:
        """Groups with their own requests and KV cache: DP ranks or attention-DP groups."""
        return max(self.par.dp, self.par.attn_dp)

    @property
    def prefill_budget_per_pool(self) -> int | None:
        """Prompt tokens one DP rank or attention-DP group schedules per step. vLLM gives every
        DP rank the whole budget; SGLang divides its chunked-prefill size among the attention-DP
        groups ("DP attention is enabled. chunked prefill size is adjusted", its data-parallelism
        hook from 0.5.1 to 0.5.23)."""
        budget = self.max_num_batched_tokens
        if budget and self.engine == "sglang" and self.par.attn_dp > 1:
            return max(1, budget // self.par.attn_dp)
        return budget

    @property
    def attention_tp(self) -> int:
        par = self.par
        if self.engine == "sglang" and par.attn_dp > 1:
            return max(1, par.tp // par.attn_dp)
        return par.tp


@dataclass(frozen=True)
class StepCost:
    """Seconds of one decode round (every running request gets one token) and its parts."""

    seconds: float
    weights_s: float
    kv_s: float
    compute_s: float
    overhead_s: float
    comm_s: float

    @property
    def bound(self) -> str:
        memory = self.weights_s + self.kv_s
        parts = {
            "memory-bandwidth": memory if memory >= self.compute_s else 0.0,
            "compute": self.compute_s if self.compute_s > memory else 0.0,
            "communication": self.comm_s,
            "launch-overhead": self.overhead_s,
        }
        return max(parts, key=lambda name: parts[name])


def graph_max_batch(inst: Instance) -> int:
    """The largest decode batch (per attention group) the engine runs as a CUDA graph; a larger
    one launches every kernel from Python. SGLang: its release's cap by GPU memory and TP
    (`planning.memory.sglang_defaults`). vLLM V1: capture sizes up to 512 (compilation config
    default)."""
    if inst.cuda_graph_max_bs:
        return inst.cuda_graph_max_bs
    if inst.engine == "sglang":
        version = inst.engine_version or default_version("sglang")
        return decode_graph_cap(inst.gpu.memory_gib, inst.par.tp, version)
    return 512


def tokens_per_step(inst: Instance) -> float:
    """Tokens a request gains per decode step: 1, plus the accepted drafts when speculating."""
    if inst.speculative_tokens <= 0:
        return 1.0
    return 1.0 + min(float(inst.speculative_tokens), SPEC_ACCEPTED_DRAFTS)


def peak_flops(gpu: GpuSpec, model: ModelProfile, quantization: str | None) -> float:
    """Dense FLOP/s the GEMMs run at: FP8 tensor cores for FP8 weights, BF16 otherwise."""
    fmt = (quantization or model.checkpoint.format).lower()
    if fmt == "fp8" and gpu.supports_fp8 and gpu.fp8_tflops:
        return gpu.fp8_tflops * 1e12
    return gpu.bf16_tflops * 1e12


@lru_cache(maxsize=256)
def _expert_bytes_total(model: ModelProfile, quantization: str | None) -> float:
    """Bytes of all routed experts: the difference EP makes to one GPU's weights."""
    from orchestrator.planning.memory.weights import weight_bytes_per_gpu

    if model.moe is None or model.moe.num_experts < 2:
        return 0.0
    experts = model.moe.num_experts
    whole = weight_bytes_per_gpu(model, Parallelism(), quantization=quantization, engine="sglang")
    spread = weight_bytes_per_gpu(
        model, Parallelism(ep=experts), quantization=quantization, engine="sglang"
    )
    return max(0.0, (whole - spread) * experts / (experts - 1))


def expert_bytes_per_gpu(inst: Instance) -> float:
    model, par = inst.model, inst.par
    if model.moe is None:
        return 0.0
    shards = par.ep if par.ep > 1 else (par.tp * par.dp if inst.engine == "vllm" else par.tp)
    stage = math.ceil(model.num_layers / par.pp) / model.num_layers
    return _expert_bytes_total(model, inst.quantization) * stage / shards


def experts_touched(model: ModelProfile, tokens: float) -> float:
    """Expected fraction of a layer's routed experts that `tokens` tokens reach (top-k routing,
    uniform load): 1 - (1 - k/E)^tokens."""
    moe = model.moe
    if moe is None:
        return 1.0
    miss = 1.0 - moe.experts_per_token / moe.num_experts
    return 1.0 - float(miss ** max(tokens, 1.0))


def _links(inst: Instance) -> tuple[Link, Link | None]:
    intra = intra_node_link(inst.gpu, inst.interconnect, inst.tp_in_domain)
    return intra, (fabric_link(inst.fabric) if inst.nnodes > 1 else None)


def _tp_link(inst: Instance) -> Link:
    intra, inter = _links(inst)
    per_node = inst.gpus // inst.nnodes
    if inter is not None and inst.attention_tp > per_node:
        return inter
    return intra


def _comm_seconds(inst: Instance, tokens: float, layers: int, moe_layers: int) -> float:
    """Communication of one stage for `tokens` tokens (per KV pool for TP, all for EP)."""
    model, par = inst.model, inst.par
    seconds = 0.0
    tp = inst.attention_tp
    pool_tokens = tokens / inst.kv_pools
    if tp > 1:
        seconds += (
            2
            * layers
            * all_reduce_seconds(
                _tp_link(inst), pool_tokens * model.hidden_size * ACTIVATION_BYTES, tp
            )
        )
    spread = par.ep if par.ep > 1 else (inst.kv_pools if inst.kv_pools > 1 else 1)
    if model.moe is not None and spread > 1:
        intra, inter = _links(inst)
        link = inter if inter is not None and spread > inst.gpus // inst.nnodes else intra
        nbytes = (tokens / spread) * model.hidden_size * model.moe.experts_per_token
        seconds += 2 * moe_layers * all_to_all_seconds(link, nbytes * DISPATCH_BYTES, spread)
    if par.pp > 1:
        intra, inter = _links(inst)
        link = inter or intra
        seconds += link.seconds(pool_tokens * model.hidden_size * ACTIVATION_BYTES)
    return seconds


def _moe_layers(model: ModelProfile) -> int:
    moe = model.moe
    if moe is None:
        return 0
    return model.num_layers // moe.moe_layer_step - moe.first_dense_layers // moe.moe_layer_step


def attention_flops_per_token(model: ModelProfile, context: float) -> float:
    """QK^T and PV over `context` tokens, all layers (local layers attend to their window)."""
    heads_dim = model.num_attention_heads * (model.head_dim + (model.v_head_dim or model.head_dim))
    local = model.local_attention
    full_layers = model.num_layers - (local.layers if local else 0)
    flops = 2 * full_layers * heads_dim * context
    if local is not None:
        flops += 2 * local.layers * heads_dim * min(context, local.window)
    return flops


def _expert_params_per_gpu(inst: Instance) -> float:
    """Routed-expert parameters one GPU multiplies (its slice of each of its experts)."""
    moe = inst.model.moe
    if moe is None:
        return 0.0
    return 3.0 * inst.model.hidden_size * moe.moe_intermediate_size


def moe_seconds(inst: Instance, tokens: float, eff: Efficiency) -> tuple[float, float]:
    """(memory s, compute s) of one stage's routed experts for `tokens` tokens on one GPU.

    The grouped GEMM reads every expert the tokens reach once, at the bandwidth its kernel
    family reaches, and computes ceil(m / tile) x tile rows per expert reached, m being the
    tokens per reached expert: few tokens per expert waste most of each tile."""
    model, par = inst.model, inst.par
    moe = model.moe
    if moe is None:
        return 0.0, 0.0
    touched = experts_touched(model, tokens)
    features = engine_features(inst.engine, inst.engine_version)
    fraction = eff.moe_hbm if features.moe_kernels == "grouped" else eff.moe_hbm_legacy
    memory = expert_bytes_per_gpu(inst) * touched / (inst.gpu.memory_bandwidth_gbs * 1e9 * fraction)
    # Experts this GPU holds (EP) or slices (TP), and the tokens each reached one gets.
    shards = par.ep if par.ep > 1 else 1
    slice_ = 1 if par.ep > 1 else (par.tp * par.dp if inst.engine == "vllm" else par.tp)
    local_experts = moe.num_experts / shards
    reached = max(1.0, local_experts * touched)
    per_expert = tokens * moe.experts_per_token / max(moe.num_experts * touched, 1e-9)
    rows = math.ceil(max(per_expert, 1e-9) / MOE_TILE_ROWS) * MOE_TILE_ROWS
    layers = math.ceil(_moe_layers(model) / par.pp)
    flops = 2.0 * rows * reached * _expert_params_per_gpu(inst) / slice_ * layers
    compute = flops / (peak_flops(inst.gpu, model, inst.quantization) * eff.compute)
    return memory, compute


def decode_step(inst: Instance, batch: float, context: float, eff: Efficiency) -> StepCost:
    """One round of decode for `batch` running requests holding `context` tokens on average."""
    model, par = inst.model, inst.par
    batch = max(batch, 1.0)
    micro = batch / par.pp
    # Speculative decoding verifies 1 + k tokens per request and step.
    width = 1 + inst.speculative_tokens
    experts = expert_bytes_per_gpu(inst)
    dense = max(0.0, inst.weight_bytes_per_gpu - experts)
    kv_bytes = (micro / inst.kv_pools) * context * inst.kv_bytes_per_token_per_gpu
    bandwidth = inst.gpu.memory_bandwidth_gbs * 1e9 * eff.hbm
    moe_memory, moe_compute = moe_seconds(inst, micro * width, eff)
    active_dense = model.params_active - (
        _expert_params_per_gpu(inst) * model.moe.experts_per_token * _moe_layers(model)
        if model.moe is not None
        else 0.0
    )
    flops = micro * width * (2 * max(active_dense, 0.0) + attention_flops_per_token(model, context))
    compute = (
        flops / par.pp / inst.gpus / (peak_flops(inst.gpu, model, inst.quantization) * eff.compute)
    )
    compute += moe_compute
    layers = math.ceil(model.num_layers / par.pp)
    moe_layers = math.ceil(_moe_layers(model) / par.pp)
    weights_s = dense / bandwidth + moe_memory
    kv_s = kv_bytes / bandwidth
    overhead = layers * eff.layer_overhead_s + moe_layers * eff.moe_layer_overhead_s
    if inst.eager or micro / inst.kv_pools > graph_max_batch(inst):
        overhead += layers * eff.eager_layer_s
    comm = _comm_seconds(inst, micro * width, layers, moe_layers)
    stage = max(weights_s + kv_s, compute) + overhead + comm
    gpu_s = stage * par.pp
    # The CPU's share per step (scheduling, sampling, detokenizing each running request):
    # hidden behind the GPU's step when the engine schedules asynchronously.
    cpu = batch / inst.kv_pools * eff.request_cpu_s
    features = engine_features(inst.engine, inst.engine_version)
    seconds = max(gpu_s, cpu) if features.async_scheduling else gpu_s + cpu
    # The front end (its API server processes) detokenizes, serializes and sends every token of
    # every running request; it runs beside the engine, so a step is never faster than it.
    servers = par.dp if features.api_servers == "per-dp-rank" else 1
    chunks = batch / max(inst.stream_interval, 1)
    seconds = max(seconds, chunks * eff.stream_token_s / max(servers, 1))
    return StepCost(
        seconds=seconds,
        weights_s=weights_s * par.pp,
        kv_s=kv_s * par.pp,
        compute_s=compute * par.pp,
        overhead_s=overhead * par.pp + (seconds - gpu_s),
        comm_s=comm * par.pp,
    )


def prefill_flops(model: ModelProfile, prompt: float) -> float:
    """FLOPs of a prompt: 2 per active parameter and token, plus causal attention."""
    return prompt * (2 * model.params_active + attention_flops_per_token(model, prompt / 2))


def prefill_seconds(inst: Instance, prompt: float, eff: Efficiency) -> float:
    """One prompt alone on the instance: its TP group computes it, stage after stage."""
    model, par = inst.model, inst.par
    peak = peak_flops(inst.gpu, model, inst.quantization) * eff.compute
    compute = prefill_flops(model, prompt) / (par.tp * peak)
    reads = inst.weight_bytes_per_gpu * par.pp / (inst.gpu.memory_bandwidth_gbs * 1e9 * eff.hbm)
    layers = model.num_layers
    moe_layers = _moe_layers(model)
    comm = _comm_seconds(inst, prompt * inst.kv_pools, math.ceil(layers / par.pp), moe_layers)
    overhead = layers * eff.layer_overhead_s + moe_layers * eff.moe_layer_overhead_s
    return max(compute, reads) + overhead + comm * par.pp


def prefill_batch_seconds(inst: Instance, tokens: float, prompt: float, eff: Efficiency) -> float:
    """A prefill step of `tokens` tokens from prompts of `prompt` tokens: their FLOPs over
    every GPU of the instance, or one read of the weights, or the step's kernel launches (no
    CUDA graph covers a prefill batch), whichever is longest; then its communication."""
    model, par = inst.model, inst.par
    peak = peak_flops(inst.gpu, model, inst.quantization) * eff.compute
    compute = tokens / max(prompt, 1.0) * prefill_flops(model, prompt) / (inst.gpus * peak)
    reads = inst.weight_bytes_per_gpu * par.pp / (inst.gpu.memory_bandwidth_gbs * 1e9 * eff.hbm)
    layers, moe_layers = model.num_layers, _moe_layers(model)
    launches = layers * (eff.layer_overhead_s + eff.eager_layer_s) + moe_layers * (
        eff.moe_layer_overhead_s
    )
    comm = _comm_seconds(inst, tokens, math.ceil(layers / par.pp), moe_layers)
    return max(compute, reads, launches) + comm * par.pp


def prefill_share_seconds(inst: Instance, prompt: float, eff: Efficiency) -> float:
    """Instance time a prompt costs when prefills are batched with other work: its FLOPs over
    every GPU of the instance (the weight reads are shared with the decode batch)."""
    peak = peak_flops(inst.gpu, inst.model, inst.quantization) * eff.compute
    return prefill_flops(inst.model, prompt) / (inst.gpus * peak)
