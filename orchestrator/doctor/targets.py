"""What the doctor checks on each node, read from the plan and its rendered services.

For every node: the engine service whose container the probe imitates, the GPU ids the
plan gives it, the interface and RDMA devices the cluster file names, and the ports the
services will listen on (HTTP, rendezvous, DP RPC, NIXL side channel, Mooncake bootstrap),
each with the nodes that must reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.spec import ServiceSpec

if TYPE_CHECKING:
    from orchestrator.plan import Plan

ENGINE_ROLES = ("serve", "prefill", "decode")
# Flags whose value is a port the service listens on, and what the port is for.
_PORT_FLAGS = {
    "--port": "HTTP",
    "--master-port": "rendezvous",
    "--data-parallel-rpc-port": "DP RPC",
    "--disaggregation-bootstrap-port": "PD bootstrap",
}
# Environment variables whose value is a port the engine listens on.
_PORT_ENV = {
    "VLLM_NIXL_SIDE_CHANNEL_PORT": "NIXL side channel",
    "VLLM_MOONCAKE_BOOTSTRAP_PORT": "Mooncake bootstrap",
}


@dataclass
class NodeTarget:
    name: str
    address: str
    docker: str
    spec: ServiceSpec | None
    gpus: list[int]
    interface: str | None
    rdma_devices: list[str]
    # port -> what listens there
    ports: dict[int, str] = field(default_factory=dict)
    # ports other nodes connect to (rendezvous, side channels), a subset of `ports`
    peer_ports: dict[int, str] = field(default_factory=dict)
    tp_groups: list[list[int]] = field(default_factory=list)


def _flag_value(command: list[str], flag: str) -> str | None:
    for index, word in enumerate(command):
        if word == flag and index + 1 < len(command):
            return command[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def listen_ports(spec: ServiceSpec) -> dict[int, str]:
    """Ports the service binds on its node (host network) or in its container (bridge)."""
    ports: dict[int, str] = {}
    headless = "--headless" in spec.command
    rank0 = spec.rank == 0
    for flag, what in _PORT_FLAGS.items():
        value = _flag_value(spec.command, flag)
        if value is None or not value.isdigit():
            continue
        if flag == "--port" and headless:
            continue
        if flag in ("--master-port", "--data-parallel-rpc-port") and not rank0:
            continue  # rank 0 serves the rendezvous; the others connect to it
        ports[int(value)] = what
    dist_init = _flag_value(spec.command, "--dist-init-addr")
    if dist_init and ":" in dist_init and rank0:
        port = dist_init.rsplit(":", 1)[1]
        if port.isdigit():
            ports[int(port)] = "rendezvous"
    for key, what in _PORT_ENV.items():
        value = spec.environment.get(key, "")
        if value.isdigit():
            ports[int(value)] = what
    return ports


def node_targets(plan: Plan, services: list[ServiceSpec]) -> list[NodeTarget]:
    targets = []
    for node in plan.hardware.node_list:
        mine = [spec for spec in services if spec.node == node.name]
        engines = [spec for spec in mine if spec.role in ENGINE_ROLES]
        primary = engines[0] if engines else (mine[0] if mine else None)
        gpus = sorted({gpu for spec in engines for gpu in (spec.gpus or [])})
        ports: dict[int, str] = {}
        peer_ports: dict[int, str] = {}
        for spec in mine:
            for port, what in listen_ports(spec).items():
                ports.setdefault(port, what)
                if what != "HTTP" or spec.role in ("prefill", "decode"):
                    peer_ports.setdefault(port, what)
            for binding in spec.ports:
                ports.setdefault(binding.host, "HTTP")
        groups = []
        for role in plan.roles:
            tp = role.parallelism.tp
            for replica in role.replicas:
                for piece in replica.slices:
                    if piece.node != node.name:
                        continue
                    for start in range(0, len(piece.gpus), tp):
                        group = piece.gpus[start : start + tp]
                        if len(group) > 1 and group not in groups:
                            groups.append(group)
        targets.append(
            NodeTarget(
                name=node.name,
                address=node.address,
                docker=node.docker,
                spec=primary,
                gpus=gpus,
                interface=node.network_interface,
                rdma_devices=list(node.rdma_devices),
                ports=dict(sorted(ports.items())),
                peer_ports=dict(sorted(peer_ports.items())),
                tp_groups=groups,
            )
        )
    return targets
