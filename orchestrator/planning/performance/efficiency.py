"""The few physical efficiency factors of the performance model, and what each engine version
enables. Everything else in the model is the model's and the GPU's own arithmetic.

`Efficiency` is the one place the calibrated constants live: `CALIBRATED` holds the values
fitted on published runs (benchmarks/bench_performance.py reproduces the fit, with its
leave-one-source-out cross-validation; docs/performance.md explains each factor). A caller
with its own measurements (per GPU type and engine version) builds another `Efficiency` with
`dataclasses.replace` and passes it to `forecast`; `FACTOR_NAMES` lists the fields a fit may
move and `FACTOR_BOUNDS` the physical range of each.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache


@dataclass(frozen=True)
class Efficiency:
    # Fraction of the HBM bandwidth a decode step's dense weight and KV reads reach.
    hbm: float
    # Fraction of the HBM bandwidth the routed experts' grouped GEMMs reach with the current
    # kernels (CUTLASS/FlashInfer/DeepGEMM grouped GEMM, tuned Triton configs: vLLM >= 0.7,
    # SGLang >= 0.5).
    moe_hbm: float
    # The same with the older generic Triton fused-MoE kernel (vLLM < 0.7, SGLang < 0.5).
    moe_hbm_legacy: float
    # Fraction of the dense peak (BF16 or FP8) the GEMMs of a prefill (or a large batch) reach.
    compute: float
    # Fixed time per layer and step: kernel launches, norms, rotary, sampling share.
    layer_overhead_s: float
    # Extra fixed time per MoE layer and step: router top-k, token permutation, grouped GEMM
    # launches and the un-permutation.
    moe_layer_overhead_s: float
    # CPU time per running request and step outside the forward pass (scheduling, sampling,
    # detokenization, streaming); overlapped with the GPU when the engine schedules
    # asynchronously (see ENGINE_FEATURES).
    request_cpu_s: float
    # CPU time of the serving front end per streamed token (detokenize, serialize, send): one
    # API server process serves all of an instance's requests, whatever its DP size.
    stream_token_s: float
    # Time outside the engine's forward passes per request: HTTP, chat template, tokenizer,
    # scheduler admission and the first token's detokenization, in vLLM's OpenAI server.
    frontend_s: float
    # Time per layer and step when the step runs without a CUDA graph (eager mode, or a batch
    # above the largest captured graph): every kernel launched from Python, one after another.
    eager_layer_s: float
    # The same in SGLang's front end (its HTTP server and tokenizer manager), another program.
    sglang_frontend_s: float


# The front end's cost per streamed chunk is not fitted: the published peak rates bound it.
# `vllm bench serve` counted 20,354 stream events per second from one SGLang front end
# (GLM-4.5-Air FP8, 4xH100, 1000 running requests), so one event costs it at most 49 us; the
# prior (20 us) stands. Fitted freely, it rises to 120-180 us and stands in for the stalls of
# a burst's admission and tail, flattening every layout at saturation onto one front end.
UNFITTED = ("stream_token_s",)
FACTOR_NAMES = tuple(f.name for f in fields(Efficiency) if f.name not in UNFITTED)
# The physical range of each factor: a fit never leaves it.
FACTOR_BOUNDS: dict[str, tuple[float, float]] = {
    "hbm": (0.4, 0.95),
    "moe_hbm": (0.3, 0.95),
    "moe_hbm_legacy": (0.05, 0.9),
    "compute": (0.3, 0.85),
    "layer_overhead_s": (0.0, 60e-6),
    "moe_layer_overhead_s": (0.0, 100e-6),
    "request_cpu_s": (0.0, 320e-6),
    "stream_token_s": (0.0, 480e-6),
    "frontend_s": (0.005, 0.2),
    "eager_layer_s": (20e-6, 1.6e-3),
    "sglang_frontend_s": (0.005, 0.2),
}

# The physical value of each factor before any fit, from published figures: decode GEMV/GEMM
# kernels reach 70-80 % of HBM bandwidth on large reads (vLLM and SGLang kernel benchmarks),
# grouped MoE kernels somewhat less, the generic Triton kernel well under half; dense GEMMs
# reach about half of peak in a serving mix; a kernel launch costs about 5 us and a layer
# launches ~10 kernels (CUDA graphs hide most of it); a Python scheduler spends tens of
# microseconds per running request and step; a front end serializes a streamed token in tens
# of microseconds and admits a chat request (template, tokenizer, validation) in ~10-20 ms.
PRIOR = Efficiency(
    hbm=0.75,
    moe_hbm=0.6,
    moe_hbm_legacy=0.3,
    compute=0.5,
    layer_overhead_s=10e-6,
    moe_layer_overhead_s=40e-6,
    request_cpu_s=40e-6,
    stream_token_s=20e-6,
    frontend_s=0.015,
    eager_layer_s=200e-6,
    sglang_frontend_s=0.015,
)

# Fitted by `orchestrator.planning.performance.calibration.fit` (coordinate descent on a
# log-spaced grid inside FACTOR_BOUNDS from PRIOR; mean capped log error over output
# throughput, TPOT and TTFT of the 58 published dev runs, plus the pull towards PRIOR).
CALIBRATED = Efficiency(
    hbm=0.687,
    moe_hbm=0.4,
    moe_hbm_legacy=0.3,
    compute=0.443,
    layer_overhead_s=1.5e-05,
    moe_layer_overhead_s=5e-05,
    request_cpu_s=8e-05,
    stream_token_s=2e-05,
    frontend_s=0.0199,
    eager_layer_s=0.0006,
    sglang_frontend_s=0.015,
)


def frontend_seconds(eff: Efficiency, engine: str) -> float:
    """The engine's front-end time per request."""
    return eff.sglang_frontend_s if engine == "sglang" else eff.frontend_s


