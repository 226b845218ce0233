"""Unreachable Docker endpoints fail in one line with exit code 2 (no daemon needed)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from orchestrator.docker.endpoints import Endpoints, connect, is_local, normalize
from orchestrator.errors import DockerUnavailableError


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line_error(url: str) -> str:
    with pytest.raises(DockerUnavailableError) as caught:
        connect(url)
    assert caught.value.exit_code == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_unix_socket_that_does_not_exist(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/docker.sock"
    message = one_line_error(url)
    assert message.startswith(f"cannot reach the Docker daemon at {url} (")
    assert message.endswith("(root or the docker group)")


def test_tcp_port_nobody_listens_on() -> None:
    port = closed_port()
    message = one_line_error(f"tcp://127.0.0.1:{port}")
    assert message.startswith(f"cannot reach the Docker daemon at tcp://127.0.0.1:{port} (")
    assert message.endswith(
        "check that dockerd listens there (-H tcp://0.0.0.0:2376) and no firewall blocks it"
    )


@pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client on this machine")
def test_ssh_host_that_refuses_names_ssh_reason_and_the_command_to_try() -> None:
    port = closed_port()
    message = one_line_error(f"ssh://ops@127.0.0.1:{port}")
    assert message == (
        f"cannot reach the Docker daemon at ssh://ops@127.0.0.1:{port} "
        f"(ssh: connect to host 127.0.0.1 port {port}: Connection refused); "
        f"check that `ssh -p {port} ops@127.0.0.1 docker info` works without a password prompt "
        "(keys or agent)"
    )


def test_unsupported_scheme_and_normalisation() -> None:
    assert one_line_error("ftp://x").startswith("unsupported Docker endpoint 'ftp://x'")
    assert normalize(None) == normalize("local") == "unix:///var/run/docker.sock"
    assert normalize("/run/user/1000/docker.sock") == "unix:///run/user/1000/docker.sock"
    assert is_local("unix:///var/run/docker.sock") and not is_local("ssh://ops@gpu-b")


def test_the_pool_checks_every_endpoint_in_parallel_and_names_a_failing_one(
    tmp_path: Path,
) -> None:
    unix = f"unix://{tmp_path}/missing.sock"
    tcp = f"tcp://127.0.0.1:{closed_port()}"
    with Endpoints() as pool, pytest.raises(DockerUnavailableError) as caught:
        pool.connect_all([unix, tcp, unix])
    assert str(caught.value).startswith(
        (
            f"cannot reach the Docker daemon at {tcp} (",
            f"cannot reach the Docker daemon at {unix} (",
        )
    )
