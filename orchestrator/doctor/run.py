"""One doctor run: every node of the plan through its own Docker endpoint, in parallel.

1. Ask each endpoint about itself (version, runtimes, CDI, the image).
2. Start the probe container on every node (the engine service's container, see
   `containers.py`); it prints its facts and holds listeners on the node's peer ports.
3. From each node's probe, connect to every other node's peer ports (`reachability`).
4. Remove the probe containers; judge each node from what was found.

`fast=True` (what `deploy up` runs first) leaves out the peer connections and the Hub call.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.doctor.checks_container import container_checks
from orchestrator.doctor.checks_docker import docker_checks
from orchestrator.doctor.checks_gpu import gpu_checks
from orchestrator.doctor.checks_network import network_checks
from orchestrator.doctor.checks_storage import disk_check, hub_token_check
from orchestrator.doctor.containers import (
    SERVE_SECONDS,
    ProbeFailed,
    connect_from,
    probe_kwargs,
    read_facts,
)
from orchestrator.doctor.context import DockerFacts, NodeContext
from orchestrator.doctor.report import Check, DoctorReport, failed, skipped
from orchestrator.doctor.targets import ENGINE_ROLES, NodeTarget, node_targets
from orchestrator.spec import ServiceSpec

if TYPE_CHECKING:
    from orchestrator.docker.endpoints import Endpoints
    from orchestrator.plan import Plan

PROBE_TIMEOUT_S = 60.0
_PORT_TAKEN = ("port is already allocated", "address already in use")


@dataclass
class DoctorOptions:
    simulate: bool = False
    fast: bool = False
    # The deployment already runs (`deploy status --doctor`): its ports are its own.
    running: bool = False


def judge(context: NodeContext) -> list[Check]:
    """Every check of one node, from its context (also used on recorded machines)."""
    checks = docker_checks(context)
    if context.docker.error is not None:
        return checks
    if context.probe_error is not None:
        node = context.node
        if any(text in context.probe_error.lower() for text in _PORT_TAKEN):
            listed = ", ".join(str(port) for port in context.target.ports)
            checks.append(
                failed(
                    node,
                    "ports",
                    f"a port the services publish is taken on node {node} ({listed})",
                    "stop what holds it or remove the deployment using it (`deploy status`)",
                )
            )
        else:
            checks.append(
                failed(
                    node,
                    "probe",
                    f"the probe container did not run: {context.probe_error}",
                    "run the service's image by hand on the node to see why (docker run --rm"
                    f" --entrypoint python3 {context.image} -V)",
                )
            )
    if context.probe is None and context.probe_error is None and context.target.spec:
        checks.append(
            skipped(
                context.node,
                "probe",
                f"not run: {context.image} is not on the node yet (pull it to check"
                " GPUs, shm, RDMA and the network from inside it)",
            )
        )
    checks += gpu_checks(context)
    checks += container_checks(context)
    network = network_checks(context)
    if context.probe_error is not None:
        network = [check for check in network if check.check != "ports"]
    checks += network
    checks.append(disk_check(context))
    return checks


def checkpoint_bytes(plan: Plan) -> int | None:
    """The checkpoint's size: weights per GPU times the GPUs of one engine instance."""
    for role in plan.roles:
        if role.name in ENGINE_ROLES and role.memory is not None and role.replicas:
            gpus = sum(len(piece.gpus) for piece in role.replicas[0].slices)
            return int(role.memory.weights_gib_per_gpu * gpus * 1024**3)
    return None


def _docker_facts(client: Any, image: str) -> DockerFacts:
    import docker.errors

    version = client.version()
    info = client.info()
    facts = DockerFacts(
        version=str(version.get("Version")),
        api_version=str(version.get("ApiVersion")),
        runtimes=sorted((info.get("Runtimes") or {}).keys()),
        cdi_spec_dirs=list(info.get("CDISpecDirs") or []),
    )
    try:
        attrs = client.images.get(image).attrs
        facts.image_present = True
        env = (attrs.get("Config") or {}).get("Env") or []
        facts.image_env = dict(item.split("=", 1) for item in env if "=" in item)
    except docker.errors.ImageNotFound:
        facts.image_present = False
    return facts


def probe_config(
    plan: Plan, target: NodeTarget, spec: ServiceSpec, options: DoctorOptions
) -> dict[str, Any]:
    if options.running:
        listen: list[int] = []
    elif spec.network_mode == "host":
        listen = list(target.ports)
    else:
        listen = sorted({binding.container for binding in spec.ports})
    cache = next((m.target for m in spec.mounts if "huggingface" in m.target), None)
    return {
        "listen": listen,
        "serve_seconds": SERVE_SECONDS,
        "hf_cache": cache,
        "repo": None if plan.model.local_path else plan.model.id,
        "gpus": spec.gpus is not None and not options.simulate,
    }


