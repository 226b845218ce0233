"""Two nodes = two Docker Engines (a second dockerd on its own socket): a multi-node engine
group plus its router, a rank lost on the second node, and `down` across both."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.docker.endpoints import Endpoints
from orchestrator.runtime.down import down
from orchestrator.runtime.probes import http_check
from orchestrator.runtime.supervisor import ServiceGaveUp, Supervisor, SupervisorOptions
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_SERVICE
from orchestrator.state import StateStore

from .conftest import local_node, server_spec

pytestmark = pytest.mark.docker

FAST = SupervisorOptions(timeout_s=90, max_restarts=1, backoff_base_s=0.2, poll_s=0.2)


@pytest.fixture
def node1(second_daemon: str) -> Iterator[Any]:
    import docker

    client = docker.DockerClient(base_url=second_daemon, timeout=30)
    yield client
    client.close()


def labelled(client: Any, name: str) -> dict[str, Any]:
    found = client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_DEPLOYMENT}={name}"}
    )
    return {c.labels[LABEL_SERVICE]: c for c in found}


def two_node_specs(image: str, rank1_fault: str = "") -> list[Any]:
    return [
        server_spec("serve-0-rank0", image, node="node0", group="serve-0", load_s=1.0),
        server_spec(
            "serve-0-rank1",
            image,
            node="node1",
            group="serve-0",
            rank=1,
            http=False,
            fault=rank1_fault,
        ),
        server_spec(
            "router",
            image,
            node="node0",
            role="router",
            depends_on=["serve-0-rank0", "serve-0-rank1"],
        ),
    ]


def test_two_node_group_with_router_restart_and_down(
    docker_client: Any,
    node1: Any,
    second_daemon: str,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    nodes = [local_node("node0"), local_node("node1", docker=second_daemon)]
    specs = two_node_specs(sim_image)
    supervisor = Supervisor(
        deployment, specs, nodes, store=state_store, endpoints=endpoints, options=FAST
    )
    try:
        url = supervisor.up()
        assert url == f"http://127.0.0.1:{specs[2].ports[0].host}"
        assert http_check(f"{url}/health", 2)[0]
        assert sorted(labelled(docker_client, deployment)) == ["router", "serve-0-rank0"]
        assert sorted(labelled(node1, deployment)) == ["serve-0-rank1"]
        state = state_store.load(deployment)
        assert state is not None
        assert state.containers["serve-0-rank1"].endpoint == second_daemon
        assert state.endpoints() == sorted([second_daemon, "unix:///var/run/docker.sock"])

        # Rank 1 dies on node1: the whole group (both nodes) restarts; the router stays.
        before_rank0 = labelled(docker_client, deployment)["serve-0-rank0"].id
        before_router = labelled(docker_client, deployment)["router"].id
        stop = threading.Event()
        watcher = threading.Thread(target=supervisor.watch, kwargs={"stop": stop, "duration_s": 60})
        watcher.start()
        try:
            labelled(node1, deployment)["serve-0-rank1"].kill()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                rank0 = labelled(docker_client, deployment).get("serve-0-rank0")
                rank1 = labelled(node1, deployment).get("serve-0-rank1")
                if (
                    rank0 is not None
                    and rank0.id != before_rank0
                    and rank0.status == "running"
                    and rank1 is not None
                    and rank1.status == "running"
                ):
                    break
                time.sleep(0.2)
        finally:
            stop.set()
            watcher.join(timeout=30)
        assert labelled(docker_client, deployment)["serve-0-rank0"].id != before_rank0
        assert labelled(docker_client, deployment)["router"].id == before_router
        assert labelled(node1, deployment)["serve-0-rank1"].status == "running"

        # A new plan on node0 only: what ran on node1 is stale and goes.
        single = server_spec("serve-0", sim_image, node="node0")
        Supervisor(
            deployment,
            [single],
            [local_node("node0")],
            store=state_store,
            endpoints=endpoints,
            options=FAST,
        ).up()
        assert sorted(labelled(docker_client, deployment)) == ["serve-0"]
        assert labelled(node1, deployment) == {}
    finally:
        result = down(
            deployment, store=state_store, endpoints=endpoints, extra_endpoints=[second_daemon]
        )
    assert result.containers == 1
    assert labelled(docker_client, deployment) == {} and labelled(node1, deployment) == {}
    assert node1.networks.list(filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"}) == []


def test_failed_two_node_start_leaves_no_orphans_and_down_without_state_uses_endpoints(
    docker_client: Any,
    node1: Any,
    second_daemon: str,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    nodes = [local_node("node0"), local_node("node1", docker=second_daemon)]
    failing = Supervisor(
        deployment,
        two_node_specs(sim_image, rank1_fault="exit-on-start"),
        nodes,
        store=state_store,
        endpoints=endpoints,
        options=FAST,
    )
    with pytest.raises(ServiceGaveUp, match="serve-0 failed 2 times"):
        failing.up()
    assert labelled(docker_client, deployment) == {} and labelled(node1, deployment) == {}
    assert node1.networks.list(filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"}) == []

    Supervisor(
        deployment,
        two_node_specs(sim_image),
        nodes,
        store=state_store,
        endpoints=endpoints,
        options=FAST,
    ).up()
    state_store.delete(deployment)
    result = down(
        deployment, store=state_store, endpoints=endpoints, extra_endpoints=[second_daemon]
    )
    assert result.containers == 3 and result.deployments == [deployment]
    assert labelled(docker_client, deployment) == {} and labelled(node1, deployment) == {}
