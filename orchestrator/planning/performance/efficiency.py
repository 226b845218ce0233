"""The few physical efficiency factors of the performance model, with their calibrated values.

They are fitted on published measurements (benchmarks/bench_performance.py reproduces the
fit, docs/performance.md explains it); everything else in the model is the model's and the
GPU's own arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Efficiency:
    # Fraction of the HBM bandwidth a decode step's weight and KV reads reach.
    hbm: float
    # Fraction of the HBM bandwidth the routed experts' grouped GEMMs reach: a few tokens per
    # expert make many small, poorly overlapped reads.
    moe_hbm: float
    # Fraction of the dense peak (BF16 or FP8) the GEMMs of a prefill (or a large batch) reach.
    compute: float
    # Fixed time per layer and step: kernel launches, norms, rotary, sampling share.
    layer_overhead_s: float
    # Extra fixed time per MoE layer and step: router top-k, token permutation, grouped GEMM
    # launches and the un-permutation.
    moe_layer_overhead_s: float
    # Time outside the engine's forward passes per request: HTTP, chat template, tokenizer,
    # scheduler admission and the first token's detokenization.
    frontend_s: float


# Fitted by `orchestrator.planning.performance.calibration.fit` (grid search, median
# absolute log error over output throughput, TPOT and TTFT of the dev observations).
CALIBRATED = Efficiency(
    hbm=0.7,
    moe_hbm=0.15,
    compute=0.6,
    layer_overhead_s=15e-6,
    moe_layer_overhead_s=200e-6,
    frontend_s=0.06,
)
