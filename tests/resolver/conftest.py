"""Helpers for resolver tests: real catalog, real memory estimates, real cluster models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.hardware import cluster_from_shorthand
from orchestrator.hardware.model import Cluster
from orchestrator.planning.build import workload_for
from orchestrator.planning.request import PlanRequest
from orchestrator.planning.resolver.context import Shape, Workload
from orchestrator.resources import profiles_dir

CLUSTERS_DIR = profiles_dir() / "clusters"


def cluster_file(name: str) -> Path:
    return CLUSTERS_DIR / f"{name}.yaml"


def make_workload(
    model: str,
    gpus: str = "8xH100",
    nodes: int = 1,
    *,
    fabric: str | None = None,
    **options: Any,
) -> Workload:
    """A resolved workload on shorthand hardware, optionally with another inter-node fabric."""
    from orchestrator.models.lookup import find_model

    cluster: Cluster = cluster_from_shorthand(gpus, nodes)
    if fabric is not None:
        cluster = cluster.model_copy(update={"fabric": fabric})
    request = PlanRequest(model=model, gpus=gpus, nodes=nodes, **options)
    return workload_for(request, find_model(model), cluster)


@pytest.fixture
def workload():  # type: ignore[no-untyped-def]
    return make_workload


def shape(**sizes: int) -> Shape:
    return Shape(**sizes)
