"""`deploy doctor` through the CLI where no Docker daemon answers: every node reports its
endpoint as one failing line with the fix, and the exit code is 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from orchestrator.cli import cli


def _cluster(tmp_path: Path) -> Path:
    path = tmp_path / "gone.yaml"
    path.write_text(
        "defaults: {gpus: 1xH100-80GB-SXM}\n"
        "nodes:\n"
        f"  - {{name: gone-a, address: 127.0.0.1, docker: 'unix://{tmp_path}/a.sock'}}\n",
        encoding="utf-8",
    )
    return path


def test_unreachable_endpoint_fails_docker_with_the_fix(
    cli_runner: CliRunner, tmp_path: Path
) -> None:
    result = cli_runner.invoke(cli, ["doctor", "qwen3-8b", "--cluster", str(_cluster(tmp_path))])
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"FAIL  gone-a  docker: cannot reach the Docker daemon at unix://{tmp_path}/a.sock ("
    )
    assert lines[1] == (
        "      fix: start dockerd on node gone-a (systemctl start docker) and check the socket"
    )
    assert lines[-1].startswith("doctor: 1 failed (")


def test_json_contract_on_failure(cli_runner: CliRunner, tmp_path: Path) -> None:
    args = ["doctor", "qwen3-8b", "--cluster", str(_cluster(tmp_path)), "--fast", "--json"]
    result = cli_runner.invoke(cli, args)
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert [(c["node"], c["check"], c["status"]) for c in data["checks"]] == [
        ("gone-a", "docker", "fail"),
        ("gone-a", "hub-token", "skip"),
    ]
