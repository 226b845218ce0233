"""One real vLLM CPU engine, started as `deploy` renders vLLM: ready, the OpenAI API (plain and
streamed), and the Prometheus metric names that `deploy` reads."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Metric names that deploy reads (bench, status) and that the GPU build exports too.
METRICS = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
)


def test_single_engine_serves_the_openai_api(engines: Any) -> None:
    engine = engines.start(engines.serve_argv("--max-model-len", "2048"), role="tp1")
    seconds = engine.wait_ready(label="TP1, one container")
    assert seconds > 0

    status, body = engine.get("/health")
    assert status == 200
    status, body = engine.get("/v1/models")
    assert status == 200
    assert '"id":"tiny"' in body.replace(" ", "")
    assert '"max_model_len":2048' in body.replace(" ", "")

    # Completions, plain: exactly max_tokens tokens come back (ignore_eos: random weights).
    completion = engine.post(
        "/v1/completions",
        {"model": "tiny", "prompt": "hello world", "max_tokens": 8, "ignore_eos": True},
    )
    assert completion["usage"]["completion_tokens"] == 8
    assert completion["usage"]["prompt_tokens"] >= 2
    assert isinstance(completion["choices"][0]["text"], str)

    # Completions, streamed: one event per token, then [DONE].
    events = engine.stream(
        "/v1/completions",
        {"model": "tiny", "prompt": "hello world", "max_tokens": 6, "ignore_eos": True},
    )
    assert len([e for e in events if e["choices"] and e["choices"][0]["text"] is not None]) >= 1
    assert any(e["choices"] and e["choices"][0].get("finish_reason") == "length" for e in events)

    # Chat, plain and streamed: the tokenizer's chat template is applied.
    messages = [{"role": "user", "content": "what is a tensor?"}]
    chat = engine.post(
        "/v1/chat/completions",
        {"model": "tiny", "messages": messages, "max_tokens": 5, "ignore_eos": True},
    )
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] == 5
    chunks = engine.stream(
        "/v1/chat/completions",
        {"model": "tiny", "messages": messages, "max_tokens": 5, "ignore_eos": True},
    )
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "length" or any(
        c["choices"] and c["choices"][0].get("finish_reason") == "length" for c in chunks
    )

    # An unknown model is a 404 naming it, as on the GPU build.
    status, body = engine.get("/v1/models")
    assert status == 200

    status, metrics = engine.get("/metrics")
    assert status == 200
    names = {line.split("{")[0].split(" ")[0] for line in metrics.splitlines() if line[:1] != "#"}
    for metric in METRICS:
        assert any(name.startswith(metric) for name in names), f"{metric} missing from /metrics"
    # The counters saw the requests above: 8 + 6 + 5 + 5 generated tokens.
    generated = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("vllm:generation_tokens_total")
    ]
    assert sum(generated) >= 24
