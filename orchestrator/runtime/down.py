"""`deploy down`: remove a deployment exactly, or refuse and say why.

- It holds the deployment's lock, so it never races an `up` of the same name.
- It stops every supervisor of the deployment, found by what the process is (not by the
  record, which can be stale), and waits until each is gone: none re-creates what is removed.
- It looks for the containers on the endpoints the state recorded at `up` (the daemon
  DOCKER_HOST or the context named then, not the one named now), on today's local daemon and
  on `--endpoint`s, by label, so it works even after the state file was lost.
- It checks afterwards: a container of the deployment still there, or a recorded endpoint it
  cannot reach, is an error (the state file is kept for the next try), never "removed".
- A corrupt state file does not block it: the endpoints are salvaged from what is readable,
  the deployment is removed by label, the file is set aside, and a warning says so.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from orchestrator.docker.endpoints import Endpoints, local_endpoint, normalize
from orchestrator.errors import DockerUnavailableError, InputError, RuntimeFailure
from orchestrator.runtime import detached, kept_logs, supervisor_procs
from orchestrator.runtime.containers import LABEL_CREATED
from orchestrator.runtime.lock import deployment_lock
from orchestrator.runtime.ownership import (
    OwnershipConflict,
    describe_owner,
    labels_of,
    split_owned,
    state_dir_key,
)
from orchestrator.spec import LABEL_DEPLOYMENT
from orchestrator.state import DeploymentState, StateStore, validate_name


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
    supervisors: int = 0


@dataclass
class _Recorded:
    """What the state directory says about the deployments being removed."""

    states: list[DeploymentState] = field(default_factory=list)
    # Corrupt state files: name -> (reason, endpoints salvaged from what is readable).
    corrupt: dict[str, tuple[str, list[str]]] = field(default_factory=dict)

    def names(self) -> set[str]:
        return {state.name for state in self.states} | set(self.corrupt)

    def endpoints(self) -> set[str]:
        found = {e for state in self.states for e in state.recorded_endpoints()}
        return found | {e for _, salvaged in self.corrupt.values() for e in salvaged}


def _label_filter(name: str | None) -> dict[str, str]:
    return {"label": LABEL_DEPLOYMENT if name is None else f"{LABEL_DEPLOYMENT}={name}"}


def _salvage(store: StateStore, name: str) -> list[str]:
    """Endpoints named in a state file that does not validate (read as plain JSON)."""
    try:
        data = json.loads(store.path(name).read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict):
        return []
    found: set[str] = set()
    urls = data.get("docker_urls")
    if isinstance(urls, dict):
        found.update(v for v in urls.values() if isinstance(v, str) and "://" in v)
    nodes = data.get("nodes")
    for node in nodes if isinstance(nodes, list) else []:
        docker = node.get("docker") if isinstance(node, dict) else None
        if isinstance(docker, str) and docker and not urls:
            found.add(docker)
    return sorted(found)


def _read(store: StateStore, names: list[str]) -> _Recorded:
    recorded = _Recorded()
    for name in names:
        try:
            state = store.load(name)
        except InputError as error:
            recorded.corrupt[name] = (error.message, _salvage(store, name))
            continue
        if state is not None:
            recorded.states.append(state)
    return recorded


def _stop_supervisors(store: StateStore, names: set[str]) -> int:
    stopped = 0
    for supervised in sorted(names):
        count, left = supervisor_procs.stop(store, supervised)
        if left:
            pids = ", ".join(str(p.pid) for p in left)
            raise RuntimeFailure(
                f"the supervisor of {supervised} (pid {pids}) did not stop; nothing was removed",
                f"stop it (kill {pids}) and run `deploy down` again",
            )
        detached.record_path(store, supervised).unlink(missing_ok=True)
        stopped += count
    return stopped


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
    """Remove the containers (in parallel, forced), then networks and volumes `up` created,
    then check that none is left.

    `name=None` with `all_deployments=True` removes every deployment of this state directory
    (of every state directory and user with `all_owners`).
    """
    if name is None and not all_deployments:
        raise InputError("say which deployment to remove", "pass --name NAME or --all")
    store = store if store is not None else StateStore()
    pool = endpoints if endpoints is not None else Endpoints()
    if all_deployments:
        names = sorted(set(store.names()) | ({validate_name(name)} if name else set()))
    else:
        names = [validate_name(name or "")]
    with contextlib.ExitStack() as held:
        # An `up` of the same name holds this lock until it has started and handed over.
        for locked in names:
            held.enter_context(deployment_lock(store, locked, "deploy down"))
        result = DownResult()
        # Supervisors first, or they would restart what is being removed; they save the
        # state as they stop, so it is read after.
        result.supervisors = _stop_supervisors(store, set(names))
        recorded = _read(store, names)
        for corrupt, (reason, salvaged) in recorded.corrupt.items():
            where = f" and {', '.join(salvaged)}" if salvaged else ""
            store.problems.append(
                f"{reason}: removing {corrupt} by its labels on the local daemon{where}"
            )
        _remove_everything(
            name,
            all_deployments,
            store,
            pool,
            extra_endpoints,
            recorded,
            result,
            remove_volumes=remove_volumes,
            all_owners=all_owners,
        )
        for corrupt in recorded.corrupt:
            aside = store.path(corrupt).with_suffix(".json.corrupt")
            with contextlib.suppress(OSError):
                os.replace(store.path(corrupt), aside)
                store.problems.append(f"the corrupt state file of {corrupt} is kept as {aside}")
        if name:
            kept_logs.forget(store, name)
        for deployment in result.deployments:
            kept_logs.forget(store, deployment)
            if store.delete(deployment):
                result.state_files += 1
    return result


def _remove_everything(
    name: str | None,
    all_deployments: bool,
    store: StateStore,
    pool: Endpoints,
    extra_endpoints: list[str] | None,
    recorded: _Recorded,
    result: DownResult,
    *,
    remove_volumes: bool,
    all_owners: bool,
) -> None:
    local = local_endpoint()
    guessed = {local, *(normalize(e) for e in extra_endpoints or [])}
    pinned = recorded.endpoints()
    names: set[str] = recorded.names()
    label = _label_filter(None if all_deployments else name)
    clients: dict[str, Any] = {}
    for endpoint in sorted(guessed | pinned):
        try:
            clients[endpoint] = pool.client(endpoint, pinned=endpoint in pinned)
        except DockerUnavailableError:
            result.unreachable.append(endpoint)
    if not clients:
        raise DockerUnavailableError(
            f"cannot reach any Docker daemon ({', '.join(result.unreachable)})",
            "start dockerd and run `deploy down` again",
        )

    def owned(items: list[Any]) -> tuple[list[Any], list[Any]]:
        return (items, []) if all_owners else split_owned(items, store, recorded=names)

    jobs: list[tuple[str, Any]] = []
    foreign: list[Any] = []
    for endpoint, client in clients.items():
        listed = client.containers.list(all=True, ignore_removed=True, filters=label)
        mine, others = owned(listed)
        foreign += others
        for container in mine:
            names.add(container.labels.get(LABEL_DEPLOYMENT, ""))
            # One daemon reached under two spellings (a context naming the default socket).
            if all(container.id != other.id for _, other in jobs):
                jobs.append((endpoint, container))
    result.other_owners = sorted({labels_of(c).get(LABEL_DEPLOYMENT, "") for c in foreign} - names)
    if name is not None and not jobs and not recorded.names() and foreign:
        raise OwnershipConflict(
            f"deployment {name} belongs to {describe_owner(labels_of(foreign[0]))}, "
            f"not to {state_dir_key(store)}",
            "run `deploy down` with that --state-dir, or pass --all-owners to remove it anyway",
        )
    errors: list[str] = []
    if jobs:
        with ThreadPoolExecutor(max_workers=min(32, len(jobs))) as executor:
            errors = [e for e in executor.map(_remove, [c for _, c in jobs]) if e]
    result.containers = len(jobs)
    # Confirm: nothing of the deployment may be left on a daemon that was reached.
    left = []
    for endpoint, client in clients.items():
        listed = client.containers.list(all=True, ignore_removed=True, filters=label)
        left += [f"{c.name} on {endpoint}" for c in owned(listed)[0]]
    if left:
        reason = f" ({errors[0]})" if errors else ""
        raise RuntimeFailure(
            f"{len(left)} container(s) still there after removal: {', '.join(left[:3])}{reason}",
            "the state file is kept; run `deploy down` again, and check that daemon if it stays",
        )
    created = {"label": [label["label"], f"{LABEL_CREATED}=true"]}
    for client in clients.values():
        for network in owned(client.networks.list(filters=created))[0]:
            names.add(network.attrs.get("Labels", {}).get(LABEL_DEPLOYMENT, ""))
            # Still used by a container of another tool: leave it.
            with contextlib.suppress(Exception):
                network.remove()
                result.networks += 1
        if remove_volumes:
            for volume in owned(client.volumes.list(filters=created))[0]:
                names.add((volume.attrs.get("Labels") or {}).get(LABEL_DEPLOYMENT, ""))
                with contextlib.suppress(Exception):
                    volume.remove(force=True)
                    result.volumes += 1
    names.discard("")
    result.deployments = sorted(names)
    # The local daemon and --endpoint are guesses; an endpoint a state file names must be
    # reached, or what runs there is unaccounted for.
    required = (guessed - {local}) | pinned
    missed = [endpoint for endpoint in result.unreachable if endpoint in required]
    if missed:
        # Keep the state files: they are how a later `down` finds what is left there.
        raise DockerUnavailableError(
            f"removed {result.containers} containers but could not reach {', '.join(missed)}",
            "start that daemon (or fix the ssh/tcp access) and run `deploy down` again",
        )


def _remove(container: Any) -> str | None:
    """None when the container is gone (removed here, or concurrently); else why not."""
    try:
        container.remove(force=True)
    except Exception as error:
        if getattr(getattr(error, "response", None), "status_code", None) == 404:
            return None
        text = str(error).strip().splitlines()
        return (text[-1] if text else type(error).__name__)[:200]
    return None
