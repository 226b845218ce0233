"""`--port`: the endpoint's port is the user's choice (two deployments on one machine, or a
test beside a user's deployment); engines behind a front take the ports after it."""

from __future__ import annotations

import pytest

from orchestrator import execution
from orchestrator.engines import build_services
from orchestrator.planning.request import PlanRequest


def _published(request: PlanRequest) -> dict[str, list[int]]:
    plan = execution.plan(request)
    return {s.name: [p.host for p in s.ports] for s in build_services(plan, simulate=True)}


def test_a_single_engine_listens_on_the_port_given() -> None:
    plan = execution.plan(PlanRequest(model="qwen3-8b", gpus="1xH100", port=18123))
    [spec] = build_services(plan)
    assert spec.command[spec.command.index("--port") + 1] == "18123"
    assert spec.probe.port == 18123
    assert plan.request.port == 18123
    assert plan.model_dump(mode="json")["request"]["port"] == 18123


def test_replicas_behind_the_load_balancer_follow_the_port() -> None:
    plan = execution.plan(PlanRequest(model="qwen3-8b", gpus="2xH100", tp=1, port=18123))
    specs = {s.name: s for s in build_services(plan, simulate=True)}
    assert specs["lb"].probe.port == 18123  # the front listens on the host's network
    assert {name: [p.host for p in s.ports] for name, s in specs.items() if name != "lb"} == {
        "serve-0": [18124],
        "serve-1": [18125],
    }


def test_without_port_the_release_default_and_an_unchanged_plan() -> None:
    plan = execution.plan(PlanRequest(model="qwen3-8b", gpus="1xH100"))
    assert "port" not in plan.model_dump(mode="json")["request"]
    assert _published(PlanRequest(model="qwen3-8b", gpus="1xH100")) == {"serve-0": [8000]}
    sglang = PlanRequest(model="qwen3-8b", gpus="1xH100", engine="sglang")
    assert _published(sglang) == {"serve-0": [30000]}


@pytest.mark.parametrize("port", [0, 65536])
def test_a_port_out_of_range_is_refused(cli_runner, port: int) -> None:  # type: ignore[no-untyped-def]
    from orchestrator.cli import cli

    result = cli_runner.invoke(cli, ["plan", "qwen3-8b", "--gpus", "1xH100", "--port", str(port)])
    assert result.exit_code == 2
    assert "--port" in result.output
