"""Start failures the simulator can act out (`DEPLOY_SIM_FAULT=fail=CAUSE`): each prints the
message the real engine (or the library under it) prints for that cause, then exits 1, so the
supervisor's failure classification is exercised on the engines' own words.

`fail=kv-cache` is conditional, as in the engines: it fails only while the requested context
(`--max-model-len` / `--context-length`) exceeds the simulated KV capacity
(`DEPLOY_SIM_KV_TOKENS`), so a re-planned, shorter context starts.
"""

from __future__ import annotations

from orchestrator.sim.settings import Behaviour, EngineSettings

CAUSES = (
    "cuda-oom",
    "kv-cache",
    "gpu-taken",
    "nccl",
    "dist-timeout",
    "driver",
    "hub-401",
    "hub-404",
    "architecture",
    "port-in-use",
)

_KV_BYTES_PER_TOKEN = 144 * 1024  # a Llama-8B-like model in bf16: 32 layers x 8 KV heads x 128


def _gib(tokens: int) -> str:
    return f"{tokens * _KV_BYTES_PER_TOKEN / 2**30:.2f}"


def failure_lines(cause: str, settings: EngineSettings, behaviour: Behaviour) -> list[str] | None:
    """The log lines of `cause` for this engine, or None when the cause does not apply."""
    vllm = settings.engine == "vllm"
    model = settings.model
    if cause == "kv-cache":
        need, have = settings.max_model_len, behaviour.kv_capacity_tokens
        if need <= have:
            return None
        if vllm:
            return [
                "ValueError: To serve at least one request with the models's max seq len "
                f"({need}), ({_gib(need)} GiB KV cache is needed, which is larger than the "
                f"available KV cache memory ({_gib(have)} GiB). Based on the available memory, "
                f"the estimated maximum model length is {have}. Try increasing "
                "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the "
                "engine.",
            ]
        return [
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.",
        ]
    if cause == "cuda-oom":
        return [
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB. GPU 0 has "
            "a total capacity of 79.19 GiB of which 1.02 GiB is free. Of the allocated memory "
            "76.20 GiB is allocated by PyTorch, and 1.40 GiB is reserved by PyTorch but "
            "unallocated.",
        ]
    if cause == "gpu-taken":
        return [
            "ValueError: Free memory on device (38.2/79.19 GiB) on startup is less than desired "
            "GPU memory utilization (0.9, 71.27 GiB). Decrease GPU memory utilization or reduce "
            "GPU memory used by other processes."
        ]
    if cause == "nccl":
        return [
            "torch.distributed.DistBackendError: NCCL error in: "
            "/pytorch/torch/csrc/distributed/c10d/ProcessGroupNCCL.cpp:3356, unhandled system "
            "error (run with NCCL_DEBUG=INFO for details), NCCL version 2.26.2",
            "ncclSystemError: System call (e.g. socket, malloc) or external library call failed "
            "or device error.",
        ]
    if cause == "dist-timeout":
        return [
            "torch.distributed.DistStoreError: Timed out after 601 seconds waiting for clients. "
            "1/2 clients joined.",
        ]
    if cause == "driver":
        return [
            "RuntimeError: The NVIDIA driver on your system is too old (found version 12020). "
            "Please update your GPU driver by downloading and installing a new version from the "
            "URL: http://www.nvidia.com/Download/index.aspx",
        ]
    if cause == "hub-401":
        return [
            f"huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo "
            f"for url https://huggingface.co/{model}/resolve/main/config.json.",
            f"Access to model {model} is restricted. You must have access to it and be "
            "authenticated to access it. Please log in.",
        ]
    if cause == "hub-404":
        return [
            "huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. Repository Not "
            f"Found for url: https://huggingface.co/{model}/resolve/main/config.json.",
        ]
    if cause == "architecture":
        if vllm:
            return [
                "ValueError: Model architectures ['SimulatedForCausalLM'] are not supported for "
                "now. Supported architectures: dict_keys(['LlamaForCausalLM', "
                "'Qwen3ForCausalLM', ...])",
            ]
        return ["ValueError: Unsupported architectures: SimulatedForCausalLM"]
    if cause == "port-in-use":
        return [
            f"ERROR:    [Errno 98] error while attempting to bind on address "
            f"('{settings.host}', {settings.port}): address already in use",
        ]
    return None
