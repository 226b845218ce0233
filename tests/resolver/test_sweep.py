"""Every catalog model x every example cluster (and a few shorthands) x both engines x all
goals: each plan passes `validate` and fits, or says clearly that it does not fit and names
hardware on which the same request does fit."""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from orchestrator.hardware import resolve_cluster
from orchestrator.models.catalog import load_models
from orchestrator.models.lookup import find_model
from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan, workload_for
from orchestrator.planning.request import PlanRequest
from orchestrator.planning.resolver.context import Shape
from orchestrator.planning.resolver.rules import validate

from .conftest import CLUSTERS_DIR

# GPU clusters: CPU nodes (cpu-*.yaml) serve with vLLM's CPU build only (tests/cpu).
CLUSTER_FILES = sorted(
    path.name for path in CLUSTERS_DIR.glob("*.yaml") if not path.name.startswith("cpu-")
)
SHORTHANDS = [
    ("1xH100", 1),
    ("8xH100", 2),
    ("4xA100-40GB-SXM", 1),
    ("1xRTX4090", 1),
    ("8xMI300X", 1),
]
HARDWARE: list[dict[str, Any]] = [{"cluster": str(CLUSTERS_DIR / name)} for name in CLUSTER_FILES]
HARDWARE += [{"gpus": gpus, "nodes": nodes} for gpus, nodes in SHORTHANDS]
MODELS = sorted(load_models())
ENGINES = ("vllm", "sglang")
GOALS = ("latency", "balanced", "throughput")


def _hardware_id(hardware: dict[str, Any]) -> str:
    if "cluster" in hardware:
        return str(hardware["cluster"]).rsplit("/", 1)[-1].removesuffix(".yaml")
    return f"{hardware['nodes']}x{hardware['gpus']}"


def _check_fitting(plan: Plan, request: PlanRequest) -> None:
    cluster = resolve_cluster(request.gpus, request.nodes, request.cluster)
    work = workload_for(request, find_model(request.model), cluster)
    per_node = {node.name: {gpu.index for gpu in node.gpus} for node in cluster.nodes}
    seen: set[tuple[str, int]] = set()
    for role in plan.roles:
        assert role.memory is not None and role.memory.fits
        assert validate(Shape.of(role.parallelism), work) == []
        for replica in role.replicas:
            gpus = [(piece.node, gpu) for piece in replica.slices for gpu in piece.gpus]
            assert len(gpus) == role.parallelism.gpus
            for node, gpu in gpus:
                assert gpu in per_node[node]
            assert not seen & set(gpus), "two instances share a GPU"
            seen |= set(gpus)
    assert len(seen) <= cluster.total_gpus
    assert plan.suggestion is None


def _suggested_request(suggestion: str, model: str, engine: str, goal: str) -> PlanRequest:
    first = suggestion.split(";")[0].removeprefix("fits on ").split(" or ")[0]
    nodes = 1
    if " nodes of " in first:
        count, first = first.split(" nodes of ")
        nodes = int(count)
    return PlanRequest(
        model=model, gpus=first.replace("×", "x"), nodes=nodes, engine=engine, goal=goal
    )


@cache
def _suggestion_fits(suggestion: str, model: str, engine: str, goal: str) -> bool:
    return build_plan(_suggested_request(suggestion, model, engine, goal)).fits


def test_same_input_same_json() -> None:
    request = PlanRequest(model="deepseek-r1", cluster=str(CLUSTERS_DIR / "two-node-h100-ib.yaml"))
    assert build_plan(request).model_dump_json() == build_plan(request).model_dump_json()


@pytest.mark.parametrize("hardware", HARDWARE, ids=_hardware_id)
@pytest.mark.parametrize("model", MODELS)
def test_every_plan_is_valid_or_says_what_fits(model: str, hardware: dict[str, Any]) -> None:
    for engine in ENGINES:
        for goal in GOALS:
            request = PlanRequest(model=model, engine=engine, goal=goal, **hardware)
            plan = build_plan(request)
            if plan.fits:
                _check_fitting(plan, request)
                continue
            assert plan.suggestion is not None and plan.suggestion.startswith("fits on ")
            assert _suggestion_fits(plan.suggestion, model, engine, goal), plan.suggestion
