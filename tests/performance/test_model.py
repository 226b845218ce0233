"""The performance model: calibration reproduces, and the physics moves the right way."""

from __future__ import annotations

import dataclasses
import math

import pytest

from orchestrator.hardware.gpus import find_gpu
from orchestrator.models.lookup import find_model
from orchestrator.plan import Parallelism
from orchestrator.planning.memory.estimate import estimate
from orchestrator.planning.performance import CALIBRATED, Forecast, Instance, Traffic, forecast
from orchestrator.planning.performance.calibration import cases, fit, median_error, rows
from orchestrator.planning.performance.dataset import DATA, dev_observations, model_finder
from orchestrator.planning.performance.efficiency import engine_features
from orchestrator.planning.performance.engine_args import cuda_graph_max_bs
from orchestrator.planning.performance.observations import case_of
from orchestrator.planning.performance.steps import decode_step, experts_touched, graph_max_batch

# A front end that costs 200 us per streamed chunk and an engine core with no CPU share: the
# streaming floor alone decides a saturated step.
SLOW_FRONT_END = dataclasses.replace(CALIBRATED, stream_token_s=200e-6, request_cpu_s=0.0)


def test_calibration_reproduces() -> None:
    found = cases(dev_observations(DATA), model_finder(DATA))
    assert len(found) == 58
    fitted, _ = fit(found)
    assert fitted == CALIBRATED
    table = rows(found, CALIBRATED)
    # In-sample medians (benchmarks/bench_performance.py also prints the cross-validated ones).
    assert median_error(table, "output_tokens_per_s") < math.log(1.25)
    assert median_error(table, "tpot_ms_median") < math.log(1.30)


def test_the_fit_owes_nothing_to_the_calibrated_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cross-validation refits without the held-out source, so the fit must start from points
    the data did not choose: changing CALIBRATED changes nothing a fit returns."""
    import orchestrator.planning.performance.calibration as calibration

    few = cases(dev_observations(DATA), model_finder(DATA))[:6]
    before, _ = fit(few)
    monkeypatch.setattr(calibration, "CALIBRATED", dataclasses.replace(CALIBRATED, hbm=0.41))
    after, _ = fit(few)
    assert after == before


def _sized(
    model: str, gpu: str, engine: str, par: Parallelism, **extra: object
) -> tuple[Instance, int]:
    """One instance of `model` on `gpu` as the memory estimate sizes it at 8k context, and its
    KV cache in tokens; `extra` sets other `Instance` fields."""
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
    return dataclasses.replace(inst, **extra), memory.kv_cache_tokens


def _predict(
    model: str, gpu: str, par: Parallelism, traffic: Traffic, engine: str = "vllm"
) -> Forecast:
    inst, kv_tokens = _sized(model, gpu, engine, par)
    return forecast(inst, traffic, kv_tokens=kv_tokens, context=8192)


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
    instance, while SGLang's single tokenizer manager still does (with a front end slow enough
    to be the floor)."""
    traffic = Traffic(isl=200, osl=200, concurrency=1024)
    old = _vllm_dp(traffic, "v0.10.1")
    new = _vllm_dp(traffic, "v0.13.0")
    assert new.tpot_ms < 0.8 * old.tpot_ms
    assert new.output_tokens_per_s > 1.2 * old.output_tokens_per_s


def _vllm_dp(traffic: Traffic, version: str) -> Forecast:
    par = Parallelism(tp=1, dp=8, attn_dp=8)
    inst, kv_tokens = _sized("qwen3-8b", "H100", "vllm", par, engine_version=version)
    return forecast(inst, traffic, kv_tokens=kv_tokens, context=8192, eff=SLOW_FRONT_END)


def test_mla_attention_dp_runs_the_larger_batch_tp_cannot_hold() -> None:
    """Under plain TP every rank holds the whole MLA latent of every request, so the KV pool
    (and the running batch at a long-context load) is a fraction of attention-DP's, where each
    rank holds only its own requests' latent; the throughput follows the batch."""
    traffic = Traffic(isl=4000, osl=1000, concurrency=512)
    tp = _predict("deepseek-v3", "H200", Parallelism(tp=8), traffic, engine="sglang")
    dpa = _predict("deepseek-v3", "H200", Parallelism(tp=8, attn_dp=8), traffic, engine="sglang")
    assert tp.bound == "kv-capacity"
    assert dpa.max_concurrency > 4 * tp.max_concurrency
    assert dpa.output_tokens_per_s > 1.5 * tp.output_tokens_per_s
    assert dpa.ttft_ms < tp.ttft_ms


def _instance(engine: str, par: Parallelism, **extra: object) -> Instance:
    return _sized("qwen3-8b", "H100", engine, par, **extra)[0]


