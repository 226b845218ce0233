"""CPU nodes: servers that serve on their cores with vLLM's CPU build.

A CPU node is described by a `CpuSpec` (cores, NUMA nodes with their core lists, host memory,
memory bandwidth and peak BF16 FLOPs), from three sources:
- `--cpus SPEC`: `all` (this machine, detected), `16` (16 cores, this machine's memory) or
  `16:64g` (16 cores, 64 GiB);
- a cluster file's `cpus:` (a mapping of the fields below, or the same shorthand string);
- `detect_cpu(paths)`: /proc and /sys of this machine (or a recorded tree under a root).

Detection reads only files, through the same `SystemPaths` seam as the NIC and RDMA code, so
tests replay recorded machines. A missing file is a missing fact, never an error.
"""

# No `from __future__ import annotations` in this module: pydantic would then evaluate each
# field's annotation string when the class is created.

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.errors import HardwareError
from orchestrator.schema import GpuSpec

if TYPE_CHECKING:  # the sysfs module loads the inventory models; plans from files never need it
    from orchestrator.hardware.sysfs import SystemPaths

GIB = 2**30
# Defaults when a node does not state its bandwidth or FLOPs. Bandwidth: a DDR5 server socket
# streams 250-300 GB/s over 32-64 cores (STREAM triad); per core, ~6 GB/s is what a core's
# share of the channels delivers. Clock: a server core's all-core turbo is ~2.5 GHz.
DEFAULT_GBS_PER_CORE = 6.0
MIN_BANDWIDTH_GBS = 10.0
DEFAULT_CLOCK_GHZ = 2.5
# Peak BF16 FLOP per cycle per core by instruction set: AMX tiles (Sapphire Rapids: 1024),
# AVX-512 BF16 (two FMA ports x 32 BF16 lanes x 2), AVX-512 F32 and AVX2 FMA.
FLOP_PER_CYCLE = (("amx_bf16", 1024), ("avx512_bf16", 128), ("avx512f", 64), ("avx2", 32))
BASELINE_FLOP_PER_CYCLE = 16
CPU_GPU_NAME = "CPU"
SHORTHAND_HINT = "use --cpus all, --cpus CORES (e.g. 16) or --cpus CORES:MEMORY (e.g. 16:64g)"


class CpuSpec(BaseModel):
    """The cores, memory and speed a CPU node serves with."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    cores: int = Field(ge=1, le=4096, description="cores (one logical CPU each) to serve on")
    numa_nodes: int = Field(default=1, ge=1, le=64)
    memory_gib: float = Field(gt=0, le=65536, description="host memory")
    memory_bandwidth_gbs: float | None = Field(default=None, gt=0, le=100000)
    bf16_tflops: float | None = Field(default=None, gt=0, le=10000)
    # One list per NUMA node, in the kernel's cpulist form ("0-15,32-47"); default: the cores
    # split evenly in order.
    cpu_lists: list[str] | None = None
    model_name: str | None = None
    isa: list[str] = Field(default=[], description="BF16-relevant instruction sets found")

    @model_validator(mode="after")
    def _lists(self) -> "CpuSpec":
        if self.cpu_lists is None:
            return self
        if len(self.cpu_lists) != self.numa_nodes:
            raise ValueError(
                f"cpu_lists has {len(self.cpu_lists)} entries for {self.numa_nodes} NUMA node(s)"
            )
        total = 0
        for text in self.cpu_lists:
            ids = parse_cpu_list(text)
            if not ids:
                raise ValueError(f"cpu_lists entry {text!r} is not a CPU list such as 0-15")
            total += len(ids)
        if total != self.cores:
            raise ValueError(f"cpu_lists name {total} CPUs but cores is {self.cores}")
        return self

    @property
    def bandwidth_gbs(self) -> float:
        if self.memory_bandwidth_gbs is not None:
            return self.memory_bandwidth_gbs
        return max(MIN_BANDWIDTH_GBS, DEFAULT_GBS_PER_CORE * self.cores)

    @property
    def tflops(self) -> float:
        if self.bf16_tflops is not None:
            return self.bf16_tflops
        per_cycle = next(
            (flops for name, flops in FLOP_PER_CYCLE if name in self.isa),
            BASELINE_FLOP_PER_CYCLE if self.isa else FLOP_PER_CYCLE[2][1],
        )
        return self.cores * DEFAULT_CLOCK_GHZ * per_cycle / 1000.0

    def numa_cpus(self) -> list[list[int]]:
        """CPU ids of each NUMA node."""
        if self.cpu_lists is not None:
            return [parse_cpu_list(text) for text in self.cpu_lists]
        base, extra = divmod(self.cores, self.numa_nodes)
        groups: list[list[int]] = []
        start = 0
        for node in range(self.numa_nodes):
            size = base + (1 if node < extra else 0)
            groups.append(list(range(start, start + size)))
            start += size
        return groups


def parse_cpu_list(text: str) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]; [] for anything else. Bounded: 4096 ids."""
    ids: list[int] = []
    for part in text.strip().split(","):
        match = re.fullmatch(r"\s*(\d{1,5})(?:-(\d{1,5}))?\s*", part)
        if match is None:
            return []
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first or len(ids) + last - first + 1 > 4096:
            return []
        ids.extend(range(first, last + 1))
    return sorted(set(ids))


