"""A GPU NVML reports that the catalog does not know: planned from what NVML says.

NVML gives the name, the memory and the compute capability; bandwidth and FLOPs are not
reported, so they are taken from the catalog GPU of the same architecture (compute capability
major) with the closest memory, scaled by nothing, and every such figure is stated as an
assumption in the plan's warnings. A name the user types is never treated this way: an
unknown typed name is refused with suggestions (`catalog.find_gpu`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.schema import GpuSpec

if TYPE_CHECKING:
    from orchestrator.hardware.inventory import GpuInfo

GIB = 2**30
# Weight formats by architecture: FP8 from Ada/Hopper (8.9), MXFP4 kernels from Hopper (9.0).
FP8_SINCE = (8, 9)
MXFP4_SINCE = (9, 0)


def _capability(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    major, _, minor = text.partition(".")
    if not major.isdigit():
        return None
    return int(major), int(minor) if minor.isdigit() else 0


def assumed_gpu(info: GpuInfo) -> GpuSpec:
    """A GpuSpec for `info` from NVML's facts, the rest borrowed with the assumptions named."""
    from orchestrator.hardware.gpus import load_gpus, register_detected

    memory_gib = round(info.memory_bytes / GIB, 2)
    capability = _capability(info.compute_capability)
    gpus = [spec for spec in load_gpus().values() if spec.vendor == "nvidia"]
    same_arch = [
        spec
        for spec in gpus
        if capability is not None
        and (cap := _capability(spec.compute_capability)) is not None
        and cap[0] == capability[0]
    ]
    pool = same_arch or gpus
    model = min(pool, key=lambda spec: abs(spec.memory_gib - memory_gib))
    cc = info.compute_capability or "unknown"
    fp8 = capability is not None and capability >= FP8_SINCE
    notes = (
        f"GPU {info.name!r} is not in the catalog: planned from what NVML reports "
        f"({memory_gib:g} GiB, compute capability {cc})",
        f"assumed like {model.name} (same architecture, closest memory): "
        f"{model.memory_bandwidth_gbs:g} GB/s, {model.bf16_tflops:g} BF16 TFLOPS dense, "
        f"interconnect {'NVLink' if model.nvlink else 'PCIe'}; "
        "add a profile under profiles/gpus/ for exact figures",
    )
    spec = GpuSpec(
        name=info.name,
        vendor="nvidia",
        nvml_names=(info.name,),
        form_factor=model.form_factor,
        memory_gib=memory_gib,
        memory_bandwidth_gbs=model.memory_bandwidth_gbs,
        bf16_tflops=model.bf16_tflops,
        fp8_tflops=model.fp8_tflops if fp8 else None,
        compute_capability=info.compute_capability,
        pcie_generation=info.pcie_generation or model.pcie_generation,
        nvlink=model.nvlink,
        supports_fp8=fp8,
        supports_mxfp4=capability is not None and capability >= MXFP4_SINCE,
        assumed=True,
        notes=notes,
    )
    register_detected(spec)
    return spec
