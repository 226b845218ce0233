"""`down` is exact or refuses: it reaches the daemons recorded at `up` whatever DOCKER_HOST says
now, waits for no `up` of the same name, stops the real supervisor whatever its record says,
falls back to labels past a corrupt state file; a supervisor that saves while its daemon is
away keeps the endpoint URL, so `bench NAME` still finds the deployment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.runtime import detached, supervisor_procs
from orchestrator.state import DeploymentState, NodeInfo, StateStore, find_endpoint

from .conftest import REPO_ROOT, free_port, server_spec, stop_supervisors_of, supervisor_pids
from .test_cli_up import SIM_ENV, invoke, services
from .test_detached import up_args, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def _down(runner: CliRunner, name: str, state_dir: Path, **env: Any) -> Any:
    return runner.invoke(cli, ["down", "--name", name, "--state-dir", str(state_dir)], env=env)


def test_down_reaches_the_daemon_recorded_at_up_not_todays_docker_host(
    docker_client: Any,
    second_daemon: str,
    sim_image: str,
    cli_runner: CliRunner,
    state_dir: Path,
    deployment: str,
    request: Any,
    tmp_path: Path,
) -> None:
    import docker

    request.node.extra_endpoints = [second_daemon]
    # The node names "this machine's Docker" (as the bundled cluster files do), which
    # DOCKER_HOST pointed at the second daemon when `up` ran.
    cluster = tmp_path / "one.yaml"
    cluster.write_text(
        "name: one\nfabric: ethernet\ndefaults: {gpus: 1xH100-80GB-SXM}\nnodes:\n"
        "  - {name: node0, address: 127.0.0.1, docker: 'unix:///var/run/docker.sock'}\n",
        encoding="utf-8",
    )
    args = up_args(deployment, state_dir)
    args[2:4] = ["--cluster", str(cluster)]
    up = invoke(cli_runner, args, DOCKER_HOST=second_daemon)
    assert up.exit_code == 0, up.output
    other = docker.DockerClient(base_url=second_daemon, timeout=30)
    try:
        assert sorted(services(other, deployment)) == ["serve-0"]
        assert services(docker_client, deployment) == {}
        state = StateStore(state_dir).load(deployment)
        assert state is not None and set(state.docker_urls.values()) == {second_daemon}
        (supervisor,) = supervisor_pids(deployment)
        # Today's environment names the default socket, where nothing of it runs.
        down = _down(cli_runner, deployment, state_dir, DOCKER_HOST=None)
        assert down.exit_code == 0, down.output
        assert down.stdout == f"removed {deployment}: 1 containers, 1 networks, 0 volumes\n"
        assert services(other, deployment) == {}
        assert supervisor not in supervisor_pids(deployment)
        assert not (state_dir / f"{deployment}.json").exists()
    finally:
        other.close()


def test_down_waits_for_no_up_of_the_same_name_it_refuses(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    env = {**os.environ, **SIM_ENV, "DEPLOY_SIM_LOAD_SECONDS": "600"}
    up = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *up_args(deployment, state_dir)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # `up` holds the lock and has started its engine, which loads for ten minutes.
        wait_for(lambda: services(docker_client, deployment), 120, "up started no container")
        down = _down(cli_runner, deployment, state_dir)
        assert down.exit_code == 1, down.output
        assert down.stderr == (
            f"error: another `deploy` command is working on {deployment} right now "
            f"(pid {up.pid}); wait for it to finish, then run `deploy down` again\n"
        )
        assert sorted(services(docker_client, deployment)) == ["serve-0"]
    finally:
        up.send_signal(signal.SIGINT)
        up.communicate(timeout=180)
    # Once `up` is gone (it removed what it started), `down` runs and finds nothing left.
    assert services(docker_client, deployment) == {}
    assert _down(cli_runner, deployment, state_dir).exit_code == 0


def test_a_stale_supervisor_record_does_not_leave_the_supervisor_running(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    up = invoke(cli_runner, up_args(deployment, state_dir))
    assert up.exit_code == 0, up.output
    store = StateStore(state_dir)
    (supervisor,) = supervisor_pids(deployment)
    # The record names a process that has exited (as after a crash and a pid long reused).
    exited = subprocess.Popen(["true"])
    exited.wait(timeout=30)
    record = detached.read_record(store, deployment)
    assert record is not None and record.pid == supervisor
    path = detached.record_path(store, deployment)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "pid": exited.pid}))
    down = _down(cli_runner, deployment, state_dir)
    assert down.exit_code == 0, down.output
    # The live supervisor was found by what it is and stopped before anything was removed:
    # it is gone, so nothing can come back.
    assert supervisor_procs.find(store, deployment) == []
    assert supervisor not in supervisor_pids(deployment)
    assert services(docker_client, deployment) == {}


def test_a_corrupt_state_file_falls_back_to_labels_and_says_so(
    docker_client: Any, sim_image: str, cli_runner: CliRunner, state_dir: Path, deployment: str
) -> None:
    up = invoke(cli_runner, up_args(deployment, state_dir))
    assert up.exit_code == 0, up.output
    # No supervisor runs (one would rewrite the file as it stops): the file stays corrupt.
    stop_supervisors_of(deployment)
    path = state_dir / f"{deployment}.json"
    path.write_text('{"version": 1, "name": "' + deployment + '", "specs": [tru')
    down = _down(cli_runner, deployment, state_dir)
    assert down.exit_code == 0, down.output
    warnings = [line for line in down.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and "is not valid" in warnings[0] and "by its labels" in warnings[0]
    assert any(f"{deployment}.json.corrupt" in line for line in warnings)
    assert down.stdout == f"removed {deployment}: 1 containers, 1 networks, 0 volumes\n"
    assert services(docker_client, deployment) == {}
    assert supervisor_pids(deployment) == []
    assert not path.exists() and path.with_suffix(".json.corrupt").exists()


def test_a_supervisor_saving_while_its_daemon_is_away_keeps_the_endpoint_url(
    tmp_path: Path,
) -> None:
    """The detached supervisor adopts the deployment again and again while the node's daemon
    does not answer; each failed round saves the state. The URL `up` recorded survives."""
    store = StateStore(tmp_path / "state")
    name = f"t-away-{os.getpid()}"
    away = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    spec = server_spec("serve-0", "deploy-sim:latest")
    url = "http://127.0.0.1:18123"
    created = 1_000_000.0
    store.save(
        DeploymentState(
            name=name,
            plan_hash="p1",
            specs=[spec],
            nodes=[NodeInfo(name="node0", docker=away)],
            endpoint_url=url,
            networks={away: "net-id"},
            created_at=created,
        )
    )
    log = detached.log_path(store, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                detached.MODULE,
                name,
                "--state-dir",
                str(store.directory.resolve()),
                "--without-gpus",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
    try:
        # Two failed rounds: the second adopts afresh, before it has read anything.
        wait_for(lambda: log.read_text().count("retrying in") >= 2, 120, "no second retry")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    state = store.load(name)
    assert state is not None
    assert state.endpoint_url == url and find_endpoint(name, store.directory) == url
    assert state.networks == {away: "net-id"} and state.created_at == created
    assert state.docker_urls == {"node0": away}
