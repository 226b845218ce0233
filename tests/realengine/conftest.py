"""The real vLLM CPU engine (image deploy-vllm-cpu:0.32.0) in Docker, for tests/realengine/.

Every engine runs in its own container on its own Docker network, with its HTTP port published
on a free loopback port. Containers and networks carry the prefix `deploy-rt-` and a random
suffix, and are removed when the test ends. The tiny model is generated once per session inside
the image (never downloaded). Without the image these tests skip with the reason; under CI=true
they fail instead.

Run them under the shared lock, one engine group at a time:
    flock /tmp/deploy-heavy.lock .venv/bin/python -m pytest tests/realengine -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.engine_image import (
    VLLM_CPU_IMAGE,
    TinyModel,
    image_present,
    make_tiny_model,
)
from orchestrator.engines.common import SIM_IMAGE
from tests.conftest import free_ports

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PREFIX = "deploy-rt-"
MODEL_IN_CONTAINER = "/models/tiny"
SERVED_NAME = "tiny"
API_PORT = 8000  # inside the container; each engine has its own network namespace
# Generous: a cold torch.compile of the tiny model on 2 busy cores can take minutes.
READY_DEADLINE_S = float(os.environ.get("DEPLOY_RT_READY_DEADLINE_S", "600"))
# `deploy` renders node addresses, and vLLM binds some of them (ZeroMQ binds addresses, not
# names): `own_address(argv)` runs argv with "@SELF@" in its arguments and environment replaced
# by the container's address on its network.
SELF = "@SELF@"
_OWN_ADDRESS = (
    "import os, socket, sys; ip = socket.gethostbyname(socket.gethostname()); "
    "os.environ.update({k: v.replace('@SELF@', ip) for k, v in os.environ.items() if '@SELF@' in v}); "
    "args = [a.replace('@SELF@', ip) for a in sys.argv[1:]]; os.execvp(args[0], args)"
)


def own_address(argv: list[str]) -> list[str]:
    return ["python3", "-c", _OWN_ADDRESS, *argv]


# Start-to-ready times measured in this session, printed at its end.
TIMINGS: list[tuple[str, float]] = []


def docker(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} failed: {result.stderr.strip()[-500:]}")
    return result


def free_port() -> int:
    return free_ports(1)[0]


def http(
    method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 120
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode(errors="replace")


@dataclass
class Engine:
    """One engine container."""

    name: str
    network: str
    port: int | None  # published loopback port of the API, None for headless ranks
    argv: list[str]
    started: float = field(default_factory=time.monotonic)

    def url(self, path: str) -> str:
        assert self.port is not None, f"{self.name} publishes no API port"
        return f"http://127.0.0.1:{self.port}{path}"

    def logs(self) -> str:
        result = docker("logs", self.name, check=False, timeout=60)
        return result.stdout + result.stderr

    def exit_code(self) -> int | None:
        """The exit code once the container stopped, None while it runs."""
        result = docker(
            "inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", self.name, check=False
        )
        if result.returncode != 0:
            return -1
        running, code = result.stdout.split()
        return None if running == "true" else int(code)

    def wait_exit(self, deadline_s: float) -> int:
        result = docker("wait", self.name, timeout=deadline_s)
        return int(result.stdout.strip())

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S, label: str | None = None) -> float:
        """Wait until /health and /v1/models answer 200; the seconds since the container started."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            code = self.exit_code()
            if code is not None:
                lines = self.logs().splitlines()
                # The root cause comes before vLLM's generic last words: show the error lines.
                errors = [x for x in lines if "Error" in x and not x.lstrip().startswith("File")]
                tail = "\n".join([*errors[-15:], "...", *lines[-15:]])
                raise AssertionError(f"{self.name} exited with {code} before ready:\n{tail}")
            try:
                if http("GET", self.url("/health"), timeout=5)[0] == 200:
                    status, _ = http("GET", self.url("/v1/models"), timeout=10)
                    if status == 200:
                        elapsed = time.monotonic() - self.started
                        TIMINGS.append((label or self.name, elapsed))
                        return elapsed
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(1)
        tail = "\n".join(self.logs().splitlines()[-40:])
        raise AssertionError(f"{self.name} not ready within {deadline_s:.0f} s:\n{tail}")

    def address(self) -> str:
        """The container's address on its network."""
        result = docker(
            "inspect", "--format",
            f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}', self.name,
        )  # fmt: skip
        return result.stdout.strip()

    def get(self, path: str, timeout: float = 60) -> tuple[int, str]:
        return http("GET", self.url(path), timeout=timeout)

    def post(self, path: str, body: dict[str, Any], timeout: float = 300) -> dict[str, Any]:
        """A JSON request that must succeed; its JSON answer."""
        status, text = http("POST", self.url(path), body, timeout=timeout)
        assert status == 200, f"POST {path}: {status} {text[:500]}"
        result: dict[str, Any] = json.loads(text)
        return result

    def stream(self, path: str, body: dict[str, Any], timeout: float = 300) -> list[dict[str, Any]]:
        """The server-sent events of a streamed request, up to [DONE] (which must come)."""
        request = urllib.request.Request(
            self.url(path),
            data=json.dumps({**body, "stream": True}).encode(),
            headers={"Content-Type": "application/json"},
        )
        events: list[dict[str, Any]] = []
        with urllib.request.urlopen(request, timeout=timeout) as response:
            assert response.status == 200
            assert response.headers.get_content_type() == "text/event-stream"
            for raw in response:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                payload = line.removeprefix("data: ")
                if payload == "[DONE]":
                    return events
                events.append(json.loads(payload))
        raise AssertionError(f"the stream of {path} ended without [DONE]")

    def serves(self, max_tokens: int = 4) -> None:
        """A completion and a chat completion, each returning exactly max_tokens tokens."""
        answer = self.post(
            "/v1/completions",
            {"model": SERVED_NAME, "prompt": "the model serves", "max_tokens": max_tokens,
             "ignore_eos": True},
        )  # fmt: skip
        assert answer["usage"]["completion_tokens"] == max_tokens, answer
        chat = self.post(
            "/v1/chat/completions",
            {"model": SERVED_NAME, "messages": [{"role": "user", "content": "hello"}],
             "max_tokens": max_tokens, "ignore_eos": True},
        )  # fmt: skip
        assert chat["usage"]["completion_tokens"] == max_tokens, chat

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a Prometheus sample over the series whose labels include `labels`."""
        status, text = self.get("/metrics")
        assert status == 200
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, value = line.rsplit(" ", 1)
            if all(f'{key}="{want}"' in head for key, want in labels.items()):
                total += float(value)
        return total

    def wait_log(self, text: str, deadline_s: float) -> str:
        """The first log line containing `text`, waiting for it."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            for line in self.logs().splitlines():
                if text in line:
                    return line
            if self.exit_code() is not None:
                break
            time.sleep(1)
        raise AssertionError(f"{self.name} never logged {text!r}")


