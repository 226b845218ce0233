"""Flag-schema checker speed, on the dry-run hot path.

Figures (goals):
- loading one schema from disk, first time in a process (< 20 ms), for the largest schema;
- checking one realistic engine command line against a loaded schema (< 1 ms).

Each load is measured in a fresh interpreter, so file reading, JSON parsing and building the
flag table are all counted, not a cached hit.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.engines.flags import check_argv, known_versions, load_schema  # noqa: E402

LOAD_ONE = """
import sys, time, json
sys.path.insert(0, {root!r})
import orchestrator.engines.flags as flags
started = time.perf_counter()
flags.load_schema({engine!r}, {version!r})
print(json.dumps(time.perf_counter() - started))
"""

COMMAND = [
    "--model-path", "deepseek-ai/DeepSeek-V3-0324", "--disaggregation-mode", "prefill",
    "--host", "0.0.0.0", "--port", "30000", "--trust-remote-code",
    "--dist-init-addr", "10.0.0.1:5000", "--nnodes", "2", "--node-rank", "0",
    "--tp-size", "16", "--attn-dp-size", "8", "--moe-a2a-backend", "deepep",
    "--mem-fraction-static", "0.8", "--kv-cache-dtype", "fp8_e4m3",
]  # fmt: skip


def load_time(engine: str, version: str, runs: int = 5) -> float:
    code = LOAD_ONE.format(root=str(ROOT), engine=engine, version=version)
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        samples.append(json.loads(out.stdout))
    return statistics.median(samples)


def main() -> int:
    for engine in ("vllm", "sglang"):
        version = known_versions(engine)[-1]
        seconds = load_time(engine, version)
        print(
            f"load_schema({engine} {version}), first in a process: {seconds * 1000:.1f} ms (goal < 20 ms)"
        )
    load_schema("sglang", "0.5.23")
    rounds = 2000
    started = time.perf_counter()
    for _ in range(rounds):
        check_argv("sglang", "0.5.23", COMMAND)
    per_check = (time.perf_counter() - started) / rounds
    print(f"check_argv, {len(COMMAND)}-word sglang command: {per_check * 1e6:.0f} us (goal < 1 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
