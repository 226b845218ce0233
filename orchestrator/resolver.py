"""The parallelism resolver: from a `Workload` to roles, reasons, alternatives and warnings.

The rules live in small modules, each one job:
- `resolver_rules`: hard validity rules (`validate`), soft policies, pin checks;
- `resolver_candidates`: the shape space, judged (valid? fits? placed where?);
- `resolver_scoring`: the goal's ordered criteria and the reason a layout lost;
- `resolver_placement`: node and GPU indices per instance;
- `resolver_explain`: one `Reason` per decision, alternatives, warnings;
- `resolver_disagg`: prefill/decode pools; `resolver_suggest`: the smallest hardware that fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import PlanError
from orchestrator.plan import Alternative, MemoryEstimate, Parallelism, Reason, Role
from orchestrator.resolver_candidates import Candidate, candidates
from orchestrator.resolver_context import PIN_FLAGS, Shape, Workload
from orchestrator.resolver_explain import (
    alternatives,
    decision_reasons,
    fit_reason,
    warnings_for,
)
from orchestrator.resolver_rules import check_pins, validate
from orchestrator.resolver_scoring import rank

__all__ = ["Resolution", "Shape", "Workload", "resolve", "select", "validate"]


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


def resolve(
    work: Workload, *, disagg: bool = False, pools: dict[str, int] | None = None
) -> Resolution:
    """Plan one request: a `serve` role, or `prefill` + `decode` + `router` with `disagg`."""
    if disagg:
        from orchestrator.resolver_disagg import resolve_disagg

        return resolve_disagg(work, pools or {})
    selection = select(work)
    chosen = selection.chosen
    memory = chosen.memory
    assert memory is not None
    rationale = [fit_reason(chosen, selection.ranked, work, selection.fits)]
    rationale += decision_reasons(chosen, work, fits=selection.fits)
    rationale.append(disagg_advice(work, chosen))
    resolution = Resolution(
        roles=[role_from("serve", selection)],
        parallelism=chosen.shape.parallelism(),
        memory=memory,
        fits=selection.fits,
        rationale=rationale,
        alternatives=alternatives(chosen, selection.ranked, work) if selection.fits else [],
        warnings=warnings_for(chosen, work),
    )
    if not selection.fits:
        from orchestrator.resolver_suggest import suggest

        resolution.suggestion = suggest(work)
    return resolution


def disagg_advice(work: Workload, chosen: Candidate) -> Reason:
    """Why prefill and decode share engines here, and when splitting them would pay."""
    moe = work.model.moe
    nodes = len(work.nodes)
    if moe is not None and nodes >= 4 and work.model.params_total >= 200e9:
        why = (
            f"not requested; a large MoE on {nodes} nodes is the case for --disagg "
            f"(prefill and decode pools with wide EP, the decode pool larger)"
        )
    else:
        why = "not requested; prefill and decode share each engine (simplest, no KV transfer)"
    return Reason(decision="disaggregation", choice="off", why=why)
