"""Engine budgets, overheads, capacity and `fits`."""

from __future__ import annotations

import math

import pytest

from orchestrator.errors import InputError
from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import (
    default_max_num_batched_tokens,
    default_memory_fraction,
    estimate,
    kv_bytes_per_token_per_gpu,
    kv_capacity,
    overhead_bytes_per_gpu,
    vllm_overhead,
)
from orchestrator.planning.memory.weights import weight_bytes_per_gpu

GIB = 2**30


def test_vllm_activation_is_fp32_logits_plus_a_base_scaled_by_batch() -> None:
    llama = find_model("llama-3.1-8b")
    h100 = find_gpu("H100")
    over = vllm_overhead(llama, h100, Parallelism(), engine_version="0.11.0")
    assert over.activation == pytest.approx(8192 * 128_256 * 4 + 0.9 * GIB)
    assert over.non_torch == pytest.approx(0.13 * GIB)
    assert over.cudagraph == 0  # not budgeted before vLLM 0.21
    half = vllm_overhead(llama, h100, Parallelism(), max_num_batched_tokens=4096)
    assert half.activation == pytest.approx(4096 * 128_256 * 4 + 0.45 * GIB)


def test_vllm_moe_adds_fused_moe_cache_and_graphs_since_0_21() -> None:
    oss = find_model("gpt-oss-20b")
    over = vllm_overhead(oss, find_gpu("H100"), Parallelism(tp=2), engine_version="0.33.0")
    logits = 8192 * 201_088 * 4
    moe_cache = 8192 * 4 * (2 * 2880 // 2) * 2
    assert over.activation == pytest.approx(logits + 0.9 * GIB + moe_cache)
    assert over.non_torch == pytest.approx(0.55 * GIB)
    assert over.cudagraph == pytest.approx(1.0 * GIB)


def test_small_gpus_profile_a_smaller_batch() -> None:
    llama = find_model("llama-3.1-8b")
    over = vllm_overhead(llama, find_gpu("L4"), Parallelism())
    assert over.activation == pytest.approx(2048 * 128_256 * 4 + 0.9 * GIB / 4)


def test_a100s_keep_vllms_smaller_scheduler_budget() -> None:
    """vLLM gives >= 70 GiB GPUs 8192 tokens and 1024 sequences, except A100s (PR 17885)."""
    llama = find_model("llama-3.1-8b")
    a100, h100 = find_gpu("A100-80GB-SXM"), find_gpu("H100")
    assert a100.memory_gib >= 70
    assert default_max_num_batched_tokens("vllm", a100) == 2048
    assert default_max_num_batched_tokens("vllm", h100) == 8192
    over = vllm_overhead(llama, a100, Parallelism())
    assert over.activation == pytest.approx(2048 * 128_256 * 4 + 0.9 * GIB / 4)
    # SGLang sizes its chunks by memory alone: 8192 on an 80 GB A100 as on an H100.
    assert default_max_num_batched_tokens("sglang", a100) == 8192


def test_default_memory_fractions() -> None:
    h100, h200, l4 = find_gpu("H100"), find_gpu("H200"), find_gpu("L4")
    assert default_memory_fraction("vllm", h100, Parallelism()) == 0.9
    # SGLang 0.5.23 (memory_hook.py): 512 + 1.5 * 8192 + tp/8 * 1024 + 2 * graph bs 256
    # + 8 MiB for each of the 58 token counts its prefill graph captures up to 8192.
    reserved = 512 + 1.5 * 8192 + 1 / 8 * 1024 + 2 * 256 + 58 * 8
    mb = h100.memory_gib * 1024
    expected = (mb - reserved) / mb
    assert default_memory_fraction("sglang", h100, Parallelism()) == round(expected, 3)
    # < 35 GiB: chunked 4096, graph bs 48, 50 prefill graph sizes.
    small = 512 + 1.5 * 4096 + 1 / 8 * 1024 + 2 * 48 + 50 * 8
    l4_mb = l4.memory_gib * 1024
    assert default_memory_fraction("sglang", l4, Parallelism()) == round((l4_mb - small) / l4_mb, 3)
    # SGLang 0.4: fixed table by TP on <= 80 GB GPUs, 13 GiB reserve above.
    assert default_memory_fraction("sglang", h100, Parallelism(tp=8), "0.4.6") == 0.81
    assert default_memory_fraction("sglang", h200, Parallelism(tp=8), "0.4.6") == pytest.approx(
        (h200.memory_gib - 13) / h200.memory_gib
    )


def test_vllm_budget_identity_and_block_rounding() -> None:
    qwen = find_model("qwen3-32b")
    h100 = find_gpu("H100")
    par = Parallelism(tp=2)
    result = estimate(qwen, h100, "vllm", par, context=16000)
    weights = weight_bytes_per_gpu(qwen, par)
    overhead = overhead_bytes_per_gpu(qwen, h100, "vllm", par)
    available = 79.18 * GIB * 0.9 - weights - overhead
    assert result.kv_cache_gib_per_gpu == round(available / GIB, 3)
    per_token = kv_bytes_per_token_per_gpu(qwen, par)
    blocks = math.floor(available / (16 * per_token))
    assert result.kv_cache_tokens == blocks * 16
    assert result.max_concurrency == round(blocks / 1000, 2)  # 16000 tokens = 1000 blocks
    assert result.memory_fraction == 0.9
    assert result.fits


def test_sglang_budget_is_pre_load_free_memory_times_fraction_minus_weights() -> None:
    qwen = find_model("qwen3-32b")
    h100 = find_gpu("H100")
    par = Parallelism(tp=2)
    result = estimate(qwen, h100, "sglang", par, context=8000, memory_fraction=0.85)
    free_before = 79.18 * GIB - 0.6 * GIB - 0.55 * GIB
    available = free_before * 0.85 - weight_bytes_per_gpu(qwen, par, engine="sglang")
    assert result.kv_cache_gib_per_gpu == round(available / GIB, 3)
    assert result.kv_cache_tokens == math.floor(available / 131_072)
    assert result.memory_fraction == 0.85


def test_dp_replicas_multiply_instance_capacity() -> None:
    qwen = find_model("qwen3-8b")
    h100 = find_gpu("H100")
    one = estimate(qwen, h100, "vllm", Parallelism(), context=8192)
    four = estimate(qwen, h100, "vllm", Parallelism(dp=4), context=8192)
    assert four.kv_cache_tokens == 4 * one.kv_cache_tokens
    assert four.kv_cache_gib_per_gpu == one.kv_cache_gib_per_gpu


def test_mla_tp_does_not_add_tokens_per_instance_beyond_freed_weights() -> None:
    r1 = find_model("deepseek-r1")
    h200 = find_gpu("H200")
    result = estimate(r1, h200, "vllm", Parallelism(tp=8), context=32768)
    assert result.kv_bytes_per_token_per_gpu == 70_272
    assert result.kv_cache_tokens % 64 == 0  # MLA backends use 64-token pages
    assert result.fits


def test_fits_needs_room_for_the_requested_concurrency() -> None:
    qwen = find_model("qwen3-32b")
    h100 = find_gpu("H100")
    single = estimate(qwen, h100, "vllm", Parallelism(), context=16000, engine_version="0.11.0")
    assert single.fits
    assert single.margin_gib_per_gpu == pytest.approx(
        single.kv_cache_gib_per_gpu - single.kv_gib_per_request, abs=2e-3
    )
    crowded = estimate(
        qwen, h100, "vllm", Parallelism(), context=16000, engine_version="0.11.0", concurrency=50
    )
    assert not crowded.fits
    assert crowded.margin_gib_per_gpu < 0


def test_weights_that_do_not_fit_give_a_negative_margin() -> None:
    r1 = find_model("deepseek-r1")
    result = estimate(r1, find_gpu("H100"), "vllm", Parallelism(tp=8), context=4096)
    assert not result.fits
    assert result.kv_cache_gib_per_gpu < 0
    assert result.kv_cache_tokens == 0
    assert result.max_concurrency == 0


def test_fp8_kv_doubles_token_capacity() -> None:
    llama = find_model("llama-3.1-70b")
    h100 = find_gpu("H100")
    auto = estimate(llama, h100, "vllm", Parallelism(tp=4), context=8192)
    fp8 = estimate(llama, h100, "vllm", Parallelism(tp=4), context=8192, kv_cache_dtype="fp8")
    assert fp8.kv_bytes_per_token_per_gpu * 2 == auto.kv_bytes_per_token_per_gpu
    assert fp8.kv_cache_tokens == pytest.approx(2 * auto.kv_cache_tokens, abs=16)


def test_hybrid_model_capacity_counts_windows_per_request() -> None:
    oss = find_model("gpt-oss-120b")
    per_layer_set = 18 * 2 * 8 * 64 * 2  # 18 full (and 18 sliding) layers, BF16
    capacity = kv_capacity(
        oss,
        Parallelism(),
        "vllm",
        10 * GIB,
        context=32768,
        block_size=16,
        max_num_batched_tokens=8192,
    )
    sliding_blocks = math.ceil((128 - 1 + 8192) / 16) + 1
    per_request = 2048 * 16 * per_layer_set + sliding_blocks * 16 * per_layer_set
    assert capacity.bytes_per_token == per_layer_set
    assert capacity.bytes_per_request == per_request
    assert capacity.requests_per_pool == pytest.approx(10 * GIB / per_request)
    assert capacity.tokens_per_pool == int(10 * GIB / per_request * 32768)


def test_sglang_sizes_the_sliding_pool_as_a_ratio_of_the_full_pool() -> None:
    oss = find_model("gpt-oss-120b")
    per_layer_set = 18 * 2 * 8 * 64 * 2
    capacity = kv_capacity(oss, Parallelism(), "sglang", 10 * GIB, context=32768)
    assert capacity.tokens_per_pool == math.floor(10 * GIB / (per_layer_set * 1.8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kv_cache_dtype": "int3"}, "unknown KV cache dtype 'int3'"),
        ({"memory_fraction": 1.5}, "memory fraction 1.5 is out of range"),
        ({"context": 0}, "context must be at least 1 token"),
    ],
)
def test_bad_estimate_inputs(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"context": 4096, **kwargs}
    with pytest.raises(InputError, match=message):
        estimate(find_model("qwen3-8b"), find_gpu("H100"), "vllm", Parallelism(), **args)  # type: ignore[arg-type]


def test_unknown_engine() -> None:
    with pytest.raises(InputError, match="unknown engine 'tgi'"):
        estimate(find_model("qwen3-8b"), find_gpu("H100"), "tgi", Parallelism(), context=4096)
