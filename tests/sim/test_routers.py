"""Routers in front of simulated engines: SGLang-style PD, vllm-router PD, round robin."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from orchestrator.sim.server import SimHandle, start_command_in_thread, start_in_thread
from orchestrator.sim.settings import Behaviour


def generation_tokens(client: Any, sim: SimHandle) -> float:
    text = client.request(sim.url, "/metrics").body.decode()
    match = re.search(r"^(?:vllm|sglang):generation_tokens_total\{.*\} ([0-9.]+)$", text, re.M)
    assert match is not None
    return float(match.group(1))


def router(argv: list[str]) -> SimHandle:
    return start_command_in_thread(
        [*argv, "--host", "127.0.0.1", "--port", "0"], behaviour=Behaviour()
    )


@pytest.fixture
def sglang_pair() -> Iterator[tuple[SimHandle, SimHandle]]:
    with (
        start_in_thread("sglang", served_model_name="P", ttft_ms=5, tpot_ms=1) as prefill,
        start_in_thread("sglang", served_model_name="D", ttft_ms=5, tpot_ms=1) as decode,
    ):
        yield prefill, decode


@pytest.mark.parametrize(
    "head",
    [
        ["python3", "-m", "sglang_router.launch_router", "--pd-disaggregation", "--mini-lb"],
        ["smg", "launch", "--pd-disaggregation"],
    ],
)
def test_sglang_pd_router_sends_to_both_and_answers_from_decode(
    client: Any, sglang_pair: tuple[SimHandle, SimHandle], head: list[str]
) -> None:
    prefill, decode = sglang_pair
    with router([*head, "--prefill", prefill.url, "9001", "--decode", decode.url]) as lb:
        assert client.request(lb.url, "/health").status == 200
        assert client.request(lb.url, "/readiness").status == 200
        reply = client.post(
            lb.url, "/v1/completions", {"prompt": "a b", "max_tokens": 6, "ignore_eos": True}
        )
        assert reply.status == 200
        assert reply.json()["model"] == "D"
        assert reply.json()["usage"]["completion_tokens"] == 6
        body = {
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 5,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        status, events = client.stream(lb.url, "/v1/chat/completions", body)
        assert status == 200
        assert events[-1].data == "[DONE]"
        assert events[-2].json()["usage"]["completion_tokens"] == 5
        assert client.request(lb.url, "/v1/models").json()["data"][0]["id"] == "D"
        # both requests also reached the prefill server
        assert client.wait_for(lambda: generation_tokens(client, prefill) == 11, timeout=3)
        assert generation_tokens(client, decode) == 11


def test_sglang_pd_router_injects_bootstrap_fields(client: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"choices": []})

    app = web.Application()
    app.router.add_post("/v1/completions", capture)
    capture_server = _AppThread(app)
    try:
        with (
            start_in_thread("sglang", served_model_name="D") as decode,
            router(
                [
                    "smg",
                    "launch",
                    "--pd-disaggregation",
                    "--prefill",
                    capture_server.url,
                    "8998",
                    "--decode",
                    decode.url,
                ]
            ) as lb,
        ):
            client.post(lb.url, "/v1/completions", {"prompt": "x", "max_tokens": 1})
            assert client.wait_for(lambda: len(seen) == 1, timeout=3)
    finally:
        capture_server.stop()
    assert seen[0]["bootstrap_host"] == "127.0.0.1"
    assert seen[0]["bootstrap_port"] == 8998
    assert isinstance(seen[0]["bootstrap_room"], int)
    assert seen[0]["prompt"] == "x"


def test_vllm_router_pd_prefills_one_token_then_decodes(client: Any) -> None:
    with (
        start_in_thread("vllm", served_model_name="m", ttft_ms=5, tpot_ms=1) as prefill,
        start_in_thread("vllm", served_model_name="m", ttft_ms=5, tpot_ms=1) as decode,
        router(
            [
                "vllm-router",
                "--vllm-pd-disaggregation",
                "--prefill",
                prefill.url,
                "--decode",
                decode.url,
                "--policy",
                "round_robin",
            ]
        ) as lb,
    ):
        body = {"model": "m", "prompt": "a", "max_tokens": 7, "ignore_eos": True, "stream": True}
        status, events = client.stream(lb.url, "/v1/completions", body)
        assert status == 200
        texts = [e.json()["choices"][0]["text"] for e in events if e.data != "[DONE]"]
        assert len(texts) == 7
        assert generation_tokens(client, prefill) == 1
        assert generation_tokens(client, decode) == 7
        # the prefill instance answers the proxy with where its KV cache is
        answer = client.post(
            prefill.url,
            "/v1/completions",
            {"prompt": "a", "max_tokens": 1, "kv_transfer_params": {"do_remote_decode": True}},
        )
        assert answer.json()["kv_transfer_params"]["do_remote_prefill"] is True


def test_round_robin_over_worker_urls(client: Any) -> None:
    with (
        start_in_thread("vllm", served_model_name="A") as a,
        start_in_thread("vllm", served_model_name="B") as b,
        router(["vllm-router", "--worker-urls", a.url, b.url]) as lb,
    ):
        models = [
            client.post(lb.url, "/v1/completions", {"prompt": "x", "max_tokens": 1}).json()["model"]
            for _ in range(4)
        ]
        assert models == ["A", "B", "A", "B"]


def test_router_readiness_and_errors_when_a_worker_is_down(client: Any) -> None:
    dead = f"http://127.0.0.1:{client.free_port()}"
    with (
        start_in_thread("sglang") as alive,
        router(
            ["python3", "-m", "sglang_router.launch_router", "--worker-urls", alive.url, dead]
        ) as lb,
    ):
        assert client.request(lb.url, "/health").status == 200
        ready = client.request(lb.url, "/readiness")
        assert ready.status == 503
        assert ready.json()["unhealthy_workers"] == [dead]
        statuses = sorted(
            client.post(lb.url, "/v1/completions", {"prompt": "x", "max_tokens": 1}).status
            for _ in range(2)
        )
        assert statuses == [200, 503]


def test_streaming_through_a_router_keeps_token_timing(client: Any) -> None:
    # The worker spreads four tokens over 750 ms; a router that buffered the response would
    # hand them over together at its end. Half of that spread is left to the machine's load.
    with (
        start_in_thread("vllm", ttft_ms=100, tpot_ms=250) as worker,
        router(["vllm-router", "--worker-urls", worker.url]) as lb,
    ):
        body = {"prompt": "x", "max_tokens": 4, "ignore_eos": True, "stream": True}
        _, events = client.stream(lb.url, "/v1/completions", body)
    stamps = [e.at * 1000 for e in events if e.data != "[DONE]"]
    assert len(stamps) == 4
    assert stamps[0] >= 100
    assert stamps[-1] - stamps[0] >= 375  # chunks are relayed as they come


class _AppThread:
    """An aiohttp app on a free loopback port in a thread (a capturing upstream)."""

    def __init__(self, app: web.Application) -> None:
        import asyncio

        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.port = 0

        async def start() -> web.AppRunner:
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return runner

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            self._runner = self._loop.run_until_complete(start())
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def test_router_command_lines_are_read_like_the_real_ones() -> None:
    from orchestrator.sim.argv import parse_command
    from orchestrator.sim.settings import PrefillTarget, RouterSettings

    program = parse_command(
        [
            "vllm-router",
            "--vllm-pd-disaggregation",
            "--prefill",
            "http://p:8001",
            "--prefill",
            "http://p2:8001",
            "none",
            "--decode",
            "http://d:8002",
            "--intra-node-data-parallel-size",
            "2",
        ]
    )
    assert isinstance(program, RouterSettings)
    assert program.prefill == (
        PrefillTarget("http://p:8001", None),
        PrefillTarget("http://p2:8001", None),
    )
    assert program.decode == ("http://d:8002",)
    assert (program.host, program.port) == ("127.0.0.1", 30000)
    sg = parse_command(
        [
            "python3",
            "-m",
            "sglang_router.launch_router",
            "--pd-disaggregation",
            "--prefill",
            "http://p:30000",
            "9001",
            "--decode",
            "http://d:30001",
        ]
    )
    assert isinstance(sg, RouterSettings)
    assert sg.prefill == (PrefillTarget("http://p:30000", 9001),)
    assert sg.host == "0.0.0.0"
    assert json.dumps(sg.flavour) == '"sglang-router"'
