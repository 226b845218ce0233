"""What `deploy up` shows while services start: a rich Live table on a terminal, plain lines
(one per state change) otherwise, so logs and CI output stay readable."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol, TextIO


@dataclass(frozen=True)
class Row:
    service: str
    node: str
    state: str
    detail: str
    restarts: int
    since: float


class Reporter(Protocol):
    def update(self, rows: list[Row]) -> None: ...

    def message(self, text: str) -> None: ...

    def close(self) -> None: ...


class QuietReporter:
    def update(self, rows: list[Row]) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class LineReporter:
    """One line per service whenever its state changes."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._seen: dict[str, tuple[str, int]] = {}
        self._t0 = time.monotonic()

    def update(self, rows: list[Row]) -> None:
        for row in rows:
            key = (row.state, row.restarts)
            if self._seen.get(row.service) == key:
                continue
            self._seen[row.service] = key
            detail = f" ({row.detail})" if row.detail and row.detail != row.state else ""
            restarts = f" [restarts: {row.restarts}]" if row.restarts else ""
            elapsed = time.monotonic() - self._t0
            self.message(
                f"[{elapsed:6.1f}s] {row.service} on {row.node}: {row.state}{detail}{restarts}"
            )

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        pass


class LiveReporter:
    """A table redrawn in place (rich is imported only when a terminal wants it)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(stderr=True)
        self._live: Any = Live(console=self._console, refresh_per_second=4, transient=False)
        self._live.start()

    def update(self, rows: list[Row]) -> None:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("service", "node", "state", "for", "restarts", "detail"):
            table.add_column(column)
        now = time.monotonic()
        colours = {"ready": "green", "loading": "yellow", "failed": "red", "backoff": "red"}
        for row in rows:
            colour = colours.get(row.state, "white")
            table.add_row(
                row.service,
                row.node,
                f"[{colour}]{row.state}[/{colour}]",
                f"{now - row.since:.0f}s",
                str(row.restarts),
                row.detail[:60],
            )
        if self._live is not None:
            self._live.update(table)

    def message(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def default_reporter(quiet: bool = False) -> Reporter:
    if quiet:
        return QuietReporter()
    if sys.stderr.isatty():
        return LiveReporter()
    return LineReporter()
