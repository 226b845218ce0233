"""Detect the local node through NVML (or anything that answers like `pynvml`).

Every per-GPU query goes through `_Session.ask`, which turns an `NVMLError` into a recorded
fact ("this GPU does not support X") instead of an exception: detection must describe odd
machines (VMs, consumer cards, MIG, old drivers), not crash on them. Only `nvmlInit`, the
device count or a device handle failing stops detection, as `NvmlUnavailable` (exit code 2).
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
from typing import Any

from orchestrator.errors import HardwareError
from orchestrator.hardware import topology
from orchestrator.hardware.inventory import (
    SCHEMA_VERSION,
    FabricInfo,
    GpuInfo,
    MigDevice,
    MigInfo,
    NodeInventory,
    NvLinkInfo,
    PairLink,
)
from orchestrator.hardware.sysfs import (
    SystemPaths,
    choose_interface,
    fabric_of,
    nearest_rdma,
    network_interfaces,
    pci_numa_node,
    rdma_devices,
)

NO_NVML_HINT = (
    "describe the hardware with --cluster FILE or --gpus SPEC (e.g. --gpus 8xH100), "
    "or serve on this machine's CPUs with --cpus all"
)
# Node/CPU masks are arrays of 64-bit words; 16 words cover 1024 CPUs or NUMA nodes.
_MASK_WORDS = 16
_P2P_CAPS = {"read": 0, "write": 1, "nvlink": 2, "atomics": 3, "prop": 4}
_P2P_CODES = {0: "OK", 1: "CNS", 2: "GNS", 3: "TNS", 4: "DR", 5: "NS", 6: "U"}
_REMOTE_KINDS = {0: "gpu", 1: "npu", 2: "switch", 255: "unknown"}
_FABRIC_STATES = {0: "not-supported", 1: "not-started", 2: "in-progress", 3: "completed"}


class NvmlUnavailable(HardwareError):
    """No driver, no GPU, or no NVML library: detection cannot run here."""


def load_pynvml() -> Any:
    """Import the real `pynvml` lazily; its absence is a user-facing error."""
    try:
        import pynvml
    except ImportError as error:
        raise NvmlUnavailable(
            "cannot detect GPUs: the nvidia-ml-py package is not installed", NO_NVML_HINT
        ) from error
    return pynvml


def _error_name(error: Exception) -> str:
    """`NOT_SUPPORTED` for an NVMLError_NotSupported (the NVML_ERROR_* suffix)."""
    value = getattr(error, "value", None)
    try:
        import pynvml
    except ImportError:
        return type(error).__name__
    for name in dir(pynvml):
        if name.startswith("NVML_ERROR_") and getattr(pynvml, name) == value:
            return name.removeprefix("NVML_ERROR_")
    return f"ERROR_{value}"


class _Session:
    """Queries one NVML provider, recording what fails."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._names: dict[int, str] = {}

    def error_name(self, error: Exception) -> str:
        value = getattr(error, "value", -1)
        if value not in self._names:
            self._names[value] = _error_name(error)
        return self._names[value]

    def ask(self, facts: dict[str, str], query: str, function: str, *args: Any) -> Any:
        """Call `nvml.<function>(*args)`; on an NVML error record it under `query`, return None."""
        try:
            return getattr(self.nvml, function)(*args)
        except self.nvml.NVMLError as error:
            facts[query] = self.error_name(error)
        except ctypes.ArgumentError as error:
            facts[query] = f"ARGUMENT_ERROR: {error}"
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def normalize_bus_id(bus_id: Any) -> str:
    """`0000:18:00.0`, `00000000:18:00.0` or bytes -> `00000000:18:00.0` (NVML's form)."""
    text = _text(bus_id).strip()
    domain, _, rest = text.partition(":")
    try:
        return f"{int(domain, 16):08X}:{rest.upper()}"
    except ValueError:
        return text.upper()


def _set_bits(mask: Any) -> list[int]:
    bits: list[int] = []
    for word_index, word in enumerate(mask):
        for bit in range(64):
            if int(word) >> bit & 1:
                bits.append(word_index * 64 + bit)
    return bits


