"""Write the `sysfs` part of a recorded topology as a real directory tree.

Detection then reads it through the same `SystemPaths` code it uses on /sys and /proc:
PCI devices (with their switch chain and NUMA node), InfiniBand devices with their ports and
netdevs, network interfaces and the IPv4 default route.
"""

from __future__ import annotations

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
    rows = ["Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"]
    rows += [
        f"{name}\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0"
        for name in recorded.get("default_route", [])
    ]
    _write(proc_root / "net" / "route", "\n".join(rows))
    return SystemPaths(sys=sys_root, proc=proc_root)
