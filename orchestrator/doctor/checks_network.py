"""Network checks: RDMA devices and ports, NCCL_IB_HCA, the NCCL/Gloo interface and the
node's address, ports free, peers reaching each other, and clock skew.

These are what turn a multi-node start into a hang ("Init nccl begin", "Gloo connectFullMesh
failed") or into sockets at a fraction of InfiniBand's speed, without an error."""

from __future__ import annotations

import ipaddress
from typing import Any

from orchestrator.doctor.context import NodeContext
from orchestrator.doctor.report import Check, failed, passed, skipped, warned

# Skew above this confuses log correlation and Ray's heartbeats; TLS breaks far above it.
CLOCK_WARN_S = 2.0


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def network_checks(context: NodeContext) -> list[Check]:
    return [
        *rdma_checks(context),
        interface_check(context),
        ports_check(context),
        reachability_check(context),
        clock_check(context),
    ]


# -- RDMA -------------------------------------------------------------------------------------


def _rdma_skip_reason(context: NodeContext) -> str | None:
    if context.simulate:
        return "not checked in a rehearsal (--simulate)"
    if context.fabric not in ("infiniband", "roce"):
        return f"fabric {context.fabric}: NCCL uses sockets between nodes"
    if not context.uses_rdma:
        return "no service of this node sends traffic over RDMA"
    if context.probe is None:
        return "the probe did not run"
    return None


def rdma_checks(context: NodeContext) -> list[Check]:
    node = context.node
    reason = _rdma_skip_reason(context)
    if reason is not None:
        return [skipped(node, "rdma", reason), skipped(node, "nccl-ib-hca", reason)]
    assert context.probe is not None
    found: dict[str, Any] = context.probe.get("rdma", {})
    return [_rdma(context, found), _ib_hca(context, found)]


def _declared(context: NodeContext) -> list[str]:
    return [name.split(":")[0] for name in context.target.rdma_devices]


def _rdma(context: NodeContext, found: dict[str, Any]) -> Check:
    node = context.node
    assert context.probe is not None
    if context.probe.get("dev_infiniband") is None:
        return failed(
            node,
            "rdma",
            "/dev/infiniband is missing in the container",
            f"check that node {node} has the RDMA drivers loaded (ibv_devices lists devices) and"
            " the container gets --device /dev/infiniband",
        )
    if not found:
        return failed(
            node,
            "rdma",
            "no RDMA device in /sys/class/infiniband",
            f"load the RDMA drivers on node {node} (mlx5_ib) or set `fabric: ethernet`",
        )
    names = _declared(context) or sorted(found)
    missing = [name for name in names if name not in found]
    if missing:
        return failed(
            node,
            "rdma",
            f"{', '.join(missing)} not found (node has {', '.join(sorted(found))})",
            f"set `rdma_devices:` for node {node} in the cluster file to devices it has",
        )
    want_layer = "InfiniBand" if context.fabric == "infiniband" else "Ethernet"
    gid_indices = set()
    for name in names:
        for port, facts in sorted(found[name]["ports"].items()):
            if facts["state"] != "ACTIVE":
                return failed(
                    node,
                    "rdma",
                    f"{name} port {port} is {facts['state']}",
                    f"bring {name} up on node {node} (cable, switch port, subnet manager:"
                    f" `ibstat {name}`) or drop it from `rdma_devices:`; otherwise NCCL falls"
                    " back to sockets or hangs",
                )
            if facts["link_layer"] != want_layer:
                right = "roce" if facts["link_layer"] == "Ethernet" else "infiniband"
                return failed(
                    node,
                    "rdma",
                    f"{name} port {port} runs {facts['link_layer']}, the cluster file says"
                    f" fabric {context.fabric}",
                    f"set `fabric: {right}` in the cluster file",
                )
            if want_layer == "Ethernet":
                gid = facts.get("roce_v2_ipv4_gid")
                if gid is None:
                    netdevs = ", ".join(found[name].get("netdevs", [])) or "its netdev"
                    return failed(
                        node,
                        "rdma",
                        f"{name} port {port} (RoCE) has no RoCE v2 GID with an IPv4 address",
                        f"give {netdevs} on node {node} an IPv4 address: NCCL's RoCE v2 GID"
                        " comes from it",
                    )
                gid_indices.add(gid)
    detail = f"{', '.join(names)} ACTIVE ({want_layer})"
    if gid_indices:
        detail += f", RoCE v2 GID index {','.join(str(i) for i in sorted(gid_indices))}"
    configured = context.env("NCCL_IB_GID_INDEX")
    if gid_indices and configured is not None and int(configured) not in gid_indices:
        return failed(
            node,
            "rdma",
            f"NCCL_IB_GID_INDEX={configured} but the RoCE v2 IPv4 GID is at"
            f" {','.join(str(i) for i in sorted(gid_indices))}",
            "re-render after `deploy doctor` or set NCCL_IB_GID_INDEX to the index found",
        )
    return passed(node, "rdma", detail)