def _cpu_list(cpus: list[int]) -> str | None:
    if not cpus:
        return None
    ranges: list[str] = []
    start = previous = cpus[0]
    for cpu in [*cpus[1:], None]:
        if cpu is not None and cpu == previous + 1:
            previous = cpu
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if cpu is not None:
            start = previous = cpu
    return ",".join(ranges)


def _cuda_version(value: int | None) -> str | None:
    # 12040 -> "12.4"
    return None if value is None else f"{int(value) // 1000}.{int(value) % 1000 // 10}"


def _mig(session: _Session, handle: Any, facts: dict[str, str]) -> MigInfo | None:
    nvml = session.nvml
    mode = session.ask(facts, "mig_mode", "nvmlDeviceGetMigMode", handle)
    if mode is None:
        return None
    enabled = bool(mode[0])
    devices: list[MigDevice] = []
    if enabled:
        count = session.ask(facts, "mig_count", "nvmlDeviceGetMaxMigDeviceCount", handle)
        for slot in range(count or 0):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError:
                continue  # NOT_FOUND: an empty slot
            memory = session.ask(facts, "mig_memory", "nvmlDeviceGetMemoryInfo", mig)
            devices.append(
                MigDevice(
                    uuid=_optional_text(session.ask(facts, "mig_uuid", "nvmlDeviceGetUUID", mig)),
                    memory_bytes=int(memory.total) if memory is not None else None,
                )
            )
    return MigInfo(enabled=enabled, pending=bool(mode[1]), devices=devices)


def _nvlinks(session: _Session, handle: Any, facts: dict[str, str]) -> list[NvLinkInfo]:
    nvml = session.nvml
    links: list[NvLinkInfo] = []
    for link in range(int(getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18))):
        try:
            state = nvml.nvmlDeviceGetNvLinkState(handle, link)
        except nvml.NVMLError as error:
            name = session.error_name(error)
            if link == 0:
                facts["nvlink"] = name
            # INVALID_ARGUMENT past the last link; NOT_SUPPORTED on GPUs without NVLink.
            break
        info: dict[str, Any] = {"link": link, "active": bool(state)}
        scratch: dict[str, str] = {}
        info["version"] = session.ask(scratch, "v", "nvmlDeviceGetNvLinkVersion", handle, link)
        if state:
            pci = session.ask(scratch, "pci", "nvmlDeviceGetNvLinkRemotePciInfo", handle, link)
            if pci is not None:
                info["remote_pci_bus_id"] = normalize_bus_id(pci.busId)
            kind = session.ask(scratch, "type", "nvmlDeviceGetNvLinkRemoteDeviceType", handle, link)
            if kind is not None:
                info["remote_kind"] = _REMOTE_KINDS.get(int(kind), "unknown")
            elif "type" in scratch:
                facts["nvlink_remote_type"] = scratch["type"]
        links.append(NvLinkInfo(**info))
    return links


def _fabric(session: _Session, handle: Any, facts: dict[str, str]) -> FabricInfo | None:
    """Fabric registration through the versioned call, else the legacy one (older drivers)."""
    nvml = session.nvml
    info: Any = None
    failure: str | None = None
    for struct, call in (
        ("c_nvmlGpuFabricInfoV_t", "nvmlDeviceGetGpuFabricInfoV"),
        ("c_nvmlGpuFabricInfo_t", "nvmlDeviceGetGpuFabricInfo"),
    ):
        try:
            info = getattr(nvml, struct)()
            getattr(nvml, call)(handle, ctypes.byref(info))
            failure = None
            break
        except AttributeError:
            info = None  # this pynvml predates the call
        except nvml.NVMLError as error:
            info = None
            name = session.error_name(error)
            # Keep the most telling reason: NOT_SUPPORTED beats FUNCTION_NOT_FOUND.
            if failure is None or failure in ("FUNCTION_NOT_FOUND", "ARGUMENT_VERSION_MISMATCH"):
                failure = name
    if info is None:
        facts["fabric"] = failure or "FUNCTION_NOT_FOUND"
        return None
    uuid = bytes(info.clusterUuid).hex()
    status = int(info.status)
    status_name = "SUCCESS" if status == 0 else session.error_name(nvml.NVMLError(status))
    return FabricInfo(
        state=_FABRIC_STATES.get(int(info.state), "not-supported"),  # type: ignore[arg-type]
        status=status_name,
        cluster_uuid=f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}",
        clique_id=int(info.cliqueId),
    )


