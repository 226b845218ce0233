"""The shipped catalog: every profile loads, names are unique, every reference model is present."""

from __future__ import annotations

import re

import pytest

from orchestrator.hardware.gpus import build_gpu_index, load_gpus, load_gpus_from
from orchestrator.models.catalog import build_model_index, load_models, load_models_from
from orchestrator.models.lookup import find_model
from orchestrator.resources import profiles_dir

# The models the catalog must cover (Hugging Face ids).
REFERENCE_MODELS = {
    "deepseek-ai/DeepSeek-V3": "deepseek-v3",
    "deepseek-ai/DeepSeek-R1": "deepseek-r1",
    "moonshotai/Kimi-K2-Instruct": "kimi-k2",
    "Qwen/Qwen3-32B": "qwen3-32b",
    "Qwen/Qwen3-8B": "qwen3-8b",
    "Qwen/Qwen3-30B-A3B": "qwen3-30b-a3b",
    "Qwen/Qwen3-235B-A22B": "qwen3-235b-a22b",
    "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "meta-llama/Llama-3.1-70B-Instruct": "llama-3.1-70b",
    "meta-llama/Llama-3.1-405B-Instruct": "llama-3.1-405b",
    "meta-llama/Meta-Llama-3-70B-Instruct": "llama-3-70b",
    "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "mistralai/Mixtral-8x22B-v0.1": "mixtral-8x22b",
    "openai/gpt-oss-120b": "gpt-oss-120b",
    "openai/gpt-oss-20b": "gpt-oss-20b",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": "llama-4-scout",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": "llama-4-maverick",
    "zai-org/GLM-4.5": "glm-4.5",
    "Qwen/Qwen2.5-72B-Instruct": "qwen2.5-72b",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": "deepseek-r1-distill-qwen-32b",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": "deepseek-r1-distill-qwen-7b",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": "deepseek-r1-distill-llama-70b",
}

REQUIRED_GPUS = [
    "H100-80GB-SXM",
    "H100-80GB-PCIE",
    "H200-141GB-SXM",
    "H20-96GB",
    "H800-80GB-SXM",
    "A100-80GB-SXM",
    "A100-80GB-PCIE",
    "A100-40GB-SXM",
    "L40S-48GB",
    "L4-24GB",
    "A10G-24GB",
    "RTX3090-24GB",
    "RTX4090-24GB",
    "RTX5090-32GB",
    "RTX6000-ADA-48GB",
    "RTX-PRO-6000-96GB",
    "B200-180GB-SXM",
    "MI300X-192GB",
]


def test_every_model_yaml_validates_and_is_named_after_its_file() -> None:
    directory = profiles_dir() / "models"
    models = load_models_from(directory)
    files = sorted(path.stem for path in directory.glob("*.yaml"))
    assert sorted(models) == files


def test_every_reference_model_is_in_the_catalog() -> None:
    models = load_models()
    by_hf = {profile.hf_id: profile.name for profile in models.values()}
    # The catalog may hold more (2026 architectures generated from their configs).
    assert REFERENCE_MODELS.items() <= by_hf.items()


def test_model_aliases_are_unique_across_the_catalog() -> None:
    models = load_models()
    index = build_model_index(models)  # raises on a clash
    spellings = [alias for profile in models.values() for alias in (profile.name, *profile.aliases)]
    assert len(spellings) == len(set(spellings))
    for profile in models.values():
        assert index[profile.name] == profile.name


def test_every_gpu_yaml_validates_and_required_gpus_exist() -> None:
    gpus = load_gpus_from(profiles_dir() / "gpus")
    assert set(REQUIRED_GPUS) <= set(gpus)
    build_gpu_index(gpus)  # raises on a clash
    assert gpus == load_gpus()


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_gpu_memory_is_below_the_marketing_size(name: str) -> None:
    # NVML/CUDA totals are a little below the advertised GB; never above, never far below.
    spec = load_gpus()[name]
    match = re.search(r"(\d+)GB", name)
    assert match is not None
    nominal_gb = float(match.group(1))
    assert 0.88 * nominal_gb * 1e9 / 2**30 < spec.memory_gib <= nominal_gb


def test_checkpoint_formats_follow_the_published_weights() -> None:
    models = load_models()
    for name in ("deepseek-v3", "deepseek-r1", "kimi-k2"):
        assert models[name].checkpoint.format == "fp8"
        assert models[name].checkpoint.block_size == (128, 128)
    for name in ("gpt-oss-20b", "gpt-oss-120b"):
        assert models[name].checkpoint.format == "mxfp4"
        assert models[name].checkpoint.bf16_params is not None
        assert models[name].local_attention is not None
        assert models[name].local_attention.kind == "sliding"
    for name in ("llama-4-scout", "llama-4-maverick"):
        local = models[name].local_attention
        assert local is not None and (local.kind, local.window, local.layers) == (
            "chunked",
            8192,
            36,
        )
    assert models["qwen3-32b"].checkpoint.format == "bf16"


def test_mla_and_mtp_facts() -> None:
    r1 = find_model("deepseek-r1")
    assert (r1.attention, r1.kv_lora_rank, r1.qk_rope_head_dim) == ("mla", 512, 64)
    assert r1.params_total == 671_026_419_200
    assert r1.mtp_params == 11_610_068_224
    assert find_model("kimi-k2").mtp_params == 0


def test_max_tp_caps_carry_an_explanation() -> None:
    for profile in load_models().values():
        if profile.max_tp is not None:
            assert any("max_tp" in note for note in profile.notes), profile.name
