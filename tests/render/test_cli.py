"""`deploy render` end to end: options, the planner, the renderers and the files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.plan import Plan

REPO = Path(__file__).resolve().parent.parent.parent
CLUSTER = REPO / "profiles" / "clusters" / "two-node-h100-ib.yaml"
SCHEMA = jsonschema.Draft7Validator(
    json.loads((REPO / "tests" / "data" / "compose-spec.json").read_text())
)


def test_render_two_node_deepseek_through_the_planner(tmp_path: Path) -> None:
    out = tmp_path / "r1"
    result = CliRunner().invoke(
        cli,
        ["render", "deepseek-r1", "--nodes", "2", "--cluster", str(CLUSTER), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    listed = [Path(line) for line in result.output.splitlines()]
    assert listed[:3] == [out / "plan.json", out / ".env.example", out / "README.md"]
    assert all(path.is_file() for path in listed)
    plan = Plan.model_validate_json((out / "plan.json").read_text())
    assert plan.model.name == "deepseek-r1" and plan.hardware.nodes == 2
    composes = sorted(out.glob("*/compose.yaml"))
    assert [path.parent.name for path in composes] == ["h100-a", "h100-b"]
    for path in composes:
        assert list(SCHEMA.iter_errors(yaml.safe_load(path.read_text()))) == []
    readme = (out / "README.md").read_text()
    assert "h100-a" in readme and "docker compose" in readme


def test_rendering_plan_json_again_gives_the_same_files(tmp_path: Path) -> None:
    from orchestrator.engines import build_services
    from orchestrator.targets.compose.render import render_deployment

    args = ["render", "qwen3-8b", "--gpus", "2xH100", "--out", str(tmp_path / "a")]
    assert CliRunner().invoke(cli, args).exit_code == 0
    plan = Plan.model_validate_json((tmp_path / "a" / "plan.json").read_text())
    render_deployment(plan, build_services(plan), tmp_path / "b")
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
            assert twin.read_bytes() == path.read_bytes(), path.name


def test_render_simulate_uses_the_simulator_image(tmp_path: Path) -> None:
    args = ["render", "llama-3.1-8b", "--gpus", "1xH100", "--simulate", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    compose = yaml.safe_load((tmp_path / "local" / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    assert service["image"] == "deploy-sim:latest"
    assert "deploy" not in service  # no GPU reservation


def test_render_rejects_a_flag_the_engine_version_lacks(tmp_path: Path) -> None:
    args = [
        "render",
        "llama-3.1-8b",
        "--gpus",
        "1xH100",
        "--engine-version",
        "0.32.0",
        "--engine-arg",
        "--disable-log-stats",
        "--engine-arg=--disable-prefix-caching",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.startswith("error: ")
    assert "--disable-prefix-caching" in result.output
    assert not (tmp_path / "plan.json").exists()


def test_render_refuses_a_deploy_managed_flag(tmp_path: Path) -> None:
    args = [
        "render",
        "llama-3.1-8b",
        "--gpus",
        "1xH100",
        "--engine-arg=--port",
        "--engine-arg=9000",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "--port is set by deploy" in result.output


def test_render_refuses_a_directory_holding_other_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("the project's own readme\n")
    args = ["render", "llama-3.1-8b", "--gpus", "1xH100", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output == (
        f"error: {tmp_path} is not empty and holds no earlier render (no deploy plan.json); "
        "pass a new or empty directory to --out\n"
    )
    assert (tmp_path / "README.md").read_text() == "the project's own readme\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["README.md"]


def test_render_refuses_a_file_as_out(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    args = ["render", "llama-3.1-8b", "--gpus", "1xH100", "--out", str(target)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"Invalid value for '--out': Directory '{target}' is a file." in result.output


def test_rerender_replaces_an_earlier_render_and_drops_its_stale_nodes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    two = ["render", "deepseek-r1", "--nodes", "2", "--cluster", str(CLUSTER), "--out", str(out)]
    assert CliRunner().invoke(cli, two).exit_code == 0
    assert sorted(path.name for path in out.iterdir() if path.is_dir()) == ["h100-a", "h100-b"]
    (out / "h100-b" / "notes.txt").write_text("kept: not a file deploy writes\n")
    (out / "empty-but-mine").mkdir()
    one = ["render", "llama-3.1-8b", "--gpus", "1xH100", "--out", str(out)]
    result = CliRunner().invoke(cli, one)
    assert result.exit_code == 0, result.output
    left = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert left == [
        ".env.example",
        "README.md",
        "h100-b/notes.txt",
        "local/compose.yaml",
        "local/launch.sh",
        "plan.json",
    ]
    assert (out / "empty-but-mine").is_dir() and not (out / "h100-a").exists()
    assert Plan.model_validate_json((out / "plan.json").read_text()).model.name == "llama-3.1-8b"
