"""The per-node probe: what the engine's container sees, as one JSON document.

This module runs inside the container `deploy doctor` starts with the engine's image, devices,
network mode, IPC, ulimits, shm and environment. It imports only the standard library (and
`pynvml` when the image has it, as vLLM and SGLang images do), because engine images do not
carry `deploy`: the doctor sends this file's source as `python3 -c SOURCE MODE CONFIG`.

Modes:
  facts CONFIG          print the facts document and exit
  serve CONFIG          print the facts document, then hold listeners on the free ports of
                        `listen` until `serve_seconds` pass (peers connect to them)
  connect TARGETS       try a TCP connection to each `host:port`, print the results

Everything reads under roots (`/sys`, `/proc`, `/dev`) so tests replay recorded machines
through the same code. A missing file is a missing fact (None), never an error.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

# Environment variables the checks read (never secrets).
ENV_KEYS = (
    "CUDA_VERSION",
    "NVIDIA_REQUIRE_CUDA",
    "NVIDIA_VISIBLE_DEVICES",
    "CUDA_VISIBLE_DEVICES",
    "NCCL_SOCKET_IFNAME",
    "GLOO_SOCKET_IFNAME",
    "NCCL_IB_HCA",
    "NCCL_IB_GID_INDEX",
    "NCCL_IB_DISABLE",
    "NCCL_P2P_DISABLE",
    "VLLM_ENABLE_CUDA_COMPATIBILITY",
)
# nvmlDeviceGetP2PStatus capability indices (NVML_P2P_CAPS_INDEX_READ, ..._NVLINK).
_P2P_READ, _P2P_NVLINK = 0, 2
_P2P_CODES = {0: "OK", 1: "CNS", 2: "GNS", 3: "TNS", 4: "DR", 5: "NS", 6: "U"}
_ROCE_V2 = "RoCE v2"


class Roots:
    """Where /sys, /proc and /dev are (the real ones, or a recorded tree)."""

    def __init__(self, sys_root: str = "/sys", proc: str = "/proc", dev: str = "/dev") -> None:
        self.sys = sys_root
        self.proc = proc
        self.dev = dev


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


# -- container limits -------------------------------------------------------------------------


def _size_option(options: str) -> int | None:
    """`size=65536k` of a tmpfs mount's options, in bytes."""
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    for option in options.split(","):
        if option.startswith("size="):
            value = option[5:]
            if value and value[-1].lower() in units:
                return int(float(value[:-1]) * units[value[-1].lower()])
            if value.isdigit():
                return int(value)
    return None


def shm_bytes(roots: Roots) -> int | None:
    """The size of /dev/shm as the container mounts it (its tmpfs `size=`), else statvfs."""
    mounts = _read(os.path.join(roots.proc, "self", "mounts")) or ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "/dev/shm":
            size = _size_option(fields[3])
            if size is not None:
                return size
    if roots.proc != "/proc":
        return None
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return stat.f_blocks * stat.f_frsize


def memlock_bytes(roots: Roots) -> int | None:
    """The soft `Max locked memory` limit in bytes; -1 means unlimited."""
    limits = _read(os.path.join(roots.proc, "self", "limits")) or ""
    for line in limits.splitlines():
        if line.startswith("Max locked memory"):
            soft = line[len("Max locked memory") :].split()[0]
            return -1 if soft == "unlimited" else int(soft)
    return None


# -- network ------------------------------------------------------------------------------------


def _route_ipv4(text: str) -> int:
    """/proc/net/route writes an address as the hex of its 32-bit value in host (little-endian)
    byte order: `006433C6` is 198.51.100.0. Returns the address as a network-order integer."""
    return int.from_bytes(bytes.fromhex(text)[::-1], "big")


def _ipv4_int(address: str) -> int:
    return int.from_bytes(socket.inet_aton(address), "big")


def _local_addresses(roots: Roots) -> list[str]:
    """Addresses this network namespace owns: the `/32 host LOCAL` leaves of fib_trie."""
    text = _read(os.path.join(roots.proc, "net", "fib_trie")) or ""
    found: list[str] = []
    last: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("|--", "+--")):
            last = stripped[3:].split()[0].split("/")[0]
        elif "/32 host LOCAL" in stripped and last is not None and last not in found:
            found.append(last)
    return found


def interface_addresses(roots: Roots) -> dict[str, list[str]]:
    """IPv4 addresses per interface: each local address goes to the interface whose connected
    route (/proc/net/route, no gateway) holds it, the longest prefix winning."""
    routes: list[tuple[int, int, str]] = []
    text = _read(os.path.join(roots.proc, "net", "route")) or ""
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8 or fields[2] != "00000000":
            continue
        routes.append((_route_ipv4(fields[1]), _route_ipv4(fields[7]), fields[0]))
    by_interface: dict[str, list[str]] = {}
    for address in _local_addresses(roots):
        if address.startswith("127."):
            by_interface.setdefault("lo", []).append(address)
            continue
        value = _ipv4_int(address)
        best: tuple[int, str] | None = None
        for destination, mask, name in routes:
            if mask and value & mask == destination:
                prefix = bin(mask).count("1")
                if best is None or prefix > best[0]:
                    best = (prefix, name)
        if best is not None:
            by_interface.setdefault(best[1], []).append(address)
    return by_interface


