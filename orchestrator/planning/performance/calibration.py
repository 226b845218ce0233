"""Calibration: the model against published measurements, the fit of its efficiencies, and
leave-one-source-out cross-validation.

Each observation (see `observations.case_of`) is predicted with the real catalog and memory
estimate; errors are |ln(predicted / published)|, so 2x too high and 2x too low weigh the
same. `fit` moves the factors of `Efficiency` one at a time over a grid inside their physical
bounds for the smallest median error over every metric of every observation. `cross_validate`
holds out one publication at a time, refits on the others and predicts the held-out runs: the
error a user's unseen deployment should expect.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator.planning.performance.efficiency import (
    CALIBRATED,
    FACTOR_BOUNDS,
    FACTOR_NAMES,
    Efficiency,
)
from orchestrator.planning.performance.observations import (
    METRICS,
    Case,
    ModelFinder,
    case_of,
)
from orchestrator.planning.performance.serving import Forecast, forecast
from orchestrator.planning.performance.steps import peak_flops, prefill_flops
from orchestrator.schema import ModelProfile

__all__ = ["METRICS", "Case", "Row", "cases", "cross_validate", "fit", "median_error", "rows"]

GRID_POINTS = 9
MAX_ROUNDS = 6


@dataclass(frozen=True)
class Row:
    id: str
    source: str
    metric: str
    predicted: float
    published: float

    @property
    def error(self) -> float:
        return abs(math.log(max(self.predicted, 1e-9) / self.published))


def catalog_model(name: str) -> ModelProfile:
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


def cases(observations: Iterable[Mapping[str, Any]], find: ModelFinder | None = None) -> list[Case]:
    return [case_of(entry, find or catalog_model) for entry in observations]


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
            out.append(Row(case.id, case.source, metric, values[metric], published))
        if case.prefill_tokens_per_s_per_node is not None:
            inst = case.instance
            per_gpu = peak_flops(inst.gpu, inst.model, inst.quantization) * eff.compute
            flops = prefill_flops(inst.model, case.traffic.isl) / case.traffic.isl
            predicted = per_gpu / flops * inst.gpus / inst.nnodes
            out.append(
                Row(
                    case.id,
                    case.source,
                    "prefill_tokens_per_s_per_node",
                    predicted,
                    case.prefill_tokens_per_s_per_node,
                )
            )
    return out


def median_error(found: Sequence[Row], metric: str | None = None) -> float:
    errors = [row.error for row in found if metric is None or row.metric == metric]
    return statistics.median(errors) if errors else 0.0


# TTFT (queueing-dominated and the noisiest) counts half as much as the throughput and TPOT
# the planner ranks layouts by.
WEIGHTS = {"output_tokens_per_s": 1.0, "tpot_ms_median": 1.0, "ttft_ms_median": 0.5}


def _objective(found: Sequence[Row]) -> float:
    """Weighted mean of the per-metric median errors."""
    total = weight = 0.0
    for metric in METRICS:
        if any(row.metric == metric for row in found):
            total += WEIGHTS[metric] * median_error(found, metric)
            weight += WEIGHTS[metric]
    return total / weight if weight else 0.0


def grid(name: str) -> list[float]:
    """GRID_POINTS values spread evenly inside the factor's bounds (log-spaced above zero)."""
    low, high = FACTOR_BOUNDS[name]
    if low <= 0:
        return [round(high * i / (GRID_POINTS - 1), 9) for i in range(GRID_POINTS)]
    ratio = (high / low) ** (1 / (GRID_POINTS - 1))
    return [float(f"{low * ratio**i:.3g}") for i in range(GRID_POINTS)]


# Coordinate descent finds the nearest optimum: it starts from the calibrated point and
# from a second, physics-first point (kernels near their published bandwidth, some CPU per
# request) and keeps the better end.
SECOND_START = {
    "hbm": 0.75,
    "moe_hbm": 0.6,
    "compute": 0.6,
    "request_cpu_s": 40e-6,
    "stream_token_s": 240e-6,
    "frontend_s": 0.02,
}


def _descend(all_cases: Sequence[Case], start: dict[str, float]) -> tuple[dict[str, float], float]:
    point = {
        name: min(max(value, FACTOR_BOUNDS[name][0]), FACTOR_BOUNDS[name][1])
        for name, value in start.items()
    }
    best = _objective(rows(all_cases, Efficiency(**point)))
    for _ in range(MAX_ROUNDS):
        changed = False
        for name in FACTOR_NAMES:
            for value in grid(name):
                trial = {**point, name: value}
                score = _objective(rows(all_cases, Efficiency(**trial)))
                if score < best - 1e-9:
                    best, point, changed = score, trial, True
        if not changed:
            break
    return point, best


def fit(all_cases: Sequence[Case], start: Efficiency = CALIBRATED) -> tuple[Efficiency, float]:
    """Coordinate descent from `start` and from SECOND_START: each factor in turn takes the
    grid value with the smallest objective, until a round changes nothing; the better end."""
    ends = [
        _descend(all_cases, asdict(start)),
        _descend(all_cases, {**asdict(start), **SECOND_START}),
    ]
    point, best = min(ends, key=lambda end: end[1])
    return Efficiency(**point), best


def cross_validate(all_cases: Sequence[Case]) -> list[Row]:
    """Leave one source out: for each publication, refit on the others and predict its runs."""
    out: list[Row] = []
    for source in sorted({case.source for case in all_cases}):
        train = [case for case in all_cases if case.source != source]
        held = [case for case in all_cases if case.source == source]
        fitted, _ = fit(train)
        out += rows(held, fitted)
    return out
