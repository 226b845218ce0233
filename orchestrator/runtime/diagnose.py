"""Why an engine failed to start, in one line, and (for memory) the re-plan the caller found.

The patterns match the engines' own messages (and those of the libraries they run on):

- vLLM KV cache smaller than one max-length request (`vllm/v1/core/kv_cache_utils.py`):
  "To serve at least one request with the models's max seq len (N), (X GiB KV cache is
  needed, which is larger than the available KV cache memory (Y GiB). Based on the available
  memory, the estimated maximum model length is M. Try increasing `gpu_memory_utilization`
  or decreasing `max_model_len` ..."; older releases: "The model's max seq len (N) is larger
  than the maximum number of tokens that can be stored in KV cache (M)"; with no room at all:
  "No available memory for the cache blocks".
- vLLM start with the GPU partly taken (`vllm/v1/worker/gpu_worker.py`): "Free memory on
  device (X/Y GiB) on startup is less than desired GPU memory utilization (U, Z GiB)".
- SGLang (`python/sglang/srt/model_executor/model_runner.py`): "Not enough memory. Please
  try to increase --mem-fraction-static."
- PyTorch: "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ..."; NCCL:
  "NCCL error", `ncclSystemError`, "Watchdog caught collective operation timeout"; Gloo:
  "Gloo connectFullMesh failed"; the rendezvous store: "DistStoreError: Timed out after N
  seconds waiting for clients".
- Driver: PyTorch "The NVIDIA driver on your system is too old", CUDA "CUDA driver version
  is insufficient for CUDA runtime version", nvidia-container-cli "unsatisfied condition:
  cuda>=12.8".
- Hugging Face Hub (`huggingface_hub.errors`): `GatedRepoError` / "401 Client Error" /
  "Cannot access gated repo", `RepositoryNotFoundError` / "404 Client Error".
- Architectures: vLLM "Model architectures ['X'] are not supported for now" (newer: "...
  failed to be inspected"), Transformers "does not recognize this architecture", SGLang
  "Unsupported architectures".
- Ports: "[Errno 98] ... address already in use" (uvicorn and Python's socket).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.errors import RuntimeFailure

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.plan import Plan
    from orchestrator.runtime.supervisor import ServiceGaveUp


@dataclass(frozen=True)
class Cause:
    key: str
    pattern: re.Pattern[str]
    cause: str
    fix: str
    memory: bool = False


def _p(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


# Most specific first: an OOM is often followed by "Engine core initialization failed".
CAUSES = (
    Cause(
        "kv-cache",
        _p(
            r"max seq len \(\d+\).*(larger than the (maximum number of tokens that can be stored"
            r" in KV cache|available KV cache memory))|No available memory for the cache blocks"
            r"|Not enough memory\. Please try to increase --mem-fraction-static"
        ),
        "the KV cache cannot hold one request of the planned context length",
        "lower --context or raise the memory fraction (--gpu-memory-utilization)",
        memory=True,
    ),
    Cause(
        "gpu-taken",
        _p(r"Free memory on device .* is less than desired GPU memory utilization"),
        "other processes hold part of the GPU memory the engine was told to use",
        "free the GPUs (nvidia-smi) or lower --gpu-memory-utilization",
        memory=True,
    ),
    Cause(
        "cuda-oom",
        _p(r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory"),
        "CUDA ran out of GPU memory while loading or profiling the model",
        "spread the model over more GPUs (--tp) or lower the memory fraction",
        memory=True,
    ),
    Cause(
        "driver",
        _p(
            r"NVIDIA driver on your system is too old|CUDA driver version is insufficient"
            r"|unsatisfied condition: cuda>=|forward compatibility was attempted on non supported HW"
        ),
        "the NVIDIA driver is too old for the CUDA version of the engine image",
        "update the driver on the node, or pin an older --engine-version",
    ),
    Cause(
        "hub-401",
        _p(
            r"GatedRepoError|401 Client Error|Cannot access gated repo|Invalid user token"
            r"|Access to model .* is restricted"
        ),
        "Hugging Face refused the download (401: gated repository or missing/invalid token)",
        "accept the model's licence on huggingface.co and export HF_TOKEN before `deploy up`",
    ),
    Cause(
        "hub-404",
        _p(r"RepositoryNotFoundError|404 Client Error|Repository Not Found for url"),
        "the model repository does not exist on Hugging Face (404), or is private",
        "check the model id (deploy profiles), or export an HF_TOKEN that can see it",
    ),
    Cause(
        "architecture",
        _p(
            r"Model architectures \[.*\] (are not supported|failed to be inspected)"
            r"|does not recognize this architecture|Unsupported architectures?"
        ),
        "this engine version cannot load the model's architecture",
        "pick a newer --engine-version, or the other --engine",
    ),
    Cause(
        "port",
        _p(r"\[Errno 98\]|address already in use"),
        "a port the engine listens on is already in use on the node",
        "stop what holds it (ss -ltnp), or `deploy down` the deployment that uses it",
    ),
    Cause(
        "dist-timeout",
        _p(
            r"Watchdog caught collective operation timeout|DistStoreError|Timed out after \d+ "
            r"seconds waiting for clients|TCPStore.*(timed out|timeout)"
        ),
        "the ranks of a multi-node instance did not meet in time (rendezvous or collective "
        "timeout)",
        "check that every node reaches rank 0's address and port, and NCCL_SOCKET_IFNAME",
    ),
    Cause(
        "nccl",
        _p(
            r"NCCL error|ncclSystemError|ncclInternalError|ncclUnhandledCudaError"
            r"|ncclRemoteError|Gloo connectFullMesh failed|\[Gloo\].*(refused|timed out)"
        ),
        "NCCL/Gloo failed to connect the ranks",
        "set NCCL_SOCKET_IFNAME/GLOO_SOCKET_IFNAME to the cluster network; check firewalls",
    ),
)


@dataclass(frozen=True)
class Replan:
    plan: Plan
    knobs: str  # e.g. "--context 32768 (was 131072)"


@dataclass(frozen=True)
class Explanation:
    service: str
    cause: Cause
    evidence: str
    replan: Replan | None = None

    def line(self) -> str:
        text = f"cause: {self.cause.cause}; fix: {self.cause.fix}"
        if self.replan is not None:
            text += f"; re-plan: {self.replan.knobs} (`deploy up ... --replan` applies it)"
        return text

    def as_error(self, original: ServiceGaveUp) -> RuntimeFailure:
        hint = self.cause.fix
        if self.replan is not None:
            hint = f"rerun with {self.replan.knobs}, or add --replan"
        return RuntimeFailure(f"{self.service} did not start: {self.cause.cause}", hint)


def classify(lines: list[str]) -> tuple[Cause, str] | None:
    """The first cause, in order of specificity, that a log line shows, and that line."""
    for cause in CAUSES:
        for line in lines:
            if cause.pattern.search(line):
                return cause, line.strip()[:300]
    return None


def explain_failure(
    error: ServiceGaveUp, replan_for: Callable[[str, list[str]], Replan | None] | None = None
) -> Explanation | None:
    """One line naming the cause of a failed start and, for memory, the re-plan that
    `replan_for(cause key, log lines)` offers (the caller plans; this module never does)."""
    found = classify(error.log_tail)
    if found is None:
        return None
    cause, evidence = found
    wanted = replan_for is not None and cause.memory
    return Explanation(
        service=error.service,
        cause=cause,
        evidence=evidence,
        replan=replan_for(cause.key, error.log_tail) if wanted and replan_for else None,
    )
