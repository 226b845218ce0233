"""`deploy bench` within bounds: failed levels are errors, credentials never printed, load
and lengths bounded, prompts made lazily, the recorded API key reused, proxies honoured."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from click.testing import CliRunner

from orchestrator.bench.bounds import MAX_CONCURRENCY, split_credentials, use_proxy
from orchestrator.bench.workload import lazy_synthetic
from orchestrator.cli import cli
from orchestrator.state import DeploymentState, StateStore

SMALL = ["--input-len", "4", "--output-len", "4", "--requests", "6"]


def bench(*args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(cli, ["bench", *args], env=env)


def test_a_server_killed_mid_run_is_an_error_not_client_bound(server_process: Any) -> None:
    url, process = server_process(5, 5)
    timer = threading.Timer(0.5, process.kill)
    timer.start()
    result = bench("--url", url, "--concurrency", "2,4", "--duration", "4", "--warmup", "2",
                   "--drain-timeout", "1", "--input-len", "4", "--output-len", "8")  # fmt: skip
    timer.join()
    assert result.exit_code == 1, result.output
    assert "client-bound:" not in result.stdout  # no level is blamed on the client
    level = next(line for line in result.stdout.splitlines() if line.startswith("2 "))
    assert "FAILED:" in level
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: level 2: ")
    assert " requests failed; first error: " in lines[0]
    assert lines[0].endswith(
        "; the server failed, not the client: check it (deploy status, deploy logs) and run again"
    )
    # The sweep stops at the failed level: higher levels would only measure the failure.
    assert not any(line.startswith("4 ") for line in result.stdout.splitlines())


def test_credentials_in_the_url_are_used_and_never_printed_or_written(
    make_server: Any, tmp_path: Path
) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    port = server.url.rsplit(":", 1)[1]
    secret_url = f"http://bench-user:s3cr3t-pw@127.0.0.1:{port}"
    out = tmp_path / "out"
    result = bench("--url", secret_url, "--concurrency", "1", "--out", str(out), *SMALL)
    assert result.exit_code == 0, result.output
    assert server.authorizations and all(a.startswith("Basic ") for a in server.authorizations)
    assert f"model test-model at {server.url}/v1/completions" in result.stdout
    as_json = bench("--url", secret_url, "--concurrency", "1", "--json", *SMALL)
    written = [result.output, as_json.output]
    written += [path.read_text(errors="replace") for path in out.iterdir() if path.is_file()]
    for text in written:
        assert "s3cr3t-pw" not in text and "bench-user" not in text
    assert json.loads(as_json.stdout)["url"] == f"{server.url}/v1/completions"


def test_credentials_stay_out_of_errors(free_port: int) -> None:
    result = bench("--url", f"http://u:pw-123@127.0.0.1:{free_port}", "--concurrency", "1")
    assert result.exit_code == 2
    assert "pw-123" not in result.output
    assert result.stderr.startswith(f"error: cannot reach http://127.0.0.1:{free_port}/v1/models")


def test_split_credentials_keeps_the_rest_of_the_url() -> None:
    clean, credentials = split_credentials("https://a%40b:p%3Aw@[::1]:8443/base")
    assert clean == "https://[::1]:8443/base"
    assert credentials is not None and (credentials.user, credentials.password) == ("a@b", "p:w")
    assert "p:w" not in repr(credentials)
    assert split_credentials("http://host:1") == ("http://host:1", None)


def test_concurrency_has_a_stated_maximum(make_server: Any) -> None:
    server = make_server()
    result = bench("--url", server.url, "--concurrency", "1000000")
    assert (result.exit_code, result.stderr) == (
        2,
        f"error: --concurrency 1000000 is above the maximum of {MAX_CONCURRENCY} requests in "
        "flight; a single client cannot drive more; run several benches from different machines\n",
    )
    assert server.bodies == []


def test_concurrency_is_bounded_by_the_open_file_limit() -> None:
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))\n"
        "from orchestrator.cli import main\n"
        "sys.argv = ['deploy', 'bench', '--url', 'http://127.0.0.1:9', '--concurrency', '1,300']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2,
        "error: --concurrency 300 needs about 364 open files but this process may open 200 "
        "(hard limit 200); raise the limit (ulimit -n) or lower --concurrency\n",
    )


def test_lengths_are_bounded_by_the_served_context(make_server: Any) -> None:
    server = make_server(max_model_len=4096)
    result = bench("--url", server.url, "--concurrency", "1", "--input-len", "4000",
                   "--output-len", "128")  # fmt: skip
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --input-len 4000 + --output-len 128 is more than test-model's context of 4096 "
        "tokens (max_model_len from /v1/models); keep the sum at or below 4096\n",
    )
    named = bench("--url", server.url, "--model", "test-model", "--concurrency", "1",
                  "--output-len", "5000")  # fmt: skip
    assert named.exit_code == 2 and "context of 4096 tokens" in named.stderr
    assert server.bodies == []
    fits = bench("--url", server.url, "--concurrency", "1", "--input-len", "3900",
                 "--output-len", "4", "--requests", "2")  # fmt: skip
    assert fits.exit_code == 0, fits.output


def test_lengths_have_a_stated_maximum_without_asking_the_server(free_port: int) -> None:
    result = bench("--url", f"http://127.0.0.1:{free_port}", "--input-len", "100000000")
    assert (result.exit_code, result.stderr) == (
        2,
        "error: --input-len 100000000 is above the maximum of 10,000,000 tokens; no served "
        "model has a context that long\n",
    )


def test_long_prompts_are_made_one_at_a_time() -> None:
    tracemalloc.start()
    try:
        bodies = lazy_synthetic(2_000_000, 4, 64, 0, model="m", endpoint="completions",
                                ignore_eos=True)  # fmt: skip
        first = next(bodies)
        for _ in range(3):
            next(bodies)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Four prompts of 2M words were made: the peak is the few copies that building one body
    # takes, far from the 64 prompts an eager workload would hold.
    assert len(first.tail) > 2_000_000
    assert peak < 12 * len(first.tail)
    again = lazy_synthetic(2_000_000, 4, 64, 0, model="m", endpoint="completions",
                           ignore_eos=True)  # fmt: skip
    assert next(again).head == first.head  # the same seed gives the same prompts


def test_bench_name_reuses_the_recorded_api_key_variable(make_server: Any, tmp_path: Path) -> None:
    server = make_server(api_key="sk-recorded")
    plan = {"request": {"api_key_env": "BENCH_RECORDED_KEY"}}
    StateStore(tmp_path).save(
        DeploymentState(name="keyed", specs=[], nodes=[], endpoint_url=server.url, plan=plan)
    )
    args = ["keyed", "--state-dir", str(tmp_path), "--concurrency", "1", *SMALL]
    result = bench(*args, env={"BENCH_RECORDED_KEY": "sk-recorded"})
    assert result.exit_code == 0, result.output
    assert set(server.authorizations) == {"Bearer sk-recorded"}
    unset = bench(*args, env={"BENCH_RECORDED_KEY": None})
    assert (unset.exit_code, unset.stderr) == (
        2,
        "error: deployment keyed was started with --api-key-env BENCH_RECORDED_KEY, but the "
        "environment variable BENCH_RECORDED_KEY is not set or empty; "
        "export BENCH_RECORDED_KEY=<key>\n",
    )


@pytest.fixture
def forward_proxy() -> Iterator[tuple[str, list[str]]]:
    """An HTTP forward proxy on loopback that sends every request to 127.0.0.1, whatever the
    host in it (so a name that resolves nowhere is reachable only through the proxy)."""
    seen: list[str] = []
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def forward(request: web.Request) -> web.StreamResponse:
        seen.append(str(request.url))
        port = request.url.port
        target = f"http://127.0.0.1:{port}{request.rel_url}"
        async with (
            ClientSession() as session,
            session.request(
                request.method, target, data=await request.read(), headers=request.headers
            ) as upstream,
        ):
            response = web.StreamResponse(status=upstream.status)
            response.content_type = upstream.content_type
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            return response

    def serve() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        holder.update(loop=loop, runner=runner, port=runner.addresses[0][1])
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{holder['port']}", seen
    loop = holder["loop"]
    asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_a_remote_url_goes_through_the_proxy(make_server: Any, forward_proxy: Any) -> None:
    proxy, seen = forward_proxy
    server = make_server(ttft_ms=5, tpot_ms=1)
    port = server.url.rsplit(":", 1)[1]
    remote = f"http://models.invalid:{port}"  # .invalid never resolves: only the proxy helps
    env = {"HTTP_PROXY": proxy, "http_proxy": proxy, "NO_PROXY": None, "no_proxy": None}
    result = bench("--url", remote, "--concurrency", "1", *SMALL, env=env)
    assert result.exit_code == 0, result.output
    assert seen[0] == f"{remote}/v1/models"
    assert f"{remote}/v1/completions" in seen and len(server.bodies) >= 6


def test_loopback_is_reached_directly_even_with_a_proxy_set(make_server: Any) -> None:
    server = make_server(ttft_ms=5, tpot_ms=1)
    env = {"HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    result = bench("--url", server.url, "--concurrency", "1", *SMALL, env=env)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("url", "no_proxy", "expected"),
    [
        ("http://10.1.2.3:8000", False, True),
        ("http://gpu-box.example:8000", False, True),
        ("http://gpu-box.example:8000", True, False),
        ("http://127.0.0.1:8000", False, False),
        ("http://127.9.9.9:8000", False, False),
        ("http://localhost:8000", False, False),
        ("http://[::1]:8000", False, False),
    ],
)
def test_which_urls_use_the_proxy(url: str, no_proxy: bool, expected: bool) -> None:
    assert use_proxy(url, no_proxy) is expected
