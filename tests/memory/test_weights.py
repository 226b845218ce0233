"""Weight bytes per GPU by format and parallelism, hand-computed from parameter counts."""

from __future__ import annotations

import pytest

from orchestrator.errors import InputError
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.weights import weight_bytes_per_gpu

GIB = 2**30


def test_bf16_dense_is_two_bytes_per_parameter() -> None:
    llama = find_model("llama-3.1-8b")
    assert weight_bytes_per_gpu(llama, Parallelism()) == 8_030_261_248 * 2


def test_tp_splits_everything_but_norms() -> None:
    llama = find_model("llama-3.1-8b")
    norms = (32 * 2 + 1) * 4096
    expected = (8_030_261_248 - norms) * 2 / 2 + norms * 2
    assert weight_bytes_per_gpu(llama, Parallelism(tp=2)) == pytest.approx(expected)


def test_online_fp8_keeps_embeddings_and_norms_in_bf16() -> None:
    llama = find_model("llama-3.1-70b")
    vocab = 2 * 128_256 * 8192
    norms = (80 * 2 + 1) * 8192
    linear = 70_553_706_496 - vocab - norms
    expected = (vocab + norms) * 2 + linear * 1
    assert weight_bytes_per_gpu(llama, Parallelism(), quantization="fp8") == pytest.approx(expected)


def test_block_fp8_checkpoint_adds_scales_and_keeps_bf16_parts() -> None:
    r1 = find_model("deepseek-r1")
    bf16 = r1.checkpoint.bf16_params
    assert bf16 is not None
    expected = bf16 * 2 + (671_026_419_200 - bf16) * (1 + 4 / (128 * 128))
    assert weight_bytes_per_gpu(r1, Parallelism()) == pytest.approx(expected, rel=1e-9)
    # About 627 GiB: more than 8 x 79.18 GiB H100s hold once anything else is added.
    assert 626 * GIB < expected < 628 * GIB


def test_mxfp4_experts_at_4_25_bits_and_the_rest_in_bf16() -> None:
    oss = find_model("gpt-oss-20b")
    bf16 = 1_804_459_584
    experts = 20_914_757_184 - bf16
    expected = bf16 * 2 + experts * 4.25 / 8
    assert weight_bytes_per_gpu(oss, Parallelism()) == pytest.approx(expected)


def test_awq_int4_has_group_scales() -> None:
    qwen = find_model("qwen3-32b")
    vocab = 2 * 151_936 * 5120
    norms = (64 * 2 + 1) * 5120
    linear = 32_762_123_264 - vocab - norms
    expected = (vocab + norms) * 2 + linear * (0.5 + 2.5 / 128)
    assert weight_bytes_per_gpu(qwen, Parallelism(), quantization="awq") == pytest.approx(expected)
    assert weight_bytes_per_gpu(qwen, Parallelism(), quantization="gptq") == pytest.approx(expected)


def test_int8_is_one_byte_per_linear_weight() -> None:
    qwen = find_model("qwen3-8b")
    vocab = 2 * 151_936 * 4096
    norms = (36 * 2 + 1) * 4096
    expected = (vocab + norms) * 2 + (8_190_735_360 - vocab - norms)
    assert weight_bytes_per_gpu(qwen, Parallelism(), quantization="int8") == pytest.approx(expected)


def test_expert_parallel_splits_experts_by_ep_and_attention_by_tp() -> None:
    mixtral = find_model("mixtral-8x7b")
    vocab = 2 * 32_000 * 4096
    norms = (32 * 2 + 1) * 4096
    experts = 32 * 8 * 3 * 4096 * 14_336
    other = 46_702_792_704 - vocab - norms - experts
    # DP2 x EP2 with TP1: attention replicated on both GPUs, experts halved.
    par = Parallelism(tp=1, dp=2, ep=2, attn_dp=2)
    expected = (vocab + norms + other) * 2 + experts * 2 / 2
    assert weight_bytes_per_gpu(mixtral, par) == pytest.approx(expected)
    # Plain TP2 halves both.
    tp2 = (vocab + other + experts) * 2 / 2 + norms * 2
    assert weight_bytes_per_gpu(mixtral, Parallelism(tp=2)) == pytest.approx(tp2)


def test_pipeline_parallel_takes_the_heaviest_stage() -> None:
    llama = find_model("llama-3.1-405b")
    vocab = 2 * 128_256 * 16_384
    norms = (126 * 2 + 1) * 16_384
    layers = 405_853_388_800 - vocab - norms
    # 63 layers per stage; the first stage adds the embedding, the last the lm_head.
    expected = vocab * 2 / 2 / 8 + (norms + layers / 8) * 2 * 63 / 126
    par = Parallelism(tp=8, pp=2)
    assert weight_bytes_per_gpu(llama, par) == pytest.approx(expected)


def test_known_checkpoint_bytes_scale_the_formula(tmp_path: object) -> None:
    qwen = find_model("qwen3-32b")
    exact = qwen.model_copy(
        update={"checkpoint": qwen.checkpoint.model_copy(update={"bytes": 65_535_751_214})}
    )
    assert weight_bytes_per_gpu(exact, Parallelism()) == pytest.approx(65_535_751_214)


def test_unknown_quantization_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"unknown quantization 'nf3'; use one of: bf16"):
        weight_bytes_per_gpu(find_model("qwen3-8b"), Parallelism(), quantization="nf3")
