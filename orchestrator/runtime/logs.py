"""`deploy logs`: the logs of one service or all of a deployment, optionally followed."""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from orchestrator.docker.endpoints import Endpoints, local_endpoint
from orchestrator.docker.ops import labelled_containers
from orchestrator.errors import InputError
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_SERVICE
from orchestrator.state import DeploymentState, StateStore


def find_containers(name: str, *, store: StateStore, endpoints: Endpoints) -> dict[str, Any]:
    """service -> container, found by label on the state's endpoints and the local one."""
    try:
        state = store.load(name)
    except InputError:
        state = None  # corrupt: the labels still find what runs on the local daemon
    local = local_endpoint()
    # The endpoints recorded at `up`, whatever DOCKER_HOST or the context says today.
    recorded = set(state.recorded_endpoints() if state else [])
    found, errors = labelled_containers(
        endpoints, {local}, f"{LABEL_DEPLOYMENT}={name}", pinned=recorded
    )
    for endpoint, error in errors.items():
        # The local socket is only a guess unless it is all there is; a state's node is not.
        if endpoint in recorded or not recorded:
            raise error
    return {
        container.labels.get(LABEL_SERVICE, container.name): container for _, container in found
    }


# Variables that hold a secret in any deployment (the engines' key variables, the Hub token),
# and the flags that take one; a deployment's own secret names come from its state.
SECRET_VARIABLES = frozenset(
    {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VLLM_API_KEY", "SGLANG_API_KEY"}
)
SECRET_FLAGS = frozenset({"--api-key", "--admin-api-key"})
# Values this short would garble every line if masked (the same floor as the kept logs).
MIN_MASKED = 4


def secret_values(
    state: DeploymentState | None, containers: Iterable[Any], env: Mapping[str, str] | None = None
) -> list[str]:
    """Every secret value the deployment references, longest first: the values of its secret
    variables here and inside its containers (where they were resolved when the containers were
    created, so a key no longer exported here is still masked), and values given to key flags."""
    environ = os.environ if env is None else env
    names = set(SECRET_VARIABLES)
    for spec in state.specs if state else []:
        names.update(spec.secret_env)
        names.update(key for key, value in spec.environment.items() if value.startswith("${"))
    values = {environ.get(name, "") for name in names}
    for container in containers:
        config = (getattr(container, "attrs", None) or {}).get("Config") or {}
        for entry in config.get("Env") or []:
            key, _, value = str(entry).partition("=")
            if key in names:
                values.add(value)
        words = [str(word) for word in (config.get("Entrypoint") or []) + (config.get("Cmd") or [])]
        for flag, value in itertools.pairwise(words):
            if flag in SECRET_FLAGS:
                values.add(value)
        values.update(
            word.partition("=")[2] for word in words if word.partition("=")[0] in SECRET_FLAGS
        )
    return sorted({v for v in values if len(v) >= MIN_MASKED}, key=len, reverse=True)


def mask(line: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret in line:
            line = line.replace(secret, "***")
    return line


def _masking(echo: Callable[[str], None], secrets: Sequence[str]) -> Callable[[str], None]:
    def masked(line: str) -> None:
        echo(mask(line, secrets))

    return masked


def _resolve_name(name: str | None, store: StateStore) -> str:
    if name is not None:
        return name
    names = store.names()
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError(
            f"no deployment recorded in {store.directory}",
            "start one with `deploy up`, or pass --name NAME for one started elsewhere",
        )
    raise InputError(f"say which deployment ({', '.join(names)})", "pass --name NAME")


def _show_kept(
    deployment: str,
    service: str | None,
    tail: int | None,
    store: StateStore,
    echo: Callable[[str], None],
) -> bool:
    """The lines `up` kept of services whose start failed (their containers are gone)."""
    from orchestrator.runtime import kept_logs

    found = kept_logs.kept(store, deployment)
    if service is not None:
        found = {service: found[service]} if service in found else {}
    if not found:
        return False
    for name, lines in found.items():
        echo(f"{name} failed to start; its last {len(lines)} log lines, kept by `deploy up`:")
        for line in lines[-tail:] if tail else lines:
            echo(line)
    return True


def show_logs(
    service: str | None,
    *,
    name: str | None,
    follow: bool,
    tail: int | None,
    echo: Callable[[str], None],
    store: StateStore | None = None,
    endpoints: Endpoints | None = None,
) -> None:
    store = store if store is not None else StateStore()
    pool = endpoints if endpoints is not None else Endpoints()
    deployment = _resolve_name(name, store)
    containers = find_containers(deployment, store=store, endpoints=pool)
    try:
        state = store.load(deployment)
    except InputError:
        state = None  # a corrupt state file: the containers still say what to mask
    echo = _masking(echo, secret_values(state, containers.values()))
    if not containers and _show_kept(deployment, service, tail, store, echo):
        return
    if not containers:
        raise InputError(
            f"no containers for deployment '{deployment}'", "start it with `deploy up`"
        )
    if service is not None:
        if service not in containers:
            raise InputError(
                f"no service '{service}' in deployment '{deployment}'",
                f"services: {', '.join(sorted(containers))}",
            )
        containers = {service: containers[service]}
    prefix = len(containers) > 1
    width = max(len(s) for s in containers)
    tail_arg: int | str = tail if tail is not None else "all"

    def label(svc: str, line: str) -> str:
        return f"{svc.ljust(width)} | {line}" if prefix else line

    if not follow:
        for svc in sorted(containers):
            raw = containers[svc].logs(stdout=True, stderr=True, tail=tail_arg)
            for line in raw.decode("utf-8", errors="replace").splitlines():
                echo(label(svc, line))
        return
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()

    def pump(svc: str, container: Any) -> None:
        try:
            buffer = b""
            stream = container.logs(
                stdout=True, stderr=True, tail=tail_arg, stream=True, follow=True
            )
            for chunk in stream:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    lines.put((svc, line.decode("utf-8", errors="replace")))
            if buffer:
                lines.put((svc, buffer.decode("utf-8", errors="replace")))
        except Exception:  # the container went away: its stream ends
            pass
        finally:
            lines.put(None)

    for svc, container in sorted(containers.items()):
        threading.Thread(target=pump, args=(svc, container), daemon=True).start()
    open_streams = len(containers)
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
            continue
        echo(label(*item))
