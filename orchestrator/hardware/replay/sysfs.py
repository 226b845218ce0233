"""Write the `sysfs` part of a recorded topology as a real directory tree.

Detection then reads it through the same `SystemPaths` code it uses on /sys and /proc:
PCI devices (with their switch chain and NUMA node), InfiniBand devices with their ports and
netdevs, network interfaces and the IPv4 default route. A recording may also say what a
container sees: interface addresses (`net.<name>.ipv4: ["10.0.0.5/24"]`, written as the kernel
writes them, in /proc/net/fib_trie and connected routes), `/dev/shm`'s mount (`shm_size`, a
tmpfs `size=` option such as `65536k`), the locked-memory limit (`memlock`, bytes or
`unlimited`) and device nodes (`dev: ["infiniband/uverbs0"]`).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

from orchestrator.hardware.sysfs import SystemPaths


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, link.parent), link)


def write_sysfs(recorded: dict[str, Any], root: Path) -> SystemPaths:
    """Materialize `recorded` (a topology's "sysfs" mapping) under `root`."""
    sys_root, proc_root = root / "sys", root / "proc"
    devices = sys_root / "devices"
    pci_dirs: dict[str, Path] = {}
    for bus_id, info in recorded.get("pci", {}).items():
        device_dir = devices / info["path"]
        device_dir.mkdir(parents=True, exist_ok=True)
        _write(device_dir / "numa_node", str(info.get("numa_node", -1)))
        _link(sys_root / "bus" / "pci" / "devices" / bus_id, device_dir)
        pci_dirs[bus_id] = device_dir
    for name, info in recorded.get("infiniband", {}).items():
        base = sys_root / "class" / "infiniband" / name
        base.mkdir(parents=True, exist_ok=True)
        if info.get("pci") in pci_dirs:
            _link(base / "device", pci_dirs[info["pci"]])
        for port, values in info.get("ports", {}).items():
            for key, value in values.items():
                _write(base / "ports" / port / key, str(value))
    for name, info in recorded.get("net", {}).items():
        if info.get("virtual"):
            target = devices / "virtual" / "net" / name
        elif info.get("pci") in pci_dirs:
            target = pci_dirs[info["pci"]] / "net" / name
        else:
            # A physical port whose PCI device was not recorded.
            target = devices / "platform" / name / "net" / name
        target.mkdir(parents=True, exist_ok=True)
        if info.get("pci") in pci_dirs:
            _link(target / "device", pci_dirs[info["pci"]])
        for key in ("type", "operstate", "mtu", "speed"):
            if info.get(key) is not None:
                _write(target / key, str(info[key]))
        _link(sys_root / "class" / "net" / name, target)
    routes = [
        row for name, info in recorded.get("net", {}).items() for row in _connected(name, info)
    ]
    rows = ["Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"]
    rows += [
        f"{name}\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0"
        for name in recorded.get("default_route", [])
    ]
    _write(proc_root / "net" / "route", "\n".join(rows + routes))
    _write(proc_root / "net" / "fib_trie", _fib_trie(recorded.get("net", {})))
    _write_container(recorded, root)
    return SystemPaths(sys=sys_root, proc=proc_root)


def _le_hex(address: int) -> str:
    """/proc/net/route's little-endian hex of an IPv4 address."""
    return address.to_bytes(4, "big")[::-1].hex().upper()


def _connected(name: str, info: dict[str, Any]) -> list[str]:
    """The connected route the kernel adds for each address of an interface."""
    rows = []
    for cidr in info.get("ipv4", []):
        network = ipaddress.ip_interface(cidr).network
        rows.append(
            f"{name}\t{_le_hex(int(network.network_address))}\t00000000\t0001\t0\t0\t0\t"
            f"{_le_hex(int(network.netmask))}\t0\t0\t0"
        )
    return rows


def _fib_trie(net: dict[str, Any]) -> str:
    """A /proc/net/fib_trie listing each local address as a `/32 host LOCAL` leaf."""
    lines = ["Main:", "  +-- 0.0.0.0/0 3 0 5"]
    addresses = ["127.0.0.1"] if "lo" in net else []
    addresses += [
        str(ipaddress.ip_interface(cidr).ip)
        for info in net.values()
        for cidr in info.get("ipv4", [])
    ]
    for address in addresses:
        lines += [f"     |-- {address}", "        /32 host LOCAL"]
    return "\n".join(lines)


def _write_container(recorded: dict[str, Any], root: Path) -> None:
    """/proc/self/mounts, /proc/self/limits and /dev nodes as the engine's container sees them."""
    proc_self = root / "proc" / "self"
    shm = recorded.get("shm_size", "16777216k")
    _write(
        proc_self / "mounts",
        f"shm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size={shm} 0 0",
    )
    memlock = str(recorded.get("memlock", "8388608"))
    _write(
        proc_self / "limits",
        "Limit                     Soft Limit           Hard Limit           Units\n"
        f"Max locked memory         {memlock:<20} {memlock:<20} bytes",
    )
    for node in recorded.get("dev", []):
        _write(root / "dev" / node, "")
