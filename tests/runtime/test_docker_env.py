"""This machine's Docker, found as the docker CLI finds it: DOCKER_HOST, DOCKER_CONTEXT, the
current context (contexts written by the real `docker context create`), TLS settings; a
cluster file's explicit endpoint still wins."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.docker.endpoints import normalize
from orchestrator.docker.env import local_docker
from orchestrator.errors import DockerUnavailableError

needs_docker_cli = pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "docker-config"
    config.mkdir()
    for name in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def docker_cli(config: Path, *args: str) -> None:
    subprocess.run(
        ["docker", *args],
        env={"DOCKER_CONFIG": str(config), "PATH": "/usr/bin:/bin:/usr/local/bin"},
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_without_settings_the_default_socket(docker_config: Path) -> None:
    assert local_docker().source == "default"
    assert normalize(None) == normalize("local") == "unix:///var/run/docker.sock"


def test_docker_host_wins_and_a_cluster_files_endpoint_is_kept(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/user/1000/docker.sock")
    assert normalize(None) == "unix:///run/user/1000/docker.sock"
    # The plan's default socket stands for "this machine's Docker" too.
    assert normalize("unix:///var/run/docker.sock") == "unix:///run/user/1000/docker.sock"
    assert normalize("ssh://ops@gpu-b") == "ssh://ops@gpu-b"
    assert normalize("tcp://10.0.0.2:2375") == "tcp://10.0.0.2:2375"


def test_tls_for_docker_host_from_docker_cert_path(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("ca", "cert", "key"):
        (certs / f"{name}.pem").write_text("pem\n")
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.2:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    resolved = local_docker()
    assert resolved.tls is not None and resolved.tls.verify
    assert (resolved.tls.ca, resolved.tls.cert, resolved.tls.key) == (
        str(certs / "ca.pem"),
        str(certs / "cert.pem"),
        str(certs / "key.pem"),
    )


@needs_docker_cli
def test_docker_context_and_the_current_context(
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_cli(
        docker_config, "context", "create", "rootless", "--docker", "host=unix:///run/r.sock"
    )
    docker_cli(docker_config, "context", "create", "far", "--docker", "host=ssh://ops@gpu-b")
    docker_cli(docker_config, "context", "use", "far")
    assert normalize(None) == "ssh://ops@gpu-b"
    assert local_docker().source == "context far"
    monkeypatch.setenv("DOCKER_CONTEXT", "rootless")
    assert normalize(None) == "unix:///run/r.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(DockerUnavailableError) as caught:
        normalize(None)
    assert str(caught.value).startswith(f"Docker context 'nope' not found in {docker_config}")


@needs_docker_cli
@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_a_tls_context_carries_its_certificates(docker_config: Path, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    # The docker CLI checks the PEM files: a real self-signed pair, the certificate as CA.
    keys = ["-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")]
    options = ["-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=deploy-test"]
    subprocess.run(
        ["openssl", "req", "-x509", *options, *keys],
        check=True,
        capture_output=True,
        timeout=120,
    )
    shutil.copy(certs / "cert.pem", certs / "ca.pem")
    docker_cli(
        docker_config,
        "context",
        "create",
        "secure",
        "--docker",
        f"host=tcp://10.0.0.2:2376,ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem",
    )
    docker_cli(docker_config, "context", "use", "secure")
    resolved = local_docker()
    assert resolved.url == "tcp://10.0.0.2:2376"
    assert resolved.tls is not None and resolved.tls.verify
    assert resolved.tls.cert is not None
    assert Path(resolved.tls.cert).read_text() == (certs / "cert.pem").read_text()


@pytest.mark.docker
def test_up_follows_docker_host_to_the_daemon_it_names(
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    docker_client: Any,
    second_daemon: str,
    tmp_path: Path,
    deployment: str,
    request: Any,
) -> None:
    """`DOCKER_HOST` (and so the current context) decides where a local plan runs; a socket
    that does not exist is one line, exit 2, and nothing starts anywhere."""
    import docker

    from .test_cli_up import SIM_ENV, services

    request.node.extra_endpoints = [second_daemon]
    runner = CliRunner()
    state = str(tmp_path / "state")
    args = ["up", "qwen3-8b", "--gpus", "1xH100", "--simulate", "--name", deployment]
    args += ["--state-dir", state, "--timeout", "120"]
    missing = runner.invoke(cli, args, env={**SIM_ENV, "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert missing.exit_code == 2
    assert missing.stderr.startswith(
        "error: cannot reach the Docker daemon at unix:///nonexistent.sock ("
    )
    assert missing.stderr.count("\n") == 1
    assert services(docker_client, deployment) == {}

    env = {**SIM_ENV, "DOCKER_HOST": second_daemon}
    result = runner.invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    node = docker.DockerClient(base_url=second_daemon, timeout=30)
    try:
        assert list(services(node, deployment)) == ["serve-0"]
        assert services(docker_client, deployment) == {}
        down = runner.invoke(cli, ["down", "--name", deployment, "--state-dir", state], env=env)
        assert down.exit_code == 0, down.output
        assert services(node, deployment) == {}
    finally:
        node.close()
