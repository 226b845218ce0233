"""`ServiceSpec`: one container of a deployment, as the engine renderers describe it.

One spec feeds both the compose file (`render.py`) and the Docker SDK call (`runtime/`), so
what `deploy up` runs is what the compose file says.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from orchestrator.base import Strict

FlagOrigin = Literal["resolver", "model", "engine-default", "user", "deploy", "recipe"]

LABEL_PREFIX = "ai.deploy"
LABEL_DEPLOYMENT = f"{LABEL_PREFIX}.deployment"
LABEL_ROLE = f"{LABEL_PREFIX}.role"
LABEL_NODE = f"{LABEL_PREFIX}.node"
LABEL_RANK = f"{LABEL_PREFIX}.rank"
LABEL_REPLICA = f"{LABEL_PREFIX}.replica"
LABEL_PLAN_HASH = f"{LABEL_PREFIX}.plan-hash"
LABEL_SPEC_HASH = f"{LABEL_PREFIX}.spec-hash"
LABEL_SERVICE = f"{LABEL_PREFIX}.service"


# Log rotation for every container (compose, launch.sh and `deploy up` alike): engines log each
# scheduler step, and Docker's json-file driver keeps everything unless told to rotate.
LOG_OPTIONS = {"max-file": "5", "max-size": "100m"}


class FlagSource(Strict):
    """Where one launch flag came from, for `--dry-run` and the rendered README."""

    flag: str
    value: str | None = None
    origin: FlagOrigin
    why: str = ""


class Probe(Strict):
    """How to tell the service is ready. `http`: GET path on port answers 200.
    `process`: the container is running. `peer`: a TCP connection to `host:port` (rank 0's
    rendezvous endpoint) succeeds; headless ranks > 0 use it to notice a lost group."""

    kind: Literal["http", "process", "peer"]
    path: str | None = None
    port: int | None = None
    # `http`: the address the server listens on, as seen inside its container (its bind
    # address); `peer`: rank 0's rendezvous address.
    host: str = "127.0.0.1"
    # Weight loading can take many minutes: no restart for failing probes inside this window.
    start_period_s: int = Field(ge=0)
    interval_s: int = Field(default=10, ge=1)
    timeout_s: int = Field(default=5, ge=1)
    retries: int = Field(default=3, ge=1)


class PortBinding(Strict):
    container: int
    host: int
    host_ip: str = "127.0.0.1"


class Mount(Strict):
    source: str = Field(description="host path or named volume")
    target: str
    read_only: bool = False


class ServiceSpec(Strict):
    name: str = Field(description="unique within the deployment, e.g. serve-0-rank0")
    node: str
    role: Literal["serve", "prefill", "decode", "router", "lb"]
    replica: int = 0
    rank: int = Field(default=0, description="node rank inside a multi-node engine instance")
    image: str
    entrypoint: list[str] | None = None
    command: list[str] = Field(description="argv after the entrypoint")
    # Plain values. Secrets never appear here: they are listed in `secret_env`.
    environment: dict[str, str] = {}
    secret_env: list[str] = Field(default=[], description="names passed through from the host")
    ports: list[PortBinding] = []
    gpus: list[int] | None = Field(default=None, description="device indices; None = no GPU")
    mounts: list[Mount] = []
    devices: list[str] = []
    network_mode: Literal["host", "bridge"] = "bridge"
    ipc_mode: Literal["host", "private"] = "host"
    shm_size: str = "16g"
    ulimits: dict[str, int] = {}
    privileged: bool = False
    cap_add: list[str] = []
    probe: Probe
    # Docker's restart policy; "no" means deploy's supervisor restarts it (with its group).
    restart: Literal["no", "on-failure", "unless-stopped", "always"] = "unless-stopped"
    labels: dict[str, str] = {}
    depends_on: list[str] = []
    # Services restarted together: all ranks of one multi-node engine instance.
    group: str | None = None
    flags: list[FlagSource] = []

    @property
    def restarted_by(self) -> Literal["docker", "deploy"]:
        """Who brings this container back after a crash: Docker's policy, or deploy's
        supervisor (multi-node groups, restarted whole)."""
        return "deploy" if self.restart == "no" else "docker"

    def spec_hash(self) -> str:
        import hashlib
        import json

        data = self.model_dump(mode="json", exclude={"labels", "flags"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


# Secrets are carried as `${NAME}` references (compose interpolates them; the supervisor
# resolves them only in the Docker API call), so no spec, state file or rendered file holds one.
_SECRET_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def secret_ref(name: str) -> str:
    """A reference to a host variable, resolved when the container is created."""
    return "${" + name + "}"


def is_secret_ref(value: str, secrets: list[str]) -> bool:
    match = _SECRET_REF.match(value)
    return match is not None and match.group(1) in secrets


def resolve_refs(value: str, secrets: list[str], env: Mapping[str, str] | None = None) -> str:
    """The value a `${NAME}` reference stands for (for the Docker SDK); others unchanged."""
    environ = os.environ if env is None else env
    match = _SECRET_REF.match(value)
    if match and match.group(1) in secrets:
        return environ.get(match.group(1), "")
    return value


def resolved_command(spec: ServiceSpec, env: Mapping[str, str] | None = None) -> list[str]:
    """The spec's command with its `${NAME}` secret references replaced by their values, for
    the Docker API at container creation (compose does the same interpolation itself)."""
    return [resolve_refs(word, spec.secret_env, env) for word in spec.command]


def resolved_environment(spec: ServiceSpec, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Plain values, references resolved, and each secret passed through when the host has it."""
    environ = os.environ if env is None else env
    values = {
        key: resolve_refs(value, spec.secret_env, env) for key, value in spec.environment.items()
    }
    for name in spec.secret_env:
        if name in environ:
            values[name] = environ[name]
    return values
