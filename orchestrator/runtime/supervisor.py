"""Start a deployment's services in dependency order, wait until they are ready, keep them alive.

Units of supervision are restart groups: all ranks of one multi-node engine instance
(`ServiceSpec.group`) start together and restart together, because a rank that comes back
alone cannot rejoin its peers' collective. A unit starts when every service it depends on is
ready (engines first, then routers and load balancers). Container deaths arrive through Docker
events (one watcher thread per endpoint), so a crash is seen at once instead of at the next
poll. Restarts back off exponentially and are bounded; the last log lines go into the error.

A unit that spends its restart budget while `up` starts it fails `up`. One that spends it
later, under supervision, is given up on and kept: its containers stay as they are (Docker's
restart policy switched off), their logs with them, the state file says so and `deploy status`
shows it; the rest of the deployment stays supervised.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.docker.endpoints import Endpoints, local_endpoint, normalize
from orchestrator.docker.ops import (
    docker_errors_as_failures,
    ensure_image,
    has_image,
    image_source,
    labelled_containers,
    log_tail,
    started_at,
)
from orchestrator.errors import RuntimeFailure
from orchestrator.runtime import containers as ck
from orchestrator.runtime import ownership
from orchestrator.runtime.events import DeathWatch
from orchestrator.runtime.give_up import ServiceGaveUp as ServiceGaveUp  # re-exported
from orchestrator.runtime.give_up import (
    fail_timeout,
    give_up,
    keep_given_up,
    save_state,
)
from orchestrator.runtime.interrupts import shielded
from orchestrator.runtime.member_check import check_member, rows_of
from orchestrator.runtime.probes import SERVING, entry_url
from orchestrator.runtime.progress import QuietReporter, Reporter
from orchestrator.runtime.units import (
    Member,
    Unit,
    backoff_delay,
    build_units,
    dependency_depth,
    failures_in_window,
)
from orchestrator.spec import LABEL_DEPLOYMENT, LABEL_SERVICE, LABEL_SPEC_HASH, ServiceSpec
from orchestrator.state import DeploymentState, NodeInfo, StateStore


@dataclass
class SupervisorOptions:
    timeout_s: float | None = None  # None: the slowest unit's startup budget plus a margin
    max_restarts: int = 3  # failures of one unit inside `restart_window_s` before giving up
    restart_window_s: float = 600.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    poll_s: float = 0.25
    with_gpus: bool = True
    log_tail: int = 200  # lines read from a failed service: enough for the classifier
    keep_on_failure: bool = False  # leave what this run created on failure or Ctrl-C
    copy_images: bool = False  # copy images a node lacks from one that has them (save | load)
    all_owners: bool = False  # may replace a same-named deployment of another state directory


class Supervisor:
    """Brings a list of `ServiceSpec`s up on their nodes' Docker endpoints and keeps them up."""

    def __init__(
        self,
        name: str,
        specs: list[ServiceSpec],
        nodes: list[NodeInfo],
        *,
        store: StateStore | None = None,
        endpoints: Endpoints | None = None,
        options: SupervisorOptions | None = None,
        reporter: Reporter | None = None,
        plan: dict[str, Any] | None = None,
        plan_hash: str = "",
        host_env: Mapping[str, str] | None = None,
        files_dir: Path | None = None,
    ) -> None:
        from orchestrator.state import validate_name

        self.name = validate_name(name)
        self.specs = specs
        self.nodes = {
            node.name: node.model_copy(update={"docker": normalize(node.docker)}) for node in nodes
        }
        self.store = store if store is not None else StateStore()
        self.endpoints = endpoints if endpoints is not None else Endpoints()
        self.options = options or SupervisorOptions()
        self.reporter = reporter or QuietReporter()
        self.plan = plan
        self.plan_hash = plan_hash
        self.host_env = dict(os.environ if host_env is None else host_env)
        self.files_dir = files_dir  # where `./file` mounts were rendered (per node)
        self.units = build_units(specs, self.nodes)
        self.created_ids: dict[str, str] = {}  # container id -> endpoint, created by this run
        self.created_networks: dict[str, str] = {}
        self.created_volumes: dict[str, list[str]] = {}
        self.kept: list[str] = []
        self.replaced: list[str] = []
        self.url: str | None = None
        self._deaths = DeathWatch(self.name, self.endpoints.client)
        self.previous: DeploymentState | None = None
        self.on_tick: Callable[[], None] | None = None  # called once per loop (heartbeats)
        self.gave_up: dict[str, str] = {}  # unit key -> why it is no longer restarted
        self._starting = True  # inside `up`: a spent budget fails the call

    # ----------------------------------------------------------------- public API
    def up(self) -> str | None:
        """Start (or reconcile) every service and return once all are ready: the entry URL.

        On failure or Ctrl-C, removes what this call created on every endpoint and re-raises.
        """
        try:
            with docker_errors_as_failures(self.name):
                self._starting = True
                self._prepare(retry_given_up=True)
                self._deaths.start(node.docker for node in self.nodes.values())
                self._loop(until_ready=True, deadline=self._deadline(), stop=None)
                self._starting = False
                self._save()
            return self.url
        except BaseException:
            self._deaths.stop()
            # A second Ctrl-C (or SIGTERM/SIGHUP) must not cut the cleanup short.
            with shielded(self.reporter.message):
                if not self.options.keep_on_failure:
                    self.teardown_created()
                    if self.previous is None and not self.kept:
                        self.store.delete(self.name)
                    else:
                        self._save()
                else:  # kept: recorded, so `status`, `logs` and `down` know all of it
                    self._save()
            raise
        finally:
            self._deaths.stop()

    def watch(
        self, *, stop: threading.Event | None = None, duration_s: float | None = None
    ) -> None:
        """Keep supervising after `up` (restarts, group restarts) until `stop` or `duration_s`."""
        try:
            with docker_errors_as_failures(self.name):
                self._starting = False
                self._deaths.start(node.docker for node in self.nodes.values())
                deadline = time.monotonic() + duration_s if duration_s is not None else None
                self._loop(until_ready=False, deadline=deadline, stop=stop or threading.Event())
        finally:
            self._deaths.stop()
            self._save()

    def resume(self, *, stop: threading.Event) -> None:
        """Adopt a running deployment (keeping containers whose spec matches, starting what
        is missing, e.g. after a daemon restart) and supervise it until `stop`. Nothing is
        torn down on the way out: the deployment is the user's until `deploy down`."""
        try:
            with docker_errors_as_failures(self.name, "deploy status"):
                self._starting = False
                self._prepare(retry_given_up=False)
                self._deaths.start(node.docker for node in self.nodes.values())
                self._loop(until_ready=False, deadline=None, stop=stop)
        finally:
            self._deaths.stop()
            self._save()

    def teardown_created(self) -> None:
        """Remove every container, network and volume this supervisor created."""
        by_endpoint: dict[str, list[str]] = {}
        for container_id, endpoint in self.created_ids.items():
            by_endpoint.setdefault(endpoint, []).append(container_id)
        jobs = [(endpoint, cid) for endpoint, ids in by_endpoint.items() for cid in ids]
        if jobs:
            with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
                list(pool.map(lambda job: self._remove_container(*job), jobs))
        self.created_ids.clear()
        for endpoint, network_id in list(self.created_networks.items()):
            # Already gone or still in use: best effort on the way out.
            with contextlib.suppress(Exception):
                self.endpoints.client(endpoint).networks.get(network_id).remove()
        for endpoint, volumes in list(self.created_volumes.items()):
            for volume in volumes:
                with contextlib.suppress(Exception):
                    self.endpoints.client(endpoint).volumes.get(volume).remove(force=True)
        self.created_networks.clear()
        self.created_volumes.clear()
        for unit in self.units.values():
            for member in unit.members:
                member.container = None

    # ----------------------------------------------------------------- preparation
    def _prepare(self, *, retry_given_up: bool = True) -> None:
        self.endpoints.connect_all([node.docker for node in self.nodes.values()])
        self.previous = self.store.load(self.name)
        if self.previous is not None and not retry_given_up:
            # Adopting again (a daemon restart, a new supervisor): what was given up on
            # stays given up, untouched, until the user runs `deploy up` again.
            self.gave_up = {k: v for k, v in self.previous.gave_up.items() if k in self.units}
        if self.previous is not None:
            for unit in self.units.values():
                unit.total_restarts = max(
                    (self.previous.restarts.get(m.spec.name, 0) for m in unit.members), default=0
                )
        self._check_files()
        missing = sorted(
            {n for m in self.members() for n in ck.missing_secrets(m.spec, self.host_env)}
        )
        if missing:
            self.reporter.message(
                f"note: {', '.join(missing)} not set in this environment; passing without it"
            )
        self._check_images()
        existing = self._existing_containers()
        self._reconcile(existing)
        self._ensure_networks_and_volumes()

    def _check_files(self) -> None:
        for member in self.members():
            for path, _ in ck.rendered_files(member.spec, self.files_dir):
                if not path.is_file():
                    raise RuntimeFailure(
                        f"{member.spec.name} mounts {path}, which does not exist",
                        "`deploy up` renders it with the deployment; when driving the "
                        "supervisor directly, pass files_dir= with the rendered files",
                    )

    def _check_images(self) -> None:
        needed = sorted({(m.node.docker, m.spec.image, m.node.name) for m in self.members()})
        sources = [local_endpoint(), *sorted({n.docker for n in self.nodes.values()})]
        for endpoint, image, node in needed:
            client = self.endpoints.client(endpoint)
            source = None
            if self.options.copy_images and not has_image(client, image):
                source = image_source(self.endpoints, image, endpoint, sources)
            ensure_image(client, image, node, self.reporter.message, copy_from=source)

    def _existing_containers(self) -> dict[str, list[tuple[str, Any]]]:
        """service name -> [(endpoint, container)] for this deployment, found by label."""
        found: dict[str, list[tuple[str, Any]]] = {}
        current = {node.docker for node in self.nodes.values()}
        # Endpoints the previous plan used but this one does not: what runs there is stale.
        previous = set(self.previous.endpoints()) - current if self.previous else set()
        label = f"{LABEL_DEPLOYMENT}={self.name}"
        containers, errors = labelled_containers(self.endpoints, current | previous, label)
        containers = ownership.claim(self.name, containers, self.store, self.options.all_owners)
        for endpoint, error in errors.items():
            if endpoint in current:
                raise error
            self.reporter.message(f"note: could not clean up the old node at {endpoint}: {error}")
        for endpoint, container in containers:
            service = container.labels.get(LABEL_SERVICE, "")
            found.setdefault(service, []).append((endpoint, container))
        return found

    def _reconcile(self, existing: dict[str, list[tuple[str, Any]]]) -> None:
        """Keep running containers whose spec hash matches; replace the rest (whole groups)."""
        keep: dict[str, tuple[str, Any]] = {}
        for unit in self.units.values():
            matches: dict[str, tuple[str, Any]] = {}
            for member in unit.members:
                candidates = existing.get(member.spec.name, [])
                if len(candidates) != 1:
                    continue
                endpoint, container = candidates[0]
                if (
                    endpoint == member.node.docker
                    and container.status == "running"
                    and container.labels.get(LABEL_SPEC_HASH) == member.spec.spec_hash()
                ):
                    matches[member.spec.name] = (endpoint, container)
            if len(matches) == len(unit.members):
                keep.update(matches)
        given_up = {m.spec.name for k in self.gave_up for m in self.units[k].members}
        removals: list[tuple[str, str]] = []
        for service, entries in existing.items():
            for endpoint, container in entries:
                if keep.get(service, ("", None))[1] is container:
                    continue
                if service in given_up:
                    continue  # kept, with its logs, for the user to look at
                removals.append((endpoint, container.id))
                if service in {m.spec.name for m in self.members()}:
                    self.replaced.append(service)
        if removals:
            with ThreadPoolExecutor(max_workers=min(16, len(removals))) as pool:
                list(pool.map(lambda job: self._remove_container(*job), removals))
        now = time.monotonic()
        for key, reason in self.gave_up.items():
            unit = self.units[key]
            unit.state, unit.last_failure = "failed", reason
            for member in unit.members:
                found = existing.get(member.spec.name, [])
                member.container = found[0][1] if len(found) == 1 else None
        for unit in self.units.values():
            if unit.key in self.gave_up:
                continue
            if all(m.spec.name in keep for m in unit.members):
                for member in unit.members:
                    member.container = keep[member.spec.name][1]
                    # Its start period runs from when it really started, not from now.
                    began = started_at(member.container) or time.time()
                    member.tracker.reset(now - max(0.0, time.time() - began))
                    member.started_at = self._previous_started(member.spec.name)
                    member.docker_restarts = int(member.container.attrs.get("RestartCount") or 0)
                    self.kept.append(member.spec.name)
                unit.state = "running"
        self.replaced = sorted(set(self.replaced))

    def _previous_started(self, service: str) -> float:
        if self.previous is not None and service in self.previous.containers:
            return self.previous.containers[service].started_at
        return time.time()

    def _ensure_networks_and_volumes(self) -> None:
        import docker.errors

        bridge_endpoints = {m.node.docker for m in self.members() if m.spec.network_mode != "host"}
        labels = {
            LABEL_DEPLOYMENT: self.name,
            ck.LABEL_CREATED: "true",
            **ownership.owner_labels(self.store),
        }
        for endpoint in sorted(bridge_endpoints):
            client = self.endpoints.client(endpoint)
            network = ck.network_name(self.name)
            # Docker's `names` filter matches substrings: deploy-a would find deploy-ab.
            existing = [n for n in client.networks.list(names=[network]) if n.name == network]
            ownership.claim(
                self.name, [(endpoint, n) for n in existing], self.store, self.options.all_owners
            )
            if not existing:
                created = client.networks.create(network, driver="bridge", labels=labels)
                self.created_networks[endpoint] = created.id
        for member in self.members():
            client = self.endpoints.client(member.node.docker)
            for volume in ck.named_volumes(member.spec):
                try:
                    client.volumes.get(volume)
                except docker.errors.NotFound:
                    client.volumes.create(name=volume, labels=labels)
                    self.created_volumes.setdefault(member.node.docker, []).append(volume)

    # ----------------------------------------------------------------- the loop
    def _deadline(self) -> float:
        if self.options.timeout_s is not None:
            return time.monotonic() + self.options.timeout_s
        # Every layer of dependencies may take its full startup budget, with every restart.
        budget = max((m.tracker.startup_budget_s() for m in self.members()), default=60.0)
        depth = dependency_depth(self.units)
        return time.monotonic() + (budget + 30.0) * depth * (self.options.max_restarts + 1)

    def _loop(
        self, *, until_ready: bool, deadline: float | None, stop: threading.Event | None
    ) -> None:
        while True:
            if self.on_tick is not None:
                self.on_tick()
            now = time.monotonic()
            self._start_due_units(now)
            self._check_units(now)
            self.reporter.update(rows_of(self.units))
            if until_ready and all(unit.ready for unit in self.units.values()):
                self.url = entry_url(self.specs, self.nodes)
                return
            if stop is not None and stop.is_set():
                return
            if deadline is not None and now >= deadline:
                if not until_ready:
                    return
                self._fail_timeout()
            self._deaths.wait(self._poll_interval(until_ready))

    def _poll_interval(self, until_ready: bool) -> float:
        """Fast while starting (`up` returns moments after the last service is ready); once all
        are ready, the probes' own interval: deaths arrive through events anyway."""
        if until_ready or not all(unit.ready for unit in self.units.values()):
            return self.options.poll_s
        intervals = [m.spec.probe.interval_s for m in self.members()]
        return float(max(self.options.poll_s, min(intervals, default=1)))

    def _start_due_units(self, now: float) -> None:
        due = [
            unit
            for unit in self.units.values()
            if unit.state in ("waiting", "backoff")
            and now >= unit.next_start_at
            and all(self.units[dep].ready for dep in unit.depends_on)
        ]
        for unit in due:
            self._start_unit(unit)

    def _start_unit(self, unit: Unit) -> None:
        """Create and start every member together (ranks rendezvous with each other)."""
        with ThreadPoolExecutor(max_workers=len(unit.members)) as pool:
            list(pool.map(self._start_member, unit.members))
        unit.state = "running"
        unit.since = time.monotonic()
        unit.ready_since = None
        self._save()

    def _start_member(self, member: Member) -> None:
        import docker.errors

        client = self.endpoints.client(member.node.docker)
        network = ck.network_name(self.name) if member.spec.network_mode != "host" else None
        from orchestrator.runtime.node_env import node_environment

        kwargs = ck.create_kwargs(
            member.spec,
            deployment=self.name,
            plan_hash=self.plan_hash,
            # Mount sources as the node reads them (its $HOME over ssh://), secrets as here.
            host_env=node_environment(member.node.docker, self.host_env),
            with_gpus=self.options.with_gpus,
            network=network,
        )
        kwargs["labels"].update(ownership.owner_labels(self.store))
        name = kwargs["name"]
        try:
            stale = client.containers.get(name)
        except docker.errors.NotFound:
            stale = None
        if stale is not None:
            # Only a container of this deployment may be replaced: the name alone can be
            # another deployment's (`a-b` + `c` and `a` + `b-c`) or one the user made.
            if stale.labels.get(LABEL_DEPLOYMENT) != self.name:
                raise RuntimeFailure(
                    f"a container named {name} that is not part of {self.name} exists on "
                    f"{member.node.name}",
                    "remove or rename it (docker rm), or choose another --name",
                )
            ownership.claim(self.name, [("", stale)], self.store, self.options.all_owners)
            stale.remove(force=True)
        try:
            container = client.containers.create(**kwargs)
        except docker.errors.APIError as error:
            raise RuntimeFailure(
                f"cannot create {member.spec.name} on {member.node.name}: {error.explanation or error}",
                "check the service spec (image, ports, devices) against that node",
            ) from error
        self.created_ids[container.id] = member.node.docker
        if network is not None:
            # The service name is the DNS alias other containers of the deployment use.
            client.api.disconnect_container_from_network(container.id, network)
            client.api.connect_container_to_network(
                container.id, network, aliases=[member.spec.name]
            )
        try:
            for path, target in ck.rendered_files(member.spec, self.files_dir):
                container.put_archive("/", ck.file_archive(path, target))
            container.start()
        except docker.errors.APIError as error:
            raise RuntimeFailure(
                f"cannot start {member.spec.name} on {member.node.name}: {error.explanation or error}",
                "check ports, GPUs and devices on that node",
            ) from error
        member.container = container
        member.docker_restarts = 0
        member.verdict = "starting"
        member.tracker.reset()
        member.next_probe_at = member.next_request_at = 0.0
        member.request_failures = 0
        member.started_at = time.time()

    def _check_units(self, now: float) -> None:
        running = [u for u in self.units.values() if u.state in ("running", "ready")]
        jobs = [(m, len(u.members)) for u in running for m in u.members]
        if len(jobs) > 1:
            with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
                list(pool.map(lambda job: check_member(*job), jobs))
        else:
            for member, size in jobs:
                check_member(member, size)
        for unit in running:
            verdicts = {m.verdict for m in unit.members}
            if verdicts & {"dead", "unhealthy"}:
                self._handle_failure(unit, now)
            elif verdicts <= SERVING:
                if unit.state != "ready":
                    unit.state = "ready"
                    unit.since = now
                    unit.ready_since = now
            elif unit.state == "ready":
                unit.state = "running"  # a rank lost readiness but not (yet) its budget
                unit.since = now

    def _handle_failure(self, unit: Unit, now: float) -> None:
        failed = next(m for m in unit.members if m.verdict in ("dead", "unhealthy"))
        if failed.verdict == "unhealthy":
            reason = (
                f"not ready after {now - failed.tracker.started_at:.0f}s ({failed.tracker.detail})"
            )
        else:
            reason = failed.tracker.detail
        unit.last_failure = f"{failed.spec.name} {reason}"
        if failed.container is not None:
            secrets = [self.host_env.get(name, "") for name in failed.spec.secret_env]
            unit.last_logs = log_tail(failed.container, self.options.log_tail, secrets)
            unit.last_logs_service = failed.spec.name
        unit.restarts = failures_in_window(unit, now, self.options.restart_window_s)
        unit.total_restarts += 1
        if failed.restarted_by_docker and len(unit.members) == 1:
            self._docker_restarted(unit, failed, now)
            return
        if unit.restarts > self.options.max_restarts and not self._starting:
            self._keep_given_up(unit)
            return
        # Take the whole unit down: peers of a dead rank hang in their collectives.
        jobs = [(m.node.docker, m.container.id) for m in unit.members if m.container is not None]
        if jobs:
            with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
                list(pool.map(lambda job: self._remove_container(*job), jobs))
        for member in unit.members:
            member.container = None
            member.verdict = "starting"
        if unit.restarts > self.options.max_restarts:
            unit.state = "failed"
            self._save()
            self._give_up(unit)
        delay = backoff_delay(
            unit.restarts, self.options.backoff_base_s, self.options.backoff_max_s
        )
        unit.state = "backoff"
        unit.since = now
        unit.next_start_at = now + delay
        who = f"group {unit.key}" if len(unit.members) > 1 else unit.key
        self.reporter.message(
            f"{unit.last_failure}; restarting {who} in {delay:.0f}s "
            f"(restart {unit.restarts} of {self.options.max_restarts})"
        )
        self._save()

    def _docker_restarted(self, unit: Unit, member: Member, now: float) -> None:
        """Docker's policy brought the container back: keep it, unless the budget is spent,
        in which case stop it (so Docker stops restarting it) and give up."""
        member.restarted_by_docker = False
        if unit.restarts > self.options.max_restarts and not self._starting:
            self._keep_given_up(unit)
            return
        if unit.restarts > self.options.max_restarts:
            with contextlib.suppress(Exception):
                member.container.stop(timeout=10)
            unit.state = "failed"
            self._save()
            self._give_up(unit)
        member.verdict = "starting"
        member.tracker.reset()
        member.started_at = time.time()
        unit.state = "running"
        unit.since = now
        unit.ready_since = None
        self.reporter.message(
            f"{unit.last_failure}; Docker restarted it (failure {unit.restarts} of "
            f"{self.options.max_restarts} allowed "
            f"in {self.options.restart_window_s:.0f}s)"
        )
        self._save()

    def _keep_given_up(self, unit: Unit) -> None:
        keep_given_up(self, unit)

    def _give_up(self, unit: Unit) -> None:
        give_up(self, unit)

    def _fail_timeout(self) -> None:
        fail_timeout(self)

    # ----------------------------------------------------------------- helpers
    def members(self) -> list[Member]:
        return [m for unit in self.units.values() for m in unit.members]

    def _remove_container(self, endpoint: str, container_id: str) -> None:
        with contextlib.suppress(Exception):  # already removed
            self.endpoints.client(endpoint).api.remove_container(container_id, force=True)
        self.created_ids.pop(container_id, None)

    def _save(self) -> None:
        save_state(self)
