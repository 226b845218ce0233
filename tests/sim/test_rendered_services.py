"""Every service `deploy up --simulate` would start is a command line the simulator runs.

The specs come from the real planner and engine renderers; the nginx config is the rendered
file. This pins the contract between the renderers and the simulator image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.sim.argv import parse_command
from orchestrator.sim.settings import EngineSettings, NginxSettings, RouterSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
TWO_NODES = str(REPO_ROOT / "profiles" / "clusters" / "two-node-h100-ib.yaml")

CASES: list[dict[str, Any]] = [
    {"model": "llama-3.1-8b", "gpus": "2xH100"},
    {"model": "llama-3.1-8b", "gpus": "2xH100", "engine": "sglang"},
    {"model": "deepseek-r1", "nodes": 2, "cluster": TWO_NODES},
    {"model": "deepseek-r1", "nodes": 2, "cluster": TWO_NODES, "engine": "sglang"},
    {"model": "llama-3.1-70b", "gpus": "8xH100", "disagg": True},
    {"model": "llama-3.1-70b", "gpus": "8xH100", "disagg": True, "engine": "sglang"},
    {"model": "llama-3.1-70b", "gpus": "8xH100", "disagg": True, "kv_connector": "mooncake"},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values())[:60])
def test_simulated_services_run_as_their_role(case: dict[str, Any], tmp_path: Path) -> None:
    from orchestrator.engines import build_services
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.request import PlanRequest
    from orchestrator.targets.compose.render import render_deployment

    plan = build_plan(PlanRequest(**case))
    services = build_services(plan, simulate=True)
    render_deployment(plan, services, tmp_path)
    assert services
    for spec in services:
        assert spec.image == "deploy-sim:latest"
        argv = [*spec.entrypoint, *spec.command]
        if argv[0] == "nginx":
            config = tmp_path / spec.node / "nginx.conf"
            program = parse_command([*argv, "-c", str(config)], {})
            assert isinstance(program, NginxSettings)
            upstream = program.upstreams["engines"]
            assert len(upstream.servers) == len(spec.depends_on)
            assert upstream.least_conn
            continue
        program = parse_command(argv, dict(spec.environment))
        if spec.role == "router":
            assert isinstance(program, RouterSettings)
            assert program.pd
            continue
        assert isinstance(program, EngineSettings)
        assert program.engine == plan.engine.name
        # the head of each replica serves HTTP on the port its probe checks; others none
        if spec.probe.kind == "http":
            assert program.http
            assert program.port == spec.probe.port
            assert program.host in ("0.0.0.0", "127.0.0.1")
        else:
            assert not program.http
        if spec.role in ("prefill", "decode") and plan.engine.name == "sglang":
            assert program.disaggregation_mode == spec.role
