"""`python -m orchestrator.runtime.supervise NAME`: the detached supervisor of one deployment.

Started by `deploy up` (see `orchestrator.runtime.detached`); runs until `deploy down` (or
the next `up`) sends SIGTERM, or a service exhausts its restart budget. A lost Docker daemon
is waited for, not fatal: when it answers again the deployment is adopted afresh, and what
the daemon restart stopped (groups have no Docker restart policy) is started again.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from orchestrator.errors import DeployError
from orchestrator.runtime.detached import SupervisorRecord, write_record
from orchestrator.state import StateStore

RECONNECT_MAX_S = 30.0
HEARTBEAT_EVERY_S = 2.0


def _log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)


class _Heartbeat:
    def __init__(self, store: StateStore, name: str) -> None:
        self.store, self.name = store, name
        self.started_at = time.time()
        self.state, self.detail = "starting", ""
        self._last = 0.0

    def beat(
        self, state: str | None = None, detail: str | None = None, force: bool = False
    ) -> None:
        changed = (state, detail) != (self.state, self.detail)
        if state is not None:
            self.state = state
        if detail is not None:
            self.detail = detail
        now = time.time()
        if not force and not changed and now - self._last < HEARTBEAT_EVERY_S:
            return
        self._last = now
        record = SupervisorRecord(
            pid=os.getpid(),
            started_at=self.started_at,
            heartbeat_at=now,
            state=self.state,
            detail=self.detail,
        )
        write_record(self.store, self.name, record)


def _ticker(heartbeat: _Heartbeat, supervisor: Any) -> Callable[[], None]:
    def tick() -> None:
        # Units it stopped restarting (kept, with their logs) stay visible in `status`.
        gave_up = sorted(supervisor.gave_up)
        heartbeat.beat("supervising", f"gave up on {', '.join(gave_up)}" if gave_up else "")

    return tick


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.runtime.supervise")
    parser.add_argument("name")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--restart-window", type=float, default=600.0)
    parser.add_argument("--without-gpus", action="store_true", help="a simulated deployment")
    args = parser.parse_args(argv)

    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.runtime.progress import LineReporter
    from orchestrator.runtime.supervisor import ServiceGaveUp, Supervisor, SupervisorOptions

    store = StateStore(args.state_dir)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        _log(f"received {signal.Signals(signum).name}; stopping supervision")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # belt and braces: no terminal to hang up
    heartbeat = _Heartbeat(store, args.name)
    heartbeat.beat("starting", force=True)
    delay = 1.0
    while not stop.is_set():
        state = store.load(args.name)
        if state is None:
            _log(f"{args.name} has no state file any more; nothing to supervise")
            return 0
        options = SupervisorOptions(
            max_restarts=args.max_restarts,
            restart_window_s=args.restart_window,
            with_gpus=not args.without_gpus,
        )
        try:
            with Endpoints() as endpoints:
                supervisor = Supervisor(
                    args.name,
                    state.specs,
                    state.nodes,
                    store=store,
                    endpoints=endpoints,
                    options=options,
                    reporter=LineReporter(sys.stdout),
                    plan=state.plan,
                    plan_hash=state.plan_hash,
                    files_dir=store.files_dir(args.name),
                )
                supervisor.on_tick = _ticker(heartbeat, supervisor)
                _log(f"supervising {args.name}")
                supervisor.resume(stop=stop)
                delay = 1.0
        except ServiceGaveUp as error:
            _log(f"gave up: {error}")
            heartbeat.beat("gave-up", str(error.message)[:200], force=True)
            return 1
        except DeployError as error:  # the daemon went away: wait for it and adopt again
            _log(f"{error}; retrying in {delay:.0f}s")
            heartbeat.beat("reconnecting", error.message[:200], force=True)
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
    heartbeat.beat("stopped", force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
