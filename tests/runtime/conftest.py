"""Fixtures for the runtime tests: a real Docker Engine (and a second one for two-node tests).

Without a reachable daemon the tests skip with a reason, except in CI, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.endpoints import LOCAL_ENDPOINT, Endpoints
from orchestrator.spec import PortBinding, Probe, ServiceSpec
from orchestrator.state import NodeInfo, StateStore
from tests.conftest import free_ports

from .netns_node import NetnsNode, missing_tools, netns_node

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO_ROOT = Path(__file__).resolve().parents[2]
SIM_IMAGE = os.environ.get("DEPLOY_SIM_IMAGE", "deploy-sim:latest")
TEST_SERVER = (Path(__file__).parent / "testserver.py").read_text(encoding="utf-8")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI is set, so this is an error)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    try:
        import docker
    except ImportError:
        _unavailable("the docker SDK is not installed")
    try:
        client = docker.DockerClient(base_url=LOCAL_ENDPOINT, timeout=30)
        client.ping()
    except Exception as error:
        _unavailable(f"no Docker daemon reachable at {LOCAL_ENDPOINT}: {error}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def sim_image(docker_client: Any) -> str:
    """The simulator image, brought up to date with docker/build-sim-image.sh (a no-op when
    the image matches the simulator's sources; the first build takes a few minutes)."""
    import docker.errors

    try:
        docker_client.images.get(SIM_IMAGE)
        present = True
    except docker.errors.ImageNotFound:
        present = False
    script = REPO_ROOT / "docker" / "build-sim-image.sh"
    if not script.exists():
        if present:
            return SIM_IMAGE
        _unavailable(f"{SIM_IMAGE} is missing and {script.name} is not in the checkout")
    result = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=1200, check=False
    )
    if result.returncode != 0 and not present:
        _unavailable(f"could not build {SIM_IMAGE}: {result.stderr.strip()[-300:]}")
    return SIM_IMAGE


_SECOND_DAEMON: dict[str, Any] = {}


def restart_second_daemon() -> None:
    """Stop the second dockerd (as `systemctl restart docker` would: its containers stop)
    and start it again on the same socket and data; returns once it answers."""
    import docker

    old = _SECOND_DAEMON["process"]
    old.terminate()
    old.wait(timeout=120)
    process = subprocess.Popen(
        _SECOND_DAEMON["command"], stdout=_SECOND_DAEMON["log"], stderr=subprocess.STDOUT
    )
    _SECOND_DAEMON["process"] = process
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            client = docker.DockerClient(base_url=_SECOND_DAEMON["endpoint"], timeout=30)
            client.ping()
            client.close()
            return
        except Exception:
            if process.poll() is not None:
                raise RuntimeError("the second dockerd did not come back") from None
            time.sleep(0.5)
    raise RuntimeError("the second dockerd did not answer within 120 s")


@pytest.fixture(scope="session")
def second_daemon(docker_client: Any, sim_image: str, tmp_path_factory: Any) -> Iterator[str]:
    """A second dockerd on its own socket: the second "node" of two-node tests."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("ip") is None or os.geteuid() != 0:
        _unavailable("a second dockerd needs the dockerd and ip binaries and root")
    import docker

    # A short path: unix socket paths are limited to about 100 bytes.
    root = Path(f"/tmp/deploy-d2-{uuid.uuid4().hex[:8]}")
    root.mkdir()
    sock = root / "d.sock"
    endpoint = f"unix://{sock}"
    # Its own bridge: with `--bridge none` dockerd deletes the host's docker0 on start.
    bridge = f"dpl{root.name[-8:]}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, timeout=30)
    subprocess.run(["ip", "addr", "add", "10.213.255.1/24", "dev", bridge], check=True, timeout=30)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True, timeout=30)
    log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - closed at teardown
    command = [
        dockerd,
        "--host",
        endpoint,
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "dockerd.pid"),
        "--bridge",
        bridge,
        "--iptables=false",
        "--ip-masq=false",
        "--containerd-namespace",
        f"d2-{root.name}",
        "--containerd-plugins-namespace",
        f"d2p-{root.name}",
        "--default-address-pool",
        "base=10.213.0.0/16,size=24",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _SECOND_DAEMON.update(command=command, process=process, log=log, endpoint=endpoint)
    client = None
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                client = docker.DockerClient(base_url=endpoint, timeout=30)
                client.ping()
                break
            except Exception:
                client = None
                if process.poll() is not None:
                    break
                time.sleep(0.5)
        if client is None:
            tail = (root / "dockerd.log").read_text(errors="replace")[-400:]
            _unavailable(f"the second dockerd did not start: {tail}")
        saver = subprocess.Popen(["docker", "save", sim_image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "-H", endpoint, "load"],
            stdin=saver.stdout,
            capture_output=True,
            timeout=300,
            check=False,
        )
        saver.wait(timeout=60)
        if loaded.returncode != 0:
            _unavailable(f"could not load {sim_image} into the second dockerd: {loaded.stderr!r}")
        yield endpoint
    finally:
        if client is not None:
            with contextlib.suppress(Exception):  # a restart in a test may have dropped it
                for container in client.containers.list(all=True, ignore_removed=True):
                    container.remove(force=True)
            client.close()
        process = _SECOND_DAEMON.get("process", process)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        subprocess.run(["ip", "link", "delete", bridge], check=False, timeout=30)
        subprocess.run(["rm", "-rf", str(root)], check=False, timeout=120)


@pytest.fixture(scope="session")
def far_node(docker_client: Any, sim_image: str) -> Iterator[NetnsNode]:
    """A node in its own network namespace, reached over tcp:// and ssh:// at a non-loopback
    address; its published loopback ports are out of this machine's reach."""
    reason = missing_tools()
    if reason:
        _unavailable(reason)
    with contextlib.ExitStack() as stack:
        try:
            node = stack.enter_context(netns_node(sim_image, with_ssh=True))
        except (RuntimeError, subprocess.SubprocessError) as error:
            _unavailable(f"could not start a node in a network namespace: {error}")
        yield node