class _Node:
    """One node's run: its client, probe container and context."""

    def __init__(self, plan: Plan, target: NodeTarget, options: DoctorOptions) -> None:
        self.plan = plan
        self.target = target
        self.options = options
        self.client: Any = None
        self.container: Any = None
        self.context = NodeContext(
            target=target,
            engine=plan.engine.name,
            image=target.spec.image if target.spec is not None else plan.engine.image,
            simulate=options.simulate,
            running=options.running,
            gpu_name=plan.hardware.gpu,
            interconnect=plan.hardware.interconnect,
            fabric=plan.hardware.fabric,
            multi_node=len(plan.hardware.node_list) > 1,
            checkpoint_bytes=checkpoint_bytes(plan),
            local_model=plan.model.local_path is not None,
        )

    def inspect(self, endpoints: Endpoints) -> None:
        from orchestrator.errors import DeployError

        try:
            self.client = endpoints.client(self.target.docker)
            self.context.docker = _docker_facts(self.client, self.context.image)
        except DeployError as error:
            self.context.docker = DockerFacts(error=error.message)
        except Exception as error:  # the SDK raises requests and OS errors alike
            self.context.docker = DockerFacts(error=f"Docker at {self.target.docker}: {error}")

    def start_probe(self, host_env: Mapping[str, str]) -> None:
        spec = self.target.spec
        if self.client is None or spec is None:
            return
        if not self.context.docker.image_present:
            return  # judged as skipped: `up` pulls the image before it starts anything
        with_gpus = not self.options.simulate and spec.gpus is not None
        refused = self._run_probe(spec, host_env, with_gpus=with_gpus)
        # Docker refused the GPUs (no NVIDIA runtime, no CDI device): look at the node without
        # them, so the interface, RDMA, ports, shm and disk are still reported in this round;
        # the GPU checks say why they could not run.
        if (
            refused is not None
            and with_gpus
            and self._run_probe(spec, host_env, with_gpus=False) is None
        ):
            self.context.gpu_probe_error = refused
            return
        if refused is not None:
            self.context.probe_error = refused

    def _run_probe(
        self, spec: ServiceSpec, host_env: Mapping[str, str], *, with_gpus: bool
    ) -> str | None:
        """Start the probe and read its facts; None when it ran, else why Docker refused
        the container (a probe that started and failed is recorded in `probe_error`)."""
        config = probe_config(self.plan, self.target, spec, self.options)
        config["gpus"] = config["gpus"] and with_gpus
        kwargs = probe_kwargs(
            spec,
            deployment=self.plan.name,
            config=config,
            host_env=dict(host_env),
            with_gpus=with_gpus,
            publish=not self.options.running,
        )
        before = time.time()
        try:
            self.container = self.client.containers.create(**kwargs)
            self.container.start()
            facts = read_facts(self.container, PROBE_TIMEOUT_S)
        except ProbeFailed as error:
            self.context.probe_error = str(error)
            return None
        except Exception as error:  # APIError from create/start: say what Docker said
            explanation = getattr(error, "explanation", None) or str(error)
            self.remove()
            return str(explanation).splitlines()[0][:300]
        after = time.time()
        self.context.probe = facts
        seen = float(facts.get("time", before))
        # The probe's clock was read between `before` and `after` on this machine's clock.
        offset = seen - after if seen > after else seen - before if seen < before else 0.0
        self.context.clock_offset_s = offset
        return None

    def peer_targets(self, nodes: list[_Node]) -> list[tuple[_Node, str]]:
        """(listening node, host:port) this node must reach."""
        wanted = []
        for other in nodes:
            if other is self or other.context.probe is None:
                continue
            listening = set(other.context.probe.get("listening", []))
            spec = other.target.spec
            if spec is not None and spec.network_mode == "host":
                for port in other.target.peer_ports:
                    if port in listening:
                        wanted.append((other, f"{other.target.address}:{port}"))
            elif spec is not None:
                for binding in spec.ports:
                    if binding.container in listening and binding.host_ip != "127.0.0.1":
                        wanted.append((other, f"{other.target.address}:{binding.host}"))
        return wanted

    def remove(self) -> None:
        if self.container is not None:
            with contextlib.suppress(Exception):
                self.container.remove(force=True)
            self.container = None


def run_doctor(
    plan: Plan,
    services: list[ServiceSpec],
    *,
    endpoints: Endpoints,
    options: DoctorOptions | None = None,
    host_env: Mapping[str, str] | None = None,
) -> DoctorReport:
    options = options or DoctorOptions()
    env = dict(os.environ if host_env is None else host_env)
    nodes = [_Node(plan, target, options) for target in node_targets(plan, services)]
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        try:
            list(pool.map(lambda node: node.inspect(endpoints), nodes))
            list(pool.map(lambda node: node.start_probe(env), nodes))
            if not options.fast and not options.running and len(nodes) > 1:
                list(pool.map(lambda node: _reach(node, nodes), nodes))
        finally:
            list(pool.map(lambda node: node.remove(), nodes))
    checks = [check for node in nodes for check in judge(node.context)]
    if options.fast:
        checks.append(skipped(nodes[0].target.name, "hub-token", "left out of the fast subset"))
    else:
        present = all(
            node.context.probe is not None
            and node.context.probe.get("storage", {}).get("checkpoint_present")
            for node in nodes
        )
        repo = None if plan.model.local_path else plan.model.id
        checks.append(hub_token_check(nodes[0].target.name, repo, env, present_everywhere=present))
    return DoctorReport.of(checks)


def _reach(node: _Node, nodes: list[_Node]) -> None:
    if node.container is None:
        return
    wanted = node.peer_targets(nodes)
    try:
        results = connect_from(node.container, [address for _, address in wanted])
    except Exception as error:  # exec refused: the connections were not tried
        results = {address: f"not tried ({error})" for _, address in wanted}
    for other, address in wanted:
        other.context.reach[f"{node.target.name} -> {address}"] = results[address]
