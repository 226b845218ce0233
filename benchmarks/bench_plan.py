"""How long `deploy plan` takes, as a user runs it, and how long the planning itself takes.

Figures (goal): median wall time of `deploy plan MODEL ...` over 20 fresh processes for a few
models and clusters (interpreter start, imports, catalog, planning, formatting): under 300 ms.
Beside it, `build_plan` in-process (the resolver's own cost once everything is imported and
the catalog is loaded), median over 20 calls, including a plan that does not fit (it searches
the catalog for the smallest hardware that does) and a 12-node disaggregated plan.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 20
GOAL_MS = 300.0

CASES: list[tuple[str, list[str]]] = [
    ("qwen3-32b on 2xH100", ["qwen3-32b", "--gpus", "2xH100"]),
    (
        "deepseek-r1 on two-node-h100-ib (sglang)",
        [
            "deepseek-r1",
            "--cluster",
            "profiles/clusters/two-node-h100-ib.yaml",
            "--engine",
            "sglang",
        ],
    ),
    ("llama-3.1-405b on 2 nodes of 8xH100", ["llama-3.1-405b", "--gpus", "8xH100", "--nodes", "2"]),
    ("deepseek-r1 on 8xH100 (does not fit)", ["deepseek-r1", "--gpus", "8xH100"]),
]
IN_PROCESS: list[tuple[str, dict[str, object]]] = [
    ("qwen3-32b on 2xH100", {"model": "qwen3-32b", "gpus": "2xH100"}),
    (
        "deepseek-r1 throughput on 8xH200",
        {"model": "deepseek-r1", "gpus": "8xH200", "goal": "throughput"},
    ),
    ("deepseek-r1 on 8xH100 (does not fit)", {"model": "deepseek-r1", "gpus": "8xH100"}),
    (
        "deepseek-v3 --disagg on twelve-node-h100-ib",
        {
            "model": "deepseek-v3",
            "cluster": str(ROOT / "profiles/clusters/twelve-node-h100-ib.yaml"),
            "disagg": True,
        },
    ),
]


def _deploy() -> list[str]:
    script = Path(sys.executable).parent / "deploy"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "orchestrator"]


def _time_cli(argv: list[str]) -> list[float]:
    subprocess.run(argv, cwd=ROOT, capture_output=True, check=False)  # warm the page cache
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
        times.append((time.perf_counter() - started) * 1000)
        if result.returncode not in (0, 2) or not result.stdout:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return times


def _report(label: str, times: list[float], goal: float | None) -> bool:
    median = statistics.median(times)
    met = goal is None or median < goal
    verdict = f" (goal < {goal:.0f} ms: {'met' if met else 'NOT met'})" if goal else ""
    print(
        f"{label}: median {median:.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms "
        f"over {len(times)} runs{verdict}"
    )
    return met


def main() -> int:
    print("deploy plan, fresh process per run:")
    for label, args in CASES:
        _report(f"  {label}", _time_cli([*_deploy(), "plan", *args]), GOAL_MS)

    sys.path.insert(0, str(ROOT))
    from orchestrator.planner import build_plan
    from orchestrator.request import PlanRequest

    print("build_plan in-process (catalog loaded, imports done):")
    build_plan(PlanRequest(model="qwen3-8b", gpus="1xH100"))  # load the catalog once
    for label, options in IN_PROCESS:
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            build_plan(PlanRequest(**options))  # type: ignore[arg-type]
            times.append((time.perf_counter() - started) * 1000)
        _report(f"  {label}", times, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