@dataclass(frozen=True)
class EngineFeatures:
    """What an engine version runs by default, as far as speed goes."""

    # The grouped-GEMM kernel family of its MoE layers: "grouped" or "legacy" (Triton
    # fused_moe with generic tile configs).
    moe_kernels: str
    # The CPU work of step n+1 overlaps the GPU work of step n.
    async_scheduling: bool
    source: str
    # API server processes of one instance with DP ranks: "one" (a single front end streams
    # every token) or "per-dp-rank" (vLLM's internal load balancing starts one per DP rank
    # unless --api-server-count says otherwise).
    api_servers: str = "one"


# (engine, first version it applies to) -> features; the newest entry at or below a version
# applies. No version given: the newest.
ENGINE_FEATURES: dict[tuple[str, tuple[int, ...]], EngineFeatures] = {
    ("vllm", (0,)): EngineFeatures(
        "legacy", False, "vLLM < 0.7: Triton fused_moe (fused_moe.py default configs)"
    ),
    ("vllm", (0, 7)): EngineFeatures(
        "grouped",
        False,
        "vLLM 0.7: Triton fused_moe with per-GPU tuned tiles for DeepSeek-V3's experts "
        "(fused_moe/configs/E=256,N=256,device_name=NVIDIA_H200,dtype=fp8_w8a8,"
        "block_shape=[128,128].json); dstack's DeepSeek-R1 run on 0.7.4 (8xH200, 63 ms "
        "per token at concurrency 64) reads the experts at the grouped kernels' pace",
    ),
    ("vllm", (0, 10)): EngineFeatures(
        "grouped",
        False,
        "vLLM 0.10: FlashInfer/CUTLASS grouped GEMM and DeepGEMM MoE backends "
        "(model_executor/layers/fused_moe)",
    ),
    ("vllm", (0, 11)): EngineFeatures(
        "grouped",
        False,
        "vLLM entrypoints/cli/serve.py: internal load balancing defaults --api-server-count to "
        "--data-parallel-size (one API server per DP rank, as llm-d's wide-EP guides state); "
        "taken from 0.11, the first release after the mid-2025 DP load-balancing rework "
        "(vllm PRs 21238, 21510); the dev runs check it on 0.13",
        api_servers="per-dp-rank",
    ),
    ("vllm", (0, 14)): EngineFeatures(
        "grouped",
        True,
        "vLLM 0.14 release notes: async scheduling on by default",
        api_servers="per-dp-rank",
    ),
    ("sglang", (0,)): EngineFeatures(
        "legacy", False, "SGLang < 0.4: Triton fused_moe, no overlap scheduler"
    ),
    ("sglang", (0, 4)): EngineFeatures(
        "legacy", True, "SGLang 0.4 release blog: zero-overhead (overlap) scheduler by default"
    ),
    ("sglang", (0, 5)): EngineFeatures(
        "grouped",
        True,
        "SGLang 0.5: DeepGEMM/CUTLASS/FlashInfer MoE runners (srt/layers/moe)",
    ),
}


def version_key(version: str | None) -> tuple[int, ...] | None:
    """(0, 11, 0) from 'v0.11.0', '0.5.4.post2' or 'v0.7.4.dev181+g...'; None if unreadable."""
    if not version:
        return None
    text = version.strip().lstrip("v").split()[0]
    parts: list[int] = []
    for piece in text.split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts) or None


@lru_cache(maxsize=64)
def engine_features(engine: str, version: str | None) -> EngineFeatures:
    key = version_key(version)
    entries = sorted(
        (first, features)
        for (name, first), features in ENGINE_FEATURES.items()
        if name == engine and (key is None or first <= key)
    )
    if not entries:
        return EngineFeatures("grouped", True, "unknown engine: current defaults")
    return entries[-1][1]
