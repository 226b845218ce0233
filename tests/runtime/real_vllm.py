"""The real vLLM CPU engine in tests: its image, a tiny model made at test time, service specs
built like `server_spec` builds the test server's, and ways to kill a rank or an engine core.

Without the image the tests skip with a reason (CI fails instead). Engines on two cores take
30 to 120 s to become ready: every wait here is on an event, with a generous deadline.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.progress import Row
from orchestrator.spec import Mount, PortBinding, Probe, ServiceSpec

from .conftest import _unavailable, free_port

VLLM_CPU_IMAGE = os.environ.get("DEPLOY_VLLM_CPU_IMAGE", "deploy-vllm-cpu:0.32.0")
MODEL_DIR = "/models/tiny"
SERVED = "tiny"
START_PERIOD_S = 420  # a cold start on two busy cores, with room to spare


@pytest.fixture(scope="session")
def vllm_cpu_image(docker_client: Any) -> str:
    import docker.errors

    try:
        docker_client.images.get(VLLM_CPU_IMAGE)
    except docker.errors.ImageNotFound:
        _unavailable(
            f"{VLLM_CPU_IMAGE} is not built here (docker/build-vllm-cpu-image.sh builds it)"
        )
    return VLLM_CPU_IMAGE


@pytest.fixture(scope="session")
def tiny_model(docker_client: Any, vllm_cpu_image: str, tmp_path_factory: Any) -> Path:
    """A Llama-shaped model with random weights, written by the image's own generator."""
    out = Path(tmp_path_factory.mktemp("tiny-model"))
    docker_client.containers.run(
        vllm_cpu_image,
        ["deploy-tiny-model", "/out/tiny"],
        volumes={str(out): {"bind": "/out", "mode": "rw"}},
        remove=True,
        network_mode="none",
    )
    model = out / "tiny"
    assert (model / "config.json").is_file()
    return model


def vllm_spec(
    name: str,
    image: str,
    model: Path,
    *,
    args: list[str] | None = None,
    bind: str = "0",
    rank: int = 0,
    group: str | None = None,
    http: bool = True,
    peer: tuple[str, int] | None = None,
    node: str = "node0",
    restart: str | None = None,
) -> ServiceSpec:
    """`vllm serve` of the tiny model; `bind` is VLLM_CPU_OMP_THREADS_BIND (`0|1` for two
    ranks in one container)."""
    if http:
        probe = Probe(
            kind="http",
            path="/health",
            port=8000,
            start_period_s=START_PERIOD_S,
            interval_s=2,
            timeout_s=5,
            retries=3,
        )
    elif peer is not None:
        probe = Probe(
            kind="peer", host=peer[0], port=peer[1], start_period_s=START_PERIOD_S, interval_s=5
        )
    else:
        probe = Probe(kind="process", start_period_s=START_PERIOD_S)
    command = [
        "serve", MODEL_DIR, "--served-model-name", SERVED, "--host", "0.0.0.0",
        "--port", "8000", "--max-model-len", "512", *(args or []),
    ]  # fmt: skip
    return ServiceSpec(
        name=name,
        node=node,
        role="serve",
        rank=rank,
        image=image,
        entrypoint=["vllm"],
        command=command,
        environment={"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": bind},
        ports=[PortBinding(container=8000, host=free_port())] if http else [],
        mounts=[Mount(source=str(model), target=MODEL_DIR, read_only=True)],
        probe=probe,
        ipc_mode="private",
        shm_size="1g",
        group=group,
        restart=restart or ("no" if group else "unless-stopped"),  # type: ignore[arg-type]
    )


# Kills processes whose command line holds a word, from inside the container. The word is
# passed as an argument, so this script's own command line never matches it.
_KILL = r"""
import os, signal, sys
word = sys.argv[1].encode()
killed = []
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
        continue
    try:
        line = open("/proc/%s/cmdline" % pid, "rb").read()
    except OSError:
        continue
    if word in line and b"import os, signal" not in line:
        os.kill(int(pid), signal.SIGKILL)
        killed.append(pid)
print(" ".join(killed))
"""


def kill_inside(container: Any, word: str) -> list[str]:
    """SIGKILL every process of `container` whose command line contains `word`
    (`EngineCore_DP1`: one DP engine; `EngineCore`: every engine core)."""
    result = container.exec_run(["python3", "-c", _KILL, word])
    return (result.output or b"").decode().split()


@dataclass
class Timeline:
    """What the supervisor reported, with monotonic times: when it saw the failure and when
    the unit was ready again."""

    events: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: dict[str, bool] = field(default_factory=dict)

    def update(self, rows: list[Row]) -> None:
        with self.lock:
            for row in rows:
                self.ready[row.service] = row.state == "ready"

    def message(self, text: str) -> None:
        with self.lock:
            self.events.append((time.monotonic(), text))

    def close(self) -> None:
        pass

    def first(self, word: str, after: float) -> float | None:
        with self.lock:
            return next((t for t, text in self.events if t >= after and word in text), None)

    def all_ready(self, services: list[str]) -> bool:
        with self.lock:
            return all(self.ready.get(name, False) for name in services)


def wait_for(condition: Any, timeout: float, every: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return bool(condition())


@contextlib.contextmanager
def supervised(supervisor: Any) -> Iterator[threading.Event]:
    """Run `supervisor.watch` in a thread until the returned event is set."""
    stop = threading.Event()
    thread = threading.Thread(target=lambda: supervisor.watch(stop=stop), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=120)
