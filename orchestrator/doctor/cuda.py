"""CUDA versions: what an image needs and what a driver runs.

An image built on NVIDIA's CUDA base carries `CUDA_VERSION=12.9.1` and
`NVIDIA_REQUIRE_CUDA="cuda>=12.9 ..."`; the NVIDIA container runtime refuses to start it on a
driver whose CUDA version (NVML's `cudaDriverVersion`, 12040 for 12.4) is older
("unsatisfied condition: cuda>=12.9"), and with the requirement waived CUDA fails at init
("Error 803: system has unsupported display driver / cuda driver combination").
"""

from __future__ import annotations

import re

# The last tags built on CUDA 12, for drivers that cannot run CUDA 13 images (engine docs).
LAST_CUDA12_TAGS = {"sglang": "lmsysorg/sglang:v0.5.19-cu129"}
# The pinned versions those tags are (orchestrator.engines.versions renders them).
LAST_CUDA12_VERSIONS = {"sglang": "0.5.19"}


def parse_version(text: str | None) -> tuple[int, int] | None:
    """`12.9.1` or `12.9` -> (12, 9)."""
    match = re.match(r"\s*(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def image_cuda(env: dict[str, str]) -> tuple[int, int] | None:
    """The CUDA version an image needs: its `cuda>=X.Y` requirement, else `CUDA_VERSION`."""
    requirement = re.search(r"cuda>=(\d+\.\d+)", env.get("NVIDIA_REQUIRE_CUDA", ""))
    if requirement:
        return parse_version(requirement.group(1))
    return parse_version(env.get("CUDA_VERSION"))


def driver_cuda(code: int | None) -> tuple[int, int] | None:
    """NVML's cudaDriverVersion (12040) -> (12, 4)."""
    if code is None or code <= 0:
        return None
    return (code // 1000, (code % 1000) // 10)


def text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def driver_fix(engine: str, needed: tuple[int, int], found: tuple[int, int]) -> str:
    """What to do when the driver is older than the image's CUDA."""
    fix = f"upgrade the NVIDIA driver to a branch that supports CUDA {text(needed)} or newer"
    if engine == "sglang" and needed[0] >= 13 and found[0] == 12:
        fix += (
            f", or render with --engine-version {LAST_CUDA12_VERSIONS['sglang']}"
            f" ({LAST_CUDA12_TAGS['sglang']}, the newest tag built on CUDA 12)"
        )
    elif engine == "vllm":
        fix += (
            ", or set VLLM_ENABLE_CUDA_COMPATIBILITY=1 (CUDA forward compatibility, data-center"
            " GPUs only)"
        )
    return fix
