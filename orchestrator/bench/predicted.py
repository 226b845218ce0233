"""The plan's prediction beside each measured level, for a deployment `deploy` planned."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from orchestrator.bench.runner import BenchResult


def predictions_for(
    deployment: str, state_dir: Path | None, result: BenchResult
) -> list[dict[str, Any] | None]:
    """One prediction per level at the level's measured mean lengths and its load."""
    from orchestrator.plan import Plan
    from orchestrator.planning.performance.from_plan import predict_plan
    from orchestrator.state import StateStore

    state = StateStore(state_dir).load(deployment)
    if state is None or state.plan is None:
        return []
    from pydantic import ValidationError

    from orchestrator.errors import DeployError

    try:
        plan = Plan.model_validate(state.plan)
    except ValidationError:
        # A state written by another version of deploy: bench measures without predictions.
        return []
    found: list[dict[str, Any] | None] = []
    for level in result.levels:
        metrics, spec = level.metrics, level.spec
        if not metrics.mean_output_tokens:
            found.append(None)
            continue
        rate = spec.rate if spec.rate is not None and spec.rate != float("inf") else None
        try:
            forecast = predict_plan(
                plan,
                isl=metrics.mean_input_tokens or 1.0,
                osl=metrics.mean_output_tokens,
                concurrency=spec.concurrency if rate is None else None,
                request_rate=rate,
            )
        except DeployError:
            # The plan's model or GPU is no longer in this install's catalog or cache: bench
            # measures without predictions, as for a state it cannot read.
            return []
        found.append(None if forecast is None else asdict(forecast))
    return found


def planned_facts(deployment: str, state_dir: Path | None) -> dict[str, Any] | None:
    """What `deploy calibrate` needs to file a run: the plan's GPU, engine and layout."""
    from pydantic import ValidationError

    from orchestrator.plan import Plan
    from orchestrator.state import StateStore

    state = StateStore(state_dir).load(deployment)
    if state is None or state.plan is None:
        return None
    try:
        plan = Plan.model_validate(state.plan)
    except ValidationError:
        return None
    hw = plan.hardware
    names = [node.name for node in hw.node_list]
    cluster = "+".join(names) if len("+".join(names)) <= 60 else f"{names[0]}+{len(names) - 1}"
    return {
        "deployment": deployment,
        "gpu": hw.gpu,
        "engine": plan.engine.name,
        "engine_version": plan.engine.version,
        "cluster": cluster,
        "gpus_per_instance": plan.parallelism.gpus,
    }
