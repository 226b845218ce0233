"""Published deployments the planner must reach by prediction and near-fit knobs, each with
its predicted numbers (median TTFT/TPOT, throughput)."""

from __future__ import annotations

import pytest

from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest


def _predicted(plan: Plan) -> None:
    prediction = plan.prediction
    assert prediction is not None
    assert prediction.ttft_ms > 0 and prediction.tpot_ms > 0
    assert prediction.output_tokens_per_s > 0
    assert prediction.output_tokens_per_s_per_gpu == pytest.approx(
        prediction.output_tokens_per_s
        / sum(r.parallelism.gpus * len(r.replicas) for r in plan.roles),
        rel=0.01,
    )
    performance = next(r for r in plan.rationale if r.decision == "performance")
    assert f"TPOT {prediction.tpot_ms:.1f} ms" in performance.choice


def test_gpt_oss_120b_on_8xh100_is_not_eight_single_gpu_instances() -> None:
    # Published deployments on that node use TP2 to TP8 for KV room.
    plan = build_plan(PlanRequest(model="openai/gpt-oss-120b", gpus="8xH100"))
    assert plan.fits
    assert plan.parallelism.tp in (2, 4, 8)
    _predicted(plan)
    tp1 = next(a for a in plan.alternatives if a.summary.startswith("TP1 x 8"))
    # vLLM pads the MXFP4 experts for its Hopper kernels (65.9 GiB on one H100): one GPU
    # cannot hold a 32k-token request next to them.
    assert tp1.lost_because.startswith("does not fit: 65.9 GiB of weights per GPU")


def test_deepseek_r1_on_8x_rtx_pro_6000_runs_with_the_published_knobs() -> None:
    # The published command: --gpu-memory-utilization 0.92 --max-model-len 32768.
    plan = build_plan(PlanRequest(model="deepseek-r1", gpus="8xRTX-PRO-6000"))
    assert plan.fits
    assert plan.parallelism.gpus == 8
    assert plan.request.context == 32768
    assert plan.memory.memory_fraction == pytest.approx(0.92)
    [adjustment] = plan.adjustments
    assert (adjustment.knob, adjustment.value, adjustment.default) == (
        "memory_fraction",
        "0.92",
        "0.9",
    )
    assert "predicted TPOT" in adjustment.reason
    _predicted(plan)


def test_llama_3_70b_on_2xh100_fits_with_tp2_and_one_knob() -> None:
    plan = build_plan(PlanRequest(model="meta-llama/Meta-Llama-3-70B-Instruct", gpus="2xH100"))
    assert plan.fits
    assert plan.parallelism.label() == "TP2"
    assert len(plan.adjustments) == 1
    assert plan.adjustments[0].knob in ("memory_fraction", "kv_cache_dtype", "context")
    _predicted(plan)
    pp = next(a for a in plan.alternatives if a.summary.startswith("TP1×PP2"))
    assert pp.lost_because.startswith("less output (")


def test_qwen3_32b_on_1xh100_plans_with_the_context_that_fits() -> None:
    # vLLM's own logs show it serving 16k on that GPU.
    plan = build_plan(PlanRequest(model="qwen3-32b", gpus="1xH100"))
    assert plan.fits
    assert plan.request.context == 16384
    [adjustment] = plan.adjustments
    assert (adjustment.knob, adjustment.value, adjustment.default) == ("context", "16384", "32768")
    _predicted(plan)


def test_an_asked_context_is_not_shortened() -> None:
    plan = build_plan(
        PlanRequest(model="qwen3-32b", gpus="1xH100", context=32768, kv_cache_dtype="fp8")
    )
    assert plan.request.context == 32768
    assert all(a.knob != "context" for a in plan.adjustments)


def test_a_smaller_step_budget_is_the_mildest_knob_for_an_asked_context() -> None:
    plan = build_plan(
        PlanRequest(model="qwen3-32b", gpus="1xH100", context=32768, gpu_memory_utilization=0.9)
    )
    assert plan.fits
    [adjustment] = plan.adjustments
    assert (adjustment.knob, adjustment.value, adjustment.default) == (
        "max_num_batched_tokens",
        "2048",
        "8192",
    )


def test_fp8_kv_is_chosen_when_it_is_the_knob_that_fits() -> None:
    # Context, fraction and step budget pinned: only the KV dtype is left to turn.
    plan = build_plan(
        PlanRequest(
            model="qwen3-32b",
            gpus="1xH100",
            context=32768,
            gpu_memory_utilization=0.9,
            engine_args=["--max-num-batched-tokens=8192"],
        )
    )
    assert plan.fits
    assert [a.knob for a in plan.adjustments] == ["kv_cache_dtype"]
    assert plan.request.kv_cache_dtype == "fp8"


