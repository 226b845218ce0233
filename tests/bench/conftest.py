"""A streaming OpenAI-style server with exact timing, run on 127.0.0.1 in a thread.

Each request waits `ttft_ms`, sends its first token, then one token every `tpot_ms` until
`max_tokens`, then a usage chunk (when `usage` is on) and `[DONE]`. Failure modes make the
server misbehave on every n-th request, to exercise error counting.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from orchestrator.bench.options import BenchOptions
from orchestrator.bench.runner import BenchResult, LevelResult, run_bench
from tests.conftest import free_ports


@dataclass
class ServerConfig:
    ttft_ms: float = 20.0
    tpot_ms: float = 5.0
    usage: bool = True
    models: list[str] = field(default_factory=lambda: ["test-model"])
    http_error_every: int = 0  # answer HTTP 500 to every n-th request
    break_every: int = 0  # close the stream after two tokens on every n-th request
    error_event_every: int = 0  # send an error event after one token on every n-th request
    api_key: str | None = None
    raw: list[bytes] | None = None  # send these pieces as the stream instead, 5 ms apart
    raw_type: str = "text/event-stream"
    max_model_len: int | None = None  # reported by /v1/models, as vLLM and SGLang do


@dataclass
class TestServer:
    url: str
    config: ServerConfig
    bodies: list[dict[str, Any]]
    stop: Any = None
    authorizations: list[str] = field(default_factory=list)  # Authorization header per request


def _chunk(text: str, chat: bool) -> bytes:
    if chat:
        choice = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    else:
        choice = {"index": 0, "text": text, "finish_reason": None}
    obj = {"id": "x", "object": "chunk", "choices": [choice], "usage": None}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _app(
    config: ServerConfig, bodies: list[dict[str, Any]], authorizations: list[str] | None = None
) -> web.Application:
    count = 0

    async def models(request: web.Request) -> web.Response:
        if config.api_key and request.headers.get("Authorization") != f"Bearer {config.api_key}":
            return web.json_response({"error": "no key"}, status=401)
        extra = {"max_model_len": config.max_model_len} if config.max_model_len else {}
        return web.json_response({"data": [{"id": m, **extra} for m in config.models]})

    async def generate(request: web.Request) -> web.StreamResponse:
        nonlocal count
        count += 1
        number = count
        loop = asyncio.get_running_loop()
        start = loop.time()
        body = await request.json()
        bodies.append(body)
        if authorizations is not None:
            authorizations.append(request.headers.get("Authorization", ""))
        if config.api_key and request.headers.get("Authorization") != f"Bearer {config.api_key}":
            return web.json_response({"error": "no key"}, status=401)
        if config.http_error_every and number % config.http_error_every == 0:
            return web.json_response({"error": {"message": "overloaded"}}, status=500)
        if config.raw is not None:
            raw = web.StreamResponse(headers={"Content-Type": config.raw_type})
            await raw.prepare(request)
            for piece in config.raw:
                await asyncio.sleep(0.005)
                await raw.write(piece)
            return raw
        chat = request.path.endswith("/chat/completions")
        tokens = int(body.get("max_tokens", 16))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if chat:
            role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            await response.write(b"data: " + json.dumps(role).encode() + b"\n\n")
        for i in range(tokens):
            # sleep to an absolute deadline so timing errors do not accumulate
            due = start + (config.ttft_ms + i * config.tpot_ms) / 1000
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await response.write(_chunk(f" t{i}", chat))
            if config.break_every and number % config.break_every == 0 and i == 1:
                assert request.transport is not None
                request.transport.close()
                return response
            if config.error_event_every and number % config.error_event_every == 0:
                await response.write(b'data: {"error": {"message": "boom"}}\n\n')
                return response
        if config.usage:
            usage = {"prompt_tokens": 7, "completion_tokens": tokens, "total_tokens": tokens + 7}
            obj = {"id": "x", "choices": [], "usage": usage}
            await response.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", generate)
    app.router.add_post("/v1/chat/completions", generate)
    return app


def start_server(config: ServerConfig) -> TestServer:
    bodies: list[dict[str, Any]] = []
    authorizations: list[str] = []
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = _app(config, bodies, authorizations)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder["port"] = runner.addresses[0][1]
        holder["loop"] = loop
        holder["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)

    def stop() -> None:
        loop = holder["loop"]
        if loop.is_closed():
            return
        # close the listener and every open connection, as a server that goes away would
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    url = f"http://127.0.0.1:{holder['port']}"
    return TestServer(url, config, bodies, stop, authorizations)


@pytest.fixture
def make_server() -> Iterator[Any]:
    servers: list[TestServer] = []

    def make(**kwargs: Any) -> TestServer:
        server = start_server(ServerConfig(**kwargs))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def close_to(measured: float, expected: float) -> bool:
    """Within 5% or 1 ms, whichever is wider."""
    return abs(measured - expected) <= max(0.05 * expected, 1.0)


def level_agrees(level: LevelResult, ttft_ms: float, tpot_ms: float) -> bool:
    m = level.metrics
    assert m.ttft is not None and m.tpot is not None and m.itl is not None
    return (
        close_to(m.ttft.p50, ttft_ms)
        and close_to(m.tpot.mean, tpot_ms)
        and close_to(m.itl.p50, tpot_ms)
    )


def describe(level: LevelResult) -> str:
    m = level.metrics
    assert m.ttft is not None and m.tpot is not None and m.itl is not None
    return (
        f"c={level.load:g}: TTFT p50 {m.ttft.p50:.2f}, TPOT mean {m.tpot.mean:.2f}, "
        f"ITL p50 {m.itl.p50:.2f}, client-bound {list(level.check.reasons)}"
    )


def _measure_timing(url: str, endpoint: str, ttft_ms: float, tpot_ms: float) -> BenchResult:
    """The client's contract: a level it does not mark client-bound reports true timing.

    Up to five runs, until every level agrees with the server: this machine is shared, and
    a neighbour can stall the client (which the self-check then reports) or the server
    (which really makes it slower). The last run decides: a level that still disagrees and
    was not marked client-bound fails the test; if all that disagree were marked, nothing
    could be measured and the test is skipped, saying so.
    """
    for _ in range(5):
        options = BenchOptions(base_url=url, concurrency=(1, 4), endpoint=endpoint,
                               input_len=8, output_len=10, requests=8)  # fmt: skip
        result = run_bench(options)
        wrong = [lv for lv in result.levels if not level_agrees(lv, ttft_ms, tpot_ms)]
        if not wrong:
            return result
    unmarked = [lv for lv in wrong if not lv.check.client_bound]
    assert not unmarked, "; ".join(describe(lv) for lv in unmarked)
    pytest.skip("every run was stalled by other load: " + "; ".join(map(describe, wrong)))


@pytest.fixture
def measure_timing() -> Any:
    return _measure_timing


@pytest.fixture
def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def server_process() -> Iterator[Any]:
    """The same server in a child process, which a test can kill like a crashed engine."""
    import subprocess
    import sys

    procs: list[subprocess.Popen[str]] = []

    def start(ttft_ms: float, tpot_ms: float) -> tuple[str, subprocess.Popen[str]]:
        proc = subprocess.Popen(
            [sys.executable, __file__, str(ttft_ms), str(tpot_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        return proc.stdout.readline().strip(), proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(10)


if __name__ == "__main__":
    import sys
    import time

    server = start_server(ServerConfig(ttft_ms=float(sys.argv[1]), tpot_ms=float(sys.argv[2])))
    print(server.url, flush=True)
    while True:
        time.sleep(3600)
