"""A `ModelProfile` from a Hugging Face checkpoint's metadata files, wherever they came from.

`config.json` (its `text_config` for multimodal wrappers) gives the shapes;
`model.safetensors.index.json` gives the exact checkpoint bytes (`metadata.total_size`) and,
in `weight_map`, which tensors exist (MTP layers, vision towers); a single-file checkpoint's
safetensors header gives the same bytes per dtype; `hf_quant_config.json` names a ModelOpt
format. Parameter counts come from the shapes, per group, so the groups a quantization leaves
at 16 bit can be counted. Every error names the file and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import CatalogError
from orchestrator.models import config_defaults, families, layer_kinds
from orchestrator.models.quantization import (
    Declared,
    declared_format,
    scheme_bytes_per_weight,
    unquantized_share,
)
from orchestrator.profiles import validation_message
from orchestrator.schema import ModelProfile, ModelSource

CONFIG = "config.json"
INDEX = "model.safetensors.index.json"
HF_QUANT = "hf_quant_config.json"
SINGLE_FILE = "model.safetensors"
DEFAULT_MAX_CONTEXT = 4096

# Bytes per element of each safetensors dtype.
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
    "I16": 2, "U16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1,
    "BOOL": 1, "F4": 0.5, "F6_E2M3": 0.75, "F6_E3M2": 0.75,
}  # fmt: skip


@dataclass(frozen=True)
class CheckpointFiles:
    """The metadata files of one checkpoint, parsed, with the names errors should use."""

    config: Mapping[str, Any]
    config_path: str
    index: Mapping[str, Any] | None = None
    index_path: str = INDEX
    hf_quant: Mapping[str, Any] | None = None
    # Parameters per safetensors dtype of a single-file checkpoint (its header).
    single_file_params: Mapping[str, int] | None = None


@dataclass(frozen=True)
class Identity:
    name: str
    hf_id: str
    source: str
    origin: ModelSource
    revision: str | None = None
    local_path: Path | None = None
    extra_warnings: tuple[str, ...] = field(default_factory=tuple)


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror}") from error
    return parse_json(text, str(path))


def parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogError(
            f"{name}: invalid JSON at line {error.lineno} column {error.colno} ({error.msg})",
            "fix or re-download that file",
        ) from error


def safetensors_header_params(header: Mapping[str, Any]) -> dict[str, int]:
    """Parameters per dtype from a parsed safetensors header (what the Hub's API reports)."""
    counts: dict[str, int] = {}
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, Mapping):
            continue
        count = 1
        for size in entry.get("shape", []):
            count *= int(size)
        dtype = str(entry.get("dtype"))
        counts[dtype] = counts.get(dtype, 0) + count
    return counts


def read_safetensors_header(path: Path) -> dict[str, int]:
    """Parameters per dtype of a local `.safetensors` file: only its header is read."""
    try:
        with path.open("rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length < 100 * 2**20:
                raise CatalogError(f"{path}: not a safetensors file (header length {length})")
            header = parse_json(handle.read(length).decode("utf-8", "replace"), str(path))
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror}") from error
    if not isinstance(header, dict):
        raise CatalogError(f"{path}: the safetensors header is not a JSON object")
    return safetensors_header_params(header)


def model_from_directory(directory: Path) -> ModelProfile:
    """A profile of a local Hugging Face model directory (config.json and its neighbours)."""
    directory = directory.expanduser()
    config_path = directory / CONFIG
    if not config_path.is_file():
        raise CatalogError(
            f"{directory} has no config.json",
            "pass a Hugging Face model directory (config.json and *.safetensors)",
        )
    config = read_json(config_path)
    index_path = directory / INDEX
    index = read_json(index_path) if index_path.is_file() else None
    quant_path = directory / HF_QUANT
    hf_quant = read_json(quant_path) if quant_path.is_file() else None
    single = directory / SINGLE_FILE
    params = read_safetensors_header(single) if index is None and single.is_file() else None
    files = CheckpointFiles(
        config=_object(config, str(config_path)),
        config_path=str(config_path),
        index=_object(index, str(index_path)) if index is not None else None,
        index_path=str(index_path),
        hf_quant=_object(hf_quant, str(quant_path)) if hf_quant is not None else None,
        single_file_params=params,
    )
    resolved = directory.resolve()
    identity = Identity(
        name=resolved.name.lower(),
        hf_id=str(config.get("_name_or_path") or resolved.name),
        source=f"local:{directory}",
        origin="local",
    )
    return profile_from_files(files, identity)


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def _positive_int(config: Mapping[str, Any], key: str, path: str, default: Any = ...) -> int:
    value = config.get(key, default)
    if value is ...:
        raise CatalogError(f"{path}: field {key!r} is missing", "is this a causal LM config.json?")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"{path}: field {key!r} must be a positive integer, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Parameters by group
