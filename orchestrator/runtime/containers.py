"""The one place that turns a `ServiceSpec` into Docker SDK `containers.create` kwargs.

Pure data in, plain dicts out (no `docker` import), so the mapping is testable on its own and
`deploy up` runs exactly what the compose renderer describes.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.group_health import peer_check_command
from orchestrator.spec import (
    LABEL_DEPLOYMENT,
    LABEL_NODE,
    LABEL_PLAN_HASH,
    LABEL_PREFIX,
    LABEL_RANK,
    LABEL_REPLICA,
    LABEL_ROLE,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    LOG_OPTIONS,
    ServiceSpec,
    resolved_command,
    resolved_environment,
)

LABEL_GROUP = f"{LABEL_PREFIX}.group"
LABEL_GPUS = f"{LABEL_PREFIX}.gpus"
# Marks networks and volumes that `up` created, so `down` removes those and nothing else.
LABEL_CREATED = f"{LABEL_PREFIX}.created-by-up"

_NS = 1_000_000_000
ENGINE_ROLES = ("serve", "prefill", "decode")
_VARIABLE = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)")


def expand_source(source: str, host_env: Mapping[str, str]) -> str:
    """A mount source as compose would read it: `${VAR:-default}`, `$VAR`, then `~`."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        value = host_env.get(name)
        if value:
            return value
        return match.group(2) or ""

    expanded = _VARIABLE.sub(substitute, source)
    if expanded.startswith("~"):
        home = host_env.get("HOME") or os.path.expanduser("~")
        expanded = home + expanded[1:]
    return expanded


def is_rendered_file(source: str) -> bool:
    """`./nginx.conf`-style sources name files rendered with the deployment. They are copied
    into the container before it starts, which also works on remote Docker endpoints where a
    bind mount of a path on this machine would not."""
    return source.startswith(("./", "../"))


def rendered_files(spec: ServiceSpec, files_dir: Path | None) -> list[tuple[Path, str]]:
    """(local file, path in the container) for each rendered-file mount of `spec`."""
    pairs = []
    for mount in spec.mounts:
        if is_rendered_file(mount.source):
            base = files_dir / spec.node if files_dir is not None else Path(".")
            pairs.append((base / mount.source, mount.target))
    return pairs


def file_archive(path: Path, target: str) -> bytes:
    """Tar bytes for `container.put_archive("/", ...)` placing `path` at `target`, with its
    parent directories (the image may not have them, e.g. /etc/nginx in a non-nginx image)."""
    parts = [part for part in target.strip("/").split("/") if part]
    buffer = io.BytesIO()
    data = path.read_bytes()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for depth in range(1, len(parts)):
            directory = tarfile.TarInfo(name="/".join(parts[:depth]))
            directory.type = tarfile.DIRTYPE
            directory.mode = 0o755
            tar.addfile(directory)
        info = tarfile.TarInfo(name="/".join(parts))
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def container_name(deployment: str, service: str) -> str:
    return f"{deployment}-{service}"


def network_name(deployment: str) -> str:
    return f"deploy-{deployment}"


def labels_for(spec: ServiceSpec, *, deployment: str, plan_hash: str) -> dict[str, str]:
    labels = dict(spec.labels)
    labels.update(
        {
            LABEL_DEPLOYMENT: deployment,
            LABEL_SERVICE: spec.name,
            LABEL_ROLE: spec.role,
            LABEL_NODE: spec.node,
            LABEL_RANK: str(spec.rank),
            LABEL_REPLICA: str(spec.replica),
            LABEL_PLAN_HASH: plan_hash,
            LABEL_SPEC_HASH: spec.spec_hash(),
        }
    )
    if spec.group:
        labels[LABEL_GROUP] = spec.group
    if spec.gpus is not None:
        labels[LABEL_GPUS] = ",".join(str(index) for index in spec.gpus)
    return labels


def environment_for(spec: ServiceSpec, host_env: Mapping[str, str]) -> dict[str, str]:
    """Plain values plus secrets read from the host environment now, at start time.

    Secrets go to the Docker API only; they are never written to the state file or a label.
    `${NAME}` references to a secret (vLLM's `VLLM_API_KEY=${KEY}`) are resolved the same way
    compose interpolates them. A secret the host does not define is left out (a public model
    needs no HF_TOKEN).
    """
    return resolved_environment(spec, host_env)


