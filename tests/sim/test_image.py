"""The simulator image: the engines' own command lines run unchanged in a container."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def network(sim_image: str) -> Iterator[str]:
    """A network of its own, so the test does not depend on the default bridge."""
    name = f"deploy-sim-test-{uuid.uuid4().hex[:8]}"
    created = docker("network", "create", name)
    assert created.returncode == 0, created.stderr
    yield name
    docker("network", "rm", name)


@pytest.fixture
def containers() -> Iterator[list[str]]:
    started: list[str] = []
    yield started
    for name in started:
        docker("rm", "-f", name)


def run_container(
    containers: list[str],
    network: str,
    image: str,
    env: dict[str, str],
    entrypoint: str,
    args: list[str],
    container_port: int,
) -> tuple[str, int]:
    name = f"deploy-sim-test-{uuid.uuid4().hex[:8]}"
    command = [
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "-p",
        f"127.0.0.1::{container_port}",
        "--entrypoint",
        entrypoint,
    ]
    for key, value in env.items():
        command += ["-e", f"{key}={value}"]
    result = docker(*command, image, *args)
    assert result.returncode == 0, result.stderr
    containers.append(name)
    mapped = docker("port", name, str(container_port))
    assert mapped.returncode == 0, mapped.stderr
    host_port = int(mapped.stdout.strip().splitlines()[0].rsplit(":", 1)[1])
    return name, host_port


def test_vllm_serve_command_runs_in_the_image(
    sim_image: str, network: str, containers: list[str], client: Any
) -> None:
    env = {"DEPLOY_SIM_LOAD_SECONDS": "1", "DEPLOY_SIM_TTFT_MS": "5", "DEPLOY_SIM_TPOT_MS": "1"}
    name, port = run_container(
        containers,
        network,
        sim_image,
        env,
        "vllm",
        ["serve", "some-model", "--port", "8000", "--host", "0.0.0.0"],
        8000,
    )
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return bool(client.request(url, "/health", timeout=2).status == 200)
        except OSError:
            return False

    assert client.wait_for(healthy, timeout=60, interval=0.2), docker("logs", name).stdout
    assert client.request(url, "/v1/models").json()["data"][0]["id"] == "some-model"
    reply = client.post(
        url, "/v1/completions", {"prompt": "hi", "max_tokens": 3, "ignore_eos": True}
    )
    assert reply.json()["usage"]["completion_tokens"] == 3
    stopped = docker("stop", "-t", "10", name)
    assert stopped.returncode == 0
    inspect = docker("inspect", "-f", "{{.State.ExitCode}}", name)
    assert inspect.stdout.strip() == "0"
    logs = docker("logs", name).stdout
    assert "Loading weights took 1.00 seconds" in logs
    assert "Application startup complete." in logs


def test_sglang_module_form_and_router_in_the_image(
    sim_image: str, network: str, containers: list[str], client: Any
) -> None:
    env = {"DEPLOY_SIM_LOAD_SECONDS": "0.5", "DEPLOY_SIM_WARMUP_SECONDS": "0.5"}
    engine, engine_port = run_container(
        containers,
        network,
        sim_image,
        env,
        "python3",
        [
            "-m",
            "sglang.launch_server",
            "--model-path",
            "m",
            "--host",
            "0.0.0.0",
            "--port",
            "30000",
            "--enable-metrics",
        ],
        30000,
    )
    router, router_port = run_container(
        containers,
        network,
        sim_image,
        {},
        "python3",
        [
            "-m",
            "sglang_router.launch_router",
            "--worker-urls",
            f"http://{engine}:30000",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
        ],
        8000,
    )
    engine_url = f"http://127.0.0.1:{engine_port}"
    router_url = f"http://127.0.0.1:{router_port}"

    def status(url: str, path: str) -> int:
        try:
            return int(client.request(url, path, timeout=2).status)
        except OSError:
            return 0

    assert client.wait_for(
        lambda: status(engine_url, "/health") == 200, timeout=60, interval=0.2
    ), docker("logs", engine).stdout
    assert status(engine_url, "/metrics") == 200
    assert client.wait_for(
        lambda: status(router_url, "/readiness") == 200, timeout=60, interval=0.2
    ), docker("logs", router).stdout
    reply = client.post(
        router_url, "/v1/completions", {"prompt": "x", "max_tokens": 2, "ignore_eos": True}
    )
    assert reply.json()["usage"]["completion_tokens"] == 2
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "fired up" not in docker("logs", engine).stdout:
        time.sleep(0.2)
    assert "The server is fired up and ready to roll!" in docker("logs", engine).stdout


def test_engine_program_names_are_on_path(sim_image: str) -> None:
    result = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        sim_image,
        "-c",
        "for p in vllm sglang vllm-router smg nginx; do command -v $p; done",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        f"/usr/local/bin/{name}" for name in ("vllm", "sglang", "vllm-router", "smg", "nginx")
    ]


NGINX_CONF = """\
events {}
http {
    upstream engines { least_conn; server 127.0.0.1:8001; server 127.0.0.1:8002; }
    server { listen 127.0.0.1:8080; location / { proxy_pass http://engines; proxy_buffering off; } }
}
"""

CLIENT = """\
import json, time, urllib.request
def post(body):
    request = urllib.request.Request("http://127.0.0.1:8080/v1/completions",
        data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(request, timeout=10).read().decode()
for url in ("http://127.0.0.1:8001/health", "http://127.0.0.1:8002/health",
            "http://127.0.0.1:8080/health"):
    for _ in range(600):  # both engines and nginx up (bounded: 60 s)
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            time.sleep(0.1)
print("MODELS", " ".join(json.loads(post({"prompt": "x", "max_tokens": 1}))["model"] for _ in range(4)))
print("CHUNKS", post({"prompt": "x", "max_tokens": 3, "ignore_eos": True, "stream": True}).count("data: {"))
"""


def test_nginx_in_front_of_two_engines_in_the_image(sim_image: str, tmp_path: Any) -> None:
    """nginx, as the renderer runs it (config at /etc/nginx/nginx.conf), with Debian's aiohttp."""
    (tmp_path / "nginx.conf").write_text(NGINX_CONF, encoding="utf-8")
    (tmp_path / "client.py").write_text(CLIENT, encoding="utf-8")
    script = (
        "vllm serve a --host 127.0.0.1 --port 8001 >/dev/null 2>&1 & "
        "vllm serve b --host 127.0.0.1 --port 8002 >/dev/null 2>&1 & "
        "nginx -g 'daemon off;' >/dev/null 2>&1 & "
        "python3 /probe/client.py"
    )
    result = docker(
        "run",
        "--rm",
        "--network",
        "none",
        "-e",
        "DEPLOY_SIM_LOAD_SECONDS=0.2",
        "-v",
        f"{tmp_path / 'nginx.conf'}:/etc/nginx/nginx.conf:ro",
        "-v",
        f"{tmp_path}:/probe:ro",
        "--entrypoint",
        "sh",
        sim_image,
        "-c",
        script,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert sorted(lines["MODELS"].split()) == ["a", "a", "b", "b"]
    assert lines["CHUNKS"] == "3"