class RealEngines:
    """Starts engine containers and networks; removes exactly those at the end."""

    served_name = SERVED_NAME
    SELF = SELF

    @staticmethod
    def own_address(argv: list[str]) -> list[str]:
        return own_address(argv)

    def __init__(self, model_dir: Path, cache_dir: Path) -> None:
        self.model_dir = model_dir
        self.cache_dir = cache_dir
        self.suffix = uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.networks: list[str] = []

    def network(self) -> str:
        name = f"{PREFIX}{self.suffix}-net{len(self.networks)}"
        docker("network", "create", name)
        self.networks.append(name)
        return name

    def serve_argv(
        self, *flags: str, model: str = MODEL_IN_CONTAINER, http_api: bool = True
    ) -> list[str]:
        """`vllm serve` as deploy renders it for vLLM: model, name, host, port, then flags."""
        argv = ["vllm", "serve", model]
        if http_api:
            argv += [
                "--served-model-name",
                SERVED_NAME,
                "--host",
                "0.0.0.0",
                "--port",
                str(API_PORT),
            ]
        return [*argv, *flags]

    def name_for(self, role: str) -> str:
        """The container (and host) name of the engine started with this role."""
        return f"{PREFIX}{self.suffix}-{role}"

    def start(
        self,
        argv: list[str],
        *,
        network: str | None = None,
        role: str = "engine",
        env: dict[str, str] | None = None,
        shm: str | None = "1g",
        kv_gib: float | None = 1,
        threads_bind: str | None = "0-1",
        publish: bool = True,
        model_dir: Path | None = None,
        extra: list[str] | None = None,
    ) -> Engine:
        name = self.name_for(role)
        network = network or self.network()
        environment = {
            "VLLM_CACHE_ROOT": "/cache/vllm",
            "TORCHINDUCTOR_CACHE_DIR": "/cache/inductor",
        }
        if kv_gib is not None:
            environment["VLLM_CPU_KVCACHE_SPACE"] = f"{kv_gib:g}"
        if threads_bind is not None:
            environment["VLLM_CPU_OMP_THREADS_BIND"] = threads_bind
        environment.update(env or {})
        args = ["run", "-d", "--name", name, "--network", network, "--hostname", name]
        args += ["--label", "deploy.test=realengine"]
        if shm is not None:
            args += ["--shm-size", shm]
        for key, value in environment.items():
            args += ["-e", f"{key}={value}"]
        args += ["-v", f"{(model_dir or self.model_dir).resolve()}:{MODEL_IN_CONTAINER}:ro"]
        args += ["-v", f"{self.cache_dir.resolve()}:/cache"]
        port = None
        if publish:
            port = free_port()
            args += ["-p", f"127.0.0.1:{port}:{API_PORT}"]
        args += [*(extra or []), VLLM_CPU_IMAGE, *argv]
        self.containers.append(name)
        started = time.monotonic()
        docker(*args)
        return Engine(name=name, network=network, port=port, argv=argv, started=started)

    def start_router(self, argv: list[str], *, network: str, role: str = "router") -> Engine:
        """The router `deploy` renders for vLLM prefill/decode, from the simulator image (the
        real `vllm-router` image needs a registry); it forwards to the real engines."""
        # Brought up to date as the other tests do (a no-op when it matches the sources).
        script = Path(__file__).resolve().parents[2] / "docker" / "build-sim-image.sh"
        built = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=1200, check=False
        )
        if built.returncode != 0 and not image_present(SIM_IMAGE):
            reason = f"the router runs from {SIM_IMAGE}, which did not build: "
            reason += built.stderr.strip()[-200:]
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)
        name = self.name_for(role)
        port = free_port()
        self.containers.append(name)
        started = time.monotonic()
        docker(
            "run", "-d", "--name", name, "--network", network, "--hostname", name,
            "--label", "deploy.test=realengine", "-p", f"127.0.0.1:{port}:{API_PORT}",
            "--entrypoint", argv[0], SIM_IMAGE, *argv[1:],
        )  # fmt: skip
        return Engine(name=name, network=network, port=port, argv=argv, started=started)

    def remove(self, engine: Engine) -> None:
        docker("rm", "-f", engine.name, check=False)

    def close(self) -> None:
        for name in reversed(self.containers):
            docker("rm", "-f", "-v", name, check=False, timeout=120)
        for name in reversed(self.networks):
            docker("network", "rm", name, check=False)


