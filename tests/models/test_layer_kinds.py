"""2026 architectures sized per layer kind, class defaults filled in, unknown caches refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.errors import PlanError
from orchestrator.models.hf_config import CheckpointFiles, Identity, profile_from_files
from orchestrator.models.layer_kinds import DSV4_ENTRY_BYTES
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import (
    GIB,
    estimate,
    kv_bytes_per_token_per_gpu,
    linear_state_bytes_per_request_per_gpu,
    local_kv_bytes_per_token_layers,
)
from orchestrator.planning.memory.weights import weight_bytes_per_gpu
from orchestrator.schema import ModelProfile

from .conftest import Runner
from .fakehub import FIXTURES, build_index

SINGLE = Parallelism()


def _profile(config: dict[str, Any], index: dict[str, Any] | None = None) -> ModelProfile:
    identity = Identity(name="m", hf_id="org/m", source="test", origin="hub", revision="0" * 40)
    return profile_from_files(
        CheckpointFiles(config=config, config_path="config.json", index=index), identity
    )


def _fixture(name: str) -> ModelProfile:
    directory = FIXTURES / name
    config = json.loads((directory / "config.json").read_text())
    meta_path = directory / "repo.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return _profile(config, build_index(config, meta))


def test_gemma3_published_config_takes_the_class_defaults() -> None:
    # The published config has no vocab_size, max_position_embeddings or sliding pattern.
    config = json.loads((FIXTURES / "google--gemma-3-27b-it" / "config.json").read_text())
    assert "vocab_size" not in config["text_config"]
    profile = _fixture("google--gemma-3-27b-it")
    assert profile.vocab_size == 262_208
    assert profile.max_context == 131_072
    assert profile.tie_word_embeddings
    assert profile.local_attention is not None and profile.local_attention.layers == 52
    assert any("gemma3_text class defaults" in note for note in profile.notes)
    # 10 global layers x 16 KV heads x (128 + 128) x 2 bytes.
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 10 * 16 * 256 * 2


def test_nemotron_h_keeps_kv_only_on_its_attention_layers() -> None:
    profile = _fixture("nvidia--Nemotron-H-8B-Base-8K")
    assert 7.5e9 < profile.params_total < 8.5e9  # the published 8B, not a dense 52-layer sum
    assert profile.moe is None  # the class default n_routed_experts has no MoE block to use
    assert profile.mamba is not None and profile.mamba.layers == 24
    assert profile.cache_free_layers == 24
    # 4 attention layers x 8 KV heads x (128 + 128) x 2 bytes.
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 4 * 8 * 256 * 2
    conv = 3 * (128 * 64 + 2 * 8 * 128) * 2
    ssm = 128 * 64 * 128 * 4  # mamba_ssm_cache_dtype float32 (class default)
    assert linear_state_bytes_per_request_per_gpu(profile, SINGLE) == 24 * (conv + ssm)
    assert linear_state_bytes_per_request_per_gpu(profile, Parallelism(tp=2)) == 12 * (conv + ssm)


def test_deepseek_v4_compressed_attention_and_fp4_experts_are_sized() -> None:
    profile = _fixture("deepseek-ai--DeepSeek-V4-Flash")
    compressed = profile.compressed_attention
    assert compressed is not None
    assert compressed.layers_by_ratio == ((1, 2), (4, 21), (128, 20))
    main = 21 * DSV4_ENTRY_BYTES / 4 + 20 * DSV4_ENTRY_BYTES / 128
    index = 21 * (128 + 4) / 4
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == -(-int((main + index) * 4) // 4)
    # One KV head: every TP rank keeps every entry, as with MLA.
    assert kv_bytes_per_token_per_gpu(profile, Parallelism(tp=8)) == kv_bytes_per_token_per_gpu(
        profile, SINGLE
    )
    window = 43 * 128 * DSV4_ENTRY_BYTES
    assert linear_state_bytes_per_request_per_gpu(profile, SINGLE) > window
    assert profile.checkpoint.format == "fp8"
    assert profile.checkpoint.expert_format == "mxfp4"
    assert 280e9 < profile.params_total < 290e9
    # 158 G stored parameters, 148.7 GB of files: FP4 experts, FP8 elsewhere.
    weights = weight_bytes_per_gpu(profile, SINGLE) / GIB
    assert 130 < weights < 150
    plan = estimate(profile, _gpu("H200"), "vllm", Parallelism(tp=2), context=65536)
    assert plan.fits and plan.kv_bytes_per_token_per_gpu > 0


def test_kimi_linear_keeps_mla_kv_and_a_delta_attention_state() -> None:
    profile = _fixture("moonshotai--Kimi-Linear-48B-A3B-Instruct")
    assert profile.attention == "mla"
    assert profile.linear_attention is not None and profile.linear_attention.layers == 20
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 7 * (512 + 64) * 2
    conv = 3 * 32 * 128 * 3 * 2
    state = 32 * 128 * 128 * 4
    assert linear_state_bytes_per_request_per_gpu(profile, SINGLE) == 20 * (conv + state)
    assert not profile.warnings


def test_gemma4_global_layers_have_their_own_heads_and_shared_layers_no_kv() -> None:
    profile = _fixture("google--gemma-4-E4B-it")
    assert profile.cache_free_layers == 18
    heads = profile.full_attention_heads
    assert heads is not None and (heads.num_kv_heads, heads.head_dim) == (2, 512)
    # 24 layers keep KV: 4 global (2 heads of 512) and 20 sliding (2 heads of 256).
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 4 * 2 * 1024 * 2
    assert local_kv_bytes_per_token_layers(profile, SINGLE) == 20 * 2 * 512 * 2


def test_mimo_v2_sliding_layers_and_value_heads() -> None:
    profile = _fixture("XiaomiMiMo--MiMo-V2-Flash")
    local = profile.local_attention
    assert local is not None and (local.layers, local.window) == (39, 129)
    assert profile.v_head_dim == 128
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 9 * 4 * (192 + 128) * 2
    swa = _profile(
        {
            **json.loads((FIXTURES / "XiaomiMiMo--MiMo-V2-Flash" / "config.json").read_text()),
            "swa_num_key_value_heads": 8,
            "swa_head_dim": 192,
            "swa_v_head_dim": 128,
        }
    )
    assert local_kv_bytes_per_token_layers(swa, SINGLE) == 39 * 8 * 320 * 2


def test_minimax_m3_indexed_layers_keep_index_keys() -> None:
    profile = _fixture("MiniMaxAI--MiniMax-M3")
    assert not profile.warnings
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 60 * 4 * 256 * 2
    config = json.loads((FIXTURES / "MiniMaxAI--MiniMax-M3" / "config.json").read_text())
    config["text_config"]["sparse_attention_config"] = {
        "use_sparse_attention": True,
        "sparse_attention_freq": [0, 1] * 30,
        "sparse_num_index_heads": 4,
        "sparse_index_dim": 128,
    }
    sparse = _profile(config)
    extra = 30 * 4 * 128 * 2
    assert kv_bytes_per_token_per_gpu(sparse, SINGLE) == 60 * 4 * 256 * 2 + extra


def test_an_unknown_cache_kind_is_refused_not_invented() -> None:
    profile = _fixture("fixtures--Retention-7B")
    assert profile.unsized_cache is not None and "retention" in profile.unsized_cache
    with pytest.raises(PlanError, match=r"cannot size the cache.*--cache-bytes-per-token"):
        estimate(profile, _gpu("H100"), "vllm", SINGLE, context=4096)
    stated = profile.model_copy(update={"cache_bytes_per_token": 65536})
    assert kv_bytes_per_token_per_gpu(stated, Parallelism(tp=2)) == 32768
    assert estimate(stated, _gpu("H100"), "vllm", SINGLE, context=4096).fits


def _gpu(name: str) -> Any:
    from orchestrator.hardware.gpus import find_gpu

    return find_gpu(name)


@pytest.mark.parametrize(
    ("model", "gpus"),
    [
        ("deepseek-ai/DeepSeek-V4-Flash", "8xH200"),
        ("nvidia/Nemotron-H-8B-Base-8K", "1xH100"),
        ("moonshotai/Kimi-Linear-48B-A3B-Instruct", "2xH100"),
    ],
)
def test_2026_models_plan_from_the_hub(deploy: Runner, model: str, gpus: str) -> None:
    result = deploy("plan", model, "--gpus", gpus)
    assert result.returncode == 0, result.stderr
    assert "not a family deploy knows" not in result.stdout + result.stderr


def test_the_cli_refuses_an_unsizable_cache_until_told(deploy: Runner) -> None:
    refused = deploy("plan", "fixtures/Retention-7B", "--gpus", "1xH100")
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot size the cache" in errors[0], refused.stderr
    assert "Traceback" not in refused.stderr
    told = deploy(
        "plan", "fixtures/Retention-7B", "--gpus", "1xH100", "--cache-bytes-per-token", "131072"
    )
    assert told.returncode == 0, told.stderr


@pytest.mark.parametrize(
    ("alias", "gpus"),
    [
        ("deepseek-v4-flash", "8xB200"),
        ("nemotron-h-8b", "1xH100"),
        ("kimi-linear-48b-a3b", "2xH100"),
        ("gemma-4-e4b", "1xL4"),
    ],
)
def test_2026_catalog_entries_plan_offline(alias: str, gpus: str) -> None:
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.request import PlanRequest

    plan = build_plan(PlanRequest(model=alias, gpus=gpus))
    assert plan.fits and plan.memory.kv_bytes_per_token_per_gpu > 0


ENGINE = json.loads((FIXTURES / "engine-meta-params.json").read_text())
VLLM_CPU_IMAGE = "deploy-vllm-cpu:0.32.0"


@pytest.mark.parametrize("name", sorted(ENGINE["params"]))
def test_the_planner_counts_what_the_engines_model_classes_build(name: str) -> None:
    # Within 1% of the parameters the engine's own classes create on the meta device
    # (the rest: vision/audio towers the planner estimates, Kimi's gate shapes).
    engine = ENGINE["params"][name]
    planner = _fixture(name).params_total
    assert abs(planner - engine) / engine < 0.01, (planner, engine)


def test_the_recorded_engine_counts_are_what_the_engine_image_builds() -> None:
    import os
    import shutil
    import subprocess

    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    docker = shutil.which("docker")
    image = docker and subprocess.run(
        [docker, "image", "inspect", VLLM_CPU_IMAGE], capture_output=True, check=False
    )
    if not image or image.returncode != 0:
        if in_ci:
            pytest.fail(f"{VLLM_CPU_IMAGE} is needed (CI is set)")
        pytest.skip(f"{VLLM_CPU_IMAGE} is not built here")
    assert docker is not None
    script = FIXTURES.parent / "engine_check" / "meta_params.py"
    names = sorted(ENGINE["params"])
    result = subprocess.run(
        [docker, "run", "--rm", "--network", "none",
         "-v", f"{FIXTURES}:/fixtures:ro", "-v", f"{script}:/meta.py:ro",
         VLLM_CPU_IMAGE, "python3", "/meta.py", *names],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    built = json.loads(result.stdout.strip().splitlines()[-1])
    assert {name: built[name]["params"] for name in names} == ENGINE["params"]


def test_nemotron_h_moe_blocks_count_their_experts_only() -> None:
    from orchestrator.planning.memory.weights import expert_params

    config = json.loads((FIXTURES / "nvidia--Nemotron-H-8B-Base-8K" / "config.json").read_text())
    # A MoE variant of the same shapes: `E` blocks instead of every MLP block.
    config["hybrid_override_pattern"] = config["hybrid_override_pattern"].replace("-", "E")
    config.update(n_routed_experts=64, num_experts_per_tok=6, moe_intermediate_size=1024)
    config["moe_shared_expert_intermediate_size"] = 2048
    profile = _profile(config)
    assert profile.moe is not None and profile.moe.moe_layers == 24
    assert expert_params(profile) == 24 * 64 * 2 * 4096 * 1024
    assert profile.params_total - profile.params_active == 24 * (64 - 6) * 2 * 4096 * 1024
    assert kv_bytes_per_token_per_gpu(profile, SINGLE) == 4 * 8 * 256 * 2
