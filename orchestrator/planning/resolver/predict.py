"""Prediction: the performance model's forecast for one judged layout of the workload."""

from __future__ import annotations

from orchestrator.plan import MemoryEstimate, Replica
from orchestrator.planning.calibration import calibration_for, scale_forecast
from orchestrator.planning.performance import Forecast, Instance, Traffic, forecast
from orchestrator.planning.performance.from_plan import as_prediction
from orchestrator.planning.resolver.context import Shape, Workload
from orchestrator.schema import GpuSpec

GIB = 2**30
__all__ = ["as_prediction", "predict", "short", "traffic_of"]


def default_max_num_batched_tokens(
    engine: str, gpu: GpuSpec, engine_version: str | None = None
) -> int:
    from orchestrator.planning.memory.estimate import (
        default_max_num_batched_tokens as engine_default,
    )

    return engine_default(engine, gpu, engine_version)


def traffic_of(work: Workload) -> Traffic:
    isl, osl = work.lengths
    return Traffic(
        isl=isl,
        osl=osl,
        concurrency=work.load_concurrency,
        request_rate=work.request_rate,
        phase=work.phase,
    )


def predict(
    shape: Shape,
    memory: MemoryEstimate,
    replicas: list[Replica],
    work: Workload,
    *,
    nnodes: int,
    tp_in_domain: bool,
) -> Forecast:
    """TTFT, TPOT and throughput of `len(replicas)` instances of `shape` under the workload's load."""
    node = work.nodes[0]
    if nnodes > 1 and replicas:
        # Nodes of one multi-node NVLink domain (GB200/GB300 NVL72 trays) are one NVLink
        # domain to the model: TP and EP across them run at NVLink speed, not the fabric's.
        names = [piece.node for piece in replicas[0].slices]
        if work.cluster.share_nvlink_domain(names):
            nnodes, tp_in_domain = 1, True
    instance = Instance(
        model=work.model,
        gpu=work.gpu,
        engine=work.engine,
        par=shape.parallelism(),
        weight_bytes_per_gpu=memory.weights_gib_per_gpu * GIB,
        kv_bytes_per_token_per_gpu=memory.kv_bytes_per_token_per_gpu,
        nnodes=nnodes,
        interconnect=node.interconnect,
        fabric=work.cluster.fabric,
        tp_in_domain=tp_in_domain,
        quantization=work.quantization,
        max_num_batched_tokens=work.max_num_batched_tokens
        or default_max_num_batched_tokens(work.engine, work.gpu, work.engine_version),
        eager=work.enforce_eager,
        engine_version=work.engine_version,
        speculative_tokens=work.speculative_tokens,
        stream_interval=work.stream_interval,
        cuda_graph_max_bs=work.cuda_graph_max_bs,
    )
    result = forecast(
        instance,
        traffic_of(work),
        kv_tokens=memory.kv_cache_tokens,
        context=work.context,
        replicas=len(replicas),
    )
    # The user's own measurements (`deploy calibrate`), multiplied in here and only here.
    return scale_forecast(result, calibration_for(work.gpu.name, work.engine, work.engine_version))


def short(result: Forecast) -> str:
    """'9.8k output tok/s (1.2k per GPU), TPOT 12.3 ms, TTFT 85 ms'."""
    return (
        f"{_count(result.output_tokens_per_s)} output tok/s "
        f"({_count(result.output_tokens_per_s_per_gpu)} per GPU), "
        f"TPOT {result.tpot_ms:.1f} ms, TTFT {_ms(result.ttft_ms)}"
    )


def _count(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def _ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"