def test_nothing_fits_names_the_closest_knobs_and_the_smallest_hardware() -> None:
    plan = build_plan(PlanRequest(model="deepseek-r1", gpus="8xH100"))
    assert not plan.fits
    assert plan.suggestion is not None
    assert plan.suggestion.startswith("fits on 2 nodes of 8×H100-80GB-SXM")
    assert (
        "even with memory fraction 0.95, an FP8 KV cache, context 4096, 2048 batched tokens, "
        "eager mode" in plan.suggestion
    )


def test_latency_goal_ranks_by_tpot_and_says_by_how_much() -> None:
    plan = build_plan(PlanRequest(model="llama-3.1-70b", gpus="8xH100", goal="latency"))
    assert plan.parallelism.label() == "TP8"
    _predicted(plan)
    slower = [a for a in plan.alternatives if a.lost_because.startswith("slower decode (+")]
    assert slower and all(
        a.prediction and a.prediction.tpot_ms > plan.prediction.tpot_ms
        for a in slower
        if plan.prediction
    )


def test_an_unmeetable_slo_is_reported_not_fatal() -> None:
    plan = build_plan(PlanRequest(model="llama-3.1-8b", gpus="1xH100", slo="tpot=1ms"))
    assert plan.fits
    performance = next(r for r in plan.rationale if r.decision == "performance")
    assert "TPOT <= 1 ms" in performance.why


def test_pins_get_the_prediction_of_that_layout() -> None:
    pinned = build_plan(PlanRequest(model="llama-3.1-8b", gpus="8xH100", tp=2))
    assert pinned.parallelism.tp == 2
    _predicted(pinned)


def test_the_chosen_knobs_reach_the_engine_flags() -> None:
    from click.testing import CliRunner

    from orchestrator.cli import cli

    result = CliRunner().invoke(cli, ["up", "deepseek-r1", "--gpus", "8xRTX-PRO-6000", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "--gpu-memory-utilization 0.92 \\" in result.output
    assert "--max-model-len 32768 \\" in result.output
    budget = CliRunner().invoke(
        cli, ["up", "qwen3-32b", "--gpus", "1xH100", "--context", "32768", "--dry-run"]
    )
    assert budget.exit_code == 0, budget.output
    assert "--max-num-batched-tokens 2048" in budget.output


def test_disaggregated_pools_are_predicted_per_pool() -> None:
    import re

    plan = build_plan(PlanRequest(model="llama-3.1-8b", gpus="8xH100", disagg=True))
    assert plan.prediction is not None
    pools = next(r for r in plan.rationale if r.decision == "disaggregation")
    found = re.search(
        r"prefill pool ([\d.]+) prompts/s, TTFT (\d+) ms; decode pool ([\d.]+) requests/s, "
        r"TPOT ([\d.]+) ms",
        pools.why,
    )
    assert found is not None, pools.why
    prefill_rate, prefill_ttft, decode_rate, decode_tpot = map(float, found.groups())
    # The slower pool sets the rate; the first token comes after the prefill and one step.
    assert plan.prediction.requests_per_s == pytest.approx(min(prefill_rate, decode_rate), rel=0.01)
    assert plan.prediction.tpot_ms == pytest.approx(decode_tpot, abs=0.05)
    assert plan.prediction.ttft_ms == pytest.approx(prefill_ttft + decode_tpot, abs=1.0)


def test_eager_mode_is_the_last_knob_and_costs_decode_time() -> None:
    # A100 has no FP8; context, fraction and step budget are the user's.
    options = {
        "model": "qwen3-32b",
        "gpus": "1xA100-80GB",
        "context": 18432,
        "gpu_memory_utilization": 0.9,
        "engine_args": ["--max-num-batched-tokens=8192"],
    }
    plan = build_plan(PlanRequest(**options))
    assert plan.fits
    [adjustment] = plan.adjustments
    assert (adjustment.knob, adjustment.value) == ("enforce_eager", "true")
    assert "slower decode" in adjustment.reason
    shorter = build_plan(PlanRequest(**{**options, "context": 8192}))
    assert shorter.adjustments == []
    assert plan.prediction is not None and shorter.prediction is not None
    assert plan.prediction.tpot_ms > shorter.prediction.tpot_ms


def test_a_step_budget_from_engine_args_is_sized_and_the_a100_default_is_vllms() -> None:
    # vLLM profiles its activation peak with the step's token budget: a user's
    # --max-num-batched-tokens moves it, and an A100 runs on vLLM's 2048-token default.
    options = {"model": "qwen3-32b", "gpus": "1xA100-80GB", "context": 8192}
    default = build_plan(PlanRequest(**options))
    larger = build_plan(PlanRequest(**options, engine_args=["--max-num-batched-tokens", "8192"]))
    assert default.memory.overhead_gib_per_gpu < larger.memory.overhead_gib_per_gpu
    logits_gib = (8192 - 2048) * 151_936 * 4 / 2**30  # FP32 logits of the profiling batch
    assert larger.memory.overhead_gib_per_gpu - default.memory.overhead_gib_per_gpu > logits_gib
    assert larger.memory.kv_cache_tokens < default.memory.kv_cache_tokens
    assert larger.adjustments == default.adjustments == []
