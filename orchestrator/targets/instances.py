"""What the Kubernetes and Slurm targets share: the deployment's services grouped into engine
instances and fronts, and node addresses in command lines swapped for the target's own.

The engine renderers write each rank's command line with the cluster file's node addresses
(`--master-addr 192.0.2.10`, `--dist-init-addr 192.0.2.10:5000`, router upstream URLs). A
scheduler decides the nodes at run time, so each target replaces every address with what it
knows then: LWS's leader address or a Service name (Kubernetes), a node address read from
`scontrol` (Slurm). Everything else in the command line stays as the renderer wrote it.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.errors import InputError
from orchestrator.plan import Plan
from orchestrator.spec import ServiceSpec

LOOPBACK = "127.0.0.1"
# Environment variables that hold the address of the node the service runs on.
OWN_ADDRESS_ENV = frozenset(
    {"VLLM_HOST_IP", "SGLANG_HOST_IP", "VLLM_NIXL_SIDE_CHANNEL_HOST", "SGLANG_HOST"}
)


@dataclass(frozen=True)
class Instance:
    """One engine instance (all ranks, in rank order) or one front (router, load balancer)."""

    name: str
    ranks: list[ServiceSpec]

    @property
    def head(self) -> ServiceSpec:
        return self.ranks[0]

    @property
    def multi_node(self) -> bool:
        return len(self.ranks) > 1

    @property
    def role(self) -> str:
        return self.head.role

    @property
    def every_rank_serves(self) -> bool:
        """A pool whose every node runs an API server (vLLM's hybrid load balancing: the
        ranks of one data-parallel engine, each node answering HTTP)."""
        return self.multi_node and all(spec.probe.kind == "http" for spec in self.ranks)


def instances(services: list[ServiceSpec]) -> list[Instance]:
    """Services grouped by `group` (ranks of one instance), in the renderers' order."""
    grouped: dict[str, list[ServiceSpec]] = {}
    for spec in services:
        grouped.setdefault(spec.group or spec.name, []).append(spec)
    return [
        Instance(name=name, ranks=sorted(specs, key=lambda spec: spec.rank))
        for name, specs in grouped.items()
    ]


def node_index(plan: Plan, services: list[ServiceSpec]) -> dict[str, int]:
    """Plan nodes that run something, numbered in the cluster file's order."""
    used = {spec.node for spec in services}
    names = [node.name for node in plan.hardware.node_list if node.name in used]
    return {name: index for index, name in enumerate(names)}


def node_addresses(plan: Plan) -> dict[str, str]:
    """Node address -> node name."""
    return {node.address: node.name for node in plan.hardware.node_list}


# An address resolver gets (node name or None for loopback, port or None) and returns what to
# write in place of the address.
Resolver = Callable[[str | None, int | None], str]


@functools.cache
def _address_pattern(addresses: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(
        re.escape(address) for address in sorted(addresses, key=len, reverse=True)
    )
    return re.compile(rf"(?<![\w.-])({alternatives})(?::(\d+))?(?![\w.-])")


def rewrite(value: str, plan: Plan, resolve: Resolver) -> str:
    """`value` with every node address (and loopback) replaced by `resolve`'s answer; a port
    after the address is kept."""
    by_address = node_addresses(plan)
    pattern = _address_pattern((*by_address, LOOPBACK))

    def replace(match: re.Match[str]) -> str:
        address, port = match.group(1), match.group(2)
        node = by_address.get(address) if address != LOOPBACK else None
        new = resolve(node, int(port) if port else None)
        return new + (f":{port}" if port else "")

    return pattern.sub(replace, value)


def exposed_ports(spec: ServiceSpec) -> list[int]:
    """Ports a service listens on that peers may need: its HTTP port, then every `--*port`
    flag value and `*_PORT` variable (rendezvous, bootstrap, KV side channels)."""
    ports: list[int] = []
    if spec.probe.port:
        ports.append(spec.probe.port)
    words = [*(spec.entrypoint or []), *spec.command]
    for flag, value in itertools.pairwise(words):
        if flag.startswith("--") and flag.endswith("port") and value.isdigit():
            ports.append(int(value))
    for word in words:
        flag, _, value = word.partition("=")
        if flag.startswith("--") and flag.endswith("port") and value.isdigit():
            ports.append(int(value))
    for key, value in spec.environment.items():
        if key.endswith("_PORT") and value.isdigit():
            ports.append(int(value))
    return sorted(set(ports), key=ports.index)


def serving_instance(
    groups: list[Instance], node: str, port: int | None, *, asking: ServiceSpec
) -> Instance:
    """The instance on `node` that a word naming that node's address (and `port`) refers to."""
    here = [
        group
        for group in groups
        if group.head is not asking
        and (
            group.head.node == node
            or (group.every_rank_serves and any(spec.node == node for spec in group.ranks))
        )
    ]
    if port is not None:
        here = [group for group in here if port in exposed_ports(group.head)] or here
    if len(here) == 1:
        return here[0]
    raise InputError(
        f"{asking.name} refers to node {node}{f' port {port}' if port else ''}, which no single "
        "service of this deployment serves",
        "render this layout for compose, or pin a layout with one instance per node",
    )


def check_equal_ranks(group: Instance) -> None:
    """Ranks after the first must differ only in their rank number and own address: LWS
    stamps every worker from one template, and Slurm runs them from one loop."""
    if not group.multi_node:
        return
    sizes = {len(spec.gpus or []) for spec in group.ranks}
    if len(sizes) > 1:
        raise InputError(
            f"{group.name} has ranks with different GPU counts ({sorted(sizes)})",
            "pin --tp so every node of the instance holds the same number of GPUs",
        )
