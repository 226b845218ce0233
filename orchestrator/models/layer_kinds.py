"""Which cache each layer keeps, for the hybrid and sparse architectures of 2026.

Read from the fields each family's configuration class declares (transformers 5.25), after
the class defaults are filled in (`config_defaults`):

* Nemotron-H (`nemotron_h`): `hybrid_override_pattern` / `layers_block_type`, one block per
  layer: `M` Mamba2 (a fixed SSM state per sequence), `*` attention (KV), `-` MLP and `E` MoE
  (no cache). Only the attention layers hold KV.
* Kimi-Linear (`kimi_linear`): `linear_attn_config.kda_layers` / `full_attn_layers`
  (1-indexed): Kimi Delta Attention layers keep a recurrent state (heads x head_dim^2) and
  short convolutions over q, k and v; the full layers are MLA.
* DeepSeek-V4 (`deepseek_v4`): `compress_ratios` (0 / 4 / 128 per layer, or `layer_types`
  sliding / compressed_sparse / heavily_compressed): every layer keeps the last
  `sliding_window` raw entries; compressed layers add one entry per `ratio` tokens, the
  ratio-4 layers an indexer key too. `expert_dtype: fp4` stores the routed experts in MXFP4.
* Gemma 4 (`gemma4_text`): full-attention layers use `global_head_dim` and, with
  `attention_k_eq_v`, `num_global_key_value_heads`; the last `num_kv_shared_layers` layers
  reuse earlier layers' KV and keep none.
* MiMo-V2 (`mimo_v2_flash`): the first and every 6th layer full, the rest sliding;
  `swa_*` fields give the sliding layers' own heads.
* MiniMax-M3 (`minimax_m3*`): GQA on every layer; `sparse_attention_config` marks the layers
  whose lightning indexer keeps its own keys (`index_n_heads` x `index_head_dim`) per token.

A `layer_types` entry this module does not know is a cache nobody here can size: the profile
says so (`unsized_cache`) and the planner refuses to invent a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Layer kinds with a cache rule (transformers' layer_types vocabulary, normalised).
FULL, SLIDING, CHUNKED, LINEAR, MAMBA, NONE = (
    "full_attention",
    "sliding_attention",
    "chunked_attention",
    "linear_attention",
    "mamba",
    "none",
)
CSA, HCA = "compressed_sparse_attention", "heavily_compressed_attention"
MINIMAX_SPARSE = "minimax_m3_sparse"
KNOWN_KINDS = frozenset({FULL, SLIDING, CHUNKED, LINEAR, MAMBA, NONE, CSA, HCA, MINIMAX_SPARSE})
_ALIASES = {"attention": FULL, "global": FULL, "local": SLIDING, "mlp": NONE, "moe": NONE}
_NEMOTRON_PATTERN = {"M": MAMBA, "*": FULL, "-": NONE, "E": NONE}
_DSV4_RATIOS = {0: SLIDING, 1: SLIDING, 4: CSA, 128: HCA}

# vLLM's DeepSeek-V4 cache entry: a 448-value FP8 latent, a 64-value BF16 RoPE part and its
# UE8M0 scales = 584 bytes per entry of the single KV head (the FP8 layout the engines use).
DSV4_ENTRY_BYTES = 584

MAMBA_TYPES = ("nemotron_h",)
KIMI_LINEAR_TYPES = ("kimi_linear",)
DSV4_TYPES = ("deepseek_v4",)
GEMMA4_TYPES = ("gemma4", "gemma4_text")
MIMO_V2_TYPES = ("mimo_v2_flash", "mimo_v2")
MINIMAX_M3_TYPES = ("minimax_m3", "minimax_m3_vl", "minimax_m3_vl_text")
EXPERT_DTYPES = {"fp4": "mxfp4", "mxfp4": "mxfp4", "fp8": "fp8", "nvfp4": "nvfp4"}


@dataclass
class Layout:
    """What the layer kinds add to a profile, and what they change in the parameter count."""

    # Fields for ModelProfile (replacing what the generic rules derived).
    profile: dict[str, Any] = field(default_factory=dict)
    # Fields added to the text config before the generic rules read it (Kimi's KDA shapes).
    text_updates: dict[str, Any] = field(default_factory=dict)
    # Parameter groups computed per layer kind (block-hybrid models), replacing the generic ones.
    params: dict[str, int] | None = None
    # Parameters added to the generic groups (Gemma 4's per-layer embeddings).
    extra_params: dict[str, int] = field(default_factory=dict)
    # Routed-expert layers when only some blocks are MoE (None: the generic rule).
    moe_layers: int | None = None
    notes: list[str] = field(default_factory=list)


def _int(text: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = text.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def _declared_kinds(text: Mapping[str, Any], layers: int) -> list[str] | None:
    """Per-layer kinds from whichever field this family uses, or None when none says."""
    model_type = str(text.get("model_type", ""))
    pattern = text.get("hybrid_override_pattern")
    if isinstance(pattern, str) and pattern:
        return [_NEMOTRON_PATTERN.get(char, f"pattern {char!r}") for char in pattern[:layers]]
    blocks = text.get("layers_block_type")
    if isinstance(blocks, list) and blocks:
        return [_ALIASES.get(str(kind), str(kind)) for kind in blocks[:layers]]
    ratios = text.get("compress_ratios")
    if model_type in DSV4_TYPES and isinstance(ratios, list) and ratios:
        return [_DSV4_RATIOS.get(int(r), f"compress ratio {r}") for r in ratios[:layers]]
    linear = text.get("linear_attn_config")
    if model_type in KIMI_LINEAR_TYPES and isinstance(linear, Mapping):
        kinds = [FULL] * layers
        for index in linear.get("kda_layers") or []:
            if 1 <= int(index) <= layers:
                kinds[int(index) - 1] = LINEAR
        return kinds
    sparse = text.get("sparse_attention_config")
    if model_type in MINIMAX_M3_TYPES and isinstance(sparse, Mapping):
        freq = sparse.get("sparse_attention_freq") or []
        if sparse.get("use_sparse_attention", True) and freq:
            return [MINIMAX_SPARSE if flag else FULL for flag in list(freq)[:layers]]
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return [_ALIASES.get(str(kind), str(kind)) for kind in layer_types[:layers]]
    if model_type in MIMO_V2_TYPES:
        return [FULL if i == 0 or (i + 1) % 6 == 0 else SLIDING for i in range(layers)]
    if model_type in DSV4_TYPES:
        # The class default (V4-Pro): two heavily compressed layers, then CSA/HCA alternating.
        return [HCA if i < 2 or i % 2 == 0 else CSA for i in range(layers)]
    return None


def describe(text: Mapping[str, Any], layers: int) -> Layout:
    """The per-layer cache layout of a config (an empty Layout for the generic rules)."""
    kinds = _declared_kinds(text, layers)
    model_type = str(text.get("model_type", ""))
    layout = Layout()
    mlp_types = text.get("mlp_layer_types")
    if isinstance(mlp_types, list) and mlp_types and "first_k_dense_replace" not in text:
        # Leading dense MLP layers before the MoE ones (MiMo-V2: the first layer is dense).
        dense = next((i for i, kind in enumerate(mlp_types) if kind != "dense"), len(mlp_types))
        layout.text_updates["first_k_dense_replace"] = dense
    elif model_type in MIMO_V2_TYPES and "first_k_dense_replace" not in text:
        layout.text_updates["first_k_dense_replace"] = 1  # the class default mlp_layer_types
    if kinds is None:
        return layout
    unknown = sorted({kind for kind in kinds if kind not in KNOWN_KINDS})
    if unknown:
        layout.profile["unsized_cache"] = (
            f"its layers declare cache kinds deploy cannot size ({', '.join(unknown)})"
        )
        return layout
    if model_type in MAMBA_TYPES or MAMBA in kinds:
        _mamba(text, kinds, layout)
    elif model_type in KIMI_LINEAR_TYPES:
        _kimi_linear(text, kinds, layout)
    elif model_type in DSV4_TYPES:
        _deepseek_v4(text, kinds, layout)
    elif model_type in MINIMAX_M3_TYPES:
        _minimax_m3(text, kinds, layout)
    elif model_type in GEMMA4_TYPES or model_type in MIMO_V2_TYPES:
        _per_layer_heads(text, kinds, layout)
    return layout


# ---------------------------------------------------------------------------------------------
# Families
# ---------------------------------------------------------------------------------------------


def _mamba(text: Mapping[str, Any], kinds: list[str], layout: Layout) -> None:
    hidden = _int(text, "hidden_size")
    heads = _int(text, "mamba_num_heads", 128)
    head_dim = _int(text, "mamba_head_dim", 64)
    state = _int(text, "ssm_state_size", 128)
    groups = _int(text, "n_groups", 8)
    kernel = _int(text, "conv_kernel", 4)
    ssm_dtype = str(text.get("mamba_ssm_cache_dtype") or "float32")
    mamba = kinds.count(MAMBA)
    pattern = str(text.get("hybrid_override_pattern") or "")
    blocks = text.get("layers_block_type")
    moe_layers = pattern.count("E") or (
        sum(1 for kind in blocks if kind == "moe") if isinstance(blocks, list) else 0
    )
    mlp_layers = kinds.count(NONE) - moe_layers
    attention = kinds.count(FULL)
    layout.profile["mamba"] = {
        "layers": mamba,
        "num_heads": heads,
        "head_dim": head_dim,
        "state_size": state,
        "n_groups": groups,
        "conv_kernel": kernel,
        "state_dtype_bytes": {"float32": 4, "bfloat16": 2, "float16": 2}.get(ssm_dtype, 4),
    }
    layout.profile["cache_free_layers"] = kinds.count(NONE)
    layout.profile["local_attention"] = None
    layout.profile["linear_attention"] = None
    # One block per layer: a Mamba mixer, an attention, an MLP or an MoE, never two.
    inner = heads * head_dim
    conv_dim = inner + 2 * groups * state
    mamba_params = (
        hidden * (2 * inner + 2 * groups * state + heads)
        + conv_dim * kernel
        + conv_dim
        + 3 * heads
        + inner
        + inner * hidden
    )
    q_heads = _int(text, "num_attention_heads", 32)
    kv_heads = _int(text, "num_key_value_heads", q_heads)
    attn_dim = _int(text, "head_dim") or _int(text, "attention_head_dim") or hidden // q_heads
    attention_params = 2 * hidden * q_heads * attn_dim + 2 * hidden * kv_heads * attn_dim
    inter = _int(text, "intermediate_size", 4 * hidden)
    params = {
        "attention": mamba * mamba_params + attention * attention_params,
        "dense_mlp": mlp_layers * 2 * hidden * inter,  # squared-ReLU MLP: up and down only
        "norms": len(kinds) * hidden + hidden,
        "experts": 0,
        "shared_experts": 0,
        "router": 0,
        "inactive_experts": 0,
    }
    if moe_layers:
        experts = _int(text, "n_routed_experts", 0)
        top_k = _int(text, "num_experts_per_tok", 1)
        moe_inter = _int(text, "moe_intermediate_size", inter)
        shared_inter = _int(text, "moe_shared_expert_intermediate_size", moe_inter)
        params["experts"] = moe_layers * experts * 2 * hidden * moe_inter
        params["inactive_experts"] = moe_layers * (experts - top_k) * 2 * hidden * moe_inter
        params["shared_experts"] = moe_layers * 2 * hidden * shared_inter
        params["router"] = moe_layers * hidden * experts
    layout.params = params
    layout.moe_layers = moe_layers
    layout.notes.append(
        f"hybrid Mamba2: {mamba} Mamba layers keep a fixed state per sequence, {attention} "
        f"attention layers keep KV, {kinds.count(NONE)} MLP/MoE layers keep no cache"
    )


def _kimi_linear(text: Mapping[str, Any], kinds: list[str], layout: Layout) -> None:
    config = text.get("linear_attn_config")
    linear = config if isinstance(config, Mapping) else {}
    heads = int(linear.get("num_heads") or _int(text, "linear_num_heads", 32))
    head_dim = int(linear.get("head_dim") or _int(text, "linear_head_dim", 128))
    kernel = int(linear.get("short_conv_kernel_size") or _int(text, "linear_conv_kernel_dim", 4))
    # KDA maps onto the Gated DeltaNet record: q/k/v short convolutions, one state per head.
    layout.text_updates.update(
        layer_types=kinds,
        linear_num_key_heads=heads,
        linear_num_value_heads=heads,
        linear_key_head_dim=head_dim,
        linear_value_head_dim=head_dim,
        linear_conv_kernel_dim=kernel,
        mamba_ssm_dtype="float32",
    )
    layout.notes.append(
        f"Kimi Delta Attention on {kinds.count(LINEAR)} layers (fixed state per sequence), "
        f"MLA on {kinds.count(FULL)}"
    )


def _deepseek_v4(text: Mapping[str, Any], kinds: list[str], layout: Layout) -> None:
    by_ratio: dict[int, int] = {}
    for kind in kinds:
        ratio = {SLIDING: 1, CSA: 4, HCA: 128}[kind]
        by_ratio[ratio] = by_ratio.get(ratio, 0) + 1
    layout.profile["compressed_attention"] = {
        "layers_by_ratio": tuple(sorted(by_ratio.items())),
        "entry_bytes": DSV4_ENTRY_BYTES,
        "head_dim": _int(text, "head_dim", 512),
        "window": _int(text, "sliding_window", 128),
        "index_head_dim": _int(text, "index_head_dim", 128),
        "indexed_ratio": 4,
    }
    layout.profile["local_attention"] = None
    hidden = _int(text, "hidden_size")
    heads = _int(text, "num_attention_heads")
    head_dim = _int(text, "head_dim", 512)
    q_rank = _int(text, "q_lora_rank", 1024)
    o_rank = _int(text, "o_lora_rank", 1024)
    o_groups = _int(text, "o_groups", 8)
    index_heads = _int(text, "index_n_heads", 64)
    index_dim = _int(text, "index_head_dim", 128)
    hc = _int(text, "hc_mult", 4)
    per_layer = (
        hidden * q_rank  # wq_a
        + q_rank * heads * head_dim  # wq_b
        + hidden * head_dim  # wkv: one KV head
        + heads * head_dim * o_rank  # wo_a (grouped)
        + o_groups * o_rank * hidden  # wo_b
        + 2 * (2 + hc) * hc * hc * hidden  # hyper-connection mixers (attention and FFN)
    )
    compressors = (
        by_ratio.get(4, 0)
        * (
            2 * 2 * head_dim * hidden
            + q_rank * index_heads * index_dim
            + 2 * 2 * index_dim * hidden
            + hidden * index_heads
        )
        + by_ratio.get(128, 0) * 2 * head_dim * hidden
    )
    layout.params = {"attention": len(kinds) * per_layer + compressors}
    quant = text.get("quantization_config")
    dtype = text.get("expert_dtype") or (
        quant.get("expert_dtype") if isinstance(quant, Mapping) else None
    )
    if isinstance(dtype, str) and dtype.lower() in EXPERT_DTYPES:
        layout.profile["expert_format"] = EXPERT_DTYPES[dtype.lower()]
    layout.notes.append(
        f"compressed attention: {by_ratio.get(4, 0)} layers at 1/4 (indexed), "
        f"{by_ratio.get(128, 0)} at 1/128, every layer a {_int(text, 'sliding_window', 128)}-token "
        f"window; {DSV4_ENTRY_BYTES}-byte FP8 entries (vLLM's layout)"
    )


def _minimax_m3(text: Mapping[str, Any], kinds: list[str], layout: Layout) -> None:
    sparse = kinds.count(MINIMAX_SPARSE)
    layout.profile["local_attention"] = None
    if sparse:
        config = text.get("sparse_attention_config")
        cfg = config if isinstance(config, Mapping) else {}
        layout.profile["indexer"] = {
            "head_dim": int(cfg.get("sparse_index_dim") or _int(text, "index_head_dim", 128)),
            "num_heads": int(cfg.get("sparse_num_index_heads") or _int(text, "index_n_heads", 4)),
            "top_k": int(cfg.get("sparse_topk_blocks") or _int(text, "index_topk_blocks", 16))
            * int(cfg.get("sparse_block_size") or _int(text, "index_block_size", 128)),
            "layers": sparse,
            "key_heads": int(cfg.get("sparse_num_index_heads") or _int(text, "index_n_heads", 4)),
        }
        layout.notes.append(
            f"sparse attention on {sparse} layers: their indexer keeps BF16 keys per token "
            "beside the KV"
        )


def _per_layer_heads(text: Mapping[str, Any], kinds: list[str], layout: Layout) -> None:
    model_type = str(text.get("model_type", ""))
    layers = len(kinds)
    kv_heads = _int(text, "num_key_value_heads") or _int(text, "num_attention_heads")
    head_dim = _int(text, "head_dim")
    shared = min(_int(text, "num_kv_shared_layers"), layers)
    if shared:
        kinds = kinds[: layers - shared] + [NONE] * shared
        layout.profile["cache_free_layers"] = shared
    sliding = kinds.count(SLIDING)
    window = _int(text, "sliding_window")
    if model_type in MIMO_V2_TYPES and _int(text, "sliding_window_size"):
        window = _int(text, "sliding_window_size") + 1
    local: dict[str, Any] | None = None
    if sliding and window:
        local = {"kind": "sliding", "window": window, "layers": sliding}
        swa_heads = _int(text, "swa_num_key_value_heads")
        if swa_heads:
            swa_dim = _int(text, "swa_head_dim", head_dim)
            local["heads"] = {
                "num_kv_heads": swa_heads,
                "head_dim": swa_dim,
                "v_head_dim": _int(text, "swa_v_head_dim", swa_dim),
            }
    layout.profile["local_attention"] = local
    if model_type in GEMMA4_TYPES:
        ple = _int(text, "hidden_size_per_layer_input")
        if ple:
            # Per-layer embeddings (PLE): a vocab_size_per_layer_input x (layers x ple) table,
            # its projection from the hidden state, and a gate and projection in every layer.
            hidden = _int(text, "hidden_size")
            vocab = _int(text, "vocab_size_per_layer_input", _int(text, "vocab_size"))
            layout.extra_params["embed"] = vocab * layers * ple + hidden * layers * ple
            layout.extra_params["norms"] = layers * (2 * hidden * ple + hidden) + ple
        global_dim = _int(text, "global_head_dim", 512)
        global_heads = _int(text, "num_global_key_value_heads")
        if not (text.get("attention_k_eq_v") and global_heads):
            global_heads = kv_heads
        layout.profile["full_attention_heads"] = {
            "num_kv_heads": global_heads,
            "head_dim": global_dim,
            "v_head_dim": global_dim,
        }
        layout.notes.append(
            f"per-layer heads: {kinds.count(FULL)} global layers keep {global_heads} KV heads "
            f"of {global_dim}, {sliding} sliding layers {kv_heads} of {head_dim}"
            + (f"; the last {shared} layers reuse earlier KV" if shared else "")
        )
    v_dim = _int(text, "v_head_dim")
    if v_dim and v_dim != head_dim and not text.get("kv_lora_rank"):
        layout.profile["v_head_dim"] = v_dim
