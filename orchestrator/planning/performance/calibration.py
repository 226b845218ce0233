"""Calibration: the model against published measurements, and the fit of its efficiencies.

Each observation (the dev set's format: engine, model, GPU, layout, lengths, load, measured
medians) is predicted with the real catalog and memory estimate; errors are |log(predicted /
published)|, so 2x too high and 2x too low weigh the same. `fit` grid-searches the four
efficiencies for the smallest median error over every metric of every observation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.plan import Parallelism
from orchestrator.planning.performance.efficiency import CALIBRATED, Efficiency
from orchestrator.planning.performance.serving import Forecast, Traffic, forecast
from orchestrator.planning.performance.steps import Instance, peak_flops, prefill_flops
from orchestrator.schema import ModelProfile

# ShareGPT runs whose source states no token totals: the mean lengths of the ShareGPT runs
# that do (about 220 in, 200 out with vllm bench serve).
SHAREGPT_ISL, SHAREGPT_OSL = 220.0, 200.0
METRICS = ("output_tokens_per_s", "tpot_ms_median", "ttft_ms_median")
GRID = {
    "hbm": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9),
    "moe_hbm": (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7),
    "compute": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
    "layer_overhead_s": (0.0, 5e-6, 10e-6, 15e-6, 20e-6, 30e-6, 40e-6),
    "moe_layer_overhead_s": (0.0, 25e-6, 50e-6, 100e-6, 150e-6, 200e-6, 300e-6, 400e-6),
    "frontend_s": (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08),
}
START = {name: values[len(values) // 2] for name, values in GRID.items()}
MAX_ROUNDS = 8


@dataclass(frozen=True)
class Case:
    """One observation, resolved to what the model needs."""

    id: str
    instance: Instance
    traffic: Traffic
    kv_tokens: int
    context: int
    measured: dict[str, float]
    prefill_tokens_per_s_per_node: float | None = None


@dataclass(frozen=True)
class Row:
    id: str
    metric: str
    predicted: float
    published: float

    @property
    def error(self) -> float:
        return abs(math.log(self.predicted / self.published))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _layout(entry: Mapping[str, Any]) -> Parallelism:
    tp = entry.get("tp") or entry.get("ep") or 1
    dp = entry.get("dp") or 1
    ep = entry.get("ep") or 1
    attn_dp = 1
    if entry.get("engine") == "sglang" and entry.get("dp_attention"):
        attn_dp, dp = dp, 1  # SGLang --dp with --enable-dp-attention: attention groups
    return Parallelism(tp=tp, pp=entry.get("pp") or 1, dp=dp, ep=ep, attn_dp=attn_dp)


def _memory_fraction(command: str) -> float | None:
    for flag in ("--mem-fraction-static", "--gpu-memory-utilization"):
        if flag in command:
            return float(command.split(flag)[1].split()[0])
    return None


def _context(command: str, default: int) -> int:
    for flag in ("--max-model-len", "--max_model_len", "--context-length"):
        if flag in command:
            return int(command.split(flag)[1].split()[0])
    return default


def _find_model(name: str) -> ModelProfile:
    """The catalog model, or the one a dated/instruct revision shares its architecture with
    (`Qwen3-235B-A22B-Instruct-2507` -> `qwen3-235b-a22b`, `DeepSeek-R1-0528` -> `deepseek-r1`)."""
    from orchestrator.errors import CatalogError
    from orchestrator.models.lookup import find_model

    base = name.split("/")[-1]
    while True:
        try:
            return find_model(base)
        except CatalogError:
            if "-" not in base:
                raise
            base = base.rsplit("-", 1)[0]


def case_of(entry: Mapping[str, Any]) -> Case:
    from orchestrator.catalog import find_gpu
    from orchestrator.memory import default_max_num_batched_tokens, estimate

    model = _find_model(entry["model"])
    gpu = find_gpu(entry["gpu"])
    engine = entry["engine"]
    par = _layout(entry)
    command = entry.get("server_command") or ""
    context = _context(command, min(model.max_context, 32768))
    memory = estimate(
        model,
        gpu,
        engine,
        par,
        context=context,
        memory_fraction=_memory_fraction(command),
        engine_version=None,
    )
    nodes = entry.get("nodes") or 1
    instance = Instance(
        model=model,
        gpu=gpu,
        engine=engine,
        par=par,
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
        nnodes=nodes,
        interconnect="nvswitch" if gpu.nvlink is not None else "pcie",
        fabric="infiniband" if nodes > 1 else "none",
        max_num_batched_tokens=default_max_num_batched_tokens(engine, gpu),
    )
    rate = entry.get("request_rate")
    workload = entry.get("workload") or {}
    traffic = Traffic(
        isl=_number(entry.get("isl")) or SHAREGPT_ISL,
        osl=_number(entry.get("osl")) or SHAREGPT_OSL,
        concurrency=entry.get("concurrency"),
        request_rate=float(rate) if isinstance(rate, int | float) else None,
        num_requests=workload.get("num_requests") if entry.get("concurrency") is None else None,
        varied_lengths=entry.get("dataset") == "sharegpt",
    )
    measured = {
        metric: float(value)
        for metric, value in (entry.get("measured") or {}).items()
        if metric in METRICS and isinstance(value, int | float)
    }
    prefill = (entry.get("measured_other") or {}).get("prefill_tokens_per_s_per_node")
    return Case(
        id=entry["id"],
        instance=instance,
        traffic=traffic,
        kv_tokens=memory.kv_cache_tokens,
        context=context,
        measured=measured,
        prefill_tokens_per_s_per_node=_number(prefill),
    )


def cases(observations: Iterable[Mapping[str, Any]]) -> list[Case]:
    return [case_of(entry) for entry in observations]


def predict(case: Case, eff: Efficiency) -> Forecast:
    return forecast(
        case.instance, case.traffic, kv_tokens=case.kv_tokens, context=case.context, eff=eff
    )


def rows(all_cases: Sequence[Case], eff: Efficiency = CALIBRATED) -> list[Row]:
    """Predicted vs published for every metric an observation states."""
    out: list[Row] = []
    for case in all_cases:
        result = predict(case, eff)
        values = {
            "output_tokens_per_s": result.output_tokens_per_s,
            "tpot_ms_median": result.tpot_ms,
            "ttft_ms_median": result.ttft_ms,
        }
        for metric, published in case.measured.items():
            out.append(Row(case.id, metric, values[metric], published))
        if case.prefill_tokens_per_s_per_node is not None:
            inst = case.instance
            per_gpu = peak_flops(inst.gpu, inst.model, inst.quantization) * eff.compute
            flops = prefill_flops(inst.model, case.traffic.isl) / case.traffic.isl
            predicted = per_gpu / flops * inst.gpus / inst.nnodes
            out.append(
                Row(
                    case.id,
                    "prefill_tokens_per_s_per_node",
                    predicted,
                    case.prefill_tokens_per_s_per_node,
                )
            )
    return out


def median_error(found: Sequence[Row], metric: str | None = None) -> float:
    errors = [row.error for row in found if metric is None or row.metric == metric]
    return statistics.median(errors) if errors else 0.0


def fit(all_cases: Sequence[Case]) -> tuple[Efficiency, float]:
    """Coordinate descent on the grid from its middle: each factor in turn takes the grid value
    with the smallest median error over all rows, until a round changes nothing."""
    point = dict(START)
    best = median_error(rows(all_cases, Efficiency(**point)))
    for _ in range(MAX_ROUNDS):
        changed = False
        for name, values in GRID.items():
            for value in values:
                trial = {**point, name: value}
                score = median_error(rows(all_cases, Efficiency(**trial)))
                if score < best - 1e-9:
                    best, point, changed = score, trial, True
        if not changed:
            break
    return Efficiency(**point), best
