"""One Docker client per node endpoint (`unix://`, `tcp://`, `ssh://`).

`ssh://user@host` endpoints use the Docker SDK's `use_ssh_client=True`: the SDK shells out to
the system `ssh` binary, so `~/.ssh/config`, agents, ProxyJump and known_hosts work exactly as
they do for `docker -H ssh://...`, and no extra Python dependency (paramiko) is needed.

The `docker` package is imported here, lazily, and nowhere that `deploy --help` or `deploy plan`
reaches.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from orchestrator.errors import DockerUnavailableError

# docker.DockerClient; typed loosely because the SDK ships no type information.
DockerClient = Any

# The default socket: what a plan names for a node without an explicit endpoint. It stands
# for "this machine's Docker", which `local_endpoint()` resolves as the docker CLI does.
LOCAL_ENDPOINT = "unix:///var/run/docker.sock"
_LOCAL_ALIASES = ("", "local", LOCAL_ENDPOINT, "/var/run/docker.sock")
# Seconds for one API call; long-running streams (events, logs --follow) carry no timeout.
API_TIMEOUT_S = 60


def local_endpoint() -> str:
    """This machine's Docker: `DOCKER_HOST`, `DOCKER_CONTEXT`, the current context, or the
    default socket (see `orchestrator.docker.env`)."""
    from orchestrator.docker.env import local_docker

    resolved = local_docker()
    if resolved.tls is not None:
        _TLS[resolved.url] = resolved.tls
    return normalize_explicit(resolved.url)


def normalize(endpoint: str | None) -> str:
    """`None`, '', 'local' and the default socket mean this machine's Docker (resolved from
    the environment and contexts); a bare path becomes `unix://path`. Any other endpoint, such
    as one a cluster file names, is used as given."""
    if endpoint is None or endpoint in _LOCAL_ALIASES:
        return local_endpoint()
    return normalize_explicit(endpoint)


def normalize_explicit(endpoint: str) -> str:
    if endpoint.startswith("/"):
        return f"unix://{endpoint}"
    return endpoint


# TLS settings of tcp:// endpoints resolved from DOCKER_CERT_PATH or a context.
_TLS: dict[str, Any] = {}


def is_local(endpoint: str) -> bool:
    """A unix socket is on this machine: its published loopback ports are reachable from here."""
    return normalize(endpoint).startswith("unix://")


def _hint(endpoint: str) -> str:
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
        return (
            f"start dockerd (systemctl start docker) and check that {path} exists and that you "
            "may use it (root or the docker group)"
        )
    if endpoint.startswith("ssh://"):
        host = " ".join(_ssh_target(endpoint))
        return (
            f"check that `ssh {host} docker info` works without a password prompt (keys or agent)"
        )
    if endpoint.startswith(("tcp://", "http://", "https://")):
        return "check that dockerd listens there (-H tcp://0.0.0.0:2376) and no firewall blocks it"
    return "use unix:///path/docker.sock, tcp://host:port or ssh://user@host"


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    line = text[-1] if text else type(error).__name__
    return line[:200]


def connect(endpoint: str, *, timeout: int = API_TIMEOUT_S, pinned: bool = False) -> DockerClient:
    """A client that has answered a ping, or `DockerUnavailableError` (exit 2) in one line.
    `pinned`: `endpoint` is a resolved URL (as recorded at `up`), never re-read from today's
    DOCKER_HOST or context, even when it is the default socket."""
    try:
        import docker
    except ImportError as error:  # pragma: no cover - docker is a declared dependency
        raise DockerUnavailableError(
            "the Docker SDK for Python is not installed", "pip install 'docker>=7.0'"
        ) from error

    url = normalize_explicit(endpoint) if pinned else normalize(endpoint)
    if "://" not in url or url.split("://", 1)[0] not in ("unix", "tcp", "ssh", "http", "https"):
        raise DockerUnavailableError(f"unsupported Docker endpoint '{endpoint}'", _hint(url))
    base_url = url
    if url.startswith("ssh://"):
        _ssh_preflight(url)
        base_url = ssh_url_with_port(url)
    tls = _tls_config(_TLS.get(url))
    client = None
    try:
        client = docker.DockerClient(  # type: ignore[attr-defined]
            base_url=base_url,
            timeout=timeout,
            use_ssh_client=url.startswith("ssh://"),
            tls=tls if tls is not None else False,
        )
        client.ping()
    except Exception as error:  # the SDK raises DockerException, requests and OS errors alike
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        reason = _reason(error)
        hint = _hint(url)
        if "paramiko" in reason:
            hint = "pip install paramiko (the Docker SDK needs it for ssh:// endpoints)"
        raise DockerUnavailableError(
            f"cannot reach the Docker daemon at {url} ({reason})", hint
        ) from error
    return client


def _tls_config(settings: Any) -> Any:
    if settings is None:
        return None
    import docker.tls

    cert = (settings.cert, settings.key) if settings.cert and settings.key else None
    return docker.tls.TLSConfig(
        client_cert=cert,
        ca_cert=settings.ca,
        verify=(settings.ca or True) if settings.verify else False,
    )


def ssh_url_with_port(url: str) -> str:
    """`ssh://alias` with the port ssh itself would use for it (`ssh -G`, which reads
    ~/.ssh/config). The Docker SDK turns a missing port into `-p 22`, which would override a
    `Port` line of the alias; given the real port, its `ssh -p PORT alias` keeps the alias's
    HostName, User and IdentityFile."""
    import subprocess

    target = _ssh_target(url)
    if target[0] == "-p":
        return url
    try:
        result = subprocess.run(
            ["ssh", "-G", target[-1]], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return url
    for line in result.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key.lower() == "port" and value.strip().isdigit():
            return f"{url.rstrip('/')}:{value.strip()}"
    return url


def _ssh_target(url: str) -> list[str]:
    """`ssh://user@host:port` as ssh arguments: ['-p', 'port', 'user@host']."""
    rest = url[len("ssh://") :].rstrip("/")
    user_host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
    if port and port.isdigit():
        return ["-p", port, user_host]
    return [rest]


def _ssh_preflight(url: str) -> None:
    """Run `docker version` over ssh in batch mode first: a password prompt or an unreachable
    host fails fast with ssh's own reason, instead of hanging or printing around our error."""
    import shutil
    import subprocess

    if shutil.which("ssh") is None:
        raise DockerUnavailableError(
            f"cannot reach the Docker daemon at {url} (no ssh client on this machine)",
            "install OpenSSH (Debian: apt-get install openssh-client)",
        )
    target = _ssh_target(url)
    command = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *target[:-1]]
    command += ["--", target[-1], "docker", "version", "--format", "{{.Server.Version}}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise DockerUnavailableError(
            f"cannot reach the Docker daemon at {url} (ssh timed out)", _hint(url)
        ) from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1][:200] if lines else f"ssh exited with {result.returncode}"
        raise DockerUnavailableError(
            f"cannot reach the Docker daemon at {url} ({reason})", _hint(url)
        )


class Endpoints:
    """A pool of connected clients, one per endpoint URL, shared by threads."""

    def __init__(self, *, timeout: int = API_TIMEOUT_S) -> None:
        self._timeout = timeout
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, endpoint: str, *, pinned: bool = False) -> DockerClient:
        url = normalize_explicit(endpoint) if pinned else normalize(endpoint)
        with self._lock:
            existing = self._clients.get(url)
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        client = connect(url, timeout=self._timeout, pinned=True)
        with self._lock:
            kept = self._clients.setdefault(url, client)
        if kept is not client:  # another thread connected first: keep one connection pool
            with contextlib.suppress(Exception):
                client.close()
        return kept

    def connect_all(self, endpoints: list[str]) -> None:
        """Ping every endpoint in parallel, so a cluster of slow ssh hops costs one round."""
        from concurrent.futures import ThreadPoolExecutor

        unique = sorted({normalize(endpoint) for endpoint in endpoints})
        if len(unique) <= 1:
            for endpoint in unique:
                self.client(endpoint)
            return
        with ThreadPoolExecutor(max_workers=len(unique)) as pool:
            for future in [pool.submit(self.client, endpoint) for endpoint in unique]:
                future.result()

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            # Closing a broken connection must not mask the real error.
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> Endpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
