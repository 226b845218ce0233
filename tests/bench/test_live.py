"""The client against a real streaming server on 127.0.0.1 with known timing."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest

from orchestrator.bench.options import BenchOptions
from orchestrator.bench.runner import BenchResult, run_bench
from orchestrator.errors import BenchError


def close_to(measured: float, expected: float) -> bool:
    """Within 5% or 1 ms, whichever is wider."""
    return abs(measured - expected) <= max(0.05 * expected, 1.0)


def run(url: str, **kwargs: Any) -> BenchResult:
    defaults: dict[str, Any] = {"input_len": 8, "output_len": 10, "requests": 8}
    defaults.update(kwargs)
    return run_bench(BenchOptions(base_url=url, **defaults))


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_measured_ttft_and_tpot_match_the_server(
    server_process: Any, measure_timing: Any, endpoint: str
) -> None:
    # the server in its own process: no shared interpreter lock to skew either side
    url, _ = server_process(100, 20)
    result = measure_timing(url, endpoint, 100, 20)
    assert result.model == "test-model"
    for level in result.levels:
        m = level.metrics
        assert m.requests == 8 and m.completed == 8
        assert m.errors == {"connection": 0, "http_status": 0, "stream_break": 0, "timeout": 0}
        assert m.e2el is not None and close_to(m.e2el.p50, 100 + 9 * 20)
        assert m.mean_output_tokens == 10
        assert m.tokens_from_usage == 8 and m.mean_input_tokens == 7  # the server's usage
        assert close_to(m.achieved_concurrency * 1000, level.load * 1000)
    path = "/v1/chat/completions" if endpoint == "chat" else "/v1/completions"
    assert result.url == url + path
    # Little's law: in a closed loop, throughput = requests in flight / mean E2E
    m = result.levels[1].metrics
    assert m.e2el is not None
    expected = m.achieved_concurrency / (m.e2el.mean / 1000)
    assert abs(m.request_throughput - expected) / expected < 0.15


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_request_bodies(make_server: Any, endpoint: str) -> None:
    server = make_server(ttft_ms=1, tpot_ms=1)
    run(server.url, concurrency=(1,), endpoint=endpoint, requests=2, warmup=0)
    assert len(server.bodies) == 2
    body = server.bodies[-1]
    assert body["model"] == "test-model" and body["max_tokens"] == 10
    assert body["stream"] is True and body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert ("messages" in body) == (endpoint == "chat")


def test_without_usage_tokens_are_counted_from_chunks(make_server: Any) -> None:
    server = make_server(ttft_ms=10, tpot_ms=2, usage=False)
    level = run(server.url, concurrency=(2,)).levels[0]
    assert level.metrics.tokens_from_chunks == 8 and level.metrics.tokens_from_usage == 0
    assert level.metrics.mean_output_tokens == 10
    assert all(r.token_source == "chunks" for r in level.records)


def test_server_errors_are_counted_per_kind(make_server: Any) -> None:
    http = make_server(ttft_ms=5, tpot_ms=1, http_error_every=4)
    m = run(http.url, concurrency=(2,), requests=20, warmup=0).levels[0].metrics
    assert m.errors["http_status"] == 5 and m.completed == 15
    broken = make_server(ttft_ms=5, tpot_ms=1, break_every=5)
    m = run(broken.url, concurrency=(2,), requests=20, warmup=0).levels[0].metrics
    assert m.errors["stream_break"] == 4 and m.completed == 16
    events = make_server(ttft_ms=5, tpot_ms=1, error_event_every=10)
    level = run(events.url, concurrency=(1,), requests=20, warmup=0).levels[0]
    assert level.metrics.errors["stream_break"] == 2
    assert any(r.error and r.error.startswith("error event:") for r in level.records)


def test_requests_past_the_drain_bound_count_as_timeouts(make_server: Any) -> None:
    server = make_server(ttft_ms=10, tpot_ms=2000)
    result = run(server.url, concurrency=(2,), requests=2, warmup=0, drain_timeout=0.2)
    level = result.levels[0]
    assert level.metrics.errors["timeout"] == 2 and level.cancelled == 2


def test_a_server_that_goes_away_mid_run_yields_connection_errors(server_process: Any) -> None:
    url, process = server_process(5, 5)
    timer = threading.Timer(0.5, process.kill)
    timer.start()
    result = run(url, concurrency=(2,), requests=None, duration=1.5, warmup=2, drain_timeout=1.0)
    timer.join()
    m = result.levels[0].metrics
    assert m.completed > 0, (url, m)
    assert m.errors["connection"] > 0, m  # new requests refused
    assert m.errors["stream_break"] + m.errors["connection"] >= 2  # the two in flight broke
    assert m.errors["timeout"] == 0
    assert m.requests == m.completed + sum(m.errors.values())


def test_an_unreachable_url_is_one_input_error(free_port: int) -> None:
    with pytest.raises(BenchError) as info:
        run(f"http://127.0.0.1:{free_port}", concurrency=(1,))
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"cannot reach http://127.0.0.1:{free_port}/v1/models")
    assert "\n" not in str(info.value)


def test_a_protected_endpoint_needs_the_key(make_server: Any) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1, api_key="sekret")
    with pytest.raises(BenchError, match="answered HTTP 401; pass --api-key-env"):
        run(server.url, concurrency=(1,))
    result = run(server.url, concurrency=(1,), api_key="sekret")
    assert result.levels[0].metrics.completed == 8


def test_open_loop_rates(make_server: Any) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    result = run(server.url, rates=(40.0,), concurrency=(), requests=30, output_len=4)
    level = result.levels[0]
    assert level.spec.rate == 40.0 and level.metrics.completed == 30
    assert level.check.target == 40.0 and level.check.achieved > 20
    capped = run(server.url, rates=(math.inf,), concurrency=(2,), requests=20, output_len=4)
    level = capped.levels[0]
    assert level.check.capped and level.metrics.completed == 20
    assert level.metrics.achieved_concurrency <= 2.0 + 1e-9


def test_uvloop_runs_the_same_client(make_server: Any) -> None:
    pytest.importorskip("uvloop")
    server = make_server(ttft_ms=5, tpot_ms=1)
    result = run(server.url, concurrency=(2,), event_loop="uvloop")
    assert result.client["event_loop"] == "uvloop"
    assert result.levels[0].metrics.completed == 8
