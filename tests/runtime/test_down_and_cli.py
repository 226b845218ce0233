"""`down` by labels (with and without a state file), `status`, `logs`, and the CLI's errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.docker.endpoints import Endpoints, connect
from orchestrator.errors import DockerUnavailableError
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
from orchestrator.spec import LABEL_DEPLOYMENT, Mount
from orchestrator.state import StateStore

from .conftest import local_node, server_spec

pytestmark = pytest.mark.docker

FAST = SupervisorOptions(timeout_s=90, max_restarts=1, poll_s=0.2)


def up(name: str, specs: list[Any], store: StateStore, endpoints: Endpoints) -> Supervisor:
    supervisor = Supervisor(
        name, specs, [local_node()], store=store, endpoints=endpoints, options=FAST
    )
    supervisor.up()
    return supervisor


def labelled(client: Any, kind: str, name: str) -> list[Any]:
    collection = getattr(client, kind)
    filters = {"label": f"{LABEL_DEPLOYMENT}={name}"}
    if kind == "containers":
        return list(collection.list(all=True, filters=filters))
    return list(collection.list(filters=filters))


def test_down_removes_containers_network_and_volume_it_created_and_the_state(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
    cli_runner: CliRunner,
) -> None:
    volume = f"{deployment}-cache"
    serve = server_spec("serve-0", sim_image).model_copy(
        update={"mounts": [Mount(source=volume, target="/cache")]}
    )
    other = server_spec("serve-1", sim_image)
    up(deployment, [serve, other], state_store, endpoints)
    assert len(labelled(docker_client, "containers", deployment)) == 2
    assert len(labelled(docker_client, "networks", deployment)) == 1
    assert len(labelled(docker_client, "volumes", deployment)) == 1
    # A volume the user made beforehand is theirs: `down` must leave it.
    mine = docker_client.volumes.create(name=f"{deployment}-mine")
    try:
        result = cli_runner.invoke(
            cli, ["down", "--name", deployment, "--state-dir", str(state_store.directory)]
        )
        assert result.exit_code == 0, result.output
        assert result.output == f"removed {deployment}: 2 containers, 1 networks, 1 volumes\n"
        assert labelled(docker_client, "containers", deployment) == []
        assert labelled(docker_client, "networks", deployment) == []
        assert labelled(docker_client, "volumes", deployment) == []
        assert state_store.load(deployment) is None
        assert docker_client.volumes.get(mine.name) is not None
    finally:
        mine.remove(force=True)
    again = cli_runner.invoke(
        cli, ["down", "--name", deployment, "--state-dir", str(state_store.directory)]
    )
    assert again.exit_code == 0 and again.output == f"nothing to remove for {deployment}\n"


def test_down_finds_containers_by_label_after_the_state_file_is_lost(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
    cli_runner: CliRunner,
) -> None:
    up(deployment, [server_spec("serve-0", sim_image)], state_store, endpoints)
    assert state_store.delete(deployment)
    result = cli_runner.invoke(
        cli, ["down", "--name", deployment, "--state-dir", str(state_store.directory), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["deployments"] == [deployment]
    assert data["containers"] == 1 and data["networks"] == 1
    assert labelled(docker_client, "containers", deployment) == []


def test_status_and_logs(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
    cli_runner: CliRunner,
) -> None:
    supervisor = up(deployment, [server_spec("serve-0", sim_image)], state_store, endpoints)
    state_dir = str(state_store.directory)
    result = cli_runner.invoke(cli, ["status", "--name", deployment, "--state-dir", state_dir])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{deployment}  {supervisor.url}"
    # Started by the library, not `deploy up`: no detached supervisor watches it.
    assert lines[1] == "  supervisor: none (run `deploy up` again to supervise it)"
    del lines[1]
    assert lines[1].split() == [
        "SERVICE",
        "NODE",
        "ROLE",
        "STATE",
        "HEALTH",
        "RESTARTS",
        "UPTIME",
        "GPU",
    ]
    assert lines[2].split()[:6] == ["serve-0", "node0", "serve", "running", "ready", "0"]

    as_json = cli_runner.invoke(
        cli, ["status", "--name", deployment, "--state-dir", state_dir, "--json"]
    )
    data = json.loads(as_json.output)
    assert data[0]["name"] == deployment and data[0]["endpoint_url"] == supervisor.url
    service = data[0]["services"][0]
    assert service["health"] == "ready" and service["uptime_s"] >= 0 and service["gpus"] == []

    # Without --name, the deployment is listed too; without its state file, found by label.
    state_store.delete(deployment)
    listed = cli_runner.invoke(cli, ["status", "--state-dir", state_dir, "--json"])
    names = [d["name"] for d in json.loads(listed.output)]
    assert deployment in names

    logs = cli_runner.invoke(
        cli, ["logs", "serve-0", "--name", deployment, "--state-dir", state_dir, "--tail", "1"]
    )
    assert logs.exit_code == 0 and logs.output == "ready\n"
    unknown = cli_runner.invoke(
        cli, ["logs", "nope", "--name", deployment, "--state-dir", state_dir]
    )
    assert unknown.exit_code == 2
    assert (
        unknown.output
        == f"error: no service 'nope' in deployment '{deployment}'; services: serve-0\n"
    )


def test_logs_without_any_deployment_says_so(tmp_path: Path, cli_runner: CliRunner) -> None:
    result = cli_runner.invoke(cli, ["logs", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: no deployment recorded in {tmp_path}; start one with `deploy up`, "
        "or pass --name NAME for one started elsewhere\n"
    )


def test_logs_with_several_deployments_asks_which(tmp_path: Path, cli_runner: CliRunner) -> None:
    from orchestrator.state import DeploymentState

    store = StateStore(tmp_path)
    for name in ("beta", "alpha"):
        store.save(DeploymentState(name=name, specs=[], nodes=[]))
    result = cli_runner.invoke(cli, ["logs", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == "error: say which deployment (alpha, beta); pass --name NAME\n"


def test_an_unreachable_daemon_is_one_line_and_exit_2(
    tmp_path: Path, deployment: str, cli_runner: CliRunner
) -> None:
    missing = f"unix://{tmp_path}/nothing.sock"
    with pytest.raises(DockerUnavailableError) as caught:
        connect(missing)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach the Docker daemon at {missing} (")
    assert message.endswith(
        f"start dockerd (systemctl start docker) and check that {tmp_path}/nothing.sock exists "
        "and that you may use it (root or the docker group)"
    )
    assert caught.value.exit_code == 2

    result = cli_runner.invoke(
        cli, ["down", "--name", deployment, "--docker", missing, "--state-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"error: removed 0 containers but could not reach {missing}")
    with pytest.raises(DockerUnavailableError, match=r"unsupported Docker endpoint 'ftp://x'"):
        connect("ftp://x")


def test_logs_follow_ends_when_the_container_stops(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    import threading

    from orchestrator.runtime.logs import show_logs

    up(
        deployment,
        [server_spec("serve-0", sim_image), server_spec("serve-1", sim_image)],
        state_store,
        endpoints,
    )
    lines: list[str] = []
    follower = threading.Thread(
        target=show_logs,
        args=(None,),
        kwargs={
            "name": deployment,
            "follow": True,
            "tail": None,
            "echo": lines.append,
            "store": state_store,
            "endpoints": endpoints,
        },
        daemon=True,
    )
    follower.start()
    for container in labelled(docker_client, "containers", deployment):
        container.stop(timeout=1)
    follower.join(timeout=30)
    assert not follower.is_alive()
    assert "serve-0 | ready" in lines and "serve-1 | ready" in lines
