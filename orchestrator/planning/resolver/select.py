"""Selection: search one role's shape space and pick the goal's best layout."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import PlanError
from orchestrator.plan import (
    Adjustment,
    Alternative,
    MemoryEstimate,
    Parallelism,
    Prediction,
    Reason,
    Role,
)
from orchestrator.planning.resolver.candidates import Candidate, candidates
from orchestrator.planning.resolver.context import PIN_FLAGS, Workload
from orchestrator.planning.resolver.rules import check_pins
from orchestrator.planning.resolver.scoring import rank


@dataclass
class Resolution:
    """What `build_plan` needs to fill a `Plan`."""

    roles: list[Role]
    parallelism: Parallelism
    memory: MemoryEstimate
    fits: bool
    rationale: list[Reason]
    alternatives: list[Alternative] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    suggestion: str | None = None
    prediction: Prediction | None = None
    adjustments: list[Adjustment] = field(default_factory=list)
    # The workload as planned: the user's, or its near-fit variant (context, fraction, KV).
    work: Workload | None = None


@dataclass
class Selection:
    """The winner of one role's search, the field it beat, and whether it fits."""

    chosen: Candidate
    ranked: list[Candidate]
    fits: bool


def select(work: Workload) -> Selection:
    """Search the shape space of `work` and pick the goal's best layout."""
    check_pins(work)
    field_ = candidates(work)
    valid = [c for c in field_ if c.valid]
    if not valid:
        if work.pins:
            pinned = " ".join(f"{PIN_FLAGS[k]} {v}" for k, v in work.pins.items())
            first = next((c.errors[0] for c in field_ if c.errors), "no layout")
            raise PlanError(f"no valid layout with {pinned}: {first}", "change or drop the pins")
        raise PlanError(
            f"no valid layout of {work.model.name} on {work.usable_gpus} x {work.gpu.name}",
            "check --gpus/--nodes/--max-gpus",
        )
    ranked = rank(valid, work)
    best = ranked[0]
    if best.fits and best.meets(work):
        return Selection(chosen=best, ranked=ranked, fits=True)
    # Nothing fits: show the layout that comes closest (most memory left per GPU, then the
    # goal's order), or, when weights fit but the workload does not, the largest capacity.
    if best.fits:
        closest = max(valid, key=lambda c: (c.fits, c.capacity, -c.shape.gpus))
    else:
        margin = {id(c): c.memory.margin_gib_per_gpu if c.memory else -1e9 for c in valid}
        closest = sorted(ranked, key=lambda c: -margin[id(c)])[0]
    return Selection(chosen=closest, ranked=ranked, fits=False)


def role_from(name: str, selection: Selection) -> Role:
    chosen = selection.chosen
    return Role(
        name=name,  # type: ignore[arg-type]
        parallelism=chosen.shape.parallelism(),
        replicas=chosen.replicas,
        memory=chosen.memory,
    )