def _hca_names(value: str) -> list[str]:
    """NCCL_IB_HCA's device names: `^` excludes, `=` means exact, `:port` is optional."""
    value = value.lstrip("^=")
    return [part.split(":")[0] for part in value.split(",") if part]


def _ib_hca(context: NodeContext, found: dict[str, Any]) -> Check:
    node = context.node
    value = context.env("NCCL_IB_HCA")
    active = sorted(
        name
        for name, facts in found.items()
        if any(port["state"] == "ACTIVE" for port in facts["ports"].values())
    )
    if value is None:
        return warned(
            node,
            "nccl-ib-hca",
            f"NCCL_IB_HCA is not set: NCCL uses any active device ({', '.join(active)})",
            f"list the GPU-facing devices as `rdma_devices:` for node {node} in the cluster file",
        )
    if value.startswith("^"):
        return passed(node, "nccl-ib-hca", f"NCCL_IB_HCA={value} (exclusion list)")
    unknown = [name for name in _hca_names(value) if name not in active]
    if unknown:
        return failed(
            node,
            "nccl-ib-hca",
            f"NCCL_IB_HCA={value} names {', '.join(unknown)}, not active here"
            f" (active: {', '.join(active) or 'none'})",
            f"set `rdma_devices:` for node {node} to the active devices and re-render",
        )
    return passed(node, "nccl-ib-hca", f"NCCL_IB_HCA={value} matches the active devices")


# -- the NCCL/Gloo interface ------------------------------------------------------------------


def interface_check(context: NodeContext) -> Check:
    node = context.node
    if context.simulate:
        return skipped(node, "interface", "the rehearsal runs on a bridge network")
    if not context.multi_node:
        return skipped(node, "interface", "single node: no NCCL/Gloo traffic between nodes")
    if context.probe is None:
        return skipped(node, "interface", "the probe did not run")
    found: dict[str, Any] = context.probe.get("interfaces", {})
    address = context.target.address
    holder = next(
        (name for name, facts in sorted(found.items()) if address in facts.get("ipv4", [])), None
    )
    named = context.env("NCCL_SOCKET_IFNAME") or context.env("GLOO_SOCKET_IFNAME")
    named = named or context.target.interface
    with_ip = [name for name, f in sorted(found.items()) if f.get("ipv4") and name != "lo"]
    suggestion = holder or (with_ip[0] if with_ip else None)
    fix_to = (
        f"set `network_interface: {suggestion}` for node {node} in the cluster file"
        if suggestion
        else f"give an interface of node {node} an IPv4 address peers reach"
    )
    if named is None:
        if holder is not None:
            return warned(
                node,
                "interface",
                f"no NCCL/Gloo interface named; {holder} holds {address}",
                fix_to + ": NCCL and Gloo otherwise pick one themselves",
            )
        return _address_not_held(context, with_ip)
    facts = found.get(named)
    if facts is None:
        return failed(
            node,
            "interface",
            f"{named} does not exist in the container's network namespace"
            f" (it has {', '.join(sorted(found)) or 'none'})",
            fix_to,
        )
    if not facts.get("ipv4"):
        return failed(
            node,
            "interface",
            f"{named} has no IPv4 address",
            f"{fix_to}: {named} has no IPv4 address",
        )
    if facts.get("operstate") not in ("up", "unknown"):
        return failed(node, "interface", f"{named} is {facts.get('operstate')}", fix_to)
    if _is_ip(address) and address not in facts["ipv4"]:
        if holder is None:
            return _address_not_held(context, with_ip)
        return failed(
            node,
            "interface",
            f"{named} holds {', '.join(facts['ipv4'])}, not the node's address {address}"
            f" ({holder} does)",
            f"{fix_to}, or set `address:` of node {node} to an address of {named}",
        )
    return passed(node, "interface", f"{named} holds {', '.join(facts['ipv4'])}")


