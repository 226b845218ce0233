"""`deploy doctor`, `deploy up`'s pre-flight and `deploy status --doctor` through the CLI, on
the real Docker Engine with the simulator image."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.doctor.containers import LABEL_DOCTOR
from orchestrator.spec import LABEL_DEPLOYMENT

pytestmark = pytest.mark.docker

SIM_ENV = {"DEPLOY_SIM_LOAD_SECONDS": "0.3", "DEPLOY_SIM_WARMUP_SECONDS": "0.2"}


@pytest.fixture
def tiny_hf_home(tmp_path: Path) -> Iterator[Path]:
    """An HF cache on a 1 MiB tmpfs: no checkpoint fits there."""
    path = tmp_path / "hf"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def _containers(client: Any, label: str) -> list[Any]:
    return list(client.containers.list(all=True, ignore_removed=True, filters={"label": label}))


def test_doctor_json_contract(docker_client: Any, sim_image: str, cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(
        cli, ["doctor", "qwen3-8b", "--gpus", "1xH100", "--simulate", "--fast", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"checks", "ok"} and data["ok"] is True
    assert all(set(c) == {"node", "check", "status", "detail", "fix"} for c in data["checks"])
    assert {c["status"] for c in data["checks"]} <= {"pass", "warn", "skip"}
    assert [c["check"] for c in data["checks"]][:3] == ["docker", "gpu-runtime", "image"]
    assert _containers(docker_client, LABEL_DOCTOR) == []


def test_up_refuses_a_failing_node_and_skip_doctor_says_what_it_skips(
    docker_client: Any,
    sim_image: str,
    cli_runner: CliRunner,
    tiny_hf_home: Path,
    tmp_path: Path,
    deployment: str,
) -> None:
    state = tmp_path / "state"
    # A rehearsal skips the checkpoint disk check; a port another program holds fails it.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    args = ["up", "qwen3-8b", "--gpus", "1xH100", "--simulate", "--name", deployment]
    args += ["--state-dir", str(state), "--timeout", "120", "--port", str(port)]
    env = {**SIM_ENV, "HF_HOME": str(tiny_hf_home)}
    try:
        refused = cli_runner.invoke(cli, args, env=env)
    finally:
        holder.close()
    assert refused.exit_code == 2, refused.output
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert refused.stderr.startswith(
        "error: pre-flight failed on node local: ports: a port the services publish is taken "
        f"on node local ({port}); stop what holds it"
    ), refused.stderr
    assert "--skip-doctor starts anyway" in refused.stderr
    assert _containers(docker_client, f"{LABEL_DEPLOYMENT}={deployment}") == []
    assert _containers(docker_client, LABEL_DOCTOR) == []

    started = cli_runner.invoke(cli, [*args, "--skip-doctor"], env=env)
    try:
        assert started.exit_code == 0, started.output
        assert "--skip-doctor: not checking docker, gpu-runtime, image, gpus," in started.stderr
        rerun = cli_runner.invoke(
            cli, ["status", "--name", deployment, "--state-dir", str(state), "--doctor"], env=env
        )
        assert "SKIP  local  ports: held by the running deployment" in rerun.stdout, rerun.output
        assert "SKIP  local  disk:" in rerun.stdout, rerun.output
        assert rerun.exit_code == 0, rerun.output
    finally:
        cli_runner.invoke(cli, ["down", "--name", deployment, "--state-dir", str(state)])


def test_detect_cluster_reports_each_node_through_its_endpoint(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, tmp_path: Path
) -> None:
    """No GPU here: the detection container cannot get GPUs (or, with them, the simulator
    image has no pynvml), and the node says so in one line; nothing is left running."""
    cluster = tmp_path / "one.yaml"
    cluster.write_text(
        "defaults: {gpus: 1xH100-80GB-SXM}\n"
        "nodes:\n  - {name: node0, address: 127.0.0.1, docker: 'unix:///var/run/docker.sock'}\n",
        encoding="utf-8",
    )
    result = cli_runner.invoke(
        cli, ["detect", "--cluster", str(cluster), "--image", sim_image, "--json"]
    )
    assert result.exit_code == 2
    node = json.loads(result.stdout)["nodes"]["node0"]
    assert set(node) == {"error"}
    assert node["error"].startswith("detection on node node0 failed")
    assert "\n" not in node["error"]
    assert _containers(docker_client, LABEL_DOCTOR) == []