def format_cpu_list(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the form VLLM_CPU_OMP_THREADS_BIND and the kernel use)."""
    parts: list[str] = []
    ordered = sorted(set(ids))
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1] == ordered[end] + 1:
            end += 1
        first, last = ordered[index], ordered[end]
        parts.append(str(first) if first == last else f"{first}-{last}")
        index = end + 1
    return ",".join(parts)


def pseudo_gpu(spec: CpuSpec) -> GpuSpec:
    """The catalog-shaped entry a CPU node carries where GPU nodes carry their GPU's: the whole
    host's memory, bandwidth and FLOPs, so summaries and shared code read one shape."""
    return GpuSpec(
        name=CPU_GPU_NAME,
        vendor="cpu",
        form_factor="pcie",
        memory_gib=spec.memory_gib,
        memory_bandwidth_gbs=spec.bandwidth_gbs,
        bf16_tflops=spec.tflops,
        pcie_generation=3,
        notes=("a CPU node: vLLM's CPU build serves on its cores",),
    )


# --------------------------------------------------------------------------------------------
# Detection from /proc and /sys


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _meminfo_kib(text: str | None, key: str) -> int | None:
    match = re.search(rf"{key}:\s+(\d+)\s*kB", text or "")
    return int(match.group(1)) if match else None


def _allowed_cpus(paths: "SystemPaths") -> list[int]:
    status = _read(paths.proc / "self" / "status") or ""
    match = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.MULTILINE)
    if match:
        found = parse_cpu_list(match.group(1))
        if found:
            return found
    online = _read(paths.sys / "devices" / "system" / "cpu" / "online")
    found = parse_cpu_list(online or "")
    return found or list(range(os.cpu_count() or 1))


def _one_per_core(paths: "SystemPaths", cpus: list[int]) -> list[int]:
    """The first logical CPU of each physical core (SMT siblings share a core's FMA units;
    vLLM's own auto-binding uses one logical CPU per core on x86)."""
    chosen: list[int] = []
    seen: set[tuple[int, ...]] = set()
    allowed = set(cpus)
    for cpu in cpus:
        topology = paths.sys / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology"
        siblings = parse_cpu_list(_read(topology / "thread_siblings_list") or "")
        key = tuple(sibling for sibling in siblings if sibling in allowed) or (cpu,)
        if key in seen:
            continue
        seen.add(key)
        chosen.append(cpu)
    return chosen


def _numa_groups(paths: "SystemPaths", cpus: list[int]) -> tuple[list[list[int]], float | None]:
    """Allowed CPUs per NUMA node that has any, and those nodes' memory in GiB."""
    root = paths.sys / "devices" / "system" / "node"
    try:
        names = sorted(
            (name for name in os.listdir(root) if re.fullmatch(r"node\d+", name)),
            key=lambda name: int(name[4:]),
        )
    except OSError:
        names = []
    allowed = set(cpus)
    groups: list[list[int]] = []
    memory_kib = 0
    for name in names:
        ids = [
            cpu for cpu in parse_cpu_list(_read(root / name / "cpulist") or "") if cpu in allowed
        ]
        if not ids:
            continue
        groups.append(ids)
        memory_kib += _meminfo_kib(_read(root / name / "meminfo"), r"Node \d+ MemTotal") or 0
    if not groups:
        return [cpus], None
    return groups, (memory_kib / 2**20 if memory_kib else None)


def _cgroup_limit_gib(paths: "SystemPaths") -> float | None:
    text = (_read(paths.sys / "fs" / "cgroup" / "memory.max") or "").strip()
    return int(text) / GIB if text.isdigit() else None


