"""A two-node rehearsal over ssh://: node-b is the second Docker Engine behind a real sshd on
127.0.0.1, named by a Host alias whose port, user and key exist only in ssh's config (the
Docker SDK alone would connect to port 22). up, status, logs and down all go through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.docker.endpoints import ssh_url_with_port

from .conftest import SshNode
from .test_cli_up import SIM_ENV, services

pytestmark = pytest.mark.docker


def test_two_node_rehearsal_over_ssh(
    docker_client: Any,
    second_daemon: str,
    ssh_node: SshNode,
    sim_image: str,
    tmp_path: Path,
    deployment: str,
    monkeypatch: pytest.MonkeyPatch,
    request: Any,
) -> None:
    import os

    import docker

    request.node.extra_endpoints = [second_daemon]
    monkeypatch.setenv("PATH", f"{ssh_node.bin_dir}{os.pathsep}{os.environ['PATH']}")
    endpoint = f"ssh://{ssh_node.alias}"
    # The port comes from the alias's config, not the SDK's default of 22.
    assert ssh_url_with_port(endpoint) == f"{endpoint}:{ssh_node.port}"
    cluster = tmp_path / "two.yaml"
    cluster.write_text(
        "name: two-ssh\nfabric: ethernet\ndefaults:\n  gpus: 1xH100-80GB-SXM\n  interconnect: pcie\n"
        "nodes:\n"
        "  - name: node-a\n    address: 127.0.0.1\n    docker: unix:///var/run/docker.sock\n"
        f"  - name: node-b\n    address: 127.0.0.1\n    docker: {endpoint}\n"
    )
    state = str(tmp_path / "state")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args), env=SIM_ENV, catch_exceptions=False)

    up = run(
        "up", "qwen3-32b", "--cluster", str(cluster), "--nodes", "2", "--simulate",
        "--name", deployment, "--state-dir", state, "--timeout", "180",
    )  # fmt: skip
    assert up.exit_code == 0, up.output
    node_b = docker.DockerClient(base_url=second_daemon, timeout=30)
    try:
        assert sorted(services(docker_client, deployment)) == ["serve-0-rank0"]
        assert sorted(services(node_b, deployment)) == ["serve-0-rank1"]

        status = run("status", "--name", deployment, "--state-dir", state)
        assert status.exit_code == 0, status.output
        row = next(line for line in status.stdout.splitlines() if "serve-0-rank1" in line)
        assert row.split()[:4] == ["serve-0-rank1", "node-b", "serve", "running"]
        assert f"(could not reach {endpoint})" not in status.stdout

        logs = run("logs", "serve-0-rank1", "--name", deployment, "--state-dir", state)
        assert logs.exit_code == 0, logs.output
        assert "no API server on this node" in logs.stdout

        down = run("down", "--name", deployment, "--state-dir", state)
        assert down.exit_code == 0, down.output
        assert down.stdout.startswith(f"removed {deployment}: 2 containers")
        assert services(node_b, deployment) == {} and services(docker_client, deployment) == {}
    finally:
        node_b.close()