def interfaces(roots: Roots) -> dict[str, dict[str, Any]]:
    addresses = interface_addresses(roots)
    found: dict[str, dict[str, Any]] = {}
    base = os.path.join(roots.sys, "class", "net")
    for name in _listdir(base):
        kind = _read(os.path.join(base, name, "type"))
        found[name] = {
            "operstate": _read(os.path.join(base, name, "operstate")) or "unknown",
            "kind": {"1": "ethernet", "32": "infiniband", "772": "loopback"}.get(
                kind or "", "other"
            ),
            "ipv4": addresses.get(name, []),
        }
    return found


def _roce_v2_ipv4_gid(port_dir: str) -> int | None:
    """The index of the first RoCE v2 GID holding an IPv4-mapped address (what NCCL needs)."""
    gids = os.path.join(port_dir, "gids")
    for entry in sorted(_listdir(gids), key=lambda text: int(text) if text.isdigit() else 1 << 30):
        value = (_read(os.path.join(gids, entry)) or "").lower()
        kind = _read(os.path.join(port_dir, "gid_attrs", "types", entry)) or ""
        if kind == _ROCE_V2 and value.startswith("0000:0000:0000:0000:0000:ffff:"):
            return int(entry)
    return None


def rdma_devices(roots: Roots) -> dict[str, dict[str, Any]]:
    base = os.path.join(roots.sys, "class", "infiniband")
    found: dict[str, dict[str, Any]] = {}
    for name in _listdir(base):
        ports: dict[str, dict[str, Any]] = {}
        for port in _listdir(os.path.join(base, name, "ports")):
            port_dir = os.path.join(base, name, "ports", port)
            state = _read(os.path.join(port_dir, "state")) or "UNKNOWN"
            layer = _read(os.path.join(port_dir, "link_layer")) or "unknown"
            ports[port] = {
                "state": state.split(":", 1)[-1].strip(),
                "link_layer": layer,
                "roce_v2_ipv4_gid": _roce_v2_ipv4_gid(port_dir) if layer == "Ethernet" else None,
            }
        found[name] = {
            "netdevs": _listdir(os.path.join(base, name, "device", "net")),
            "ports": ports,
        }
    return found


def ports_free(ports: list[int]) -> dict[str, bool]:
    """Whether each TCP port can be bound on all addresses of this network namespace."""
    free: dict[str, bool] = {}
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
                free[str(port)] = True
            except OSError:
                free[str(port)] = False
    return free


# -- GPUs -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ask(function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except Exception:  # NVMLError, or a function this driver lacks
        return None


def pci_numa_node(roots: Roots, bus_id: str | None) -> int | None:
    """The CPU NUMA node of a PCI device (NVML's `00000000:18:00.0` is sysfs's `0000:18:00.0`)."""
    if not bus_id:
        return None
    domain, _, rest = bus_id.partition(":")
    try:
        name = f"{int(domain, 16):04x}:{rest.lower()}"
    except ValueError:
        return None
    text = _read(os.path.join(roots.sys, "bus", "pci", "devices", name, "numa_node"))
    return int(text) if text is not None and text.lstrip("-").isdigit() and int(text) >= 0 else None


