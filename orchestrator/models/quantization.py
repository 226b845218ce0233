"""Quantization formats: what a checkpoint declares, its bytes per weight, and who can run it.

A checkpoint names its format in `config.json`'s `quantization_config` (or, for NVIDIA
ModelOpt exports, in `hf_quant_config.json`). Bytes per weight count the packed values and the
scales (and zero points) stored beside them, the way the engines' loaders allocate them:

* block-scaled FP8 (DeepSeek style): 1 byte + one fp32 scale per block (128x128);
* per-channel / per-tensor FP8 and INT8: 1 byte (one scale per row is negligible);
* AWQ / GPTQ / compressed-tensors WnA16: n bits + a 16-bit scale (and an n-bit zero point
  when asymmetric) per group of `group_size` weights;
* ModelOpt NVFP4: 4 bits + one FP8 scale per 16 weights; MXFP4: 4 bits + one 8-bit exponent
  per 32 weights; bitsandbytes NF4: 4 bits + one fp32 absmax per 64 weights (double
  quantization: an 8-bit absmax plus a fp32 scale per 256 of those).

Which hardware runs each format follows the engines' kernel requirements: FP8 tensor cores
exist from compute capability 8.9 (Ada, Hopper); on 8.0-8.6 both engines fall back to Marlin
weight-only FP8 kernels (the weights stay 1 byte, compute is BF16). FP4 (NVFP4) needs
Blackwell (10.0 / 12.0). MXFP4 runs natively from Hopper and through Marlin on Ampere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import CatalogError, PlanError
from orchestrator.schema import Checkpoint, GpuSpec, QuantScheme

BF16_BYTES = 2.0
FP8_MIN_CAPABILITY = (8, 9)
MARLIN_MIN_CAPABILITY = (8, 0)
FP4_MIN_CAPABILITY = (10, 0)
MXFP4_NATIVE_CAPABILITY = (9, 0)


@dataclass(frozen=True)
class Declared:
    """A checkpoint's weight format as the planner sizes it."""

    format: str  # deploy's WeightFormat
    block_size: tuple[int, int] | None
    scheme: QuantScheme | None


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _patterns(config: Mapping[str, Any], *keys: str) -> tuple[str, ...]:
    found: list[str] = []
    for key in keys:
        value = config.get(key)
        if isinstance(value, list):
            found.extend(str(item) for item in value if isinstance(item, str))
    return tuple(dict.fromkeys(found))


_UNQUANTIZED_KEYS: tuple[str, ...] = (
    "ignore",
    "ignored_layers",
    "modules_to_not_convert",
    "exclude_modules",
    "ignored_modules",
    "llm_int8_skip_modules",
)


def _compressed_tensors(quant: Mapping[str, Any], path: str) -> Declared:
    groups = _as_mapping(quant.get("config_groups"))
    ignore = _patterns(quant, *_UNQUANTIZED_KEYS)
    for group in groups.values():
        weights = _as_mapping(_as_mapping(group).get("weights"))
        bits = _int_or_none(weights.get("num_bits"))
        if bits is None:
            continue
        acts = _as_mapping(_as_mapping(group).get("input_activations"))
        act_bits = _int_or_none(acts.get("num_bits"))
        kind = str(weights.get("type", "int"))
        strategy = str(weights.get("strategy", "channel"))
        group_size = _int_or_none(weights.get("group_size"))
        symmetric = weights.get("symmetric", True) is not False
        if bits == 8 and kind == "float":
            block = weights.get("block_structure")
            block_size = (int(block[0]), int(block[1])) if strategy == "block" and block else None
            scheme = QuantScheme(
                method="compressed-tensors",
                weight_bits=8,
                group_size=block_size[0] * block_size[1] if block_size else None,
                scale_bytes=4.0,
                activation_bits=act_bits,
                unquantized_modules=ignore,
            )
            return Declared("fp8", block_size, scheme)
        if bits == 4 and kind == "float":
            # NVFP4 exported by llm-compressor: FP8 scale per 16 weights.
            scheme = QuantScheme(
                method="compressed-tensors",
                weight_bits=4,
                group_size=group_size or 16,
                scale_bytes=1.0,
                activation_bits=act_bits,
                unquantized_modules=ignore,
            )
            return Declared("nvfp4", None, scheme)
        scheme = QuantScheme(
            method="compressed-tensors",
            weight_bits=bits,
            group_size=group_size if strategy == "group" else None,
            scale_bytes=2.0,
            zero_point=not symmetric,
            activation_bits=act_bits,
            unquantized_modules=ignore,
        )
        return Declared("int8" if bits == 8 else "int4", None, scheme)
    raise CatalogError(
        f"{path}: field 'quantization_config.config_groups' has no weight scheme",
        "is the checkpoint's quantization_config complete?",
    )


