"""RDMA devices and network interfaces from sysfs/procfs, for NCCL and PD transfer settings.

Everything reads under a root (`SystemPaths`) so tests replay recorded trees. A missing or
unreadable file is a missing fact (None), never an error: containers and VMs hide parts of
/sys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.hardware.inventory import NetInterface, RdmaDevice, RdmaPort


@dataclass(frozen=True)
class SystemPaths:
    sys: Path = Path("/sys")
    proc: Path = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def sysfs_bus_id(bus_id: str) -> str:
    """NVML's `00000000:18:00.0` -> sysfs's `0000:18:00.0`."""
    domain, _, rest = bus_id.partition(":")
    return f"{int(domain, 16):04x}:{rest.lower()}"


def pci_path(paths: SystemPaths, bus_id: str) -> list[str]:
    """The chain of PCI devices from the root complex down to `bus_id` (empty if unknown)."""
    link = paths.sys / "bus" / "pci" / "devices" / sysfs_bus_id(bus_id)
    try:
        resolved = link.resolve(strict=True)
    except OSError:
        return []
    parts = resolved.parts
    return [part for part in parts if part.count(":") == 2 or part.startswith("pci")]


def pci_numa_node(paths: SystemPaths, bus_id: str) -> int | None:
    node = _read_int(paths.sys / "bus" / "pci" / "devices" / sysfs_bus_id(bus_id) / "numa_node")
    return node if node is not None and node >= 0 else None


def _rate_gbps(text: str | None) -> float | None:
    # "400 Gb/sec (4X NDR)"
    if not text:
        return None
    try:
        return float(text.split()[0])
    except (ValueError, IndexError):
        return None


def rdma_devices(paths: SystemPaths) -> list[RdmaDevice]:
    root = paths.sys / "class" / "infiniband"
    devices: list[RdmaDevice] = []
    for name in _listdir(root):
        base = root / name
        ports: list[RdmaPort] = []
        for port in _listdir(base / "ports"):
            if not port.isdigit():
                continue
            state = _read(base / "ports" / port / "state") or "UNKNOWN"
            ports.append(
                RdmaPort(
                    port=int(port),
                    # "4: ACTIVE" -> "ACTIVE"
                    state=state.split(":", 1)[-1].strip(),
                    link_layer=_read(base / "ports" / port / "link_layer") or "unknown",
                    rate_gbps=_rate_gbps(_read(base / "ports" / port / "rate")),
                )
            )
        bus_id: str | None = None
        try:
            bus_id = (base / "device").resolve(strict=True).name
        except OSError:
            bus_id = None
        numa = _read_int(base / "device" / "numa_node")
        devices.append(
            RdmaDevice(
                name=name,
                pci_bus_id=bus_id,
                numa_node=numa if numa is not None and numa >= 0 else None,
                netdevs=_listdir(base / "device" / "net"),
                ports=ports,
            )
        )
    return devices


def default_route_interfaces(paths: SystemPaths) -> set[str]:
    """Interfaces holding an IPv4 default route (/proc/net/route, destination 00000000)."""
    text = _read(paths.proc / "net" / "route")
    names: set[str] = set()
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            names.add(fields[0])
    return names


def network_interfaces(paths: SystemPaths) -> list[NetInterface]:
    root = paths.sys / "class" / "net"
    defaults = default_route_interfaces(paths)
    interfaces: list[NetInterface] = []
    for name in _listdir(root):
        base = root / name
        link_type = _read_int(base / "type")
        # ARPHRD_ETHER = 1, ARPHRD_INFINIBAND = 32, ARPHRD_LOOPBACK = 772
        kind = {1: "ethernet", 32: "infiniband", 772: "loopback"}.get(link_type or -1, "other")
        try:
            virtual = "/virtual/" in str(base.resolve(strict=True))
        except OSError:
            virtual = False
        speed = _read_int(base / "speed")
        interfaces.append(
            NetInterface(
                name=name,
                operstate=_read(base / "operstate") or "unknown",
                kind=kind,  # type: ignore[arg-type]
                virtual=virtual,
                speed_mbps=speed if speed is not None and speed > 0 else None,
                mtu=_read_int(base / "mtu"),
                default_route=name in defaults,
            )
        )
    return interfaces


def choose_interface(interfaces: list[NetInterface]) -> str | None:
    """The interface NCCL/GLOO should bind: the default route's, else the first physical
    interface that is up, else None (let the engine pick)."""
    usable = [i for i in interfaces if i.kind != "loopback" and i.operstate in ("up", "unknown")]
    for interface in usable:
        if interface.default_route:
            return interface.name
    physical = [i for i in usable if not i.virtual]
    return physical[0].name if physical else None


def nearest_rdma(
    paths: SystemPaths, gpu_bus_id: str, gpu_numa: int | None, devices: list[RdmaDevice]
) -> str | None:
    """The active RDMA device sharing the longest PCIe path with the GPU (same switch
    first), then one on the GPU's NUMA node; None when no device is active."""
    active = [device for device in devices if device.active]
    if not active:
        return None
    gpu_path = pci_path(paths, gpu_bus_id)

    def score(device: RdmaDevice) -> tuple[int, int]:
        shared = 0
        if device.pci_bus_id and gpu_path:
            for mine, theirs in zip(gpu_path, pci_path(paths, device.pci_bus_id), strict=False):
                if mine != theirs:
                    break
                shared += 1
        same_numa = int(gpu_numa is not None and device.numa_node == gpu_numa)
        return (shared, same_numa)

    best = max(active, key=score)
    return best.name if score(best) > (0, 0) else None


def fabric_of(devices: list[RdmaDevice]) -> str:
    """`infiniband` or `roce` from the active RDMA ports, else `ethernet`."""
    layers = {device.link_layer for device in devices if device.active}
    if "InfiniBand" in layers:
        return "infiniband"
    if "Ethernet" in layers:
        return "roce"
    return "ethernet"
