"""How long `deploy plan` takes for a catalog model and for a Hugging Face repo already cached.

Figures (goals), median wall time over 20 fresh processes:

* a catalog model (`qwen3-32b`): under 300 ms, and `huggingface_hub` never imported;
* a Hub repo fetched once before (`MiniMaxAI/MiniMax-M2` from the loopback Hub of the tests):
  under 300 ms, both online (one HEAD confirms the cached commit) and with HF_HUB_OFFLINE=1
  (the cache alone); `huggingface_hub` is not imported on either.

The Hub is the test suite's loopback stand-in (`tests/models/fakehub.py`), so the figures
measure deploy and the client, not a network.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_timing import ROOT, compile_package, deploy_argv, library_floor, report

sys.path.insert(0, str(ROOT / "tests" / "models"))

from fakehub import FakeHub

RUNS = 20
CATALOG_GOAL_MS = 300.0
HUB_GOAL_MS = 300.0
HUB_MODEL = "MiniMaxAI/MiniMax-M2"


def _timed(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    compile_package()
    times = []
    for _ in range(runs + 1):  # the first run only warms the page cache
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        times.append((time.perf_counter() - started) * 1000)
        if result.returncode != 0 or not result.stdout:
            raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return times[1:]


def _hub_library_imported(env: dict[str, str], plan_args: list[str]) -> bool:
    code = (
        "import sys\nfrom orchestrator.cli import main\n"
        f"sys.argv = ['deploy', 'plan', *{plan_args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('huggingface_hub' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    return result.stdout.strip().splitlines()[-1] == "True"


def main() -> int:
    plan = [*deploy_argv(), "plan"]
    met = True
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
        env.update(
            HF_ENDPOINT=hub.url,
            HF_HOME=str(Path(tmp) / "hf"),
            HF_HUB_DISABLE_TELEMETRY="1",
            NO_PROXY="127.0.0.1,localhost",
        )
        report("library floor (python + click, pydantic, yaml)", library_floor(RUNS), None)
        catalog = _timed([*plan, "qwen3-32b", "--gpus", "2xH100"], env, RUNS)
        met &= report("catalog model qwen3-32b on 2xH100", catalog, CATALOG_GOAL_MS)
        imported = _hub_library_imported(env, ["qwen3-32b", "--gpus", "2xH100"])
        print(f"huggingface_hub imported on the catalog path: {imported} (goal: False)")
        met &= not imported
        hub_args = [HUB_MODEL, "--gpus", "4xH200"]
        argv = [*plan, *hub_args]
        first = _timed(argv, env, 0)  # the warm-up run is the first fetch
        del first
        medians: dict[str, float] = {}
        for label, run_env in (
            ("online", env),
            ("HF_HUB_OFFLINE=1", {**env, "HF_HUB_OFFLINE": "1"}),
        ):
            times = _timed(argv, run_env, RUNS)
            met &= report(f"cached hub model {HUB_MODEL}, {label}", times, HUB_GOAL_MS)
            imported = _hub_library_imported(run_env, hub_args)
            print(f"  huggingface_hub imported: {imported} (goal: False)")
            met &= not imported
            medians[label] = statistics.median(times)
        print(
            f"hub overhead over the catalog path: "
            f"{medians['HF_HUB_OFFLINE=1'] - statistics.median(catalog):.0f} ms (offline)"
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
