"""The live progress line, and that the command imports nothing heavy until it runs."""

from __future__ import annotations

import subprocess
import sys
import time

from orchestrator.bench.loadgen import Progress
from orchestrator.bench.progress import LiveProgress


def test_progress_line_shows_phase_and_counts() -> None:
    live = LiveProgress()
    assert live._render().plain == "connecting ..."
    progress = Progress(label="c=4", phase="window", started=10, finished=8, errors=1,
                        in_window=5, target=40, window_open_at=time.perf_counter())  # fmt: skip
    live.level_started(progress)
    assert (
        live._render().plain == "           c=4  window   5/40 requests  sent 10  done 8  errors 1"
    )
    progress.phase = "drain"
    assert live._render().plain == "           c=4  drain    sent 10  done 8  errors 1"


def test_the_command_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, orchestrator.cli.bench, orchestrator.bench.command;"
        "print(sorted(m for m in ('aiohttp', 'rich', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
