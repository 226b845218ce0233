"""Calibration: the model against published measurements, the fit of its efficiencies, and
leave-one-source-out cross-validation.

Each observation (see `observations.case_of`) is predicted with the real catalog and memory
estimate; errors are |ln(predicted / published)|, so 2x too high and 2x too low weigh the
same. `fit` moves the factors of `Efficiency` one at a time over a grid inside their physical
bounds, starting from the physical priors, for the smallest mean (capped) error over every
metric of every observation plus a pull towards the priors. `cross_validate` holds out one
publication at a time, refits on the others from the same priors and predicts the held-out
runs: the error a user's unseen deployment should expect. Peak output rates, where the client
reports them, are compared (rows) but not fitted.
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
    PRIOR,
    Efficiency,
)
from orchestrator.planning.performance.observations import (
    METRICS,
    Case,
    ModelFinder,
    case_of,
)
from orchestrator.planning.performance.serving import Forecast, forecast, peak_output_rate
from orchestrator.planning.performance.steps import peak_flops, prefill_flops
from orchestrator.schema import ModelProfile

__all__ = [
    "METRICS",
    "PEAK",
    "Case",
    "Row",
    "cases",
    "cross_validate",
    "fit",
    "median_error",
    "rows",
]

# The peak one-second output rate: the saturated decode step without a burst's admission and
# tail. Compared, not fitted: see docs/performance.md, "Known limits".
PEAK = "peak_output_tokens_per_s"
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
        if case.peak_output_tokens_per_s is not None:
            peak = result.peak_events_per_s or peak_output_rate(
                case.instance, case.traffic, kv_tokens=case.kv_tokens, context=case.context, eff=eff
            )
            out.append(Row(case.id, case.source, PEAK, peak, case.peak_output_tokens_per_s))
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
# An error above this (2.5x) counts as this: one run the model cannot explain must not drag
# every factor towards it.
OUTLIER_CAP = math.log(2.5)
# Weight of the pull towards PRIOR (see `_penalty`): factors the data barely determine stay
# near their physical value instead of wandering to whichever grid point a fold prefers.
REGULARIZATION = 1.0


def _metric_loss(found: Sequence[Row], metric: str) -> float | None:
    errors = [min(row.error, OUTLIER_CAP) for row in found if row.metric == metric]
    return sum(errors) / len(errors) if errors else None


def _penalty(point: Mapping[str, float]) -> float:
    """Mean squared distance from PRIOR, each factor's distance measured in its own range
    (log scale for factors bounded away from zero)."""
    total = 0.0
    for name in FACTOR_NAMES:
        low, high = FACTOR_BOUNDS[name]
        value, prior = point[name], getattr(PRIOR, name)
        if low > 0:
            total += (math.log(value / prior) / math.log(high / low)) ** 2
        else:
            total += ((value - prior) / (high - low)) ** 2
    return total / len(FACTOR_NAMES)


def _objective(found: Sequence[Row], point: Mapping[str, float]) -> float:
    """Weighted mean over metrics of the mean capped error, plus the pull towards PRIOR."""
    total = weight = 0.0
    for metric in METRICS:
        loss = _metric_loss(found, metric)
        if loss is not None:
            total += WEIGHTS[metric] * loss
            weight += WEIGHTS[metric]
    return (total / weight if weight else 0.0) + REGULARIZATION * _penalty(point)


def grid(name: str) -> list[float]:
    """GRID_POINTS values spread evenly inside the factor's bounds (log-spaced above zero)."""
    low, high = FACTOR_BOUNDS[name]
    if low <= 0:
        return [round(high * i / (GRID_POINTS - 1), 9) for i in range(GRID_POINTS)]
    ratio = (high / low) ** (1 / (GRID_POINTS - 1))
    return [float(f"{low * ratio**i:.3g}") for i in range(GRID_POINTS)]


# Coordinate descent finds the nearest optimum, so it starts from two points that owe nothing
# to the data (a held-out source must not shape its own fold's start): the physical priors,
# and a CPU-first point (kernels slower, the host's share larger); the better end wins.
SECOND_START = {
    "hbm": 0.6,
    "moe_hbm": 0.4,
    "compute": 0.4,
    "request_cpu_s": 80e-6,
    "eager_layer_s": 600e-6,
}


def _descend(all_cases: Sequence[Case], start: dict[str, float]) -> tuple[dict[str, float], float]:
    point = {
        name: min(max(value, FACTOR_BOUNDS[name][0]), FACTOR_BOUNDS[name][1])
        for name, value in start.items()
    }
    best = _objective(rows(all_cases, Efficiency(**point)), point)
    for _ in range(MAX_ROUNDS):
        changed = False
        for name in FACTOR_NAMES:
            for value in grid(name):
                trial = {**point, name: value}
                score = _objective(rows(all_cases, Efficiency(**trial)), trial)
                if score < best - 1e-9:
                    best, point, changed = score, trial, True
        if not changed:
            break
    return point, best


def fit(all_cases: Sequence[Case]) -> tuple[Efficiency, float]:
    """Coordinate descent from PRIOR and from SECOND_START: each factor in turn takes the
    grid value with the smallest objective, until a round changes nothing; the better end."""
    ends = [
        _descend(all_cases, asdict(PRIOR)),
        _descend(all_cases, {**asdict(PRIOR), **SECOND_START}),
    ]
    point, best = min(ends, key=lambda end: end[1])
    return Efficiency(**point), best


def _held_out(all_cases: Sequence[Case], source: str) -> list[Row]:
    """One fold: refit without `source`, predict its runs."""
    fitted, _ = fit([case for case in all_cases if case.source != source])
    return rows([case for case in all_cases if case.source == source], fitted)


def cross_validate(all_cases: Sequence[Case], workers: int = 1) -> list[Row]:
    """Leave one source out: for each publication, refit on the others and predict its runs.
    The folds are independent; `workers` > 1 runs them in that many processes."""
    sources = sorted({case.source for case in all_cases})
    if workers <= 1:
        return [row for source in sources for row in _held_out(all_cases, source)]
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    with ProcessPoolExecutor(max_workers=workers) as pool:
        folds = pool.map(partial(_held_out, list(all_cases)), sources)
        return [row for fold in folds for row in fold]
