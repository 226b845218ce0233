"""The detached supervisors of a deployment, found by what they are, not by a record.

The record `supervisors/NAME.json` can be stale (a pid that exited or was reused, a record
overwritten or deleted) while a supervisor of NAME still runs and would re-create everything
`down` removes. So every process is looked at: a supervisor of NAME for this state directory
is one whose command line is `python -m orchestrator.runtime.supervise NAME --state-dir DIR`.
Each is identified by its pid and its start time (/proc/PID/stat), so a pid reused by another
process between the look and the signal is never signalled.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.state import StateStore

MODULE = "orchestrator.runtime.supervise"
KILL_WAIT_S = 10.0


@dataclass(frozen=True)
class Process:
    pid: int
    start_ticks: int  # /proc/PID/stat field 22: clock ticks after boot; with the pid, unique


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _is_supervisor_of(words: list[str], name: str, state_dir: str) -> bool:
    if MODULE not in words:
        return False
    rest = words[words.index(MODULE) + 1 :]
    if not rest or rest[0] != name:
        return False
    for flag, value in itertools.pairwise(rest):
        if flag == "--state-dir":
            return os.path.realpath(value) == state_dir
    return False


def find(store: StateStore, name: str) -> list[Process]:
    """Every running supervisor of `name` for this state directory."""
    state_dir = os.path.realpath(store.directory)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in raw.split(b"\0") if word]
        if not _is_supervisor_of(words, name, state_dir):
            continue
        ticks = _start_ticks(int(entry.name))
        if ticks is not None:
            found.append(Process(int(entry.name), ticks))
    return found


def running(process: Process) -> bool:
    """Still the same process (not exited, pid not reused) and not a zombie."""
    if _start_ticks(process.pid) != process.start_ticks:
        return False
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{process.pid}/stat").read_text(encoding="utf-8", errors="replace")
        if stat[stat.rfind(")") + 2 :].startswith("Z"):
            return False
    return True


def _signal(process: Process, signum: int) -> None:
    if running(process):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signum)


def _wait(processes: list[Process], timeout_s: float) -> list[Process]:
    deadline = time.monotonic() + timeout_s
    left = [p for p in processes if running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if running(p)]
    return left


def stop(store: StateStore, name: str, *, timeout_s: float = 30.0) -> tuple[int, list[Process]]:
    """SIGTERM every supervisor of `name` (SIGKILL after `timeout_s`); returns how many were
    found and the ones still running after that (none, unless they cannot be signalled)."""
    found = find(store, name)
    for process in found:
        _signal(process, signal.SIGTERM)
    left = _wait(found, timeout_s)
    for process in left:
        _signal(process, signal.SIGKILL)
    return len(found), _wait(left, KILL_WAIT_S)
