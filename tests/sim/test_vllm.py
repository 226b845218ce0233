"""The simulated vLLM server as a supervisor and an OpenAI client meet it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.sim.server import SimHandle, start_in_thread
from orchestrator.sim.tokens import count_text_tokens


@pytest.fixture(scope="module")
def vllm() -> Iterator[SimHandle]:
    with start_in_thread(
        "vllm", model="org/Model-7B", served_model_name="m7", ttft_ms=5, tpot_ms=1, eos_tokens=8
    ) as sim:
        yield sim


def test_port_refuses_connections_while_loading_then_serves(client: Any) -> None:
    sim = start_in_thread("vllm", load_seconds=1.0, wait_ready=False)
    try:
        started = time.monotonic()
        assert sim.port is not None  # bound at once, so the port is known
        assert client.connection_refused(sim.url)
        assert client.wait_for(lambda: not client.connection_refused(sim.url), timeout=5)
        assert time.monotonic() - started >= 0.9
        assert client.request(sim.url, "/health").status == 200
        assert any("Loading weights took 1.00 seconds" in line for line in sim.logs)
        assert any("Application startup complete." in line for line in sim.logs)
    finally:
        assert sim.stop() == 0


def test_models_lists_served_names_with_the_context_length(vllm: SimHandle, client: Any) -> None:
    reply = client.request(vllm.url, "/v1/models")
    assert reply.status == 200
    data = reply.json()["data"]
    assert [m["id"] for m in data] == ["m7"]
    assert data[0]["root"] == "org/Model-7B"
    assert data[0]["owned_by"] == "vllm"
    assert data[0]["max_model_len"] == 32768


def test_health_ping_version_load(vllm: SimHandle, client: Any) -> None:
    assert client.request(vllm.url, "/health").status == 200
    assert client.request(vllm.url, "/ping").status == 200
    assert client.request(vllm.url, "/version").json() == {"version": "0.33.0"}
    assert client.request(vllm.url, "/load").json() == {"server_load": 0}
    # SGLang-only endpoints are not there
    assert client.request(vllm.url, "/ready").status == 404


def test_completion_non_streaming_counts_usage(vllm: SimHandle, client: Any) -> None:
    prompt = "one two three fourfive!"  # ceil(len/4) per word: 1 + 1 + 2 + 3
    reply = client.post(
        vllm.url, "/v1/completions", {"model": "m7", "prompt": prompt, "max_tokens": 5}
    )
    assert reply.status == 200
    body = reply.json()
    assert body["object"] == "text_completion"
    assert body["model"] == "m7"
    assert body["id"].startswith("cmpl-")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert count_text_tokens(choice["text"]) == 5
    assert body["usage"] == {
        "prompt_tokens": count_text_tokens(prompt),
        "completion_tokens": 5,
        "total_tokens": count_text_tokens(prompt) + 5,
        "prompt_tokens_details": None,
    }
    assert body["usage"]["prompt_tokens"] == 7


def test_prompt_as_token_ids_counts_ids(vllm: SimHandle, client: Any) -> None:
    reply = client.post(
        vllm.url, "/v1/completions", {"prompt": [1, 2, 3, 4, 5, 6], "max_tokens": 2}
    )
    assert reply.json()["usage"]["prompt_tokens"] == 6


def test_without_ignore_eos_the_model_stops_early(vllm: SimHandle, client: Any) -> None:
    reply = client.post(vllm.url, "/v1/completions", {"prompt": "hi", "max_tokens": 50})
    body = reply.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 8  # eos_tokens of the fixture


@pytest.mark.parametrize("max_tokens", [1, 7, 50])
def test_ignore_eos_gives_exactly_max_tokens(vllm: SimHandle, client: Any, max_tokens: int) -> None:
    body = {
        "prompt": "hi",
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, events = client.stream(vllm.url, "/v1/completions", body)
    assert status == 200
    assert events[-1].data == "[DONE]"
    chunks = [e.json() for e in events[:-1]]
    texts = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert len(texts) == max_tokens
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == max_tokens
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"


def test_chat_streaming_role_first_then_content_and_usage(vllm: SimHandle, client: Any) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]
    body = {
        "model": "m7",
        "messages": messages,
        "max_tokens": 4,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    status, events = client.stream(vllm.url, "/v1/chat/completions", body)
    assert status == 200
    chunks = [e.json() for e in events if e.data != "[DONE]"]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [c["choices"][0]["delta"]["content"] for c in chunks[1:] if c["choices"]]
    assert len(contents) == 4
    # 2 messages * 4 template tokens + 2 + "be brief" (1 + 2) + "hello" (2)
    assert chunks[-1]["usage"]["prompt_tokens"] == 2 * 4 + 2 + 3 + 2
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert events[-1].data == "[DONE]"


def test_chat_non_streaming(vllm: SimHandle, client: Any) -> None:
    body = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "a b"}]}],
        "max_completion_tokens": 3,
        "ignore_eos": True,
    }
    reply = client.post(vllm.url, "/v1/chat/completions", body)
    out = reply.json()
    assert out["object"] == "chat.completion"
    assert out["choices"][0]["message"]["role"] == "assistant"
    assert count_text_tokens(out["choices"][0]["message"]["content"]) == 3
    assert out["usage"]["completion_tokens"] == 3


def test_streaming_without_include_usage_has_no_usage_chunk(vllm: SimHandle, client: Any) -> None:
    _status, events = client.stream(
        vllm.url, "/v1/completions", {"prompt": "x", "max_tokens": 3, "stream": True}
    )
    chunks = [e.json() for e in events if e.data != "[DONE]"]
    assert len(chunks) == 3
    assert all("usage" not in c for c in chunks)


def test_unknown_model_is_404_like_vllm(vllm: SimHandle, client: Any) -> None:
    reply = client.post(vllm.url, "/v1/completions", {"model": "other", "prompt": "x"})
    assert reply.status == 404
    assert reply.json()["error"]["message"] == "The model `other` does not exist."


def test_bad_requests_are_400(vllm: SimHandle, client: Any) -> None:
    too_long = client.post(vllm.url, "/v1/completions", {"prompt": "x", "max_tokens": 40000})
    assert too_long.status == 400
    assert "maximum context length is 32768 tokens" in too_long.json()["error"]["message"]
    assert client.post(vllm.url, "/v1/chat/completions", {"messages": []}).status == 400
    options = {"prompt": "x", "stream_options": {"include_usage": True}}
    assert client.post(vllm.url, "/v1/completions", options).status == 400


def test_metrics_have_vllm_names_and_count_tokens(client: Any) -> None:
    with start_in_thread("vllm", served_model_name="mm", ttft_ms=2, tpot_ms=1) as sim:
        client.post(
            sim.url, "/v1/completions", {"prompt": "a b c", "max_tokens": 4, "ignore_eos": True}
        )
        text = client.request(sim.url, "/metrics").body.decode()
    labels = 'engine="0",model_name="mm"'
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert re.search(rf"^{name}{{{labels}}} [0-9.e+-]+$", text, re.M), name
    assert f"vllm:prompt_tokens_total{{{labels}}} 3.0" in text
    assert f"vllm:generation_tokens_total{{{labels}}} 4.0" in text
    assert "# TYPE vllm:time_to_first_token_seconds histogram" in text
    assert f'vllm:time_to_first_token_seconds_bucket{{{labels},le="+Inf"}} 1.0' in text
    assert f"vllm:time_to_first_token_seconds_count{{{labels}}} 1.0" in text
    assert f'vllm:request_success_total{{{labels},finished_reason="length"}} 1.0' in text
    assert "# TYPE vllm:inter_token_latency_seconds histogram" in text
    assert "# TYPE vllm:e2e_request_latency_seconds histogram" in text


def test_running_and_waiting_gauges_during_load(client: Any) -> None:
    import threading

    with start_in_thread("vllm", ttft_ms=300, tpot_ms=1, max_concurrency=1) as sim:
        body = {"prompt": "x", "max_tokens": 1}
        threads = [
            threading.Thread(target=client.post, args=(sim.url, "/v1/completions", body))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        assert client.wait_for(
            lambda: (
                "vllm:num_requests_waiting{"
                in (m := client.request(sim.url, "/metrics").body.decode())
                and re.search(r"^vllm:num_requests_waiting\{.*\} 2\.0$", m, re.M) is not None
            ),
            timeout=3,
        )
        metrics = client.request(sim.url, "/metrics").body.decode()
        assert re.search(r"^vllm:num_requests_running\{.*\} 1\.0$", metrics, re.M)
        assert client.request(sim.url, "/load").json() == {"server_load": 3}
        for thread in threads:
            thread.join(timeout=5)


def test_api_key_protects_v1_only(client: Any) -> None:
    with start_in_thread("vllm", api_key="s3cret", ttft_ms=1, tpot_ms=1) as sim:
        assert client.request(sim.url, "/v1/models").status == 401
        assert client.request(sim.url, "/v1/models").json() == {"error": "Unauthorized"}
        wrong = {"Authorization": "Bearer nope"}
        assert client.request(sim.url, "/v1/models", headers=wrong).status == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.request(sim.url, "/v1/models", headers=good).status == 200
        body = {"prompt": "x", "max_tokens": 1}
        assert client.post(sim.url, "/v1/completions", body).status == 401
        assert client.post(sim.url, "/v1/completions", body, headers=good).status == 200
        assert client.request(sim.url, "/health").status == 200
        assert client.request(sim.url, "/metrics").status == 200


def test_api_key_never_appears_in_logs() -> None:
    with start_in_thread("vllm", api_key="s3cret-value") as sim:
        pass
    assert not any("s3cret-value" in line for line in sim.logs)


def test_weights_size_sets_loading_time_and_log_lines(client: Any) -> None:
    """The supervisor passes DEPLOY_SIM_WEIGHTS_GIB; loading takes 2 s per 100 GiB."""
    from orchestrator.sim.server import start_command_in_thread

    env = {"DEPLOY_SIM_WEIGHTS_GIB": "40", "DEPLOY_SIM_TTFT_MS": "1"}
    started = time.monotonic()
    with start_command_in_thread(
        ["vllm", "serve", "m", "--host", "127.0.0.1", "--port", "0"], env=env
    ) as sim:
        waited = time.monotonic() - started
        assert client.request(sim.url, "/health").status == 200
    assert 0.75 <= waited < 5
    assert sim.behaviour.load_seconds == 0.8
    assert any(
        "Model loading took 40.0000 GiB memory and 0.800000 seconds" in line for line in sim.logs
    )
