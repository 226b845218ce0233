"""Record what NVML and sysfs answer on this machine, in the format `FakeNvml` replays.

`deploy detect --record FILE` writes it; `deploy detect --replay FILE` (and the tests) run
detection against it elsewhere. Failing queries are recorded as `{"error": "NOT_SUPPORTED"}`
so the replay raises the same NVMLError the driver raised.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from orchestrator.hardware.detect import (
    _P2P_CAPS,
    _cpu_list,
    _error_name,
    _set_bits,
    _text,
    load_pynvml,
    normalize_bus_id,
    start_nvml,
)
from orchestrator.hardware.sysfs import SystemPaths, default_route_interfaces, sysfs_bus_id

_MASK_WORDS = 16
_LEVEL_NAMES = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
_P2P_NAMES = {0: "OK", 1: "CNS", 2: "GNS", 3: "TNS", 4: "DR", 5: "NS", 6: "U"}
_REMOTE_NAMES = {0: "gpu", 1: "npu", 2: "switch", 255: "unknown"}


def _answer(nvml: Any, function: str, *args: Any) -> Any:
    try:
        return getattr(nvml, function)(*args)
    except nvml.NVMLError as error:
        return {"error": _error_name(error)}


def _failed(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"error"}


def _then(value: Any, convert: Any) -> Any:
    return value if _failed(value) else convert(value)


def _links(nvml: Any, handle: Any) -> Any:
    links: list[Any] = []
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        state = _answer(nvml, "nvmlDeviceGetNvLinkState", handle, link)
        if _failed(state):
            if link == 0:
                return state
            break
        entry: dict[str, Any] = {
            "state": int(state),
            "version": _answer(nvml, "nvmlDeviceGetNvLinkVersion", handle, link),
        }
        if state:
            pci = _answer(nvml, "nvmlDeviceGetNvLinkRemotePciInfo", handle, link)
            entry["remote_pci_bus_id"] = _then(pci, lambda p: normalize_bus_id(p.busId))
            kind = _answer(nvml, "nvmlDeviceGetNvLinkRemoteDeviceType", handle, link)
            entry["remote_type"] = _then(kind, lambda k: _REMOTE_NAMES.get(int(k), "unknown"))
        links.append(entry)
    return links


def _fabric(nvml: Any, handle: Any, gpu: dict[str, Any]) -> None:
    import ctypes

    for struct, call, key in (
        ("c_nvmlGpuFabricInfoV_t", "nvmlDeviceGetGpuFabricInfoV", "fabric_v_error"),
        ("c_nvmlGpuFabricInfo_t", "nvmlDeviceGetGpuFabricInfo", "fabric"),
    ):
        info = getattr(nvml, struct)()
        result = _answer(nvml, call, handle, ctypes.byref(info))
        if _failed(result):
            gpu[key] = result["error"] if key == "fabric_v_error" else result
            continue
        gpu.pop("fabric_v_error", None)
        uuid = bytes(info.clusterUuid).hex()
        gpu["fabric"] = {
            "state": int(info.state),
            "status": int(info.status),
            "cluster_uuid": f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}",
            "clique_id": int(info.cliqueId),
        }
        return


def _gpu(nvml: Any, handle: Any) -> dict[str, Any]:
    def cpus(mask: Any) -> str:
        return _cpu_list(_set_bits(mask)) or ""

    pci = nvml.nvmlDeviceGetPciInfo(handle)
    gpu: dict[str, Any] = {
        "name": _then(_answer(nvml, "nvmlDeviceGetName", handle), _text),
        "uuid": _then(_answer(nvml, "nvmlDeviceGetUUID", handle), _text),
        "memory_total": _then(
            _answer(nvml, "nvmlDeviceGetMemoryInfo", handle), lambda m: int(m.total)
        ),
        "compute_capability": _then(
            _answer(nvml, "nvmlDeviceGetCudaComputeCapability", handle), list
        ),
        "pci_bus_id": normalize_bus_id(pci.busId),
        "pci_device_id": int(pci.pciDeviceId),
        "max_pcie_link_generation": _answer(nvml, "nvmlDeviceGetMaxPcieLinkGeneration", handle),
        "max_pcie_link_width": _answer(nvml, "nvmlDeviceGetMaxPcieLinkWidth", handle),
        "memory_affinity": _then(
            _answer(
                nvml,
                "nvmlDeviceGetMemoryAffinity",
                handle,
                _MASK_WORDS,
                nvml.NVML_AFFINITY_SCOPE_NODE,
            ),
            _set_bits,
        ),
        "numa_node_id": _answer(nvml, "nvmlDeviceGetNumaNodeId", handle),
        "cpu_affinity": _then(_answer(nvml, "nvmlDeviceGetCpuAffinity", handle, _MASK_WORDS), cpus),
        "mig_mode": _then(_answer(nvml, "nvmlDeviceGetMigMode", handle), list),
        "max_mig_device_count": _answer(nvml, "nvmlDeviceGetMaxMigDeviceCount", handle),
        "mig_devices": [],
        "nvlink": _links(nvml, handle),
    }
    if isinstance(gpu["max_mig_device_count"], int):
        for slot in range(gpu["max_mig_device_count"]):
            mig = _answer(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
            if not _failed(mig):
                gpu["mig_devices"].append(
                    {
                        "uuid": _then(_answer(nvml, "nvmlDeviceGetUUID", mig), _text),
                        "memory_total": _then(
                            _answer(nvml, "nvmlDeviceGetMemoryInfo", mig), lambda m: int(m.total)
                        ),
                    }
                )
    _fabric(nvml, handle, gpu)
    return gpu


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _pci_entry(paths: SystemPaths, bus_id: str) -> dict[str, Any] | None:
    link = paths.sys / "bus" / "pci" / "devices" / bus_id
    try:
        resolved = link.resolve(strict=True)
        relative = resolved.relative_to((paths.sys / "devices").resolve())
    except (OSError, ValueError):
        return None
    numa = _read(link / "numa_node")
    return {
        "path": str(relative),
        "numa_node": int(numa) if numa and numa.lstrip("-").isdigit() else -1,
    }


def _sysfs(paths: SystemPaths, gpu_bus_ids: list[str]) -> dict[str, Any]:
    recorded: dict[str, Any] = {"pci": {}, "infiniband": {}, "net": {}, "default_route": []}
    for bus_id in gpu_bus_ids:
        entry = _pci_entry(paths, sysfs_bus_id(bus_id))
        if entry:
            recorded["pci"][sysfs_bus_id(bus_id)] = entry
    ib_root = paths.sys / "class" / "infiniband"
    for name in sorted(os.listdir(ib_root)) if ib_root.is_dir() else []:
        device: dict[str, Any] = {"ports": {}, "netdevs": []}
        try:
            nic = (ib_root / name / "device").resolve(strict=True).name
            device["pci"] = nic
            entry = _pci_entry(paths, nic)
            if entry:
                recorded["pci"][nic] = entry
        except OSError:
            pass
        net_dir = ib_root / name / "device" / "net"
        device["netdevs"] = sorted(os.listdir(net_dir)) if net_dir.is_dir() else []
        ports = ib_root / name / "ports"
        for port in sorted(os.listdir(ports)) if ports.is_dir() else []:
            device["ports"][port] = {
                key: _read(ports / port / key) or "" for key in ("state", "link_layer", "rate")
            }
        recorded["infiniband"][name] = device
    net_root = paths.sys / "class" / "net"
    for name in sorted(os.listdir(net_root)) if net_root.is_dir() else []:
        base = net_root / name
        resolved = str(base.resolve())
        info: dict[str, Any] = {"virtual": "/virtual/" in resolved}
        for key in ("type", "operstate", "mtu", "speed"):
            value = _read(base / key)
            if value is not None:
                info[key] = int(value) if value.lstrip("-").isdigit() else value
        device_link = base / "device"
        if device_link.exists():
            info["pci"] = device_link.resolve().name
        recorded["net"][name] = info
    recorded["default_route"] = sorted(default_route_interfaces(paths))
    return recorded


def record_topology(nvml: Any = None, paths: SystemPaths | None = None) -> dict[str, Any]:
    """Every NVML answer detection uses, plus the sysfs facts, as one JSON-ready mapping."""
    import socket

    nvml = nvml if nvml is not None else load_pynvml()
    paths = paths or SystemPaths()
    start_nvml(nvml)
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        gpus = [_gpu(nvml, handle) for handle in handles]
        count = len(handles)
        levels = [["X"] * count for _ in range(count)]
        p2p = {cap: [["X"] * count for _ in range(count)] for cap in _P2P_CAPS}
        for a in range(count):
            for b in range(count):
                if a == b:
                    continue
                level = _answer(nvml, "nvmlDeviceGetTopologyCommonAncestor", handles[a], handles[b])
                levels[a][b] = _then(level, lambda value: _LEVEL_NAMES.get(int(value), "SYS"))
                for cap, index in _P2P_CAPS.items():
                    status = _answer(nvml, "nvmlDeviceGetP2PStatus", handles[a], handles[b], index)
                    p2p[cap][a][b] = _then(status, lambda value: _P2P_NAMES.get(int(value), "U"))
        system = {
            "driver_version": _then(_answer(nvml, "nvmlSystemGetDriverVersion"), _text),
            "cuda_driver_version": _answer(nvml, "nvmlSystemGetCudaDriverVersion"),
            "nvml_version": _then(_answer(nvml, "nvmlSystemGetNVMLVersion"), _text),
        }
    finally:
        nvml.nvmlShutdown()
    return {
        "description": f"recorded by deploy detect --record on {socket.gethostname()}",
        "hostname": socket.gethostname(),
        "system": system,
        "gpus": gpus,
        "pcie_levels": levels,
        "p2p": p2p,
        "sysfs": _sysfs(paths, [gpu["pci_bus_id"] for gpu in gpus]),
    }
