"""Published serving runs as calibration cases: what was run, on what, and what was measured.

An observation (the dev set's format) names an engine and version, a model, a GPU, a layout,
the lengths, the load and the measured medians. `case_of` resolves it to what the model needs:
the model's profile (from a config directory given by the caller, else the catalog), the
memory estimate of that layout, the engine features the version enables, and the traffic.
`source_of` names the publication a run comes from, the unit leave-one-source-out
cross-validation holds out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.plan import Parallelism
from orchestrator.planning.performance.engine_args import (
    batched_tokens,
    cuda_graph_max_bs,
    eager_mode,
    flag_value,
    speculative_tokens,
    stream_interval,
)
from orchestrator.planning.performance.serving import Traffic
from orchestrator.planning.performance.steps import Instance
from orchestrator.schema import ModelProfile

# ShareGPT runs whose source states no token totals: the mean lengths of the ShareGPT runs
# that do (about 220 in, 200 out with vllm bench serve).
SHAREGPT_ISL, SHAREGPT_OSL = 220.0, 200.0
METRICS = ("output_tokens_per_s", "tpot_ms_median", "ttft_ms_median")
PER_GPU = "output_tokens_per_s_per_gpu"

ModelFinder = Callable[[str], ModelProfile]


@dataclass(frozen=True)
class Case:
    """One observation, resolved to what the model needs."""

    id: str
    source: str
    instance: Instance
    traffic: Traffic
    kv_tokens: int
    context: int
    measured: dict[str, float]
    prefill_tokens_per_s_per_node: float | None = None
    # The best one-second output rate of the run (vllm bench serve's "Peak output token
    # throughput"), when the client reports it.
    peak_output_tokens_per_s: float | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def layout_of(entry: Mapping[str, Any]) -> Parallelism:
    """The layout as the engine runs it. SGLang's `--enable-dp-attention` without `--dp-size`
    leaves DP at 1 (one attention group: plain TP); with `--dp-size N` it carves the TP group
    into N attention groups."""
    tp = entry.get("tp") or entry.get("ep") or 1
    dp = entry.get("dp") or 1
    ep = entry.get("ep") or 1
    attn_dp = 1
    if entry.get("engine") == "sglang" and entry.get("dp_attention"):
        attn_dp, dp = dp, 1
    elif entry.get("engine") == "vllm" and dp > 1:
        attn_dp = dp  # vLLM DP ranks each run attention on their own requests
    return Parallelism(tp=tp, pp=entry.get("pp") or 1, dp=dp, ep=ep, attn_dp=attn_dp)


def _context(command: str, default: int) -> int:
    value = flag_value(command, "--max-model-len", "--max_model_len", "--context-length")
    return int(value) if value and value.isdigit() else default


def _memory_fraction(command: str) -> float | None:
    value = flag_value(command, "--mem-fraction-static", "--gpu-memory-utilization")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def source_of(entry: Mapping[str, Any]) -> str:
    """The publication: a document path without its commit and block, a PR, a blog post."""
    text = str(entry.get("source") or entry["id"])
    text = text.split(" ")[0].split("@")[0].split("#")[0]
    return text.rstrip("/")


def case_of(entry: Mapping[str, Any], find: ModelFinder) -> Case:
    from orchestrator.hardware.gpus import find_gpu
    from orchestrator.planning.memory.estimate import (
        default_max_num_batched_tokens,
        default_memory_fraction,
        estimate,
    )

    model = find(entry["model"])
    gpu = find_gpu(entry["gpu"])
    engine = entry["engine"]
    par = layout_of(entry)
    command = str(entry.get("server_command") or "")
    context = _context(command, min(model.max_context, 32768))
    # Each run is sized by its own release's rules (SGLang's reserve and chunk changed from
    # release to release); a run that names none gets the newest pinned.
    version = str(entry.get("engine_version") or "") or None
    budget = batched_tokens(command) or default_max_num_batched_tokens(engine, gpu, version)
    memory = estimate(
        model,
        gpu,
        engine,
        par,
        context=context,
        memory_fraction=_memory_fraction(command)
        or default_memory_fraction(
            engine,
            gpu,
            par,
            version,
            mla=model.attention == "mla",
            chunked_prefill=budget,
            cuda_graph_max_bs=cuda_graph_max_bs(command),
            draft_tokens=speculative_tokens(command),
            cuda_graphs=not eager_mode(command),
            engine_rule=True,  # the run gave no fraction: the engine picked its own
        ),
        max_num_batched_tokens=budget,
        engine_version=version,
    )
    nodes = entry.get("nodes") or 1
    instance = Instance(
        model=model,
        gpu=gpu,
        engine=engine,
        par=par,
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * 2**30,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
        nnodes=nodes,
        interconnect="nvswitch" if gpu.nvlink is not None else "pcie",
        fabric="infiniband" if nodes > 1 else "none",
        max_num_batched_tokens=budget,
        engine_version=version,
        speculative_tokens=speculative_tokens(command),
        stream_interval=stream_interval(command),
        cuda_graph_max_bs=cuda_graph_max_bs(command),
        eager=eager_mode(command),
    )
    rate = entry.get("request_rate")
    workload = entry.get("workload") or {}
    concurrency = entry.get("concurrency")
    traffic = Traffic(
        isl=_number(entry.get("isl")) or SHAREGPT_ISL,
        osl=_number(entry.get("osl")) or SHAREGPT_OSL,
        concurrency=concurrency,
        request_rate=float(rate) if isinstance(rate, int | float) else None,
        num_requests=workload.get("num_requests") if concurrency is None else None,
        varied_lengths=entry.get("dataset") == "sharegpt",
    )
    measured = dict(_measured(entry, instance.gpus))
    prefill = (entry.get("measured_other") or {}).get("prefill_tokens_per_s_per_node")
    return Case(
        id=entry["id"],
        source=source_of(entry),
        instance=instance,
        traffic=traffic,
        kv_tokens=memory.kv_cache_tokens,
        context=context,
        measured=measured,
        prefill_tokens_per_s_per_node=_number(prefill),
        peak_output_tokens_per_s=_peak(entry),
    )


def _peak(entry: Mapping[str, Any]) -> float | None:
    """The peak output rate, where the client is vLLM's (vllm/benchmarks/serve.py counts the
    stream events of each one-second window; other clients define their peaks otherwise)."""
    if "vllm bench serve" not in str(entry.get("bench_command") or ""):
        return None
    return _number((entry.get("measured_other") or {}).get("peak_output_tokens_per_s"))


def _measured(entry: Mapping[str, Any], gpus: int) -> list[tuple[str, float]]:
    """The figures to compare. A run whose TPOT includes the TTFT (guidellm's) is judged on
    its median inter-token latency, which is the decode step time the model predicts; a
    per-GPU figure (a blog's) becomes the deployment's throughput."""
    measured = entry.get("measured") or {}
    out = [
        (metric, float(value))
        for metric, value in measured.items()
        if metric in METRICS and isinstance(value, int | float)
    ]
    names = {metric for metric, _ in out}
    itl = measured.get("itl_ms_median")
    other = entry.get("measured_other") or {}
    if (
        "tpot_ms_median" not in names
        and isinstance(itl, int | float)
        and "tpot_ms_median_as_reported_includes_ttft" in other
    ):
        out.append(("tpot_ms_median", float(itl)))
    per_gpu = measured.get(PER_GPU)
    if "output_tokens_per_s" not in names and isinstance(per_gpu, int | float):
        out.append(("output_tokens_per_s", float(per_gpu) * gpus))
    return out
