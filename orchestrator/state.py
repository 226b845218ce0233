"""The state directory: one JSON file per deployment, written atomically.

Default location: `$XDG_STATE_HOME/deploy`, else `~/.local/state/deploy`. The file records
the plan, the service specs, the container ids per endpoint and the restarts; it never holds a
secret value (specs list secret names only). `down` does not need it: containers carry labels.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from orchestrator.base import Strict
from orchestrator.errors import InputError
from orchestrator.files import write_atomically
from orchestrator.naming import check_name, is_valid_name
from orchestrator.spec import ServiceSpec

STATE_VERSION = 1


class NodeInfo(Strict):
    """Where a node's services run and how the host reaches them."""

    name: str
    address: str = "127.0.0.1"
    docker: str = "unix:///var/run/docker.sock"


class ContainerRecord(Strict):
    service: str
    node: str
    endpoint: str
    id: str
    spec_hash: str
    started_at: float


class DeploymentState(Strict):
    version: int = STATE_VERSION
    name: str
    plan: dict[str, Any] | None = None
    plan_hash: str = ""
    specs: list[ServiceSpec]
    nodes: list[NodeInfo]
    containers: dict[str, ContainerRecord] = {}
    restarts: dict[str, int] = {}
    networks: dict[str, str] = Field(default={}, description="endpoint -> network id we created")
    volumes: dict[str, list[str]] = Field(default={}, description="endpoint -> volumes we created")
    endpoint_url: str | None = None
    gave_up: dict[str, str] = Field(
        default={}, description="restart unit -> why the supervisor stopped restarting it"
    )
    # node -> the Docker endpoint its `docker` resolved to when the deployment was started
    # (DOCKER_HOST or the current context for the local socket), so `down`, `logs` and
    # `status` reach the daemons that hold the containers whatever today's environment says.
    docker_urls: dict[str, str] = {}
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    def endpoints(self) -> list[str]:
        return sorted({node.docker for node in self.nodes})

    def recorded_endpoints(self) -> list[str]:
        """The resolved endpoints of the nodes (connect to them pinned); a node recorded
        before endpoints were resolved keeps its `docker` as written."""
        return sorted({self.docker_urls.get(node.name, node.docker) for node in self.nodes})


def validate_name(name: str) -> str:
    """The deployment name rule of every command (`orchestrator.naming`)."""
    return check_name(name)


def default_state_dir() -> Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "deploy"


class StateStore:
    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_state_dir()
        # One line per state file `all()` skipped (unreadable or corrupt), for the CLI to print.
        self.problems: list[str] = []

    def path(self, name: str) -> Path:
        return self.directory / f"{validate_name(name)}.json"

    def files_dir(self, name: str) -> Path:
        """Where `deploy up` renders the deployment's files (compose, nginx.conf, ...)."""
        return self.directory / validate_name(name)

    def load(self, name: str) -> DeploymentState | None:
        path = self.path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            raise InputError(
                f"cannot read state file {path} ({error.strerror})",
                "check its permissions, or pass --state-dir",
            ) from None
        try:
            return DeploymentState.model_validate_json(text)
        except ValueError as error:
            raise InputError(
                f"state file {path} is not valid ({str(error).splitlines()[0]})",
                f"delete it; `deploy down --name {name}` still finds the containers by label",
            ) from error

    def save(self, state: DeploymentState) -> Path:
        """Write to a temporary file in the same directory, fsync, then rename over the old one,
        so a crash never leaves a half-written state file behind."""
        state.updated_at = time.time()
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(state.name)
        _carry_over(state, self._previous(state.name))
        _resolve_endpoints(state)
        return write_atomically(path, state.model_dump_json(indent=2), durable=True)

    def _previous(self, name: str) -> DeploymentState | None:
        try:
            return self.load(name)
        except InputError:
            return None

    def delete(self, name: str) -> bool:
        """Remove the state file and the rendered files beside it."""
        import shutil

        files = self.files_dir(name)
        if files.is_dir():
            shutil.rmtree(files, ignore_errors=True)
        try:
            self.path(name).unlink()
        except FileNotFoundError:
            return False
        return True

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(
            path.stem for path in self.directory.glob("*.json") if is_valid_name(path.stem)
        )

    def all(self) -> list[DeploymentState]:
        """Every readable state file; a corrupt or unreadable one is skipped and described in
        `problems`, so one bad file never hides the other deployments."""
        states = []
        for name in self.names():
            try:
                state = self.load(name)
            except InputError as error:
                self.problems.append(f"skipped {error}")
                continue
            if state is not None:
                states.append(state)
        return states


def _carry_over(state: DeploymentState, previous: DeploymentState | None) -> None:
    """What a later save cannot know must not be lost by it: a supervisor that adopts the
    deployment again while a daemon is still down saves before it has seen the endpoint URL,
    the networks and volumes `up` created, or when the deployment began. Kept while the plan is
    the same; a new plan starts afresh."""
    if previous is None or previous.plan_hash != state.plan_hash:
        return
    if state.endpoint_url is None:
        state.endpoint_url = previous.endpoint_url
    state.created_at = min(state.created_at, previous.created_at)
    state.networks = {**previous.networks, **state.networks}
    volumes = dict(previous.volumes)
    for endpoint, names in state.volumes.items():
        volumes[endpoint] = sorted(set(volumes.get(endpoint, [])) | set(names))
    state.volumes = volumes


def _resolve_endpoints(state: DeploymentState) -> None:
    """Record each node's endpoint as this process resolves it: the saving process is `up` or
    the supervisor it started (same environment), the ones that created the containers."""
    from orchestrator.docker.endpoints import normalize

    urls = {}
    for node in state.nodes:
        try:
            urls[node.name] = normalize(node.docker)
        except Exception:  # an unreadable context: `down` falls back to the name as written
            urls[node.name] = node.docker
    state.docker_urls = urls


def find_endpoint(name: str, state_dir: Path | str | None = None) -> str:
    """The URL of a running deployment (its router or first server), for `deploy bench`."""
    store = StateStore(state_dir)
    state = store.load(name)
    if state is None:
        known = ", ".join(store.names()) or "none"
        raise InputError(
            f"no deployment named '{name}' in {store.directory} (known: {known})",
            "start it with `deploy up`, or pass --state-dir",
        )
    if not state.endpoint_url:
        raise InputError(
            f"deployment '{name}' has no HTTP endpoint yet",
            f"wait for `deploy up` to finish or check `deploy status --name {name}`",
        )
    return state.endpoint_url


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
