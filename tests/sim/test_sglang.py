"""The simulated SGLang server: refused while loading, 503 while warming up, then its API."""

from __future__ import annotations

import re
import time
from typing import Any

from orchestrator.sim.server import start_command_in_thread, start_in_thread
from orchestrator.sim.settings import Behaviour


def test_refused_then_503_during_warmup_then_ready(client: Any) -> None:
    sim = start_in_thread("sglang", load_seconds=0.6, warmup_seconds=0.8, wait_ready=False)
    try:
        assert client.connection_refused(sim.url)
        assert client.wait_for(lambda: not client.connection_refused(sim.url), timeout=5)
        listening_at = time.monotonic()
        # warming up: probes say 503, metadata already answers (so it is no readiness probe)
        assert client.request(sim.url, "/health").status == 503
        assert client.request(sim.url, "/ready").status == 503
        assert client.request(sim.url, "/health_generate").status == 503
        assert client.request(sim.url, "/v1/models").status == 200
        assert client.request(sim.url, "/server_info").json()["status"] == "Starting"
        assert client.wait_for(lambda: client.request(sim.url, "/health").status == 200, timeout=5)
        assert time.monotonic() - listening_at >= 0.6
        assert client.request(sim.url, "/ready").status == 200
        assert client.request(sim.url, "/health_generate").status == 200
        assert client.request(sim.url, "/ping").status == 200
        assert any("The server is fired up and ready to roll!" in line for line in sim.logs)
    finally:
        assert sim.stop() == 0


def test_skip_server_warmup_is_ready_at_once(client: Any) -> None:
    behaviour = Behaviour(warmup_seconds=30)
    argv = [
        "python3",
        "-m",
        "sglang.launch_server",
        "--model-path",
        "m",
        "--port",
        "0",
        "--skip-server-warmup",
    ]
    with start_command_in_thread(argv, behaviour=behaviour, timeout=5) as sim:
        assert client.request(sim.url, "/health").status == 200


def test_metadata_endpoints(client: Any) -> None:
    argv = [
        "sglang",
        "serve",
        "org/Qwen-7B",
        "--served-model-name",
        "qwen",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--tp-size",
        "2",
        "--context-length",
        "4096",
    ]
    with start_command_in_thread(argv, behaviour=Behaviour()) as sim:
        models = client.request(sim.url, "/v1/models").json()["data"]
        assert [(m["id"], m["owned_by"], m["max_model_len"]) for m in models] == [
            ("qwen", "sglang", 4096)
        ]
        info = client.request(sim.url, "/model_info").json()
        assert info["model_path"] == "org/Qwen-7B"
        assert info["is_generation"] is True
        server = client.request(sim.url, "/server_info").json()
        assert server["tp_size"] == "2"
        assert server["port"] == sim.port
        assert server["version"] == "0.5.23"
        assert server["status"] == "Up"
        assert client.request(sim.url, "/get_server_info").status == 200
        # no /metrics without --enable-metrics, as in SGLang
        assert client.request(sim.url, "/metrics").status == 404


def test_default_host_is_loopback_and_default_port_30000() -> None:
    from orchestrator.sim.argv import parse_command

    program = parse_command(["python3", "-m", "sglang.launch_server", "--model-path", "m"])
    assert (program.host, program.port) == ("127.0.0.1", 30000)  # type: ignore[union-attr]


def test_completions_chat_and_native_generate(client: Any) -> None:
    with start_in_thread("sglang", ttft_ms=2, tpot_ms=1) as sim:
        reply = client.post(
            sim.url, "/v1/completions", {"prompt": "a b", "max_tokens": 6, "ignore_eos": True}
        )
        body = reply.json()
        assert body["usage"]["completion_tokens"] == 6
        assert "stop_reason" not in body["choices"][0]  # a vLLM-only field
        status, events = client.stream(
            sim.url,
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        assert status == 200
        assert events[-2].json()["usage"]["completion_tokens"] == 3
        native = client.post(
            sim.url,
            "/generate",
            {"text": "hello there", "sampling_params": {"max_new_tokens": 4, "ignore_eos": True}},
        )
        meta = native.json()["meta_info"]
        assert meta["completion_tokens"] == 4
        assert meta["prompt_tokens"] == 2 + 2  # "hello", "there": 5 characters each
        assert meta["finish_reason"] == {"type": "length", "length": 4}
        status, events = client.stream(
            sim.url,
            "/generate",
            {
                "input_ids": [1, 2, 3],
                "sampling_params": {"max_new_tokens": 2, "ignore_eos": True},
                "stream": True,
            },
        )
        assert [e.data for e in events][-1] == "[DONE]"
        last = events[-2].json()
        assert last["meta_info"]["completion_tokens"] == 2
        assert last["meta_info"]["prompt_tokens"] == 3


def test_metrics_with_enable_metrics_use_sglang_names(client: Any) -> None:
    with start_in_thread("sglang", served_model_name="sg", ttft_ms=2, tpot_ms=1) as sim:
        client.post(
            sim.url, "/v1/completions", {"prompt": "a", "max_tokens": 3, "ignore_eos": True}
        )
        text = client.request(sim.url, "/metrics").body.decode()
    for name in (
        "sglang:num_running_reqs",
        "sglang:num_queue_reqs",
        "sglang:token_usage",
        "sglang:prompt_tokens_total",
        "sglang:generation_tokens_total",
    ):
        assert re.search(rf'^{name}{{model_name="sg",[^}}]*}} [0-9.e+-]+$', text, re.M), name
    assert re.search(r"^sglang:generation_tokens_total\{.*\} 3\.0$", text, re.M)
    assert "# TYPE sglang:time_to_first_token_seconds histogram" in text
    assert "vllm:" not in text


def test_api_key_exempts_health_ready_metrics_only(client: Any) -> None:
    with start_in_thread("sglang", api_key="k") as sim:
        for path in ("/health", "/ready", "/metrics", "/health_generate"):
            assert client.request(sim.url, path).status == 200, path
        for path in ("/v1/models", "/model_info", "/server_info"):
            assert client.request(sim.url, path).status == 401, path
        auth = {"Authorization": "Bearer k"}
        assert client.request(sim.url, "/model_info", headers=auth).status == 200


def test_prefill_mode_listens_on_the_bootstrap_port(client: Any) -> None:
    argv = [
        "sglang",
        "serve",
        "--model-path",
        "m",
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--disaggregation-mode",
        "prefill",
        "--disaggregation-bootstrap-port",
        "0",
    ]
    with start_command_in_thread(argv, behaviour=Behaviour()) as sim:
        assert sim.bootstrap_port is not None and sim.bootstrap_port != sim.port
        bootstrap = f"http://127.0.0.1:{sim.bootstrap_port}"
        assert client.request(bootstrap, "/health").status == 200
        info = client.request(sim.url, "/server_info").json()
        assert info["disaggregation_mode"] == "prefill"


def test_node_rank_one_serves_no_http_but_stays_alive() -> None:
    argv = [
        "sglang",
        "serve",
        "--model-path",
        "m",
        "--port",
        "0",
        "--nnodes",
        "2",
        "--node-rank",
        "1",
    ]
    with start_command_in_thread(argv, behaviour=Behaviour()) as sim:
        assert sim.port is None
        assert sim.alive
        time.sleep(0.3)
        assert sim.alive
    assert sim.exit_code == 0
