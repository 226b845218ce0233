"""Fixtures for the simulator's tests: an HTTP client as engines' clients use them, and the image.

`sim_image` (session scope) makes sure `deploy-sim:latest` exists and is current, building it
with docker/build-sim-image.sh when needed; other test areas may use it the same way. Without
a reachable Docker daemon the tests that need it are skipped, except under CI=true where they
fail.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SIM_IMAGE = "deploy-sim:latest"
BUILD_SCRIPT = REPO_ROOT / "docker" / "build-sim-image.sh"


# ----------------------------------------------------------------------------- HTTP helpers
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout), parts.path


def request(
    url: str,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    conn, base = _connection(url, timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, base + path, body=data, headers=all_headers)
        response = conn.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def post(url: str, path: str, body: Any, **kwargs: Any) -> Reply:
    return request(url, path, method="POST", body=body, **kwargs)


@dataclass
class StreamEvent:
    at: float  # seconds since the request was sent
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def stream(
    url: str,
    path: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> tuple[int, list[StreamEvent]]:
    """POST and read the SSE `data:` lines as they arrive, each stamped on arrival."""
    conn, base = _connection(url, timeout)
    try:
        conn.request(
            "POST",
            base + path,
            body=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        sent = time.perf_counter()
        response = conn.getresponse()
        events: list[StreamEvent] = []
        if response.status != 200:
            response.read()
            return response.status, events
        while True:
            line = response.readline()
            if not line:
                break
            text = line.decode().strip()
            if text.startswith("data: "):
                events.append(StreamEvent(time.perf_counter() - sent, text[len("data: ") :]))
                if text == "data: [DONE]":
                    break
        return response.status, events
    finally:
        conn.close()


def connection_refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def free_port() -> int:
    return free_ports(1)[0]


# ----------------------------------------------------------------------------- subprocesses
def sim_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m orchestrator.sim ARGS` as the image's entry point runs it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_SIM_")}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.sim", *args],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Client:
    """The helpers above, handed to tests as the `client` fixture (tests cannot import conftest)."""

    request = staticmethod(request)
    post = staticmethod(post)
    stream = staticmethod(stream)
    connection_refused = staticmethod(connection_refused)
    wait_for = staticmethod(wait_for)
    free_port = staticmethod(free_port)


@pytest.fixture
def client() -> Client:
    return Client()


@pytest.fixture
def spawn() -> Iterator[Any]:
    """Start `python -m orchestrator.sim ARGS`; processes still running at the end are killed
    (each by its own pid)."""
    started: list[subprocess.Popen[str]] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = sim_process(args, env)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


# ----------------------------------------------------------------------------- docker
def docker_unavailable_reason() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker info failed: {error}"
    if result.returncode != 0:
        return "no Docker daemon is reachable: " + (result.stderr.strip().splitlines() or ["?"])[-1]
    return None


def require_docker() -> None:
    reason = docker_unavailable_reason()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"Docker is required in CI: {reason}")
    pytest.skip(reason)


def ensure_sim_image() -> str:
    """Build (or confirm up to date) the simulator image; the script is idempotent and quick
    when nothing changed."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1200
    )
    if result.returncode != 0:
        output = result.stdout[-2000:] + result.stderr[-2000:]
        missing = _missing_build_tool(output)
        if missing is not None and not IN_CI:
            # A fresh machine without the build's tools skips, with the reason; CI requires them.
            pytest.skip(f"the simulator image cannot be built here: {missing}")
        pytest.fail("building the simulator image failed:\n" + output)
    return SIM_IMAGE


def _missing_build_tool(output: str) -> str | None:
    """The line of docker/build-sim-image.sh that names a tool this machine lacks."""
    for line in output.splitlines():
        if "debootstrap is not installed" in line or "debootstrap needs root" in line:
            return line.strip()
    return None


@pytest.fixture(scope="session")
def sim_image() -> str:
    """The tag of a current simulator image (built if missing or stale)."""
    require_docker()
    return ensure_sim_image()
