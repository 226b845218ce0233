"""A failed start through the CLI: the log tail, the one-line cause with the planner's
re-plan, `up --replan` starting again with it, and the log kept for `deploy logs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.conftest import ENDPOINT_OFFSETS, free_port

from .test_cli_up import invoke, services

pytestmark = pytest.mark.docker

PORT = free_port(ENDPOINT_OFFSETS)


def up_args(name: str, state_dir: Path, *extra: str) -> list[str]:
    return [
        "up", "qwen3-8b", "--gpus", "1xH100", "--port", str(PORT), "--simulate", "--name", name,
        "--state-dir", str(state_dir), "--timeout", "120", "--max-restarts", "1", *extra,
    ]  # fmt: skip


def test_a_kv_cache_shortfall_is_named_replanned_and_kept_for_logs(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, tmp_path: Path, deployment: str
) -> None:
    state_dir = tmp_path / "state"
    fault = {"DEPLOY_SIM_FAULT": "fail=kv-cache", "DEPLOY_SIM_KV_TOKENS": "20000"}
    result = invoke(cli_runner, up_args(deployment, state_dir), **fault)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert any("the estimated maximum model length is 20000" in line for line in lines)
    assert (
        "cause: the KV cache cannot hold one request of the planned context length; fix: lower "
        "--context or raise the memory fraction (--gpu-memory-utilization); re-plan: --context "
        "19456 (was 32768) (`deploy up ... --replan` applies it)"
    ) in lines
    assert lines[-1] == (
        "error: serve-0 did not start: the KV cache cannot hold one request of the planned "
        "context length; rerun with --context 19456 (was 32768), or add --replan"
    )
    assert services(docker_client, deployment) == {}

    logs = invoke(cli_runner, ["logs", "--name", deployment, "--state-dir", str(state_dir)])
    assert logs.exit_code == 0, logs.output
    first = logs.stdout.splitlines()[0]
    assert first.startswith("serve-0 failed to start; its last ")
    assert first.endswith(" log lines, kept by `deploy up`:")
    assert "larger than the available KV cache memory" in logs.stdout

    replanned = invoke(cli_runner, up_args(deployment, state_dir, "--replan"), **fault)
    try:
        assert replanned.exit_code == 0, replanned.output
        assert "re-planning with --context 19456 (was 32768) and starting again" in (
            replanned.stderr
        )
        assert replanned.stdout == f"{deployment} is ready: http://127.0.0.1:{PORT}\n"
        command = services(docker_client, deployment)["serve-0"].attrs["Args"]
        assert command[command.index("--max-model-len") + 1] == "19456"
    finally:
        down = invoke(cli_runner, ["down", "--name", deployment, "--state-dir", str(state_dir)])
        assert down.exit_code == 0, down.output


def test_a_never_ready_timeout_prints_the_log_tail_and_keeps_it(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, tmp_path: Path, deployment: str
) -> None:
    state_dir = tmp_path / "state"
    args = up_args(deployment, state_dir)
    args[args.index("--timeout") + 1] = "20"
    result = invoke(cli_runner, args, DEPLOY_SIM_FAULT="never-ready")
    assert result.exit_code == 1
    assert "log lines of serve-0:" in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"error: deployment {deployment} not ready in time; waiting for serve-0")
    assert last.endswith(f"`deploy logs --name {deployment}` shows the kept log")
    assert services(docker_client, deployment) == {}
    logs = invoke(
        cli_runner, ["logs", "serve-0", "--name", deployment, "--state-dir", str(state_dir)]
    )
    assert logs.exit_code == 0, logs.output
    assert logs.stdout.startswith("serve-0 failed to start; its last ")
