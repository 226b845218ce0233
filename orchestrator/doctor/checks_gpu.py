"""GPU checks inside the engine's container: visible ids, MIG, memory held by others, the
driver against the image's CUDA, and peer-to-peer/NVLink inside each tensor-parallel group."""

from __future__ import annotations

from typing import Any

from orchestrator.doctor import cuda
from orchestrator.doctor.context import NodeContext
from orchestrator.doctor.report import Check, failed, passed, skipped, warned

GPU_CHECKS = ("gpus", "inventory", "mig", "gpu-memory", "driver-cuda", "p2p")
# Memory in use with no process visible: the driver's own reservation stays below this.
_UNEXPLAINED_USED_BYTES = 2 * 1024**3
_P2P_MEANING = {
    "CNS": "the chipset does not support it",
    "GNS": "the GPU does not support it",
    "TNS": "the PCIe topology does not support it",
    "DR": "disabled by a driver registry key",
    "NS": "not supported",
    "U": "unknown",
}


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f} GiB"


def gpu_checks(context: NodeContext) -> list[Check]:
    node = context.node
    if context.simulate:
        return [
            skipped(node, name, "not checked in a rehearsal (--simulate)") for name in GPU_CHECKS
        ]
    if not context.target.gpus:
        return [skipped(node, name, "no GPU service on this node") for name in GPU_CHECKS]
    if context.probe is None:
        return [skipped(node, name, "the probe did not run") for name in GPU_CHECKS]
    if context.gpu_probe_error is not None:
        return [
            failed(
                node,
                "gpus",
                f"Docker gave the container no GPUs: {context.gpu_probe_error}",
                "install the NVIDIA container toolkit (or generate CDI specs) on node "
                f"{node}, check nvidia-smi there, then run `deploy doctor` again",
            ),
            *(skipped(node, name, "the container got no GPUs") for name in GPU_CHECKS[1:]),
        ]
    nvml: dict[str, Any] = context.probe.get("nvml", {})
    if "error" in nvml:
        fix = (
            "check that the NVIDIA driver is loaded on the node (nvidia-smi) and that the"
            " container gets the GPUs (NVIDIA container toolkit)"
        )
        return [failed(node, "gpus", f"NVML in the container: {nvml['error']}", fix)]
    gpus: list[dict[str, Any]] = nvml.get("gpus", [])
    return [
        _visible(context, gpus),
        _inventory(context, gpus),
        _mig(node, gpus),
        skipped(node, "gpu-memory", "the deployment itself holds its GPUs")
        if context.running
        else _memory(node, gpus),
        _driver(context, nvml),
        _p2p(context, nvml),
    ]


def _visible(context: NodeContext, gpus: list[dict[str, Any]]) -> Check:
    wanted = context.target.gpus
    ids = ",".join(str(index) for index in wanted)
    names = sorted({str(gpu.get("name")) for gpu in gpus})
    if len(gpus) != len(wanted):
        return failed(
            context.node,
            "gpus",
            f"the container sees {len(gpus)} GPU(s), the plan gives it {len(wanted)} (ids {ids})",
            f"check that GPUs {ids} exist on node {context.node} (nvidia-smi -L) and that no"
            " NVIDIA_VISIBLE_DEVICES/CUDA_VISIBLE_DEVICES setting hides them",
        )
    return passed(context.node, "gpus", f"GPUs {ids} visible: {', '.join(names)}")


def _inventory(context: NodeContext, gpus: list[dict[str, Any]]) -> Check:
    """The GPUs found are the model the plan was made for (the cluster file's declaration)."""
    from orchestrator.errors import DeployError
    from orchestrator.hardware.gpus import gpu_from_nvml_name

    node, wanted = context.node, context.gpu_name
    found = set()
    for gpu in gpus:
        try:
            spec = gpu_from_nvml_name(str(gpu["name"]), int(gpu["memory_total"] or 0))
        except DeployError:
            spec = None
        found.add(spec.name if spec is not None else str(gpu["name"]))
    if wanted is None or found <= {wanted}:
        return passed(node, "inventory", f"GPUs are {wanted or ', '.join(sorted(found))}")
    return failed(
        node,
        "inventory",
        f"node {node} has {', '.join(sorted(found))}, the plan was made for {wanted}",
        f"correct `gpus:` for node {node} in the cluster file (`deploy detect --cluster FILE`"
        " shows what each node has) and plan again",
    )


def _mig(node: str, gpus: list[dict[str, Any]]) -> Check:
    enabled = [str(gpu["index"]) for gpu in gpus if gpu.get("mig_enabled")]
    if enabled:
        return failed(
            node,
            "mig",
            f"MIG is on for GPU(s) {','.join(enabled)} in the container",
            "turn MIG off (nvidia-smi -i ID -mig 0, then reset the GPU) or plan on the MIG slices",
        )
    return passed(node, "mig", "MIG off")