def declared_format(
    config: Mapping[str, Any], hf_quant: Mapping[str, Any] | None, path: str
) -> Declared:
    """The checkpoint's format from `quantization_config` / `hf_quant_config.json`.

    `hf_quant_config.json` wins when it names an algorithm, as it does in the engines' loaders.
    Without either, the weights are the config's dtype (BF16 unless it says float16).
    """
    quant = _as_mapping(config.get("quantization_config"))
    modelopt = _as_mapping((hf_quant or {}).get("quantization"))
    if modelopt.get("quant_algo"):
        # The engines detect ModelOpt exports by this file first (it names the real format).
        quant = {"quant_method": "modelopt", **modelopt}
    method = str(quant.get("quant_method", "")).lower()
    ignore = _patterns(quant, *_UNQUANTIZED_KEYS)
    if not method:
        dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
        return Declared("fp16" if dtype == "float16" else "bf16", None, None)
    if method in ("fp8", "fbgemm_fp8", "w8a8_fp8"):
        block = quant.get("weight_block_size")
        block_size = (int(block[0]), int(block[1])) if isinstance(block, list) and block else None
        scheme = QuantScheme(
            method=method,
            weight_bits=8,
            group_size=block_size[0] * block_size[1] if block_size else None,
            scale_bytes=4.0,
            activation_bits=8,
            unquantized_modules=ignore,
        )
        return Declared("fp8", block_size, scheme)
    if method in ("blockwise_int8", "w8a8_int8"):
        block = quant.get("weight_block_size")
        block_size = (int(block[0]), int(block[1])) if isinstance(block, list) and block else None
        scheme = QuantScheme(
            method=method,
            weight_bits=8,
            group_size=block_size[0] * block_size[1] if block_size else None,
            scale_bytes=4.0,
            activation_bits=8,
            unquantized_modules=ignore,
        )
        return Declared("int8", block_size, scheme)
    if method == "mxfp4":
        scheme = QuantScheme(
            method="mxfp4",
            weight_bits=4,
            group_size=32,
            scale_bytes=1.0,
            unquantized_modules=ignore,
        )
        return Declared("mxfp4", None, scheme)
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin", "auto-round"):
        bits = _int_or_none(quant.get("bits") or quant.get("w_bit")) or 4
        group = quant.get("group_size", quant.get("q_group_size", 128))
        group_size = _int_or_none(group)  # -1: one scale per output channel
        zero = quant.get("zero_point", not quant.get("sym", True))
        scheme = QuantScheme(
            method=method.removesuffix("_marlin"),
            weight_bits=bits,
            group_size=group_size,
            scale_bytes=2.0,
            zero_point=bool(zero),
            unquantized_modules=ignore,
        )
        return Declared("int8" if bits == 8 else "int4", None, scheme)
    if method == "modelopt":
        algo = str(quant.get("quant_algo", "")).upper()
        if "FP4" in algo:
            scheme = QuantScheme(
                method="modelopt_fp4",
                weight_bits=4,
                group_size=_int_or_none(quant.get("group_size")) or 16,
                scale_bytes=1.0,
                activation_bits=4,
                unquantized_modules=ignore,
            )
            return Declared("nvfp4", None, scheme)
        if "FP8" in algo:
            scheme = QuantScheme(
                method="modelopt",
                weight_bits=8,
                scale_bytes=4.0,
                activation_bits=8,
                unquantized_modules=ignore,
            )
            return Declared("fp8", None, scheme)
        raise CatalogError(
            f"{path}: quant_algo {algo or '(none)'!r} of a ModelOpt checkpoint is not supported",
            "deploy plans ModelOpt FP8 and NVFP4 checkpoints",
        )
    if method == "compressed-tensors":
        return _compressed_tensors(quant, path)
    if method == "bitsandbytes":
        if quant.get("load_in_8bit"):
            scheme = QuantScheme(
                method="bitsandbytes", weight_bits=8, unquantized_modules=ignore, scale_bytes=0
            )
            return Declared("int8", None, scheme)
        double = bool(quant.get("bnb_4bit_use_double_quant"))
        scheme = QuantScheme(
            method="bitsandbytes",
            weight_bits=4,
            group_size=64,
            scale_bytes=1.0 + 4.0 / 256 if double else 4.0,
            unquantized_modules=ignore,
        )
        return Declared("int4", None, scheme)
    raise CatalogError(
        f"{path}: field 'quantization_config.quant_method' is {method!r}, a format deploy "
        "cannot size",
        "supported: fp8, fbgemm_fp8, compressed-tensors, awq, gptq, modelopt, mxfp4, "
        "blockwise_int8, w8a8_int8, bitsandbytes",
    )


