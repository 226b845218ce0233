"""A burst run step by step: admission, prefill pauses, the tail and the client's peak."""

from __future__ import annotations

import dataclasses
import math

import pytest

from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import default_max_num_batched_tokens, estimate
from orchestrator.planning.performance import Instance, Traffic, burst, forecast
from orchestrator.planning.performance.burst import (
    BurstResult,
    _Buckets,
    output_lengths,
    simulate,
    step_table,
)
from orchestrator.planning.performance.efficiency import PRIOR
from orchestrator.planning.performance.steps import decode_step

# The physical priors: what these tests check must not hang on a refit.
EFF = PRIOR


def _instance(engine: str) -> Instance:
    model, gpu = find_model("llama-3.1-8b"), find_gpu("H100")
    memory = estimate(model, gpu, engine, Parallelism(), context=8192)
    return Instance(
        model=model,
        gpu=gpu,
        engine=engine,
        par=Parallelism(),
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
        max_num_batched_tokens=default_max_num_batched_tokens(engine, gpu),
    )


def _burst(
    engine: str = "vllm",
    *,
    count: int = 400,
    isl: float = 200,
    osl: float = 200,
    varied: bool = False,
    cap: int = 1024,
    frontend_s: float = 0.01,
) -> BurstResult:
    eff = dataclasses.replace(EFF, frontend_s=frontend_s)
    return simulate(
        _instance(engine), count=count, isl=isl, osl=osl, varied=varied, cap=cap, eff=eff
    )


def test_a_slow_front_end_spreads_the_first_tokens_over_the_admission() -> None:
    """One request admitted every 50 ms: the median request is admitted after 100 of the 200,
    so its first token comes about 5 s after the send, and the burst lasts past 10 s."""
    run = _burst(count=200, frontend_s=0.05)
    assert run.ttft_s == pytest.approx(5.0, rel=0.05)
    assert run.duration_s > 10.0


def test_sglang_pauses_decoding_for_arriving_prompts() -> None:
    """SGLang runs a prefill batch before the next decode step whenever prompts wait, so while
    a burst is admitted its running requests wait for those prefills: their TPOT is well above
    the decode step of the largest batch."""
    sglang = _burst("sglang", count=600, frontend_s=0.005)
    step = decode_step(_instance("sglang"), sglang.largest_batch, 300, EFF).seconds
    assert sglang.tpot_s > 1.2 * step


def test_varied_lengths_keep_their_mean_and_leave_a_tail() -> None:
    lengths = output_lengths(200, True, 1000)
    assert sum(share for share, _ in lengths) == pytest.approx(1.0)
    assert sum(share * tokens for share, tokens in lengths) == pytest.approx(200)
    # The longest of 1000 exponential lengths: osl x H_1000 (about 7.5 x osl).
    share, longest = lengths[-1]
    assert share == pytest.approx(1 / 1000)
    assert longest == pytest.approx(200 * 7.485, rel=1e-3)
    assert output_lengths(200, False, 1000) == [(1.0, 200)]
    fixed, varied = _burst(varied=False), _burst(varied=True)
    # The same tokens, but the longest outputs finish nearly alone.
    assert varied.duration_s > 1.5 * fixed.duration_s


def test_a_burst_larger_than_the_engine_runs_waits_for_free_slots() -> None:
    small = _burst(count=256, cap=32, frontend_s=0.001)
    assert small.largest_batch == pytest.approx(32)
    large = _burst(count=256, cap=256, frontend_s=0.001)
    assert small.ttft_s > 3 * large.ttft_s
    assert small.duration_s > large.duration_s


def test_the_peak_counts_stream_events_in_one_second_buckets() -> None:
    """`vllm bench serve` counts each stream event in the one-second bucket it falls in."""
    buckets = _Buckets()
    buckets.add(0.5, 2.5, 200)  # 100 events per second, over three buckets
    buckets.add(1.2, 1.2, 30)  # first tokens, at one instant
    assert buckets.counts == pytest.approx({0: 50, 1: 130, 2: 50})
    assert buckets.peak() == pytest.approx(130)
    run = _burst(count=400)
    table = step_table(_instance("vllm"), 300, run.largest_batch, EFF)
    # No one-second bucket streams more than the largest batch at its own step's pace.
    assert 0 < run.peak_events_per_s <= 1.01 * run.largest_batch / table(run.largest_batch)


def test_the_step_table_follows_the_step_and_its_graph_cap() -> None:
    inst = _instance("sglang")
    table = step_table(inst, 300, 1000, EFF)
    for batch in (1, 7, 64, 200, 256, 257, 700, 1000):
        exact = decode_step(inst, batch, 300, EFF).seconds
        assert table(batch) == pytest.approx(exact, rel=0.05)


def test_a_large_burst_stays_bounded() -> None:
    run = _burst(count=20_000, cap=256, osl=50, varied=True, frontend_s=0.001)
    assert math.isfinite(run.duration_s)
    assert run.largest_batch <= 256
    # Every request's tokens leave at no more than the full batch's pace.
    step = decode_step(_instance("vllm"), 256, 225, EFF).seconds
    assert run.duration_s > 20_000 * 50 / 256 * step * 0.9


def test_past_its_iteration_bound_a_burst_goes_on_at_the_pace_it_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stepped = _burst(count=2000, cap=256, osl=100, frontend_s=0.001)
    monkeypatch.setattr(burst, "MAX_ITERATIONS", 50)
    cut = _burst(count=2000, cap=256, osl=100, frontend_s=0.001)
    assert cut.duration_s == pytest.approx(stepped.duration_s, rel=0.25)


def test_a_forecast_of_a_burst_reports_the_simulated_run() -> None:
    inst = _instance("vllm")
    memory_tokens = 400_000
    traffic = Traffic(isl=200, osl=200, num_requests=400)
    result = forecast(inst, traffic, kv_tokens=memory_tokens, context=8192, eff=EFF)
    run = simulate(inst, count=400, isl=200, osl=200, varied=False, cap=1024, eff=EFF)
    assert result.ttft_ms == pytest.approx(run.ttft_s * 1000, abs=0.01)
    assert result.output_tokens_per_s == pytest.approx(400 * 200 / run.duration_s, rel=1e-3)
    assert result.peak_events_per_s == pytest.approx(run.peak_events_per_s, abs=0.1)
