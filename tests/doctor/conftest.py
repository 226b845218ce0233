"""Plans and recorded machines for the doctor's tests (factories as fixtures)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engines import build_services
from orchestrator.plan import Plan
from orchestrator.planning.build import build_plan
from orchestrator.planning.request import PlanRequest
from orchestrator.spec import ServiceSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "hardware" / "fixtures"


@pytest.fixture
def recording() -> Callable[[str], dict[str, Any]]:
    def load(name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
        return data

    return load


@pytest.fixture
def planned() -> Callable[..., tuple[Plan, list[ServiceSpec]]]:
    def plan_of(simulate: bool = False, **options: Any) -> tuple[Plan, list[ServiceSpec]]:
        plan = build_plan(PlanRequest.from_options(**options))
        return plan, build_services(plan, simulate=simulate)

    return plan_of


@pytest.fixture
def two_node_ib() -> Path:
    return REPO_ROOT / "profiles" / "clusters" / "two-node-h100-ib.yaml"
