"""Cache bytes of the per-layer kinds beyond full, local and Gated DeltaNet attention.

`memory.py` calls these for the layers a profile's `mamba`, `compressed_attention`,
`full_attention_heads`, GQA `indexer` and `cache_free_layers` describe (read from configs by
`orchestrator.models.layer_kinds`). Every size is per GPU (rank); GiB = 2**30 bytes.

* Mamba2 (vLLM `MambaSpec`, `mamba_utils.mamba2_state_shape`): per sequence and layer a
  convolution window ((kernel - 1) x (heads x head_dim + 2 x groups x state), model dtype) and
  an SSM state (heads x head_dim x state, `mamba_ssm_cache_dtype`), both split over TP.
* DeepSeek-V4 compressed attention: one KV head, so every TP rank keeps every entry (as MLA);
  a ratio-r layer keeps one entry per r tokens (ratio-4 layers also an FP8 indexer key with an
  fp32 scale per 128 values), and every layer keeps the last `window` raw entries plus the
  compressors' fp32 running state per sequence.
* MiniMax-M3 indexed layers: BF16 keys of `key_heads` indexer heads per token.
"""

from __future__ import annotations

import math

from orchestrator.errors import PlanError
from orchestrator.plan import Parallelism
from orchestrator.schema import ModelProfile

FP32 = 4
BF16 = 2


def check_sized(model: ModelProfile) -> None:
    """Refuse a model whose cache cannot be sized, unless the user stated its bytes per token."""
    if model.unsized_cache is not None and model.cache_bytes_per_token is None:
        raise PlanError(
            f"cannot size the cache of {model.hf_id}: {model.unsized_cache}",
            "state it with --cache-bytes-per-token N (KV bytes one token costs over all layers "
            "of the unsharded model); deploy does not invent it",
        )


def other_cache_layers(model: ModelProfile) -> int:
    """Layers whose cache is not full, local or linear attention (none, Mamba, compressed)."""
    layers = model.cache_free_layers
    if model.mamba is not None:
        layers += model.mamba.layers
    if model.compressed_attention is not None:
        layers += model.compressed_attention.layers
    return layers


def per_token_bytes(model: ModelProfile, par: Parallelism) -> int:
    """Bytes per token per GPU the compressed and indexer caches add to the full layers'."""
    total = 0.0
    compressed = model.compressed_attention
    if compressed is not None:
        # The engines keep this cache in its FP8 layout whatever --kv-cache-dtype says.
        for ratio, layers in compressed.layers_by_ratio:
            if ratio > 1:
                total += math.ceil(layers / par.pp) * compressed.entry_bytes / ratio
        if compressed.index_head_dim:
            key = compressed.index_head_dim + compressed.index_head_dim // 128 * FP32
            indexed = compressed.layers_at(compressed.indexed_ratio)
            total += math.ceil(indexed / par.pp) * key / compressed.indexed_ratio
    indexer = model.indexer
    if indexer is not None and indexer.layers and indexer.key_heads:
        total += math.ceil(indexer.layers / par.pp) * indexer.key_heads * indexer.head_dim * BF16
    return math.ceil(total)


def state_bytes_per_request(model: ModelProfile, par: Parallelism, tp: int) -> int:
    """Fixed bytes one sequence keeps per GPU in Mamba and compressed-attention layers."""
    total = 0
    mamba = model.mamba
    if mamba is not None:
        inner = mamba.num_heads * mamba.head_dim
        conv = (mamba.conv_kernel - 1) * (inner + 2 * mamba.n_groups * mamba.state_size) * BF16
        ssm = inner * mamba.state_size * mamba.state_dtype_bytes
        total += math.ceil(mamba.layers / par.pp) * (conv + ssm) // tp
    compressed = model.compressed_attention
    if compressed is not None:
        layers = compressed.layers
        total += math.ceil(layers / par.pp) * compressed.window * compressed.entry_bytes
        # Compressor running state (fp32): ratio-4 layers overlap two windows of 2 x head_dim
        # (and the indexer's), ratio-128 layers one window of head_dim.
        head = compressed.head_dim
        for ratio, count in compressed.layers_by_ratio:
            if ratio == compressed.indexed_ratio:
                rows = 2 * ratio * (2 * head + 2 * compressed.index_head_dim)
            elif ratio > 1:
                rows = ratio * head
            else:
                continue
            total += math.ceil(count / par.pp) * rows * FP32
    return total


def override_bytes_per_token(model: ModelProfile, par: Parallelism, tp: int) -> int | None:
    """The user's bytes per token (whole model), split as KV heads split: over TP and PP."""
    if model.cache_bytes_per_token is None:
        return None
    return math.ceil(model.cache_bytes_per_token / (tp * par.pp))