# ---------------------------------------------------------------------------------------------


@dataclass
class ParamGroups:
    """Parameters of the served decoder by the role quantization configs name them by."""

    embed: int = 0
    lm_head: int = 0
    norms: int = 0
    attention: int = 0
    dense_mlp: int = 0
    shared_experts: int = 0
    experts: int = 0
    router: int = 0
    vision: int = 0
    inactive_experts: int = 0

    @property
    def total(self) -> int:
        return (
            self.embed
            + self.lm_head
            + self.norms
            + self.attention
            + self.dense_mlp
            + self.shared_experts
            + self.experts
            + self.router
            + self.vision
        )


def _experts(text: Mapping[str, Any]) -> int:
    return int(
        text.get("n_routed_experts")
        or text.get("num_experts")
        or text.get("num_local_experts")
        or 0
    )


def _attention_params(text: Mapping[str, Any], path: str) -> int:
    """One standard or MLA attention block."""
    hidden = _positive_int(text, "hidden_size", path)
    heads = _positive_int(text, "num_attention_heads", path)
    kv_heads = _positive_int(text, "num_key_value_heads", path, default=heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    if text.get("kv_lora_rank"):
        rope, nope = int(text["qk_rope_head_dim"]), int(text["qk_nope_head_dim"])
        v_dim, kv_rank = int(text["v_head_dim"]), int(text["kv_lora_rank"])
        q_rank = int(text.get("q_lora_rank") or 0)
        q = (
            hidden * q_rank + q_rank + q_rank * heads * (nope + rope)
            if q_rank
            else hidden * heads * (nope + rope)
        )
        attention = (
            q
            + hidden * (kv_rank + rope)
            + kv_rank
            + kv_rank * heads * (nope + v_dim)
            + heads * v_dim * hidden
        )
        index_dim = int(text.get("index_head_dim") or 0)
        if index_dim:
            # DeepSeek sparse-attention indexer: q from the q latent, one k, per-head weights.
            index_heads = int(text.get("index_n_heads") or 64)
            attention += (q_rank or hidden) * index_heads * index_dim
            attention += hidden * index_dim + 2 * index_dim + hidden * index_heads
        return attention
    q_width = heads * head_dim * (2 if families.gates_attention_output(text) else 1)
    # Values may be narrower than keys (MiMo-V2: 192-dim keys, 128-dim values).
    v_dim = int(text.get("v_head_dim") or head_dim)
    attention = hidden * q_width + hidden * (head_dim + v_dim) * kv_heads + heads * v_dim * hidden
    if text.get("attention_bias") or text.get("model_type") == "qwen2":
        attention += q_width + 2 * head_dim * kv_heads
    if text.get("use_qk_norm") or str(text.get("model_type", "")).startswith(
        ("qwen3", "gemma3", "olmo2", "olmo3")
    ):
        attention += 2 * head_dim  # per-head RMSNorm on q and k
    return attention


def _linear_attention_params(text: Mapping[str, Any]) -> int:
    """One Gated DeltaNet block (Qwen3-Next / Qwen3.5)."""
    hidden = int(text["hidden_size"])
    k_heads = int(text.get("linear_num_key_heads") or 16)
    v_heads = int(text["linear_num_value_heads"])
    key_dim = k_heads * int(text.get("linear_key_head_dim") or 128)
    v_head_dim = int(text.get("linear_value_head_dim") or 128)
    value_dim = v_heads * v_head_dim
    kernel = int(text.get("linear_conv_kernel_dim") or 4)
    in_proj = hidden * (2 * key_dim + 2 * value_dim) + hidden * 2 * v_heads
    conv = (2 * key_dim + value_dim) * kernel
    return in_proj + conv + 2 * v_heads + v_head_dim + value_dim * hidden


def count_params(text: Mapping[str, Any], path: str) -> ParamGroups:
    hidden = _positive_int(text, "hidden_size", path)
    layers = _positive_int(text, "num_hidden_layers", path)
    _positive_int(text, "num_attention_heads", path)
    vocab = _positive_int(text, "vocab_size", path)
    tied = families.ties_embeddings(text)
    groups = ParamGroups(embed=vocab * hidden, lm_head=0 if tied else vocab * hidden)
    attention = _attention_params(text, path)
    linear_layers = families.linear_attention_layers(text, layers)
    groups.attention = (layers - linear_layers) * attention
    if linear_layers:
        groups.attention += linear_layers * _linear_attention_params(text)
    groups.norms = layers * 2 * hidden + hidden
    dense_inter = int(
        text.get("intermediate_size_mlp") or text.get("intermediate_size") or 4 * hidden
    )
    experts = _experts(text)
    moe_layers = 0
    if experts:
        moe_inter = int(
            text.get("moe_intermediate_size") or text.get("intermediate_size") or dense_inter
        )
        top_k = int(text.get("num_experts_per_tok") or 1)
        step = int(text.get("interleave_moe_layer_step") or text.get("decoder_sparse_step") or 1)
        first_dense = int(text.get("first_k_dense_replace") or 0)
        skipped = set(text.get("mlp_only_layers") or [])
        moe_layers = sum(
            1 for i in range(first_dense, layers) if (i + 1) % step == 0 and i not in skipped
        )
        per_expert = 3 * hidden * moe_inter
        groups.experts = moe_layers * experts * per_expert
        groups.inactive_experts = moe_layers * (experts - top_k) * per_expert
        groups.router = moe_layers * hidden * experts
        shared_inter = text.get("shared_expert_intermediate_size")
        if shared_inter:
            groups.shared_experts = moe_layers * 3 * hidden * int(shared_inter)
        else:
            shared = families.shared_experts(text)
            groups.shared_experts = moe_layers * 3 * hidden * moe_inter * shared
    groups.dense_mlp = (layers - moe_layers) * 3 * hidden * dense_inter
    return groups


def _vision_params(vision: Mapping[str, Any], text_hidden: int) -> int:
    """A ViT encoder plus a two-layer projector; an estimate, the checkpoint size is exact."""
    hidden = int(vision.get("hidden_size") or 0)
    if not hidden:
        return 0
    layers = int(vision.get("num_hidden_layers") or vision.get("depth") or 0)
    inter = int(vision.get("intermediate_size") or 4 * hidden)
    gated = str(vision.get("hidden_act", "")).lower() in ("silu", "swiglu")
    patch = int(vision.get("patch_size") or 14)
    channels = int(vision.get("num_channels") or vision.get("in_channels") or 3)
    per_layer = 4 * hidden * hidden + (3 if gated else 2) * hidden * inter + 4 * hidden
    return (
        layers * per_layer
        + channels * patch * patch * hidden
        + hidden * text_hidden
        + text_hidden**2
    )


def _high_precision(groups: ParamGroups, declared: Declared, layers: int) -> int | None:
    """Parameters a quantized checkpoint keeps at 16 bit (None for a 16-bit checkpoint)."""
    if declared.scheme is None:
        return None
    always = groups.embed + groups.lm_head + groups.norms + groups.router + groups.vision
    if declared.format == "mxfp4":
        # MXFP4 quantizes the routed experts only (vLLM/SGLang Mxfp4 MoE methods).
        return always + groups.attention + groups.dense_mlp + groups.shared_experts
    share = unquantized_share(declared.scheme.unquantized_modules, layers)
    kept = sum(
        int(getattr(groups, group) * fraction)
        for group, fraction in share.items()
        if group in ("attention", "dense_mlp", "shared_experts", "experts")
    )
    return always + kept


# ---------------------------------------------------------------------------------------------
# MTP layers in the checkpoint
# ---------------------------------------------------------------------------------------------

_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def _mtp_tensors(index: Mapping[str, Any] | None, layers: int) -> list[str] | None:
    """Tensor names of MTP layers in the index (None when there is no weight map)."""
    weight_map = index.get("weight_map") if index is not None else None
    if not isinstance(weight_map, Mapping):
        return None
    names = []
    for name in weight_map:
        match = _LAYER.search(name)
        if (match and int(match.group(1)) >= layers) or name.startswith("mtp."):
            names.append(name)
    return names


def _mtp_params(text: Mapping[str, Any], count: int, path: str, copies: int) -> int:
    """One MTP module per layer: a decoder layer, eh_proj (2h x h), three norms, and any
    copies of the embedding / head the checkpoint stores inside the module."""
    hidden = int(text["hidden_size"])
    experts = _experts(text)
    layer = _attention_params(text, path) + 2 * hidden
    if experts:
        moe_inter = int(text.get("moe_intermediate_size") or text.get("intermediate_size") or 0)
        shared_inter = text.get("shared_expert_intermediate_size")
        shared = (
            3 * hidden * int(shared_inter)
            if shared_inter
            else 3 * hidden * moe_inter * int(text.get("n_shared_experts") or 0)
        )
        layer += experts * 3 * hidden * moe_inter + hidden * experts + shared
    else:
        layer += 3 * hidden * int(text.get("intermediate_size") or 4 * hidden)
    module = layer + 2 * hidden * hidden + 3 * hidden
    return count * module + copies * int(text["vocab_size"]) * hidden


# ---------------------------------------------------------------------------------------------
# The profile
# ---------------------------------------------------------------------------------------------


def _text_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
    text = config.get("text_config")
    if isinstance(text, Mapping):
        merged = dict(text)
        # Wrappers put some fields beside text_config (quantization, tied embeddings).
        for key in ("quantization_config", "tie_word_embeddings", "torch_dtype", "dtype"):
            if key not in merged and key in config:
                merged[key] = config[key]
        return merged
    return config


def _checkpoint_bytes(files: CheckpointFiles) -> int | None:
    if files.index is not None:
        metadata = files.index.get("metadata")
        total = metadata.get("total_size") if isinstance(metadata, Mapping) else None
        if total is None:
            return None
        if isinstance(total, bool) or not isinstance(total, (int, float)) or total <= 0:
            raise CatalogError(
                f"{files.index_path}: field 'metadata.total_size' must be a positive integer"
            )
        return int(total)
    if files.single_file_params:
        return int(
            sum(
                count * SAFETENSORS_DTYPE_BYTES.get(dtype, 2)
                for dtype, count in files.single_file_params.items()
            )
        )
    return None


def profile_from_files(files: CheckpointFiles, identity: Identity) -> ModelProfile:
    """Build a ModelProfile; a missing or malformed field is a CatalogError naming it."""
    path = files.config_path
    try:
        return _profile(files, identity)
    except KeyError as error:
        raise CatalogError(
            f"{path}: field {error.args[0]!r} is missing", "is this a causal LM config.json?"
        ) from error
    except (TypeError, ValueError, IndexError) as error:
        raise CatalogError(f"{path}: a field has an unexpected value ({error})") from error


# Class defaults worth naming in a profile's notes when config.json leaves them out.
_NOTED_DEFAULTS = frozenset(
    {"vocab_size", "max_position_embeddings", "num_key_value_heads", "head_dim", "hidden_size",
     "num_hidden_layers", "intermediate_size", "sliding_window", "tie_word_embeddings"}
)  # fmt: skip


def _profile(files: CheckpointFiles, identity: Identity) -> ModelProfile:
    config, path = files.config, files.config_path
    raw_text = _text_config(config)
    parent_type = str(config.get("model_type") or "") if raw_text is not config else ""
    # Fields config.json leaves out take the configuration class's defaults, as in the engines.
    text: Mapping[str, Any] = config_defaults.with_defaults(raw_text, parent_type)
    filled = _NOTED_DEFAULTS.intersection(config_defaults.filled_fields(raw_text, parent_type))
    architectures = config.get("architectures") or text.get("architectures") or ["unknown"]
    architecture = str(architectures[0])
    model_type = str(text.get("model_type") or config.get("model_type") or "unknown")
    _positive_int(text, "hidden_size", path)
    layers = _positive_int(text, "num_hidden_layers", path)
    layout = layer_kinds.describe(text, layers)
    if layout.text_updates:
        text = {**text, **layout.text_updates}
    groups = count_params(text, path)
    if layout.params is not None:
        for group, value in layout.params.items():
            setattr(groups, group, value)
    for group, value in layout.extra_params.items():
        setattr(groups, group, getattr(groups, group) + value)
    hidden = _positive_int(text, "hidden_size", path)
    heads = _positive_int(text, "num_attention_heads", path)
    kv_heads = _positive_int(text, "num_key_value_heads", path, default=heads)
    vision = config.get("vision_config")
    if isinstance(vision, Mapping):
        groups.vision = _vision_params(vision, hidden)
    declared = declared_format(text, files.hf_quant, path)
    total = groups.total
    active = total - groups.inactive_experts
    mla = bool(text.get("kv_lora_rank"))
    warnings = list(identity.extra_warnings)
    notes: list[str] = list(layout.notes)
    if filled:
        notes.append(
            f"config.json leaves {', '.join(sorted(filled))} to the {model_type} class defaults "
            f"({config_defaults.source().split(' (')[0]})"
        )
    if not families.is_known(model_type) and not families.is_known(
        str(config.get("model_type", ""))
    ):
        warnings.append(
            f"{architecture} (model_type {model_type!r}) is not a family deploy knows: "
            "planned as a generic decoder from the standard config fields; check the memory"
        )
    checkpoint_bytes = _checkpoint_bytes(files)
    high = _high_precision(groups, declared, layers)
    mtp_count = families.mtp_layers(text)
    mtp_tensors = _mtp_tensors(files.index, layers)
    mtp_params = 0
    if mtp_count and (mtp_tensors is None or mtp_tensors):
        copies = sum(
            1
            for name in mtp_tensors or []
            if name.endswith(("embed_tokens.weight", "shared_head.head.weight"))
        )
        mtp_params = _mtp_params(text, mtp_count, path, copies)
        if mtp_tensors is not None and checkpoint_bytes is not None:
            # The index counts the MTP tensors; the served weights leave them out.
            per_weight = (
                scheme_bytes_per_weight(declared.scheme) if declared.scheme is not None else 2.0
            )
            checkpoint_bytes = max(1, checkpoint_bytes - int(mtp_params * per_weight))
        notes.append(
            f"the checkpoint ships {mtp_count} MTP layer(s) "
            f"({mtp_params / 1e9:.1f}B params): weights leave them out; they load only with "
            "speculative decoding (MTP / EAGLE), which adds them and one more layer of KV"
        )
    data: dict[str, Any] = {
        "name": identity.name,
        "hf_id": identity.hf_id,
        "family": model_type,
        "architecture": architecture,
        "attention": "mla" if mla else ("gqa" if kv_heads < heads else "mha"),
        "num_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": int(text.get("head_dim") or hidden // heads),
        "intermediate_size": int(
            text.get("intermediate_size_mlp") or text.get("intermediate_size") or 4 * hidden
        ),
        "vocab_size": _positive_int(text, "vocab_size", path),
        "max_context": _positive_int(
            text, "max_position_embeddings", path, default=DEFAULT_MAX_CONTEXT
        ),
        "tie_word_embeddings": families.ties_embeddings(text),
        "params_total": total,
        "params_active": active,
        "mtp_params": mtp_params,
        "mtp_layers": mtp_count if mtp_params else 0,
        "checkpoint": {
            "format": declared.format,
            "block_size": declared.block_size,
            "bytes": checkpoint_bytes,
            "bf16_params": high,
            "scheme": declared.scheme.model_dump() if declared.scheme is not None else None,
        },
        "multimodal": isinstance(vision, Mapping),
        "source": identity.source,
        "origin": identity.origin,
        "revision": identity.revision,
        "notes": tuple(notes),
        "warnings": tuple(warnings),
    }
    if mla:
        data["head_dim"] = int(text["qk_nope_head_dim"]) + int(text["qk_rope_head_dim"])
        data["v_head_dim"] = int(text["v_head_dim"])
        data["kv_lora_rank"] = int(text["kv_lora_rank"])
        data["qk_rope_head_dim"] = int(text["qk_rope_head_dim"])
    experts = _experts(text) if layout.moe_layers != 0 else 0
    if experts:
        data["moe"] = {
            "num_experts": experts,
            "experts_per_token": int(text.get("num_experts_per_tok") or 1),
            "moe_intermediate_size": int(
                text.get("moe_intermediate_size") or text.get("intermediate_size") or 0
            ),
            "shared_experts": families.shared_experts(text),
            "first_dense_layers": int(text.get("first_k_dense_replace") or 0),
            "moe_layer_step": int(
                text.get("interleave_moe_layer_step") or text.get("decoder_sparse_step") or 1
            ),
        }
        if layout.moe_layers:
            # Block-pattern hybrids: MoE only on their `E` blocks, squared-ReLU experts.
            data["moe"].update(moe_layers=layout.moe_layers, matrices_per_expert=2)
    local = families.local_attention(text, layers)
    if local is not None:
        data["local_attention"] = local
    linear = families.linear_attention(text, layers)
    if linear is not None:
        data["linear_attention"] = linear
    index = families.indexer(text)
    if index is not None and mla:
        data["indexer"] = index
    expert_format = layout.profile.pop("expert_format", None)
    if expert_format is not None and expert_format != declared.format:
        data["checkpoint"]["expert_format"] = expert_format
    data.update(layout.profile)
    try:
        return ModelProfile.model_validate(data)
    except ValidationError as error:
        raise CatalogError(f"{path}: {validation_message(error)}") from error
