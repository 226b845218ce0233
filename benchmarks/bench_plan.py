"""How long `deploy plan` takes, as a user runs it, and how long the planning itself takes.

Figures (goal): median wall time of `deploy plan MODEL ...` over 20 fresh processes for a few
models and clusters (interpreter start, imports, catalog, planning, formatting): under 300 ms.
Beside it, `build_plan` in-process (the resolver's own cost once everything is imported and
the catalog is loaded), median over 20 calls, including a plan that does not fit (it searches
the catalog for the smallest hardware that does) and a 12-node disaggregated plan.
"""

from __future__ import annotations

import sys
import time

from cli_timing import ROOT, deploy_argv, report, report_against_floor, time_against_floor

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


def main() -> int:
    print("deploy plan, fresh process per run:")
    for label, args in CASES:
        floor, times = time_against_floor([*deploy_argv(), "plan", *args], RUNS, (0, 2))
        report_against_floor(f"  {label}", floor, times, GOAL_MS)

    sys.path.insert(0, str(ROOT))
    from orchestrator.planning.build import build_plan
    from orchestrator.planning.request import PlanRequest

    print("build_plan in-process (catalog loaded, imports done):")
    build_plan(PlanRequest(model="qwen3-8b", gpus="1xH100"))  # load the catalog once
    for label, options in IN_PROCESS:
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            build_plan(PlanRequest(**options))  # type: ignore[arg-type]
            times.append((time.perf_counter() - started) * 1000)
        report(f"  {label}", times, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
