"""One scenario, run on the simulator and on the real vLLM CPU engine, compared.

The same `vllm serve` service is started by the supervisor on each image; then the things a
supervisor and a client meet are read off both: how long start-up took, `/v1/models`' fields,
the `/metrics` names, a completion, and what happens when the engine core process dies (the
exit code, how soon, the log line that says so). Where the simulator differs from the engine,
the simulator is wrong.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.endpoints import Endpoints
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
from orchestrator.state import StateStore

from .conftest import local_node
from .real_vllm import SERVED, kill_inside, tiny_model, vllm_cpu_image, vllm_spec, wait_for

pytestmark = pytest.mark.docker
__all__ = ["tiny_model", "vllm_cpu_image"]  # fixtures used here

# What deploy itself reads from an engine's /metrics (bench, the PD check, the request check).
METRICS_DEPLOY_READS = {
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:prompt_tokens_by_source_total",
    "vllm:kv_cache_usage_perc",
}


def _get(container: Any, path: str) -> str:
    script = (
        "import sys, urllib.request as u; "
        "sys.stdout.write(u.urlopen('http://127.0.0.1:8000' + sys.argv[1], timeout=30)"
        ".read().decode())"
    )
    result = container.exec_run(["python3", "-c", script, path])
    assert result.exit_code == 0, result.output[-300:]
    return str(result.output.decode())


def _complete(container: Any) -> dict[str, Any]:
    script = (
        "import json, sys, urllib.request as u; "
        "body = json.dumps({'model': sys.argv[1], 'prompt': 'hello', 'max_tokens': 4}).encode(); "
        "r = u.Request('http://127.0.0.1:8000/v1/completions', data=body, "
        "headers={'content-type': 'application/json'}); "
        "sys.stdout.write(u.urlopen(r, timeout=120).read().decode())"
    )
    result = container.exec_run(["python3", "-c", script, SERVED])
    assert result.exit_code == 0, result.output[-300:]
    return dict(json.loads(result.output))


def _scenario(
    docker_client: Any, image: str, model: Path, name: str, store: StateStore
) -> dict[str, Any]:
    # No Docker restart: what the engine does when it dies is what is compared.
    spec = vllm_spec("serve-0", image, model, restart="no")
    seen: dict[str, Any] = {}
    options = SupervisorOptions(timeout_s=600, max_restarts=0, poll_s=0.5)
    with Endpoints() as endpoints:
        supervisor = Supervisor(
            name, [spec], [local_node()], store=store, endpoints=endpoints, options=options
        )
        began = time.monotonic()
        try:
            supervisor.up()
            seen["ready_s"] = round(time.monotonic() - began, 1)
            container = supervisor.units["serve-0"].members[0].container
            card = json.loads(_get(container, "/v1/models"))["data"][0]
            seen["card"] = sorted(card)
            seen["permission"] = sorted(card["permission"][0]) if card.get("permission") else []
            seen["owned_by"] = card["owned_by"]
            names = re.findall(r"^(vllm:[a-z0-9_:]+?)(?:_bucket|_count|_sum|_created)?[{ ]",
                               _get(container, "/metrics"), re.MULTILINE)  # fmt: skip
            seen["metrics"] = sorted(set(names))
            reply = _complete(container)
            seen["completion_tokens"] = reply["usage"]["completion_tokens"]
            # The engine core dies; the API server follows. No supervisor watches here.
            killed = kill_inside(container, "EngineCore")
            assert killed, "no engine core process found"
            at = time.monotonic()
            assert wait_for(lambda: _status(container) != "running", timeout=120)
            seen["exit_after_s"] = round(time.monotonic() - at, 1)
            seen["exit_code"] = container.attrs["State"]["ExitCode"]
            logs = container.logs().decode(errors="replace")
            seen["death_line"] = next(
                (line for line in logs.splitlines() if "exited unexpectedly" in line), ""
            )
        finally:
            supervisor.teardown_created()
    return seen


def _status(container: Any) -> str:
    container.reload()
    return str(container.status)


def test_the_simulator_behaves_like_the_real_engine(
    docker_client: Any,
    sim_image: str,
    vllm_cpu_image: str,
    tiny_model: Path,
    deployment: str,
    tmp_path: Path,
) -> None:
    sim = _scenario(
        docker_client, sim_image, tiny_model, f"{deployment}s", StateStore(tmp_path / "s")
    )
    real = _scenario(
        docker_client, vllm_cpu_image, tiny_model, f"{deployment}r", StateStore(tmp_path / "r")
    )
    print(f"\nsimulator: {json.dumps(sim)}\nreal vLLM: {json.dumps(real)}")
    # The engine's death ends the API server with exit code 0, on both.
    assert real["exit_code"] == 0 and sim["exit_code"] == 0
    assert real["exit_after_s"] < 60 and sim["exit_after_s"] < 60
    marker = "MPClient: engine core exited unexpectedly"
    assert marker in real["death_line"] and marker in sim["death_line"]
    # The model card has the same fields.
    assert sim["card"] == real["card"] and sim["permission"] == real["permission"]
    assert sim["owned_by"] == real["owned_by"] == "vllm"
    # Every metric the simulator exposes exists in the engine, and deploy's reads in both.
    assert set(sim["metrics"]) <= set(real["metrics"]), set(sim["metrics"]) - set(real["metrics"])
    assert set(real["metrics"]) >= METRICS_DEPLOY_READS - {"vllm:prompt_tokens_by_source_total"}
    assert real["completion_tokens"] == sim["completion_tokens"] == 4
