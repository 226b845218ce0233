"""`deploy up --simulate` end to end: plan → services → containers, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.runtime.probes import http_check
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_SERVICE

from .conftest import REPO_ROOT

pytestmark = pytest.mark.docker

# Short simulated loads keep the suite fast; the supervisor passes DEPLOY_SIM_* through.
SIM_ENV = {"DEPLOY_SIM_LOAD_SECONDS": "0.3", "DEPLOY_SIM_WARMUP_SECONDS": "0.2"}


def services(client: Any, name: str) -> dict[str, Any]:
    found = client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_DEPLOYMENT}={name}"}
    )
    return {c.labels[LABEL_SERVICE]: c for c in found}


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def cleanup(cli_runner: CliRunner, state_dir: Path) -> Iterator[list[str]]:
    """Names to `deploy down` at the end, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        cli_runner.invoke(cli, ["down", "--name", name, "--state-dir", str(state_dir)])


def invoke(runner: CliRunner, args: list[str], **env: str) -> Any:
    return runner.invoke(cli, args, env={**SIM_ENV, **env}, catch_exceptions=False)


def test_dry_run_touches_nothing_and_never_imports_docker(state_dir: Path) -> None:
    pytest.importorskip("orchestrator.cli.dryrun")
    code = (
        "import sys\n"
        "from orchestrator.cli import cli\n"
        "try:\n"
        f"    cli.main(['up', 'qwen3-8b', '--gpus', '2xH100', '--dry-run', '--state-dir', {str(state_dir)!r}],"
        " prog_name='deploy')\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "heavy = sorted(m for m in ('docker', 'rich', 'pynvml', 'aiohttp') if m in sys.modules)\n"
        "print('HEAVY', heavy, 'EXIT', code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == "HEAVY [] EXIT 0", result.stderr[-500:]
    assert "serve-0" in result.stdout
    assert not state_dir.exists()


def test_single_node_up_is_idempotent_then_status_and_down(
    docker_client: Any,
    sim_image: str,
    cli_runner: CliRunner,
    state_dir: Path,
    cleanup: list[str],
    deployment: str,
    endpoint_port: int,
) -> None:
    cleanup.append(deployment)
    url = f"http://127.0.0.1:{endpoint_port}"
    args = [
        "up",
        "qwen3-8b",
        "--gpus",
        "2xH100",
        # Two single-GPU replicas behind the load balancer.
        "--tp",
        "1",
        "--port",
        str(endpoint_port),
        "--simulate",
        "--name",
        deployment,
        "--state-dir",
        str(state_dir),
        "--timeout",
        "120",
    ]
    first = invoke(cli_runner, args)
    assert first.exit_code == 0, first.output
    assert first.stdout == f"{deployment} is ready: {url}\n"
    assert sorted(services(docker_client, deployment)) == ["lb", "serve-0", "serve-1"]
    assert http_check(f"{url}/v1/models", 2) == (True, "HTTP 200")
    ids = {name: c.id for name, c in services(docker_client, deployment).items()}
    # The rendered files live beside the state, and nginx.conf reached the lb container.
    assert (state_dir / deployment / "local" / "nginx.conf").is_file()

    again = invoke(cli_runner, [*args, "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert data["url"] == url
    assert data["kept"] == ["lb", "serve-0", "serve-1"] and data["started"] == []
    assert {name: c.id for name, c in services(docker_client, deployment).items()} == ids

    status = invoke(
        cli_runner, ["status", "--name", deployment, "--state-dir", str(state_dir), "--json"]
    )
    rows = json.loads(status.stdout)[0]["services"]
    assert [(r["service"], r["state"], r["health"]) for r in rows] == [
        ("lb", "running", "ready"),
        ("serve-0", "running", "ready"),
        ("serve-1", "running", "ready"),
    ]

    down = invoke(cli_runner, ["down", "--name", deployment, "--state-dir", str(state_dir)])
    assert down.stdout == f"removed {deployment}: 3 containers, 1 networks, 0 volumes\n"
    assert services(docker_client, deployment) == {}
    assert not (state_dir / f"{deployment}.json").exists()


def test_pd_deployment_with_its_router(
    docker_client: Any,
    sim_image: str,
    cli_runner: CliRunner,
    state_dir: Path,
    cleanup: list[str],
    deployment: str,
    endpoint_port: int,
) -> None:
    cleanup.append(deployment)
    result = invoke(
        cli_runner,
        [
            "up",
            "qwen3-8b",
            "--gpus",
            "2xH100",
            "--disagg",
            "--port",
            str(endpoint_port),
            "--simulate",
            "--name",
            deployment,
            "--state-dir",
            str(state_dir),
            "--timeout",
            "120",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(services(docker_client, deployment)) == ["decode-0", "prefill-0", "router"]
    # `up` sent one request through the router: prefilled once, KV moved, no second prefill.
    check = next(line for line in result.stderr.splitlines() if "PD check" in line)
    assert check.startswith("PD check: ") and " recomputed there" in check, check
    assert check.endswith("transferred to decode, 1 recomputed there"), check
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{endpoint_port}/v1/completions",
        data=json.dumps({"model": "qwen3-8b", "prompt": "hi", "max_tokens": 2}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert body["usage"]["completion_tokens"] == 2


def test_two_nodes_on_two_docker_engines(
    docker_client: Any,
    second_daemon: str,
    sim_image: str,
    cli_runner: CliRunner,
    state_dir: Path,
    tmp_path: Path,
    cleanup: list[str],
    deployment: str,
) -> None:
    cleanup.append(deployment)
    cluster = tmp_path / "two.yaml"
    cluster.write_text(
        "name: two-local\nfabric: ethernet\ndefaults:\n  gpus: 1xH100-80GB-SXM\n  interconnect: pcie\n"
        "nodes:\n"
        "  - name: node-a\n    address: 127.0.0.1\n    docker: unix:///var/run/docker.sock\n"
        f"  - name: node-b\n    address: 127.0.0.1\n    docker: {second_daemon}\n"
    )
    result = invoke(
        cli_runner,
        [
            "up",
            "qwen3-32b",
            "--cluster",
            str(cluster),
            "--nodes",
            "2",
            "--simulate",
            "--name",
            deployment,
            "--state-dir",
            str(state_dir),
            "--timeout",
            "120",
        ],
    )
    assert result.exit_code == 0, result.output
    import docker

    node_b = docker.DockerClient(base_url=second_daemon, timeout=30)
    try:
        assert sorted(services(docker_client, deployment)) == ["serve-0-rank0"]
        assert sorted(services(node_b, deployment)) == ["serve-0-rank1"]
        status = invoke(cli_runner, ["status", "--name", deployment, "--state-dir", str(state_dir)])
        assert "serve-0-rank1  node-b" in status.stdout
        down = invoke(cli_runner, ["down", "--name", deployment, "--state-dir", str(state_dir)])
        assert down.stdout == f"removed {deployment}: 2 containers, 2 networks, 0 volumes\n"
        assert services(docker_client, deployment) == {} and services(node_b, deployment) == {}
    finally:
        node_b.close()


def test_crash_loop_through_the_cli_shows_the_logs_and_leaves_nothing(
    docker_client: Any,
    sim_image: str,
    cli_runner: CliRunner,
    state_dir: Path,
    cleanup: list[str],
    deployment: str,
) -> None:
    cleanup.append(deployment)
    result = invoke(
        cli_runner,
        [
            "up",
            "qwen3-8b",
            "--gpus",
            "1xH100",
            "--simulate",
            "--name",
            deployment,
            "--state-dir",
            str(state_dir),
            "--timeout",
            "120",
            "--max-restarts",
            "1",
        ],
        DEPLOY_SIM_FAULT="exit-on-start",
    )
    assert result.exit_code == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1
    assert error_lines[0].startswith("error: serve-0 failed 2 times, giving up: serve-0 exited")
    assert "last log line:" in error_lines[0]
    assert "log lines of serve-0:" in result.stderr
    assert services(docker_client, deployment) == {}
    assert not (state_dir / f"{deployment}.json").exists()


def test_an_unreachable_node_daemon_fails_up_in_one_line_with_exit_2(
    docker_client: Any,
    sim_image: str,
    cli_runner: CliRunner,
    state_dir: Path,
    tmp_path: Path,
    deployment: str,
) -> None:
    cluster = tmp_path / "two.yaml"
    cluster.write_text(
        "name: two-local\nfabric: ethernet\ndefaults:\n  gpus: 1xH100-80GB-SXM\n  interconnect: pcie\n"
        "nodes:\n"
        "  - name: node-a\n    address: 127.0.0.1\n    docker: unix:///var/run/docker.sock\n"
        f"  - name: node-b\n    address: 127.0.0.1\n    docker: unix://{tmp_path}/gone.sock\n"
    )
    result = invoke(
        cli_runner,
        [
            "up",
            "qwen3-32b",
            "--cluster",
            str(cluster),
            "--nodes",
            "2",
            "--simulate",
            "--name",
            deployment,
            "--state-dir",
            str(state_dir),
        ],
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"error: cannot reach the Docker daemon at unix://{tmp_path}/gone.sock ("
    )
    assert services(docker_client, deployment) == {}


def test_ctrl_c_during_up_removes_what_it_started(
    docker_client: Any, sim_image: str, state_dir: Path, deployment: str
) -> None:
    import os
    import signal
    import time

    env = {**os.environ, "DEPLOY_SIM_LOAD_SECONDS": "60"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "up",
            "qwen3-8b",
            "--gpus",
            "1xH100",
            "--simulate",
            "--name",
            deployment,
            "--state-dir",
            str(state_dir),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not services(docker_client, deployment):
            time.sleep(0.2)
        assert list(services(docker_client, deployment)) == ["serve-0"]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130
    assert stderr.splitlines()[-1] == (
        "error: interrupted by SIGINT: `deploy up` removed what it started (containers, "
        "network, state)"
    )
    assert services(docker_client, deployment) == {}
    assert not (state_dir / f"{deployment}.json").exists()