# ---------------------------------------------------------------------------------------------
# Bytes per weight
# ---------------------------------------------------------------------------------------------

# Formats a user can ask for with --quantization (online quantization or a reinterpretation).
_REQUESTED_BYTES = {
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 2.5 / 128,  # AWQ/GPTQ default: 16-bit scale + 4-bit zero per 128
    # 4-bit values + one 8-bit exponent per 32. vLLM logs ~5% more "Model loading took" for
    # gpt-oss (load-time layout buffers), but its KV budgets match this size: size with it.
    "mxfp4": 0.5 + 1 / 32,
    "nvfp4": 0.5 + 1 / 16,
    "bf16": BF16_BYTES,
    "fp16": BF16_BYTES,
}


# What `--quantization` spellings mean as weight formats.
_REQUEST_ALIASES = {"awq": "int4", "gptq": "int4", "fp32": "bf16"}


def served_format(checkpoint: Checkpoint, quantization: str | None) -> str:
    """The weight format served: the checkpoint's, or what --quantization asks for."""
    if quantization is None:
        return checkpoint.format
    wanted = quantization.lower()
    return _REQUEST_ALIASES.get(wanted, wanted)


def scheme_bytes_per_weight(scheme: QuantScheme) -> float:
    """Packed value + its share of the group's scale and zero point."""
    value = scheme.weight_bits / 8
    if scheme.group_size is None:
        return value
    zero = scheme.weight_bits / 8 if scheme.zero_point else 0.0
    return value + (scheme.scale_bytes + zero) / scheme.group_size


def bytes_per_weight(fmt: str, checkpoint: Checkpoint) -> float:
    """Bytes one quantized linear weight takes in `fmt` (the checkpoint's own, or a request)."""
    if fmt == checkpoint.format and checkpoint.scheme is not None:
        return scheme_bytes_per_weight(checkpoint.scheme)
    if fmt == "fp8" and checkpoint.format == "fp8" and checkpoint.block_size is not None:
        block = checkpoint.block_size
        return 1.0 + 4.0 / (block[0] * block[1])
    return _REQUESTED_BYTES.get(fmt, BF16_BYTES)


# ---------------------------------------------------------------------------------------------
# Modules left at 16 bit
# ---------------------------------------------------------------------------------------------