def _memory(node: str, gpus: list[dict[str, Any]]) -> Check:
    for gpu in gpus:
        processes = gpu.get("processes", [])
        held = sum(int(process.get("used_memory", 0)) for process in processes)
        if processes:
            pids = ", ".join(str(process["pid"]) for process in processes)
            return failed(
                node,
                "gpu-memory",
                f"GPU {gpu['index']}: {_gib(held)} held by {len(processes)} other process(es)"
                f" (pid {pids})",
                f"stop what runs on GPU {gpu['index']} (nvidia-smi shows it) or give the plan"
                " other GPUs: the engine sizes its KV cache from free memory and fails or shrinks",
            )
        used = gpu.get("memory_used") or 0
        if used > _UNEXPLAINED_USED_BYTES:
            return warned(
                node,
                "gpu-memory",
                f"GPU {gpu['index']}: {_gib(used)} in use with no process visible from here",
                "check other containers and VMs on the node (nvidia-smi on the host)",
            )
    return passed(node, "gpu-memory", "no other process holds GPU memory")


def _driver(context: NodeContext, nvml: dict[str, Any]) -> Check:
    node = context.node
    found = cuda.driver_cuda(nvml.get("cuda_driver_version"))
    env = dict(context.docker.image_env)
    if context.probe is not None:
        env.update({k: v for k, v in context.probe.get("env", {}).items() if k not in env})
    needed = cuda.image_cuda(env)
    driver = nvml.get("driver_version") or "?"
    if found is None:
        return warned(node, "driver-cuda", f"driver {driver}: CUDA version unknown", "")
    if needed is None:
        return passed(
            node, "driver-cuda", f"driver {driver} (CUDA {cuda.text(found)}); image CUDA unknown"
        )
    detail = (
        f"driver {driver} runs CUDA {cuda.text(found)}; {context.image} needs CUDA"
        f" {cuda.text(needed)}"
    )
    if found < needed:
        return failed(node, "driver-cuda", detail, cuda.driver_fix(context.engine, needed, found))
    return passed(node, "driver-cuda", detail)


def _p2p(context: NodeContext, nvml: dict[str, Any]) -> Check:
    node = context.node
    groups = context.target.tp_groups
    if not groups:
        return passed(node, "p2p", "no tensor-parallel group spans GPUs of this node")
    table: dict[str, dict[str, str]] = nvml.get("p2p", {})
    # The container renumbers its GPUs from 0 in the order of the plan's ids.
    position = {gpu: index for index, gpu in enumerate(context.target.gpus)}
    expects_nvlink = context.interconnect in ("nvswitch", "nvlink-pairs")
    for group in groups:
        for i, first in enumerate(group):
            for second in group[i + 1 :]:
                a, b = sorted((position.get(first, first), position.get(second, second)))
                pair = table.get(f"{a}-{b}", {})
                read, nvlink = pair.get("read", "U"), pair.get("nvlink", "U")
                where = f"GPUs {first} and {second} (TP group {','.join(map(str, group))})"
                if expects_nvlink and context.interconnect == "nvswitch" and nvlink != "OK":
                    return failed(
                        node,
                        "p2p",
                        f"{where}: no NVLink peer access ({_P2P_MEANING.get(nvlink, nvlink)})",
                        "start nvidia-fabricmanager on the node (NVSwitch systems need it) and"
                        " check `nvidia-smi nvlink --status`, or declare `interconnect: pcie`",
                    )
                if read != "OK":
                    return warned(
                        node,
                        "p2p",
                        f"{where}: P2P read {read} ({_P2P_MEANING.get(read, read)})",
                        "all-reduce goes through host memory (slower); enable P2P (BIOS ACS/IOMMU"
                        " settings) or, if vLLM hangs at its first all-reduce, pass"
                        " --engine-arg --disable-custom-all-reduce",
                    )
    if not expects_nvlink:
        numa = {gpu["index"]: gpu.get("numa_node") for gpu in nvml.get("gpus", [])}
        for group in groups:
            found = {numa.get(position.get(g, g)) for g in group}
            nodes = sorted(int(n) for n in found if n is not None)
            if len(nodes) > 1:
                return warned(
                    node,
                    "p2p",
                    f"TP group {','.join(map(str, group))} spans NUMA nodes"
                    f" {', '.join(map(str, nodes))}: its all-reduce crosses the CPU interconnect",
                    "keep each tensor-parallel group on one socket (smaller --tp with more"
                    " replicas, or --pp across sockets) for PCIe-only GPUs",
                )
    kind = "NVLink" if expects_nvlink else "PCIe P2P"
    return passed(node, "p2p", f"{kind} between the GPUs of {len(groups)} TP group(s)")
