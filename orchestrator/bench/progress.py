"""A live progress line per level (rich, imported only when shown)."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.bench.loadgen import Progress
from orchestrator.bench.runner import LevelResult


class LiveProgress:
    """Shows the running level's counters; prints one summary line per finished level."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(stderr=True, highlight=False)
        self._progress: Progress | None = None
        self._live = Live(
            console=self._console, refresh_per_second=4, transient=True, get_renderable=self._render
        )

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def level_started(self, progress: Progress) -> None:
        self._progress = progress

    def level_finished(self, result: LevelResult) -> None:
        m = result.metrics
        flag = "  [yellow]client-bound[/]" if result.check.client_bound else ""
        errors = sum(m.errors.values())
        self._console.print(
            f"{result.spec.label:>14}  {m.request_throughput:8.2f} req/s  "
            f"{m.output_throughput:9.1f} tok/s  errors {errors}/{m.requests}{flag}"
        )

    def _render(self) -> Any:
        from rich.text import Text

        p = self._progress
        if p is None:
            return Text("connecting ...")
        window = ""
        if p.window_open_at is not None and p.phase == "window":
            elapsed = time.perf_counter() - p.window_open_at
            if p.duration is not None:
                window = f"  {elapsed:5.1f}/{p.duration:g} s"
            elif p.target is not None:
                window = f"  {p.in_window}/{p.target} requests"
        return Text(
            f"{p.label:>14}  {p.phase:<7}{window}  sent {p.started}  done {p.finished}"
            f"  errors {p.errors}"
        )