_GROUP_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vision", ("visual", "vision", "mm_projector", "multi_modal_projector", "image")),
    ("lm_head", ("lm_head",)),
    ("shared_experts", ("shared_expert",)),
    ("router", ("router", "mlp.gate$", "mlp.gate.", "gate$", "block_sparse_moe.gate")),
    ("experts", ("experts",)),
    ("attention", ("attn", "attention", "q_proj", "k_proj", "v_proj", "o_proj", "qkv")),
    ("dense_mlp", ("mlp", "gate_proj", "up_proj", "down_proj", "feed_forward")),
)
_LAYER_INDEX = re.compile(r"layers\.(\d+)\.")


def module_group(pattern: str) -> str | None:
    """Which parameter group a module name or pattern of a config's ignore list refers to."""
    text = pattern.lower().removeprefix("re:")
    for group, words in _GROUP_WORDS:
        for word in words:
            if word.endswith("$"):
                if re.search(re.escape(word[:-1]) + r"[$)\\]*$", text):
                    return group
            elif word in text:
                return group
    return None


def unquantized_share(patterns: tuple[str, ...], num_layers: int) -> dict[str, float]:
    """Fraction of each parameter group the ignore list keeps at 16 bit.

    A pattern without a layer index covers the whole group; names of single layers
    (compressed-tensors writes them one by one) cover that many layers' share.
    """
    whole: set[str] = set()
    layers: dict[str, set[int]] = {}
    for pattern in patterns:
        group = module_group(pattern)
        if group is None:
            continue
        index = _LAYER_INDEX.search(pattern)
        if index is None:
            whole.add(group)
        else:
            layers.setdefault(group, set()).add(int(index.group(1)))
    share = {group: 1.0 for group in whole}
    for group, indices in layers.items():
        if group not in whole:
            share[group] = min(1.0, len(indices) / max(1, num_layers))
    return share


# ---------------------------------------------------------------------------------------------
# Who can run a format
# ---------------------------------------------------------------------------------------------


def _capability(gpu: GpuSpec) -> tuple[int, int] | None:
    text = gpu.compute_capability or ""
    match = re.fullmatch(r"(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def gpus_that_run(fmt: str, gpus: list[GpuSpec]) -> list[str]:
    """Catalog GPUs with native kernels for `fmt`, by name."""
    return [gpu.name for gpu in gpus if runs_natively(fmt, gpu)]


def runs_natively(fmt: str, gpu: GpuSpec) -> bool:
    cap = _capability(gpu)
    if fmt == "nvfp4":
        return gpu.vendor == "nvidia" and cap is not None and cap >= FP4_MIN_CAPABILITY
    if fmt == "fp8":
        return gpu.supports_fp8 or (cap is not None and cap >= FP8_MIN_CAPABILITY)
    if fmt == "mxfp4":
        return gpu.supports_mxfp4 or (cap is not None and cap >= MXFP4_NATIVE_CAPABILITY)
    return True


def check_runs(fmt: str, gpu: GpuSpec, all_gpus: list[GpuSpec]) -> None:
    """PlanError for weights the target cannot run; it names the GPUs or engine that can.

    FP8 on 8.0-8.6 and MXFP4 below Hopper run through Marlin weight-only kernels: they plan,
    and the resolver's warnings say the layers run slower.
    """
    if runs_natively(fmt, gpu) or (gpu.vendor == "amd" and fmt != "nvfp4"):
        return
    able = ", ".join(gpus_that_run(fmt, all_gpus)) or "none in the catalog"
    if fmt == "nvfp4":
        raise PlanError(
            f"{gpu.name} cannot run NVFP4 weights: FP4 kernels need Blackwell "
            "(compute capability 10.x or 12.0)",
            f"use one of: {able}; or a BF16/FP8 checkpoint of the model",
        )
    cap = _capability(gpu)
    if cap is None or cap < MARLIN_MIN_CAPABILITY:
        raise PlanError(
            f"{gpu.name} cannot run {fmt.upper()} weights: their kernels need compute "
            "capability 8.0 or newer",
            f"use one of: {able}",
        )
