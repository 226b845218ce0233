"""The prediction of a planned deployment at another load, and the simulator's timing."""

from __future__ import annotations

from orchestrator.engines.common import simulation_environment
from orchestrator.planning.build import build_plan
from orchestrator.planning.performance.from_plan import predict_plan
from orchestrator.planning.request import PlanRequest


def test_predict_plan_matches_the_plan_at_its_own_load() -> None:
    plan = build_plan(PlanRequest(model="qwen3-32b", gpus="2xH100", isl=2000, osl=500))
    assert plan.prediction is not None
    again = predict_plan(plan, isl=2000, osl=500, concurrency=16)
    assert again is not None
    assert again.tpot_ms == plan.prediction.tpot_ms
    assert again.output_tokens_per_s == plan.prediction.output_tokens_per_s
    busier = predict_plan(plan, isl=2000, osl=500, concurrency=64)
    assert busier is not None and busier.output_tokens_per_s > again.output_tokens_per_s


def test_the_simulator_serves_at_the_predicted_medians() -> None:
    plan = build_plan(PlanRequest(model="qwen3-32b", gpus="2xH100"))
    assert plan.prediction is not None
    env = simulation_environment(plan, plan.roles[0], 2)
    assert env["DEPLOY_SIM_TTFT_MS"] == f"{plan.prediction.ttft_ms:.1f}"
    assert env["DEPLOY_SIM_TPOT_MS"] == f"{plan.prediction.tpot_ms:.2f}"


def test_engine_args_that_change_a_step_reach_both_predictions() -> None:
    """A CUDA-graph cap below the running batch (--cuda-graph-max-bs) makes every step launch
    its kernels from Python; the plan's prediction and `deploy bench`'s prediction of the same
    plan both read it."""
    asked = dict(model="qwen3-8b", gpus="1xH100", engine="sglang", concurrency=32, isl=200, osl=200)
    plain = build_plan(PlanRequest(**asked))
    capped = build_plan(PlanRequest(**asked, engine_args=["--cuda-graph-max-bs=16"]))
    assert plain.prediction is not None and capped.prediction is not None
    assert capped.prediction.tpot_ms > 1.3 * plain.prediction.tpot_ms
    again = predict_plan(capped, isl=200, osl=200, concurrency=32)
    assert again is not None
    assert again.tpot_ms == capped.prediction.tpot_ms


def test_a_step_budget_reaches_both_predictions() -> None:
    """A smaller --max-num-batched-tokens chunks a 2000-token prompt over more steps: a later
    first token, in the plan's prediction and in `deploy bench`'s alike."""
    asked = dict(model="qwen3-8b", gpus="1xH100", concurrency=64, isl=2000, osl=200)
    plain = build_plan(PlanRequest(**asked))
    small = build_plan(PlanRequest(**asked, engine_args=["--max-num-batched-tokens", "512"]))
    assert plain.prediction is not None and small.prediction is not None
    assert small.prediction.ttft_ms > 1.2 * plain.prediction.ttft_ms
    for plan in (plain, small):
        again = predict_plan(plan, isl=2000, osl=200, concurrency=64)
        assert again is not None and plan.prediction is not None
        assert again.ttft_ms == plan.prediction.ttft_ms
        assert again.tpot_ms == plan.prediction.tpot_ms