@pytest.fixture
def state_store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state")


@pytest.fixture
def endpoints() -> Iterator[Endpoints]:
    with Endpoints() as pool:
        yield pool


@pytest.fixture
def deployment(docker_client: Any, request: Any) -> Iterator[str]:
    """A unique deployment name; everything labelled with it is removed afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    from orchestrator.spec import LABEL_DEPLOYMENT

    # A detached supervisor `up` left would restart what is removed below: stop it first.
    stop_supervisors_of(name)

    extra = getattr(request.node, "extra_endpoints", [])
    clients = [docker_client]
    import docker

    clients += [docker.DockerClient(base_url=e, timeout=30) for e in extra]
    for client in clients:
        for container in client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"{LABEL_DEPLOYMENT}={name}"}
        ):
            container.remove(force=True)
        for network in client.networks.list(filters={"label": f"{LABEL_DEPLOYMENT}={name}"}):
            network.remove()


def supervisor_pids(name: str) -> list[int]:
    """Pids of detached supervisors of deployment `name` (found by their command line)."""
    from orchestrator.runtime.detached import MODULE

    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if MODULE.encode() in words and name.encode() in words:
            pids.append(int(entry.name))
    return pids


def stop_supervisors_of(name: str) -> None:
    import signal

    for pid in supervisor_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while supervisor_pids(name) and time.monotonic() < deadline:
        time.sleep(0.1)


def free_port() -> int:
    return free_ports(1)[0]


def local_node(name: str = "node0", docker: str = LOCAL_ENDPOINT) -> NodeInfo:
    return NodeInfo(name=name, address="127.0.0.1", docker=docker)


def server_spec(
    name: str,
    image: str,
    *,
    node: str = "node0",
    role: str = "serve",
    load_s: float = 0.0,
    fault: str = "",
    start_period_s: int = 30,
    interval_s: int = 1,
    retries: int = 2,
    group: str | None = None,
    rank: int = 0,
    depends_on: list[str] | None = None,
    http: bool = True,
    extra_env: dict[str, str] | None = None,
) -> ServiceSpec:
    """A spec running tests/runtime/testserver.py, published on a free loopback port."""
    port = free_port()
    env = {"TEST_LOAD_SECONDS": str(load_s), "TEST_FAULT": fault, "TEST_PORT": "8000"}
    env.update(extra_env or {})
    probe = (
        Probe(
            kind="http",
            path="/health",
            port=8000,
            start_period_s=start_period_s,
            interval_s=interval_s,
            retries=retries,
        )
        if http
        else Probe(kind="process", start_period_s=start_period_s)
    )
    return ServiceSpec(
        name=name,
        node=node,
        role=role,  # type: ignore[arg-type]
        rank=rank,
        image=image,
        entrypoint=["python3", "-c", TEST_SERVER],
        command=[],
        environment=env,
        ports=[PortBinding(container=8000, host=port)] if http else [],
        probe=probe,
        ipc_mode="private",
        shm_size="64m",
        group=group,
        depends_on=depends_on or [],
    )


@dataclass(frozen=True)
class SshNode:
    """A real sshd on 127.0.0.1 in front of the second Docker Engine, reached by a Host alias
    whose Port, User and IdentityFile live only in the alias's ssh config."""

    alias: str
    port: int
    config: Path
    bin_dir: Path  # holds an `ssh` that reads `config`; put it first on PATH


@pytest.fixture(scope="session")
def ssh_node(second_daemon: str, tmp_path_factory: Any) -> Iterator[SshNode]:
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    ssh = shutil.which("ssh")
    keygen = shutil.which("ssh-keygen")
    if sshd is None or ssh is None or keygen is None:
        _unavailable("the ssh rehearsal needs sshd, ssh and ssh-keygen (openssh-server)")
    root = Path(tmp_path_factory.mktemp("sshd"))
    for key in ("host_ed25519", "id_ed25519"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)],
            check=True,
            timeout=60,
        )
    (root / "authorized_keys").write_text((root / "id_ed25519.pub").read_text())
    # Every session talks to the second daemon, as a remote node's own docker would.
    dial = root / "session.sh"
    dial.write_text(
        f'#!/bin/sh\nexport DOCKER_HOST={second_daemon}\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
    )
    dial.chmod(0o755)
    port = free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host_ed25519\n"
        f"PidFile {root}/sshd.pid\nAuthorizedKeysFile {root}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"ForceCommand {dial}\n"
    )
    alias = "deploy-node-b"
    user = os.environ.get("USER") or "root"
    config = root / "ssh_config"
    config.write_text(
        f"Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
        f"  IdentityFile {root}/id_ed25519\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {ssh} -F {config} "$@"\n')
    wrapper.chmod(0o755)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege separation dir
    log = open(root / "sshd.log", "wb")  # noqa: SIM115 - closed at teardown
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")], stderr=log)
    try:
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            probe = subprocess.run(
                [str(wrapper), "-o", "BatchMode=yes", alias, "docker", "version"],
                capture_output=True,
                timeout=60,
                check=False,
            )
            if probe.returncode == 0:
                ready = True
                break
            time.sleep(0.5)
        if not ready:
            tail = (root / "sshd.log").read_text(errors="replace")[-400:]
            _unavailable(f"sshd on 127.0.0.1:{port} did not let the test key in: {tail}")
        yield SshNode(alias=alias, port=port, config=config, bin_dir=bin_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
