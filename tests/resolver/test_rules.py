"""Hard validity rules and soft policies, one behaviour per test, on real catalog models."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.errors import PlanError
from orchestrator.planning.resolver.context import Shape
from orchestrator.planning.resolver.rules import check_pins, soft_issues, validate

from .conftest import make_workload


def test_tp_must_divide_attention_heads() -> None:
    work = make_workload("qwen3-32b")
    assert (
        validate(Shape(tp=3), work)[0] == "TP 3 does not divide the 64 attention heads of qwen3-32b"
    )
    assert validate(Shape(tp=8), work) == []


def test_kv_heads_replicate_when_tp_is_a_multiple() -> None:
    # Qwen3-30B-A3B has 4 KV heads: TP8 replicates each head on two ranks, which is valid.
    work = make_workload("qwen3-30b-a3b")
    assert validate(Shape(tp=8, ep=8), work) == []


def test_heads_not_power_of_two_model() -> None:
    # Mixtral-8x22B has 48 heads: TP 32 does not divide them, TP 16 does.
    work = make_workload("mixtral-8x22b", "8xH100", 4, fabric="infiniband")
    assert "does not divide the 48 attention heads" in validate(Shape(tp=32), work)[0]
    assert validate(Shape(tp=16), work) == []


def test_model_tp_cap_and_fp8_blocks_without_ep() -> None:
    work = make_workload("deepseek-r1", "8xH100", 4, fabric="infiniband")
    errors = validate(Shape(tp=32), work)
    assert "TP 32 is above deepseek-r1's limit of TP 16" in errors
    assert any("moe_intermediate_size 2048 / TP 32" in error for error in errors)


def test_fp8_experts_whole_under_ep() -> None:
    # vLLM EP = TP x DP keeps every expert whole, so the 128-blocks stay intact at 32 ranks.
    work = make_workload("deepseek-r1", "8xH100", 4, fabric="infiniband")
    assert validate(Shape(tp=1, dp=32, ep=32, attn_dp=32), work) == []


def test_sglang_attention_dp_uses_attention_tp_for_heads() -> None:
    work = make_workload("deepseek-r1", "8xH100", 4, fabric="infiniband", engine="sglang")
    assert validate(Shape(tp=32, ep=32, attn_dp=32), work) == []
    assert "SGLang needs attention-DP 3 to divide TP 8" in validate(Shape(tp=8, attn_dp=3), work)


def test_experts_divisible_by_ep() -> None:
    work = make_workload("mixtral-8x7b", "8xH100", 2, fabric="infiniband")
    assert "EP 16 does not divide the 8 experts of mixtral-8x7b" in validate(
        Shape(tp=16, ep=16), work
    )


def test_ep_needs_moe() -> None:
    work = make_workload("llama-3.1-8b")
    assert "EP needs a mixture-of-experts model; llama-3.1-8b is dense" in validate(
        Shape(tp=2, ep=2), work
    )


def test_vllm_ep_is_tp_times_dp() -> None:
    work = make_workload("qwen3-30b-a3b")
    assert any("EP = TP x DP (8)" in e for e in validate(Shape(tp=2, dp=4, ep=2, attn_dp=4), work))


def test_vllm_has_no_attention_dp_on_dense_models() -> None:
    work = make_workload("llama-3.1-8b")
    assert any("no separate attention-DP" in e for e in validate(Shape(tp=4, attn_dp=4), work))


def test_vllm_dp_rank_must_stay_inside_a_node() -> None:
    work = make_workload("deepseek-r1", "8xH100", 4, fabric="infiniband")
    errors = validate(Shape(tp=16, dp=2, ep=32, attn_dp=2), work)
    assert "vLLM data parallel needs each DP rank (TP x PP) inside one node" in errors


def test_sglang_rejects_multi_node_dp_replicas() -> None:
    work = make_workload("llama-3.1-8b", "8xH100", 2, engine="sglang")
    assert (
        "SGLang rejects multi-node --dp-size replicas; use attention-DP across nodes"
        in validate(Shape(tp=8, dp=2), work)
    )


def test_instance_must_fill_whole_nodes() -> None:
    work = make_workload("llama-3.1-8b", "8xH100", 2)
    assert "12 GPUs per instance do not fill whole nodes of 8 GPUs" in validate(
        Shape(tp=4, pp=3), work
    )


def test_gpu_count_respected() -> None:
    work = make_workload("llama-3.1-8b", "2xH100")
    assert "needs 4 GPUs; 2 are available" in validate(Shape(tp=4), work)


def test_tp_across_ethernet_is_a_soft_issue() -> None:
    ethernet = make_workload("llama-3.1-405b", "8xH100", 2)
    assert soft_issues(Shape(tp=16), ethernet) == [
        "TP16 spans nodes: needs InfiniBand/RoCE between nodes; cluster says ethernet"
    ]
    infiniband = make_workload("llama-3.1-405b", "8xH100", 2, fabric="infiniband")
    assert soft_issues(Shape(tp=16), infiniband) == []
    assert soft_issues(Shape(tp=8, pp=2), ethernet) == []


@pytest.mark.parametrize(
    ("model", "options", "message"),
    [
        (
            "qwen3-32b",
            {"tp": 3},
            "TP 3 does not divide the 64 attention heads of qwen3-32b; valid: 1, 2, 4, 8",
        ),
        (
            "deepseek-r1",
            {"ep": 3},
            "EP 3 does not divide the 256 experts of deepseek-r1; valid: 1, 2, 4, 8",
        ),
        (
            "qwen3-32b",
            {"ep": 2},
            "EP needs a mixture-of-experts model; qwen3-32b is dense; drop --ep",
        ),
        (
            "qwen3-32b",
            {"tp": 8, "dp": 2},
            "TP 8 x DP 2 needs 16 GPUs; 8 are available; lower the pins or add --nodes/--gpus",
        ),
        (
            "qwen3-32b",
            {"attn_dp": 2},
            "vLLM has no separate attention-DP (it is --dp on MoE models); use --dp, or --engine sglang for --attn-dp",
        ),
        (
            "deepseek-r1",
            {"attn_dp": 3, "engine": "sglang", "gpus": "8xH200"},
            "attention-DP 3 must divide TP (at most 8 GPUs); valid: 1, 2, 4, 8",
        ),
        (
            "deepseek-r1",
            {"attn_dp": 4, "tp": 2, "engine": "sglang", "gpus": "8xH200"},
            "attention-DP 4 must divide TP 2; valid: 1, 2",
        ),
        (
            "qwen3-32b",
            {"pp": 100},
            "PP 100 exceeds the 64 layers of qwen3-32b; use --pp 64 or less",
        ),
        ("qwen3-32b", {"tp": 0}, "TP 0 is not a size; use 1 or more"),
    ],
)
def test_pins_rejected_with_the_sizes_that_work(
    model: str, options: dict[str, Any], message: str
) -> None:
    work = make_workload(model, **options)
    with pytest.raises(PlanError) as caught:
        check_pins(work)
    assert str(caught.value) == message
    assert caught.value.exit_code == 2
