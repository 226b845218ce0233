"""Rules never override the prediction silently: when an engine rule with its source (what the
model cannot see) picks another layout than the goal's predicted best, the plan says so."""

from __future__ import annotations

import math

from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.predict import short
from orchestrator.planning.resolver.scoring import (
    LOWEST_TPOT,
    MOST_OUTPUT,
    MOST_PER_GPU,
    TIE_STEP,
    Criterion,
    loss,
)

# Criteria that read the prediction (or the load against it); any other one is a rule.
PREDICTED = {"output", "per-gpu", "tpot", "ttft", "slo", "kv-room", "fits", "meets", "ties"}


def objective(work: Workload) -> Criterion:
    """The goal's own objective: lowest TPOT, most output per GPU, or most output."""
    return {"latency": LOWEST_TPOT, "throughput": MOST_PER_GPU}.get(work.goal, MOST_OUTPUT)


def override_note(chosen: Candidate, ranked: list[Candidate], work: Workload) -> str | None:
    """A line naming the layout the prediction prefers and the rule that chose otherwise."""
    goal = objective(work)
    fitting = [c for c in ranked if c.valid and c.fits and c.meets(work) and c.forecast]
    if not fitting or chosen.forecast is None:
        return None
    best = min(fitting, key=lambda c: goal.value(c, work))
    gain = goal.value(chosen, work) - goal.value(best, work)
    if best is chosen or gain < TIE_STEP:
        return None
    kind, why = loss(best, chosen, work, ranked)
    if kind in PREDICTED or best.forecast is None:
        return None
    return (
        f"the prediction favours {best.shape.label()} x {len(best.replicas)} "
        f"({short(best.forecast)}, {math.expm1(gain) * 100:+.0f}% on the {work.goal} goal) "
        f"but a rule chose {chosen.shape.label()}: {why}"
    )