def nvml_facts(nvml: Any, roots: Roots | None = None) -> dict[str, Any]:
    """Driver, CUDA driver version, and per GPU: memory held, processes, MIG, NUMA node, P2P."""
    roots = roots or Roots()
    if nvml is None:
        try:
            import pynvml

            nvml = pynvml
        except ImportError:
            return {"error": "the image has no pynvml (nvidia-ml-py)"}
    try:
        nvml.nvmlInit()
    except Exception as error:
        return {"error": f"NVML: {error}"}
    try:
        cuda = _ask(nvml.nvmlSystemGetCudaDriverVersion)
        facts: dict[str, Any] = {
            "driver_version": _text(_ask(nvml.nvmlSystemGetDriverVersion) or ""),
            "cuda_driver_version": int(cuda) if cuda is not None else None,
        }
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        gpus = []
        for index, handle in enumerate(handles):
            memory = _ask(nvml.nvmlDeviceGetMemoryInfo, handle)
            processes = _ask(nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
            mig = _ask(nvml.nvmlDeviceGetMigMode, handle)
            pci = _ask(nvml.nvmlDeviceGetPciInfo, handle)
            gpus.append(
                {
                    "index": index,
                    "name": _text(_ask(nvml.nvmlDeviceGetName, handle) or ""),
                    "uuid": _text(_ask(nvml.nvmlDeviceGetUUID, handle) or ""),
                    "pci_bus_id": _text(pci.busId) if pci is not None else None,
                    "memory_total": int(memory.total) if memory is not None else None,
                    "memory_used": int(memory.used) if memory is not None else None,
                    "processes": [
                        {"pid": int(p.pid), "used_memory": int(p.usedGpuMemory or 0)}
                        for p in processes
                    ],
                    "mig_enabled": bool(mig[0]) if mig is not None else None,
                    "numa_node": pci_numa_node(roots, _text(pci.busId) if pci else None),
                }
            )
        p2p: dict[str, dict[str, str]] = {}
        for a, first in enumerate(handles):
            for b in range(a + 1, len(handles)):
                read = _ask(nvml.nvmlDeviceGetP2PStatus, first, handles[b], _P2P_READ)
                nvlink = _ask(nvml.nvmlDeviceGetP2PStatus, first, handles[b], _P2P_NVLINK)
                p2p[f"{a}-{b}"] = {
                    "read": _P2P_CODES.get(read, "U") if read is not None else "U",
                    "nvlink": _P2P_CODES.get(nvlink, "U") if nvlink is not None else "U",
                }
        facts["gpus"] = gpus
        facts["p2p"] = p2p
        return facts
    finally:
        _ask(nvml.nvmlShutdown)


# -- storage --------------------------------------------------------------------------------


def storage_facts(config: dict[str, Any]) -> dict[str, Any]:
    cache = str(config.get("hf_cache") or "")
    facts: dict[str, Any] = {"hf_cache": cache, "free_bytes": None, "checkpoint_present": None}
    if not cache:
        return facts
    try:
        stat = os.statvfs(cache)
        facts["free_bytes"] = stat.f_bavail * stat.f_frsize
    except OSError:
        return facts
    repo = config.get("repo")
    if repo:
        folder = "models--" + str(repo).replace("/", "--")
        snapshots = os.path.join(cache, "hub", folder, "snapshots")
        facts["checkpoint_present"] = any(
            any(name.endswith(".safetensors") for name in _listdir(os.path.join(snapshots, s)))
            for s in _listdir(snapshots)
        )
    return facts


# -- the document ---------------------------------------------------------------------------


def collect(
    config: dict[str, Any],
    roots: Roots | None = None,
    nvml: Any = None,
    environ: dict[str, str] | None = None,
) -> dict[str, Any]:
    roots = roots or Roots()
    env = os.environ if environ is None else environ
    infiniband = os.path.join(roots.dev, "infiniband")
    facts: dict[str, Any] = {
        "probe_version": 1,
        "hostname": socket.gethostname(),
        "time": time.time(),
        "env": {key: env[key] for key in ENV_KEYS if key in env},
        "shm_bytes": shm_bytes(roots),
        "memlock_bytes": memlock_bytes(roots),
        "dev_infiniband": _listdir(infiniband) if os.path.isdir(infiniband) else None,
        "interfaces": interfaces(roots),
        "rdma": rdma_devices(roots),
        "ports_free": ports_free([int(port) for port in config.get("listen", [])]),
        "storage": storage_facts(config),
    }
    facts["nvml"] = nvml_facts(nvml, roots) if config.get("gpus", True) else {"skipped": True}
    return facts


def serve(config: dict[str, Any], out: Any) -> None:
    """Print the facts, then hold a listener on every free `listen` port so peers can test
    that they reach this node; accept and close connections until `serve_seconds` pass."""
    facts = collect(config)
    listeners = []
    for port, free in facts["ports_free"].items():
        if not free:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", int(port)))
            sock.listen(16)
            sock.setblocking(False)
            listeners.append(sock)
        except OSError:
            sock.close()
    facts["listening"] = [sock.getsockname()[1] for sock in listeners]
    out.write(json.dumps(facts) + "\n")
    out.flush()
    deadline = time.monotonic() + float(config.get("serve_seconds", 30))
    import select

    while listeners and time.monotonic() < deadline:
        ready, _, _ = select.select(listeners, [], [], 0.2)
        for sock in ready:
            try:
                connection, _ = sock.accept()
                connection.close()
            except OSError:
                pass
    for sock in listeners:
        sock.close()


def connect(targets: list[str], timeout_s: float = 3.0) -> dict[str, str]:
    """`host:port` -> "ok" or the error, one TCP connection each."""
    results: dict[str, str] = {}
    for target in targets:
        host, _, port = target.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                results[target] = "ok"
        except OSError as error:
            results[target] = error.strerror or type(error).__name__
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("facts", "serve", "connect"):
        sys.stderr.write("usage: probe facts|serve CONFIG_JSON | connect HOST:PORT,...\n")
        return 2
    mode, argument = argv
    if mode == "connect":
        targets = [target for target in argument.split(",") if target]
        sys.stdout.write(json.dumps(connect(targets)) + "\n")
        return 0
    config = json.loads(argument)
    if mode == "serve":
        serve(config, sys.stdout)
    else:
        sys.stdout.write(json.dumps(collect(config)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
