"""The knee of the throughput curve and the level to run at.

Inputs are the levels in increasing load order (concurrency, or rate). Levels flagged
client-bound are left out of everything here: their figures are the client's.

Knee. Walk consecutive usable levels a -> b. With d = log2(load_b / load_a) doublings
(levels 1,2,4,... give d = 1), the step is normalised per doubling:
- throughput gain  g = (T_b / T_a) ** (1 / d) - 1, with T the output-token throughput;
- latency growth   r = (L_b / L_a) ** (1 / d) - 1, for L = p90 TTFT and L = p90 TPOT,
  counted only when L_b - L_a is also above `latency_floor_ms` (noise on small values) and
  above the two levels' event-loop lag p99 together: each time stamp the client takes can be
  late by that lag, so a smaller difference is the client's timing noise, not the server's.
The first step with g < `min_gain` (throughput stopped growing) or r > `max_latency_growth`
(latency turned up) puts the knee at its lower level a. No such step: no knee within the
levels measured (the highest usable level is reported as the last one that still scaled).

Recommendation. Candidates are the usable levels with an error rate at most `max_error_rate`
and, when an SLO is given, an SLO attainment (share of counted requests meeting every limit)
of at least `slo_attainment`. Among candidates at or below the knee, the one with the highest
output-token throughput is recommended (ties go to the lower load). None when no level
qualifies, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from orchestrator.bench.metrics import Distribution, LevelMetrics


@dataclass(frozen=True, slots=True)
class Rule:
    min_gain: float = 0.10  # per doubling of load
    max_latency_growth: float = 0.50  # per doubling of load
    latency_floor_ms: float = 2.0
    max_error_rate: float = 0.01
    slo_attainment: float = 0.90


@dataclass(frozen=True, slots=True)
class LevelView:
    """What the rule needs of one level."""

    load: float  # concurrency or rate
    metrics: LevelMetrics
    client_bound: bool
    timing_noise_ms: float = 0.0  # the client's event-loop lag p99 over the level


@dataclass(frozen=True, slots=True)
class Recommendation:
    knee: float | None  # load at the knee; None when throughput still grew at the top
    knee_reason: str
    recommended: float | None
    reason: str
    skipped_client_bound: tuple[float, ...]
    meets_slo: tuple[float, ...]


def _p90(dist: Distribution | None) -> float | None:
    return dist.p90 if dist is not None else None


def find_knee(levels: Sequence[LevelView], rule: Rule) -> tuple[float | None, str]:
    usable = [v for v in levels if not v.client_bound and v.metrics.completed > 0]
    if len(usable) < 2:
        return None, "fewer than two usable levels: no knee can be found"
    for a, b in pairwise(usable):
        finite = a.load > 0 and b.load > a.load and not math.isinf(b.load)
        # `--rate inf` follows the highest finite rate: count that step as one doubling
        doublings = math.log2(b.load / a.load) if finite else 1.0
        ta, tb = a.metrics.output_throughput, b.metrics.output_throughput
        gain = (tb / ta) ** (1 / doublings) - 1 if ta > 0 else math.inf
        if gain < rule.min_gain:
            return a.load, (
                f"throughput grew {gain:+.0%} per doubling from {a.load:g} to {b.load:g} "
                f"(below {rule.min_gain:.0%})"
            )
        for name, la, lb in (
            ("p90 TTFT", _p90(a.metrics.ttft), _p90(b.metrics.ttft)),
            ("p90 TPOT", _p90(a.metrics.tpot), _p90(b.metrics.tpot)),
        ):
            floor = max(rule.latency_floor_ms, a.timing_noise_ms + b.timing_noise_ms)
            if la is None or lb is None or la <= 0 or lb - la <= floor:
                continue
            growth = (lb / la) ** (1 / doublings) - 1
            if growth > rule.max_latency_growth:
                return a.load, (
                    f"{name} grew {growth:+.0%} per doubling from {a.load:g} to {b.load:g} "
                    f"({la:.1f} -> {lb:.1f} ms; above {rule.max_latency_growth:.0%})"
                )
    return None, f"throughput still grew at {usable[-1].load:g}: no knee within the levels"


def recommend(levels: Sequence[LevelView], rule: Rule, *, slo_given: bool) -> Recommendation:
    ordered = sorted(levels, key=lambda v: v.load)
    skipped = tuple(v.load for v in ordered if v.client_bound)
    knee, knee_reason = find_knee(ordered, rule)
    meets = []
    candidates = []
    for view in ordered:
        m = view.metrics
        error_rate = sum(m.errors.values()) / m.requests if m.requests else 1.0
        slo_ok = not slo_given or (m.slo_attainment or 0.0) >= rule.slo_attainment
        if slo_given and slo_ok:
            meets.append(view.load)
        if view.client_bound or m.completed == 0 or error_rate > rule.max_error_rate:
            continue
        if slo_ok:
            candidates.append(view)
    note = (
        f"; client-bound levels ignored: {', '.join(f'{x:g}' for x in skipped)}" if skipped else ""
    )
    if not candidates:
        why = (
            "no usable level met the SLO"
            if slo_given
            else f"no usable level (each was client-bound, failed, or had over "
            f"{rule.max_error_rate:.0%} errors)"
        )
        return Recommendation(knee, knee_reason, None, why + note, skipped, tuple(meets))
    below_knee = [v for v in candidates if knee is None or v.load <= knee]
    pool = below_knee or candidates
    best = max(pool, key=lambda v: (v.metrics.output_throughput, -v.load))
    parts = [f"highest output throughput ({best.metrics.output_throughput:.1f} tok/s)"]
    if slo_given:
        parts.append(f"among levels meeting the SLO (attainment >= {rule.slo_attainment:.0%})")
    if knee is not None:
        parts.append(f"at or below the knee ({knee:g})" if below_knee else "(all above the knee)")
    return Recommendation(
        knee, knee_reason, best.load, " ".join(parts) + note, skipped, tuple(meets)
    )
