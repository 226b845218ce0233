"""The engine command lines the simulator reads, its entry point, and `deploy sim`."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.sim.__main__ import main as sim_main
from orchestrator.sim.argv import parse_command
from orchestrator.sim.settings import (
    Behaviour,
    EngineSettings,
    Faults,
    SimConfigError,
    default_load_seconds,
)


def engine(argv: list[str], env: dict[str, str] | None = None) -> EngineSettings:
    program = parse_command(argv, env or {})
    assert isinstance(program, EngineSettings)
    return program


def test_vllm_serve_defaults_and_flags() -> None:
    plain = engine(["vllm", "serve", "Qwen/Qwen3-8B"])
    assert (plain.model, plain.host, plain.port, plain.headless) == (
        "Qwen/Qwen3-8B",
        "0.0.0.0",
        8000,
        False,
    )
    assert plain.served_model_names == ("Qwen/Qwen3-8B",)
    full = engine(
        [
            "/usr/local/bin/vllm",
            "serve",
            "m",
            "--tensor-parallel-size",
            "8",
            "--host=10.0.0.1",
            "--port",
            "8100",
            "--served-model-name",
            "a",
            "b",
            "--max_model_len",
            "4096",
            "--enable-expert-parallel",
            "--kv-transfer-config",
            '{"kv_connector":"NixlConnector"}',
            "--api-key",
            "k",
            "-tp",
            "8",
        ]
    )
    assert (full.host, full.port, full.max_model_len) == ("10.0.0.1", 8100, 4096)
    assert full.served_model_names == ("a", "b")
    assert full.api_key == "k"
    assert "api_key" not in full.server_args


def test_vllm_api_key_from_environment_and_headless() -> None:
    assert engine(["vllm", "serve", "m"], {"VLLM_API_KEY": "env-key"}).api_key == "env-key"
    worker = engine(["vllm", "serve", "m", "--nnodes", "2", "--node-rank", "1", "--headless"])
    assert worker.headless and not worker.http


def test_vllm_module_entry_point_and_default_model() -> None:
    assert (
        engine(["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "x"]).model == "x"
    )
    assert engine(["vllm", "serve", "--port", "9000"]).model == "Qwen/Qwen3-0.6B"


def test_arguments_for_the_vllm_image_entrypoint() -> None:
    """A service relying on the vLLM image's `vllm serve` entry point passes only arguments."""
    assert engine(["Qwen/Qwen3-8B", "--port", "8001"]).port == 8001
    assert engine(["Qwen/Qwen3-8B", "--port", "8001"]).model == "Qwen/Qwen3-8B"
    assert engine(["--model", "x", "--host", "127.0.0.1"]).host == "127.0.0.1"
    with pytest.raises(SimConfigError, match="cannot simulate 'qwen3'"):
        parse_command(["qwen3"], {})


def test_sglang_forms() -> None:
    serve = engine(["sglang", "serve", "org/M", "--host", "0.0.0.0", "--enable-metrics"])
    assert (serve.engine, serve.model, serve.host, serve.port) == (
        "sglang",
        "org/M",
        "0.0.0.0",
        30000,
    )
    assert serve.enable_metrics
    module = engine(
        [
            "python3",
            "-m",
            "sglang.launch_server",
            "--model-path",
            "org/M",
            "--disaggregation-mode",
            "decode",
            "--node-rank",
            "0",
        ]
    )
    assert module.disaggregation_mode == "decode" and not module.enable_metrics and module.http
    with pytest.raises(SimConfigError, match="--model-path"):
        parse_command(["python3", "-m", "sglang.launch_server", "--port", "1"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no command given"),
        (["ray", "start"], "cannot simulate 'ray'"),
        (["vllm", "bench"], "only 'vllm serve'"),
        (["smg", "--pd-disaggregation"], "needs the 'launch' subcommand"),
        (["vllm-router", "--port", "1"], "--worker-urls"),
        (["vllm-router", "--vllm-pd-disaggregation", "--decode", "http://d"], "--prefill"),
        (["vllm", "serve", "m", "--port", "eighty"], "not an integer"),
        (
            ["vllm", "serve", "m", "--port", "99999"],
            r"--port 99999 is not a TCP port \(0 to 65535\)",
        ),
        (["sglang", "serve", "--model-path", "m", "--port", "-1"], "--port -1 is not a TCP port"),
        (
            ["sglang", "serve", "--model-path", "m", "--disaggregation-bootstrap-port", "70000"],
            "--disaggregation-bootstrap-port 70000 is not a TCP port",
        ),
        (["vllm-router", "--worker-urls", "http://w", "--port", "65536"], "is not a TCP port"),
    ],
)
def test_unusable_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(SimConfigError, match=message):
        parse_command(argv, {})


