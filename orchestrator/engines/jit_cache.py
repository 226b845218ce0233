"""Engine JIT caches kept on the host, so a re-created container reuses compiled kernels.

DeepGEMM compiles its FP8 GEMMs at first start (SGLang logs "typically 10-20 mins" without a
cache), torch.compile and Triton write their kernels, FlashInfer builds its JIT modules: all
under the container user's home by default, so they vanish with the container. Each engine's
default cache directories are bind-mounted from one folder per engine on the node
(`~/.cache/deploy-jit/<engine>/...`); no environment variable is needed, so the mounts work for
every pinned version whatever each one names its override variables.
"""

from __future__ import annotations

from orchestrator.spec import Mount

JIT_CACHE_ROOT = "~/.cache/deploy-jit"

# Default cache directories of each engine image (root's home):
# vLLM: VLLM_CACHE_ROOT (~/.cache/vllm: torch_compile_cache, deep_gemm kernels);
# SGLang: ~/.cache/sglang (torch_compile, deep_gemm) and the older ~/.cache/deep_gemm;
# both: FlashInfer's ~/.cache/flashinfer and Triton's ~/.triton.
ENGINE_JIT_CACHES: dict[str, tuple[str, ...]] = {
    "vllm": ("/root/.cache/vllm", "/root/.cache/flashinfer", "/root/.triton"),
    "sglang": (
        "/root/.cache/sglang",
        "/root/.cache/deep_gemm",
        "/root/.cache/flashinfer",
        "/root/.triton",
    ),
}


def jit_cache_mounts(engine: str) -> list[Mount]:
    mounts = []
    for target in ENGINE_JIT_CACHES.get(engine, ()):
        name = target.rsplit("/", 1)[1].lstrip(".")
        mounts.append(Mount(source=f"{JIT_CACHE_ROOT}/{engine}/{name}", target=target))
    return mounts


def is_home_path(source: str) -> bool:
    """A host path under the home directory of whoever starts the deployment."""
    return source.startswith("~/")
