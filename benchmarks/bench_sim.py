"""How faithfully the engine simulator keeps its token timing as concurrency grows.

A simulated vLLM (`python -m orchestrator.sim vllm serve ...`, its own process, as in the image)
is configured with TTFT 100 ms and TPOT 10 ms; an aiohttp client streams 64-token completions
at several concurrency levels and measures TTFT and mean TPOT per request as a benchmark client
would. The server's own view comes from its /metrics (TTFT histogram sum / count per level):
the difference between the two is the client's and the connections' share (both run here, in
Python, on the same CPUs). Goals: one stream's TTFT and TPOT within 5 % (or 1 ms) of the
configuration as the client sees them; up to 64 streams, the server-side mean TTFT and the
client-side median TPOT within 5 %. The figures beyond show where this machine's CPU becomes
the limit.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
TTFT_MS = 100.0
TPOT_MS = 10.0
TOKENS = 64
LEVELS = (1, 16, 64, 256)
GOAL_LEVEL = 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def one(session: aiohttp.ClientSession, url: str) -> tuple[float, float]:
    body = {"prompt": "bench", "max_tokens": TOKENS, "ignore_eos": True, "stream": True}
    sent = time.perf_counter()
    stamps = []
    async with session.post(url + "/v1/completions", json=body) as response:
        async for line in response.content:
            if line.startswith(b"data: {"):
                stamps.append(time.perf_counter() - sent)
    return stamps[0] * 1000, (stamps[-1] - stamps[0]) / (len(stamps) - 1) * 1000


def within(measured_ms: float, expected_ms: float) -> bool:
    return abs(measured_ms - expected_ms) <= max(0.05 * expected_ms, 1.0)


def server_ttft(url: str) -> tuple[float, float]:
    """(sum in seconds, count) of the server's TTFT histogram."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    total = re.search(r"^vllm:time_to_first_token_seconds_sum\{.*\} (\S+)$", text, re.M)
    count = re.search(r"^vllm:time_to_first_token_seconds_count\{.*\} (\S+)$", text, re.M)
    assert total is not None and count is not None
    return float(total.group(1)), float(count.group(1))


async def level(url: str, concurrency: int) -> list[tuple[float, float]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await asyncio.gather(*(one(session, url) for _ in range(concurrency)))


def main() -> int:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOY_SIM_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "DEPLOY_SIM_LOAD_SECONDS": "0",
            "DEPLOY_SIM_TTFT_MS": str(TTFT_MS),
            "DEPLOY_SIM_TPOT_MS": str(TPOT_MS),
        }
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.sim",
            "vllm",
            "serve",
            "bench",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--disable-uvicorn-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    ok = True
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"configured TTFT {TTFT_MS:g} ms, TPOT {TPOT_MS:g} ms, {TOKENS} tokens per request")
        print(
            f"{'streams':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'server TTFT':>11} {'TPOT p50':>9} "
            f"{'TPOT p99':>9} {'tokens/s':>9}"
        )
        for concurrency in LEVELS:
            before = server_ttft(url)
            started = time.perf_counter()
            results = asyncio.run(level(url, concurrency))
            elapsed = time.perf_counter() - started
            after = server_ttft(url)
            server_mean = (after[0] - before[0]) / (after[1] - before[1]) * 1000
            ttfts = sorted(r[0] for r in results)
            tpots = sorted(r[1] for r in results)
            p99 = max(0, int(len(results) * 0.99) - 1)
            print(
                f"{concurrency:>8} {statistics.median(ttfts):>9.2f} {ttfts[p99]:>9.2f} "
                f"{server_mean:>11.2f} {statistics.median(tpots):>9.2f} {tpots[p99]:>9.2f} "
                f"{concurrency * TOKENS / elapsed:>9.0f}"
            )
            tpot_ok = within(statistics.median(tpots), TPOT_MS)
            if concurrency == 1:
                ok = ok and within(ttfts[0], TTFT_MS) and tpot_ok
            elif concurrency <= GOAL_LEVEL:
                ok = ok and within(server_mean, TTFT_MS) and tpot_ok
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(f"goals (see the docstring): {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
