"""The performance model: calibration reproduces, and the physics moves the right way."""

from __future__ import annotations

import math

import pytest

from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import estimate
from orchestrator.planning.performance import CALIBRATED, Forecast, Instance, Traffic, forecast
from orchestrator.planning.performance.calibration import cases, fit, median_error, rows
from orchestrator.planning.performance.dataset import DATA, dev_observations, model_finder
from orchestrator.planning.performance.steps import experts_touched


def test_calibration_reproduces() -> None:
    found = cases(dev_observations(DATA), model_finder(DATA))
    assert len(found) == 58
    fitted, _ = fit(found)
    assert fitted == CALIBRATED
    table = rows(found, CALIBRATED)
    # In-sample medians (benchmarks/bench_performance.py also prints the cross-validated ones).
    assert median_error(table, "output_tokens_per_s") < math.log(1.30)
    assert median_error(table, "tpot_ms_median") < math.log(1.35)


def _predict(
    model: str, gpu: str, par: Parallelism, traffic: Traffic, engine: str = "vllm"
) -> Forecast:
    profile, spec = find_model(model), find_gpu(gpu)
    memory = estimate(profile, spec, engine, par, context=8192)
    inst = Instance(
        model=profile,
        gpu=spec,
        engine=engine,
        par=par,
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
    )
    return forecast(inst, traffic, kv_tokens=memory.kv_cache_tokens, context=8192)


def test_wider_tp_lowers_tpot_of_a_bandwidth_bound_model() -> None:
    traffic = Traffic(isl=1000, osl=500, concurrency=1)
    tp1 = _predict("llama-3.1-8b", "H100", Parallelism(tp=1), traffic)
    tp4 = _predict("llama-3.1-8b", "H100", Parallelism(tp=4), traffic)
    assert tp4.tpot_ms < tp1.tpot_ms
    assert tp1.bound == "memory-bandwidth"
    # Per GPU, the single GPU does more work.
    assert tp1.output_tokens_per_s_per_gpu > tp4.output_tokens_per_s_per_gpu


def test_batching_raises_throughput_and_tpot() -> None:
    one = _predict("qwen3-8b", "H100", Parallelism(), Traffic(isl=1000, osl=500, concurrency=1))
    many = _predict("qwen3-8b", "H100", Parallelism(), Traffic(isl=1000, osl=500, concurrency=64))
    assert many.output_tokens_per_s > 10 * one.output_tokens_per_s
    assert many.tpot_ms > one.tpot_ms


def test_kv_capacity_caps_the_batch_and_queues_the_rest() -> None:
    traffic = Traffic(isl=30000, osl=2000, concurrency=256)
    result = _predict("qwen3-32b", "H100", Parallelism(), traffic)
    assert result.max_concurrency < 256
    assert result.bound == "kv-capacity"
    assert result.ttft_ms > 10_000


def test_open_loop_past_capacity_is_queueing() -> None:
    light = _predict(
        "llama-3.1-8b", "H100", Parallelism(), Traffic(isl=500, osl=200, request_rate=1)
    )
    heavy = _predict(
        "llama-3.1-8b", "H100", Parallelism(), Traffic(isl=500, osl=200, request_rate=1000)
    )
    assert light.requests_per_s == pytest.approx(1.0)
    assert heavy.bound == "queueing"
    assert heavy.requests_per_s < 1000
    assert heavy.ttft_ms > light.ttft_ms


def test_experts_touched_grows_to_all() -> None:
    model = find_model("deepseek-r1")
    assert experts_touched(model, 1) == pytest.approx(8 / 256)
    assert experts_touched(model, 4096) == pytest.approx(1.0, abs=1e-6)
    assert experts_touched(model, 8) < experts_touched(model, 64)


def test_speculative_decoding_in_the_engine_args_lowers_the_planned_tpot() -> None:
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.request import PlanRequest

    plain = build_plan(PlanRequest(model="deepseek-r1", gpus="8xH200"))
    mtp = build_plan(
        PlanRequest(
            model="deepseek-r1",
            gpus="8xH200",
            engine_args=['--speculative-config={"method": "mtp", "num_speculative_tokens": 3}'],
        )
    )
    assert plain.prediction is not None and mtp.prediction is not None
    assert mtp.prediction.tpot_ms < 0.7 * plain.prediction.tpot_ms


def test_vllm_dp_ranks_each_get_an_api_server_so_streaming_scales() -> None:
    """vLLM's internal load balancing starts one API server per DP rank: at a saturating
    batch the front end's per-token streaming no longer caps a DP deployment as one
    instance, while SGLang's single tokenizer manager still does."""
    traffic = Traffic(isl=200, osl=200, concurrency=1024)
    old = _vllm_dp(traffic, "v0.10.1")
    new = _vllm_dp(traffic, "v0.13.0")
    assert new.tpot_ms < 0.8 * old.tpot_ms
    assert new.output_tokens_per_s > 1.2 * old.output_tokens_per_s


def _vllm_dp(traffic: Traffic, version: str) -> Forecast:
    profile, spec = find_model("qwen3-8b"), find_gpu("H100")
    par = Parallelism(tp=1, dp=8, attn_dp=8)
    memory = estimate(profile, spec, "vllm", par, context=8192)
    inst = Instance(
        model=profile,
        gpu=spec,
        engine="vllm",
        par=par,
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
        engine_version=version,
    )
    return forecast(inst, traffic, kv_tokens=memory.kv_cache_tokens, context=8192)


def test_mla_attention_dp_runs_the_larger_batch_tp_cannot_hold() -> None:
    """Under plain TP every rank holds the whole MLA latent of every request, so the KV pool
    (and the running batch at a long-context load) is a fraction of attention-DP's, where each
    rank holds only its own requests' latent; the throughput follows the batch."""
    traffic = Traffic(isl=4000, osl=1000, concurrency=512)
    tp = _predict("deepseek-v3", "H200", Parallelism(tp=8), traffic, engine="sglang")
    dpa = _predict("deepseek-v3", "H200", Parallelism(tp=8, attn_dp=8), traffic, engine="sglang")
    assert tp.bound == "kv-capacity"
    assert dpa.max_concurrency > 4 * tp.max_concurrency
    assert dpa.output_tokens_per_s > 2 * tp.output_tokens_per_s
    assert dpa.ttft_ms < tp.ttft_ms
