"""The detached supervisor: one process per deployment that outlives `deploy up`.

`up` starts `python -m orchestrator.runtime.supervise NAME` in a new session (no controlling
terminal, so closing the terminal or a dropped ssh connection does not reach it), with stdin
closed and its output appended to `supervisors/NAME.log` in the state directory. The process
writes `supervisors/NAME.json` (pid, start time, heartbeat) while it runs; `status` reads it,
`down` and the next `up` stop the process first. Secrets stay where they were: in the
environment the process inherited from `up`, never in a file. See docs/supervision.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.state import StateStore, validate_name

MODULE = "orchestrator.runtime.supervise"
# A heartbeat older than this means the process is stuck or gone.
STALE_AFTER_S = 60.0


@dataclass(frozen=True)
class SupervisorRecord:
    pid: int
    started_at: float
    heartbeat_at: float
    state: str  # supervising | reconnecting | gave-up
    detail: str = ""

    def alive(self) -> bool:
        return _is_ours(self.pid)


def record_path(store: StateStore, name: str) -> Path:
    return store.directory / "supervisors" / f"{validate_name(name)}.json"


def log_path(store: StateStore, name: str) -> Path:
    return store.directory / "supervisors" / f"{validate_name(name)}.log"


def read_record(store: StateStore, name: str) -> SupervisorRecord | None:
    try:
        data = json.loads(record_path(store, name).read_text(encoding="utf-8"))
        return SupervisorRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def write_record(store: StateStore, name: str, record: SupervisorRecord) -> None:
    """Atomically (temporary file + rename), so `status` never reads half a record."""
    from orchestrator.files import write_atomically

    write_atomically(record_path(store, name), json.dumps(record.__dict__))


def _is_ours(pid: int) -> bool:
    """The pid runs our supervisor module (a recycled pid of another program does not count)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return MODULE.encode() in cmdline


def spawn(
    name: str,
    store: StateStore,
    *,
    max_restarts: int,
    restart_window_s: float,
    with_gpus: bool = True,
) -> SupervisorRecord:
    """Start the detached supervisor of `name` and wait until it reports in (its first
    heartbeat), so `up` can say who supervises."""
    log = log_path(store, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    record_path(store, name).unlink(missing_ok=True)
    command = [
        sys.executable,
        "-m",
        MODULE,
        name,
        "--state-dir",
        str(store.directory.resolve()),
        "--max-restarts",
        str(max_restarts),
        "--restart-window",
        str(restart_window_s),
        *([] if with_gpus else ["--without-gpus"]),
    ]
    with open(log, "ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no controlling terminal: SIGHUP on logout never reaches it
            close_fds=True,
            cwd="/",
        )
    # Wait until it has adopted the deployment (or says why not), so `status` right after
    # `up` shows it supervising.
    deadline = time.monotonic() + 60
    record = None
    while time.monotonic() < deadline:
        record = read_record(store, name)
        if record is not None and record.pid == process.pid and record.state != "starting":
            return record
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if record is not None and record.pid == process.pid and process.poll() is None:
        return record
    tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
    from orchestrator.errors import RuntimeFailure

    raise RuntimeFailure(
        f"the supervisor of {name} did not start ({tail[0] if tail else 'no output'})",
        f"see {log}; `deploy up --foreground` supervises from the terminal instead",
    )


def stop(store: StateStore, name: str, *, timeout_s: float = 30.0) -> bool:
    """Stop every detached supervisor of `name` (SIGTERM, then SIGKILL after `timeout_s`);
    True if one was stopped. They are found by what they are (`supervisor_procs`), not by the
    record, which may be stale or name a pid since reused."""
    from orchestrator.runtime import supervisor_procs

    count, _ = supervisor_procs.stop(store, name, timeout_s=timeout_s)
    record_path(store, name).unlink(missing_ok=True)
    return count > 0


def describe(record: SupervisorRecord | None, now: float | None = None) -> str:
    """One line for `status`: who supervises and since when."""
    if record is None:
        return "supervisor: none (run `deploy up` again to supervise it)"
    now = time.time() if now is None else now
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started_at))
    if not record.alive():
        if record.state == "gave-up":
            return f"supervisor: gave up ({record.detail}); fix it and run `deploy up` again"
        return f"supervisor: not running (pid {record.pid} is gone; run `deploy up` again)"
    age = now - record.heartbeat_at
    stale = f", no heartbeat for {age:.0f}s" if age > STALE_AFTER_S else ""
    detail = f": {record.detail}" if record.detail else ""
    return f"supervisor: pid {record.pid} since {since} ({record.state}{detail}{stale})"
