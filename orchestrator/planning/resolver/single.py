"""One `serve` role: the selection, explained, with a suggestion when nothing fits."""

from __future__ import annotations

from orchestrator.plan import Adjustment, Reason
from orchestrator.planning.resolver.candidates import Candidate
from orchestrator.planning.resolver.context import Workload
from orchestrator.planning.resolver.explain import (
    alternatives,
    decision_reasons,
    fit_reason,
    performance_reason,
    warnings_for,
)
from orchestrator.planning.resolver.predict import as_prediction
from orchestrator.planning.resolver.select import Resolution, role_from, select
from orchestrator.planning.resolver.suggest import suggest


def resolve_single(work: Workload) -> Resolution:
    """Plan one request as a single `serve` role."""
    selection = select(work)
    adjusted: list[Adjustment] = []
    knobs: str | None = None
    if not selection.fits:
        from orchestrator.planning.resolver.nearfit import (
            closest_knobs,
            near_fit,
            quantized_sibling,
        )

        found = near_fit(work, context_asked=work.context_asked)
        if found is not None:
            work, selection, adjusted = found.work, found.selection, found.adjustments
        else:
            knobs = closest_knobs(work, context_asked=work.context_asked)
            sibling = quantized_sibling(work)
            if sibling:
                knobs = f"{knobs}; {sibling}" if knobs else sibling
    chosen = selection.chosen
    memory = chosen.memory
    assert memory is not None
    rationale = [fit_reason(chosen, selection.ranked, work, selection.fits)]
    rationale += decision_reasons(chosen, work, fits=selection.fits)
    rationale.append(performance_reason(chosen, work))
    rationale.append(disagg_advice(work, chosen))
    resolution = Resolution(
        roles=[role_from("serve", selection)],
        parallelism=chosen.shape.parallelism(),
        memory=memory,
        fits=selection.fits,
        rationale=rationale,
        alternatives=alternatives(chosen, selection.ranked, work) if selection.fits else [],
        warnings=warnings_for(chosen, work),
        prediction=as_prediction(chosen.forecast) if chosen.forecast else None,
        adjustments=adjusted,
        work=work,
    )
    if not selection.fits:
        hardware = suggest(work)
        parts = [part for part in (hardware, knobs) if part]
        resolution.suggestion = "; ".join(parts) if parts else None
    else:
        from orchestrator.planning.resolver.overrides import override_note
        from orchestrator.planning.resolver.quantize import fp8_offer

        note = override_note(chosen, selection.ranked, work)
        if note is not None:
            resolution.warnings.append(note)

        offer = fp8_offer(work, chosen)
        if offer is not None:
            resolution.warnings.append(offer)
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
