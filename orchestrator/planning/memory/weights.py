"""Bytes of weights per GPU: how each parameter group shards, in the checkpoint's format.

Embeddings and the LM head split by TP, attention and dense layers by attention TP, routed
experts by EP (or by the MoE group's TP), norms everywhere; PP takes the heaviest stage. Formats
come from the checkpoint (`models.quantization.bytes_per_weight`), and an index's exact total
scales the formula while it keeps the sharding shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.errors import InputError
from orchestrator.plan import Parallelism
from orchestrator.schema import GpuSpec, ModelProfile

BF16_BYTES = 2.0
# Bytes per quantized weight: `models.quantization.bytes_per_weight` (the one table).

QUANTIZATIONS = ("bf16", "fp16", "fp32", "fp8", "mxfp4", "nvfp4", "int8", "int4", "awq", "gptq")


@dataclass(frozen=True)
class ParamSplit:
    """How a model's parameters shard: by TP, by the MoE group, or not at all."""

    vocab: int  # embeddings + lm_head: vocab-parallel, split by TP
    experts: int  # routed experts: split by EP (or by the MoE TP group)
    layers_other: int  # attention, dense MLP, shared experts, routers: split by attention TP
    replicated: int  # norms: every rank holds them
    num_layers: int


def expert_params(model: ModelProfile) -> int:
    """Routed-expert parameters (every expert is resident; EP only redistributes them)."""
    moe = model.moe
    if moe is None:
        return 0
    # Layers i in [first_dense_layers, num_layers) with (i + 1) % step == 0, unless counted.
    step = moe.moe_layer_step
    moe_layers = moe.moe_layers
    if moe_layers is None:
        moe_layers = model.num_layers // step - moe.first_dense_layers // step
    matrices = moe.matrices_per_expert
    return moe_layers * moe.num_experts * matrices * model.hidden_size * moe.moe_intermediate_size


def split_params(model: ModelProfile) -> ParamSplit:
    vocab = model.vocab_size * model.hidden_size * (1 if model.tie_word_embeddings else 2)
    experts = min(expert_params(model), model.params_total - vocab)
    replicated = model.num_layers * 2 * model.hidden_size + model.hidden_size
    other = max(0, model.params_total - vocab - experts - replicated)
    return ParamSplit(vocab, experts, other, replicated, model.num_layers)


def _format_for(model: ModelProfile, quantization: str | None) -> str:
    if quantization is None:
        return model.checkpoint.format
    wanted = quantization.lower()
    if wanted not in QUANTIZATIONS:
        raise InputError(
            f"unknown quantization {quantization!r}", f"use one of: {', '.join(QUANTIZATIONS)}"
        )
    return {"awq": "int4", "gptq": "int4", "fp32": "bf16"}.get(wanted, wanted)


def _linear_bytes_per_param(fmt: str, model: ModelProfile) -> float:
    from orchestrator.models.quantization import bytes_per_weight

    return bytes_per_weight(fmt, model.checkpoint)


def _high_precision_params(model: ModelProfile, fmt: str, split: ParamSplit) -> int:
    """Parameters that stay BF16 in a quantized checkpoint (embeddings, norms, routers...)."""
    if fmt == model.checkpoint.format and model.checkpoint.bf16_params is not None:
        return model.checkpoint.bf16_params
    if fmt == "mxfp4":
        # Only MoE experts use MXFP4; a dense model quantizes every linear layer.
        return model.params_total - split.experts if split.experts else split.vocab
    return split.vocab + split.replicated


def moe_shards(par: Parallelism, engine: str) -> int:
    """Ranks the routed experts are spread over."""
    if par.ep > 1:
        return par.ep
    # vLLM forms one (DP x TP) group for MoE layers of a data-parallel MoE model.
    return par.tp * par.dp if engine == "vllm" else par.tp


