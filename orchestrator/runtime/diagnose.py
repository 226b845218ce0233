"""Why an engine failed to start, in one line, and the planner's re-plan when memory is short.

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
- vLLM's CPU build (0.32.0; the real lines are recorded in tests/realengine/fixtures/failures/
  by scripts/record_engine_failures.py): KV space above the NUMA node's free memory
  (`vllm/v1/worker/cpu_worker.py`): "Available memory on node N (X/Y GiB) on kv cache allocation
  is less than requested memory for kv ..."; the KV message above, told apart by the CPU
  worker's lines around it; and, from any vLLM, an unknown flag ("error: unrecognized
  arguments"), a model folder without a config ("Invalid repository ID or local directory
  specified"; a path that does not exist: huggingface_hub's "Repo id must be in the form
  'repo_name' or 'namespace/repo_name': '/..."), TP that does not divide the heads ("must be divisible by tensor parallel size"),
  a context above the model's ("User-specified max_model_len (N) is greater than the derived
  max_model_len"), threads bound to CPUs the container lacks ("libgomp: Thread creation
  failed"), a small /dev/shm ("Insufficient space in /dev/shm"), and an engine core that dies
  while serving ("EngineDeadError", after which the API server exits with code 0).
- Engine-core start failures end with vLLM's generic "Engine core initialization failed. See
  root cause above": the patterns match the root cause, printed before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from orchestrator.errors import DeployError, RuntimeFailure

if TYPE_CHECKING:
    from orchestrator.plan import Plan
    from orchestrator.request import PlanRequest
    from orchestrator.runtime.supervisor import ServiceGaveUp


@dataclass(frozen=True)
class Cause:
    key: str
    pattern: re.Pattern[str]
    cause: str
    fix: str
    memory: bool = False
    # When set, the cause applies only if some line of the log matches it too (the same
    # message from vLLM's CPU build needs another fix than from its GPU build).
    context: re.Pattern[str] | None = None


def _p(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


_KV_TOO_SMALL = (
    r"max seq len \(\d+\).*(larger than the (maximum number of tokens that can be stored"
    r" in KV cache|available KV cache memory))|No available memory for the cache blocks"
)
# Lines only vLLM's CPU build prints, before its KV cache is sized.
_CPU_ENGINE = r"cpu_worker\.py|CPUWorker|VLLM_CPU_|OpenMP thread binding info|CPU KV cache"

# Most specific first: an OOM is often followed by "Engine core initialization failed".
CAUSES = (
    Cause(
        "kv-cache",
        _p(_KV_TOO_SMALL),
        "the KV cache space (VLLM_CPU_KVCACHE_SPACE) cannot hold one request of the planned "
        "context length",
        "lower --context, or give each rank more host memory (--cpus CORES:MEMORY)",
        memory=True,
        context=_p(_CPU_ENGINE),
    ),
    Cause(
        "cpu-kv-memory",
        _p(r"on kv cache allocation is less than requested memory for kv"),
        "the KV cache space asked of the CPU engine is more than the memory free on its NUMA "
        "node (VLLM_CPU_KVCACHE_SPACE too large, or unset: then vLLM asks for most of the host)",
        "plan with the node's real memory (--cpus CORES:MEMORY) so VLLM_CPU_KVCACHE_SPACE "
        "fits, or free host memory",
    ),
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
        "cpu-bind",
        _p(r"libgomp: Thread creation failed|OMP: Error #\d+: .*(affinity|proclist)"),
        "the engine's threads are bound to CPUs this node (or its container) does not have "
        "(VLLM_CPU_OMP_THREADS_BIND)",
        "bind to cores the node has (deploy detect --cpus; cpu_lists in the cluster file), "
        "or let deploy plan the binding",
    ),
    Cause(
        "shm",
        _p(r"Insufficient space in /dev/shm|No space left on device.*/dev/shm"),
        "the container's /dev/shm is too small for the engine's shared memory (Docker gives "
        "64 MB unless told otherwise)",
        "give the engine's container --shm-size 1g or more (compose shm_size)",
    ),
    Cause(
        "engine-flag",
        _p(r"error: unrecognized arguments:|error: argument [-\w]+: (invalid|expected)"),
        "the engine refused a command-line flag (unknown to this engine version, or a bad value)",
        "remove or correct the --engine-arg; deploy checks flags against the pinned version",
    ),
    Cause(
        "model-missing",
        # A path that is not a folder reaches the Hub client as a repository id.
        _p(
            r"Invalid repository ID or local directory specified"
            r"|Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/"
        ),
        "the engine found no model at the path it was given (no folder, or no config.json in it)",
        "check that the model folder exists on every node and holds config.json",
    ),
    Cause(
        "tp-heads",
        _p(r"must be divisible by tensor parallel size"),
        "the tensor parallel size does not divide the model's attention heads",
        "pick a --tp that divides the heads (or let deploy plan choose it)",
    ),
    Cause(
        "context-too-long",
        _p(r"User-specified max_model_len \(\d+\) is greater than the derived max_model_len"),
        "the context asked for is longer than the model's own maximum",
        "lower --context to the model's max_position_embeddings or less",
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
    # Last: a start that fails often takes a worker down with it, and says so.
    Cause(
        "engine-died",
        _p(
            r"EngineDeadError|engine core exited unexpectedly|Engine core proc .* died unexpectedly"
        ),
        "the engine core process died while serving (killed, or out of memory); vLLM's API "
        "server then stops with exit code 0",
        "read the engine's lines before it and the node's memory (dmesg: the OOM killer); "
        "the supervisor restarts the whole group",
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
        if cause.context is not None and not any(cause.context.search(x) for x in lines):
            continue
        for line in lines:
            if cause.pattern.search(line):
                return cause, line.strip()[:300]
    return None


_ESTIMATE = re.compile(r"estimated maximum model length is (\d+)")
_OLD_KV = re.compile(r"stored in KV cache \((\d+)\)")
_FREE = re.compile(r"Free memory on device \(([\d.]+)/([\d.]+) GiB\)")
_LOADED = re.compile(r"Model loading took|Load weight end|Loading weights took")


def _fits(request: PlanRequest, **changes: object) -> Plan | None:
    from orchestrator.planner import build_plan

    try:
        plan = build_plan(request.model_copy(update=changes))
    except DeployError:
        return None
    return plan if plan.fits else None


def replan(cause: Cause, lines: list[str], request: PlanRequest, plan: Plan) -> Replan | None:
    """The planner's plan with the knob the failure points at changed, if one fits."""
    if not cause.memory:
        return None
    text = "\n".join(lines)
    context = plan.memory.context
    fraction = round(plan.memory.memory_fraction, 2)
    tp = plan.parallelism.tp
    candidates: list[tuple[str, dict[str, object]]] = []
    if cause.key == "kv-cache":
        # vLLM says how long a request its KV cache can hold: plan for that (a multiple of 1024).
        found = _ESTIMATE.search(text) or _OLD_KV.search(text)
        if found and int(found.group(1)) >= 1024:
            candidates.append(("context", {"context": int(found.group(1)) // 1024 * 1024}))
        if fraction < 0.95 and plan.cpu is None:
            candidates.append(
                ("fraction", {"gpu_memory_utilization": round(min(0.95, fraction + 0.05), 2)})
            )
        if context >= 2048:
            candidates.append(("context", {"context": context // 2}))
    elif cause.key == "gpu-taken":
        found = _FREE.search(text)
        if found:
            free = float(found.group(1)) / float(found.group(2))
            candidates.append(("fraction", {"gpu_memory_utilization": round(free - 0.02, 2)}))
    elif cause.key == "cuda-oom":
        if request.tp is None or _LOADED.search(text) is None:
            candidates.append(("tp", {"tp": tp * 2}))
        if fraction > 0.5:
            candidates.append(("fraction", {"gpu_memory_utilization": round(fraction - 0.05, 2)}))
        if context >= 2048:
            candidates.append(("context", {"context": context // 2}))
    for knob, changes in candidates:
        fitted = _fits(request, **changes)
        if fitted is None:
            continue
        if knob == "context":
            words = f"--context {fitted.memory.context} (was {context})"
        elif knob == "tp":
            words = f"--tp {fitted.parallelism.tp} (was {tp})"
        else:
            words = f"--gpu-memory-utilization {changes['gpu_memory_utilization']} (was {fraction})"
        return Replan(plan=fitted, knobs=words)
    return None


def explain_failure(
    error: ServiceGaveUp, request: PlanRequest, plan: Plan, *, simulate: bool = False
) -> Explanation | None:
    """One line naming the cause of a failed start and, for memory, the re-plan."""
    found = classify(error.log_tail)
    if found is None:
        return None
    cause, evidence = found
    return Explanation(
        service=error.service,
        cause=cause,
        evidence=evidence,
        replan=replan(cause, error.log_tail, request, plan),
    )
