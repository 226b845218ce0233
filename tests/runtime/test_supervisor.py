"""The supervisor on a real Docker Engine: order, readiness, restarts, give-up, idempotence."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from orchestrator.docker.endpoints import Endpoints
from orchestrator.errors import RuntimeFailure
from orchestrator.runtime.down import down
from orchestrator.runtime.probes import http_check
from orchestrator.runtime.progress import QuietReporter, Row
from orchestrator.runtime.supervisor import ServiceGaveUp, Supervisor, SupervisorOptions
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_SERVICE, LABEL_SPEC_HASH, ServiceSpec
from orchestrator.state import StateStore

from .conftest import local_node, server_spec

pytestmark = pytest.mark.docker

FAST = SupervisorOptions(timeout_s=90, max_restarts=2, backoff_base_s=0.2, poll_s=0.2)


def labelled(client: Any, name: str) -> dict[str, Any]:
    found = client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_DEPLOYMENT}={name}"}
    )
    return {c.labels[LABEL_SERVICE]: c for c in found}


def start(
    name: str,
    specs: list[ServiceSpec],
    store: StateStore,
    endpoints: Endpoints,
    options: SupervisorOptions = FAST,
    **kwargs: Any,
) -> Supervisor:
    supervisor = Supervisor(
        name, specs, [local_node()], store=store, endpoints=endpoints, options=options, **kwargs
    )
    supervisor.up()
    return supervisor


def started_at(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def test_up_waits_for_dependencies_and_records_state(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    serve = server_spec("serve-0", sim_image, load_s=2.0)
    router = server_spec("router", sim_image, role="router", depends_on=["serve-0"])
    supervisor = start(deployment, [serve, router], state_store, endpoints)

    router_port = router.ports[0].host
    assert supervisor.url == f"http://127.0.0.1:{router_port}"
    assert http_check(f"{supervisor.url}/health", 2) == (True, "HTTP 200")
    containers = labelled(docker_client, deployment)
    assert sorted(containers) == ["router", "serve-0"]
    # The router started only once the engine had loaded (2 s after the engine started).
    assert started_at(containers["router"]) > started_at(containers["serve-0"])
    serve_logs = containers["serve-0"].logs().decode()
    assert "ready" in serve_logs
    state = state_store.load(deployment)
    assert state is not None
    assert state.endpoint_url == supervisor.url
    assert state.containers["serve-0"].id == containers["serve-0"].id
    assert state.restarts == {"serve-0": 0, "router": 0}
    assert containers["serve-0"].labels[LABEL_SPEC_HASH] == serve.spec_hash()


def test_up_is_idempotent_and_replaces_only_a_changed_service(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    serve = server_spec("serve-0", sim_image)
    router = server_spec("router", sim_image, role="router", depends_on=["serve-0"])
    start(deployment, [serve, router], state_store, endpoints)
    first = {name: c.id for name, c in labelled(docker_client, deployment).items()}

    again = start(deployment, [serve, router], state_store, endpoints)
    assert sorted(again.kept) == ["router", "serve-0"] and again.replaced == []
    assert {name: c.id for name, c in labelled(docker_client, deployment).items()} == first

    changed = router.model_copy(update={"environment": {**router.environment, "X": "1"}})
    third = start(deployment, [serve, changed], state_store, endpoints)
    assert third.kept == ["serve-0"] and third.replaced == ["router"]
    now = {name: c.id for name, c in labelled(docker_client, deployment).items()}
    assert now["serve-0"] == first["serve-0"]
    assert now["router"] != first["router"]

    # A service dropped from the plan is removed; the rest stays as it is.
    fourth = start(deployment, [serve], state_store, endpoints)
    assert fourth.kept == ["serve-0"]
    assert {name: c.id for name, c in labelled(docker_client, deployment).items()} == {
        "serve-0": first["serve-0"]
    }


def test_a_killed_container_is_restarted(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    supervisor = start(deployment, [server_spec("serve-0", sim_image)], state_store, endpoints)
    old = labelled(docker_client, deployment)["serve-0"]
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.watch, kwargs={"stop": stop, "duration_s": 60})
    watcher.start()
    try:
        old.kill()
        deadline = time.monotonic() + 30
        new = None
        while time.monotonic() < deadline:
            current = labelled(docker_client, deployment).get("serve-0")
            if current is not None and current.id != old.id and current.status == "running":
                new = current
                break
            time.sleep(0.2)
        assert new is not None, "the killed service was not restarted within 30 s"
    finally:
        stop.set()
        watcher.join(timeout=30)
    state = state_store.load(deployment)
    assert state is not None
    assert state.restarts["serve-0"] == 1
    assert state.containers["serve-0"].id == new.id


def test_a_crash_looping_service_is_given_up_with_its_logs_and_nothing_is_left(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    good = server_spec("serve-0", sim_image)
    bad = server_spec("serve-1", sim_image, fault="exit-on-start")
    with pytest.raises(ServiceGaveUp) as caught:
        start(deployment, [good, bad], state_store, endpoints)
    error = caught.value
    assert error.service == "serve-1"
    assert "fatal: cannot load the model (simulated)" in error.log_tail
    assert str(error) == (
        "serve-1 failed 3 times, giving up: serve-1 exited, exit code 3; last log line: "
        "fatal: cannot load the model (simulated); fix the cause shown in its log and run "
        "`deploy up` again"
    )
    assert error.exit_code == 1
    assert labelled(docker_client, deployment) == {}
    assert docker_client.networks.list(filters={"label": f"{LABEL_DEPLOYMENT}={deployment}"}) == []


def test_secrets_are_masked_in_the_log_tail_of_a_failure(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    secret = "sk-test-0123456789"
    leaky = server_spec("serve-0", sim_image).model_copy(
        update={
            "entrypoint": ["sh", "-c"],
            "command": ['echo "args: api_key=$DEPLOY_TEST_KEY"; exit 3'],
            "secret_env": ["DEPLOY_TEST_KEY"],
        }
    )
    with pytest.raises(ServiceGaveUp) as caught:
        start(
            deployment,
            [leaky],
            state_store,
            endpoints,
            host_env={"DEPLOY_TEST_KEY": secret},
        )
    # Docker's policy restarted the same container: its log holds every attempt.
    assert set(caught.value.log_tail) == {"args: api_key=***"}
    assert str(caught.value).startswith("serve-0 failed 3 times, giving up: serve-0 exited, ")
    assert "last log line: args: api_key=***;" in str(caught.value)
    assert secret not in str(caught.value)


def test_a_foreign_container_holding_the_name_is_left_alone(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    foreign = docker_client.containers.create(
        sim_image, name=f"{deployment}-serve-0", entrypoint=["true"]
    )
    try:
        with pytest.raises(RuntimeFailure) as caught:
            start(deployment, [server_spec("serve-0", sim_image)], state_store, endpoints)
        assert str(caught.value) == (
            f"a container named {deployment}-serve-0 that is not part of {deployment} exists "
            "on node0; remove or rename it (docker rm), or choose another --name"
        )
        foreign.reload()  # still there
        assert labelled(docker_client, deployment) == {}
        assert state_store.load(deployment) is None
    finally:
        foreign.remove(force=True)


def test_an_image_that_cannot_be_pulled_is_one_line_before_anything_starts(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    notes: list[str] = []

    class Notes(QuietReporter):
        def message(self, text: str) -> None:
            notes.append(text)

    missing = server_spec("serve-1", sim_image).model_copy(
        update={"image": "deploy-missing-image:nope"}
    )
    supervisor = Supervisor(
        deployment,
        [server_spec("serve-0", sim_image), missing],
        [local_node()],
        store=state_store,
        endpoints=endpoints,
        options=FAST,
        reporter=Notes(),
    )
    with pytest.raises(RuntimeFailure) as caught:
        supervisor.up()
    message = str(caught.value)
    assert message.startswith(
        "image deploy-missing-image:nope is not on node node0 and cannot be pulled ("
    )
    assert message.endswith("; pull or load it on that node (docker pull / docker load)")
    assert "\n" not in message
    assert notes == ["pulling deploy-missing-image:nope on node0 ..."]
    assert labelled(docker_client, deployment) == {}


def test_a_never_ready_service_is_restarted_after_its_budget_then_given_up(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    spec = server_spec(
        "serve-0", sim_image, fault="never-ready", start_period_s=1, interval_s=1, retries=1
    )
    options = SupervisorOptions(timeout_s=60, max_restarts=1, backoff_base_s=0.1, poll_s=0.2)
    with pytest.raises(
        ServiceGaveUp, match=r"serve-0 failed 2 times.*not ready after \d+s \(HTTP 503\)"
    ):
        start(deployment, [spec], state_store, endpoints, options)
    assert labelled(docker_client, deployment) == {}


def test_a_loading_service_is_not_restarted_before_its_start_period(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    spec = server_spec("serve-0", sim_image, load_s=4.0, start_period_s=20, interval_s=1, retries=1)
    rows: list[Row] = []

    class Recorder:
        def update(self, new: list[Row]) -> None:
            rows.extend(new)

        def message(self, text: str) -> None:
            pass

        def close(self) -> None:
            pass

    supervisor = start(deployment, [spec], state_store, endpoints, reporter=Recorder())
    assert supervisor.units["serve-0"].total_restarts == 0
    states = [row.state for row in rows]
    assert "loading" in states and states[-1] == "ready"


def test_a_rank_death_restarts_its_whole_group(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    rank0 = server_spec("serve-0-rank0", sim_image, group="serve-0")
    rank1 = server_spec("serve-0-rank1", sim_image, group="serve-0", rank=1, http=False)
    supervisor = start(deployment, [rank0, rank1], state_store, endpoints)
    before = {name: c.id for name, c in labelled(docker_client, deployment).items()}
    stop = threading.Event()
    watcher = threading.Thread(target=supervisor.watch, kwargs={"stop": stop, "duration_s": 60})
    watcher.start()
    try:
        docker_client.containers.get(before["serve-0-rank1"]).kill()
        deadline = time.monotonic() + 30
        after: dict[str, str] = {}
        while time.monotonic() < deadline:
            current = labelled(docker_client, deployment)
            after = {n: c.id for n, c in current.items() if c.status == "running"}
            if len(after) == 2 and not set(after.values()) & set(before.values()):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert sorted(after) == ["serve-0-rank0", "serve-0-rank1"]
    assert not set(after.values()) & set(before.values()), "both ranks must be new containers"
    state = state_store.load(deployment)
    assert state is not None and state.restarts == {"serve-0-rank0": 1, "serve-0-rank1": 1}


def test_ctrl_c_during_up_removes_what_it_started_unless_kept(
    docker_client: Any,
    sim_image: str,
    deployment: str,
    state_store: StateStore,
    endpoints: Endpoints,
) -> None:
    class InterruptWhileLoading:
        def update(self, rows: list[Row]) -> None:
            if any(row.state == "loading" for row in rows):
                raise KeyboardInterrupt

        def message(self, text: str) -> None:
            pass

        def close(self) -> None:
            pass

    spec = server_spec("serve-0", sim_image, load_s=30)
    with pytest.raises(KeyboardInterrupt):
        start(deployment, [spec], state_store, endpoints, reporter=InterruptWhileLoading())
    assert labelled(docker_client, deployment) == {}

    keep = SupervisorOptions(timeout_s=60, keep_on_failure=True)
    with pytest.raises(KeyboardInterrupt):
        start(deployment, [spec], state_store, endpoints, keep, reporter=InterruptWhileLoading())
    assert list(labelled(docker_client, deployment)) == ["serve-0"]
    result = down(deployment, store=state_store, endpoints=endpoints)
    assert result.containers == 1 and labelled(docker_client, deployment) == {}