def _cpuinfo(paths: "SystemPaths") -> tuple[str | None, list[str]]:
    text = _read(paths.proc / "cpuinfo") or ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags_line = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.MULTILINE)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    isa = [name for name, _ in FLOP_PER_CYCLE if name in flags]
    return (model.group(1).strip() if model else None), isa


def detect_cpu(paths: "SystemPaths | None" = None) -> CpuSpec:
    """This machine's CPU side: the cores this process may run on (one logical CPU per
    physical core), NUMA nodes with their cores, host memory (capped by a cgroup limit)."""
    if paths is None:
        from orchestrator.hardware.sysfs import SystemPaths

        paths = SystemPaths()
    cores = _one_per_core(paths, _allowed_cpus(paths))
    groups, numa_gib = _numa_groups(paths, cores)
    total_kib = _meminfo_kib(_read(paths.proc / "meminfo"), "MemTotal")
    memory = numa_gib or (total_kib / 2**20 if total_kib else None)
    if memory is None:
        raise HardwareError(
            "cannot read this machine's memory (/proc/meminfo)",
            "describe the node with --cpus CORES:MEMORY or a cluster file",
        )
    limit = _cgroup_limit_gib(paths)
    if limit is not None:
        memory = min(memory, limit)
    model, isa = _cpuinfo(paths)
    return CpuSpec(
        cores=len(cores),
        numa_nodes=len(groups),
        memory_gib=round(memory, 2),
        cpu_lists=[format_cpu_list(group) for group in groups],
        model_name=model,
        isa=isa,
    )


def describe_cpu(spec: CpuSpec) -> str:
    """`deploy detect --cpus`: the facts a plan on this machine's CPUs uses."""
    lines = [
        f"cpu       {spec.model_name or 'unknown model'}",
        f"cores     {spec.cores} (one logical CPU per physical core)",
        f"numa      {spec.numa_nodes} node(s): "
        + ", ".join(
            f"node{index} {format_cpu_list(cpus)}" for index, cpus in enumerate(spec.numa_cpus())
        ),
        f"memory    {spec.memory_gib:g} GiB",
        f"isa       {', '.join(spec.isa) or 'none of ' + ', '.join(n for n, _ in FLOP_PER_CYCLE)}",
        f"estimated {spec.bandwidth_gbs:g} GB/s memory bandwidth, {spec.tflops:.2f} BF16 TFLOPS "
        "(state measured values in a cluster file: memory_bandwidth_gbs, bf16_tflops)",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The shorthand


def parse_cpus(text: str, paths: "SystemPaths | None" = None) -> CpuSpec:
    """`all`, `CORES` or `CORES:MEMORY` (GiB, an optional g/G/GiB suffix) as a `CpuSpec`.

    Facts the shorthand leaves out (memory, NUMA layout, instruction sets) come from this
    machine: the shorthand describes this machine or ones like it."""
    value = text.strip().lower()
    if value in ("all", "detect"):
        return detect_cpu(paths)
    match = re.fullmatch(r"(\d{1,4})(?::(\d{1,6}(?:\.\d{1,3})?)\s*(?:g|gb|gib)?)?", value)
    if match is None:
        raise HardwareError(f"--cpus {text!r} is not a CPU description", SHORTHAND_HINT)
    cores = int(match.group(1))
    if not 1 <= cores <= 4096:
        raise HardwareError(f"--cpus {text!r}: {cores} cores is out of range", SHORTHAND_HINT)
    here = detect_cpu(paths)
    memory = float(match.group(2)) if match.group(2) else here.memory_gib
    if memory <= 0:
        raise HardwareError(f"--cpus {text!r}: memory must be positive", SHORTHAND_HINT)
    if cores <= here.cores:
        # This machine's cores, NUMA node by NUMA node, the first `cores` of them.
        lists: list[list[int]] = []
        left = cores
        for group in here.numa_cpus():
            if left <= 0:
                break
            lists.append(group[:left])
            left -= len(lists[-1])
        return CpuSpec(
            cores=cores,
            numa_nodes=len(lists),
            memory_gib=memory,
            cpu_lists=[format_cpu_list(group) for group in lists],
            model_name=here.model_name,
            isa=list(here.isa),
        )
    return CpuSpec(cores=cores, numa_nodes=1, memory_gib=memory, isa=list(here.isa))


def cores_per_rank(spec: CpuSpec, ranks: int) -> int:
    """Cores each of `ranks` ranks on a node gets (whole cores, at least one)."""
    return max(1, math.floor(spec.cores / max(1, ranks)))
