"""Rendered files are valid for the programs that read them: the Compose Specification
schema, a real compose implementation, bash, and each engine's flag schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from orchestrator.engines import build_services
from orchestrator.engines.common import runs_engine
from orchestrator.engines.flags import check_argv
from orchestrator.engines.routers import router_program
from orchestrator.errors import PlanError
from orchestrator.targets.compose.render import render_deployment

from .conftest import GOLDEN_DIR, SCENARIOS, scenario

DATA = Path(__file__).resolve().parent.parent / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
GOLDEN_COMPOSE = sorted(GOLDEN_DIR.glob("*/*/compose.yaml"))
GOLDEN_LAUNCH = sorted(GOLDEN_DIR.glob("*/*/launch.sh"))


def _ids(paths: list[Path]) -> list[str]:
    return [f"{path.parent.parent.name}/{path.parent.name}" for path in paths]


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / "compose-spec.json").read_text())
    return jsonschema.Draft7Validator(schema)


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        if IN_CI:
            pytest.fail("docker-compose is required in CI (apt-get install docker-compose)")
        pytest.skip("docker-compose is not installed (Debian: apt-get install docker-compose)")
    return found


def test_goldens_cover_every_layout() -> None:
    assert len(GOLDEN_COMPOSE) >= len(SCENARIOS)


@pytest.mark.parametrize("path", GOLDEN_COMPOSE, ids=_ids(GOLDEN_COMPOSE))
def test_golden_compose_matches_the_compose_spec(
    path: Path, compose_schema: jsonschema.Draft7Validator
) -> None:
    errors = [
        error.message for error in compose_schema.iter_errors(yaml.safe_load(path.read_text()))
    ]
    assert errors == []


@pytest.mark.parametrize("path", GOLDEN_COMPOSE, ids=_ids(GOLDEN_COMPOSE))
def test_golden_compose_loads_in_docker_compose(path: Path) -> None:
    program = _docker_compose()
    result = subprocess.run(
        [program, "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HF_TOKEN": "", "HOME": os.environ.get("HOME", "/root")},
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", GOLDEN_LAUNCH, ids=_ids(GOLDEN_LAUNCH))
def test_golden_launch_script_parses_in_bash(path: Path) -> None:
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_launch_script_lists_its_services(tmp_path: Path) -> None:
    plan = scenario("vllm", "pd1node")
    render_deployment(plan, build_services(plan), tmp_path)
    result = subprocess.run(
        ["bash", str(tmp_path / "gpu-a" / "launch.sh"), "list"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"]},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["prefill-0", "decode-0", "router"]


@pytest.mark.parametrize("simulate", [False, True], ids=["real", "simulate"])
@pytest.mark.parametrize(
    ("engine", "layout"), SCENARIOS, ids=[f"{engine}-{layout}" for engine, layout in SCENARIOS]
)
def test_every_command_parses_against_its_flag_schema(
    engine: str, layout: str, simulate: bool
) -> None:
    plan = scenario(engine, layout)
    if simulate and plan.request.distributed_backend == "ray":
        with pytest.raises(PlanError, match="simulator image has no Ray"):
            build_services(plan, simulate=simulate)
        return
    services = build_services(plan, simulate=simulate)
    checked = 0
    for spec in services:
        if spec.role in ("serve", "prefill", "decode") and runs_engine(spec):
            check_argv(engine, plan.engine.version, spec.command)
            checked += 1
        elif spec.role == "router":
            program, version = router_program(plan)
            check_argv(program, version, spec.command)
            checked += 1
    # Ray nodes run `ray start`, which is Ray's command line, not the engine's.
    ray_nodes = [spec for spec in services if not runs_engine(spec)]
    assert all(spec.command[:2] == ["start", "--block"] for spec in ray_nodes)
    assert checked == sum(1 for spec in services if spec.role != "lb") - len(ray_nodes)


@pytest.mark.parametrize(
    ("engine", "version"),
    [("vllm", "0.32.0"), ("sglang", "0.5.21"), ("sglang", "0.5.22")],
)
@pytest.mark.parametrize("layout", ["2node", "dpep", "pd2node"])
def test_older_pinned_versions_render_valid_commands(
    engine: str, version: str, layout: str
) -> None:
    plan = scenario(engine, layout, version=version)
    engines = [spec for spec in build_services(plan) if spec.role not in ("lb", "router")]
    assert engines
    for spec in engines:
        check_argv(engine, version, spec.command)  # raises FlagError on a flag it lacks


@pytest.mark.parametrize("simulate", [False, True], ids=["real", "simulate"])
def test_rendered_simulation_compose_is_valid(
    simulate: bool, tmp_path: Path, compose_schema: jsonschema.Draft7Validator
) -> None:
    plan = scenario("sglang", "pd2node")
    render_deployment(plan, build_services(plan, simulate=simulate), tmp_path)
    for path in sorted(tmp_path.glob("*/compose.yaml")):
        assert list(compose_schema.iter_errors(yaml.safe_load(path.read_text()))) == []
