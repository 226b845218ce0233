"""How long `deploy up ... --dry-run` takes, end to end, as a user runs it.

Figure (goal): median wall time of
  deploy up deepseek-r1 --nodes 2 --cluster profiles/clusters/two-node-h100-ib.yaml --dry-run
over 20 runs, each a fresh process (interpreter start, imports, planning, rendering the
service specs, formatting): under 300 ms. `deploy render` of the same plan into a temporary
directory (adds Jinja and file writes) is measured beside it for comparison.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from cli_timing import deploy_argv, report, report_against_floor, time_against_floor, time_cli

CLUSTER = "profiles/clusters/two-node-h100-ib.yaml"
RUNS = 20
GOAL_MS = 300.0


def main() -> int:
    base = [*deploy_argv(), "up", "deepseek-r1", "--nodes", "2", "--cluster", CLUSTER]
    floor, times = time_against_floor([*base, "--dry-run"], RUNS)
    report_against_floor("deploy up deepseek-r1 --nodes 2 --dry-run", floor, times, GOAL_MS)
    out = Path(tempfile.mkdtemp(prefix="bench-render-"))
    try:
        render = [*deploy_argv(), "render", "deepseek-r1", "--nodes", "2", "--cluster", CLUSTER,
                  "--out", str(out)]  # fmt: skip
        report("deploy render deepseek-r1 --nodes 2", time_cli(render, RUNS // 2), None)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
