"""Injected faults, as a supervisor meets them: crashes, hangs, never ready, failed starts."""

from __future__ import annotations

import http.client
import signal
import socket
import time
from typing import Any

import pytest

from orchestrator.sim.server import start_in_thread
from orchestrator.sim.settings import Faults, SimConfigError


def read_all(process: Any, timeout: float) -> str:
    process.wait(timeout=timeout)
    return str(process.stdout.read())


def test_fault_parsing() -> None:
    assert Faults.parse("crash-after=2.5") == Faults(crash_after=2.5)
    assert Faults.parse("hang") == Faults(hang_after=0.0)
    assert Faults.parse("never-ready,hang-after=3") == Faults(hang_after=3.0, never_ready=True)
    assert Faults.parse("") == Faults()
    assert Faults.parse("exit-on-start").describe() == "exit-on-start"
    with pytest.raises(SimConfigError, match="unknown simulator fault 'explode'"):
        Faults.parse("explode")
    with pytest.raises(SimConfigError, match="needs a number of seconds"):
        Faults.parse("crash-after=soon")


def test_engine_death_exits_zero_with_a_last_log_line(spawn: Any, client: Any) -> None:
    """vLLM's API server exits with code 0 when its engine dies (uvicorn shuts down in order),
    so a supervisor must not read exit 0 as a clean stop."""
    port = client.free_port()
    process = spawn(
        ["vllm", "serve", "m", "--host", "127.0.0.1", "--port", str(port)],
        {"DEPLOY_SIM_LOAD_SECONDS": "0.2", "DEPLOY_SIM_FAULT": "crash-after=4"},
    )
    url = f"http://127.0.0.1:{port}"
    assert client.wait_for(lambda: not client.connection_refused(url), timeout=10)
    assert client.request(url, "/health").status == 200
    output = read_all(process, timeout=15)
    assert process.returncode == 0
    last = output.strip().splitlines()[-1]
    assert "EngineDeadError" in last
    assert "simulated fault crash-after=4" in last
    assert client.connection_refused(url)


def test_crash_during_loading(spawn: Any) -> None:
    process = spawn(
        ["python3", "-m", "sglang.launch_server", "--model-path", "m", "--port", "0"],
        {"DEPLOY_SIM_LOAD_SECONDS": "5", "DEPLOY_SIM_FAULT": "crash-after=0.3"},
    )
    output = read_all(process, timeout=10)
    assert process.returncode == 1
    assert "Load weight end" not in output
    assert "Received sigquit from a child process" in output.strip().splitlines()[-1]


def test_exit_on_start(spawn: Any) -> None:
    process = spawn(["vllm", "serve", "m", "--port", "0"], {"DEPLOY_SIM_FAULT": "exit-on-start"})
    output = read_all(process, timeout=10)
    assert process.returncode == 1
    assert "Engine core initialization failed" in output.strip().splitlines()[-1]


def test_sigterm_stops_gracefully_with_exit_code_zero(spawn: Any, client: Any) -> None:
    port = client.free_port()
    process = spawn(
        ["vllm", "serve", "m", "--host", "127.0.0.1", "--port", str(port)],
        {"DEPLOY_SIM_LOAD_SECONDS": "0"},
    )
    url = f"http://127.0.0.1:{port}"
    assert client.wait_for(lambda: not client.connection_refused(url), timeout=10)
    process.send_signal(signal.SIGTERM)
    output = read_all(process, timeout=10)
    assert process.returncode == 0
    assert "Shutting down" in output


def test_never_ready_vllm_never_listens(client: Any) -> None:
    sim = start_in_thread("vllm", fault="never-ready", wait_ready=False)
    try:
        time.sleep(0.5)
        assert sim.alive
        assert client.connection_refused(sim.url)
        assert not sim.wait_ready(0.2)
    finally:
        assert sim.stop() == 0


def test_never_ready_sglang_answers_503_forever(client: Any) -> None:
    sim = start_in_thread("sglang", fault="never-ready", warmup_seconds=0.1, wait_ready=False)
    try:
        assert client.wait_for(lambda: not client.connection_refused(sim.url), timeout=5)
        time.sleep(0.4)
        assert client.request(sim.url, "/health").status == 503
        assert client.request(sim.url, "/ready").status == 503
        assert client.request(sim.url, "/v1/models").status == 200
    finally:
        assert sim.stop() == 0


def _times_out(url: str, path: str, timeout: float = 0.5) -> bool:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path)
        conn.getresponse()
    except TimeoutError:
        return True
    finally:
        conn.close()
    return False


def test_hang_accepts_connections_but_never_answers(client: Any) -> None:
    sim = start_in_thread("vllm", fault="hang-after=1.5")
    try:
        assert client.request(sim.url, "/health").status == 200
        assert client.wait_for(lambda: _times_out(sim.url, "/health"), timeout=5)
        lines_before = len(sim.logs)
        with socket.create_connection(("127.0.0.1", sim.port), timeout=2):
            pass  # the port still accepts
        assert _times_out(sim.url, "/v1/models")
        assert sim.alive
        # a hung process stops emitting log lines (the probes above were not logged)
        assert len(sim.logs) == lines_before
    finally:
        sim.stop()


def test_hang_freezes_a_stream_in_flight(client: Any) -> None:
    sim = start_in_thread("vllm", ttft_ms=10, tpot_ms=50, fault="hang-after=0.4")
    try:
        body = {"prompt": "x", "max_tokens": 100, "ignore_eos": True, "stream": True}
        with pytest.raises((socket.timeout, TimeoutError)):
            client.stream(sim.url, "/v1/completions", body, timeout=1.5)
    finally:
        sim.stop()


def test_crash_in_a_thread_records_exit_code_one(client: Any) -> None:
    sim = start_in_thread("sglang", fault="crash-after=1")
    url = sim.url
    assert sim.wait_exit(timeout=5) == 1
    assert "simulated fault crash-after=1" in sim.logs[-1]
    assert client.connection_refused(url)
