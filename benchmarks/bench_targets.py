"""The Kubernetes and Slurm targets: rendering time, and a Slurm job's time to ready.

Figures:
- median wall time of `deploy render deepseek-r1 --nodes 2 --cluster ... --target k8s|slurm`
  (fresh process per run; compose's render of the same plan, in bench_dryrun, is the
  comparison);
- with a Slurm cluster reachable (`SLURM_CONF` set, e.g. from tests/slurm/start-slurm.sh):
  `deploy up qwen3-8b --target slurm --simulate` from submission to the ready line, and
  `deploy down` from scancel to the job leaving the queue, with the simulator's load time set
  to 0 so the figure is deploy's and Slurm's own overhead (goal: under 10 s each).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_timing import deploy_argv, library_floor, report, time_cli

CLUSTER = "profiles/clusters/two-node-h100-ib.yaml"
RUNS = 10
SLURM_RUNS = 3


def _render(target: str) -> None:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{target}-"))
    try:
        argv = [*deploy_argv(), "render", "deepseek-r1", "--nodes", "2", "--cluster", CLUSTER,
                "--target", target, "--out", str(out)]  # fmt: skip
        report(f"deploy render deepseek-r1 --nodes 2 --target {target}", time_cli(argv, RUNS), None)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _slurm() -> None:
    if not os.environ.get("SLURM_CONF") or shutil.which("sbatch") is None:
        print("slurm: skipped (export SLURM_CONF from tests/slurm/start-slurm.sh)")
        return
    state = Path(tempfile.mkdtemp(prefix="bench-slurm-"))
    env = {**os.environ, "DEPLOY_SIM_LOAD_SECONDS": "0"}
    common = ["--state-dir", str(state), "--target", "slurm"]
    up_times, down_times = [], []
    try:
        for _ in range(SLURM_RUNS):
            started = time.perf_counter()
            subprocess.run(
                [*deploy_argv(), "up", "qwen3-8b", "--gpus", "1xH100", "--simulate",
                 "--time-limit", "10", "--name", "bench-slurm", *common],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            up_times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            subprocess.run(
                [*deploy_argv(), "down", "--name", "bench-slurm", *common],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            down_times.append((time.perf_counter() - started) * 1000)
    finally:
        subprocess.run([*deploy_argv(), "down", "--all", *common], env=env, check=False)
        shutil.rmtree(state, ignore_errors=True)
    report("slurm: deploy up --simulate, submission to ready", up_times, 10_000.0)
    report("slurm: deploy down, scancel to out of the queue", down_times, 10_000.0)


def main() -> int:
    report("library floor (python + click, pydantic, yaml)", library_floor(RUNS), None)
    _render("k8s")
    _render("slurm")
    _slurm()
    return 0


if __name__ == "__main__":
    sys.exit(main())