def _require_image() -> None:
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        reason = "no Docker Engine is reachable"
    elif not image_present(VLLM_CPU_IMAGE):
        reason = f"the engine image {VLLM_CPU_IMAGE} is not built (deploy engine-image build)"
    else:
        return
    if IN_CI:
        pytest.fail(f"CI requires the real engine: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default tiny model (2 layers, hidden 256, 4 heads / 2 KV heads, head_dim 64)."""
    _require_image()
    out = tmp_path_factory.mktemp("tiny-model")
    make_tiny_model(out, TinyModel())
    return out


@pytest.fixture(scope="session")
def compile_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """vLLM's and Inductor's compile caches, shared by the session's engines (same model);
    DEPLOY_RT_COMPILE_CACHE keeps them across sessions."""
    chosen = os.environ.get("DEPLOY_RT_COMPILE_CACHE")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("vllm-cache")
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


@pytest.fixture
def engines(tiny_model: Path, compile_cache: Path) -> Iterator[RealEngines]:
    stack = RealEngines(tiny_model, compile_cache)
    try:
        yield stack
    finally:
        stack.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test shows the last lines of every engine it started: an HTTP 500 from a router
    says nothing of which engine failed, or why."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("engines")
    if report.when == "call" and report.failed and isinstance(stack, RealEngines):
        for name in stack.containers:
            logs = docker("logs", "--tail", "80", name, check=False, timeout=60)
            report.sections.append((f"container {name}", logs.stdout + logs.stderr))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "real engine start-to-ready")
        for label, seconds in TIMINGS:
            terminalreporter.write_line(f"{label}: {seconds:.1f} s")
