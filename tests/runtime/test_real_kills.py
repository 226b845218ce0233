"""Killing any rank of a real vLLM instance under supervision: rank 0, a follower, one DP engine.

Each kill is detected within a stated time and the instance restarts whole, once, and is
healthy after (a completion through its entry URL answers). The measured detection and
restart times are printed (run with `-s` to see them).

Two containers stand for two nodes (`--nnodes 2`, `--headless` on rank 1) on the
deployment's Docker network; DP2 runs two engine cores behind one API server.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from orchestrator.docker.endpoints import Endpoints
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
from orchestrator.state import StateStore

from .conftest import local_node
from .real_vllm import (
    SERVED,
    Timeline,
    kill_inside,
    supervised,
    tiny_model,
    vllm_cpu_image,
    vllm_spec,
    wait_for,
)

pytestmark = pytest.mark.docker
__all__ = ["tiny_model", "vllm_cpu_image"]  # fixtures used here

# Stated bounds. A container's death is an event: seen within seconds. A DP engine whose
# death leaves its API server up is found by the request check (30 s cadence, two failures).
DETECT_DEATH_S = 15.0
DETECT_LIE_S = 120.0
RESTART_S = 600.0  # a cold start of the group on two busy cores
QUIET_AFTER_S = 30.0  # no second restart follows the first


def _complete(url: str) -> int:
    body = json.dumps({"model": SERVED, "prompt": "hello", "max_tokens": 4}).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"content-type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=120) as response:
        return int(json.loads(response.read())["usage"]["completion_tokens"])


def _kill_and_measure(
    supervisor: Supervisor, timeline: Timeline, services: list[str], kill: Any, what: str
) -> tuple[float, float]:
    unit = next(iter(u for u in supervisor.units.values() if u.members[0].spec.rank == 0))
    restarts = unit.total_restarts
    at = time.monotonic()
    kill()
    assert wait_for(lambda: unit.total_restarts > restarts, timeout=DETECT_LIE_S), (
        f"{what}: not detected in {DETECT_LIE_S:.0f}s"
    )
    detected = (timeline.first("restart", at) or time.monotonic()) - at
    assert wait_for(
        lambda: unit.state == "ready" and timeline.all_ready(services), timeout=RESTART_S
    ), f"{what}: not ready again in {RESTART_S:.0f}s: {timeline.events[-3:]}"
    restarted = time.monotonic() - at
    # Once: no further restart while it settles.
    time.sleep(QUIET_AFTER_S)  # a window of observation, not a wait for an event
    assert unit.total_restarts == restarts + 1, timeline.events[-5:]
    # Readiness may waver on a loaded host (a slow health answer is "not ready", never a
    # restart); it comes back without one.
    assert wait_for(lambda: unit.state == "ready", timeout=120), [
        (m.spec.name, m.verdict, m.tracker.detail) for m in unit.members
    ]
    assert unit.total_restarts == restarts + 1, timeline.events[-5:]
    print(f"\nTIMING {what}: detected after {detected:.1f}s, ready again after {restarted:.1f}s")
    return detected, restarted


def test_killing_rank0_or_a_follower_restarts_the_group_whole_once(
    docker_client: Any,
    vllm_cpu_image: str,
    tiny_model: Path,
    deployment: str,
    state_store: StateStore,
) -> None:
    group = ["--tensor-parallel-size", "2", "--nnodes", "2", "--master-addr", "serve-0-rank0",
             "--master-port", "29501"]  # fmt: skip
    rank0 = vllm_spec(
        "serve-0-rank0", vllm_cpu_image, tiny_model, group="serve-0", bind="0",
        args=[*group, "--node-rank", "0"],
    )  # fmt: skip
    rank1 = vllm_spec(
        "serve-0-rank1", vllm_cpu_image, tiny_model, group="serve-0", bind="1", rank=1,
        http=False, peer=("serve-0-rank0", 29501), args=[*group, "--node-rank", "1", "--headless"],
    )  # fmt: skip
    timeline = Timeline()
    options = SupervisorOptions(timeout_s=RESTART_S, max_restarts=3, poll_s=0.5)
    with Endpoints() as endpoints:
        supervisor = Supervisor(
            deployment, [rank0, rank1], [local_node()], store=state_store,
            endpoints=endpoints, options=options, reporter=timeline,
        )  # fmt: skip
        began = time.monotonic()
        url = supervisor.up()
        assert url is not None
        print(f"\nTIMING two-container TP2 start to ready: {time.monotonic() - began:.1f}s")
        assert _complete(url) == 4
        names = ["serve-0-rank0", "serve-0-rank1"]

        def container(service: str) -> Any:
            unit = supervisor.units["serve-0"]
            return next(m.container for m in unit.members if m.spec.name == service)

        for victim in names:
            with supervised(supervisor):
                detected, _ = _kill_and_measure(
                    supervisor, timeline, names, lambda v=victim: container(v).kill(),
                    f"kill {victim}",
                )  # fmt: skip
                assert detected < DETECT_DEATH_S
            assert _complete(url) == 4
        supervisor.teardown_created()


def test_killing_one_dp_engine_restarts_the_instance_once(
    docker_client: Any,
    vllm_cpu_image: str,
    tiny_model: Path,
    deployment: str,
    state_store: StateStore,
) -> None:
    spec = vllm_spec(
        "serve-0", vllm_cpu_image, tiny_model, bind="0|1", args=["--data-parallel-size", "2"]
    )
    timeline = Timeline()
    options = SupervisorOptions(timeout_s=RESTART_S, max_restarts=3, poll_s=0.5)
    with Endpoints() as endpoints:
        supervisor = Supervisor(
            deployment, [spec], [local_node()], store=state_store, endpoints=endpoints,
            options=options, reporter=timeline,
        )  # fmt: skip
        began = time.monotonic()
        url = supervisor.up()
        assert url is not None
        print(f"\nTIMING DP2 start to ready: {time.monotonic() - began:.1f}s")
        assert _complete(url) == 4
        member = supervisor.units["serve-0"].members[0]
        with supervised(supervisor):
            killed: list[str] = []
            _kill_and_measure(
                supervisor, timeline, ["serve-0"],
                lambda: killed.extend(kill_inside(member.container, "EngineCore_DP1")),
                "kill one DP engine (EngineCore_DP1)",
            )  # fmt: skip
            assert len(killed) == 1
        assert _complete(url) == 4
        supervisor.teardown_created()
