"""Profiles read from config files: parameter counts, KV per token, formats and families."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.models.hf_config import CheckpointFiles, Identity, profile_from_files
from orchestrator.models.quantization import bytes_per_weight
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import (
    kv_bytes_per_token_per_gpu,
    linear_state_bytes_per_request_per_gpu,
    local_kv_bytes_per_token_layers,
)
from orchestrator.planning.memory.weights import weight_bytes_per_gpu
from orchestrator.schema import ModelProfile

from .fakehub import FIXTURES, build_index

REFERENCE = FIXTURES / "reference-models.json"
SINGLE = Parallelism()


def _reference_models() -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = json.loads(REFERENCE.read_text())["models"]
    return models


def _profile(config: dict[str, Any], **files: Any) -> ModelProfile:
    identity = Identity(name="m", hf_id="org/m", source="test", origin="hub", revision="0" * 40)
    return profile_from_files(
        CheckpointFiles(config=config, config_path="config.json", **files), identity
    )


def _fixture(name: str) -> ModelProfile:
    directory = FIXTURES / name
    config = json.loads((directory / "config.json").read_text())
    quant = directory / "hf_quant_config.json"
    meta_path = directory / "repo.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return _profile(
        config,
        hf_quant=json.loads(quant.read_text()) if quant.is_file() else None,
        index=build_index(config, meta),
    )


REFERENCE_MODELS = _reference_models()


@pytest.mark.parametrize("entry", REFERENCE_MODELS, ids=lambda entry: str(entry["id"]))
def test_reference_configs_give_the_published_counts(entry: dict[str, Any]) -> None:
    config = dict(entry["config"])
    config.pop("vision_config", None)  # the reference counts cover the text decoder
    profile = _profile(config)
    counts = entry["params"]["computed_from_config"]
    expected = counts.get("main_model_without_mtp") or counts["total"]
    assert profile.params_total == pytest.approx(expected, rel=0.01)
    kv = entry["kv_cache"]
    full = (
        kv.get("bytes_per_token_bf16")
        or kv.get("bytes_per_token_bf16_full_layers_only")
        or kv.get("bytes_per_token_bf16_global_layers_only")
    )
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == full


QWEN3_8B_FORMATS = {
    "fixtures--Qwen3-8B-AWQ": ("int4", 0.5 + (2 + 0.5) / 128),
    "fixtures--Qwen3-8B-GPTQ-Int8": ("int8", 1 + 2 / 128),
    "fixtures--Qwen3-8B-W4A16": ("int4", 0.5 + 2 / 128),
    "fixtures--Qwen3-8B-W8A8-INT8": ("int8", 1.0),
    "fixtures--Qwen3-8B-FP8-Dynamic": ("fp8", 1.0),
    "fixtures--Qwen3-8B-fbgemm-fp8": ("fp8", 1.0),
    "fixtures--Qwen3-8B-bnb-4bit": ("int4", 0.5 + (1 + 4 / 256) / 64),
    "fixtures--Qwen3-8B-blockwise-int8": ("int8", 1 + 4 / (128 * 128)),
    "fixtures--Qwen3-8B-w8a8-int8": ("int8", 1.0),
    "fixtures--Qwen3-8B-NVFP4": ("nvfp4", 0.5 + 1 / 16),
    "Qwen--Qwen3-32B-FP8-Static-PerTensor": ("fp8", 1.0),
    "nvidia--Llama-3.1-70B-Instruct-FP8": ("fp8", 1.0),
    "Qwen--Qwen3-Coder-480B-A35B-Instruct-FP8": ("fp8", 1 + 4 / (128 * 128)),
    "nvidia--DeepSeek-R1-FP4": ("nvfp4", 0.5 + 1 / 16),
}


@pytest.mark.parametrize("name", sorted(QWEN3_8B_FORMATS))
def test_bytes_per_weight_follow_the_declared_format(name: str) -> None:
    profile = _fixture(name)
    fmt, per_weight = QWEN3_8B_FORMATS[name]
    assert profile.checkpoint.format == fmt
    assert bytes_per_weight(fmt, profile.checkpoint) == pytest.approx(per_weight)


@pytest.mark.parametrize("name", ["fixtures--Qwen3-8B-AWQ", "fixtures--Qwen3-8B-NVFP4"])
def test_weights_of_a_quantized_variant_follow_its_format(name: str) -> None:
    bf16 = _profile(
        json.loads((FIXTURES / "fixtures--Qwen3-8B-AWQ" / "config.json").read_text())
        | {"quantization_config": None}
    )
    variant = _fixture(name)
    per_weight = bytes_per_weight(variant.checkpoint.format, variant.checkpoint)
    high = variant.checkpoint.bf16_params
    assert high is not None and bf16.checkpoint.bf16_params is None
    expected = (high * 2 + (variant.params_total - high) * per_weight) / 2**30
    assert weight_bytes_per_gpu(variant, SINGLE) / 2**30 == pytest.approx(expected, rel=0.02)
    assert weight_bytes_per_gpu(bf16, SINGLE) / 2**30 == pytest.approx(
        bf16.params_total * 2 / 2**30, rel=0.01
    )


def test_modules_left_at_16_bit_are_counted_from_the_ignore_list() -> None:
    # ModelOpt NVFP4 of DeepSeek-V3.2 names every layer's MLA projections and indexer: BF16.
    directory = FIXTURES / "nvidia--DeepSeek-V3.2-NVFP4"
    config = json.loads((directory / "config.json").read_text())
    listed = json.loads((directory / "hf_quant_config.json").read_text())
    head_only = {"quantization": {**listed["quantization"], "exclude_modules": ["lm_head"]}}
    kept = _profile(config, hf_quant=listed).checkpoint.bf16_params
    plain = _profile(config, hf_quant=head_only).checkpoint.bf16_params
    assert kept is not None and plain is not None
    # 61 layers of MLA + indexer projections (~0.19B each) stay 16-bit on top of the rest.
    assert kept - plain == pytest.approx(61 * 0.19e9, rel=0.1)


def test_mxfp4_quantizes_only_the_routed_experts() -> None:
    config = next(m for m in REFERENCE_MODELS if m["id"] == "openai/gpt-oss-20b")["config"]
    profile = _profile(dict(config))
    assert profile.checkpoint.format == "mxfp4"
    assert profile.checkpoint.bf16_params is not None
    experts = profile.params_total - profile.checkpoint.bf16_params
    moe = profile.moe
    assert moe is not None
    assert (
        experts
        == profile.num_layers
        * moe.num_experts
        * 3
        * profile.hidden_size
        * moe.moe_intermediate_size
    )


def test_deepseek_v32_caches_the_indexer_key_beside_the_latent() -> None:
    profile = _fixture("deepseek-ai--DeepSeek-V3.2")
    assert profile.indexer is not None and profile.indexer.head_dim == 128
    # 61 layers x (512 + 64 latent x 2 bytes + 128 FP8 indexer bytes + one fp32 scale).
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 61 * ((512 + 64) * 2 + 128 + 4)
    assert kv_bytes_per_token_per_gpu(profile, Parallelism(tp=8)) == 61 * ((512 + 64) * 2 + 132)


def test_hybrid_linear_attention_keeps_kv_only_on_full_layers() -> None:
    profile = _fixture("Qwen--Qwen3-Next-80B-A3B-Instruct")
    linear = profile.linear_attention
    assert linear is not None and linear.layers == 36
    # 12 full-attention layers x 2 KV heads x (256 + 256) x 2 bytes.
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 12 * 2 * 512 * 2
    conv = 3 * (2 * 16 * 128 + 32 * 128) * 2
    state = 32 * 128 * 128 * 2
    assert linear_state_bytes_per_request_per_gpu(profile, SINGLE) == 36 * (conv + state)
    assert linear_state_bytes_per_request_per_gpu(profile, SINGLE, "sglang") == 36 * (
        conv + 2 * state
    )
    assert profile.params_total == pytest.approx(80e9, rel=0.02)


def test_qwen35_nested_text_config_pins_an_fp32_state() -> None:
    profile = _fixture("Qwen--Qwen3.5-35B-A3B")
    assert profile.multimodal and profile.linear_attention is not None
    assert profile.linear_attention.layers == 30
    assert profile.linear_attention.state_dtype_bytes == 4
    assert profile.mtp_params == 0  # the index holds no MTP tensors


def test_gemma3_keeps_five_local_layers_per_global_one() -> None:
    profile = _fixture("google--gemma-3-27b-it")
    local = profile.local_attention
    assert local is not None and (local.kind, local.window, local.layers) == ("sliding", 1024, 52)
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 10 * 16 * 256 * 2
    assert local_kv_bytes_per_token_layers(profile, SINGLE) == 52 * 16 * 256 * 2
    assert profile.multimodal and profile.params_total == pytest.approx(27.4e9, rel=0.03)


def test_gemma2_alternates_sliding_and_global_layers() -> None:
    config = {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 3584,
        "num_hidden_layers": 42, "num_attention_heads": 16, "num_key_value_heads": 8,
        "head_dim": 256, "intermediate_size": 14336, "vocab_size": 256000,
        "sliding_window": 4096, "max_position_embeddings": 8192, "tie_word_embeddings": True,
    }  # fmt: skip
    local = _profile(config).local_attention
    assert local is not None and local.layers == 21


def test_llama4_chunks_three_of_four_layers_and_interleaves_moe() -> None:
    entry = next(m for m in REFERENCE_MODELS if "Maverick" in m["id"])
    profile = _profile(dict(entry["config"]))
    local = profile.local_attention
    assert local is not None and (local.kind, local.layers) == ("chunked", 36)
    assert profile.moe is not None and profile.moe.moe_layer_step == 2


def test_mtp_layers_are_left_out_of_the_served_weights() -> None:
    sharded = _fixture("fixtures--DeepSeek-V3-sharded")
    meta = json.loads((FIXTURES / "fixtures--DeepSeek-V3-sharded" / "repo.json").read_text())
    assert sharded.mtp_params > 11e9
    assert sharded.checkpoint.bytes is not None
    served = meta["total_size"] - sharded.checkpoint.bytes
    assert served == pytest.approx(sharded.mtp_params * (1 + 4 / 128**2), rel=0.001)
    assert sharded.params_total == pytest.approx(671.03e9, rel=0.001)


def test_a_local_single_file_checkpoint_is_sized_from_its_header(tmp_path: Path) -> None:
    from orchestrator.models.lookup import find_model

    from .fakehub import safetensors_header

    config = json.loads((FIXTURES / "fixtures--Qwen3-0.6B-single-file" / "config.json").read_text())
    directory = tmp_path / "Qwen3-0.6B"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(safetensors_header(config))
    profile = find_model(str(directory))
    assert (profile.origin, profile.name) == ("local", "qwen3-0.6b")
    assert profile.checkpoint.bytes == 2 * profile.params_total


def test_cohere2_keeps_one_global_layer_in_four() -> None:
    config = {
        "architectures": ["Cohere2ForCausalLM"], "model_type": "cohere2", "hidden_size": 4096,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "intermediate_size": 14336, "vocab_size": 256000, "sliding_window": 4096,
        "sliding_window_pattern": 4, "max_position_embeddings": 131072,
    }  # fmt: skip
    local = _profile(config).local_attention
    assert local is not None and local.layers == 24
