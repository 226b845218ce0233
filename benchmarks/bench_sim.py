"""How faithfully the engine simulator keeps its token timing as concurrency grows.

A simulated vLLM (`python -m orchestrator.sim vllm serve ...`, its own process, as in the image)
is configured with TTFT 100 ms and TPOT 10 ms; an aiohttp client streams 64-token completions
at several concurrency levels and measures TTFT and mean TPOT per request as a benchmark client
would. Goal: median TTFT and TPOT within 5 % (or 1 ms) of the configuration up to 64 concurrent
streams; the figures beyond show where this machine's CPU becomes the limit.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
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
            f"{'streams':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'TPOT p50':>9} {'TPOT p99':>9} "
            f"{'tokens/s':>9}"
        )
        for concurrency in LEVELS:
            started = time.perf_counter()
            results = asyncio.run(level(url, concurrency))
            elapsed = time.perf_counter() - started
            ttfts = sorted(r[0] for r in results)
            tpots = sorted(r[1] for r in results)
            p99 = max(0, int(len(results) * 0.99) - 1)
            print(
                f"{concurrency:>8} {statistics.median(ttfts):>9.2f} {ttfts[p99]:>9.2f} "
                f"{statistics.median(tpots):>9.2f} {tpots[p99]:>9.2f} "
                f"{concurrency * TOKENS / elapsed:>9.0f}"
            )
            if concurrency <= GOAL_LEVEL:
                ttft_ok = abs(statistics.median(ttfts) - TTFT_MS) <= max(0.05 * TTFT_MS, 1)
                tpot_ok = abs(statistics.median(tpots) - TPOT_MS) <= max(0.05 * TPOT_MS, 1)
                ok = ok and ttft_ok and tpot_ok
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(
        f"goal (medians within 5 % or 1 ms up to {GOAL_LEVEL} streams): {'met' if ok else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