def _gpu(session: _Session, index: int, handle: Any, paths: SystemPaths) -> GpuInfo:
    nvml = session.nvml
    facts: dict[str, str] = {}
    ask = session.ask
    name = _optional_text(ask(facts, "name", "nvmlDeviceGetName", handle)) or f"GPU {index}"
    memory = ask(facts, "memory", "nvmlDeviceGetMemoryInfo", handle)
    memory_bytes = int(memory.total) if memory is not None else 1
    capability = ask(facts, "compute_capability", "nvmlDeviceGetCudaComputeCapability", handle)
    pci = ask(facts, "pci", "nvmlDeviceGetPciInfo", handle)
    bus_id = normalize_bus_id(pci.busId) if pci is not None else None
    affinity = ask(facts, "cpu_affinity", "nvmlDeviceGetCpuAffinity", handle, _MASK_WORDS)
    # The CPU-side NUMA node is the GPU's memory affinity (what `nvidia-smi topo -m` shows);
    # nvmlDeviceGetNumaNodeId answers only where GPU memory is itself a NUMA node.
    nodes = ask(
        facts,
        "memory_affinity",
        "nvmlDeviceGetMemoryAffinity",
        handle,
        _MASK_WORDS,
        nvml.NVML_AFFINITY_SCOPE_NODE,
    )
    node_bits = _set_bits(nodes) if nodes is not None else []
    numa = node_bits[0] if len(node_bits) == 1 else None
    if numa is None and bus_id is not None:
        numa = pci_numa_node(paths, bus_id)
    memory_numa = ask(facts, "numa_node_id", "nvmlDeviceGetNumaNodeId", handle)
    return GpuInfo(
        index=index,
        name=name,
        uuid=_optional_text(ask(facts, "uuid", "nvmlDeviceGetUUID", handle)),
        memory_bytes=memory_bytes,
        memory_gib=round(memory_bytes / 2**30, 2),
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
        pci_bus_id=bus_id,
        pcie_generation=ask(facts, "pcie_generation", "nvmlDeviceGetMaxPcieLinkGeneration", handle),
        pcie_width=ask(facts, "pcie_width", "nvmlDeviceGetMaxPcieLinkWidth", handle),
        numa_node=numa,
        memory_numa_node=int(memory_numa) if memory_numa is not None and memory_numa >= 0 else None,
        cpu_affinity=_cpu_list(_set_bits(affinity)) if affinity is not None else None,
        mig=_mig(session, handle, facts),
        nvlinks=_nvlinks(session, handle, facts),
        fabric=_fabric(session, handle, facts),
        unsupported=facts,
    )


