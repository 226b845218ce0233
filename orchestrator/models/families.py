"""Architecture families: which layers keep which cache, read from a config's own fields.

Every function takes the text decoder's config (`text_config` for multimodal wrappers) and
answers from the fields each family's public definition (transformers' configuration classes)
declares, so a new checkpoint of a known family needs no table entry:

* sliding / global layers: `layer_types` (Gemma 3, gpt-oss, Qwen3.5...), else Gemma 2's
  alternation and `sliding_window_pattern` (Gemma 3, Cohere2), else a window on every layer
  (Mistral);
* chunked local attention: Llama 4's `attention_chunk_size`, on the layers `no_rope_layers`
  marks as RoPE layers (three of every four);
* hybrid linear attention: Gated DeltaNet layers (`layer_types` "linear_attention", or every
  layer but each `full_attention_interval`-th) keep a fixed state, not per-token KV;
* DeepSeek sparse attention (V3.2): an indexer key per token beside the MLA latent;
* MTP / next-n layers: `num_nextn_predict_layers` (DeepSeek, GLM-4.5+, MiMo),
  `mtp_num_hidden_layers` (Qwen3-Next, Qwen3.5), `num_mtp_modules` (MiniMax).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# model_type values whose configs these rules were written from. Anything else is planned as
# a generic decoder from the standard fields, with a warning.
KNOWN_MODEL_TYPES = frozenset(
    {
        "llama",
        "llama4",
        "llama4_text",
        "mistral",
        "mistral3",
        "ministral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen2_vl",
        "qwen2_5_vl",
        "qwen3",
        "qwen3_moe",
        "qwen3_vl",
        "qwen3_vl_moe",
        "qwen3_next",
        "qwen3_5",
        "qwen3_5_text",
        "qwen3_5_moe",
        "qwen3_5_moe_text",
        "phi3",
        "phimoe",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "granite",
        "granitemoe",
        "olmo",
        "olmo2",
        "olmo3",
        "olmoe",
        "deepseek_v2",
        "deepseek_v3",
        "deepseek_v32",
        "kimi_k2",
        "glm4",
        "glm4_moe",
        "glm4v_moe",
        "minimax_m2",
        "gpt_oss",
        "cohere",
        "cohere2",
        "exaone",
        "internlm2",
        "starcoder2",
        "ernie4_5",
        "ernie4_5_moe",
        "hunyuan_v1_dense",
        "hunyuan_v1_moe",
        "mimo",
        "seed_oss",
        "smollm3",
        "apertus",
        # Per-layer cache kinds of these are read by `layer_kinds`.
        "nemotron_h",
        "kimi_linear",
        "deepseek_v4",
        "gemma4",
        "gemma4_text",
        "mimo_v2_flash",
        "minimax_m3",
        "minimax_m3_vl",
        "minimax_m3_vl_text",
    }
)

GEMMA2_TYPES = ("gemma2",)
GEMMA3_TYPES = ("gemma3", "gemma3_text")
GEMMA3_DEFAULT_PATTERN = 6  # transformers Gemma3TextConfig: 5 local layers per global one


# Families whose configuration class ties the output head to the embeddings unless it says not.
TIED_BY_DEFAULT = ("gemma", "gemma2", "gemma3", "gemma3_text")


def ties_embeddings(text: Mapping[str, Any]) -> bool:
    value = text.get("tie_word_embeddings")
    if isinstance(value, bool):
        return value
    return str(text.get("model_type", "")) in TIED_BY_DEFAULT


def _int(text: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = text.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


def local_attention(text: Mapping[str, Any], layers: int) -> dict[str, Any] | None:
    """{kind, window, layers} of the layers attending to a bounded window, or None."""
    window = _int(text, "sliding_window")
    layer_types = text.get("layer_types")
    model_type = str(text.get("model_type", ""))
    if isinstance(layer_types, list) and layer_types:
        sliding = sum(1 for kind in layer_types[:layers] if kind == "sliding_attention")
        if sliding and window:
            return {"kind": "sliding", "window": window, "layers": sliding}
        if any(kind in ("full_attention", "linear_attention") for kind in layer_types):
            return None  # the list is explicit: no sliding layers
    chunk = _int(text, "attention_chunk_size")
    if chunk:
        no_rope = text.get("no_rope_layers")
        if isinstance(no_rope, list) and no_rope:
            chunked = sum(1 for flag in no_rope[:layers] if flag)
        else:
            step = _int(text, "no_rope_layer_interval", 4) or 4
            chunked = layers - layers // step
        return {"kind": "chunked", "window": chunk, "layers": chunked}
    if not window:
        return None
    if model_type in GEMMA2_TYPES:
        return {"kind": "sliding", "window": window, "layers": (layers + 1) // 2}
    pattern = _int(text, "sliding_window_pattern")
    if model_type in GEMMA3_TYPES or pattern:
        # Every pattern-th layer is global (Gemma 3: 6, Cohere2: 4).
        pattern = pattern or GEMMA3_DEFAULT_PATTERN
        return {"kind": "sliding", "window": window, "layers": layers - layers // pattern}
    if text.get("use_sliding_window", True) is False:
        return None
    max_window = _int(text, "max_window_layers", layers)
    if "use_sliding_window" in text and max_window < layers:
        return {"kind": "sliding", "window": window, "layers": layers - max_window}
    return {"kind": "sliding", "window": window, "layers": layers}


def linear_attention_layers(text: Mapping[str, Any], layers: int) -> int:
    """How many layers are linear attention (0 for a pure-attention model)."""
    if not text.get("linear_num_value_heads"):
        return 0
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return sum(1 for kind in layer_types[:layers] if kind == "linear_attention")
    interval = _int(text, "full_attention_interval", 4) or 1
    return layers - layers // interval


def linear_attention(text: Mapping[str, Any], layers: int) -> dict[str, Any] | None:
    count = linear_attention_layers(text, layers)
    if not count:
        return None
    dtype = str(text.get("mamba_ssm_dtype") or "")
    return {
        "layers": count,
        "num_key_heads": _int(text, "linear_num_key_heads", 16),
        "num_value_heads": _int(text, "linear_num_value_heads"),
        "key_head_dim": _int(text, "linear_key_head_dim", 128),
        "value_head_dim": _int(text, "linear_value_head_dim", 128),
        "conv_kernel": _int(text, "linear_conv_kernel_dim", 4),
        "state_dtype_bytes": {"float32": 4, "bfloat16": 2, "float16": 2}.get(dtype),
    }


def indexer(text: Mapping[str, Any]) -> dict[str, Any] | None:
    head_dim = _int(text, "index_head_dim")
    if not head_dim:
        return None
    return {
        "head_dim": head_dim,
        "num_heads": _int(text, "index_n_heads", 64),
        "top_k": _int(text, "index_topk", 2048),
    }


def shared_experts(text: Mapping[str, Any]) -> int:
    """Shared experts per MoE layer (Llama 4 always has one, of intermediate_size)."""
    count = _int(text, "n_shared_experts")
    if count:
        return count
    if text.get("shared_expert_intermediate_size"):
        return 1
    return 1 if str(text.get("model_type", "")).startswith("llama4") else 0


def gates_attention_output(text: Mapping[str, Any]) -> bool:
    """Gated attention (Qwen3-Next always, Qwen3.5 by `attn_output_gate`): q_proj is doubled."""
    value = text.get("attn_output_gate")
    if isinstance(value, bool):
        return value
    return str(text.get("model_type", "")) == "qwen3_next"


def mtp_layers(text: Mapping[str, Any]) -> int:
    """MTP / next-n prediction layers the config declares."""
    for key in ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules"):
        count = _int(text, key)
        if count:
            return count
    return 0


def is_known(model_type: str) -> bool:
    return model_type in KNOWN_MODEL_TYPES
