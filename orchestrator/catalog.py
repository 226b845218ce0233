"""Loading and matching model and GPU profiles, and importing a local `config.json`.

The catalog is read once per process (`functools.cache`): `deploy plan` asks for a model and a
GPU many times while it sweeps candidates, so every lookup after the first is a dict access.
No arithmetic about memory lives here; parameter counts for a local `config.json` are the one
exception, because a profile needs them and only the config knows the shapes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.errors import CatalogError
from orchestrator.profile_cache import cached_documents
from orchestrator.resources import profiles_dir
from orchestrator.schema import GpuSpec, ModelProfile

_LIST_HINT = "run `deploy profiles list` to see the catalog"
_GPU_LIST_HINT = "run `deploy profiles list --gpus` to see the GPUs"

# The C loader is ~10x faster than the pure-Python one; fall back when libyaml is absent.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ---------------------------------------------------------------------------------------------
# YAML profiles
# ---------------------------------------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror}") from error
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CatalogError(
            f"{path}:{where}: invalid YAML ({error.problem})", "fix the syntax of that file"
        ) from error
    except yaml.YAMLError as error:
        raise CatalogError(
            f"{path}: invalid YAML ({error})", "fix the syntax of that file"
        ) from error


def _validation_message(error: ValidationError) -> str:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"field {field!r}: {first['msg']}"


def _load_profile(path: Path, data: Any, schema: type[Any]) -> Any:
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        raise CatalogError(
            f"{path}: {_validation_message(error)}", "fix that field of the profile"
        ) from error


def _parsed(directory: Path) -> Iterable[tuple[Path, Any]]:
    # Lazily: a file is parsed only after the ones before it validated.
    return ((path, _read_yaml(path)) for path in sorted(directory.glob("*.yaml")))


def load_models_from(
    directory: Path, documents: list[tuple[Path, Any]] | None = None
) -> dict[str, ModelProfile]:
    """Every model profile in `directory`, by canonical name (not cached; for tests and tools)."""
    models: dict[str, ModelProfile] = {}
    for path, data in _parsed(directory) if documents is None else documents:
        profile: ModelProfile = _load_profile(path, data, ModelProfile)
        if profile.name in models:
            raise CatalogError(f"{path}: model name {profile.name!r} is defined twice")
        models[profile.name] = profile
    return models


def load_gpus_from(
    directory: Path, documents: list[tuple[Path, Any]] | None = None
) -> dict[str, GpuSpec]:
    """Every GPU profile in `directory`, by canonical name (not cached)."""
    gpus: dict[str, GpuSpec] = {}
    for path, data in _parsed(directory) if documents is None else documents:
        spec: GpuSpec = _load_profile(path, data, GpuSpec)
        if spec.name in gpus:
            raise CatalogError(f"{path}: GPU name {spec.name!r} is defined twice")
        gpus[spec.name] = spec
    return gpus


@cache
def load_models() -> dict[str, ModelProfile]:
    """The shipped model catalog, by canonical name (parsed YAML cached across runs)."""
    directory = profiles_dir() / "models"
    return load_models_from(directory, cached_documents(directory, _read_yaml))


@cache
def load_gpus() -> dict[str, GpuSpec]:
    """The shipped GPU catalog, by canonical name (parsed YAML cached across runs)."""
    directory = profiles_dir() / "gpus"
    return load_gpus_from(directory, cached_documents(directory, _read_yaml))


# ---------------------------------------------------------------------------------------------
# Model lookup
# ---------------------------------------------------------------------------------------------


def _model_key(text: str) -> str:
    """Case-folded, with separators unified: 'Qwen3:32B' and 'qwen3_32b' both give 'qwen3-32b'."""
    return re.sub(r"[\s_:]+", "-", text.strip().lower())


def _model_keys(profile: ModelProfile) -> Iterable[str]:
    base = profile.hf_id.rsplit("/", 1)[-1]
    yield profile.name
    yield from profile.aliases
    yield profile.hf_id
    yield base
    for suffix in ("-instruct", "-instruct-2507", "-v0.1"):
        if base.lower().endswith(suffix):
            yield base[: -len(suffix)]


def build_model_index(models: Mapping[str, ModelProfile]) -> dict[str, str]:
    """Every accepted spelling -> canonical name. Raises when two models claim one spelling."""
    index: dict[str, str] = {}
    for profile in models.values():
        for spelling in _model_keys(profile):
            key = _model_key(spelling)
            owner = index.get(key)
            if owner is not None and owner != profile.name:
                raise CatalogError(
                    f"model alias {spelling!r} is claimed by both {owner!r} and {profile.name!r}",
                    "make aliases unique in profiles/models/",
                )
            index[key] = profile.name
    return index


@cache
def _model_index() -> dict[str, str]:
    return build_model_index(load_models())


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or Path(text).expanduser().is_dir()


def find_model(text: str) -> ModelProfile:
    """A model by alias, HF id or name (case-insensitive), or a local directory with config.json."""
    candidate = Path(text).expanduser()
    models = load_models()
    name = _model_index().get(_model_key(text))
    # A directory wins, unless it is a stray folder named like a catalog model.
    if candidate.is_dir() and (name is None or (candidate / "config.json").is_file()):
        return model_from_config(candidate)
    if name is not None:
        return models[name]
    if _looks_like_path(text):
        raise CatalogError(
            f"model directory {text!r} does not exist",
            "pass a catalog name or a directory holding config.json",
        )
    import difflib  # only for a name that is not in the catalog

    close = difflib.get_close_matches(_model_key(text), list(_model_index()), n=3, cutoff=0.6)
    names = list(dict.fromkeys(_model_index()[key] for key in close))
    hint = f"did you mean {', '.join(names)}? " if names else ""
    raise CatalogError(
        f"unknown model {text!r}",
        f"{hint}{_LIST_HINT}, or pass a local directory with config.json",
    )


# ---------------------------------------------------------------------------------------------
# GPU lookup
# ---------------------------------------------------------------------------------------------

_VENDOR_WORDS = ("nvidia", "geforce", "amd", "instinct", "tesla")


def _gpu_key(text: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", text.lower())
    for word in _VENDOR_WORDS:
        key = key.removeprefix(word)
    return key


def _gpu_tokens(text: str) -> frozenset[str]:
    tokens = re.findall(r"[a-z]+|\d+", text.lower())
    return frozenset(token for token in tokens if token not in _VENDOR_WORDS)


def build_gpu_index(gpus: Mapping[str, GpuSpec]) -> dict[str, str]:
    """Every accepted spelling (name, alias, NVML name) -> canonical GPU name."""
    index: dict[str, str] = {}
    for spec in gpus.values():
        for spelling in (spec.name, *spec.aliases, *spec.nvml_names):
            key = _gpu_key(spelling)
            owner = index.get(key)
            if owner is not None and owner != spec.name:
                raise CatalogError(
                    f"GPU alias {spelling!r} is claimed by both {owner!r} and {spec.name!r}",
                    "make aliases unique in profiles/gpus/",
                )
            index[key] = spec.name
    return index


@cache
def _gpu_index() -> dict[str, str]:
    return build_gpu_index(load_gpus())


def find_gpu(text: str) -> GpuSpec:
    """A GPU by name, alias or NVML name, forgiving about case, spaces, dashes and word order.

    A bare family name picks the common board: H100 and H800 -> SXM 80 GB, A100 -> SXM 80 GB,
    H200 -> SXM 141 GB (see each profile's aliases).
    """
    gpus = load_gpus()
    key = _gpu_key(text)
    name = _gpu_index().get(key)
    if name is not None:
        return gpus[name]
    # Word-order-free match: every word the user typed appears in one GPU's names.
    wanted = _gpu_tokens(text)
    if wanted:
        matches = [
            spec
            for spec in gpus.values()
            if any(
                wanted <= _gpu_tokens(spelling)
                for spelling in (spec.name, *spec.aliases, *spec.nvml_names)
            )
        ]
        if len(matches) > 1:
            # "H100 80GB" names both SXM and PCIe boards: the SXM board is the common default.
            sxm = [spec for spec in matches if spec.form_factor == "sxm"]
            matches = sxm if len(sxm) == 1 else matches
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            options = ", ".join(spec.name for spec in matches)
            raise CatalogError(f"GPU {text!r} is ambiguous", f"use one of: {options}")
    import difflib

    close = difflib.get_close_matches(key, list(_gpu_index()), n=5, cutoff=0.5)
    names = list(dict.fromkeys(_gpu_index()[match] for match in close))
    hint = f"did you mean {', '.join(names)}? " if names else ""
    raise CatalogError(f"unknown GPU {text!r}", f"{hint}{_GPU_LIST_HINT}")


_SPEC_RE = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\S.*)$", re.IGNORECASE)


def parse_gpu_spec(text: str) -> tuple[int | None, GpuSpec]:
    """`8xH200`, `8x H100-80GB`, `4*RTX4090` or a bare name (count None)."""
    if not text or not text.strip():
        raise CatalogError("empty GPU spec", "write it as COUNTxGPU, e.g. 8xH100")
    match = _SPEC_RE.match(text)
    if match is None:
        return None, find_gpu(text)
    count = int(match.group(1))
    if count < 1:
        raise CatalogError(
            f"GPU spec {text!r} asks for {count} GPUs", "the count must be at least 1, e.g. 8xH100"
        )
    return count, find_gpu(match.group(2))


def gpu_from_nvml_name(name: str, memory_bytes: int | None = None) -> GpuSpec | None:
    """The catalog entry for a name NVML reports, or None when the GPU is not in the catalog.

    When several entries share the name, the one whose memory is closest to `memory_bytes` wins.
    """
    folded = name.strip().casefold()
    gpus = load_gpus().values()
    matches = [spec for spec in gpus if folded in (n.casefold() for n in spec.nvml_names)]
    if not matches:
        # Exact spellings only (no word-subset guess): "NVIDIA L40" must not become an L40S.
        canonical = _gpu_index().get(_gpu_key(name))
        if canonical is None:
            return None
        matches = [load_gpus()[canonical]]
    if memory_bytes is not None and len(matches) > 1:
        memory_gib = memory_bytes / 2**30
        matches.sort(key=lambda spec: abs(spec.memory_gib - memory_gib))
    return matches[0]


# ---------------------------------------------------------------------------------------------
# Local model directories (config.json)
# ---------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(f"cannot read {path}: {error.strerror}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CatalogError(
            f"{path}: invalid JSON at line {error.lineno} column {error.colno} ({error.msg})",
            "fix or re-download that file",
        ) from error


def model_from_config(directory: Path) -> ModelProfile:
    """A profile built from a Hugging Face model directory.

    Reads `config.json` (multimodal configs use their `text_config`), and
    `model.safetensors.index.json` when present, whose `total_size` is the exact weight bytes.
    """
    directory = directory.expanduser()
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CatalogError(
            f"{directory} has no config.json",
            "pass a Hugging Face model directory (config.json and *.safetensors)",
        )
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise CatalogError(f"{config_path}: expected a JSON object")
    checkpoint_bytes: int | None = None
    index_path = directory / "model.safetensors.index.json"
    if index_path.is_file():
        index = _read_json(index_path)
        total = index.get("metadata", {}).get("total_size") if isinstance(index, dict) else None
        if total is not None:
            if not isinstance(total, int) or total <= 0:
                raise CatalogError(
                    f"{index_path}: field 'metadata.total_size' must be a positive integer"
                )
            checkpoint_bytes = total
    try:
        return profile_from_hf_config(config, directory, config_path, checkpoint_bytes)
    except KeyError as error:
        raise CatalogError(
            f"{config_path}: field {error.args[0]!r} is missing", "is this a causal LM config.json?"
        ) from error
    except (TypeError, ValueError, IndexError) as error:
        raise CatalogError(f"{config_path}: a field has an unexpected value ({error})") from error


def _field(config: Mapping[str, Any], key: str, path: Path, *, default: Any = ...) -> Any:
    value = config.get(key, default)
    if value is ...:
        raise CatalogError(f"{path}: field {key!r} is missing", "is this a causal LM config.json?")
    if value is not None and not isinstance(value, (int, float, bool, str, list, dict)):
        raise CatalogError(f"{path}: field {key!r} has an unexpected value {value!r}")
    return value


def _positive_int(config: Mapping[str, Any], key: str, path: Path, default: Any = ...) -> int:
    value = _field(config, key, path, default=default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CatalogError(f"{path}: field {key!r} must be a positive integer, got {value!r}")
    return value


def _checkpoint_format(config: Mapping[str, Any]) -> tuple[str, tuple[int, int] | None]:
    """(format, fp8 block size) from quantization_config, else from torch_dtype."""
    quant = config.get("quantization_config") or {}
    method = str(quant.get("quant_method", "")).lower() if isinstance(quant, dict) else ""
    if method == "fp8":
        block = quant.get("weight_block_size")
        return "fp8", (int(block[0]), int(block[1])) if block else None
    if method == "mxfp4":
        return "mxfp4", None
    if method in ("awq", "gptq", "awq_marlin", "gptq_marlin"):
        return ("int8" if quant.get("bits") == 8 else "int4"), None
    if method == "compressed-tensors":
        groups = quant.get("config_groups") or {}
        for group in groups.values():
            weights = group.get("weights") or {}
            bits = weights.get("num_bits")
            if bits == 8:
                return ("fp8" if weights.get("type") == "float" else "int8"), None
            if bits == 4:
                return "int4", None
    if method == "bitsandbytes":
        return ("int8" if quant.get("load_in_8bit") else "int4"), None
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    return ("fp16" if dtype == "float16" else "bf16"), None


def _count_params(text: Mapping[str, Any], path: Path) -> tuple[int, int, int, int]:
    """(total, active, expert params, non-linear params) of a decoder from config shapes."""
    hidden = _positive_int(text, "hidden_size", path)
    layers = _positive_int(text, "num_hidden_layers", path)
    heads = _positive_int(text, "num_attention_heads", path)
    kv_heads = _positive_int(text, "num_key_value_heads", path, default=heads)
    vocab = _positive_int(text, "vocab_size", path)
    head_dim = text.get("head_dim") or hidden // heads
    tied = bool(text.get("tie_word_embeddings", False))
    embeddings = vocab * hidden * (1 if tied else 2)
    if text.get("kv_lora_rank"):
        rope, nope = text["qk_rope_head_dim"], text["qk_nope_head_dim"]
        v_dim, kv_rank, q_rank = text["v_head_dim"], text["kv_lora_rank"], text.get("q_lora_rank")
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
    else:
        attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
        if text.get("attention_bias") or text.get("model_type") == "qwen2":
            attention += head_dim * (heads + 2 * kv_heads)
    norms = 2 * hidden
    if text.get("use_qk_norm") or text.get("model_type") in ("qwen3", "qwen3_moe"):
        norms += 2 * head_dim  # per-head RMSNorm on q and k
    dense_inter = int(
        text.get("intermediate_size_mlp") or text.get("intermediate_size") or 4 * hidden
    )
    experts = int(
        text.get("n_routed_experts")
        or text.get("num_experts")
        or text.get("num_local_experts")
        or 0
    )
    moe_layers = 0
    per_expert = top_k = router = shared = 0
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
        router = hidden * experts
        shared_inter = text.get("shared_expert_intermediate_size")
        shared = (
            3 * hidden * int(shared_inter)
            if shared_inter
            else 3 * hidden * moe_inter * int(text.get("n_shared_experts") or 0)
        )
    dense_layers = layers - moe_layers
    expert_params = moe_layers * experts * per_expert
    total = (
        embeddings
        + hidden
        + layers * (attention + norms)
        + dense_layers * 3 * hidden * dense_inter
        + moe_layers * (router + shared)
        + expert_params
    )
    active = total - moe_layers * (experts - top_k) * per_expert
    non_linear = embeddings + hidden + layers * norms + moe_layers * router
    return total, active, expert_params, non_linear


def _vision_params(vision: Mapping[str, Any], text_hidden: int) -> int:
    """A ViT encoder plus a two-layer projector; an estimate, the checkpoint size is exact."""
    hidden = int(vision.get("hidden_size") or 0)
    if not hidden:
        return 0
    layers = int(vision.get("num_hidden_layers") or vision.get("depth") or 0)
    inter = int(vision.get("intermediate_size") or 4 * hidden)
    gated = str(vision.get("hidden_act", "")).lower() in ("silu", "swiglu")
    patch = int(vision.get("patch_size") or 14)
    channels = int(vision.get("num_channels") or 3)
    per_layer = 4 * hidden * hidden + (3 if gated else 2) * hidden * inter + 4 * hidden
    return (
        layers * per_layer
        + channels * patch * patch * hidden
        + hidden * text_hidden
        + text_hidden**2
    )


def _local_attention(text: Mapping[str, Any], layers: int) -> dict[str, Any] | None:
    layer_types = text.get("layer_types")
    if isinstance(layer_types, list) and text.get("sliding_window"):
        sliding = sum(1 for kind in layer_types if kind == "sliding_attention")
        if sliding:
            return {"kind": "sliding", "window": int(text["sliding_window"]), "layers": sliding}
    if text.get("attention_chunk_size"):
        # Llama 4: three of every four layers use chunked local attention.
        return {
            "kind": "chunked",
            "window": int(text["attention_chunk_size"]),
            "layers": layers - layers // 4,
        }
    if text.get("sliding_window") and text.get("use_sliding_window", True) is not False:
        return {"kind": "sliding", "window": int(text["sliding_window"]), "layers": layers}
    return None


def profile_from_hf_config(
    config: Mapping[str, Any], directory: Path, path: Path, checkpoint_bytes: int | None
) -> ModelProfile:
    """Build a ModelProfile from a parsed config.json (errors name `path` and the field)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, Mapping)
    architectures = config.get("architectures") or ["unknown"]
    total, active, expert_params, non_linear = _count_params(text, path)
    vision = config.get("vision_config")
    multimodal = isinstance(vision, dict)
    if isinstance(vision, dict):
        vision_params = _vision_params(vision, int(text["hidden_size"]))
        total += vision_params
        active += vision_params
        non_linear += vision_params  # the engines keep vision towers unquantized
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    mla = bool(text.get("kv_lora_rank"))
    fmt, block = _checkpoint_format(text if "quantization_config" in text else config)
    experts = int(
        text.get("n_routed_experts")
        or text.get("num_experts")
        or text.get("num_local_experts")
        or 0
    )
    data: dict[str, Any] = {
        "name": directory.resolve().name.lower(),
        "hf_id": str(config.get("_name_or_path") or directory.resolve().name),
        "family": str(text.get("model_type") or config.get("model_type") or "unknown"),
        "architecture": str(architectures[0]),
        "attention": "mla" if mla else ("gqa" if kv_heads < heads else "mha"),
        "num_layers": layers,
        "hidden_size": int(text["hidden_size"]),
        "num_attention_heads": heads,
        "num_kv_heads": kv_heads,
        "head_dim": int(text.get("head_dim") or int(text["hidden_size"]) // heads),
        "intermediate_size": int(
            text.get("intermediate_size_mlp")
            or text.get("intermediate_size")
            or 4 * int(text["hidden_size"])
        ),
        "vocab_size": int(text["vocab_size"]),
        "max_context": _positive_int(text, "max_position_embeddings", path, default=4096),
        "tie_word_embeddings": bool(
            text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))
        ),
        "params_total": total,
        "params_active": active,
        "checkpoint": {"format": fmt, "block_size": block, "bytes": checkpoint_bytes},
        "multimodal": multimodal,
        "source": f"local:{directory}",
    }
    if mla:
        data["head_dim"] = int(text["qk_nope_head_dim"]) + int(text["qk_rope_head_dim"])
        data["v_head_dim"] = int(text["v_head_dim"])
        data["kv_lora_rank"] = int(text["kv_lora_rank"])
        data["qk_rope_head_dim"] = int(text["qk_rope_head_dim"])
    if experts:
        data["moe"] = {
            "num_experts": experts,
            "experts_per_token": int(text.get("num_experts_per_tok") or 1),
            "moe_intermediate_size": int(
                text.get("moe_intermediate_size") or text.get("intermediate_size") or 0
            ),
            "shared_experts": int(text.get("n_shared_experts") or 0),
            "first_dense_layers": int(text.get("first_k_dense_replace") or 0),
            "moe_layer_step": int(
                text.get("interleave_moe_layer_step") or text.get("decoder_sparse_step") or 1
            ),
        }
    local = _local_attention(text, layers)
    if local is not None:
        data["local_attention"] = local
    if fmt == "mxfp4":
        data["checkpoint"]["bf16_params"] = total - expert_params
    elif fmt != "bf16" and fmt != "fp16":
        data["checkpoint"]["bf16_params"] = non_linear
    mtp_layers = int(text.get("num_nextn_predict_layers") or 0)
    if mtp_layers:
        data["notes"] = (
            f"config ships {mtp_layers} MTP layer(s); they load only with speculative decoding",
        )
    try:
        return ModelProfile.model_validate(data)
    except ValidationError as error:
        raise CatalogError(f"{path}: {_validation_message(error)}") from error