def test_behaviour_from_environment() -> None:
    assert Behaviour.from_env({}, "vllm").load_seconds == 2.0
    assert Behaviour.from_env({}, "vllm").warmup_seconds == 0.0
    assert Behaviour.from_env({}, "sglang").warmup_seconds == 1.0
    assert Behaviour.from_env({"DEPLOY_SIM_WEIGHTS_GIB": "100"}).load_seconds == 2.0
    assert Behaviour.from_env({"DEPLOY_SIM_WEIGHTS_GIB": "1300"}).load_seconds == 6.0
    assert default_load_seconds(1.0) == 0.5
    env = {
        "DEPLOY_SIM_LOAD_SECONDS": "0.25",
        "DEPLOY_SIM_TTFT_MS": "30",
        "DEPLOY_SIM_TPOT_MS": "4",
        "DEPLOY_SIM_FAULT": "crash-after=9",
        "DEPLOY_SIM_MAX_CONCURRENCY": "16",
    }
    behaviour = Behaviour.from_env(env, "vllm")
    assert (behaviour.load_seconds, behaviour.ttft_ms, behaviour.tpot_ms) == (0.25, 30.0, 4.0)
    assert behaviour.faults == Faults(crash_after=9.0)
    assert behaviour.max_concurrency == 16
    with pytest.raises(SimConfigError, match="DEPLOY_SIM_TTFT_MS='fast' is not a number"):
        Behaviour.from_env({"DEPLOY_SIM_TTFT_MS": "fast"})


def test_entry_point_usage_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main([]) == 2
    assert "usage: python3 -m orchestrator.sim" in capsys.readouterr().out
    assert sim_main(["ray", "start"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot simulate 'ray'")


def test_headless_process_serves_nothing_and_stays_alive(spawn: Any, client: Any) -> None:
    import threading

    port = client.free_port()
    process = spawn(
        [
            "vllm",
            "serve",
            "m",
            "--headless",
            "--nnodes",
            "2",
            "--node-rank",
            "1",
            "--port",
            str(port),
        ],
        {"DEPLOY_SIM_LOAD_SECONDS": "0.2"},
    )
    lines: list[str] = []
    headless = threading.Event()

    def read() -> None:
        for line in process.stdout:
            lines.append(line)
            if "headless mode: no API server" in line:
                headless.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert headless.wait(timeout=20), "".join(lines)
    time.sleep(0.5)
    assert process.poll() is None
    assert client.connection_refused(f"http://127.0.0.1:{port}")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    reader.join(timeout=5)


def test_nginx_bad_config_exits_1_with_nginx_message(spawn: Any, tmp_path: Any) -> None:
    process = spawn(["nginx", "-c", str(tmp_path / "missing.conf"), "-g", "daemon off;"])
    output = process.communicate(timeout=10)[0]
    assert process.returncode == 1
    assert output.startswith("nginx: [emerg] open()")


def test_port_in_use_exits_1(spawn: Any, client: Any) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = spawn(["vllm", "serve", "m", "--host", "127.0.0.1", "--port", str(port)])
        output = process.communicate(timeout=10)[0]
    assert process.returncode == 1
    assert "error while attempting to bind on address" in output


def test_cli_sim_serve_rejects_a_bad_fault() -> None:
    result = CliRunner().invoke(cli, ["sim", "serve", "--fault", "explode"])
    assert result.exit_code == 2
    assert result.output.startswith("Usage") is False
    assert "error: unknown simulator fault 'explode'" in result.output


def test_cli_sim_serve_rejects_a_port_out_of_range() -> None:
    result = CliRunner().invoke(cli, ["sim", "serve", "--port", "99999"])
    assert result.exit_code == 2
    assert "Invalid value for '--port': 99999 is not in the range 0<=x<=65535." in result.output


def test_cli_sim_serve_runs_until_sigterm(client: Any, tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    port = client.free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "sim",
            "serve",
            "--engine",
            "sglang",
            "--port",
            str(port),
            "--load-seconds",
            "0.2",
            "--warmup-seconds",
            "0.2",
            "--ttft-ms",
            "1",
            "--tpot-ms",
            "1",
            "--model",
            "rehearsal",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_SIM_")},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        assert client.wait_for(
            lambda: (
                not client.connection_refused(url) and client.request(url, "/health").status == 200
            ),
            timeout=15,
        )
        assert client.request(url, "/v1/models").json()["data"][0]["id"] == "rehearsal"
        assert client.request(url, "/metrics").status == 200
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=10)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"simulating sglang model 'rehearsal' at http://127.0.0.1:{port}" in output