def attention_tp(par: Parallelism) -> int:
    """TP size of the attention layers; SGLang DP-attention splits the TP group into replicas."""
    if par.attn_dp > par.dp:
        return max(1, par.tp // (par.attn_dp // par.dp))
    return par.tp


def weight_bytes_per_gpu(
    model: ModelProfile,
    par: Parallelism,
    *,
    quantization: str | None = None,
    engine: str = "vllm",
    gpu: GpuSpec | None = None,
    redundant_experts: int = 0,
) -> float:
    """Bytes of weights on the most loaded GPU (what vLLM logs as "Model loading took").

    `redundant_experts` extra expert slots (EPLB, `--ep-num-redundant-experts`) hold copies of
    experts on top of the routed ones; `gpu` decides engine-specific padding of the experts."""
    fmt = _format_for(model, quantization)
    split = split_params(model)
    high = _high_precision_params(model, fmt, split)
    linear_bytes = _linear_bytes_per_param(fmt, model)
    # Parameters in BF16 come first from the vocab matrices, then norms, then the rest.
    vocab_b = split.vocab * BF16_BYTES
    repl_b = split.replicated * BF16_BYTES
    extra_high = max(0, high - split.vocab - split.replicated)
    expert_fmt_bytes = linear_bytes
    if fmt == model.checkpoint.format and model.checkpoint.expert_format is not None:
        # Routed experts stored in their own format (DeepSeek-V4: MXFP4 experts, FP8 rest).
        expert_fmt_bytes = _linear_bytes_per_param(model.checkpoint.expert_format, model)
    high_in_experts = max(0, extra_high - split.layers_other)
    other_high = min(extra_high, split.layers_other)
    experts_b = (split.experts - high_in_experts) * expert_fmt_bytes + high_in_experts * BF16_BYTES
    other_b = (split.layers_other - other_high) * linear_bytes + other_high * BF16_BYTES
    if model.checkpoint.bytes is not None and fmt == model.checkpoint.format:
        # The index's total_size is exact: scale the formula to it, keep the sharding shape.
        formula = vocab_b + repl_b + experts_b + other_b
        scale = model.checkpoint.bytes / formula
        vocab_b, repl_b, experts_b, other_b = (
            part * scale for part in (vocab_b, repl_b, experts_b, other_b)
        )
    stage_layers = math.ceil(split.num_layers / par.pp) / split.num_layers
    # With PP the first stage holds the embedding and the last the lm_head; count the larger.
    vocab_share = vocab_b if par.pp == 1 else vocab_b / (1 if model.tie_word_embeddings else 2)
    if model.moe is not None and model.moe.num_experts:
        experts_b *= expert_padding(model, par, engine, gpu, fmt)
        experts_b *= (model.moe.num_experts + max(0, redundant_experts)) / model.moe.num_experts
    return (
        vocab_share / par.tp
        + repl_b * stage_layers
        + other_b * stage_layers / attention_tp(par)
        + experts_b * stage_layers / moe_shards(par, engine)
    )


def expert_padding(
    model: ModelProfile, par: Parallelism, engine: str, gpu: GpuSpec | None, fmt: str
) -> float:
    """Growth of the routed experts' bytes from the engine's kernel layout.

    vLLM's MXFP4 MoE on Hopper (SM90) pads each expert for its Marlin/SM90 kernels: the
    intermediate size per rank to a multiple of 128 and the hidden size to 256
    (vllm/model_executor/layers/quantization/mxfp4.py, `Mxfp4MoEMethod.create_weights`):
    gpt-oss's 2880 x 2880 experts become 2944 x 3072, +9 %, so gpt-oss-120b loads about
    65.9 GiB on one H100 instead of the checkpoint's 60.8."""
    moe = model.moe
    if engine != "vllm" or fmt != "mxfp4" or moe is None or gpu is None:
        return 1.0
    if gpu.compute_capability != "9.0":
        return 1.0
    shards = 1 if par.ep > 1 else par.tp * par.dp
    inter = max(1, moe.moe_intermediate_size // shards)
    padded_inter = -(-inter // 128) * 128
    padded_hidden = -(-model.hidden_size // 256) * 256
    return (padded_inter * padded_hidden) / (inter * model.hidden_size)
