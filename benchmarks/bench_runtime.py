"""Supervisor latencies on the local Docker Engine, with the engine simulator image.

Figures (goals):
- ready → `up` returns: from the moment the last service is ready (the simulator's "Application
  startup complete" log line, timestamped by dockerd) to `Supervisor.up()` returning (< 1 s);
- death → restart: from `docker kill` of a service to its replacement container starting, for
  the first restart, which has no backoff (< 3 s);
- `down` of an 8-container deployment (< 3 s);
- with the detached supervisor (`up` has returned; nothing of it runs): `docker kill` of a
  single engine → its replacement starting (< 3 s); a crash (SIGKILL of the engine's process
  from the host) → Docker's `unless-stopped` restart (< 3 s); `docker kill` of rank 1 of a
  two-rank group → every rank of the group started again (< 5 s).

Needs a Docker daemon and `deploy-sim:latest` (docker/build-sim-image.sh); prints a note and
exits 0 without them.
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.docker.endpoints import Endpoints, connect  # noqa: E402
from orchestrator.errors import DockerUnavailableError  # noqa: E402
from orchestrator.runtime.down import down  # noqa: E402
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions  # noqa: E402
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_SERVICE, PortBinding, Probe, ServiceSpec  # noqa: E402
from orchestrator.state import NodeInfo, StateStore  # noqa: E402

IMAGE = "deploy-sim:latest"
RUNS = 5
READY_LINE = "Application startup complete"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sim_spec(name: str, load_s: float) -> ServiceSpec:
    port = free_port()
    return ServiceSpec(
        name=name,
        node="local",
        role="serve",
        image=IMAGE,
        entrypoint=["vllm", "serve"],
        command=["Qwen/Qwen3-8B", "--host", "0.0.0.0", "--port", "8000"],
        environment={"DEPLOY_SIM_LOAD_SECONDS": str(load_s)},
        ports=[PortBinding(container=8000, host=port)],
        probe=Probe(kind="http", path="/health", port=8000, start_period_s=60, interval_s=5),
        ipc_mode="private",
        shm_size="64m",
    )


def docker_time(text: str) -> float:
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = float("0." + rest[:9]) if rest else 0.0
    return datetime.fromisoformat(head + "+00:00").timestamp() + fraction


def ready_moment(container: Any) -> float | None:
    raw = container.logs(timestamps=True).decode("utf-8", errors="replace")
    for line in raw.splitlines():
        stamp, _, text = line.partition(" ")
        if READY_LINE in text:
            return docker_time(stamp)
    return None


def supervisor(
    name: str, specs: list[ServiceSpec], store: StateStore, pool: Endpoints
) -> Supervisor:
    options = SupervisorOptions(timeout_s=120, max_restarts=5)
    return Supervisor(
        name, specs, [NodeInfo(name="local")], store=store, endpoints=pool, options=options
    )


def containers(client: Any, name: str) -> dict[str, Any]:
    found = client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_DEPLOYMENT}={name}"}
    )
    return {c.labels[LABEL_SERVICE]: c for c in found}


def bench_ready_to_return(client: Any, store: StateStore, pool: Endpoints) -> list[float]:
    figures = []
    for _ in range(RUNS):
        name = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            supervisor(name, [sim_spec("serve-0", 1.0)], store, pool).up()
            returned = time.time()
            moment = ready_moment(containers(client, name)["serve-0"])
            if moment is not None:
                figures.append(returned - moment)
        finally:
            down(name, store=store, endpoints=pool)
    return figures


def bench_death_to_restart(client: Any, store: StateStore, pool: Endpoints) -> list[float]:
    figures = []
    for _ in range(RUNS):
        name = f"bench-{uuid.uuid4().hex[:6]}"
        sup = supervisor(name, [sim_spec("serve-0", 0.2)], store, pool)
        stop = threading.Event()
        try:
            sup.up()
            old = containers(client, name)["serve-0"]
            watcher = threading.Thread(target=sup.watch, kwargs={"stop": stop, "duration_s": 60})
            watcher.start()
            killed = time.time()
            old.kill()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                new = containers(client, name).get("serve-0")
                if new is not None and new.id != old.id and new.status == "running":
                    figures.append(docker_time(new.attrs["State"]["StartedAt"]) - killed)
                    break
                time.sleep(0.05)
            stop.set()
            watcher.join(timeout=30)
        finally:
            stop.set()
            down(name, store=store, endpoints=pool)
    return figures


def detached_deployment(
    name: str, specs: list[ServiceSpec], store: StateStore, pool: Endpoints
) -> None:
    from orchestrator.runtime import detached

    supervisor(name, specs, store, pool).up()
    detached.spawn(name, store, max_restarts=100, restart_window_s=600, with_gpus=False)


def started(container: Any) -> float:
    return docker_time(container.attrs["State"]["StartedAt"])


def wait_new(client: Any, name: str, services: list[str], old_ids: set[str]) -> list[Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = containers(client, name)
        news = [found.get(service) for service in services]
        if all(c is not None and c.id not in old_ids and c.status == "running" for c in news):
            return [c for c in news if c is not None]
        time.sleep(0.05)
    return []


def bench_detached_kill(client: Any, store: StateStore, pool: Endpoints) -> list[float]:
    figures = []
    for _ in range(3):
        name = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            detached_deployment(name, [sim_spec("serve-0", 0.2)], store, pool)
            old = containers(client, name)["serve-0"]
            killed = time.time()
            old.kill()
            news = wait_new(client, name, ["serve-0"], {old.id})
            if news:
                figures.append(started(news[0]) - killed)
        finally:
            down(name, store=store, endpoints=pool)
    return figures


def bench_crash_docker_policy(client: Any, store: StateStore, pool: Endpoints) -> list[float]:
    import os
    import signal

    figures = []
    for _ in range(3):
        name = f"bench-{uuid.uuid4().hex[:6]}"
        try:
            detached_deployment(name, [sim_spec("serve-0", 0.2)], store, pool)
            container = containers(client, name)["serve-0"]
            killed = time.time()
            os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                container.reload()
                if container.attrs["RestartCount"] >= 1 and container.status == "running":
                    figures.append(started(container) - killed)
                    break
                time.sleep(0.05)
        except PermissionError:
            print("crash -> Docker restart: needs root to signal the container's process")
            return figures
        finally:
            down(name, store=store, endpoints=pool)
    return figures


def bench_detached_group(client: Any, store: StateStore, pool: Endpoints) -> list[float]:
    figures = []
    for _ in range(3):
        name = f"bench-{uuid.uuid4().hex[:6]}"
        ranks = [
            sim_spec(f"serve-0-rank{rank}", 0.2).model_copy(
                update={"group": "serve-0", "rank": rank, "restart": "no"}
            )
            for rank in range(2)
        ]
        try:
            detached_deployment(name, ranks, store, pool)
            old = containers(client, name)
            killed = time.time()
            old["serve-0-rank1"].kill()
            news = wait_new(client, name, sorted(old), {c.id for c in old.values()})
            if news:
                figures.append(max(started(c) for c in news) - killed)
        finally:
            down(name, store=store, endpoints=pool)
    return figures


def bench_down_8(client: Any, store: StateStore, pool: Endpoints) -> list[float]:
    figures = []
    for _ in range(3):
        name = f"bench-{uuid.uuid4().hex[:6]}"
        specs = [sim_spec(f"serve-{i}", 0.1) for i in range(8)]
        try:
            supervisor(name, specs, store, pool).up()
            started = time.perf_counter()
            result = down(name, store=store, endpoints=pool)
            figures.append(time.perf_counter() - started)
            assert result.containers == 8 and containers(client, name) == {}
        finally:
            down(name, store=store, endpoints=pool)  # a failed run leaves no containers behind
    return figures


def report(label: str, figures: list[float], goal: float) -> None:
    if not figures:
        print(f"{label}: no measurement")
        return
    median = statistics.median(figures)
    verdict = "meets" if median < goal else "MISSES"
    values = ", ".join(f"{f:.2f}" for f in figures)
    print(
        f"{label}: median {median:.2f} s, max {max(figures):.2f} s over {len(figures)} runs "
        f"[{values}] — {verdict} the goal (< {goal:g} s)"
    )


def main() -> int:
    try:
        client = connect("unix:///var/run/docker.sock")
    except DockerUnavailableError as error:
        print(f"skipped: {error}")
        return 0
    try:
        client.images.get(IMAGE)
    except Exception:
        print(f"skipped: {IMAGE} is missing; build it with docker/build-sim-image.sh")
        return 0
    with tempfile.TemporaryDirectory() as tmp, Endpoints() as pool:
        store = StateStore(Path(tmp))
        report("ready -> up returns", bench_ready_to_return(client, store, pool), 1.0)
        report(
            "container death -> restart started", bench_death_to_restart(client, store, pool), 3.0
        )
        report("down of 8 containers", bench_down_8(client, store, pool), 3.0)
        report(
            "detached: docker kill -> replacement started",
            bench_detached_kill(client, store, pool),
            3.0,
        )
        report(
            "detached: crash -> Docker policy restart",
            bench_crash_docker_policy(client, store, pool),
            3.0,
        )
        report(
            "detached: rank killed -> whole group started",
            bench_detached_group(client, store, pool),
            5.0,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
