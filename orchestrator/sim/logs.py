"""Log lines shaped like the imitated program's, written and flushed one at a time."""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable

Sink = Callable[[str], None]


def stdout_sink(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class SimLog:
    """Formats lines per program style; `muted` silences it (a hung process emits nothing)."""

    def __init__(self, style: str, sink: Sink | None = None, keep: int = 2000) -> None:
        self.style = style  # "vllm", "sglang", "router", "nginx"
        self.sink = sink
        self.lines: deque[str] = deque(maxlen=keep)
        self.muted = False

    def _emit(self, line: str) -> None:
        if self.muted:
            return
        self.lines.append(line)
        if self.sink is not None:
            self.sink(line)

    def info(self, message: str, source: str = "api_server.py:1") -> None:
        self._emit(self._format("INFO", message, source))

    def warning(self, message: str, source: str = "api_server.py:1") -> None:
        self._emit(self._format("WARNING", message, source))

    def error(self, message: str, source: str = "api_server.py:1") -> None:
        self._emit(self._format("ERROR", message, source))

    def raw(self, message: str) -> None:
        """A line printed as is (uvicorn's own lines, tracebacks)."""
        if self.style == "sglang":
            self._emit(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}")
        else:
            self._emit(message)

    def uvicorn(self, message: str) -> None:
        self.raw(f"INFO:     {message}")

    def access(self, peer: str, method: str, path: str, status: int, reason: str) -> None:
        self.uvicorn(f'{peer} - "{method} {path} HTTP/1.1" {status} {reason}')

    def _format(self, level: str, message: str, source: str) -> str:
        if self.style == "vllm":
            stamp = time.strftime("%m-%d %H:%M:%S")
            return f"(APIServer pid={os.getpid()}) {level} {stamp} [{source}] {message}"
        if self.style == "sglang":
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            return f"[{stamp}] {message}" if level == "INFO" else f"[{stamp}] {level} {message}"
        if self.style == "router":
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            return f"{stamp}  {level:>5} smg::server: {message}"
        stamp = time.strftime("%Y/%m/%d %H:%M:%S")
        return f"{stamp} [{level.lower()}] 1#1: {message}"
