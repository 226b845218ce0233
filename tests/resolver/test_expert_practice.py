"""Expert practice the plan reaches: the layouts, options and memory the engines' own recipes
and source code lead to."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.build import build_plan
from orchestrator.planning.memory.estimate import estimate
from orchestrator.planning.performance import CALIBRATED
from orchestrator.planning.performance.calibration import cases, predict
from orchestrator.planning.performance.dataset import (
    DATA,
    comparisons,
    dev_observations,
    model_finder,
)
from orchestrator.planning.performance.layouts import judge_all
from orchestrator.planning.request import PlanRequest
from orchestrator.resources import profiles_dir

FIXTURES = Path(__file__).resolve().parents[1] / "models" / "fixtures"
TWO_NODES = str(profiles_dir() / "clusters" / "two-node-h100-ib.yaml")


def test_qwen3_next_on_four_h200_takes_the_fastest_layout_tp4() -> None:
    model = str(FIXTURES / "Qwen--Qwen3-Next-80B-A3B-Instruct")
    plan = build_plan(PlanRequest(model=model, gpus="4xH200"))
    pinned = build_plan(PlanRequest(model=model, gpus="4xH200", tp=4))
    serve = plan.role("serve")
    assert serve is not None and serve.parallelism.tp == 4
    assert plan.prediction is not None and pinned.prediction is not None
    assert plan.prediction.output_tokens_per_s >= pinned.prediction.output_tokens_per_s


def test_vllm_deepseek_across_nodes_uses_expert_parallelism() -> None:
    # Whenever the plan's DP ranks span the nodes, the experts are placed whole (EP), never
    # sliced over InfiniBand; a layout without EP loses with the recipes' reason.
    for goal in ("balanced", "throughput"):
        plan = build_plan(PlanRequest(model="deepseek-r1", nodes=2, cluster=TWO_NODES, goal=goal))
        serve = plan.role("serve")
        assert serve is not None
        if serve.parallelism.dp > 1:
            assert serve.parallelism.ep == serve.parallelism.gpus
    pinned = build_plan(PlanRequest(model="deepseek-r1", nodes=2, cluster=TWO_NODES, tp=4, dp=4))
    role = pinned.role("serve")
    assert role is not None and role.parallelism.ep == 16
    balanced = build_plan(PlanRequest(model="deepseek-r1", nodes=2, cluster=TWO_NODES))
    no_ep = [a for a in balanced.alternatives if "without EP" in a.lost_because]
    assert all("--enable-expert-parallel" in a.lost_because for a in no_ep)


def test_bf16_70b_missing_its_slo_is_offered_fp8_with_numbers() -> None:
    plan = build_plan(PlanRequest(model="llama-3.1-70b", gpus="2xH100"))
    assert plan.prediction is not None and plan.prediction.ttft_ms > 2000
    offer = next(w for w in plan.warnings if "FP8" in w)
    assert "--quantization fp8" in offer and "--kv-cache-dtype fp8" in offer
    assert "TTFT" in offer and "KV tokens" in offer
    assert plan.request.quantization is None  # offered, never switched silently


def test_redundant_experts_are_counted_in_memory() -> None:
    model, gpu = find_model("deepseek-r1"), find_gpu("H100")
    par = Parallelism(tp=16, ep=16, attn_dp=16)
    plain = estimate(model, gpu, "sglang", par, context=8192)
    spare = estimate(model, gpu, "sglang", par, context=8192, redundant_experts=32)
    # Two more experts per GPU on each of 58 MoE layers: about 4.8 GiB.
    assert spare.weights_gib_per_gpu - plain.weights_gib_per_gpu == pytest.approx(4.76, abs=0.1)


def test_wide_ep_plan_counts_the_recipes_redundant_experts() -> None:
    request = PlanRequest(model="deepseek-r1", nodes=2, cluster=TWO_NODES, engine="sglang")
    request = request.model_copy(update={"tp": 16, "ep": 16, "attn_dp": 16})
    plan = build_plan(request)
    model, gpu = find_model("deepseek-r1"), find_gpu("H100")
    plain = estimate(model, gpu, "sglang", Parallelism(tp=16, ep=16, attn_dp=16), context=8192)
    assert plan.memory.weights_gib_per_gpu > plain.weights_gib_per_gpu + 4


def test_gpt_oss_mxfp4_on_hopper_counts_vllm_padding() -> None:
    model, gpu = find_model("gpt-oss-120b"), find_gpu("H100")
    vllm = estimate(model, gpu, "vllm", Parallelism(), context=16000).weights_gib_per_gpu
    sglang = estimate(model, gpu, "sglang", Parallelism(), context=16000).weights_gib_per_gpu
    assert vllm == pytest.approx(65.97, rel=0.01)  # vLLM's startup log on one H100
    assert sglang == pytest.approx(60.8, abs=0.2)  # the checkpoint's own bytes


def test_sglang_dp_attention_on_deepseek_is_not_plain_tp8() -> None:
    """Eight attention groups of 125 requests, each inside its CUDA graphs, against one
    scheduler running 1000 requests eagerly above SGLang's 512 cap: the decode step of the
    measured burst is predicted well apart (its TPOT, and its peak rate once everything is
    admitted), and DP attention ranks ahead. The burst's average output is admission- and
    tail-bound for both, so it is close (docs/performance.md, "Known limits")."""
    found = {case.id: case for case in cases(dev_observations(DATA), model_finder(DATA))}
    tp8 = predict(found["gpustack-dsv32-h200-sglang-tp8-sharegpt"], CALIBRATED)
    dp8 = predict(found["gpustack-dsv32-h200-sglang-tp8-dp8-dpattn-sharegpt"], CALIBRATED)
    assert tp8.tpot_ms > 1.2 * dp8.tpot_ms
    assert tp8.peak_events_per_s is not None and dp8.peak_events_per_s is not None
    assert dp8.peak_events_per_s > 1.5 * tp8.peak_events_per_s
    judged = judge_all(comparisons(DATA), dev_observations(DATA), model_finder(DATA))
    dsv32 = next(c for c in judged if c.id == "gpustack-dsv32-h200-sglang-sharegpt")
    by_label = {layout.label: layout.predicted_per_gpu for layout in dsv32.layouts}
    assert by_label["TP8 + DP8 attention"] > by_label["TP8"]


def test_a_rule_that_overrides_the_prediction_says_so() -> None:
    from orchestrator.hardware import resolve_cluster
    from orchestrator.planning.build import workload_for
    from orchestrator.planning.resolver.overrides import objective
    from orchestrator.planning.resolver.scoring import TIE_STEP
    from orchestrator.planning.resolver.select import select

    request = PlanRequest(model="qwen3-235b-a22b", gpus="8xH100", goal="throughput")
    work = workload_for(
        request, find_model("qwen3-235b-a22b"), resolve_cluster("8xH100", None, None)
    )
    selection = select(work)
    goal = objective(work)
    fitting = [c for c in selection.ranked if c.valid and c.fits and c.forecast]
    best = min(fitting, key=lambda c: goal.value(c, work))
    overridden = goal.value(selection.chosen, work) - goal.value(best, work) >= TIE_STEP
    assert overridden  # vLLM's DP+EP recipe rule beats a slightly better prediction here
    plan = build_plan(request)
    notes = [w for w in plan.warnings if w.startswith("the prediction favours")]
    assert len(notes) == 1
    assert best.shape.label() in notes[0] and "a rule chose" in notes[0]
    assert "DP+EP" in notes[0]  # the rule's own reason
