"""A multi-rank instance fails in the simulator as vLLM's does: rank 0's `/health` stays 200 after
a follower died while its requests fail with a 500; a follower whose leader died does not exit;
the DP RPC port closes once the engines are up; an engine-core death ends the API server with
exit code 0."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any

from orchestrator.sim.server import start_command_in_thread
from orchestrator.sim.settings import Behaviour
from tests.conftest import free_ports


def _free_port() -> int:
    return free_ports(1)[0]


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


FAST = Behaviour(load_seconds=0.2, ttft_ms=1, tpot_ms=1)


def _group(store: int) -> list[str]:
    return ["--tensor-parallel-size", "2", "--nnodes", "2", "--master-addr", "127.0.0.1",
            "--master-port", str(store)]  # fmt: skip


def test_rank0_health_stays_200_after_a_follower_dies_and_requests_fail(client: Any) -> None:
    store = _free_port()
    leader = start_command_in_thread(
        ["vllm", "serve", "m", "--port", "0", "--host", "127.0.0.1", *_group(store),
         "--node-rank", "0"], behaviour=FAST,
    )  # fmt: skip
    follower = start_command_in_thread(
        ["vllm", "serve", "m", *_group(store), "--node-rank", "1", "--headless"], behaviour=FAST
    )
    try:
        body = {"model": "m", "prompt": "hi", "max_tokens": 2}
        assert client.wait_for(lambda: len(leader.logs) > 0 and _connects(store), timeout=10)
        # The follower joined: a request is served.
        assert client.wait_for(
            lambda: (
                client.request(leader.url, "/v1/completions", method="POST", body=body).status
                == 200
            ),
            timeout=10,
        )
        assert follower.stop() == 0
        # Nothing tells rank 0 until a request meets the lost peer: health stays 200.
        assert client.request(leader.url, "/health").status == 200
        replies: list[Any] = []

        def fails() -> bool:
            replies.append(client.request(leader.url, "/v1/completions", method="POST", body=body))
            return bool(replies[-1].status == 500)

        assert client.wait_for(fails, timeout=10)
        assert b"EngineCore encountered an issue" in replies[-1].body
        # The engine died of it, and the API server exits 0, as vLLM's does.
        assert leader.wait_exit(timeout=10) == 0
        assert any("EngineDeadError" in line for line in leader.logs)
    finally:
        leader.stop()
        follower.stop()


def test_a_follower_whose_leader_died_does_not_exit(client: Any) -> None:
    store = _free_port()
    leader = start_command_in_thread(
        ["vllm", "serve", "m", "--port", "0", *_group(store), "--node-rank", "0"], behaviour=FAST
    )
    follower = start_command_in_thread(
        ["vllm", "serve", "m", *_group(store), "--node-rank", "1", "--headless"], behaviour=FAST
    )
    try:
        assert client.wait_for(_connects_to(store), timeout=10)
        leader.stop()
        assert client.wait_for(
            lambda: any("does not exit by itself" in line for line in follower.logs), timeout=10
        )
        assert follower.alive and follower.wait_exit(timeout=3) is None
    finally:
        follower.stop()


def _connects_to(port: int) -> Any:
    return lambda: _connects(port)


def test_the_dp_rpc_port_closes_after_start_up(client: Any) -> None:
    rpc = _free_port()
    leader = start_command_in_thread(
        ["vllm", "serve", "m", "--port", "0", "--data-parallel-size", "2",
         "--data-parallel-size-local", "1", "--data-parallel-address", "127.0.0.1",
         "--data-parallel-rpc-port", str(rpc)], behaviour=Behaviour(load_seconds=2.0),
        wait_ready=False,
    )  # fmt: skip
    try:
        assert client.wait_for(lambda: _connects(rpc), timeout=5)  # the handshake window
        assert leader.wait_ready(timeout=15)
        assert client.wait_for(lambda: not _connects(rpc), timeout=5)
    finally:
        leader.stop()


def test_an_engine_core_death_ends_the_api_server_with_exit_code_0(spawn: Any, client: Any) -> None:
    port = client.free_port()
    process = spawn(
        ["vllm", "serve", "m", "--host", "127.0.0.1", "--port", str(port),
         "--data-parallel-size", "2"], {"DEPLOY_SIM_LOAD_SECONDS": "0.2"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    assert client.wait_for(lambda: not client.connection_refused(url), timeout=20)
    cores = subprocess.run(
        ["pgrep", "-f", "-P", str(process.pid), "EngineCore_DP1"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    assert len(cores) == 1
    started = time.monotonic()
    subprocess.run(["kill", "-9", cores[0]], check=True)
    assert process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    output = str(process.stdout.read())
    assert "MPClient: engine core exited unexpectedly" in output
    assert "EngineDeadError: EngineCore encountered an issue" in output
