"""Calibration of the performance model on the 58 published dev runs (benchmarks/data).

Prints predicted vs published per run and metric, the median error of output throughput, TPOT
and TTFT in-sample, then by leave-one-source-out cross-validation (each publication held out
in turn, the factors refitted on the others from the physical priors, the held-out runs
predicted): the error to expect on runs nobody here has seen, with the mean error of each
held-out source. Error = |ln(predicted / published)|; the percentage shown is
exp(error) - 1. Target: <= 25 % cross-validated for throughput and TPOT. Also checks that the
calibrated factors are the fit's. `--quick` skips the cross-validation.
"""

from __future__ import annotations

import math
import os
import sys

from orchestrator.planning.performance import CALIBRATED
from orchestrator.planning.performance.calibration import (
    METRICS,
    PEAK,
    cases,
    cross_validate,
    fit,
    median_error,
    rows,
)
from orchestrator.planning.performance.dataset import DATA, dev_observations, model_finder

TARGET = math.log(1.25)


def percent(error: float) -> str:
    return f"{(math.exp(error) - 1) * 100:.0f}%"


def main(argv: list[str]) -> int:
    observations = dev_observations(DATA)
    found = cases(observations, model_finder(DATA))
    sources = sorted({case.source for case in found})
    print(f"{len(found)} runs from {len(sources)} sources")
    table = rows(found, CALIBRATED)
    print(f"{'run':55} {'metric':22} {'predicted':>11} {'published':>11} {'ratio':>6}")
    for row in table:
        print(
            f"{row.id[:55]:55} {row.metric[:22]:22} {row.predicted:11.1f} {row.published:11.1f} "
            f"{row.predicted / row.published:6.2f}"
        )
    print("\nin-sample median error:")
    for metric in METRICS:
        count = sum(row.metric == metric for row in table)
        print(f"  {metric:22} ({count:2}): {percent(median_error(table, metric))}")
    peaks = [row for row in table if row.metric == PEAK]
    low = sum(row.predicted < row.published for row in peaks)
    print(
        f"  {PEAK} ({len(peaks)}, not fitted): {percent(median_error(peaks))}, "
        f"predicted below published in {low}"
    )
    fitted, score = fit(found)
    print(f"\nrefit: {fitted} -> objective {score:.3f}")
    print(f"calibrated values are the fit's: {fitted == CALIBRATED}")
    if "--quick" in argv:
        return 0 if fitted == CALIBRATED else 1
    held = cross_validate(found, workers=os.cpu_count() or 1)
    print(f"\nleave-one-source-out cross-validated median error ({len(sources)} folds):")
    for metric in METRICS:
        error = median_error(held, metric)
        mark = "meets" if error <= TARGET else "misses"
        print(f"  {metric:22}: {percent(error)} ({mark} the 25% target)")
    print(f"  {PEAK} (not fitted): {percent(median_error(held, PEAK))}")
    print("\nheld-out sources, worst first (mean error of throughput and TPOT):")
    by_source: dict[str, list[float]] = {}
    for row in held:
        if row.metric in ("output_tokens_per_s", "tpot_ms_median"):
            by_source.setdefault(row.source, []).append(row.error)
    for source, errors in sorted(by_source.items(), key=lambda kv: -sum(kv[1]) / len(kv[1])):
        print(f"  {percent(sum(errors) / len(errors)):>6}  ({len(errors):2})  {source}")
    return 0 if fitted == CALIBRATED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
