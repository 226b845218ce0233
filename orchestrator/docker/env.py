"""The Docker endpoint this machine's `docker` CLI would use, resolved the same way:
`DOCKER_HOST`, else the context named by `DOCKER_CONTEXT`, else the current context in
`$DOCKER_CONFIG/config.json` (default `~/.docker`), else the default socket. Rootless Docker,
Docker Desktop, Colima and Podman's Docker-compatible socket are all reached through one of
these. A context stores its endpoint in `contexts/meta/<sha256(name)>/meta.json` and its TLS
files in `contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem`; `DOCKER_TLS_VERIFY` and
`DOCKER_CERT_PATH` give TLS for `DOCKER_HOST`, as for the CLI.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import DockerUnavailableError

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class Tls:
    """Client TLS for a `tcp://` endpoint (file paths), and whether to verify the server."""

    ca: str | None
    cert: str | None
    key: str | None
    verify: bool


@dataclass(frozen=True)
class LocalDocker:
    url: str
    source: str  # "DOCKER_HOST", "context NAME", "default"
    tls: Tls | None = None


def config_dir(env: Mapping[str, str]) -> Path:
    configured = env.get("DOCKER_CONFIG")
    return Path(configured) if configured else Path(env.get("HOME") or Path.home()) / ".docker"


def _tls_from_dir(directory: Path, verify: bool) -> Tls | None:
    files = {name: directory / f"{name}.pem" for name in ("ca", "cert", "key")}
    if not any(path.is_file() for path in files.values()):
        return None
    return Tls(
        ca=str(files["ca"]) if files["ca"].is_file() else None,
        cert=str(files["cert"]) if files["cert"].is_file() else None,
        key=str(files["key"]) if files["key"].is_file() else None,
        verify=verify,
    )


def _current_context(env: Mapping[str, str]) -> str | None:
    if env.get("DOCKER_CONTEXT"):
        return env["DOCKER_CONTEXT"]
    try:
        data = json.loads((config_dir(env) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    current = data.get("currentContext") if isinstance(data, dict) else None
    return current if isinstance(current, str) and current else None


def context_endpoint(name: str, env: Mapping[str, str]) -> LocalDocker:
    """The Docker endpoint of context `name`, or one line saying it does not exist."""
    digest = hashlib.sha256(name.encode()).hexdigest()
    root = config_dir(env) / "contexts"
    meta_file = root / "meta" / digest / "meta.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        docker = meta["Endpoints"]["docker"]
        host = str(docker["Host"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DockerUnavailableError(
            f"Docker context '{name}' not found in {root}",
            "list them with `docker context ls`; unset DOCKER_CONTEXT or "
            "`docker context use default`",
        ) from None
    tls = None
    if host.startswith("tcp://"):
        verify = not bool(docker.get("SkipTLSVerify", False))
        tls = _tls_from_dir(root / "tls" / digest / "docker", verify)
    return LocalDocker(url=host, source=f"context {name}", tls=tls)


def local_docker(env: Mapping[str, str] | None = None) -> LocalDocker:
    environ = os.environ if env is None else env
    host = environ.get("DOCKER_HOST")
    if host:
        tls = None
        verify = environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        if host.startswith("tcp://") and (verify or environ.get("DOCKER_CERT_PATH")):
            cert_path = Path(environ.get("DOCKER_CERT_PATH") or config_dir(environ))
            tls = _tls_from_dir(cert_path, verify) or Tls(None, None, None, verify)
        return LocalDocker(url=host, source="DOCKER_HOST", tls=tls)
    context = _current_context(environ)
    if context and context != "default":
        return context_endpoint(context, environ)
    return LocalDocker(url=DEFAULT_SOCKET, source="default")
