"""A stand-in for the `pynvml` module, answering from a recorded topology (JSON).

It keeps pynvml's function names, signatures, return types (the real ctypes structures) and
error classes: a query the recorded GPU did not support raises the same `pynvml.NVMLError`
subclass with the same error code as the driver would. Constants and error classes come from
the real module, so detection code cannot tell the two apart. Used by tests, benchmarks and
`deploy detect --topology FILE` to replay a machine that is not this one.

Recorded values are written as NVML returns them; a value may be replaced by
`{"error": "NOT_SUPPORTED"}` (any NVML_ERROR_* suffix) to record a failing query.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import pynvml

_LEVELS = {
    "PIX": pynvml.NVML_TOPOLOGY_SINGLE,
    "PXB": pynvml.NVML_TOPOLOGY_MULTIPLE,
    "PHB": pynvml.NVML_TOPOLOGY_HOSTBRIDGE,
    "NODE": pynvml.NVML_TOPOLOGY_NODE,
    "SYS": pynvml.NVML_TOPOLOGY_SYSTEM,
}
_P2P_CODES = {
    "OK": pynvml.NVML_P2P_STATUS_OK,
    "CNS": pynvml.NVML_P2P_STATUS_CHIPSET_NOT_SUPPORTED,
    "GNS": pynvml.NVML_P2P_STATUS_GPU_NOT_SUPPORTED,
    "TNS": pynvml.NVML_P2P_STATUS_IOH_TOPOLOGY_NOT_SUPPORTED,
    "DR": pynvml.NVML_P2P_STATUS_DISABLED_BY_REGKEY,
    "NS": pynvml.NVML_P2P_STATUS_NOT_SUPPORTED,
    "U": pynvml.NVML_P2P_STATUS_UNKNOWN,
}
# p2pIndex -> key in the recording's "p2p" table.
_P2P_CAPS = {0: "read", 1: "write", 2: "nvlink", 3: "atomics", 4: "prop"}
_REMOTE_TYPES = {
    "gpu": pynvml.NVML_NVLINK_DEVICE_TYPE_GPU,
    "npu": pynvml.NVML_NVLINK_DEVICE_TYPE_IBMNPU,
    "switch": pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH,
    "unknown": pynvml.NVML_NVLINK_DEVICE_TYPE_UNKNOWN,
}


class FakeHandle:
    """Stands for a `c_nvmlDevice_t`; detection treats handles as opaque."""

    def __init__(self, index: int, mig_slot: int | None = None) -> None:
        self.index = index
        self.mig_slot = mig_slot

    def __repr__(self) -> str:
        return f"FakeHandle({self.index}, mig_slot={self.mig_slot})"


def _raise(code_name: str) -> None:
    raise pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{code_name}"))


def _value(recorded: Any) -> Any:
    """Return a recorded value, or raise the NVML error recorded in its place."""
    if isinstance(recorded, dict) and set(recorded) == {"error"}:
        _raise(str(recorded["error"]))
    return recorded


def _pci_info(bus_id: str, device_id: int = 0) -> pynvml.nvmlPciInfo_t:
    domain, bus, rest = bus_id.split(":")
    device = rest.split(".")[0]
    info = pynvml.nvmlPciInfo_t()
    info.busId = bus_id.encode()
    info.busIdLegacy = f"{int(domain, 16):04X}:{bus}:{rest}".encode()
    info.domain = int(domain, 16)
    info.bus = int(bus, 16)
    info.device = int(device, 16)
    info.pciDeviceId = device_id
    return info


def _mask(bits: list[int], words: int) -> Any:
    array = (ctypes.c_ulonglong * words)()
    for bit in bits:
        if bit // 64 < words:
            array[bit // 64] |= 1 << (bit % 64)
    return array


def _cpu_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    return cpus


class FakeNvml:
    """The subset of pynvml that detection uses, replaying a recorded topology."""

    def __init__(self, topology: dict[str, Any]) -> None:
        self.topology = topology
        self._gpus: list[dict[str, Any]] = topology["gpus"]
        self._initialized = 0

    @classmethod
    def from_file(cls, path: Path) -> FakeNvml:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    @property
    def hostname(self) -> str | None:
        return self.topology.get("hostname")

    def __getattr__(self, name: str) -> Any:
        # Constants, structures and error classes are the real module's.
        if name.startswith("nvml") and name[4:5].isupper():
            raise AttributeError(f"FakeNvml does not replay {name}")
        return getattr(pynvml, name)

    # -- library -------------------------------------------------------------------------
    def _check(self) -> None:
        if not self._initialized:
            _raise("UNINITIALIZED")

    def _gpu(self, handle: FakeHandle) -> dict[str, Any]:
        self._check()
        if not isinstance(handle, FakeHandle) or not 0 <= handle.index < len(self._gpus):
            _raise("INVALID_ARGUMENT")
        gpu = self._gpus[handle.index]
        if handle.mig_slot is not None:
            return dict(_value(gpu.get("mig_devices", []))[handle.mig_slot])
        return gpu

    def nvmlInit(self) -> None:
        if "init_error" in self.topology:
            _raise(self.topology["init_error"])
        self._initialized += 1

    def nvmlShutdown(self) -> None:
        self._check()
        self._initialized -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return str(_value(self.topology["system"]["driver_version"]))

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check()
        return int(_value(self.topology["system"]["cuda_driver_version"]))

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check()
        return str(_value(self.topology["system"]["nvml_version"]))

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._check()
        if not 0 <= index < len(self._gpus):
            _raise("INVALID_ARGUMENT")
        return FakeHandle(index)

    # -- identity ------------------------------------------------------------------------
    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return str(_value(self._gpu(handle)["name"]))

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return str(_value(self._gpu(handle)["uuid"]))

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: Any = None) -> Any:
        memory = pynvml.c_nvmlMemory_t()
        gpu = self._gpu(handle)
        memory.total = int(_value(gpu["memory_total"]))
        # Memory held by other processes (and the driver's reservation), when recorded.
        memory.used = int(_value(gpu.get("memory_used", 0)))
        memory.free = memory.total - memory.used
        return memory

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[Any]:
        """Recorded `processes: [{"pid", "used_memory"}]` as pynvml's process structures."""
        processes = []
        for recorded in _value(self._gpu(handle).get("processes", [])):
            info = pynvml.c_nvmlProcessInfo_v3_t()
            info.pid = int(recorded["pid"])
            info.usedGpuMemory = int(recorded["used_memory"])
            processes.append(info)
        return processes

    def nvmlDeviceGetCudaComputeCapability(self, handle: FakeHandle) -> tuple[int, int]:
        major, minor = _value(self._gpu(handle)["compute_capability"])
        return (int(major), int(minor))

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> Any:
        gpu = self._gpu(handle)
        return _pci_info(str(gpu["pci_bus_id"]), int(gpu.get("pci_device_id", 0)))

    def nvmlDeviceGetMaxPcieLinkGeneration(self, handle: FakeHandle) -> int:
        return int(
            _value(self._gpu(handle).get("max_pcie_link_generation", {"error": "NOT_SUPPORTED"}))
        )

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: FakeHandle) -> int:
        return int(_value(self._gpu(handle).get("max_pcie_link_width", {"error": "NOT_SUPPORTED"})))

    # -- NUMA and CPUs -------------------------------------------------------------------
    def nvmlDeviceGetNumaNodeId(self, handle: FakeHandle) -> int:
        return int(_value(self._gpu(handle).get("numa_node_id", {"error": "NOT_SUPPORTED"})))

    def nvmlDeviceGetMemoryAffinity(self, handle: FakeHandle, nodeSetSize: int, scope: int) -> Any:
        nodes = _value(self._gpu(handle).get("memory_affinity", {"error": "NOT_SUPPORTED"}))
        return _mask([int(node) for node in nodes], nodeSetSize)

    def nvmlDeviceGetCpuAffinity(self, handle: FakeHandle, cpuSetSize: int) -> Any:
        cpus = _value(self._gpu(handle).get("cpu_affinity", {"error": "NOT_SUPPORTED"}))
        return _mask(_cpu_list(str(cpus)), cpuSetSize)

    # -- MIG -----------------------------------------------------------------------------
    def nvmlDeviceGetMigMode(self, device: FakeHandle) -> list[int]:
        current, pending = _value(self._gpu(device).get("mig_mode", {"error": "NOT_SUPPORTED"}))
        return [int(current), int(pending)]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: FakeHandle) -> int:
        return int(
            _value(self._gpu(device).get("max_mig_device_count", {"error": "NOT_SUPPORTED"}))
        )

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: FakeHandle, index: int) -> FakeHandle:
        gpu = self._gpu(device)
        devices = _value(gpu.get("mig_devices", {"error": "NOT_SUPPORTED"}))
        if not 0 <= index < int(gpu.get("max_mig_device_count", 0)):
            _raise("INVALID_ARGUMENT")
        if index >= len(devices):
            _raise("NOT_FOUND")
        return FakeHandle(device.index, mig_slot=index)

    # -- NVLink --------------------------------------------------------------------------
    def _link(self, device: FakeHandle, link: int) -> dict[str, Any]:
        links = _value(self._gpu(device).get("nvlink", {"error": "NOT_SUPPORTED"}))
        if not 0 <= link < len(links):
            _raise("INVALID_ARGUMENT")
        return dict(_value(links[link]))

    def nvmlDeviceGetNvLinkState(self, device: FakeHandle, link: int) -> int:
        return int(_value(self._link(device, link)["state"]))

    def nvmlDeviceGetNvLinkVersion(self, device: FakeHandle, link: int) -> int:
        return int(_value(self._link(device, link).get("version", {"error": "NOT_SUPPORTED"})))

    def nvmlDeviceGetNvLinkRemotePciInfo(self, device: FakeHandle, link: int) -> Any:
        recorded = self._link(device, link)
        if not recorded["state"]:
            _raise("NOT_SUPPORTED")
        return _pci_info(str(_value(recorded["remote_pci_bus_id"])))

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: FakeHandle, link: int) -> int:
        recorded = self._link(handle, link)
        if not recorded["state"]:
            _raise("NOT_SUPPORTED")
        return int(_REMOTE_TYPES[str(_value(recorded.get("remote_type", "unknown")))])

    # -- pairs ---------------------------------------------------------------------------
    def _pair_entry(self, table: Any, device1: FakeHandle, device2: FakeHandle) -> str:
        self._gpu(device1)
        self._gpu(device2)
        row = _value(table)[device1.index]
        return str(_value(row[device2.index]))

    def nvmlDeviceGetTopologyCommonAncestor(self, device1: FakeHandle, device2: FakeHandle) -> int:
        if device1.index == device2.index:
            return int(pynvml.NVML_TOPOLOGY_INTERNAL)
        return int(_LEVELS[self._pair_entry(self.topology["pcie_levels"], device1, device2)])

    def nvmlDeviceGetP2PStatus(
        self, device1: FakeHandle, device2: FakeHandle, p2pIndex: int
    ) -> int:
        if not isinstance(p2pIndex, int):
            # pynvml passes the index to C untyped: a tuple (NVML_P2P_CAPS_INDEX_READ is one)
            # fails in ctypes before reaching the driver.
            raise ctypes.ArgumentError(
                "argument 3: TypeError: Don't know how to convert parameter 3"
            )
        if p2pIndex not in _P2P_CAPS:
            _raise("INVALID_ARGUMENT")
        if device1.index == device2.index:
            _raise("INVALID_ARGUMENT")
        tables = _value(self.topology.get("p2p", {"error": "NOT_SUPPORTED"}))
        return int(_P2P_CODES[self._pair_entry(tables[_P2P_CAPS[p2pIndex]], device1, device2)])

    # -- fabric --------------------------------------------------------------------------
    def _fill_fabric(self, device: FakeHandle, info: Any, versioned: bool) -> None:
        gpu = self._gpu(device)
        if versioned and gpu.get("fabric_v_error"):
            _raise(str(gpu["fabric_v_error"]))
        recorded = _value(gpu.get("fabric", {"error": "NOT_SUPPORTED"}))
        target = getattr(info, "_obj", info)  # byref(struct) or the struct itself
        if versioned and getattr(target, "version", None) != pynvml.nvmlGpuFabricInfo_v2:
            _raise("ARGUMENT_VERSION_MISMATCH")
        uuid = bytes.fromhex(str(recorded.get("cluster_uuid", "0" * 32)).replace("-", ""))
        for position, byte in enumerate(uuid[: pynvml.NVML_GPU_FABRIC_UUID_LEN]):
            target.clusterUuid[position] = byte
        target.status = int(recorded.get("status", 0))
        target.cliqueId = int(recorded.get("clique_id", 0))
        target.state = int(recorded["state"])

    def nvmlDeviceGetGpuFabricInfo(self, device: FakeHandle, gpuFabricInfo: Any) -> int:
        self._fill_fabric(device, gpuFabricInfo, versioned=False)
        return int(pynvml.NVML_SUCCESS)

    def nvmlDeviceGetGpuFabricInfoV(self, device: FakeHandle, gpuFabricInfo: Any) -> int:
        self._fill_fabric(device, gpuFabricInfo, versioned=True)
        return int(pynvml.NVML_SUCCESS)
