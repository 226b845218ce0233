"""A rendered compose file really runs: `deploy render --simulate` output started with the
real docker-compose on a real Docker Engine, using the engine simulator image, then one
completion through the front (PD router or nginx load balancer) to the engines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from orchestrator.engines import build_services
from orchestrator.engines.common import SIM_IMAGE
from orchestrator.plan import Parallelism, Plan, Role
from orchestrator.targets.compose.render import render_deployment
from tests.conftest import free_ports

from .conftest import scenario

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _require(condition: bool, reason: str) -> None:
    if not condition:
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def compose_program() -> str:
    program = shutil.which("docker-compose")
    _require(
        program is not None, "docker-compose is not installed (apt-get install docker-compose)"
    )
    assert program is not None
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    _require(info.returncode == 0, "no Docker Engine is reachable (start dockerd)")
    image = subprocess.run(
        ["docker", "image", "inspect", SIM_IMAGE], capture_output=True, timeout=30
    )
    if image.returncode != 0:
        pytest.skip(f"{SIM_IMAGE} is not built (make sim-image)")
    return program


def _with_ports(plan: Plan) -> Plan:
    """Move the plan off the default ports, so the rehearsal cannot collide with anything."""
    ports = free_ports(len(plan.roles) + 1)
    roles = [
        role.model_copy(update={"port": port})
        for role, port in zip(plan.roles, ports[1:], strict=True)
    ]
    roles.append(Role(name="router", parallelism=Parallelism(), replicas=[], port=ports[0]))
    return Plan.model_validate({**plan.model_dump(), "roles": [r.model_dump() for r in roles]})


def _get(url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        loaded: dict[str, object] = json.loads(response.read())
        return loaded


def _wait_for(url: str, seconds: float) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.mark.parametrize(("engine", "layout"), [("vllm", "pd1node"), ("sglang", "replicas")])
def test_simulated_deployment_serves_through_its_front(
    engine: str, layout: str, compose_program: str, tmp_path: Path
) -> None:
    plan = _with_ports(scenario(engine, layout))
    services = build_services(plan, simulate=True)
    render_deployment(plan, services, tmp_path)
    front = next(spec for spec in services if spec.role in ("router", "lb"))
    project = f"render-rehearsal-{uuid.uuid4().hex[:8]}"
    compose = [compose_program, "-p", project, "-f", str(tmp_path / front.node / "compose.yaml")]
    try:
        # `up` returns once the front started, which compose does only after the engines
        # reported healthy through the rendered healthchecks.
        up = subprocess.run([*compose, "up", "-d"], capture_output=True, text=True, timeout=240)
        assert up.returncode == 0, up.stderr
        endpoint = f"http://127.0.0.1:{front.probe.port}"
        models = _wait_for(f"{endpoint}/v1/models", 60)
        assert [entry["id"] for entry in models["data"]] == [plan.model.name]  # type: ignore[index, union-attr]
        answer = _get(
            f"{endpoint}/v1/completions",
            {"model": plan.model.name, "prompt": "hello", "max_tokens": 3},
        )
        assert answer["usage"]["completion_tokens"] == 3  # type: ignore[index, call-overload]
    finally:
        subprocess.run([*compose, "down", "-v", "--timeout", "5"], capture_output=True, timeout=120)
