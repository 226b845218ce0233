"""Every parallel shape `deploy` renders for vLLM, on the real CPU engine.

One container: TP2, DP2 and PP2 (the ranks bound to their own cores with
VLLM_CPU_OMP_THREADS_BIND="0|1"). Two containers on one Docker network as two nodes: TP2 and PP2
across nodes (`--nnodes/--node-rank/--master-addr`, `--headless` on the follower) and DP2 with a
headless rank (`--data-parallel-address/--data-parallel-rpc-port/--data-parallel-start-rank`).

The slowest tests of the folder (each shape compiles its own graphs once; the session's compile
cache serves the two-node forms of the same shape), so they are marked slow; CI runs them.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

MASTER_PORT = "29500"
DP_RPC_PORT = "13345"


def test_tp2_in_one_container(engines: Any) -> None:
    engine = engines.start(
        engines.serve_argv("--tensor-parallel-size", "2", "--max-model-len", "2048"),
        role="tp2",
        threads_bind="0|1",
    )
    engine.wait_ready(label="TP2, one container")
    engine.serves()
    assert "world_size=2" in engine.logs()


def test_dp2_in_one_container(engines: Any) -> None:
    engine = engines.start(
        engines.serve_argv("--data-parallel-size", "2", "--max-model-len", "2048"),
        role="dp2",
        threads_bind="0|1",
    )
    engine.wait_ready(label="DP2, one container")
    # Several requests, so both DP engines take some.
    for _ in range(4):
        engine.serves()
    logs = engine.logs()
    assert "EngineCore_DP0" in logs and "EngineCore_DP1" in logs


def test_pp2_in_one_container(engines: Any) -> None:
    engine = engines.start(
        engines.serve_argv("--pipeline-parallel-size", "2", "--max-model-len", "2048"),
        role="pp2",
        threads_bind="0|1",
    )
    engine.wait_ready(label="PP2, one container")
    # PP passes /health in eager mode too and dies on the first request: serve several.
    for _ in range(3):
        engine.serves()
    assert engine.exit_code() is None


def _two_nodes(engines: Any, shape: list[str], label: str) -> None:
    network = engines.network()
    common = [*shape, "--nnodes", "2", "--master-port", MASTER_PORT, "--max-model-len", "2048"]
    # Node addresses, as deploy renders them: the leader's own, then the leader's for the
    # follower.
    head = engines.start(
        engines.own_address(
            engines.serve_argv(*common, "--node-rank", "0", "--master-addr", engines.SELF)
        ),
        role="node0",
        network=network,
        threads_bind="0",
    )
    leader = head.address()
    follower = engines.start(
        engines.serve_argv(
            *common, "--node-rank", "1", "--master-addr", leader, "--headless", http_api=False
        ),
        role="node1",
        network=network,
        threads_bind="1",
        publish=False,
    )
    head.wait_ready(label=label)
    head.serves()
    assert follower.exit_code() is None, follower.logs()[-2000:]


def test_tp2_across_two_nodes(engines: Any) -> None:
    _two_nodes(engines, ["--tensor-parallel-size", "2"], "TP2, two nodes")


def test_pp2_across_two_nodes(engines: Any) -> None:
    _two_nodes(engines, ["--pipeline-parallel-size", "2"], "PP2, two nodes")


def test_dp2_with_a_headless_rank_on_a_second_node(engines: Any) -> None:
    network = engines.network()
    common = [
        "--data-parallel-size", "2",
        "--data-parallel-size-local", "1",
        "--data-parallel-rpc-port", DP_RPC_PORT,
        "--max-model-len", "2048",
    ]  # fmt: skip
    head = engines.start(
        engines.own_address(engines.serve_argv(*common, "--data-parallel-address", engines.SELF)),
        role="dp-node0",
        network=network,
        threads_bind="0",
    )
    leader = head.address()
    follower = engines.start(
        engines.serve_argv(
            *common,
            "--data-parallel-address",
            leader,
            "--data-parallel-start-rank",
            "1",
            "--headless",
            http_api=False,
        ),
        role="dp-node1",
        network=network,
        threads_bind="1",
        publish=False,
    )
    head.wait_ready(label="DP2, two nodes (headless rank)")
    for _ in range(4):
        head.serves()
    assert follower.exit_code() is None, follower.logs()[-2000:]
