"""Timing `deploy` as a user runs it: a fresh process per run, wall time, median.

Shared by the start-up benchmarks. `library_floor` times an interpreter that only imports the
libraries every planning command needs (click, pydantic with one model built, PyYAML): on a
shared 2-core VM the CPU speed drifts by a third from minute to minute, so each figure is
printed beside the floor measured in the same minute. `time_against_floor` goes further: one
floor run right before each command run. The drift scales everything alike (the command's own
imports and planning too), so the ratio of each pair holds still where both times do not.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FLOOR_CODE = (
    "import click, yaml\n"
    "from pydantic import BaseModel\n"
    "class M(BaseModel):\n"
    "    x: int = 0\n"
    "M(x=1)\n"
)


def deploy_argv() -> list[str]:
    script = Path(sys.executable).parent / "deploy"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "orchestrator"]


def compile_package() -> None:
    """Write the package's byte code, as `pip install` of the wheel does.

    An editable checkout run with PYTHONDONTWRITEBYTECODE set (as in some CI images) would
    otherwise recompile every module on every run, which no installed copy does.
    """
    import compileall

    compileall.compile_dir(ROOT / "orchestrator", quiet=1)


_FLOOR_ARGV = [sys.executable, "-c", _FLOOR_CODE + "print('ok')"]


def time_cli(argv: list[str], runs: int, ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    """Milliseconds per run; the first run only warms the page cache and byte code."""
    compile_package()
    subprocess.run(argv, cwd=ROOT, capture_output=True, check=False)
    return [_timed(argv, ok_codes) for _ in range(runs)]


def library_floor(runs: int) -> list[float]:
    return time_cli(_FLOOR_ARGV, runs)


def time_against_floor(
    argv: list[str], runs: int, ok_codes: tuple[int, ...] = (0,)
) -> tuple[list[float], list[float]]:
    """(floor ms, command ms), one floor run right before each command run: each pair shares
    the minute's CPU speed."""
    floor: list[float] = []
    times: list[float] = []
    time_cli(argv, 0, ok_codes)  # warms the byte code and the page cache
    for _ in range(runs):
        floor.append(_timed(_FLOOR_ARGV, (0,)))
        times.append(_timed(argv, ok_codes))
    return floor, times


def _timed(argv: list[str], ok_codes: tuple[int, ...]) -> float:
    """Milliseconds of one run of `argv`, which must exit with one of `ok_codes` and print."""
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode not in ok_codes or not result.stdout:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return elapsed


def report_against_floor(
    label: str, floor: list[float], times: list[float], goal: float | None
) -> bool:
    """The command's median, the floor's, and the median ratio of the pairs: the figure that
    tells whether a change made the command itself faster on a machine whose speed drifts."""
    met = report(label, times, goal)
    ratio = statistics.median(t / f for f, t in zip(floor, times, strict=True))
    print(
        f"  the library floor in the same runs: median {statistics.median(floor):.0f} ms; "
        f"the command takes {ratio:.2f}x the floor run before it (median of the pairs)"
    )
    return met


def report(label: str, times: list[float], goal: float | None) -> bool:
    median = statistics.median(times)
    met = goal is None or median < goal
    verdict = f" (goal < {goal:.0f} ms: {'met' if met else 'NOT met'})" if goal else ""
    print(
        f"{label}: median {median:.0f} ms, min {min(times):.0f} ms, max {max(times):.0f} ms "
        f"over {len(times)} runs{verdict}"
    )
    return met
