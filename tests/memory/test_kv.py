"""KV bytes per token per GPU: hand-computed from config facts (models.json kv_cache values)."""

from __future__ import annotations

import pytest

from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import (
    kv_bytes_per_token_per_gpu,
    local_kv_bytes_per_token_layers,
    local_kv_tokens_per_request,
)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # 2 * layers * kv_heads * head_dim * 2 bytes
        ("qwen3-32b", 2 * 64 * 8 * 128 * 2),  # 262,144
        ("llama-3.1-405b", 2 * 126 * 8 * 128 * 2),  # 516,096
        ("glm-4.5", 2 * 92 * 8 * 128 * 2),  # 376,832
        ("mixtral-8x22b", 2 * 56 * 8 * 128 * 2),  # 229,376
        ("qwen3-235b-a22b", 2 * 94 * 4 * 128 * 2),  # 192,512
        ("deepseek-r1-distill-qwen-7b", 2 * 28 * 4 * 128 * 2),  # 57,344
        # MLA: layers * (kv_lora_rank + qk_rope_head_dim) * 2 bytes
        ("deepseek-r1", 61 * (512 + 64) * 2),  # 70,272
        ("kimi-k2", 61 * (512 + 64) * 2),
        # Only full-attention layers grow with context
        ("gpt-oss-120b", 2 * 18 * 8 * 64 * 2),  # 36,864
        ("llama-4-scout", 2 * 12 * 8 * 128 * 2),  # 49,152
    ],
)
def test_bf16_kv_bytes_at_tp1(model: str, expected: int) -> None:
    profile = find_model(model)
    assert kv_bytes_per_token_per_gpu(profile, Parallelism()) == expected
    assert kv_bytes_per_token_per_gpu(profile, Parallelism(), "fp8") == expected // 2


def test_gqa_splits_kv_heads_by_tp_until_one_head_per_gpu() -> None:
    qwen = find_model("qwen3-32b")  # 8 KV heads
    per_head = 2 * 64 * 128 * 2
    assert kv_bytes_per_token_per_gpu(qwen, Parallelism(tp=2)) == 4 * per_head
    assert kv_bytes_per_token_per_gpu(qwen, Parallelism(tp=8)) == 1 * per_head
    assert kv_bytes_per_token_per_gpu(qwen, Parallelism(tp=16)) == 1 * per_head  # replicated


def test_tp_beyond_kv_heads_does_not_halve_kv() -> None:
    moe = find_model("qwen3-235b-a22b")  # 4 KV heads
    tp4 = kv_bytes_per_token_per_gpu(moe, Parallelism(tp=4))
    assert tp4 == 2 * 94 * 1 * 128 * 2
    assert kv_bytes_per_token_per_gpu(moe, Parallelism(tp=8)) == tp4


def test_mla_latent_is_not_split_by_tp_but_pp_divides_layers() -> None:
    r1 = find_model("deepseek-r1")
    assert kv_bytes_per_token_per_gpu(r1, Parallelism(tp=8)) == 70_272
    assert kv_bytes_per_token_per_gpu(r1, Parallelism(tp=8, pp=2)) == 31 * 576 * 2  # ceil(61/2)


def test_pp_divides_gqa_layers() -> None:
    llama = find_model("llama-3.1-405b")
    assert kv_bytes_per_token_per_gpu(llama, Parallelism(tp=8, pp=2)) == 2 * 63 * 1 * 128 * 2


def test_sglang_attention_dp_keeps_full_heads_per_rank() -> None:
    qwen = find_model("qwen3-32b")
    # TP8 split into 8 attention-DP replicas: each rank runs attention with TP1.
    assert kv_bytes_per_token_per_gpu(qwen, Parallelism(tp=8, attn_dp=8)) == 262_144


def test_local_layers_cost_a_window_per_request() -> None:
    oss = find_model("gpt-oss-120b")
    assert local_kv_bytes_per_token_layers(oss, Parallelism()) == 2 * 18 * 8 * 64 * 2
    # vLLM keeps sliding_window - 1 + max_num_batched_tokens tokens, capped by the context.
    assert local_kv_tokens_per_request(oss, 16000, 8192) == 128 - 1 + 8192
    assert local_kv_tokens_per_request(oss, 1000, 8192) == 1000
    scout = find_model("llama-4-scout")
    assert local_kv_tokens_per_request(scout, 100_000, 8192) == 8192 + 8192
    dense = find_model("qwen3-32b")
    assert local_kv_bytes_per_token_layers(dense, Parallelism()) == 0
    assert local_kv_tokens_per_request(dense, 16000, 8192) == 0
