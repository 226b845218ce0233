"""Calibration of the performance model on published measurements (benchmarks/data).

Prints predicted vs published per observation and metric, the median error overall and for
output throughput, TPOT and TTFT separately, and refits the efficiencies to show the
calibrated values are the fit's. Error = |ln(predicted / published)|; the percentage shown is
exp(error) - 1.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from orchestrator.planning.performance import CALIBRATED
from orchestrator.planning.performance.calibration import METRICS, cases, fit, median_error, rows

DATA = Path(__file__).resolve().parent / "data" / "perf-observations-dev.json"


def percent(error: float) -> str:
    return f"{(math.exp(error) - 1) * 100:.0f}%"


def main() -> int:
    observations = json.loads(DATA.read_text())["observations"]
    found = cases(observations)
    table = rows(found, CALIBRATED)
    print(f"{'observation':50} {'metric':30} {'predicted':>11} {'published':>11} {'ratio':>6}")
    for row in table:
        print(
            f"{row.id:50} {row.metric:30} {row.predicted:11.1f} {row.published:11.1f} "
            f"{row.predicted / row.published:6.2f}"
        )
    overall = median_error(table)
    print(f"\nmedian error, all {len(table)} figures: {overall:.3f} ({percent(overall)})")
    for metric in (*METRICS, "prefill_tokens_per_s_per_node"):
        error = median_error(table, metric)
        count = sum(row.metric == metric for row in table)
        print(f"median error, {metric} ({count}): {error:.3f} ({percent(error)})")
    fitted, score = fit(found)
    print(f"\nrefit: {fitted} -> median error {score:.3f}")
    print(f"calibrated values are the fit's: {fitted == CALIBRATED}")
    return 0 if fitted == CALIBRATED else 1


if __name__ == "__main__":
    sys.exit(main())
