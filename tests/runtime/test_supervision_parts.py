"""The parts of supervision that need no daemon: the lock, signals as interrupts, the restart
window, the supervisor record, and where rank 0's rendezvous endpoint is."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from orchestrator.group_health import group_peer, restart_policy
from orchestrator.runtime import detached
from orchestrator.runtime.interrupts import Interrupted, shielded, signals_as_interrupts
from orchestrator.runtime.lock import DeploymentBusy, deployment_lock
from orchestrator.runtime.units import Unit, failures_in_window
from orchestrator.state import StateStore


def test_one_lock_holder_per_deployment_name(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with deployment_lock(store, "a"):
        with pytest.raises(DeploymentBusy) as caught, deployment_lock(store, "a"):
            pass
        assert str(caught.value) == (
            f"another `deploy` command is working on a right now (pid {os.getpid()}); wait "
            "for it to finish, then run `deploy up` again"
        )
        with deployment_lock(store, "b"):  # another name is another lock
            pass
    with deployment_lock(store, "a"):  # released with its holder
        pass


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stopping_signals_become_interrupts_and_a_second_one_is_only_noted(
    number: signal.Signals,
) -> None:
    notes: list[str] = []
    with pytest.raises(Interrupted) as caught, signals_as_interrupts():
        os.kill(os.getpid(), number)
        time.sleep(10)  # the handler raises at once; this is never reached
    assert caught.value.signal_name == number.name
    with shielded(notes.append):
        os.kill(os.getpid(), number)
    assert notes == [f"{number.name} received: still cleaning up, please wait"]


def test_restart_budget_counts_failures_inside_the_window() -> None:
    unit = Unit(key="serve-0", members=[])
    assert [failures_in_window(unit, t, 600) for t in (0, 10, 20)] == [1, 2, 3]
    # Healthy for longer than the window: the next failure is the first again.
    assert failures_in_window(unit, 700, 600) == 1


def test_supervisor_record_and_description(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert detached.describe(None) == "supervisor: none (run `deploy up` again to supervise it)"
    gone = detached.SupervisorRecord(pid=2**22 + 1, started_at=0, heartbeat_at=0, state="x")
    detached.write_record(store, "d", gone)
    assert detached.read_record(store, "d") == gone
    assert detached.describe(gone).startswith("supervisor: not running (pid 4194305 is gone")
    assert detached.stop(store, "d") is False
    assert detached.read_record(store, "d") is None


def test_rank_zero_rendezvous_endpoint_from_each_engines_flags() -> None:
    assert group_peer(["--master-addr", "10.0.0.1", "--master-port", "29601"]) == (
        "10.0.0.1",
        29601,
    )
    assert group_peer(["--dist-init-addr", "10.0.0.1:5000"]) == ("10.0.0.1", 5000)
    assert group_peer(["start", "--block", "--address=10.0.0.1:6379"]) == ("10.0.0.1", 6379)
    dp = ["--data-parallel-address", "10.0.0.1", "--data-parallel-rpc-port", "29550"]
    # vLLM closes the DP RPC port after the start-up handshake: never a health check target.
    assert group_peer(dp) is None
    assert group_peer(["--port", "8000"]) is None
    assert (restart_policy("serve-0"), restart_policy(None)) == ("no", "unless-stopped")
