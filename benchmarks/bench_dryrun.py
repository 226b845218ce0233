"""How long `deploy up ... --dry-run` takes, end to end, as a user runs it.

Figure (goal): median wall time of
  deploy up deepseek-r1 --nodes 2 --cluster profiles/clusters/two-node-h100-ib.yaml --dry-run
over 20 runs, each a fresh process (interpreter start, imports, planning, rendering the
service specs, formatting): under 300 ms. `deploy render` of the same plan into a temporary
directory (adds Jinja and file writes) is measured beside it for comparison.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "profiles/clusters/two-node-h100-ib.yaml"
RUNS = 20
GOAL_MS = 300.0


def _deploy() -> list[str]:
    script = Path(sys.executable).parent / "deploy"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "orchestrator"]


def _time(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, cwd=ROOT, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        times.append((time.perf_counter() - started) * 1000)
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return times


def _report(label: str, times: list[float], goal: float | None) -> None:
    median = statistics.median(times)
    verdict = ""
    if goal is not None:
        verdict = f" (goal < {goal:.0f} ms: {'met' if median < goal else 'NOT met'})"
    print(
        f"{label}: median {median:.0f} ms, min {min(times):.0f} ms, max {max(times):.0f} ms "
        f"over {len(times)} runs{verdict}"
    )


def main() -> int:
    base = [*_deploy(), "up", "deepseek-r1", "--nodes", "2", "--cluster", CLUSTER]
    _report("deploy up deepseek-r1 --nodes 2 --dry-run", _time([*base, "--dry-run"], RUNS), GOAL_MS)
    out = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        render = [*_deploy(), "render", "deepseek-r1", "--nodes", "2", "--cluster", CLUSTER,
                  "--out", str(out)]  # fmt: skip
        _report("deploy render deepseek-r1 --nodes 2", _time(render, RUNS // 2), None)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
