"""From step times to what a client measures: TTFT, TPOT and throughput under a load.

Closed loop (a fixed `concurrency`, as `vllm bench serve --max-concurrency` runs): the running
batch B is the concurrency, capped by the engine's max running requests and by the KV cache
(tokens held / tokens per request). Each round of decode takes D(B); the prefills of the
requests that join are chunked into the same steps, so over a request's life its TPOT is
D(B) + (B - 1) x P / osl, where P is a prompt's share of the instance's compute. TTFT is the
front end, one prefill alone and half a step of waiting for the running batch. Little's law
gives the request rate: B / (TTFT + osl x TPOT). Requests beyond B wait in the queue.

Open loop (`request_rate`): the batch is the fixed point B = rate x time in system; past the
instance's capacity the queue grows for the whole run. A burst (`num_requests` sent at once,
rate inf) is run step by step (burst.py): its admission, prefill pauses and tail decide what
the client measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from orchestrator.planning.memory.estimate import vllm_large_defaults
from orchestrator.planning.performance.efficiency import CALIBRATED, Efficiency, frontend_seconds
from orchestrator.planning.performance.steps import (
    Instance,
    decode_step,
    prefill_seconds,
    prefill_share_seconds,
    tokens_per_step,
)

GIB = 2**30
# vLLM's default --max-num-seqs (memory.estimate.vllm_large_defaults says which).
VLLM_MAX_NUM_SEQS_LARGE, VLLM_MAX_NUM_SEQS_SMALL = 1024, 256
# An open-loop run past capacity is judged over two minutes of arrivals.
OVERLOAD_WINDOW_S = 120.0
FIXED_POINT_ROUNDS = 12


@dataclass(frozen=True)
class Traffic:
    """What clients send: mean lengths and a load (one of the three)."""

    isl: float
    osl: float
    concurrency: int | None = None
    request_rate: float | None = None
    num_requests: int | None = None  # a burst: all sent at once
    # Lengths vary from request to request (a dataset such as ShareGPT), taken as exponential
    # around the mean; False: every request has exactly isl/osl tokens.
    varied_lengths: bool = False
    # A disaggregated pool does one phase: "prefill" (prompts only) or "decode" (no prompts
    # chunked into its steps; the KV cache arrives from the prefill pool).
    phase: str = "both"


@dataclass(frozen=True)
class Forecast:
    """The prediction for one instance times its replicas (medians of TTFT and TPOT)."""

    ttft_ms: float
    tpot_ms: float
    output_tokens_per_s: float
    input_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    requests_per_s: float
    max_concurrency: int
    batch: float
    bound: str
    # A burst's busiest one-second bucket of stream events (what `vllm bench serve` reports as
    # its peak output token throughput); None for other loads.
    peak_events_per_s: float | None = None


def max_running(inst: Instance, kv_tokens: int, context: int) -> int:
    """The engine's cap on running requests per instance (before the KV cache's)."""
    if inst.engine == "sglang":
        # SGLang: min(max(max_total_num_tokens / context_len * 512, 2048), 4096).
        return int(min(max(kv_tokens / max(context, 1) * 512, 2048), 4096))
    large = vllm_large_defaults(inst.gpu)
    per_pool = VLLM_MAX_NUM_SEQS_LARGE if large else VLLM_MAX_NUM_SEQS_SMALL
    return per_pool * inst.kv_pools


def _in_system(
    inst: Instance, traffic: Traffic, batch: float, eff: Efficiency
) -> tuple[float, float, str]:
    """(TTFT s, TPOT s, bound) with `batch` requests running."""
    context = traffic.isl + traffic.osl / 2
    step = decode_step(inst, batch, context, eff)
    share = prefill_share_seconds(inst, traffic.isl, eff)
    if traffic.phase == "decode":
        # Prompts were prefilled elsewhere: a request joins the batch at the next step.
        return frontend_seconds(eff, inst.engine) + step.seconds, step.seconds, step.bound
    if traffic.phase == "prefill":
        # Prompts back to back: each costs its compute share; the first token ends the request.
        ttft = frontend_seconds(eff, inst.engine) + prefill_seconds(inst, traffic.isl, eff)
        ttft += max(0.0, batch - 1) * share / 2
        return ttft, 0.0, "compute"
    tpot = (step.seconds + max(0.0, batch - 1) * share / max(traffic.osl, 1.0)) / tokens_per_step(
        inst
    )
    alone = prefill_seconds(inst, traffic.isl, eff)
    # A prompt longer than the step's token budget is prefilled in chunks, one per step.
    budget = inst.prefill_budget_per_pool
    chunks = math.ceil(traffic.isl / budget) if budget else 1
    ttft = frontend_seconds(eff, inst.engine) + alone + (chunks - 1) * step.seconds
    ttft += step.seconds / 2 if batch > 1 else 0.0
    bound = step.bound if share * (batch - 1) < step.seconds * traffic.osl else "compute"
    return ttft, tpot, bound


def _rate(traffic: Traffic, batch: float, ttft: float, tpot: float) -> float:
    return batch / (ttft + max(traffic.osl - 1, 0.0) * tpot)


def running_cap(inst: Instance, traffic: Traffic, kv_tokens: int, context: int) -> tuple[int, bool]:
    """The most requests one instance runs at once, and whether the KV cache (not the engine's
    max running requests) sets it."""
    per_request_tokens = traffic.isl + traffic.osl / 2
    kv_limit = max(1, int(kv_tokens / max(per_request_tokens, 1.0)))
    engine_cap = max_running(inst, kv_tokens, context)
    return max(1, min(engine_cap, kv_limit)), kv_limit < engine_cap


def peak_output_rate(
    inst: Instance,
    traffic: Traffic,
    *,
    kv_tokens: int,
    context: int,
    replicas: int = 1,
    eff: Efficiency = CALIBRATED,
) -> float:
    """Streamed chunks/s while the running batch is at its largest and every request decodes
    (what `vllm bench serve` reports as its peak output token throughput: the best one-second
    window of stream events, one per request and step, its requests early in their outputs).
    Speculative tokens arrive in one event, so they do not multiply it."""
    replicas = max(1, replicas)
    cap, _ = running_cap(inst, traffic, kv_tokens, context)
    offered = traffic.concurrency or traffic.num_requests
    batch = float(min(cap, math.ceil(offered / replicas))) if offered else float(cap)
    step = decode_step(inst, batch, traffic.isl + traffic.osl / 4, eff)
    return replicas * batch / max(inst.stream_interval, 1) / step.seconds


def forecast(
    inst: Instance,
    traffic: Traffic,
    *,
    kv_tokens: int,
    context: int,
    replicas: int = 1,
    eff: Efficiency = CALIBRATED,
) -> Forecast:
    """Predict one deployment of `replicas` identical instances; the load is spread evenly."""
    replicas = max(1, replicas)
    cap, bound_by_kv = running_cap(inst, traffic, kv_tokens, context)
    wait = 0.0
    peak: float | None = None
    if traffic.request_rate is not None and math.isfinite(traffic.request_rate):
        rate_in = traffic.request_rate / replicas
        batch = 1.0
        for _ in range(FIXED_POINT_ROUNDS):
            ttft, tpot, bound = _in_system(inst, traffic, batch, eff)
            batch = min(float(cap), max(1.0, rate_in * (ttft + traffic.osl * tpot)))
        ttft, tpot, bound = _in_system(inst, traffic, batch, eff)
        served = _rate(traffic, batch, ttft, tpot)
        if rate_in > served * 1.001:
            # Overloaded: the queue grows at (offered - served) for the whole window.
            wait = (rate_in - served) * OVERLOAD_WINDOW_S / served / 2
            bound = "queueing"
        else:
            served = rate_in
            # M/D/1: prompts queue for the prefill in front of them as the load nears capacity.
            full = _rate(traffic, float(cap), *_in_system(inst, traffic, cap, eff)[:2])
            load = min(0.95, rate_in / full)
            wait = prefill_seconds(inst, traffic.isl, eff) * load / (2 * (1 - load))
    else:
        offered = traffic.concurrency if traffic.concurrency is not None else traffic.num_requests
        # No load given: as many requests as one instance runs (saturation).
        wanted = cap if offered is None else max(1, math.ceil(offered / replicas))
        batch = float(min(wanted, cap))
        burst = traffic.concurrency is None and traffic.num_requests is not None
        if burst and traffic.phase == "both":
            # Plans load at a concurrency or a rate; only a burst needs the simulation.
            from orchestrator.planning.performance.burst import simulate

            run = simulate(
                inst,
                count=wanted,
                isl=traffic.isl,
                osl=traffic.osl,
                varied=traffic.varied_lengths,
                cap=cap,
                eff=eff,
            )
            ttft, tpot = run.ttft_s, run.tpot_s
            served = wanted / run.duration_s
            peak = run.peak_events_per_s * replicas
            batch = run.largest_batch
            bound = decode_step(inst, batch, traffic.isl + traffic.osl / 2, eff).bound
        else:
            ttft, tpot, bound = _in_system(inst, traffic, batch, eff)
            served = _rate(traffic, batch, ttft, tpot)
            if wanted > batch:
                wait = (wanted - batch) / served
        if wanted > batch:
            bound = "kv-capacity" if bound_by_kv else "max-running-requests"
    if traffic.phase == "prefill":
        # A prefill pool's rate is its prompt capacity: what it can feed the decode pool.
        served = 1.0 / max(prefill_share_seconds(inst, traffic.isl, eff), 1e-9)
    gpus = inst.gpus * replicas
    requests = served * replicas
    return Forecast(
        ttft_ms=round((ttft + wait) * 1000, 2),
        tpot_ms=round(tpot * 1000, 3),
        output_tokens_per_s=round(requests * traffic.osl, 1),
        input_tokens_per_s=round(requests * traffic.isl, 1),
        output_tokens_per_s_per_gpu=round(requests * traffic.osl / gpus, 1),
        requests_per_s=round(requests, 3),
        max_concurrency=cap * replicas,
        batch=round(batch, 1),
        bound=bound,
        peak_events_per_s=None if peak is None else round(peak, 1),
    )
