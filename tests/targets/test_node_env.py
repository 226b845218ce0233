"""`deploy up` over ssh:// reads a node's mount sources with that node's $HOME and $HF_HOME
(as compose does when run there), not the deploying machine's. A real sshd on 127.0.0.1."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.engines.jit_cache import jit_cache_mounts
from orchestrator.errors import DockerUnavailableError
from orchestrator.runtime import node_env
from orchestrator.runtime.containers import create_kwargs
from orchestrator.spec import Mount, Probe, ServiceSpec
from tests.conftest import IN_CI, free_ports


def _free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def sshd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An sshd on a free loopback port letting this user in with a fresh key; `ssh` on PATH
    is a wrapper with that key. Yields the ssh:// endpoint."""
    daemon = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    ssh, keygen = shutil.which("ssh"), shutil.which("ssh-keygen")
    if daemon is None or ssh is None or keygen is None or os.geteuid() != 0:
        if IN_CI:
            pytest.fail(
                "sshd, ssh, ssh-keygen and root are needed (CI is set, so this is an error)"
            )
        pytest.skip("needs sshd, ssh, ssh-keygen (openssh-server) and root")
    for key in ("host", "id"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / key)], check=True
        )
    (tmp_path / "authorized_keys").write_text((tmp_path / "id.pub").read_text())
    port = _free_port()
    (tmp_path / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp_path}/host\nPidFile {tmp_path}/pid\n"
        f"AuthorizedKeysFile {tmp_path}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
        "UsePAM no\n"
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(
        f"#!/bin/sh\nexec {ssh} -i {tmp_path}/id -o IdentitiesOnly=yes "
        '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$@"\n'
    )
    wrapper.chmod(0o755)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [daemon, "-D", "-e", "-f", str(tmp_path / "sshd_config")], stderr=subprocess.DEVNULL
    )
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    user = pwd.getpwuid(os.geteuid()).pw_name
    endpoint = f"ssh://{user}@127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["ssh", "-o", "BatchMode=yes", "-p", str(port), f"{user}@127.0.0.1", "true"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("sshd did not let the test key in")
        node_env._cache.clear()
        yield endpoint
    finally:
        node_env._cache.clear()
        process.terminate()
        process.wait(timeout=60)


def _spec() -> ServiceSpec:
    mounts = [Mount(source="${HF_HOME:-~/.cache/huggingface}", target="/root/.cache/huggingface")]
    return ServiceSpec(
        name="serve-0",
        node="b",
        role="serve",
        image="x",
        command=["serve"],
        mounts=[*mounts, *jit_cache_mounts("vllm")],
        probe=Probe(kind="process", start_period_s=1),
    )


def test_mount_sources_follow_the_nodes_home_over_ssh(sshd: str, tmp_path: Path) -> None:
    node_home = pwd.getpwuid(os.geteuid()).pw_dir
    local = {"HOME": str(tmp_path / "deploying-host"), "HF_HOME": "/local/hf", "HF_TOKEN": "t"}
    env = node_env.node_environment(sshd, local)
    assert env["HOME"] == node_home and "HF_HOME" not in env
    assert env["HF_TOKEN"] == "t", "secrets stay the deploying host's"
    volumes = create_kwargs(_spec(), deployment="d", plan_hash="p", host_env=env)["volumes"]
    assert sorted(volumes) == sorted(
        [
            f"{node_home}/.cache/huggingface",
            f"{node_home}/.cache/deploy-jit/vllm/vllm",
            f"{node_home}/.cache/deploy-jit/vllm/flashinfer",
            f"{node_home}/.cache/deploy-jit/vllm/triton",
        ]
    )
    # A local endpoint keeps the deploying host's environment.
    assert node_env.node_environment("unix:///var/run/docker.sock", local) == local


def test_an_unreachable_ssh_node_is_one_line(tmp_path: Path) -> None:
    node_env._cache.clear()
    with pytest.raises(DockerUnavailableError, match=r"cannot read \$HOME on ssh://"):
        node_env.node_environment(f"ssh://nobody@127.0.0.1:{_free_port()}", {"HOME": "/x"})