def _resolve_peers(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """Map each link's remote PCI bus id to a GPU of this node; the rest are switches."""
    by_bus = {gpu.pci_bus_id: gpu.index for gpu in gpus if gpu.pci_bus_id}
    resolved: list[GpuInfo] = []
    for gpu in gpus:
        links: list[NvLinkInfo] = []
        for link in gpu.nvlinks:
            peer = by_bus.get(link.remote_pci_bus_id) if link.remote_pci_bus_id else None
            kind = link.remote_kind
            if kind is None and link.active:
                # Old drivers lack nvmlDeviceGetNvLinkRemoteDeviceType: a bus id that is not
                # one of our GPUs is an NVSwitch.
                kind = "gpu" if peer is not None else "switch"
            links.append(link.model_copy(update={"peer": peer, "remote_kind": kind}))
        resolved.append(gpu.model_copy(update={"nvlinks": links}))
    return resolved


def _with_catalog_names(gpus: list[GpuInfo]) -> list[GpuInfo]:
    """Name each GPU's catalog entry; an unknown GPU keeps None (detection still works)."""
    from orchestrator.errors import DeployError
    from orchestrator.hardware.gpus import gpu_from_nvml_name

    named: list[GpuInfo] = []
    for gpu in gpus:
        try:
            spec = gpu_from_nvml_name(gpu.name, gpu.memory_bytes)
        except DeployError:
            spec = None
        named.append(gpu.model_copy(update={"catalog_name": spec.name if spec else None}))
    return named


def _pairs(session: _Session, handles: list[Any], gpus: list[GpuInfo]) -> list[PairLink]:
    pairs: list[PairLink] = []
    for i, gpu_a in enumerate(gpus):
        for j in range(i + 1, len(gpus)):
            facts: dict[str, str] = {}
            pair = (handles[i], handles[j])
            level = session.ask(facts, "topology", "nvmlDeviceGetTopologyCommonAncestor", *pair)
            p2p: dict[str, str] = {}
            for cap, cap_index in _P2P_CAPS.items():
                status = session.ask(
                    facts, f"p2p_{cap}", "nvmlDeviceGetP2PStatus", *pair, cap_index
                )
                p2p[cap] = _P2P_CODES.get(int(status), "U") if status is not None else "U"
            pcie = topology.PCIE_LEVEL_NAMES.get(int(level)) if level is not None else None
            link = topology.pair_link(gpu_a, gpus[j], pcie, p2p)
            pairs.append(link.model_copy(update={"unsupported": facts}) if facts else link)
    return pairs


def start_nvml(nvml: Any) -> None:
    """`nvmlInit`, or a one-line `NvmlUnavailable` naming why (no library, no driver...)."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as error:
        reason = _error_name(error).lower().replace("_", " ")
        raise NvmlUnavailable(
            f"cannot detect GPUs: NVML is unavailable ({reason})", NO_NVML_HINT
        ) from error


def detect_node(nvml: Any = None, paths: SystemPaths | None = None) -> NodeInventory:
    """Query NVML (the real `pynvml` unless a provider is given) and sysfs; never raises
    for a query a GPU does not support. Raises `NvmlUnavailable` when NVML cannot start."""
    nvml = nvml if nvml is not None else load_pynvml()
    paths = paths or SystemPaths()
    session = _Session(nvml)
    start_nvml(nvml)
    try:
        count = int(nvml.nvmlDeviceGetCount())
        if count == 0:
            raise NvmlUnavailable(
                "cannot detect GPUs: NVML sees no GPU on this machine", NO_NVML_HINT
            )
        handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        gpus = _resolve_peers(
            [_gpu(session, index, handle, paths) for index, handle in enumerate(handles)]
        )
        pairs = _pairs(session, handles, gpus)
        system: dict[str, str] = {}
        driver = _optional_text(session.ask(system, "driver", "nvmlSystemGetDriverVersion"))
        cuda = session.ask(system, "cuda", "nvmlSystemGetCudaDriverVersion")
        nvml_version = _optional_text(session.ask(system, "nvml", "nvmlSystemGetNVMLVersion"))
    except nvml.NVMLError as error:
        raise NvmlUnavailable(
            f"cannot detect GPUs: NVML failed ({session.error_name(error).lower()})", NO_NVML_HINT
        ) from error
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
    gpus = _with_catalog_names(gpus)
    domains = topology.nvlink_domains(gpus)
    rdma = rdma_devices(paths)
    interfaces = network_interfaces(paths)
    gpu_rdma: dict[int, str] = {}
    for gpu in gpus:
        nearest = (
            nearest_rdma(paths, gpu.pci_bus_id, gpu.numa_node, rdma) if gpu.pci_bus_id else None
        )
        if nearest:
            gpu_rdma[gpu.index] = nearest
    return NodeInventory(
        schema_version=SCHEMA_VERSION,
        hostname=getattr(nvml, "hostname", None) or socket.gethostname(),
        driver_version=driver,
        cuda_driver_version=_cuda_version(cuda),
        nvml_version=nvml_version,
        gpus=gpus,
        pairs=pairs,
        nvlink_domains=domains,
        interconnect=topology.interconnect_of(gpus, domains),  # type: ignore[arg-type]
        numa_nodes=topology.numa_node_count(gpus),
        rdma_devices=rdma,
        network_interfaces=interfaces,
        network_interface=choose_interface(interfaces),
        gpu_rdma=gpu_rdma,
        fabric=fabric_of(rdma),  # type: ignore[arg-type]
        warnings=topology.warnings_for(gpus, pairs),
    )
