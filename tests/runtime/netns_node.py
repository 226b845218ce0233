"""A node that is really elsewhere: a Docker Engine inside its own network namespace.

The test host reaches it only at the address of a veth pair (10.214.N.2), over tcp:// (the
daemon's TCP socket) or ssh:// (an sshd started in the same namespace). A port the engine
publishes on 127.0.0.1 is on the namespace's loopback, which the test host cannot reach: the
situation of a real remote node, where probing `http://<node address>:<port>` from the
deploying host fails. Needs root, `ip`, `dockerd` (and `sshd` for the ssh:// form).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from orchestrator.engines.common import SIM_IMAGE


@dataclass(frozen=True)
class NetnsNode:
    namespace: str
    address: str  # the node's address, reachable from the test host
    tcp: str  # tcp://address:port, the daemon's API
    socket: str  # unix:// path of the same daemon (for sessions inside the namespace)
    ssh: str = ""  # ssh://alias, when an sshd runs in the namespace
    ssh_bin_dir: Path | None = None  # holds an `ssh` that knows the alias; first on PATH


def missing_tools() -> str:
    if os.geteuid() != 0:
        return "a node in a network namespace needs root"
    for tool in ("ip", "nsenter", "dockerd", "docker"):
        if shutil.which(tool) is None:
            return f"a node in a network namespace needs `{tool}`"
    return ""


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, timeout=60, capture_output=True)


def _ns(namespace: str, *argv: str) -> list[str]:
    # nsenter switches the network namespace only; `ip netns exec` would also remount /sys,
    # hiding the cgroup hierarchy dockerd needs.
    return ["nsenter", f"--net=/run/netns/{namespace}", *argv]


def _wait_docker(endpoint: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import docker

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            client = docker.DockerClient(base_url=endpoint, timeout=30)
            client.ping()
            client.close()
            return
        except Exception:
            if process.poll() is not None:
                break
            time.sleep(0.5)
    raise RuntimeError(f"dockerd in the namespace did not answer: {log.read_text()[-400:]}")


@contextlib.contextmanager
def netns_node(image: str, *, with_ssh: bool) -> Iterator[NetnsNode]:
    tag = uuid.uuid4().hex[:6]
    subnet = random.randint(1, 250)
    namespace = f"dplns{tag}"
    host_if, node_if = f"vh{tag}", f"vn{tag}"
    host_ip, node_ip = f"10.214.{subnet}.1", f"10.214.{subnet}.2"
    root = Path(f"/tmp/deploy-ns-{tag}")  # short: unix socket paths are limited
    root.mkdir()
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        _run("ip", "netns", "add", namespace)
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", node_if)
        _run("ip", "link", "set", node_if, "netns", namespace)
        _run("ip", "addr", "add", f"{host_ip}/24", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run(*_ns(namespace, "ip", "addr", "add", f"{node_ip}/24", "dev", node_if))
        _run(*_ns(namespace, "ip", "link", "set", node_if, "up"))
        _run(*_ns(namespace, "ip", "link", "set", "lo", "up"))
        _run(*_ns(namespace, "ip", "link", "add", "dplbr0", "type", "bridge"))
        _run(*_ns(namespace, "ip", "addr", "add", "10.215.255.1/24", "dev", "dplbr0"))
        _run(*_ns(namespace, "ip", "link", "set", "dplbr0", "up"))
        port = 2375
        sock = root / "d.sock"
        log = root / "dockerd.log"
        logs.append(log.open("ab"))
        dockerd = _ns(
            namespace,
            "dockerd",
            "--host", f"tcp://{node_ip}:{port}", "--host", f"unix://{sock}",
            "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"), "--bridge", "dplbr0",
            "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--containerd-namespace", f"ns-{tag}", "--containerd-plugins-namespace", f"nsp-{tag}",
            "--default-address-pool", "base=10.216.0.0/16,size=24",
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        processes.append(
            subprocess.Popen(dockerd, stdout=logs[-1], stderr=subprocess.STDOUT, env=env)
        )
        tcp = f"tcp://{node_ip}:{port}"
        _wait_docker(tcp, processes[-1], log)
        saver = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(
            ["docker", "-H", tcp, "load"], stdin=saver.stdout, capture_output=True, timeout=600
        )
        saver.wait(timeout=60)
        if loaded.returncode != 0:
            raise RuntimeError(f"could not load {image} into the namespace's dockerd")
        if image != SIM_IMAGE:  # what `deploy up --simulate` runs
            _run("docker", "-H", tcp, "tag", image, SIM_IMAGE)
        ssh, bin_dir = "", None
        if with_ssh:
            ssh, bin_dir = _start_sshd(root, namespace, node_ip, f"unix://{sock}", processes, logs)
        yield NetnsNode(namespace, node_ip, tcp, f"unix://{sock}", ssh, bin_dir)
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for handle in logs:
            handle.close()
        subprocess.run(["ip", "link", "delete", host_if], check=False, timeout=30)
        subprocess.run(["ip", "netns", "delete", namespace], check=False, timeout=30)
        subprocess.run(["rm", "-rf", str(root)], check=False, timeout=300)


def _start_sshd(
    root: Path,
    namespace: str,
    address: str,
    docker_socket: str,
    processes: list[subprocess.Popen[bytes]],
    logs: list[object],
) -> tuple[str, Path]:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    ssh, keygen = shutil.which("ssh"), shutil.which("ssh-keygen")
    if not Path(sshd).exists() or ssh is None or keygen is None:
        raise RuntimeError("sshd, ssh and ssh-keygen are needed for the ssh:// node")
    for key in ("host_ed25519", "id_ed25519"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)], check=True)
    (root / "authorized_keys").write_text((root / "id_ed25519.pub").read_text())
    dial = root / "session.sh"
    dial.write_text(
        f'#!/bin/sh\nexport DOCKER_HOST={docker_socket}\nexec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
    )
    dial.chmod(0o755)
    (root / "sshd_config").write_text(
        f"Port 22\nListenAddress {address}\nHostKey {root}/host_ed25519\n"
        f"PidFile {root}/sshd.pid\nAuthorizedKeysFile {root}/authorized_keys\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        f"ForceCommand {dial}\n"
    )
    alias = f"deploy-ns-{namespace[-6:]}"
    user = os.environ.get("USER") or "root"
    config = root / "ssh_config"
    config.write_text(
        f"Host {alias}\n  HostName {address}\n  Port 22\n  User {user}\n"
        f"  IdentityFile {root}/id_ed25519\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"
        "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec {ssh} -F {config} "$@"\n')
    wrapper.chmod(0o755)
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    log = (root / "sshd.log").open("wb")
    logs.append(log)
    processes.append(
        subprocess.Popen(
            _ns(namespace, sshd, "-D", "-e", "-f", str(root / "sshd_config")), stderr=log
        )
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = subprocess.run(
            [str(wrapper), "-o", "BatchMode=yes", alias, "docker", "version"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if probe.returncode == 0:
            return f"ssh://{alias}", bin_dir
        time.sleep(0.5)
    raise RuntimeError(
        f"sshd in the namespace did not let the test key in: {probe.stderr[-300:]!r}"
    )
