"""The engine image's build command and its tiny-model generator."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.engine_image import (
    BUILD_SCRIPT,
    VLLM_CPU_IMAGE,
    TinyModel,
    build_command,
    make_tiny_model,
    tiny_model_command,
)


def _digest(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
    }


def test_build_command_is_the_script_with_its_flags() -> None:
    assert build_command() == ["bash", str(BUILD_SCRIPT)]
    assert build_command(force=True, rebuild_base=True)[-2:] == ["--force", "--rebuild-base"]
    assert BUILD_SCRIPT.is_file()


def test_build_script_refuses_an_unknown_argument_in_one_line() -> None:
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--bogus"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "unknown argument '--bogus'" in result.stderr


def test_tiny_model_shape_errors_are_one_line_exit_2(cli_runner: Any) -> None:
    from orchestrator.cli import cli

    result = cli_runner.invoke(cli, ["engine-image", "tiny-model", "out", "--hidden", "64"])
    assert result.exit_code == 2
    assert "head dimension of 32 or more" in result.output
    assert "Traceback" not in result.output
    result = cli_runner.invoke(cli, ["engine-image", "tiny-model", "out", "--layers", "0"])
    assert result.exit_code == 2
    assert "--layers" in result.output


def test_tiny_model_command_runs_the_generator_as_the_caller(tmp_path: Path) -> None:
    argv = tiny_model_command(tmp_path, TinyModel(layers=3, seed=7))
    assert argv[:3] == ["docker", "run", "--rm"]
    assert VLLM_CPU_IMAGE in argv
    tail = argv[argv.index("deploy-tiny-model") :]
    assert tail[:2] == ["deploy-tiny-model", "/out"]
    assert tail[tail.index("--layers") + 1] == "3"
    assert tail[tail.index("--seed") + 1] == "7"
    assert "--network" in argv and argv[argv.index("--network") + 1] == "none"


@pytest.mark.docker
def test_rebuild_is_a_no_op_when_up_to_date(tiny_model: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(build_command(), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    assert time.monotonic() - started < 60


@pytest.mark.docker
def test_tiny_model_is_deterministic_and_llama_shaped(tiny_model: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    make_tiny_model(again, TinyModel())
    assert _digest(again) == _digest(tiny_model)
    other = tmp_path / "other"
    make_tiny_model(other, TinyModel(seed=1))
    assert _digest(other)["model.safetensors"] != _digest(tiny_model)["model.safetensors"]

    config = json.loads((tiny_model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["hidden_size"] // config["num_attention_heads"] == config["head_dim"] == 64
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (tiny_model / name).stat().st_size > 0
    assert "chat_template" in json.loads((tiny_model / "tokenizer_config.json").read_text())
    # A few MB: it is generated, never downloaded.
    assert (tiny_model / "model.safetensors").stat().st_size < 20 * 2**20
