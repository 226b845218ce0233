"""End to end through `deploy` on a CPU node, with the real vLLM CPU engine:

`deploy up <tiny model dir> --cpus 2` -> ready -> completions and chat, streamed and not -> the
planner's KV capacity equals the engine's logged "CPU KV cache size" within 1% -> `deploy bench`
(prediction beside measurement) -> `docker kill` of the engine -> back under supervision ->
`deploy down` leaves nothing of the deployment (containers, networks, state).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Start periods cover a cold inductor compile on 2 busy cores.
UP_TIMEOUT_S = 1500
KV_LINE = re.compile(r"CPU KV cache size: ([\d,]+) tokens")


def deploy(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def labelled(kind: str, name: str) -> list[str]:
    """Containers (kind "ps -a") or networks ("network ls") of the deployment."""
    result = docker(*kind.split(), "-q", "--filter", f"label=ai.deploy.deployment={name}")
    return result.stdout.split()


def wait_for(predicate: Any, deadline_s: float, what: str) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"{what} within {deadline_s:.0f} s")


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 120) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
            return int(response.status) == 200
    except OSError:
        return False


def streamed_tokens(url: str, body: dict[str, Any]) -> int:
    """Events with text of a streamed request, which must end with [DONE]."""
    request = urllib.request.Request(
        url, data=json.dumps({**body, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    events = 0
    with urllib.request.urlopen(request, timeout=120) as response:
        for raw in response:
            line = raw.decode().strip()
            if line == "data: [DONE]":
                return events
            if line.startswith("data: "):
                events += 1
    raise AssertionError("the stream ended without [DONE]")


def test_deploy_up_serves_benches_survives_a_kill_and_down_leaves_nothing(
    tiny_model: Path, tmp_path: Path, compile_cache: Path
) -> None:
    name = f"deploy-rt-{uuid.uuid4().hex[:6]}"
    model = tmp_path / "tiny"
    shutil.copytree(tiny_model, model)
    state = tmp_path / "state"
    common = ["--state-dir", str(state)]
    # deploy mounts ~/.cache/deploy-jit/vllm/vllm as the engine's vLLM cache: point it at the
    # session's compile cache, so this engine reuses the graphs the other tests compiled.
    home = tmp_path / "home"
    (home / ".cache" / "deploy-jit" / "vllm").mkdir(parents=True)
    (compile_cache / "vllm").mkdir(exist_ok=True)
    (home / ".cache" / "deploy-jit" / "vllm" / "vllm").symlink_to(compile_cache / "vllm")
    env = {"HOME": str(home)}

    planned = deploy("plan", str(model), "--cpus", "2", "--json", timeout=120, env=env)
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    kv_planned = int(plan["cpu"]["kv_cache_tokens_per_engine"])

    started = time.monotonic()
    up = deploy(
        "up", str(model), "--cpus", "2", "--name", name, "--timeout", str(UP_TIMEOUT_S), *common,
        timeout=UP_TIMEOUT_S + 120, env=env,
    )  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        ready_s = time.monotonic() - started
        found = re.search(r"is ready: (http://\S+)", up.stdout)
        assert found, up.stdout
        url = found.group(1)
        print(f"deploy up -> ready: {ready_s:.1f} s")

        # The API, plain and streamed.
        models = http_json(f"{url}/v1/models")
        served = models["data"][0]["id"]
        completion = http_json(
            f"{url}/v1/completions",
            {"model": served, "prompt": "hello", "max_tokens": 6, "ignore_eos": True},
        )
        assert completion["usage"]["completion_tokens"] == 6
        chat = http_json(
            f"{url}/v1/chat/completions",
            {"model": served, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
             "ignore_eos": True},
        )  # fmt: skip
        assert chat["choices"][0]["message"]["role"] == "assistant"
        assert (
            streamed_tokens(
                f"{url}/v1/completions",
                {"model": served, "prompt": "hello", "max_tokens": 4, "ignore_eos": True},
            )
            >= 1
        )
        assert streamed_tokens(
            f"{url}/v1/chat/completions",
            {"model": served, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
             "ignore_eos": True},
        ) >= 1  # fmt: skip

        # KV match: the plan's capacity per engine against the engine's own line.
        containers = labelled("ps -a", name)
        assert len(containers) == 1, containers
        engine_id = containers[0]
        logs = docker("logs", engine_id)
        kv_lines = KV_LINE.findall(logs.stdout + logs.stderr)
        assert kv_lines, "the engine did not log its CPU KV cache size"
        kv_engine = int(kv_lines[-1].replace(",", ""))
        print(f"KV cache tokens: planned {kv_planned}, engine {kv_engine}")
        assert abs(kv_planned - kv_engine) <= 0.01 * kv_engine

        # deploy bench: measurement with the plan's prediction beside it.
        bench = deploy(
            "bench", name, "--concurrency", "1,2", "--requests", "6", "--input-len", "64",
            "--output-len", "16", "--json", *common, timeout=900, env=env,
        )  # fmt: skip
        assert bench.returncode == 0, bench.stdout + bench.stderr
        result = json.loads(bench.stdout)
        predicted = result.get("predicted") or []
        assert len(predicted) == 2 and all(predicted), f"no prediction per level: {predicted}"
        assert all(p["output_tokens_per_s"] > 0 for p in predicted)
        levels = result["levels"]
        assert [level["concurrency"] for level in levels] == [1, 2]
        assert all(level["completed"] >= 6 for level in levels), levels
        for level, guess in zip(levels, predicted, strict=True):
            print(
                f"bench concurrency {level['concurrency']}: output tok/s predicted "
                f"{guess['output_tokens_per_s']:.1f}, measured {level['output_throughput']:.1f}"
            )

        # A killed engine comes back under supervision (a new container, ready again).
        docker("kill", engine_id)
        killed = time.monotonic()

        def replaced() -> bool:
            current = labelled("ps", name)
            return bool(current) and current[0] != engine_id and healthy(url)

        wait_for(replaced, UP_TIMEOUT_S, "the killed engine was not back and healthy")
        print(f"killed -> healthy again: {time.monotonic() - killed:.1f} s")
        again = http_json(
            f"{url}/v1/completions",
            {"model": served, "prompt": "again", "max_tokens": 3, "ignore_eos": True},
        )
        assert again["usage"]["completion_tokens"] == 3
    finally:
        down = deploy("down", "--name", name, *common, timeout=600, env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert labelled("ps -a", name) == []
    assert labelled("network ls", name) == []
    assert not any(state.rglob(f"{name}*.json")), list(state.rglob("*"))
