"""The detached supervisor: a deployment stays supervised after `deploy up` returns, `status`
says by whom, `down` stops it first; a second `up` of the same name loses cleanly; signals
during `up` leave nothing (or what `--keep` asked for) and say which."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.runtime import detached
from orchestrator.runtime.lock import deployment_lock
from orchestrator.spec import LABEL_DEPLOYMENT
from orchestrator.state import StateStore
from tests.conftest import ENDPOINT_OFFSETS, free_port

from .conftest import REPO_ROOT, supervisor_pids
from .test_cli_up import SIM_ENV, invoke, services

pytestmark = pytest.mark.docker


# One free endpoint port for this module's deployments (they run one at a time).
PORT = free_port(ENDPOINT_OFFSETS)


def up_args(name: str, state_dir: Path, *extra: str) -> list[str]:
    return [
        "up",
        "qwen3-8b",
        "--gpus",
        "1xH100",
        "--port",
        str(PORT),
        "--simulate",
        "--name",
        name,
        "--state-dir",
        str(state_dir),
        "--timeout",
        "120",
        *extra,
    ]


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f}s")


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_a_killed_engine_comes_back_after_up_returned_and_down_stops_the_supervisor(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    result = invoke(cli_runner, up_args(deployment, state_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{deployment} is ready: http://127.0.0.1:{PORT}\n"
    store = StateStore(state_dir)
    record = detached.read_record(store, deployment)
    assert record is not None and record.alive()
    log = detached.log_path(store, deployment)
    assert result.stderr.splitlines()[-1] == f"supervised by pid {record.pid} (log: {log})"
    # The supervisor is in its own session: no terminal's hang-up reaches it.
    assert os.getsid(record.pid) == record.pid

    status = invoke(cli_runner, ["status", "--name", deployment, "--state-dir", str(state_dir)])
    assert status.exit_code == 0, status.output
    line = status.stdout.splitlines()[1]
    assert line.startswith(f"  supervisor: pid {record.pid} since ")
    assert line.endswith("(supervising)")

    # `docker kill` is a manual stop, which Docker's policy leaves alone: the supervisor
    # recreates the container; nothing of the `up` that started it is still running.
    old = services(docker_client, deployment)["serve-0"]
    old.kill()

    def replaced() -> Any:
        current = services(docker_client, deployment).get("serve-0")
        if current is not None and current.id != old.id and current.status == "running":
            return current
        return None

    new = wait_for(replaced, 60, "the killed engine was not restarted")

    def recorded() -> bool:
        state = store.load(deployment)
        return (
            state is not None
            and state.restarts.get("serve-0") == 1
            and "serve-0" in state.containers
            and state.containers["serve-0"].id == new.id
        )

    wait_for(recorded, 60, "the restart was not recorded in the state file")

    down = invoke(cli_runner, ["down", "--name", deployment, "--state-dir", str(state_dir)])
    assert down.exit_code == 0, down.output
    assert not record.alive()
    assert supervisor_pids(deployment) == []
    assert services(docker_client, deployment) == {}
    assert not detached.record_path(store, deployment).exists()


def test_a_crashed_single_engine_is_restarted_by_dockers_own_policy(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    result = invoke(cli_runner, up_args(deployment, state_dir))
    assert result.exit_code == 0, result.output
    try:
        container = services(docker_client, deployment)["serve-0"]
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        os.kill(container.attrs["State"]["Pid"], signal.SIGKILL)  # a crash, not a stop

        def restarted() -> bool:
            container.reload()
            return container.status == "running" and container.attrs["RestartCount"] >= 1

        wait_for(restarted, 60, "Docker did not restart the crashed engine")
        # The supervisor counted the crash against the budget, without replacing it.
        store = StateStore(state_dir)
        wait_for(
            lambda: (s := store.load(deployment)) and s.restarts.get("serve-0") == 1,
            60,
            "the supervisor did not count the crash",
        )
        assert services(docker_client, deployment)["serve-0"].id == container.id
    finally:
        invoke(cli_runner, ["down", "--name", deployment, "--state-dir", str(state_dir)])


def test_status_exits_non_zero_when_a_service_is_down(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    result = invoke(cli_runner, up_args(deployment, state_dir))
    assert result.exit_code == 0, result.output
    try:
        # With its supervisor stopped, nothing brings a stopped engine back.
        detached.stop(StateStore(state_dir), deployment)
        services(docker_client, deployment)["serve-0"].stop(timeout=5)
        status = invoke(cli_runner, ["status", "--name", deployment, "--state-dir", str(state_dir)])
        assert status.exit_code == 1
        assert status.stderr == (
            f"error: 1 service down: {deployment}/serve-0; `deploy logs SERVICE --name NAME` "
            "shows why; `deploy up` starts it again\n"
        )
        assert "supervisor: none (run `deploy up` again to supervise it)" in status.stdout
    finally:
        invoke(cli_runner, ["down", "--name", deployment, "--state-dir", str(state_dir)])


def test_a_second_up_of_the_same_name_loses_with_a_clear_message(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    with deployment_lock(StateStore(state_dir), deployment):
        result = invoke(cli_runner, up_args(deployment, state_dir))
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: another `deploy` command is working on {deployment} right now "
        f"(pid {os.getpid()}); wait for it to finish, then run `deploy up` again\n"
    )
    assert services(docker_client, deployment) == {}


def _up_process(name: str, state_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, **SIM_ENV, "DEPLOY_SIM_LOAD_SECONDS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *up_args(name, state_dir, *extra)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("signals", "keep"),
    [
        ([signal.SIGTERM], False),
        ([signal.SIGHUP], False),
        ([signal.SIGINT, signal.SIGINT], False),
        ([signal.SIGTERM], True),
    ],
    ids=["sigterm", "sighup", "double-ctrl-c", "sigterm-keep"],
)
def test_signals_during_up_leave_nothing_or_what_keep_asked_for(
    docker_client: Any,
    sim_image: str,
    state_dir: Path,
    deployment: str,
    signals: list[signal.Signals],
    keep: bool,
) -> None:
    process = _up_process(deployment, state_dir, *(["--keep"] if keep else []))
    try:
        wait_for(lambda: services(docker_client, deployment), 90, "up started nothing")
        for number in signals:
            process.send_signal(number)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    name = signals[0].name
    assert process.returncode == 128 + signals[0].value
    done = (
        "left what it started running (--keep)"
        if keep
        else "removed what it started (containers, network, state)"
    )
    assert stderr.splitlines()[-1] == f"error: interrupted by {name}: `deploy up` {done}"
    networks = docker_client.networks.list(filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"})
    if keep:
        assert list(services(docker_client, deployment)) == ["serve-0"]
        assert (state_dir / f"{deployment}.json").exists()
    else:
        assert services(docker_client, deployment) == {}
        assert networks == []
        assert not (state_dir / f"{deployment}.json").exists()
    assert supervisor_pids(deployment) == []
