"""A local model directory, given relative to where `deploy` runs, is planned by absolute path:
rendered compose files live elsewhere and bind-mount it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

FIXTURE = Path(__file__).resolve().parents[2] / "benchmarks/fixtures/models/Qwen3-0.6B"


def test_relative_model_directory_becomes_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(FIXTURE, tmp_path / "models" / "Qwen3-0.6B")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["plan", "./models/Qwen3-0.6B", "--gpus", "1xL4", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    expected = str((tmp_path / "models" / "Qwen3-0.6B").resolve())
    assert model["local_path"] == expected
    assert model["id"] == expected