def missing_secrets(spec: ServiceSpec, host_env: Mapping[str, str]) -> list[str]:
    return [name for name in spec.secret_env if name not in host_env]


def healthcheck_for(spec: ServiceSpec) -> dict[str, Any] | None:
    """Docker's own healthcheck mirrors the HTTP probe, so `docker ps` shows health too.

    It runs `python3` inside the container: both engine images and the simulator have it,
    while curl is not guaranteed. Engines only.
    """
    probe = spec.probe
    if probe.kind == "peer" and probe.host and probe.port:
        return {
            "test": ["CMD-SHELL", peer_check_command(probe.host, probe.port)],
            "interval": probe.interval_s * _NS,
            "timeout": probe.timeout_s * _NS,
            "retries": probe.retries,
            "start_period": probe.start_period_s * _NS,
        }
    if probe.kind != "http" or probe.port is None or spec.role not in ENGINE_ROLES:
        # Router and nginx images may lack python3; the supervisor probes them from the host.
        return None
    url = f"http://127.0.0.1:{probe.port}{probe.path or '/health'}"
    script = f"import urllib.request; urllib.request.urlopen({url!r}, timeout={probe.timeout_s})"
    return {
        "test": ["CMD", "python3", "-c", script],
        "interval": probe.interval_s * _NS,
        "timeout": probe.timeout_s * _NS,
        "retries": probe.retries,
        "start_period": probe.start_period_s * _NS,
    }


def create_kwargs(
    spec: ServiceSpec,
    *,
    deployment: str,
    plan_hash: str,
    host_env: Mapping[str, str],
    with_gpus: bool = True,
    network: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `client.containers.create(**kwargs)`.

    `with_gpus=False` drops the GPU device request (simulated deployments on hosts without
    the NVIDIA runtime); the intended GPU ids stay visible in a label. `network` is the
    deployment's bridge network, joined under the service name as a DNS alias.
    Docker's restart policy is the spec's (`orchestrator.group_health.restart_policy`), the
    same the compose file states: single containers restart by Docker, multi-node groups by
    the supervisor, whole.
    """
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": container_name(deployment, spec.name),
        "command": resolved_command(spec, host_env),
        "environment": environment_for(spec, host_env),
        "labels": labels_for(spec, deployment=deployment, plan_hash=plan_hash),
        "detach": True,
        "ipc_mode": spec.ipc_mode,
        "privileged": spec.privileged,
        "restart_policy": {"Name": spec.restart},
        "log_config": {"Type": "json-file", "Config": dict(LOG_OPTIONS)},
    }
    if spec.entrypoint is not None:
        kwargs["entrypoint"] = list(spec.entrypoint)
    if spec.ipc_mode != "host":
        # With the host IPC namespace Docker ignores --shm-size; send it only where it applies.
        kwargs["shm_size"] = spec.shm_size
    if spec.network_mode == "host":
        kwargs["network_mode"] = "host"
    else:
        kwargs["hostname"] = spec.name
        if network is not None:
            kwargs["network"] = network
        if spec.ports:
            kwargs["ports"] = {
                f"{port.container}/tcp": (port.host_ip, port.host) for port in spec.ports
            }
    if spec.gpus is not None and with_gpus:
        kwargs["device_requests"] = [
            {
                "driver": "nvidia",
                "device_ids": [str(index) for index in spec.gpus],
                "capabilities": [["gpu"]],
            }
        ]
    volumes = {
        expand_source(mount.source, host_env): {
            "bind": mount.target,
            "mode": "ro" if mount.read_only else "rw",
        }
        for mount in spec.mounts
        if not is_rendered_file(mount.source)
    }
    if volumes:
        kwargs["volumes"] = volumes
    if spec.devices:
        kwargs["devices"] = list(spec.devices)
    if spec.ulimits:
        kwargs["ulimits"] = [
            {"name": name, "soft": value, "hard": value} for name, value in spec.ulimits.items()
        ]
    if spec.cap_add:
        kwargs["cap_add"] = list(spec.cap_add)
    healthcheck = healthcheck_for(spec)
    if healthcheck is not None:
        kwargs["healthcheck"] = healthcheck
    return kwargs


def named_volumes(spec: ServiceSpec) -> list[str]:
    """Mount sources that are Docker named volumes rather than host paths."""
    return [
        mount.source
        for mount in spec.mounts
        if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", mount.source)
    ]