def _address_not_held(context: NodeContext, with_ip: list[str]) -> Check:
    node, address = context.node, context.target.address
    if not _is_ip(address):
        return passed(node, "interface", f"address {address} is a host name (not checked)")
    found = context.probe.get("interfaces", {}) if context.probe else {}
    held = sorted(a for name in with_ip for a in found[name]["ipv4"])
    return failed(
        node,
        "interface",
        f"no interface holds the node's address {address} (addresses: {', '.join(held) or 'none'})",
        f"set `address:` of node {node} in the cluster file to the address peers reach it at",
    )


# -- ports, reachability, clock ---------------------------------------------------------------


def ports_check(context: NodeContext) -> Check:
    node = context.node
    ports = context.target.ports
    if not ports:
        return skipped(node, "ports", "no service listens on this node")
    listed = ", ".join(f"{port} ({what})" for port, what in ports.items())
    if context.probe is None:
        return skipped(node, "ports", "the probe did not run")
    if context.running:
        return skipped(node, "ports", f"held by the running deployment: {listed}")
    if not context.host_network:
        return passed(node, "ports", f"published ports free: {listed}")
    free: dict[str, bool] = context.probe.get("ports_free", {})
    busy = [port for port in ports if free.get(str(port)) is False]
    if busy:
        port = busy[0]
        return failed(
            node,
            "ports",
            f"port {port} ({ports[port]}) is in use on node {node}",
            f"stop what listens there (`ss -ltnp 'sport = :{port}'` on node {node}) or remove"
            " the deployment that holds it (`deploy status`)",
        )
    return passed(node, "ports", f"free: {listed}")


def reachability_check(context: NodeContext) -> Check:
    node = context.node
    if not context.multi_node:
        return skipped(node, "reachability", "single node")
    if not context.reach:
        return skipped(node, "reachability", "not tested (no peer port, or --fast)")
    broken = {target: result for target, result in context.reach.items() if result != "ok"}
    if broken:
        target, result = next(iter(sorted(broken.items())))
        peer, _, address = target.partition(" -> ")
        port = address.rsplit(":", 1)[-1]
        what = context.target.peer_ports.get(int(port), "port") if port.isdigit() else "port"
        return failed(
            node,
            "reachability",
            f"{peer} cannot reach {address} ({what}): {result}",
            f"open TCP {port} from {peer} to {node} (firewall, security group) and check that"
            f" {address.rsplit(':', 1)[0]} is the address {peer} reaches {node} at",
        )
    return passed(node, "reachability", f"reached from peers: {', '.join(sorted(context.reach))}")


def clock_check(context: NodeContext) -> Check:
    node = context.node
    offset = context.clock_offset_s
    if offset is None:
        return skipped(node, "clock", "not measured")
    if abs(offset) > CLOCK_WARN_S:
        return warned(
            node,
            "clock",
            f"clock {offset:+.1f} s off this machine's",
            f"run NTP on node {node} (timedatectl set-ntp true, chrony)",
        )
    return passed(node, "clock", f"within {CLOCK_WARN_S:.0f} s of this machine")