def test_a_batch_above_the_largest_cuda_graph_launches_its_kernels_from_python() -> None:
    """SGLang captures decode graphs up to 256 running requests below TP4 on an 80 GB GPU and
    up to 512 from TP4 (server_args.py), per attention-DP group; one request more and every
    layer's kernels are launched eagerly. --cuda-graph-max-bs moves the cap."""
    assert graph_max_batch(_instance("sglang", Parallelism())) == 256
    assert graph_max_batch(_instance("sglang", Parallelism(tp=4))) == 512
    assert graph_max_batch(_instance("vllm", Parallelism())) == 512
    small = _instance("sglang", Parallelism(), cuda_graph_max_bs=8)
    inside = decode_step(small, 8, 600, CALIBRATED)
    above = decode_step(small, 9, 600, CALIBRATED)
    eager = small.model.num_layers * CALIBRATED.eager_layer_s
    assert above.seconds - inside.seconds == pytest.approx(eager, rel=0.1)
    # Eight attention groups of 16 each stay inside their graphs.
    par = Parallelism(tp=8, attn_dp=8)
    fits = _instance("sglang", par, cuda_graph_max_bs=16, stream_interval=100)
    misses = _instance("sglang", par, cuda_graph_max_bs=15, stream_interval=100)
    gap = (
        decode_step(misses, 128, 600, CALIBRATED).seconds
        - decode_step(fits, 128, 600, CALIBRATED).seconds
    )
    assert gap == pytest.approx(eager, rel=0.1)


def test_stream_interval_divides_the_front_ends_work() -> None:
    """--stream-interval 10 sends a chunk every 10 steps: a batch the front end capped
    streams faster."""
    every = decode_step(
        _instance("sglang", Parallelism(), cuda_graph_max_bs=4096), 2048, 600, SLOW_FRONT_END
    )
    tenth = decode_step(
        _instance("sglang", Parallelism(), cuda_graph_max_bs=4096, stream_interval=10),
        2048,
        600,
        SLOW_FRONT_END,
    )
    assert every.seconds == pytest.approx(2048 * SLOW_FRONT_END.stream_token_s)
    assert tenth.seconds < 0.5 * every.seconds


def test_the_published_commands_set_the_graph_cap_and_the_stream_interval() -> None:
    entry = next(
        o for o in dev_observations(DATA) if "--stream-interval" in str(o["server_command"])
    )
    case = case_of(entry, model_finder(DATA))
    assert case.instance.stream_interval == 10
    assert case.instance.cuda_graph_max_bs == 640


def test_the_graph_cap_is_read_under_either_sglang_spelling() -> None:
    """Newer SGLang splits --cuda-graph-max-bs by phase; the decode cap is the one a step sees."""
    assert cuda_graph_max_bs("--cuda-graph-max-bs 640") == 640
    assert cuda_graph_max_bs("--cuda-graph-max-bs-prefill 8 --cuda-graph-max-bs-decode=64") == 64
    assert cuda_graph_max_bs("--cuda-graph-max-bs-prefill 8") is None


@pytest.mark.parametrize(
    ("version", "kernels"),
    [("0.6.0", "legacy"), ("v0.7.4.dev181+gf35f8e22", "grouped"), ("v0.13.0", "grouped")],
)
def test_vllm_reads_experts_with_tuned_kernels_from_0_7(version: str, kernels: str) -> None:
    assert engine_features("vllm", version).moe_kernels == kernels


def test_a_published_run_is_sized_by_its_own_releases_memory_rule() -> None:
    """GPUStack's DeepSeek-V3.2 runs on SGLang 0.5.6 gave no fraction: that release captured
    no prefill graph, and with eight attention-DP groups it reserved their padding."""
    find = model_finder(DATA)
    runs = {o["id"]: o for o in dev_observations(DATA)}
    tp8 = case_of(runs["gpustack-dsv32-h200-sglang-tp8-sharegpt"], find)
    dp8 = case_of(runs["gpustack-dsv32-h200-sglang-tp8-dp8-dpattn-sharegpt"], find)
    model, h200 = find("deepseek-ai/DeepSeek-V3.2"), find_gpu("H200")
    for case, layout, reserve in (
        (tp8, Parallelism(tp=8), 512 + 1.5 * 8192 + 1024 + 2 * 512),
        (dp8, Parallelism(tp=8, attn_dp=8), 512 + 1.5 * 8192 + 1024 + 2 * 512 + 512 * 8 * 4.5),
    ):
        gib = h200.memory_gib * 1024
        fraction = round((gib - reserve) / gib, 3)
        sized = estimate(
            model, h200, "sglang", layout, context=case.context, memory_fraction=fraction
        )
        assert case.kv_tokens == sized.kv_cache_tokens


def test_sglang_shares_its_prefill_chunk_among_attention_dp_groups() -> None:
    """SGLang divides --chunked-prefill-size by the attention-DP size; vLLM gives each DP rank
    the whole --max-num-batched-tokens. An 8k prompt then takes eight chunks on one group,
    one step of the running batch each."""
    dpa = Parallelism(tp=8, attn_dp=8)
    assert _instance("sglang", dpa, max_num_batched_tokens=8192).prefill_budget_per_pool == 1024
    vllm_dp = _instance("vllm", Parallelism(dp=8), max_num_batched_tokens=8192)
    assert vllm_dp.prefill_budget_per_pool == 8192
    traffic = Traffic(isl=8192, osl=256, concurrency=64)
    # The same eight groups with a chunk of 8192 each (65536 shared out) and of 1024 each.
    one_chunk = _instance("sglang", dpa, max_num_batched_tokens=65536)
    eight_chunks = _instance("sglang", dpa, max_num_batched_tokens=8192)
    kv = 10**6
    whole = forecast(one_chunk, traffic, kv_tokens=kv, context=8192)
    split = forecast(eight_chunks, traffic, kv_tokens=kv, context=8192)
    step = decode_step(eight_chunks, split.batch, 8192 + 128, CALIBRATED).seconds * 1000
    # Seven more chunks, each a step of the running batch.
    assert split.ttft_ms - whole.ttft_ms == pytest.approx(7 * step, abs=0.05)
