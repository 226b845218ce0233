"""FP8 offered when the BF16 plan breaks its SLO: the same search with FP8 weights and KV.

FP8 weights halve the weight bytes (more KV room, faster decode reads) and an FP8 KV cache
halves the bytes per token; on GPUs with FP8 tensor cores both engines run them online from a
BF16 checkpoint (vLLM and SGLang `--quantization fp8`, `--kv-cache-dtype fp8`). The planner
never switches precision silently: it names the option with both predictions.
"""

from __future__ import annotations

import dataclasses

from orchestrator.errors import DeployError
from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.predict import short

HALF_PRECISION = ("bf16", "fp16", "float16", "bfloat16")


def _misses(candidate: Candidate, work: Workload) -> list[str]:
    result = candidate.forecast
    ttft, tpot = work.slo
    if result is None:
        return []
    missed = []
    if ttft is not None and result.ttft_ms > ttft:
        missed.append(f"TTFT {result.ttft_ms / 1000:.1f} s > {ttft:.0f} ms")
    if tpot is not None and result.tpot_ms > tpot:
        missed.append(f"TPOT {result.tpot_ms:.1f} ms > {tpot:.0f} ms")
    return missed


def fp8_offer(work: Workload, chosen: Candidate) -> str | None:
    """A one-line FP8 option with its numbers, when the plan misses the SLO and FP8 meets it."""
    from orchestrator.planning.resolver.select import select

    missed = _misses(chosen, work)
    if not missed or not work.gpu.supports_fp8:
        return None
    weights_half = (
        work.quantization is None and work.model.checkpoint.format.lower() in HALF_PRECISION
    )
    kv_half = work.kv_cache_dtype == "auto"
    if not (weights_half or kv_half):
        return None
    trial = dataclasses.replace(
        work,
        quantization="fp8" if weights_half else work.quantization,
        kv_cache_dtype="fp8" if kv_half else work.kv_cache_dtype,
        _memo={},
    )
    try:
        other = select(trial).chosen
    except DeployError:
        return None
    if other.forecast is None or other.memory is None or chosen.memory is None:
        return None
    if _misses(other, trial):
        return None  # FP8 does not rescue the SLO either: nothing worth offering
    flags = " ".join(
        flag
        for flag, on in (("--quantization fp8", weights_half), ("--kv-cache-dtype fp8", kv_half))
        if on
    )
    return (
        f"the plan misses its SLO ({', '.join(missed)}; {chosen.memory.kv_cache_tokens:,} KV "
        f"tokens); FP8 ({flags}, or an FP8 checkpoint of the model) would give "
        f"{other.shape.label()} x {len(other.replicas)} {other.memory.kv_cache_tokens:,} KV "
        f"tokens and {short(other.forecast)}"
    )
