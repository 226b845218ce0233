"""Secrets fail closed: a named API-key variable that is unset refuses `render` and `up`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

UNSET = "DEPLOY_TEST_UNSET_API_KEY"
REFUSAL = (
    f"error: {UNSET} is not set (or empty): the endpoint would start without an API key; "
    f"export {UNSET}=..., or pass --allow-missing-secret {UNSET} to render it anyway\n"
)


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET, raising=False)


def unreachable_cluster(tmp_path: Path) -> Path:
    """A one-node cluster whose Docker endpoint does not exist: nothing can start by mistake."""
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "name: one\nfabric: none\nnodes:\n"
        f"  - name: n0\n    address: 127.0.0.1\n    docker: unix://{tmp_path}/none.sock\n"
        "    gpus: 1xH100-80GB\n",
        encoding="utf-8",
    )
    return path


def test_render_refuses_an_unset_api_key_variable(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["render", "qwen3-8b", "--gpus", "1xH100-80GB", "--api-key-env", UNSET]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert (result.exit_code, result.stderr) == (2, REFUSAL)
    assert not out.exists()


def test_an_empty_api_key_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UNSET, "")
    args = ["render", "qwen3-8b", "--gpus", "1xH100-80GB", "--api-key-env", UNSET]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert (result.exit_code, result.stderr) == (2, REFUSAL)


def test_allow_missing_secret_renders_deliberately(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["render", "qwen3-8b", "--gpus", "1xH100-80GB", "--api-key-env", UNSET]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--allow-missing-secret", UNSET])
    assert result.exit_code == 0, result.output
    assert (out / "local" / "compose.yaml").is_file()


def test_up_refuses_an_unset_api_key_variable_before_touching_docker(tmp_path: Path) -> None:
    cluster = unreachable_cluster(tmp_path)
    args = ["up", "qwen3-8b", "--cluster", str(cluster), "--simulate", "--api-key-env", UNSET]
    result = CliRunner().invoke(cli, [*args, "--state-dir", str(tmp_path / "state")])
    assert (result.exit_code, result.stderr) == (2, REFUSAL)
    assert not (tmp_path / "state").exists()


def test_the_dry_run_warns_that_up_would_refuse(tmp_path: Path) -> None:
    args = ["up", "qwen3-8b", "--gpus", "1xH100-80GB", "--api-key-env", UNSET, "--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"warning: {UNSET} is not set (or empty): the endpoint would start without an API key: "
        "`deploy up` will refuse to start\n"
    )


@pytest.mark.parametrize("name", ["NOT SET", "A$(id)", "9LIVES", "KEY}", "X" * 129, ""])
def test_api_key_variable_names_are_validated(name: str) -> None:
    result = CliRunner().invoke(
        cli, ["plan", "qwen3-8b", "--gpus", "1xH100-80GB", "--api-key-env", name]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --api-key-env ")
    assert result.stderr.endswith(
        "is not a valid environment variable name; use letters, digits and '_' (at most 128, "
        "not starting with a digit), e.g. VLLM_API_KEY\n"
    )
    assert result.stderr.count("\n") == 1


def test_allow_missing_secret_names_are_validated(tmp_path: Path) -> None:
    args = ["render", "qwen3-8b", "--gpus", "1xH100-80GB", "--allow-missing-secret", "BAD NAME"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --allow-missing-secret 'BAD NAME' is not a valid ")


PUBLIC_WARNING = (
    "--public without --api-key-env: the endpoint is published on every interface and "
    "answers anyone who can reach the host; add --api-key-env VAR"
)


def test_public_without_a_key_warns_in_the_plan_and_the_dry_run() -> None:
    runner = CliRunner()
    plan = runner.invoke(cli, ["plan", "qwen3-8b", "--gpus", "1xH100-80GB", "--public"])
    assert plan.exit_code == 0, plan.output
    assert f"  - {PUBLIC_WARNING}\n" in plan.stdout
    dry = runner.invoke(cli, ["up", "qwen3-8b", "--gpus", "1xH100-80GB", "--public", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"warning: {PUBLIC_WARNING}\n" in dry.stdout
    keyed = runner.invoke(
        cli, ["plan", "qwen3-8b", "--gpus", "1xH100-80GB", "--public", "--api-key-env", "K"]
    )
    assert keyed.exit_code == 0 and PUBLIC_WARNING not in keyed.stdout
