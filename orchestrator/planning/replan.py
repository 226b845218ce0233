"""Re-planning after a failed start: the knob a memory failure points at, changed until the
planner's plan fits again. The failure classes are `runtime/diagnose.py`'s; the choice of knob
and the new plan are the planner's, so they live here."""

from __future__ import annotations

import re

from orchestrator.errors import DeployError
from orchestrator.plan import Plan
from orchestrator.planning.request import PlanRequest

# The failure classes (runtime/diagnose.py CAUSES) that more memory room can fix.
MEMORY_CAUSES = frozenset({"kv-cache", "gpu-taken", "cuda-oom"})

_ESTIMATE = re.compile(r"estimated maximum model length is (\d+)")
_OLD_KV = re.compile(r"stored in KV cache \((\d+)\)")
_FREE = re.compile(r"Free memory on device \(([\d.]+)/([\d.]+) GiB\)")
_LOADED = re.compile(r"Model loading took|Load weight end|Loading weights took")


def _fits(request: PlanRequest, **changes: object) -> Plan | None:
    from orchestrator.planning.build import build_plan

    try:
        plan = build_plan(request.model_copy(update=changes))
    except DeployError:
        return None
    return plan if plan.fits else None


def replan(
    cause: str, lines: list[str], request: PlanRequest, plan: Plan
) -> tuple[Plan, str] | None:
    """The planner's plan with the knob a failed start points at changed, if one fits, and
    that change in the user's words ("--context 32768 (was 131072)")."""
    if cause not in MEMORY_CAUSES:
        return None
    text = "\n".join(lines)
    context = plan.memory.context
    fraction = round(plan.memory.memory_fraction, 2)
    tp = plan.parallelism.tp
    candidates: list[tuple[str, dict[str, object]]] = []
    if cause == "kv-cache":
        # vLLM says how long a request its KV cache can hold: plan for that (a multiple of 1024).
        found = _ESTIMATE.search(text) or _OLD_KV.search(text)
        if found and int(found.group(1)) >= 1024:
            candidates.append(("context", {"context": int(found.group(1)) // 1024 * 1024}))
        if fraction < 0.95 and plan.cpu is None:
            candidates.append(
                ("fraction", {"gpu_memory_utilization": round(min(0.95, fraction + 0.05), 2)})
            )
        if context >= 2048:
            candidates.append(("context", {"context": context // 2}))
    elif cause == "gpu-taken":
        found = _FREE.search(text)
        if found:
            free = float(found.group(1)) / float(found.group(2))
            candidates.append(("fraction", {"gpu_memory_utilization": round(free - 0.02, 2)}))
    elif cause == "cuda-oom":
        if request.tp is None or _LOADED.search(text) is None:
            candidates.append(("tp", {"tp": tp * 2}))
        if fraction > 0.5:
            candidates.append(("fraction", {"gpu_memory_utilization": round(fraction - 0.05, 2)}))
        if context >= 2048:
            candidates.append(("context", {"context": context // 2}))
    for knob, changes in candidates:
        fitted = _fits(request, **changes)
        if fitted is None:
            continue
        if knob == "context":
            words = f"--context {fitted.memory.context} (was {context})"
        elif knob == "tp":
            words = f"--tp {fitted.parallelism.tp} (was {tp})"
        else:
            words = f"--gpu-memory-utilization {changes['gpu_memory_utilization']} (was {fraction})"
        return fitted, words
    return None
