"""Layouts ranked as measurements rank them (benchmarks/data/layout-comparisons-dev.json).

For every measured comparison (one machine, one load, only the parallel flags differ) prints
each layout's measured and predicted tokens/s per GPU; counts the pairs at least 10 % apart
that the model orders the same way (target >= 90 %), the comparisons whose measured best
layout per GPU is the predicted best, and those whose predicted best measured within 3 % of it.
"""

from __future__ import annotations

import sys

from orchestrator.planning.performance.dataset import (
    DATA,
    comparisons,
    dev_observations,
    model_finder,
)
from orchestrator.planning.performance.layouts import judge_all

NEAR = 0.03


def main() -> int:
    judged = judge_all(comparisons(DATA), dev_observations(DATA), model_finder(DATA))
    pairs = right = best = close = 0
    for comparison in judged:
        print(f"\n{comparison.id}")
        for layout in comparison.layouts:
            print(
                f"  {layout.label[:48]:48} measured {layout.measured_per_gpu:8.0f}  "
                f"predicted {layout.predicted_per_gpu:8.0f} tok/s/GPU"
            )
        for better, worse, ordered in comparison.pairs():
            pairs += 1
            right += ordered
            if not ordered:
                print(f"  misordered: {better.label} > {worse.label}")
        best += comparison.best_picked
        close += comparison.picked_within(NEAR)
        print(
            f"  best measured: {comparison.best_measured}; predicted: {comparison.best_predicted}"
        )
    share = right / pairs if pairs else 1.0
    print(f"\npairs ordered right: {right}/{pairs} ({share:.0%}; target >= 90%)")
    print(f"best layout per GPU picked: {best}/{len(judged)}")
    print(f"picked a layout measured within {NEAR:.0%} of the best: {close}/{len(judged)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
