"""Ownership: what `up` creates carries its user and state directory; `down`, `status` and
`up`'s replace logic leave other state directories' deployments alone; a corrupt state file
is reported and skipped."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.docker.endpoints import Endpoints
from orchestrator.runtime.ownership import LABEL_OWNER, LABEL_STATE_DIR, OwnershipConflict
from orchestrator.runtime.supervisor import Supervisor, SupervisorOptions
from orchestrator.spec import LABEL_DEPLOYMENT, Mount
from orchestrator.state import StateStore

from .conftest import local_node, server_spec

pytestmark = pytest.mark.docker

FAST = SupervisorOptions(timeout_s=90, max_restarts=1, poll_s=0.2)


def up(
    name: str, specs: list[Any], store: StateStore, endpoints: Endpoints, **options: Any
) -> Supervisor:
    opts = SupervisorOptions(**{**FAST.__dict__, **options})
    supervisor = Supervisor(
        name, specs, [local_node()], store=store, endpoints=endpoints, options=opts
    )
    supervisor.up()
    return supervisor


def labelled(client: Any, kind: str, name: str) -> list[Any]:
    filters = {"label": f"{LABEL_DEPLOYMENT}={name}"}
    collection = getattr(client, kind)
    return list(
        collection.list(all=True, filters=filters)
        if kind == "containers"
        else collection.list(filters=filters)
    )


def test_everything_up_creates_carries_owner_and_state_directory(
    docker_client: Any, sim_image: str, deployment: str, tmp_path: Path, endpoints: Endpoints
) -> None:
    store = StateStore(tmp_path / "mine")
    volume = f"{deployment}-cache"
    spec = server_spec("serve-0", sim_image).model_copy(
        update={"mounts": [Mount(source=volume, target="/cache")]}
    )
    try:
        up(deployment, [spec], store, endpoints)
        expected = {
            LABEL_OWNER: str(os.getuid()),
            LABEL_STATE_DIR: os.path.realpath(tmp_path / "mine"),
        }
        (container,) = labelled(docker_client, "containers", deployment)
        (network,) = labelled(docker_client, "networks", deployment)
        (created,) = labelled(docker_client, "volumes", deployment)
        for labels in (container.labels, network.attrs["Labels"], created.attrs["Labels"]):
            assert {key: labels.get(key) for key in expected} == expected
    finally:
        for item in labelled(docker_client, "containers", deployment):
            item.remove(force=True)
        for item in labelled(docker_client, "volumes", deployment):
            item.remove(force=True)


def test_a_second_state_directory_cannot_take_over_or_remove_a_deployment(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    tmp_path: Path,
    endpoints: Endpoints,
    cli_runner: CliRunner,
) -> None:
    first = StateStore(tmp_path / "first")
    second = StateStore(tmp_path / "second")
    up(deployment, [server_spec("serve-0", sim_image)], first, endpoints)
    (running,) = labelled(docker_client, "containers", deployment)

    # Same (default, model-derived) name from another state directory: a conflict, no takeover.
    with pytest.raises(OwnershipConflict) as caught:
        up(deployment, [server_spec("serve-0", sim_image)], second, endpoints)
    assert str(caught.value) == (
        f"deployment {deployment} already exists and belongs to you, state directory "
        f"{os.path.realpath(first.directory)}, not to {os.path.realpath(second.directory)}; "
        "choose another --name, use that state directory (--state-dir), or pass --all-owners "
        "to take it over"
    )
    assert caught.value.exit_code == 2
    (still,) = labelled(docker_client, "containers", deployment)
    assert still.id == running.id and still.status == "running"
    assert second.load(deployment) is None

    # `down --all` from an empty state directory removes nothing of it.
    empty = str(tmp_path / "empty")
    result = cli_runner.invoke(cli, ["down", "--all", "--state-dir", empty])
    assert result.exit_code == 0, result.output
    assert result.stdout == "nothing to remove\n"
    assert f"note: left {deployment} of other state directories" in result.stderr
    assert [c.id for c in labelled(docker_client, "containers", deployment)] == [running.id]
    assert first.load(deployment) is not None

    # `down --name` from there says whose it is.
    named = cli_runner.invoke(cli, ["down", "--name", deployment, "--state-dir", empty])
    assert named.exit_code == 2
    assert named.stderr == (
        f"error: deployment {deployment} belongs to you, state directory "
        f"{os.path.realpath(first.directory)}, not to {os.path.realpath(empty)}; run "
        "`deploy down` with that --state-dir, or pass --all-owners to remove it anyway\n"
    )

    # `status` lists only this state directory's deployments, unless --all-owners.
    mine = cli_runner.invoke(cli, ["status", "--state-dir", empty, "--json"])
    assert deployment not in [d["name"] for d in json.loads(mine.stdout)]
    everyone = cli_runner.invoke(cli, ["status", "--state-dir", empty, "--json", "--all-owners"])
    assert deployment in [d["name"] for d in json.loads(everyone.stdout)]

    # --all-owners is the deliberate takeover.
    taken = up(deployment, [server_spec("serve-0", sim_image)], second, endpoints, all_owners=True)
    assert taken.replaced == ["serve-0"]
    (replacement,) = labelled(docker_client, "containers", deployment)
    assert replacement.labels[LABEL_STATE_DIR] == os.path.realpath(second.directory)
    gone = cli_runner.invoke(
        cli, ["down", "--name", deployment, "--state-dir", str(second.directory)]
    )
    assert gone.exit_code == 0, gone.output
    assert labelled(docker_client, "containers", deployment) == []


def test_a_corrupt_state_file_is_reported_and_the_others_still_listed(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
    cli_runner: CliRunner,
) -> None:
    up(deployment, [server_spec("serve-0", sim_image)], state_store, endpoints)
    broken = state_store.directory / "broken.json"
    broken.write_text('{"name": "broken", "specs": [', encoding="utf-8")
    result = cli_runner.invoke(cli, ["status", "--state-dir", str(state_store.directory), "--json"])
    assert result.exit_code == 0, result.output
    assert [d["name"] for d in json.loads(result.stdout)] == [deployment]
    assert result.stderr.startswith(f"warning: skipped state file {broken} is not valid (")
    assert result.stderr.endswith(
        "delete it; `deploy down --name broken` still finds the containers by label\n"
    )
    assert result.stderr.count("\n") == 1


def test_containers_without_owner_labels_belong_to_the_state_directory_that_records_them(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    tmp_path: Path,
    cli_runner: CliRunner,
) -> None:
    from orchestrator.state import DeploymentState, NodeInfo

    # What a deploy that wrote no owner labels left behind: a container labelled by name only.
    docker_client.containers.create(
        sim_image, command=["true"], name=f"{deployment}-old", labels={LABEL_DEPLOYMENT: deployment}
    )
    other = str(tmp_path / "other")
    left = cli_runner.invoke(cli, ["down", "--name", deployment, "--state-dir", other])
    assert left.exit_code == 2 and "belongs to no recorded owner" in left.stderr
    recorded = StateStore(tmp_path / "recorded")
    recorded.save(DeploymentState(name=deployment, specs=[], nodes=[NodeInfo(name="node0")]))
    removed = cli_runner.invoke(
        cli, ["down", "--name", deployment, "--state-dir", str(recorded.directory)]
    )
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == f"removed {deployment}: 1 containers, 0 networks, 0 volumes\n"
    assert labelled(docker_client, "containers", deployment) == []
