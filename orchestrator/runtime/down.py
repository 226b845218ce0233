"""`deploy down`: remove a deployment by its labels, on every endpoint the state knows and the
local one, so it works even after the state file was lost."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import DockerUnavailableError, InputError
from orchestrator.runtime import detached, kept_logs
from orchestrator.runtime.containers import LABEL_CREATED
from orchestrator.runtime.endpoints import Endpoints, local_endpoint, normalize
from orchestrator.runtime.ownership import (
    OwnershipConflict,
    describe_owner,
    labels_of,
    split_owned,
    state_dir_key,
)
from orchestrator.runtime.state import StateStore
from orchestrator.spec import LABEL_DEPLOYMENT


@dataclass
class DownResult:
    deployments: list[str] = field(default_factory=list)
    containers: int = 0
    networks: int = 0
    volumes: int = 0
    state_files: int = 0
    unreachable: list[str] = field(default_factory=list)
    # Deployments found by label that belong to another state directory: left alone.
    other_owners: list[str] = field(default_factory=list)


def _label_filter(name: str | None) -> dict[str, str]:
    return {"label": LABEL_DEPLOYMENT if name is None else f"{LABEL_DEPLOYMENT}={name}"}


def down(
    name: str | None,
    *,
    all_deployments: bool = False,
    store: StateStore | None = None,
    endpoints: Endpoints | None = None,
    extra_endpoints: list[str] | None = None,
    remove_volumes: bool = True,
    all_owners: bool = False,
) -> DownResult:
    """Remove the containers (in parallel, forced), then networks and volumes `up` created.

    `name=None` with `all_deployments=True` removes every deployment of this state directory
    (of every state directory and user with `all_owners`).
    """
    if name is None and not all_deployments:
        raise InputError("say which deployment to remove", "pass --name NAME or --all")
    store = store if store is not None else StateStore()
    pool = endpoints if endpoints is not None else Endpoints()
    states = store.all() if all_deployments else [s for s in [store.load(name or "")] if s]
    # Stop the detached supervisors first, or they would restart what is being removed.
    for supervised in {state.name for state in states} | ({name} if name else set()):
        detached.stop(store, supervised)
    local = local_endpoint()
    targets = {local, *(normalize(e) for e in extra_endpoints or [])}
    for state in states:
        targets.update(state.endpoints())
    result = DownResult()
    names: set[str] = {state.name for state in states}
    label = _label_filter(None if all_deployments else name)
    clients: dict[str, Any] = {}
    for endpoint in sorted(targets):
        try:
            clients[endpoint] = pool.client(endpoint)
        except DockerUnavailableError:
            result.unreachable.append(endpoint)
    jobs: list[Any] = []
    foreign: list[Any] = []
    for client in clients.values():
        listed = client.containers.list(all=True, ignore_removed=True, filters=label)
        recorded = {state.name for state in states}
        mine, others = (listed, []) if all_owners else split_owned(listed, store, recorded=recorded)
        foreign += others
        for container in mine:
            names.add(container.labels.get(LABEL_DEPLOYMENT, ""))
            jobs.append(container)
    result.other_owners = sorted({labels_of(c).get(LABEL_DEPLOYMENT, "") for c in foreign} - names)
    if name is not None and not jobs and not states and foreign:
        raise OwnershipConflict(
            f"deployment {name} belongs to {describe_owner(labels_of(foreign[0]))}, "
            f"not to {state_dir_key(store)}",
            "run `deploy down` with that --state-dir, or pass --all-owners to remove it anyway",
        )
    if jobs:
        with ThreadPoolExecutor(max_workers=min(32, len(jobs))) as executor:
            list(executor.map(_remove, jobs))
    result.containers = len(jobs)
    created = {"label": [label["label"], f"{LABEL_CREATED}=true"]}

    def owned(items: list[Any]) -> list[Any]:
        recorded = {state.name for state in states}
        return items if all_owners else split_owned(items, store, recorded=recorded)[0]

    for client in clients.values():
        for network in owned(client.networks.list(filters=created)):
            # Still used by a container of another tool: leave it.
            names.add(network.attrs.get("Labels", {}).get(LABEL_DEPLOYMENT, ""))
            with contextlib.suppress(Exception):
                network.remove()
                result.networks += 1
        if remove_volumes:
            for volume in owned(client.volumes.list(filters=created)):
                names.add((volume.attrs.get("Labels") or {}).get(LABEL_DEPLOYMENT, ""))
                with contextlib.suppress(Exception):
                    volume.remove(force=True)
                    result.volumes += 1
    names.discard("")
    result.deployments = sorted(names)
    if not clients:
        raise DockerUnavailableError(
            f"cannot reach any Docker daemon ({', '.join(result.unreachable)})",
            "start dockerd and run `deploy down` again",
        )
    # The local socket is only a guess; an endpoint a state file names must be reached.
    required = targets - {local} | {e for s in states for e in s.endpoints()}
    missed = [endpoint for endpoint in result.unreachable if endpoint in required]
    if missed:
        # Keep the state files: they are how a later `down` finds what is left there.
        raise DockerUnavailableError(
            f"removed {result.containers} containers but could not reach {', '.join(missed)}",
            "start that daemon (or fix the ssh/tcp access) and run `deploy down` again",
        )
    if name:
        kept_logs.forget(store, name)
    for deployment in result.deployments:
        kept_logs.forget(store, deployment)
        if store.delete(deployment):
            result.state_files += 1
    return result


def _remove(container: Any) -> None:
    # Removed concurrently (or by the supervisor): nothing left to do.
    with contextlib.suppress(Exception):
        container.remove(force=True)
